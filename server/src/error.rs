//! The daemon's one error type, below the gRPC layer (which maps it to
//! status codes: `grpc::status`).
//!
//! Domain refusals carry what the caller can act on (the field, the state,
//! the allowed steps, what unblocks). Storage and internal causes name what
//! failed for the log; the gRPC layer answers them with a generic message.

use crate::domain::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("{0}")]
    Unauthenticated(String),
    /// The store could not be read (or opened).
    #[error("storage: {0}")]
    Storage(String),
    /// A change could not be made durable; it is not acknowledged, and the
    /// store refuses changes until restarted.
    #[error("not durable: {0}")]
    NotDurable(String),
    /// A stored record could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The store is damaged, or holds less than was acknowledged: the
    /// daemon does not start on it.
    #[error("{0}")]
    Damaged(String),
    /// An outside service the step needs (GitHub, Argo CD) could not be
    /// reached or is failing; nothing was recorded; retrying may work.
    #[error("{0}")]
    Upstream(String),
    /// The store (etcd) did not answer, or not in time: the change may or
    /// may not be committed; a retry with the same request id is safe.
    #[error("{0}")]
    Unavailable(String),
    /// A change larger than the store can commit at once; nothing was
    /// written.
    #[error("{0}")]
    TooLarge(String),
    /// A change lost the race to other replicas' changes too often in a
    /// row; nothing was written (ABORTED: retry).
    #[error("{0}")]
    Contended(String),
    /// This replica is no longer the one that acts (it lost its etcd
    /// lease): its change was refused by the fencing compare.
    #[error("{0}")]
    Fenced(String),
    #[error("shutting down")]
    ShuttingDown,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
