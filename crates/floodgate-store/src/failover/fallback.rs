//! Falling back: what each policy decides while the primary is away, by
//! its fallback mode (or the store's): `local` limits in the local store
//! with `ceil(limit / instances)` (charges journaled for reconciling),
//! `allow` allows, `deny` denies until the next probe may pass.
//!
//! The scaled policies are built once per policy and instance count
//! ([`ScaledPolicies`]), not per check.

use std::collections::HashMap;
use std::sync::Arc;

use floodgate_core::{FallbackMode, Outcome, Policy};
use parking_lot::RwLock;

use super::FailoverStore;
use crate::store::{Source, StoreOp, StoreOutcome};

/// Most scaled policies kept: past it (names that come and go over many
/// reloads) the cache starts afresh.
const MAX_SCALED: usize = 4096;

/// `local` fallback policies with `ceil(limit / instances)`, built once
/// per policy and instance count.
///
/// Entries are found by policy name and kept only for the very policy they
/// were built from (the same name allocation, which the entry holds on
/// to): a reload that rebuilds a policy rebuilds its entry, and a new
/// instance count rebuilds them all.
#[derive(Default)]
pub(super) struct ScaledPolicies {
    cache: RwLock<Scaled>,
}

/// The scaled policies for one instance count.
#[derive(Default)]
struct Scaled {
    /// The count every entry is scaled to.
    instances: u64,
    /// By policy name.
    by_name: HashMap<Arc<str>, Arc<Policy>, foldhash::fast::RandomState>,
}

impl ScaledPolicies {
    /// `policy` with its limit divided by `instances` (rounded up).
    pub(super) fn get(&self, policy: &Policy, instances: u64) -> Arc<Policy> {
        {
            let cache = self.cache.read();
            let found = cache.by_name.get(policy.name()).filter(|scaled| {
                cache.instances == instances && Arc::ptr_eq(scaled.name_arc(), policy.name_arc())
            });
            if let Some(scaled) = found {
                return scaled.clone();
            }
        }
        let scaled = Arc::new(policy.scaled(instances));
        let mut cache = self.cache.write();
        if cache.instances != instances || cache.by_name.len() >= MAX_SCALED {
            cache.by_name.clear();
            cache.instances = instances;
        }
        cache
            .by_name
            .insert(policy.name_arc().clone(), scaled.clone());
        scaled
    }
}

impl FailoverStore {
    /// What the fallback decides for `op`.
    pub(super) fn fallback_one(&self, op: &StoreOp<'_>) -> StoreOutcome {
        let policy = op.policy;
        let limit = policy.burst();
        let outcome = match policy.fallback().unwrap_or(self.config.mode) {
            FallbackMode::Local => {
                let scaled = self.scaled.get(policy, self.instances());
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

#[cfg(test)]
mod tests {
    use floodgate_core::{testing, AlgorithmKind};

    use super::*;

    fn policy(limit: u64) -> Policy {
        testing::policy(AlgorithmKind::SlidingWindow, limit, 60_000_000).build()
    }

    #[test]
    fn scaled_policies_are_built_once_per_policy_and_instance_count() {
        let cache = ScaledPolicies::default();
        let p = policy(10);
        let first = cache.get(&p, 3);
        assert_eq!(first.limit(), 4);
        assert!(Arc::ptr_eq(&first, &cache.get(&p, 3)), "reused");
        // A new instance count: built again.
        let two = cache.get(&p, 2);
        assert_eq!(two.limit(), 5);
        assert!(!Arc::ptr_eq(&first, &cache.get(&p, 3)));
        // A reload rebuilds the policy (same name, new limit): so is its
        // scaled copy, at once.
        let reloaded = policy(20);
        assert_eq!(cache.get(&reloaded, 3).limit(), 7);
        assert_eq!(cache.get(&p, 3).limit(), 4);
    }
}
