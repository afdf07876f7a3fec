//! The one error type of the bench library: everything that stops a run
//! before or instead of producing a report. Failed checks during a run are
//! not errors here; they are counted in the report.

use std::net::SocketAddr;

/// Why a run could not start (or could not go on).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag's value is invalid or flags contradict each other.
    #[error("invalid arguments: {0}")]
    Usage(String),
    /// A `--target` is not of the form `host:port` or `http://host:port`.
    #[error("invalid target {target:?}: {reason}")]
    BadTarget {
        /// The target as given.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--target` host could not be resolved.
    #[error("cannot resolve target {target:?}: {source}")]
    Resolve {
        /// The target as given.
        target: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// A `--target` resolves to an address outside 127.0.0.0/8 and ::1.
    #[error(
        "refusing target {target:?}: it resolves to {addrs:?}; floodgate-bench only sends \
         load to loopback addresses (127.0.0.0/8 or ::1)"
    )]
    NotLoopback {
        /// The target as given.
        target: String,
        /// Every address it resolved to.
        addrs: Vec<SocketAddr>,
    },
    /// The first connection to a target failed, so the run did not start.
    #[error("cannot connect to {addr} ({protocol}): {message}")]
    Connect {
        /// The resolved target address.
        addr: SocketAddr,
        /// The protocol spoken.
        protocol: &'static str,
        /// The underlying error.
        message: String,
    },
    /// A worker task panicked or was cancelled.
    #[error("a load worker failed: {0}")]
    Worker(String),
}
