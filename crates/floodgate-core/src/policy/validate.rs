//! The checks of [`super::Policy::new`], one per setting. Each records what
//! is wrong in `errors` and returns a stand-in value, so every problem of a
//! spec is reported at once; the order of the checks is the order of the
//! errors.

use super::{
    block, calendar, error, is_valid_name, key_entry, replace, waiting, AlgorithmKind, Block,
    Calendar, KeyEntry, PolicyError, PolicySpec, Waiting, DEFAULT_LEASE_TIMEOUT_US, MAX_LIMIT,
    MAX_NAME_LEN, MAX_WINDOW_US, MIN_WINDOW_US,
};
use crate::algorithm::MAX_LOG_LIMIT;

/// Largest `limit × window_ms` of a `sliding_window` policy: keeps its
/// weighted estimate exact in f64 (and in Lua).
const MAX_EXACT: u128 = 1 << 53;
/// Longest time a token bucket takes to refill: 3660 days, far below what
/// µs timestamps can add without overflow (in u64 and in Lua doubles).
const MAX_BUCKET_US: u64 = 10 * MAX_WINDOW_US;

/// The settings of a spec as checked, ready to build the policy from.
pub(super) struct Checked {
    /// Window in µs; for `concurrency`, the lease timeout.
    pub window_us: u64,
    /// `token_bucket` bucket size; `limit` otherwise.
    pub burst: u64,
    /// Denial status and waiting bounds.
    pub waiting: Waiting,
    /// Lockout settings.
    pub block: Block,
    /// The key entries, parsed.
    pub entries: Vec<KeyEntry>,
    /// The policies it replaces.
    pub replaces: Vec<String>,
    /// Calendar periods of a `fixed_window`, if any.
    pub calendar: Option<Calendar>,
}

/// Checks every setting of `spec`, in a fixed order, recording each
/// problem in `errors`. The result is meaningful only when none was found.
pub(super) fn check(spec: &PolicySpec, errors: &mut Vec<PolicyError>) -> Checked {
    let kind = spec.algorithm;
    name(&spec.name, errors);
    let calendar = calendar::validate(
        kind,
        spec.calendar.as_deref(),
        spec.timezone.as_deref(),
        spec.window_us.is_some(),
        spec.settle,
        errors,
    );
    limit(kind, spec.limit, errors);
    let window_us = window(spec, calendar.as_ref(), errors);
    limit_for_window(kind, spec.limit, window_us, errors);
    let burst = burst(spec, window_us, errors);
    let lease_timeout_us = lease_timeout(kind, spec.lease_timeout_us, errors);
    let waiting = waiting::validate(spec.deny_status, spec.max_wait_us, spec.max_waiting, errors);
    let block = block::validate(
        kind,
        spec.block_for_us,
        spec.block_escalation,
        spec.block_max_us,
        spec.max_wait_us,
        errors,
    );
    let entries = key_entry::parse_all(&spec.key, errors);
    matches(&spec.matches, errors);
    not_global(spec, errors);
    settle(kind, spec.settle, errors);
    domain(spec.domain.as_deref(), errors);
    let replaces = replace::replaces_of(spec, errors);
    Checked {
        window_us: if kind == AlgorithmKind::Concurrency {
            lease_timeout_us
        } else {
            window_us
        },
        burst,
        waiting,
        block,
        entries,
        replaces,
        calendar,
    }
}

/// `name`: 1 to 64 bytes of `[A-Za-z0-9_.-]`.
fn name(name: &str, errors: &mut Vec<PolicyError>) {
    if !is_valid_name(name) {
        errors.push(error(
            "name",
            format!(
                "policy name {name:?} must be 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, '_', '-', '.'"
            ),
        ));
    }
}

/// `limit`: 1 to [`MAX_LIMIT`], at most [`MAX_LOG_LIMIT`] for `sliding_log`.
fn limit(kind: AlgorithmKind, limit: u64, errors: &mut Vec<PolicyError>) {
    if limit == 0 {
        errors.push(error("limit", "limit must be at least 1"));
    } else if limit > MAX_LIMIT {
        errors.push(error("limit", format!("limit must be at most {MAX_LIMIT}")));
    } else if kind == AlgorithmKind::SlidingLog && limit > MAX_LOG_LIMIT {
        errors.push(error(
            "limit",
            format!(
                "sliding_log keeps one entry per hit, so its limit must be at most {}; use sliding_window for larger limits",
                MAX_LOG_LIMIT
            ),
        ));
    }
}

/// `window`: whole milliseconds from 1 ms to 366 days, required except for
/// `concurrency` (which has none) and calendar policies (whose period
/// gives it). 0 when missing or wrong.
fn window(spec: &PolicySpec, calendar: Option<&Calendar>, errors: &mut Vec<PolicyError>) -> u64 {
    match (spec.algorithm, spec.window_us) {
        // Errors of a calendar policy are reported by `calendar::validate`.
        _ if spec.calendar.is_some() => calendar.map_or(0, |c| c.period().nominal_us()),
        (AlgorithmKind::Concurrency, Some(_)) => {
            errors.push(error(
                "window",
                "concurrency policies have no window; use lease_timeout",
            ));
            0
        }
        (AlgorithmKind::Concurrency, None) => 0,
        (_, None) => {
            errors.push(error("window", "window is required (for example \"1m\")"));
            0
        }
        (_, Some(w)) if !(MIN_WINDOW_US..=MAX_WINDOW_US).contains(&w) => {
            errors.push(error("window", "window must be between 1ms and 366d"));
            0
        }
        (_, Some(w)) if w % 1_000 != 0 => {
            errors.push(error(
                "window",
                "window must be a whole number of milliseconds",
            ));
            0
        }
        (_, Some(w)) => w,
    }
}

