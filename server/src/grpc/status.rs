//! The one mapping from the daemon's [`Error`] to a gRPC status: each
//! refusal kind to its code, storage and internal causes logged here and
//! answered with a generic message, every message redacted.

use tonic::{Code, Status};

use crate::domain::Refusal;
use crate::error::Error;

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
            Error::Unavailable(m) => {
                tracing::warn!(error = %m, "store unavailable");
                Status::unavailable(m)
            }
            Error::Contended(m) => Status::aborted(m),
            Error::TooLarge(m) => Status::failed_precondition(m),
            Error::Fenced(m) => {
                tracing::warn!(error = %m, "fenced");
                Status::unavailable(m)
            }
            Error::ShuttingDown => Status::unavailable("hotfixd is shutting down; retry shortly"),
        }
    }
}
