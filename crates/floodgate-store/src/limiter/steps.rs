//! The steps of one call to [`Limiter::check_all_in`](super::Limiter):
//! plan (which policies apply, their counter keys, the store ops), decide
//! (the store's outcomes become each check's statuses), then hand out
//! leases and settlement ids when every check is allowed or refund what a
//! denied call had counted.

use std::sync::Arc;

use floodgate_core::{AlgorithmKind, LeasePart, Mode, Policy, PolicySet, Receipt, SettlementPart};

use super::snapshot::{CheckCounters, PolicySnapshot};
use super::{replaced_by, settle, takes_part, Check, LeaseMode, PolicyStatus, Verdict};
use crate::store::{Refund, Source, StoreOp, StoreOutcome};

/// The applicable policies of every check of one call, and their counters.
pub(super) struct Plan<'a> {
    /// (check index, policy) for every applicable policy of every check.
    pub applicable: Vec<(usize, &'a Arc<Policy>)>,
    /// Each applicable policy's metrics.
    counters: Vec<&'a CheckCounters>,
    /// Each applicable policy's counter key.
    pub keys: Vec<String>,
}

impl<'a> Plan<'a> {
    /// What `checks` apply against `snapshot`, `leases` saying whether
    /// `concurrency` policies take part.
    pub fn new(snapshot: &'a PolicySnapshot, checks: &'a [Check<'a>], leases: LeaseMode) -> Self {
        let (set, all_counters) = (&*snapshot.set, &snapshot.counters);
        let (applicable, counters): (Vec<(usize, &Arc<Policy>)>, Vec<&CheckCounters>) = checks
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                (set.applicable(c.attributes, c.domain))
                    .filter(move |(_, policy)| takes_part(policy, leases))
                    .map(move |(p, policy)| ((i, policy), &all_counters[p]))
            })
            .unzip();
        let keys = applicable
            .iter()
            .map(|(i, p)| p.counter_key(checks[*i].attributes))
            .collect();
        Plan {
            applicable,
            counters,
            keys,
        }
    }

    /// One store op per applicable policy; `global_shadow` makes every
    /// policy report only.
    pub fn ops(&self, checks: &[Check<'_>], global_shadow: bool) -> Vec<StoreOp<'_>> {
        self.applicable
            .iter()
            .zip(&self.keys)
            .map(|((i, policy), key)| StoreOp {
                policy,
                key,
                hits: settle::hits(&checks[*i], policy),
                enforced: !global_shadow && policy.mode() != Mode::Shadow,
                charge: true,
                reserve: settle::nonce(&checks[*i], policy),
            })
            .collect()
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
        for ((((i, policy), op), o), counters) in self
            .applicable
            .iter()
            .zip(ops)
            .zip(outcomes)
            .zip(&self.counters)
        {
            counters.increment(policy.name_arc(), o.outcome.allowed, !op.enforced, o.source);
            verdicts[*i].statuses.push(PolicyStatus {
                policy: policy.name_arc().clone(),
                allowed: o.outcome.allowed,
                limit: o.outcome.limit,
                remaining: o.outcome.remaining,
                reset_after_us: o.outcome.reset_after_us,
                retry_after_us: o.outcome.retry_after_us,
                window_us: policy.window_us(),
                shadow: !op.enforced,
                source: o.source,
                replaced: replaced_by(set, policy, checks[*i]),
            });
        }
        for verdict in verdicts {
            verdict.allowed = verdict.statuses.iter().all(|s| s.allowed || s.shadow);
        }
    }
}

/// One op the store charged: its check, the op, the receipt and who
/// counted it.
pub(super) type Charged<'o, 'k> = (usize, &'o StoreOp<'k>, Receipt, Source);

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
        .filter_map(|(((i, _), op), o)| o.outcome.receipt.map(|r| (*i, op, r, o.source)))
}

/// Every check is allowed: each gets its lease token (`concurrency`
/// charges) and settlement id (reservations), if any.
pub(super) fn hand_out<'o, 'k: 'o>(
    verdicts: &mut [Verdict],
    checks: &[Check<'_>],
    charged: impl Iterator<Item = Charged<'o, 'k>>,
) {
    let mut lease_parts: Vec<Vec<LeasePart>> = vec![Vec::new(); checks.len()];
    // Only reserving checks have settlement parts (no allocation for the
    // others).
    let reserving = checks.iter().any(|c| c.reserve);
    let mut settle_parts: Vec<Vec<SettlementPart>> =
        vec![Vec::new(); if reserving { checks.len() } else { 0 }];
    for (i, op, receipt, source) in charged {
        settle::note_charge(op);
        if reserving {
            settle_parts[i].extend(settle::part(op, receipt, source));
        }
        if op.policy.kind() == AlgorithmKind::Concurrency {
            lease_parts[i].push(LeasePart {
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
) -> Vec<Refund<'o>> {
    charged
        .map(|(_, op, receipt, source)| Refund {
            policy: op.policy,
            key: op.key,
            hits: op.hits,
            receipt,
            source: Some(source),
        })
        .collect()
}
