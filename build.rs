//! Compiles `proto/hotfix/v1/*.proto` with protox (pure Rust: no system
//! `protoc`) and generates the tonic client and server code. The encoded
//! descriptor set is kept for gRPC server reflection.
use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/hotfix/v1/hotfix.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("hotfix_descriptor.bin"), fds.encode_to_vec())?;
    // Type names (`prost::Name`), so that the proto3 JSON of a message
    // (src/json.rs) finds its descriptor by the message's own type.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds_with_config(fds, config)?;
    // EventService again, for the server only, with `Watch` answering
    // `Encoded<WatchResponse>` (see src/encoded.rs): hotfix.v1.EventService.rs.
    let watch = tonic_build::manual::Method::builder()
        .name("watch")
        .route_name("Watch")
        .input_type("crate::pb::WatchRequest")
        .output_type("crate::Encoded<crate::pb::WatchResponse>")
        .codec_path("crate::SmallBufferCodec")
        .server_streaming()
        .build();
    let events = tonic_build::manual::Service::builder()
        .name("EventService")
        .package("hotfix.v1")
        .method(watch)
        .build();
    tonic_build::manual::Builder::new()
        .build_client(false)
        .compile(&[events]);
    Ok(())
}
