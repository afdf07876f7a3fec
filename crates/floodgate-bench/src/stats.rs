//! What the workers measure: one [`Stats`] per worker, filled without any
//! sharing and merged once at the end.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::protocol::Outcome;

/// Largest latency recorded exactly (1 hour); longer ones saturate.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// Counters and latency histograms of a set of checks.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of answered checks (allowed or denied), in nanoseconds: from
    /// the send in a closed loop, from the scheduled send in an open loop.
    pub latency: Histogram<u64>,
    /// Open loop only: latency from the actual send, to show how much of
    /// `latency` was spent waiting for a free worker.
    pub service: Histogram<u64>,
    /// Checks answered "allowed".
    pub allowed: u64,
    /// Checks answered "denied".
    pub denied: u64,
    /// Checks that got no answer (I/O, protocol error, timeout).
    pub transport_errors: u64,
    /// Checks answered with another status (HTTP ≠ 200/429, gRPC ≠ OK).
    pub status_errors: u64,
    /// `status_errors` by status, e.g. `"503"` or `"grpc:InvalidArgument"`.
    pub statuses: BTreeMap<String, u64>,
    /// Open loop only: checks scheduled before the deadline but not sent by
    /// then because every worker was still busy (the generator fell behind).
    pub unsent: u64,
    /// The first transport error seen, to say why.
    pub first_transport_error: Option<String>,
    /// Accuracy mode only: admitted hits per key index, with an entry
    /// (possibly 0) for every key that got an answer.
    pub admitted: Option<HashMap<u64, u64>>,
}

impl Stats {
    /// Empty stats; `accuracy` enables per-key counting.
    pub fn new(accuracy: bool) -> Stats {
        let histogram = || {
            // 1 µs resolution below ~2 ms, 3 significant digits above.
            Histogram::new_with_bounds(1_000, MAX_LATENCY_NS, 3)
                .expect("constant histogram bounds are valid")
        };
        Stats {
            latency: histogram(),
            service: histogram(),
            allowed: 0,
            denied: 0,
            transport_errors: 0,
            status_errors: 0,
            statuses: BTreeMap::new(),
            unsent: 0,
            first_transport_error: None,
            admitted: accuracy.then(HashMap::new),
        }
    }

    /// Records one check of `hits` on key `key`: its outcome, its latency
    /// (from the intended send) and its service time (from the actual send).
    pub fn record(
        &mut self,
        outcome: Outcome,
        key: u64,
        hits: u64,
        latency: Duration,
        service: Duration,
    ) {
        let admitted = match outcome {
            Outcome::Allowed => {
                self.allowed += 1;
                hits
            }
            Outcome::Denied => {
                self.denied += 1;
                0
            }
            Outcome::Status(status) => {
                self.status_errors += 1;
                *self.statuses.entry(status).or_default() += 1;
                return;
            }
            Outcome::Transport(message) => {
                self.transport_errors += 1;
                self.first_transport_error.get_or_insert(message);
                return;
            }
        };
        self.latency.saturating_record(nanos(latency));
        self.service.saturating_record(nanos(service));
        if let Some(per_key) = &mut self.admitted {
            *per_key.entry(key).or_default() += admitted;
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: Stats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        self.allowed += other.allowed;
        self.denied += other.denied;
        self.transport_errors += other.transport_errors;
        self.status_errors += other.status_errors;
        self.unsent += other.unsent;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        if self.first_transport_error.is_none() {
            self.first_transport_error = other.first_transport_error;
        }
        if let (Some(mine), Some(theirs)) = (&mut self.admitted, other.admitted) {
            for (key, n) in theirs {
                *mine.entry(key).or_default() += n;
            }
        }
    }

    /// Checks answered (allowed + denied).
    pub fn answered(&self) -> u64 {
        self.allowed + self.denied
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_merges() {
        let ms = Duration::from_millis;
        let mut a = Stats::new(true);
        a.record(Outcome::Allowed, 1, 2, ms(1), ms(1));
        a.record(Outcome::Denied, 1, 2, ms(3), ms(2));
        a.record(Outcome::Status("503".into()), 2, 2, ms(1), ms(1));
        let mut b = Stats::new(true);
        b.record(Outcome::Allowed, 3, 2, ms(2), ms(2));
        b.record(Outcome::Transport("reset".into()), 3, 2, ms(9), ms(9));
        b.record(Outcome::Status("503".into()), 2, 2, ms(1), ms(1));
        a.merge(b);
        assert_eq!((a.allowed, a.denied, a.answered()), (2, 1, 3));
        assert_eq!((a.transport_errors, a.status_errors), (1, 2));
        assert_eq!(a.statuses["503"], 2);
        assert_eq!(a.first_transport_error.as_deref(), Some("reset"));
        assert_eq!(a.latency.len(), 3);
        let admitted = a.admitted.unwrap();
        assert_eq!(admitted[&1], 2);
        assert_eq!(admitted[&3], 2);
        assert!(!admitted.contains_key(&2), "errors are not answers");
    }
}
