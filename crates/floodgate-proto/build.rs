//! Generates the protobuf and tonic code with the vendored `protoc`, so no
//! system protobuf compiler is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Build scripts are single threaded; tonic-prost-build reads PROTOC.
    std::env::set_var("PROTOC", protoc);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let files = [
        "floodgate/v1/floodgate.proto",
        "envoy/service/ratelimit/v3/rls.proto",
        "envoy/service/auth/v3/external_auth.proto",
    ]
    .map(|f| root.join(f));
    let well_known = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure()
        // Decode errors become INVALID_ARGUMENT (src/codec.rs).
        .codec_path("crate::codec::InvalidArgumentCodec")
        // The same map type as floodgate_core::Attributes.
        .btree_map(".floodgate.v1.CheckRequest.attributes")
        .file_descriptor_set_path(out.join("descriptor.bin"))
        .compile_protos(&files, &[root.clone(), well_known.clone()])?;
    // OTLP traces: floodgate is their client; the server side serves the
    // tests' collector. Kept out of the descriptor set, so reflection does
    // not list a service floodgate does not serve.
    tonic_prost_build::configure().compile_protos(
        &[root.join("opentelemetry/proto/collector/trace/v1/trace_service.proto")],
        &[root.clone(), well_known],
    )?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
