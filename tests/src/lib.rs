//! Test harness for black-box tests: starts the real `floodgate` binary on
//! free loopback ports (port 0, read back from its startup log), talks to it
//! over real HTTP and gRPC, and stops it when dropped.
//!
//! The binary must be built first (`cargo test --workspace` does it;
//! `scripts/test` does it). By role: [`harness`] (the binary, its CLI, time
//! bounds), [`http_client`], [`grpc_raw`], [`raw_http`] (hostile-client
//! helpers), [`upstream`] (upstreams for the proxy) and [`redis_servers`].

pub mod grpc_raw;
pub mod harness;
pub mod http_client;
pub mod raw_http;
pub mod redis_servers;
pub mod upstream;

pub use grpc_raw::RawCodec;
pub use harness::{binary, repo_root, run_bounded, run_cli, Floodgate, FREE_PORTS};
pub use http_client::{http_request, HttpResponse};
pub use redis_servers::{free_port, wait_until, Cluster, RedisServer, SlotMigration, TestCa};
pub use upstream::TextUpstream;
