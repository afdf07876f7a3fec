//! The errors of this crate. A denial is a `Verdict`, never an error: an
//! error means "could not decide".

use floodgate_core::{AttributeError, LeaseError};

/// A store could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The call took longer than its timeout.
    #[error("store call timed out")]
    Timeout,
    /// The store cannot be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered something unexpected.
    #[error("store protocol error: {0}")]
    Protocol(String),
}

impl StoreError {
    /// Whether trying again later may succeed (the failover store counts
    /// these towards tripping to fallback).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Timeout | StoreError::Unavailable(_))
    }

    /// A short, fixed label for metrics (`floodgate_store_errors_total{kind}`).
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Timeout => "timeout",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Protocol(_) => "protocol",
        }
    }
}

/// Why the limiter could not decide.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    /// The request itself is malformed; nothing was counted.
    #[error(transparent)]
    InvalidAttributes(#[from] AttributeError),
    /// A lease token is malformed; nothing was released.
    #[error(transparent)]
    InvalidLease(#[from] LeaseError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LimitError {
    /// Whether the caller is at fault (400 / INVALID_ARGUMENT) rather than
    /// the service (503 / UNAVAILABLE).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            LimitError::InvalidAttributes(_) | LimitError::InvalidLease(_)
        )
    }
}
