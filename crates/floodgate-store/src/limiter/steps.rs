//! The steps of one call to [`Limiter::check_all_in`](super::Limiter):
//! plan (which policies apply, their counter keys, the store ops), decide
//! (the store's outcomes become each check's statuses), then hand out
//! leases and settlement ids when every check is allowed or refund what a
//! denied call had counted.

use std::sync::Arc;

use floodgate_core::{AlgorithmKind, LeasePart, Mode, Policy, PolicySet, Receipt, SettlementPart};
use smallvec::SmallVec;

use super::snapshot::{CheckCounters, PolicySnapshot};
use super::{replaced_by, settle, takes_part, Check, LeaseMode, PolicyStatus, Verdict};
use crate::store::{Refund, Source, StoreOp, StoreOutcome};

/// A list with one entry per applicable policy of a call: up to two are
/// kept inline, so a usual check allocates none.
pub(super) type PerPolicy<T> = SmallVec<[T; 2]>;

/// One applicable policy of one check.
pub(super) struct Applied<'a> {
    /// The index of its check.
    pub check: usize,
    /// The policy.
    pub policy: &'a Arc<Policy>,
    /// Its metrics.
    counters: &'a CheckCounters,
    /// Where its counter key ends in [`Plan::keys`] (it starts where the
    /// previous one ends).
    key_end: usize,
}

/// The applicable policies of every check of one call, and their counters.
pub(super) struct Plan<'a> {
    /// Every applicable policy of every check, checks in order.
    pub applicable: PerPolicy<Applied<'a>>,
    /// Every applicable policy's counter key, one after another: one
    /// allocation for the whole call.
    keys: String,
}

impl<'a> Plan<'a> {
    /// What `checks` apply against `snapshot`, `leases` saying whether
    /// `concurrency` policies take part.
    pub fn new(snapshot: &'a PolicySnapshot, checks: &'a [Check<'a>], leases: LeaseMode) -> Self {
        let (set, all_counters) = (&*snapshot.set, &snapshot.counters);
        let mut plan = Plan {
            applicable: PerPolicy::new(),
            keys: String::new(),
        };
        for (i, check) in checks.iter().enumerate() {
            for (p, policy) in set.applicable(check.attributes, check.domain) {
                if !takes_part(policy, leases, &all_counters[p]) {
                    continue;
                }
                if plan.keys.capacity() == 0 {
                    plan.keys.reserve(64);
                }
                policy.push_counter_key(&mut plan.keys, check.attributes);
                plan.applicable.push(Applied {
                    check: i,
                    policy,
                    counters: &all_counters[p],
                    key_end: plan.keys.len(),
                });
            }
        }
        plan
    }

    /// Each applicable policy with its counter key, in order.
    pub fn keyed(&self) -> impl Iterator<Item = (&Applied<'a>, &str)> {
        let mut start = 0;
        self.applicable.iter().map(move |a| {
            let key = &self.keys[start..a.key_end];
            start = a.key_end;
            (a, key)
        })
    }

    /// One store op per applicable policy, pushed onto `ops` (the caller's,
    /// so the list is written where it stays); `global_shadow` makes every
    /// policy report only.
    pub fn ops<'p>(
        &'p self,
        checks: &[Check<'_>],
        global_shadow: bool,
        ops: &mut PerPolicy<StoreOp<'p>>,
    ) {
        ops.reserve(self.applicable.len());
        for (a, key) in self.keyed() {
            let (check, policy) = (&checks[a.check], a.policy);
            ops.push(StoreOp {
                policy,
                key,
                hits: settle::hits(check, policy),
                enforced: !global_shadow && policy.mode() != Mode::Shadow,
                charge: true,
                reserve: settle::nonce(check, policy),
            });
        }
    }

    /// Counts each outcome in its policy's metrics and adds its status to
    /// its check's verdict; then each verdict is allowed only if all its
    /// enforced policies allow.
    pub fn decide(
        &self,
        set: &PolicySet,
        checks: &[Check<'_>],
        ops: &[StoreOp<'_>],
        outcomes: &[StoreOutcome],
        verdicts: &mut [Verdict],
    ) {
        // Each check's statuses in one allocation of the right size.
        for (i, verdict) in verdicts.iter_mut().enumerate() {
            let of_check = self.applicable.iter().filter(|a| a.check == i).count();
            verdict.statuses.reserve_exact(of_check);
        }
        for ((a, op), o) in self.applicable.iter().zip(ops).zip(outcomes) {
            let policy = a.policy;
            (a.counters).increment(policy.name_arc(), o.outcome.allowed, !op.enforced, o.source);
            verdicts[a.check].statuses.push(PolicyStatus {
                policy: policy.name_arc().clone(),
                allowed: o.outcome.allowed,
                limit: o.outcome.limit,
                remaining: o.outcome.remaining,
                reset_after_us: o.outcome.reset_after_us,
                retry_after_us: o.outcome.retry_after_us,
                window_us: policy.window_us(),
                shadow: !op.enforced,
                source: o.source,
                replaced: replaced_by(set, policy, checks[a.check]),
            });
        }
        for verdict in verdicts {
            verdict.allowed = verdict.statuses.iter().all(|s| s.allowed || s.shadow);
        }
    }
}

/// One op the store charged: its check, the op, the receipt, who counted
/// it and its policy's metrics.
pub(super) type Charged<'o, 'k> = (usize, &'o StoreOp<'k>, Receipt, Source, &'o CheckCounters);

/// The ops of one call that the store charged (lazily: no allocation).
pub(super) fn charged<'o, 'k>(
    plan: &'o Plan<'_>,
    ops: &'o [StoreOp<'k>],
    outcomes: &'o [StoreOutcome],
) -> impl Iterator<Item = Charged<'o, 'k>> + 'o {
    plan.applicable
        .iter()
        .zip(ops)
        .zip(outcomes)
        .filter_map(|((a, op), o)| {
            (o.outcome.receipt).map(|r| (a.check, op, r, o.source, a.counters))
        })
}

/// Every check is allowed: each gets its lease token (`concurrency`
/// charges) and settlement id (reservations), if any.
pub(super) fn hand_out<'o, 'k: 'o>(
    verdicts: &mut [Verdict],
    checks: &[Check<'_>],
    charged: impl Iterator<Item = Charged<'o, 'k>>,
) {
    // One list of parts per check, made on the first part: a check with no
    // lease and no reservation allocates nothing.
    let mut lease_parts: Vec<Vec<LeasePart>> = Vec::new();
    let mut settle_parts: Vec<Vec<SettlementPart>> = Vec::new();
    let reserving = checks.iter().any(|c| c.reserve);
    for (i, op, receipt, source, counters) in charged {
        settle::note_charge(op, counters);
        if reserving {
            if let Some(part) = settle::part(op, receipt, source) {
                per_check(&mut settle_parts, checks.len())[i].push(part);
            }
        }
        if op.policy.kind() == AlgorithmKind::Concurrency {
            per_check(&mut lease_parts, checks.len())[i].push(LeasePart {
                counter_key: op.key.to_string(),
                id: receipt.id,
                hits: op.hits,
            });
        }
    }
    for (verdict, parts) in verdicts.iter_mut().zip(lease_parts) {
        if !parts.is_empty() {
            verdict.lease = Some(LeasePart::encode(&parts));
        }
    }
    for (verdict, parts) in verdicts.iter_mut().zip(settle_parts) {
        if !parts.is_empty() {
            verdict.settlement = Some(SettlementPart::encode(&parts));
        }
    }
}

/// A check was denied: what the call counted is given back, each charge to
/// the store that counted it.
pub(super) fn refunds<'o, 'k: 'o>(
    charged: impl Iterator<Item = Charged<'o, 'k>>,
) -> PerPolicy<Refund<'o>> {
    charged
        .map(|(_, op, receipt, source, _)| Refund {
            policy: op.policy,
            key: op.key,
            hits: op.hits,
            receipt,
            source: Some(source),
        })
        .collect()
}

