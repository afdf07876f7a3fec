//! What a policy does with a check it would deny: the HTTP status of the
//! denial (`deny_status`), and whether the check may wait for its turn
//! instead (`max_wait`, bounded by `max_waiting` per key).

use super::{error, PolicyError};

/// The denial status when none is given: 429 Too Many Requests.
pub const DEFAULT_DENY_STATUS: u16 = 429;
/// Longest `max_wait`: 10 minutes. A wait is a held request; longer ones
/// belong in a job queue.
pub const MAX_WAIT_US: u64 = 600 * 1_000_000;
/// Checks that may wait on one counter at once when `max_waiting` is not
/// given (and `max_wait` is).
pub const DEFAULT_MAX_WAITING: u32 = 100;
/// Largest `max_waiting`.
pub const MAX_MAX_WAITING: u64 = 100_000;

/// A policy's denial status and waiting bounds, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// The HTTP status a denial by this policy is answered with (400–599).
    pub deny_status: u16,
    /// How long a check denied by this policy may wait for its turn, in µs;
    /// 0 = never waits.
    pub max_wait_us: u64,
    /// How many checks may wait on one counter of this policy at once;
    /// past it a check is denied at once. 0 when `max_wait_us` is 0.
    pub max_waiting: u32,
}

impl Default for Waiting {
    fn default() -> Self {
        Waiting {
            deny_status: DEFAULT_DENY_STATUS,
            max_wait_us: 0,
            max_waiting: 0,
        }
    }
}

/// Validates the waiting settings of a policy spec, pushing each problem
/// onto `errors` (naming `deny_status`, `max_wait` or `max_waiting`).
pub(super) fn validate(
    deny_status: Option<u64>,
    max_wait_us: Option<u64>,
    max_waiting: Option<u64>,
    errors: &mut Vec<PolicyError>,
) -> Waiting {
    let mut waiting = Waiting::default();
    match deny_status {
        Some(s) if (400..=599).contains(&s) => waiting.deny_status = s as u16,
        Some(s) => errors.push(error(
            "deny_status",
            format!("deny_status must be an HTTP error status from 400 to 599 (like 429 or 503), not {s}"),
        )),
        None => {}
    }
    match max_wait_us {
        Some(w) if w > MAX_WAIT_US => {
            errors.push(error("max_wait", "max_wait must be at most 10m"));
        }
        Some(w) if w % 1_000 != 0 => errors.push(error(
            "max_wait",
            "max_wait must be a whole number of milliseconds",
        )),
        Some(w) => waiting.max_wait_us = w,
        None => {}
    }
    match max_waiting {
        Some(_) if waiting.max_wait_us == 0 && !errors.iter().any(|e| e.field == "max_wait") => {
            errors.push(error(
                "max_waiting",
                "max_waiting applies only with a max_wait above 0 (like max_wait = \"2s\")",
            ));
        }
        Some(n) if n == 0 || n > MAX_MAX_WAITING => errors.push(error(
            "max_waiting",
            format!("max_waiting must be between 1 and {MAX_MAX_WAITING}"),
        )),
        Some(n) => waiting.max_waiting = n as u32,
        None if waiting.max_wait_us > 0 => waiting.max_waiting = DEFAULT_MAX_WAITING,
        None => {}
    }
    waiting
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        status: Option<u64>,
        wait: Option<u64>,
        waiting: Option<u64>,
    ) -> (Waiting, Vec<&'static str>) {
        let mut errors = Vec::new();
        let w = validate(status, wait, waiting, &mut errors);
        (w, errors.iter().map(|e| e.field).collect())
    }

    #[test]
    fn defaults_deny_with_429_and_never_wait() {
        assert_eq!(run(None, None, None), (Waiting::default(), vec![]));
        assert_eq!(Waiting::default().deny_status, 429);
    }

    #[test]
    fn deny_status_must_be_an_error_status() {
        assert_eq!(run(Some(503), None, None).0.deny_status, 503);
        assert_eq!(run(Some(400), None, None).0.deny_status, 400);
        assert_eq!(run(Some(599), None, None).0.deny_status, 599);
        for bad in [0, 200, 302, 399, 600, 70_000, u64::MAX] {
            assert_eq!(run(Some(bad), None, None).1, ["deny_status"], "{bad}");
        }
    }

    #[test]
    fn max_wait_gets_a_default_queue_bound() {
        let (w, e) = run(None, Some(2_000_000), None);
        assert!(e.is_empty());
        assert_eq!((w.max_wait_us, w.max_waiting), (2_000_000, 100));
        let (w, _) = run(None, Some(2_000_000), Some(7));
        assert_eq!(w.max_waiting, 7);
    }

    #[test]
    fn bad_waits_and_bounds_are_refused() {
        assert_eq!(run(None, Some(MAX_WAIT_US + 1_000), None).1, ["max_wait"]);
        assert_eq!(run(None, Some(1_500), None).1, ["max_wait"]);
        assert_eq!(run(None, None, Some(5)).1, ["max_waiting"]);
        assert_eq!(run(None, Some(0), Some(5)).1, ["max_waiting"]);
        assert_eq!(run(None, Some(1_000), Some(0)).1, ["max_waiting"]);
        assert_eq!(
            run(None, Some(1_000), Some(MAX_MAX_WAITING + 1)).1,
            ["max_waiting"]
        );
        // A bad max_wait is reported once, not again through max_waiting.
        assert_eq!(run(None, Some(1_500), Some(5)).1, ["max_wait"]);
    }
}
