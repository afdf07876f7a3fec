//! Falling back: what each policy decides while the primary is away, by
//! its fallback mode (or the store's): `local` limits in the local store
//! with `ceil(limit / instances)` (charges journaled for reconciling),
//! `allow` allows, `deny` denies until the next probe may pass.

use floodgate_core::{FallbackMode, Outcome};

use super::FailoverStore;
use crate::store::{Source, StoreOp, StoreOutcome};

impl FailoverStore {
    /// What the fallback decides for `op`.
    pub(super) fn fallback_one(&self, op: &StoreOp<'_>) -> StoreOutcome {
        let policy = op.policy;
        let limit = policy.burst();
        let outcome = match policy.fallback().unwrap_or(self.config.mode) {
            FallbackMode::Local => {
                let scaled = policy.scaled(self.instances());
                if op.charge {
                    let outcome = self.fallback.check_one(&scaled, op.key, op.hits);
                    if let Some(receipt) = outcome.receipt {
                        self.journal.add(policy, op.key, op.hits, receipt.at_us);
                    }
                    outcome
                } else {
                    self.fallback.decide_one(&scaled, op.key, op.hits)
                }
            }
            FallbackMode::Allow => Outcome {
                allowed: true,
                limit,
                remaining: limit,
                reset_after_us: 0,
                retry_after_us: 0,
                receipt: None,
            },
            FallbackMode::Deny => {
                let retry = u64::try_from(self.config.probe_interval.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                Outcome {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset_after_us: retry,
                    retry_after_us: retry,
                    receipt: None,
                }
            }
        };
        StoreOutcome {
            outcome,
            source: Source::Fallback,
        }
    }

    pub(super) fn fallback_all(&self, ops: &[StoreOp<'_>]) -> Vec<StoreOutcome> {
        ops.iter().map(|op| self.fallback_one(op)).collect()
    }
}
