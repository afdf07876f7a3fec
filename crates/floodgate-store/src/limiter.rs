//! The `Limiter`: the one facade transports call. It picks the policies that
//! apply, asks the store for all of them at once, enforces "allowed only if
//! every applicable policy allows" and refunds what a denied check had
//! counted (docs/api.md, "What a check means").

mod admin;
mod settle;
mod snapshot;
mod steps;

use std::sync::Arc;

use arc_swap::ArcSwap;
use floodgate_core::{
    validate_attributes, validate_hits, AlgorithmKind, Attributes, LeasePart, Policy, PolicySet,
    Receipt,
};

pub use admin::{DenialTop, ResetCounter, TOP_MAX_POLICIES};
pub use settle::Settlement;
pub use snapshot::{PolicySnapshot, PolicySource};

use crate::store::{Refund, Source, Store};
use crate::LimitError;
use snapshot::CheckCounters;
use steps::Plan;

/// Whether the caller of a check can give its leases back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseMode {
    /// `concurrency` policies apply; the caller releases the lease token
    /// (floodgate.v1 Check, `/v1/check` with `/v1/release`, the proxy).
    Held,
    /// The transport named here has no "request finished" signal to
    /// release a lease (nginx `auth_request`, Envoy ext_authz, Envoy RLS):
    /// `concurrency` policies are not applied, each skip counted in
    /// `floodgate_concurrency_skipped_total{transport, policy}`.
    Skipped(&'static str),
}

/// One check, as every transport describes it.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// The request's attributes.
    pub attributes: &'a Attributes,
    /// Cost; 0 peeks.
    pub hits: u64,
    /// Envoy RLS domain; `None` for every other transport.
    pub domain: Option<&'a str>,
    /// Whether `hits` is an estimate to settle later: allowed charges on
    /// settleable policies are kept as reservations, named by the
    /// verdict's `settlement` id.
    pub reserve: bool,
}

/// One applicable policy's view of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyStatus {
    /// The policy's name.
    pub policy: Arc<str>,
    /// Whether this policy alone allows the check.
    pub allowed: bool,
    /// Its quota (for `token_bucket`, the bucket size).
    pub limit: u64,
    /// Quota left.
    pub remaining: u64,
    /// Microseconds until the quota is full again.
    pub reset_after_us: u64,
    /// Microseconds until the check could pass; 0 when allowed.
    pub retry_after_us: u64,
    /// The policy's window in µs (lease timeout for `concurrency`), for the
    /// `RateLimit-Policy` header.
    pub window_us: u64,
    /// Whether the policy only reports (`mode = "shadow"` or global shadow).
    pub shadow: bool,
    /// Who decided.
    pub source: Source,
    /// The policies this one set aside for the check (it `replaces` them
    /// and applies); usually empty.
    pub replaced: Vec<Arc<str>>,
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Index into `statuses` of the deciding policy: when denied, the
    /// enforced denial that lasts longest; when allowed, the policy with the
    /// least quota left. `None` when no policy applied.
    pub decider: Option<usize>,
    /// One status per applicable policy, in configuration order.
    pub statuses: Vec<PolicyStatus>,
    /// Lease token to release, when allowed concurrency policies charged.
    pub lease: Option<String>,
    /// Settlement id, when the check reserved and allowed settleable
    /// policies charged.
    pub settlement: Option<String>,
}

impl Verdict {
    /// The deciding policy's status.
    pub fn deciding(&self) -> Option<&PolicyStatus> {
        self.decider.map(|i| &self.statuses[i])
    }

    /// One verdict standing for several that stand or fall together:
    /// allowed only if all are, with every status and the decider chosen
    /// over all of them.
    pub fn combine(verdicts: &[Verdict]) -> Verdict {
        let allowed = verdicts.iter().all(|v| v.allowed);
        let statuses: Vec<PolicyStatus> = verdicts
            .iter()
            .flat_map(|v| v.statuses.iter().cloned())
            .collect();
        let leases: Vec<&str> = verdicts.iter().filter_map(|v| v.lease.as_deref()).collect();
        let settlements: Vec<&str> = verdicts
            .iter()
            .filter_map(|v| v.settlement.as_deref())
            .collect();
        Verdict {
            allowed,
            decider: decider(&statuses, allowed),
            statuses,
            lease: (!leases.is_empty()).then(|| leases.join(",")),
            settlement: (!settlements.is_empty()).then(|| settlements.join(",")),
        }
    }
}