/// `lists`, one list per check of `checks` checks, made on first use.
fn per_check<P>(lists: &mut Vec<Vec<P>>, checks: usize) -> &mut [Vec<P>] {
    if lists.is_empty() {
        lists.resize_with(checks, Vec::new);
    }
    lists
}

#[cfg(test)]
mod tests {
    use floodgate_core::{Attributes, PolicySpec};

    use super::*;

    #[test]
    fn every_key_of_the_shared_buffer_is_the_policys_counter_key() {
        let policy = |name: &str, key: &[&str]| {
            Policy::new(PolicySpec {
                name: name.into(),
                key: key.iter().map(|k| k.to_string()).collect(),
                limit: 10,
                window_us: Some(1_000_000),
                ..PolicySpec::default()
            })
            .unwrap()
        };
        let set = PolicySet::new(vec![
            policy("a", &["user"]),
            policy("b", &["user|ip", "org"]),
            policy("c", &["org"]),
        ])
        .unwrap();
        let snapshot = PolicySnapshot::new(set, false);
        let attributes: [Attributes; 2] = [
            [("user", "u:1 é"), ("org", "o/1")],
            [("ip", "10.0.0.1"), ("org", "o2")],
        ]
        .map(|pairs| {
            (pairs.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        });
        let checks = attributes.each_ref().map(|attributes| Check {
            attributes,
            hits: 1,
            domain: None,
            reserve: false,
        });
        let plan = Plan::new(&snapshot, &checks, LeaseMode::Held);
        let keys: Vec<(usize, &str)> = plan.keyed().map(|(a, key)| (a.check, key)).collect();
        let expected: Vec<(usize, String)> = checks
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                (snapshot.set.applicable(c.attributes, None))
                    .map(move |(_, p)| (i, p.counter_key(c.attributes)))
            })
            .collect();
        assert_eq!(keys.len(), expected.len());
        assert!(keys
            .iter()
            .zip(&expected)
            .all(|(k, e)| k.0 == e.0 && k.1 == e.1));
        assert_eq!(keys[1], (0, "b:u%3A1%20%C3%A9:o%2F1"));
        assert_eq!(keys[2], (0, "c:o%2F1"));
        assert!(keys.contains(&(1, "b:ip=10.0.0.1:o2")));
    }
}
