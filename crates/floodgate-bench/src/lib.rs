//! floodgate-bench owns the load generator and accuracy tool: it drives a
//! running floodgate over floodgate.v1 gRPC, Envoy RLS v3 or HTTP, on
//! loopback only, and reports throughput, latency and per-key admissions.
//! `floodgate-bench noop` is the baseline it is compared with: a server
//! answering the same protocols with a constant allow.
//! It depends on the sidecar only through its wire protocols
//! (floodgate-proto), never on the server, store or core crates.

// One `unsafe` block, documented where it is: registering the pacer's timer
// fd with tokio (src/pacer.rs).
#![deny(unsafe_code)]

pub mod cli;
pub mod config;
pub mod error;
pub mod keys;
pub mod noop;
mod pacer;
pub mod protocol;
pub mod report;
pub mod runner;
pub mod stats;
pub mod target;

pub use cli::{Args, Command};
pub use config::{Config, Load};
pub use error::BenchError;
pub use report::Report;
pub use runner::run;
