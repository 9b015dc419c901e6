//! Compiles etcd's v3 API protos (`proto/etcd/`, see its README) with
//! protox (pure Rust: no system `protoc`) into tonic client stubs for the
//! etcd store engine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/etcd/auth.proto",
        "proto/etcd/kv.proto",
        "proto/etcd/rpc.proto",
        "proto/etcd/v3election.proto",
        "proto/etcd/v3lock.proto",
    ];
    println!("cargo:rerun-if-changed=proto/etcd");
    let fds = protox::compile(protos, ["proto/etcd"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