/// `limit` against the window: a `sliding_window` stays exact in f64, a
/// `token_bucket` adds at most one token per µs.
fn limit_for_window(
    kind: AlgorithmKind,
    limit: u64,
    window_us: u64,
    errors: &mut Vec<PolicyError>,
) {
    if kind == AlgorithmKind::SlidingWindow
        && window_us > 0
        && u128::from(limit) * u128::from(window_us / 1_000) > MAX_EXACT
    {
        errors.push(error(
            "limit",
            format!(
                "sliding_window needs limit × window in ms ≤ 2^53 to stay exact; at most {} for this window (use a shorter window or fixed_window)",
                MAX_EXACT / u128::from(window_us / 1_000)
            ),
        ));
    }
    if kind == AlgorithmKind::TokenBucket && window_us > 0 && limit > window_us {
        errors.push(error(
            "limit",
            "token_bucket limit must not exceed the window in microseconds (one token per µs at most)",
        ));
    }
}

/// `burst`: `token_bucket` only, 1 to [`MAX_LIMIT`], refilling within
/// [`MAX_BUCKET_US`]; `limit` when not given.
fn burst(spec: &PolicySpec, window_us: u64, errors: &mut Vec<PolicyError>) -> u64 {
    match (spec.algorithm, spec.burst) {
        (AlgorithmKind::TokenBucket, Some(0)) => {
            errors.push(error("burst", "burst must be at least 1"));
            1
        }
        (AlgorithmKind::TokenBucket, Some(b)) if b > MAX_LIMIT => {
            errors.push(error("burst", format!("burst must be at most {MAX_LIMIT}")));
            1
        }
        (AlgorithmKind::TokenBucket, Some(b))
            if window_us > 0
                && spec.limit > 0
                && u128::from(b) * u128::from(window_us.div_ceil(spec.limit))
                    > u128::from(MAX_BUCKET_US) =>
        {
            errors.push(error(
                "burst",
                "burst × window / limit (the time a full bucket takes to refill) must be at most 3660d",
            ));
            1
        }
        (AlgorithmKind::TokenBucket, Some(b)) => b,
        (_, Some(_)) => {
            errors.push(error(
                "burst",
                "burst applies only to token_bucket policies",
            ));
            1
        }
        (_, None) => spec.limit,
    }
}

/// `lease_timeout`: `concurrency` only, 1 ms to 366 days, 60 s when not
/// given; 0 for the other algorithms.
fn lease_timeout(
    kind: AlgorithmKind,
    lease_timeout_us: Option<u64>,
    errors: &mut Vec<PolicyError>,
) -> u64 {
    match (kind, lease_timeout_us) {
        (AlgorithmKind::Concurrency, Some(t)) if !(MIN_WINDOW_US..=MAX_WINDOW_US).contains(&t) => {
            errors.push(error(
                "lease_timeout",
                "lease_timeout must be between 1ms and 366d",
            ));
            DEFAULT_LEASE_TIMEOUT_US
        }
        (AlgorithmKind::Concurrency, t) => t.unwrap_or(DEFAULT_LEASE_TIMEOUT_US),
        (_, Some(_)) => {
            errors.push(error(
                "lease_timeout",
                "lease_timeout applies only to concurrency policies",
            ));
            0
        }
        (_, None) => 0,
    }
}

/// `match`: valid attribute names, each with at least one value.
fn matches(matches: &[(String, Vec<String>)], errors: &mut Vec<PolicyError>) {
    for (name, values) in matches {
        if !is_valid_name(name) {
            errors.push(error(
                "match",
                format!("match attribute {name:?} must be 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, '_', '-', '.'"),
            ));
        }
        if values.is_empty() {
            errors.push(error("match", format!("match on {name:?} lists no value")));
        }
    }
}

/// A policy needs a `key` or a `match`: without both it would be one
/// counter shared by every request.
fn not_global(spec: &PolicySpec, errors: &mut Vec<PolicyError>) {
    if spec.key.is_empty() && spec.matches.is_empty() {
        errors.push(error(
            "key",
            "a policy with no `key` and no `match` is one global counter for every request; add a `match` or a `key`",
        ));
    }
}

/// `settle`: not for `sliding_log` or `concurrency`.
fn settle(kind: AlgorithmKind, settle: bool, errors: &mut Vec<PolicyError>) {
    if settle && matches!(kind, AlgorithmKind::SlidingLog | AlgorithmKind::Concurrency) {
        errors.push(error(
            "settle",
            format!(
                "settle applies only to sliding_window, fixed_window and token_bucket policies, not {}",
                kind.as_str()
            ),
        ));
    }
}

/// `domain`: non-empty, no control characters.
fn domain(domain: Option<&str>, errors: &mut Vec<PolicyError>) {
    if let Some(domain) = domain {
        if domain.is_empty() || domain.chars().any(char::is_control) {
            errors.push(error("domain", "domain must be a non-empty string"));
        }
    }
}
