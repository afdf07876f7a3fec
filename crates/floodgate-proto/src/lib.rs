//! floodgate-proto owns the generated protobuf and gRPC code: floodgate.v1
//! and the Envoy data-plane subsets. Only the server translates between
//! these types and the domain; no library crate may depend on this one.

/// `floodgate.v1`: the rate limiter's own API.
pub mod floodgate {
    /// Version 1.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("floodgate.v1");
    }
}

/// Every compiled file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptor");
