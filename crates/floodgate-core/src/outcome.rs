//! What one policy decides for one check.

/// The decision of one algorithm for one counter. A denial is an `Outcome`
/// with `allowed == false`, never an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the check fits in the quota.
    pub allowed: bool,
    /// The quota (for `token_bucket`, the bucket size `burst`).
    pub limit: u64,
    /// Quota left after this check.
    pub remaining: u64,
    /// Microseconds until the counter resets: the end of the current
    /// window (`fixed_window`, `sliding_window`), until the newest entry
    /// lapses (`sliding_log`), until the bucket is full (`token_bucket`), or
    /// until the first lease lapses (`concurrency`).
    pub reset_after_us: u64,
    /// Microseconds until the same check could be allowed; 0 when allowed.
    pub retry_after_us: u64,
    /// Present when the check was allowed and charged (`hits > 0`): what is
    /// needed to refund the charge or release the lease.
    pub receipt: Option<Receipt>,
}

/// Proof of a charge, enough to undo it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt {
    /// The time the charge was made at (epoch µs): names the window or log
    /// entries that hold it.
    pub at_us: u64,
    /// The nonce of the charge: the lease id for `concurrency`; for
    /// `token_bucket`, the TAT right after the charge; the member suffix of
    /// the log entries for `sliding_log` in Redis; 0 otherwise.
    pub id: u64,
}
