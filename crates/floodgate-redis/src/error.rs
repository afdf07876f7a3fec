//! Why the Redis store could not be set up, and how a failed call maps onto
//! [`StoreError`].

use floodgate_store::StoreError;
use fred::error::{Error as FredError, ErrorKind};

/// Why [`RedisStore::connect`](crate::RedisStore::connect) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; fix it, retrying will not help.
    #[error("invalid Redis configuration: {0}")]
    Config(String),
    /// TLS could not be set up (CA file, roots) or the handshake failed.
    #[error("Redis TLS error: {0}")]
    Tls(String),
    /// Redis refused the credentials, or the ACL user lacks a permission the
    /// store needs (`EVALSHA`, `SCRIPT LOAD`, the key prefix).
    #[error("Redis at {target} refused the credentials: {reason} (check the user and password in the URL and the user's ACL rules)")]
    Auth {
        /// The servers, without passwords.
        target: String,
        /// What Redis said.
        reason: String,
    },
    /// The server is older than the scripts need (Redis 6.0, for `SET …
    /// KEEPTTL`).
    #[error("Redis at {target} is version {version}: floodgate needs Redis {}.{} or newer", MIN_REDIS_VERSION.0, MIN_REDIS_VERSION.1)]
    Unsupported {
        /// The servers, without passwords.
        target: String,
        /// The version it reported (`redis_version` of `INFO server`).
        version: String,
    },
    /// Redis could not be reached or did not answer in time; retrying later
    /// may succeed.
    #[error("cannot reach Redis at {target}: {reason}")]
    Unreachable {
        /// The servers, without passwords.
        target: String,
        /// What went wrong.
        reason: String,
    },
}

/// The oldest Redis the scripts run on (major, minor).
pub(crate) const MIN_REDIS_VERSION: (u32, u32) = (6, 0);

impl Error {
    /// Whether trying again later may succeed (Redis down or still
    /// starting), as opposed to a configuration or credentials problem.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }

    /// Classifies a client error met while connecting to `target`.
    pub(crate) fn connecting(target: String, e: &FredError) -> Error {
        let reason = e.details().to_string();
        let denied = reason.starts_with("NOPERM") || reason.starts_with("WRONGPASS");
        match e.kind() {
            ErrorKind::Auth => Error::Auth { target, reason },
            _ if denied => Error::Auth { target, reason },
            ErrorKind::Tls => Error::Tls(format!("{target}: {reason}")),
            ErrorKind::Config | ErrorKind::Url | ErrorKind::InvalidArgument => {
                Error::Config(format!("{target}: {reason}"))
            }
            _ => Error::Unreachable { target, reason },
        }
    }
}

/// Maps a failed Redis call onto the store's error: a timeout is
/// [`StoreError::Timeout`], anything about the connection or the cluster's
/// state is [`StoreError::Unavailable`], an unexpected answer is
/// [`StoreError::Protocol`].
pub(crate) fn store_error(e: &FredError) -> StoreError {
    let details = e.details();
    match e.kind() {
        ErrorKind::Timeout => StoreError::Timeout,
        ErrorKind::IO
        | ErrorKind::Canceled
        | ErrorKind::Cluster
        | ErrorKind::Routing
        | ErrorKind::Sentinel
        | ErrorKind::Backpressure
        | ErrorKind::Auth
        | ErrorKind::Tls => StoreError::Unavailable(details.to_string()),
        _ => reply_error(details),
    }
}

/// The error for a reply Redis gave to one command of a script: unavailable
/// for replies that mean "not now" (see below), else a protocol error.
pub(crate) fn reply_error(details: &str) -> StoreError {
    if is_unavailable_reply(details) {
        StoreError::Unavailable(details.to_string())
    } else {
        StoreError::Protocol(details.to_string())
    }
}

/// Server replies that mean "not now" rather than "bad request".
fn is_unavailable_reply(details: &str) -> bool {
    [
        "LOADING",
        "BUSY",
        "MASTERDOWN",
        "READONLY",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "NOPERM",
        "OOM",
    ]
    .iter()
    .any(|prefix| details.starts_with(prefix))
}

/// Whether the server no longer has the script (flushed or restarted).
pub(crate) fn is_noscript(e: &FredError) -> bool {
    e.details().starts_with("NOSCRIPT")
}
