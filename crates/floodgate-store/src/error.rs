//! The errors of this crate. A denial is a `Verdict`, never an error: an
//! error means "could not decide".

use floodgate_core::{AttributeError, LeaseError, SettlementError};

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
    /// The failure of a call this check shared with others (a batch), or of
    /// a check queued behind calls that failed: the breaker counts such a
    /// call once, through the one check that gets its error itself, so this
    /// one does not count again. Otherwise it is the error it wraps.
    #[error("{0}")]
    Uncounted(Box<StoreError>),
}

impl StoreError {
    /// Whether trying again later may succeed (the failover store counts
    /// these towards tripping to fallback).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Timeout | StoreError::Unavailable(_) => true,
            StoreError::Protocol(_) => false,
            StoreError::Uncounted(error) => error.is_transient(),
        }
    }

    /// Whether the failover breaker counts it: transient, and not
    /// [`StoreError::Uncounted`] (a call counts once, however many checks
    /// shared it).
    pub fn counts_for_breaker(&self) -> bool {
        !matches!(self, StoreError::Uncounted(_)) && self.is_transient()
    }

    /// Whether the store may have run the call (and charged it) although it
    /// failed: a timeout, where the call may still run or have run after its
    /// caller stopped waiting. The failover store then answers from its
    /// fallback without charging there, so one check is never counted twice.
    pub fn may_have_run(&self) -> bool {
        match self {
            StoreError::Timeout => true,
            StoreError::Unavailable(_) | StoreError::Protocol(_) => false,
            StoreError::Uncounted(error) => error.may_have_run(),
        }
    }

    /// `self`, marked [`StoreError::Uncounted`] (once).
    pub fn uncounted(self) -> StoreError {
        match self {
            StoreError::Uncounted(_) => self,
            other => StoreError::Uncounted(Box::new(other)),
        }
    }

    /// A short, fixed label for metrics (`floodgate_store_errors_total{kind}`).
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Timeout => "timeout",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Protocol(_) => "protocol",
            StoreError::Uncounted(error) => error.kind(),
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
    /// A settlement id is malformed, forged, spent or lapsed; nothing was
    /// changed.
    #[error(transparent)]
    Settlement(#[from] SettlementError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LimitError {
    /// Whether the caller is at fault (400 / INVALID_ARGUMENT) rather than
    /// the service (503 / UNAVAILABLE).
    pub fn is_invalid_input(&self) -> bool {
        match self {
            LimitError::InvalidAttributes(_) | LimitError::InvalidLease(_) => true,
            LimitError::Settlement(error) => !error.is_conflict(),
            LimitError::Store(_) => false,
        }
    }

    /// Whether the request was well formed but conflicts with the state
    /// (a settlement id already settled or lapsed): 409 /
    /// FAILED_PRECONDITION.
    pub fn is_conflict(&self) -> bool {
        matches!(self, LimitError::Settlement(error) if error.is_conflict())
    }
}
