//! hotfixd: the hotfix lane daemon.
//!
//! - `domain`: the runbook as a pure state machine (no I/O, time passed in).
//! - `store`: the only module that names sled; durable, each change atomic
//!   through one redo record.
//! - `lane`: the application service tying domain, store and clock together.
//! - `grpc`: thin handlers and the conversions to `hotfix.v1`.
//! - `integrations`: outbound services (Slack), each behind a trait.
//! - `jobs`, `syncer`, `verifier`: steps hotfixd performs itself (Argo CD
//!   sync, step 6 measured in Prometheus).
//! - `relay`: background readers of the event log (chat relay, overdue sweep).
//! - `auth`, `config`, `server`: identity, settings and wiring.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
pub mod integrations;
pub mod limits;
pub mod redact;
pub mod roles;
pub mod server;
pub mod store;

pub use server::{serve, serve_store};