/// Applies the loaded policies to checks, against one store.
pub struct Limiter {
    /// Where the policies in force and global shadow mode are: one
    /// snapshot, swapped whole on reload, so a check sees either the old
    /// set or the new one, never a mix.
    source: Arc<dyn PolicySource>,
    /// Where counters live.
    store: Arc<dyn Store>,
    /// The keys each policy denied most.
    top: DenialTop,
}

impl Limiter {
    /// A limiter over `policies` and `store`.
    pub fn new(policies: PolicySet, store: Arc<dyn Store>) -> Self {
        let own: ArcSwap<PolicySnapshot> =
            ArcSwap::from_pointee(PolicySnapshot::new(policies, false));
        Self::with_source(Arc::new(own), store)
    }

    /// A limiter reading its policies from `source` (see [`PolicySource`]).
    pub fn with_source(source: Arc<dyn PolicySource>, store: Arc<dyn Store>) -> Self {
        let clock = Arc::new(floodgate_core::SystemClock::new());
        Self::with_source_and_clock(source, store, clock)
    }

    /// [`Limiter::with_source`] timing its denial counts (the top denied
    /// keys) with `clock`.
    pub fn with_source_and_clock(
        source: Arc<dyn PolicySource>,
        store: Arc<dyn Store>,
        clock: Arc<dyn floodgate_core::Clock>,
    ) -> Self {
        Limiter {
            source,
            store,
            top: DenialTop::new(clock),
        }
    }

