//! The application layer: everything between the gRPC handlers and the
//! domain, and the only layer that talks to the store and to outside
//! services.
//!
//! - [`lane`]: `Lane`, the application service. It reads the clock, builds
//!   the domain's context, runs a domain decision inside one store change
//!   and hands back the committed outcome. It holds no runbook rule.
//! - `steps`: `Steps`, the one entry point the handlers call for every
//!   step. It decides which steps hotfixd performs itself (GitHub, Argo CD,
//!   Prometheus on for this hotfix?) and otherwise records what the caller
//!   reports through `Lane`.
//! - `intent`: the one protocol of every step that acts outside hotfixd:
//!   begin (the intent is committed like any change), act, complete (the
//!   outcome recorded and the intent cleared in one change), reconcile
//!   (at start-up, and whenever this daemon becomes the one that acts).
//! - `github`, `merge`, `sync`, `verify`: the steps performed against
//!   GitHub, Argo CD and Prometheus.
//! - `jobs`: background steps, one per hotfix and step at a time.
//! - `relay`, `checkpoints`: readers of the event log (chat relay,
//!   overdue sweep, signed audit checkpoints).

pub(crate) mod checkpoints;
pub(crate) mod github;
pub(crate) mod intent;
pub(crate) mod jobs;
pub mod lane;
pub(crate) mod merge;
pub(crate) mod relay;
pub(crate) mod steps;
pub(crate) mod sync;
pub(crate) mod verify;

pub use checkpoints::CheckpointSettings;
pub use lane::{Lane, ListFilter, Mutation, SYSTEM_ACTOR};
pub use steps::Steps;
pub use sync::SyncSettings;
pub use verify::VerifySettings;
