//! Two statuses tonic gives a client's own mistakes, corrected to what the
//! gRPC status-code guide says they are, so that clients retry (or not)
//! the right way:
//!
//! - a request over the size limit: tonic answers OUT_OF_RANGE (its
//!   decoder's choice); the guide's code for "message too large" on the
//!   receiving side is RESOURCE_EXHAUSTED.
//! - a request body that is not the method's protobuf message: tonic-prost
//!   answers INTERNAL, which reads as hotfixd's fault; it is the client's
//!   (INVALID_ARGUMENT).
//!
//! Both are refused before any handler runs, so the status is in the
//! response's headers (a trailers-only response); only those are rewritten.

use tonic::{Code, Status};

/// The message tonic's decoder gives an oversized request.
const TOO_LARGE: &str = "decoded message length too large";
/// The prefix of `prost::DecodeError`'s text.
const UNDECODABLE: &str = "failed to decode Protobuf message";

/// The status a client should see for `status`, if it is one of the two.
pub fn corrected(status: &Status) -> Option<Status> {
    let m = status.message();
    match status.code() {
        Code::OutOfRange if m.contains(TOO_LARGE) => Some(Status::resource_exhausted(format!(
            "request too large: {}",
            m.trim_start_matches("Error, ")
        ))),
        Code::Internal if m.starts_with(UNDECODABLE) => Some(Status::invalid_argument(format!(
            "the request is not a valid message for this method: {m}"
        ))),
        _ => None,
    }
}

/// Rewrites a trailers-only response carrying one of the two statuses.
pub fn correct_response<B>(mut response: http::Response<B>) -> http::Response<B> {
    if let Some(fixed) = Status::from_header_map(response.headers()).and_then(|s| corrected(&s)) {
        let headers = response.headers_mut();
        headers.remove("grpc-message");
        headers.remove("grpc-status-details-bin");
        if fixed.add_header(headers).is_err() {
            tracing::debug!("could not rewrite a client-error status");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_client_faults_are_corrected() {
        let big = Status::out_of_range(
            "Error, decoded message length too large: found 2000000 bytes, the limit is: 1048576 bytes",
        );
        let fixed = corrected(&big).unwrap();
        assert_eq!(fixed.code(), Code::ResourceExhausted);
        assert!(
            fixed.message().contains("2000000 bytes"),
            "{}",
            fixed.message()
        );
        let junk = Status::internal("failed to decode Protobuf message: invalid wire type");
        assert_eq!(corrected(&junk).unwrap().code(), Code::InvalidArgument);
        // hotfixd's own answers are left alone.
        assert!(corrected(&Status::out_of_range("from_seq 9 is beyond the end")).is_none());
        assert!(corrected(&Status::internal("a stored record could not be read")).is_none());
    }
}
