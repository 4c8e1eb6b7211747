//! Compiles `proto/rustci/v1/*.proto` with protox (a protobuf compiler in Rust, so no
//! `protoc` is needed) and generates tonic services and prost messages. The encoded
//! descriptor set is kept for gRPC server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "rustci/v1/jobs.proto",
        "rustci/v1/runners.proto",
        "rustci/v1/fleet.proto",
        "rustci/v1/pipelines.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed=proto/{p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("rustci_v1_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
