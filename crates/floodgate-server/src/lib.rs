//! The floodgate sidecar as a library: the HTTP, gRPC and proxy servers,
//! reload and shutdown. The `floodgate` binary (`main.rs`) only parses flags
//! and wires these together; the fuzz targets call the request parsers here.
//! Never depended on by the other workspace crates.

#![forbid(unsafe_code)]

pub mod accept;
pub mod admin;
pub mod app;
pub mod cli_output;
pub mod deny;
pub mod errors;
pub mod explain;
pub mod grpc;
pub mod http;
pub mod identity;
pub mod proxy;
pub mod reload;
pub mod render;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
pub mod traces;
pub mod waiting;
