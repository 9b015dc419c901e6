//! hotfixd: the hotfix lane daemon. ARCHITECTURE.md (at the repository's
//! root) is the map; in short:
//!
//! - [`domain`]: the runbook as a pure state machine (no I/O, time passed
//!   in), and the rules over facts read from outside services.
//! - [`app`]: the application layer: `Lane`, `Steps` (which steps hotfixd
//!   performs itself), the intent protocol, the performers, background jobs.
//! - [`store`]: the `Engine` interface and the sled engine, the only module
//!   that names sled.
//! - `grpc`: thin handlers, conversions to `hotfix.v1`, the status
//!   mapping, the guard.
//! - [`integrations`]: GitHub, Argo CD, Prometheus, Slack behind traits.
//! - [`auth`], [`roles`], [`limits`], [`redact`], [`clock`]: identity,
//!   roles, rate limits, secrets, time; [`config`], [`server`]: settings
//!   and wiring.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod grpc;
pub mod integrations;
pub mod limits;
pub mod metrics;
pub mod migrate;
pub mod oidc;
pub mod ops;
pub mod redact;
pub mod roles;
pub mod server;
pub mod store;
pub mod term;

pub use server::{serve, serve_store};