    /// The snapshot in force: load it once and pass it to
    /// [`Limiter::check_all_in`] to decide against exactly it.
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        self.source.load()
    }

    /// The policies in force.
    pub fn policies(&self) -> Arc<PolicySet> {
        self.source.load().set.clone()
    }

    /// Replaces the policies atomically, keeping global shadow mode.
    /// Counters are keyed by policy name and key values, so a policy that
    /// keeps both keeps its counters (its metrics too: the registry holds
    /// them by name and labels).
    /// One atomic update of the source: a concurrent swap of anything else
    /// it holds (a reload of the settings around it) is never undone.
    pub fn replace_policies(&self, policies: PolicySet) {
        let set = Arc::new(policies);
        self.source
            .update(&|current| Arc::new(PolicySnapshot::of(set.clone(), current.shadow)));
    }

    /// Turns global shadow mode on or off, keeping the policies in force at
    /// that instant (one atomic update, as [`Limiter::replace_policies`]).
    pub fn set_shadow(&self, shadow: bool) {
        self.source.update(&|current| {
            if current.shadow == shadow {
                current.clone()
            } else {
                Arc::new(current.with_shadow(shadow))
            }
        });
    }

    /// Whether global shadow mode is on.
    pub fn shadow(&self) -> bool {
        self.source.load().shadow
    }

    /// What answers checks now (`/readyz`).
    pub fn store_mode(&self) -> Source {
        self.store.mode()
    }

    /// Decides a check.
    ///
    /// # Errors
    /// [`LimitError::InvalidAttributes`] for malformed attributes or cost
    /// (nothing counted); [`LimitError::Store`] when the store could not
    /// decide.
    pub async fn check(&self, check: Check<'_>) -> Result<Verdict, LimitError> {
        let mut verdicts = self.check_all(&[check]).await?;
        Ok(verdicts.pop().unwrap_or_default())
    }

    /// Decides several checks that stand or fall together (the descriptors
    /// of one Envoy rate limit request): all their policies go to the store
    /// in one call, and if any check is denied, every charge of every check
    /// is refunded. Each verdict's `allowed` is that check's own decision.
    ///
    /// # Errors
    /// As [`Limiter::check`]; nothing is counted when any check is invalid.
    pub async fn check_all(&self, checks: &[Check<'_>]) -> Result<Vec<Verdict>, LimitError> {
        self.check_all_in(&self.snapshot(), checks, LeaseMode::Held)
            .await
    }

    /// Decides several checks as [`Limiter::check_all`] does, against
    /// `snapshot` (one the caller loaded once, with whatever else it swaps
    /// together), taking leases as `leases` says.
    ///
    /// # Errors
    /// As [`Limiter::check`].
    pub async fn check_all_in(
        &self,
        snapshot: &PolicySnapshot,
        checks: &[Check<'_>],
        leases: LeaseMode,
    ) -> Result<Vec<Verdict>, LimitError> {
        for check in checks {
            validate_attributes(check.attributes)?;
            validate_hits(check.hits)?;
        }
        let plan = Plan::new(snapshot, checks, leases);
        let mut verdicts = Vec::with_capacity(checks.len());
        verdicts.resize_with(checks.len(), || Verdict {
            allowed: true,
            ..Verdict::default()
        });
        if plan.applicable.is_empty() {
            return Ok(verdicts);
        }
        let mut ops = steps::PerPolicy::new();
        plan.ops(checks, snapshot.shadow, &mut ops);
        let outcomes = self.store.check(&ops).await?;
        plan.decide(&snapshot.set, checks, &ops, &outcomes, &mut verdicts);
        if verdicts.iter().all(|v| v.allowed) {
            steps::hand_out(
                &mut verdicts,
                checks,
                steps::charged(&plan, &ops, &outcomes),
            );
        } else {
            let refunds = steps::refunds(steps::charged(&plan, &ops, &outcomes));
            if !refunds.is_empty() {
                if let Err(error) = self.store.refund(&refunds).await {
                    // The check is still denied; the charge stays counted
                    // until its window passes.
                    tracing::warn!(%error, "refund of a denied check failed");
                }
            }
        }
        // Who is being limited: every denial of a charging check (shadow
        // ones too: who would be), by counter key.
        for ((a, op), o) in plan.applicable.iter().zip(&ops).zip(&outcomes) {
            if !o.outcome.allowed && checks[a.check].hits > 0 {
                self.top.observe(a.policy.name_arc(), op.key);
            }
        }
        for verdict in &mut verdicts {
            verdict.decider = decider(&verdict.statuses, verdict.allowed);
            if !verdict.allowed {
                // Denials can come in floods: debug level only.
                if let Some(s) = verdict.deciding() {
                    tracing::debug!(policy = %s.policy, retry_after_us = s.retry_after_us, "check denied");
                }
            }
        }
        Ok(verdicts)
    }

    /// Releases the slots a lease token holds. Parts whose policy is gone or
    /// is no longer a concurrency policy are skipped: their leases lapse at
    /// their timeout. Releasing twice is harmless.
    ///
    /// # Errors
    /// [`LimitError::InvalidLease`] for a malformed token (nothing released);
    /// [`LimitError::Store`] when the store could not be reached.
    pub async fn release(&self, token: &str) -> Result<(), LimitError> {
        let parts = LeasePart::decode(token)?;
        let loaded = self.source.load();
        let refunds: Vec<Refund<'_>> = parts
            .iter()
            .filter_map(|part| {
                let policy = loaded.set.get(part.policy())?;
                (policy.kind() == AlgorithmKind::Concurrency).then_some(Refund {
                    policy,
                    key: &part.counter_key,
                    hits: part.hits,
                    receipt: Receipt {
                        at_us: 0,
                        id: part.id,
                    },
                    // The token does not say which store issued the lease.
                    source: None,
                })
            })
            .collect();
        if !refunds.is_empty() {
            self.store.refund(&refunds).await?;
        }
        Ok(())
    }
}

/// Whether `policy` takes part in a check made with `leases`: a
/// `concurrency` policy does not where nobody can release its lease (the
/// skip is counted in `counters`, the policy's).
fn takes_part(policy: &Policy, leases: LeaseMode, counters: &CheckCounters) -> bool {
    match leases {
        LeaseMode::Skipped(transport) if policy.kind() == AlgorithmKind::Concurrency => {
            counters.skipped(policy.name_arc(), transport);
            false
        }
        _ => true,
    }
}

/// The names of the policies `policy` set aside for `check`.
fn replaced_by(set: &PolicySet, policy: &Policy, check: Check<'_>) -> Vec<Arc<str>> {
    if policy.replaces().is_empty() {
        return Vec::new();
    }
    set.replaced_by(policy, check.attributes, check.domain)
        .map(|p| p.name_arc().clone())
        .collect()
}

fn decider(statuses: &[PolicyStatus], allowed: bool) -> Option<usize> {
    let enforced = || statuses.iter().enumerate().filter(|(_, s)| !s.shadow);
    let pick = if allowed {
        enforced().min_by_key(|(_, s)| s.remaining)
    } else {
        enforced()
            .filter(|(_, s)| !s.allowed)
            .max_by_key(|(_, s)| s.retry_after_us)
    };
    pick.map(|(i, _)| i)
        .or_else(|| statuses.iter().position(|s| !s.allowed))
        .or((!statuses.is_empty()).then_some(0))
}

#[cfg(test)]
mod tests;
