//! How a dead or blackholed Redis is noticed, from the per-call `timeout`:
//! fred's unresponsive check, TCP keepalive and a bounded command queue
//! (set on every connection by `RedisStore::connect`).

use std::time::Duration;

/// Commands one connection may have queued in the client at once; more
/// fail at once (fred's backpressure error: the store is unavailable, the
/// check is answered by the fallback) rather than piling up behind a
/// connection that stopped answering.
pub(crate) const MAX_QUEUED_COMMANDS: usize = 4096;

/// How long a connection may leave a command unanswered before it is
/// closed and reopened (fred's unresponsive check): 10 × `timeout`, at least
/// 500 ms. A blackholed node is noticed that long after its first unanswered
/// call; until it answers again its calls fail at once (fail fast) instead
/// of each waiting `timeout`.
pub(crate) fn unresponsive_after(timeout: Duration) -> Duration {
    (timeout * 10).max(Duration::from_millis(500))
}

/// TCP keepalive of every connection, so an idle connection to a vanished
/// host is noticed too: first probe after `unresponsive_after(timeout)` of
/// silence, then every half of that (the system's probe count), in whole
/// seconds (the kernel's unit; 0 is refused).
pub(crate) fn keepalive(timeout: Duration) -> fred::socket2::TcpKeepalive {
    let idle = unresponsive_after(timeout).as_secs().max(1);
    fred::socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(idle))
        .with_interval(Duration::from_secs((idle / 2).max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_settings_follow_the_timeout() {
        assert_eq!(
            unresponsive_after(Duration::from_millis(50)),
            Duration::from_millis(500)
        );
        assert_eq!(
            unresponsive_after(Duration::from_secs(1)),
            Duration::from_secs(10)
        );
        // Whole seconds, never 0 (the kernel refuses 0 with EINVAL).
        let _ = keepalive(Duration::from_millis(1));
    }
}
