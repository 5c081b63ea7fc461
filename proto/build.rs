//! Generates the gRPC code from `empo2/*.proto` with a vendored `protoc` (no system install).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "empo2/memory.proto",
        "empo2/env.proto",
        "empo2/learner.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Weight chunks are slices of one shared buffer, sent without copying.
    config.bytes([".empo2.learner.v1.WeightsChunk.data"]);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("empo2_descriptor.bin"))
        .codec_path("crate::codec::StrictCodec")
        .compile_with_config(config, &protos, &["."])?;
    Ok(())
}
