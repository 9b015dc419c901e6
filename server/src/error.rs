//! The daemon's one error type and its single mapping to gRPC status codes.
//!
//! Domain refusals carry what the caller can act on (the field, the state,
//! the allowed steps, what unblocks). Storage and internal causes are logged
//! here and reach the client only as a generic message.

use tonic::{Code, Status};

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
    #[error("shutting down")]
    ShuttingDown,
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

impl From<Error> for Status {
    /// Messages may quote an outside service's error, so they are redacted
    /// (`crate::redact`) before they leave.
    fn from(e: Error) -> Status {
        let s = status_of(e);
        match crate::redact::redact(s.message()) {
            std::borrow::Cow::Borrowed(_) => s,
            std::borrow::Cow::Owned(m) => Status::new(s.code(), m),
        }
    }
}

fn status_of(e: Error) -> Status {
    {
        match e {
            Error::Refused(r) => {
                let code = match &r {
                    Refusal::Invalid { .. } => Code::InvalidArgument,
                    Refusal::Denied { .. } => Code::PermissionDenied,
                    Refusal::NotFound { .. } => Code::NotFound,
                    Refusal::AlreadyExists { .. } => Code::AlreadyExists,
                    Refusal::WrongState { .. } | Refusal::Refused { .. } => {
                        Code::FailedPrecondition
                    }
                    Refusal::RateLimited { .. } => Code::ResourceExhausted,
                    Refusal::Conflict { .. } => Code::Aborted,
                };
                Status::new(code, r.to_string())
            }
            Error::Unauthenticated(m) => Status::unauthenticated(m),
            Error::Storage(m) => {
                tracing::error!(error = %m, "storage read failure");
                Status::unavailable(
                    "hotfixd could not read its store (I/O error); nothing was changed \
                     (see daemon logs)",
                )
            }
            Error::NotDurable(m) => {
                tracing::error!(error = %m, "storage write failure");
                Status::unavailable(
                    "the change could not be made durable (disk full or I/O error), so it is not \
                     acknowledged; hotfixd refuses changes until it is restarted, after which \
                     `hotfixctl show` tells whether it landed (see daemon logs)",
                )
            }
            Error::Corrupt(m) | Error::Damaged(m) => {
                tracing::error!(error = %m, "corrupt record");
                Status::internal("a stored record could not be read (see daemon logs)")
            }
            Error::Upstream(m) => Status::unavailable(format!("{m}; retry when it answers again")),
            Error::ShuttingDown => Status::unavailable("hotfixd is shutting down; retry shortly"),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
