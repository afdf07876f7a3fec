//! floodgate-proto owns the generated protobuf and gRPC code: floodgate.v1
//! and the minimal wire-compatible subsets of Envoy's data-plane API (rate
//! limit service v3, ext_authz v3), and of OpenTelemetry's OTLP traces. Only the server translates between these
//! types and the domain; no library crate may depend on this one.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

pub mod codec;

/// `floodgate.v1`: the rate limiter's own API.
pub mod floodgate {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("floodgate.v1");
    }
}

/// A subset of OpenTelemetry's OTLP trace protocol (opentelemetry-proto),
/// same packages and field numbers as upstream.
pub mod opentelemetry {
    /// `opentelemetry.proto.*`
    pub mod proto {
        /// `opentelemetry.proto.common.v1`
        pub mod common {
            /// Version 1.
            pub mod v1 {
                tonic::include_proto!("opentelemetry.proto.common.v1");
            }
        }
        /// `opentelemetry.proto.resource.v1`
        pub mod resource {
            /// Version 1.
            pub mod v1 {
                tonic::include_proto!("opentelemetry.proto.resource.v1");
            }
        }
        /// `opentelemetry.proto.trace.v1`
        pub mod trace {
            /// Version 1.
            pub mod v1 {
                tonic::include_proto!("opentelemetry.proto.trace.v1");
            }
        }
        /// `opentelemetry.proto.collector.trace.v1`: the OTLP trace service.
        pub mod collector {
            /// `opentelemetry.proto.collector.trace`
            pub mod trace {
                /// Version 1.
                pub mod v1 {
                    tonic::include_proto!("opentelemetry.proto.collector.trace.v1");
                }
            }
        }
    }
}

/// Subsets of Envoy's API, same packages and field numbers as upstream.
pub mod envoy {
    /// `envoy.config.*`
    pub mod config {
        /// `envoy.config.core`
        pub mod core {
            /// `envoy.config.core.v3`
            pub mod v3 {
                tonic::include_proto!("envoy.config.core.v3");
            }
        }
    }
    /// `envoy.extensions.*`
    pub mod extensions {
        /// `envoy.extensions.common`
        pub mod common {
            /// `envoy.extensions.common.ratelimit`
            pub mod ratelimit {
                /// `envoy.extensions.common.ratelimit.v3`
                pub mod v3 {
                    tonic::include_proto!("envoy.extensions.common.ratelimit.v3");
                }
            }
        }
    }
    /// `envoy.service.*`
    pub mod service {
        /// `envoy.service.ratelimit`
        pub mod ratelimit {
            /// `envoy.service.ratelimit.v3`: the rate limit service.
            pub mod v3 {
                tonic::include_proto!("envoy.service.ratelimit.v3");
            }
        }
        /// `envoy.service.auth`
        pub mod auth {
            /// `envoy.service.auth.v3`: ext_authz.
            pub mod v3 {
                tonic::include_proto!("envoy.service.auth.v3");
            }
        }
    }
    /// `envoy.type.*`
    pub mod r#type {
        /// `envoy.type.v3`
        pub mod v3 {
            tonic::include_proto!("envoy.r#type.v3");
        }
    }
}

/// `google.rpc` (Status only).
pub mod google {
    /// `google.rpc`
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// Every compiled file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptor");
