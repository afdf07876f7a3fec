//! Reserve, then settle: the limiter's side. A check with `reserve` charges
//! its `hits` as an estimate and, on every settleable policy that charged,
//! leaves a reservation named by a random nonce; the verdict's settlement
//! id lists them. [`Limiter::settle`] applies the actual cost.
//!
//! Metrics, labelled by policy only: `floodgate_cost_charged_total` (cost
//! charged to settleable policies by allowed checks and by overruns),
//! `floodgate_cost_refunded_total` (given back by settles below the
//! estimate), `floodgate_cost_settled_total` (actual costs settled).

use std::sync::Arc;

use floodgate_core::{Policy, Receipt, SettlementError, SettlementPart, MAX_HITS};

use super::snapshot::CheckCounters;
use super::{Check, Limiter};
use crate::store::{Settle, Settled, Source, StoreOp};
use crate::LimitError;

/// What a settle did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// The estimate the check had reserved.
    pub estimate: u64,
    /// The actual cost settled.
    pub actual: u64,
    /// Reservations (policies) settled.
    pub parts: usize,
}

impl Settlement {
    /// `actual − estimate`: charged when positive, given back when negative.
    pub fn charged(&self) -> i64 {
        // Both are at most MAX_HITS: the difference fits.
        self.actual as i64 - self.estimate as i64
    }
}

/// The cost `check` charges `policy`: its `hits`, except in a reserving
/// check, whose `hits` is an estimated cost (tokens, say) that only
/// settleable policies count: every other policy counts the call itself,
/// one hit (requests per minute beside tokens per minute) or one slot of a
/// `concurrency` policy (one call in flight). A peek stays a peek.
pub(super) fn hits(check: &Check<'_>, policy: &Policy) -> u64 {
    if check.reserve && !policy.settle() {
        check.hits.min(1)
    } else {
        check.hits
    }
}

/// The nonce of a reservation on `policy`, when `check` reserves a cost and
/// the policy settles.
pub(super) fn nonce(check: &Check<'_>, policy: &Policy) -> Option<u128> {
    (check.reserve && check.hits > 0 && policy.settle()).then(rand::random::<u128>)
}

/// The settlement part of an allowed, charged op, when it reserved. Not
/// while the failover store answers from its fallback: its charge is not
/// kept as a reservation there (the estimate stands).
pub(super) fn part(op: &StoreOp<'_>, receipt: Receipt, source: Source) -> Option<SettlementPart> {
    let nonce = op.reserve?;
    (source != Source::Fallback).then(|| SettlementPart {
        counter_key: op.key.to_string(),
        nonce,
        issued_us: receipt.at_us,
    })
}

/// Counts the cost an allowed check charged to a settleable policy.
pub(super) fn note_charge(op: &StoreOp<'_>, counters: &CheckCounters) {
    if op.policy.settle() && op.hits > 0 {
        counters.cost_charged(op.policy.name_arc(), op.hits);
    }
}

impl Limiter {
    /// Settles the reservations a settlement id names with the `actual`
    /// cost: each is charged `actual − estimate` (past any limit) or given
    /// back `estimate − actual`, once. A part whose policy is gone or no
    /// longer settles has lapsed.
    ///
    /// # Errors
    /// [`LimitError::Settlement`] when the id is malformed, forged, spent
    /// or lapsed, or `actual` is too large (nothing changed);
    /// [`LimitError::Store`] when the store could not be reached.
    pub async fn settle(&self, id: &str, actual: u64) -> Result<Settlement, LimitError> {
        if actual > MAX_HITS {
            return Err(SettlementError::ActualTooLarge(actual).into());
        }
        let parts = SettlementPart::decode(id)?;
        let loaded = self.source.load();
        let policies: Vec<Option<&Arc<Policy>>> = parts
            .iter()
            .map(|part| loaded.set.get(part.policy()).filter(|p| p.settle()))
            .collect();
        let settles: Vec<Settle<'_>> = parts
            .iter()
            .zip(&policies)
            .filter_map(|(part, policy)| {
                Some(Settle {
                    policy: policy.as_ref()?,
                    key: &part.counter_key,
                    nonce: part.nonce,
                    issued_us: part.issued_us,
                    actual,
                })
            })
            .collect();
        let mut results = if settles.is_empty() {
            Vec::new()
        } else {
            self.store.settle(&settles).await?
        };
        // Parts whose policy is gone have lapsed.
        results.resize(results.len() + parts.len() - settles.len(), Settled::Lapsed);
        let mut settled: Option<Settlement> = None;
        for (settle, result) in settles.iter().zip(&results) {
            if let Settled::Applied { estimate } = *result {
                note_settle(settle.policy, estimate, actual);
                let report = settled.get_or_insert(Settlement {
                    estimate,
                    actual,
                    parts: 0,
                });
                report.parts += 1;
            }
        }
        settled.ok_or_else(|| refusal(&results).into())
    }
}

/// Why no part was settled: forged beats spent beats lapsed.
fn refusal(results: &[Settled]) -> SettlementError {
    if results.contains(&Settled::Unknown) {
        SettlementError::Unknown
    } else if results.contains(&Settled::Spent) {
        SettlementError::Spent
    } else {
        SettlementError::Lapsed
    }
}

fn note_settle(policy: &Policy, estimate: u64, actual: u64) {
    let name = policy.name_arc().clone();
    metrics::counter!(floodgate_core::metric::COST_SETTLED_TOTAL, "policy" => name.clone())
        .increment(actual);
    if actual > estimate {
        metrics::counter!(floodgate_core::metric::COST_CHARGED_TOTAL, "policy" => name)
            .increment(actual - estimate);
    } else if estimate > actual {
        metrics::counter!(floodgate_core::metric::COST_REFUNDED_TOTAL, "policy" => name)
            .increment(estimate - actual);
    }
}

#[cfg(test)]
mod tests;
