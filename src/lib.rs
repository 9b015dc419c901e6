//! The `hotfix.v1` wire contract shared by `hotfixd`, `hotfixctl` and the
//! end-to-end tests: the generated messages and services (`pb`), the encoded
//! descriptor set for server reflection, and small conversions that both
//! sides need (names of enum values as the CLI and JSON output spell them).
#![forbid(unsafe_code)]

/// Generated code for package `hotfix.v1`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("hotfix.v1");
}

/// The encoded `FileDescriptorSet` of `proto/`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hotfix_descriptor.bin"));

pub mod audit;
mod encoded;
pub mod json;
pub mod kinds;
mod names;
pub use encoded::{Encoded, SmallBufferCodec};
pub use names::*;

/// The `EventService` server with `Watch` answering pre-encoded messages
/// ([`Encoded`]): the server encodes each event once for all its watchers.
/// Same service name, route and wire format as `pb::event_service_server`
/// (which is generated too, but not served).
pub mod events_server {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/hotfix.v1.EventService.rs"));
}
