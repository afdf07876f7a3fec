//! Generates the protobuf and tonic code with the vendored `protoc`, so no
//! system protobuf compiler is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Build scripts are single threaded; tonic-prost-build reads PROTOC.
    std::env::set_var("PROTOC", protoc);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let files = ["floodgate/v1/floodgate.proto"].map(|f| root.join(f));
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("descriptor.bin"))
        .compile_protos(&files, std::slice::from_ref(&root))?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
