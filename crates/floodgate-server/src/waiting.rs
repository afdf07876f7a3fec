//! How long a check may wait for its turn, per transport: what the caller
//! asks (`max_wait_ms`, the `X-Floodgate-Max-Wait-Ms` header of
//! `/v1/auth`), bounded so the answer still reaches the caller within its
//! own deadline (`grpc-timeout`, Envoy's timeout) and the listener's
//! timeouts. The policies' `max_wait` caps it further (floodgate-store).

use std::time::Duration;

use floodgate_core::MAX_WAIT_US;

use crate::grpc::parse_grpc_timeout;

/// The header of a `/v1/auth` subrequest saying how long nginx is willing
/// to wait for the answer, in ms (absent = do not wait).
pub const MAX_WAIT_HEADER: &str = "x-floodgate-max-wait-ms";

/// The longest any check waits, whatever it asks.
pub const MAX_WAIT: Duration = Duration::from_micros(MAX_WAIT_US);

/// How much of a deadline a wait may use: the rest is left for the final
/// check and the answer to travel (a fifth, at least 5 ms).
pub fn within(deadline: Duration) -> Duration {
    let margin = (deadline / 5).max(Duration::from_millis(5));
    deadline.saturating_sub(margin)
}

/// A caller's `max_wait_ms` (absent = 0), kept within `deadline`.
pub fn asked(max_wait_ms: Option<u64>, deadline: Duration) -> Duration {
    let asked = Duration::from_millis(max_wait_ms.unwrap_or(0).min(MAX_WAIT_US / 1_000));
    asked.min(within(deadline))
}

/// The caller's deadline from a `grpc-timeout` header value, if any.
pub fn grpc_deadline(header: Option<&str>) -> Option<Duration> {
    header.and_then(parse_grpc_timeout)
}

/// How long an Envoy check (RLS, ext_authz) may wait: within Envoy's own
/// timeout (its `grpc-timeout`) and `grpc_timeout`; `envoy_max_wait` when
/// Envoy sent no deadline.
pub fn envoy_budget(
    header: Option<&str>,
    grpc_timeout: Duration,
    envoy_max_wait: Duration,
) -> Duration {
    match grpc_deadline(header) {
        Some(deadline) => within(deadline.min(grpc_timeout)),
        None => envoy_max_wait.min(within(grpc_timeout)),
    }
}

/// How long a floodgate.v1 Check may wait: its `max_wait_ms`, within its
/// `grpc-timeout` and `grpc_timeout`.
pub fn grpc_budget(
    max_wait_ms: Option<u64>,
    header: Option<&str>,
    grpc_timeout: Duration,
) -> Duration {
    let deadline = grpc_deadline(header).map_or(grpc_timeout, |d| d.min(grpc_timeout));
    asked(max_wait_ms, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_wait_leaves_room_for_the_answer() {
        assert_eq!(within(200 * MS), 160 * MS);
        assert_eq!(within(20 * MS), 15 * MS);
        assert_eq!(within(3 * MS), Duration::ZERO);
        assert_eq!(within(Duration::from_secs(30)), Duration::from_secs(24));
    }

    #[test]
    fn envoy_waits_within_its_own_timeout_or_the_setting() {
        let thirty = Duration::from_secs(30);
        assert_eq!(envoy_budget(Some("200m"), thirty, Duration::ZERO), 160 * MS);
        assert_eq!(envoy_budget(Some("20m"), thirty, 500 * MS), 15 * MS);
        assert_eq!(envoy_budget(None, thirty, Duration::ZERO), Duration::ZERO);
        assert_eq!(envoy_budget(None, thirty, 150 * MS), 150 * MS);
        // A forged or broken header counts as absent.
        assert_eq!(
            envoy_budget(Some("9999999999S"), thirty, Duration::ZERO),
            Duration::ZERO
        );
        // The server's own call timeout bounds a longer deadline.
        assert_eq!(
            envoy_budget(Some("1H"), Duration::from_secs(1), Duration::ZERO),
            800 * MS
        );
    }

    #[test]
    fn a_callers_wait_is_bounded() {
        let thirty = Duration::from_secs(30);
        assert_eq!(grpc_budget(None, None, thirty), Duration::ZERO);
        assert_eq!(grpc_budget(Some(2_000), None, thirty), 2_000 * MS);
        assert_eq!(grpc_budget(Some(2_000), Some("1S"), thirty), 800 * MS);
        assert_eq!(
            grpc_budget(Some(u64::MAX), None, Duration::from_secs(3_600)),
            MAX_WAIT
        );
        assert_eq!(asked(Some(u64::MAX), thirty), Duration::from_secs(24));
    }
}
