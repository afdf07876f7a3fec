//! What a check reads once: the policies in force, global shadow mode and
//! each policy's metric handles, as one immutable [`PolicySnapshot`]; and
//! where the limiter finds the current one ([`PolicySource`]).

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use floodgate_core::PolicySet;

use crate::store::Source;

/// The policies in force and global shadow mode, swapped whole on reload: a
/// check that loads one snapshot sees either the old configuration or the
/// new one, never a mix.
pub struct PolicySnapshot {
    /// The policies.
    pub(crate) set: Arc<PolicySet>,
    /// Global shadow mode: count and report, never deny.
    pub(crate) shadow: bool,
    /// By policy index, the handles of its per-check metrics.
    pub(crate) counters: Box<[CheckCounters]>,
}

impl PolicySnapshot {
    /// A snapshot of `set` with global shadow mode `shadow`.
    pub fn new(set: PolicySet, shadow: bool) -> Self {
        Self::of(Arc::new(set), shadow)
    }

    pub(crate) fn of(set: Arc<PolicySet>, shadow: bool) -> Self {
        let counters = (0..set.len()).map(|_| CheckCounters::default()).collect();
        PolicySnapshot {
            set,
            shadow,
            counters,
        }
    }

    /// The same policies with global shadow mode `shadow`.
    pub fn with_shadow(&self, shadow: bool) -> Self {
        Self::of(self.set.clone(), shadow)
    }

    /// The policies.
    pub fn policies(&self) -> &Arc<PolicySet> {
        &self.set
    }

    /// Whether global shadow mode is on.
    pub fn shadow(&self) -> bool {
        self.shadow
    }
}

impl std::fmt::Debug for PolicySnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySnapshot")
            .field("policies", &self.set.len())
            .field("shadow", &self.shadow)
            .finish()
    }
}

/// Where a [`crate::Limiter`] finds the snapshot in force. The limiter's
/// own is an `ArcSwap`; a server that swaps more than policies at once (its
/// endpoint table, identity settings) keeps the snapshot inside its own
/// settings and hands the limiter a source reading them, so a reload is one
/// swap of everything.
pub trait PolicySource: Send + Sync {
    /// The snapshot in force.
    fn load(&self) -> Arc<PolicySnapshot>;
    /// Puts `change(current)` in force, keeping whatever else the source
    /// holds, atomically: if anything else is swapped in meanwhile (a
    /// reload), `change` runs again on that, so no concurrent swap is
    /// undone. `change` may run more than once; returning its argument
    /// changes nothing.
    fn update(&self, change: &dyn Fn(&Arc<PolicySnapshot>) -> Arc<PolicySnapshot>);
}

impl PolicySource for ArcSwap<PolicySnapshot> {
    fn load(&self) -> Arc<PolicySnapshot> {
        self.load_full()
    }

    fn update(&self, change: &dyn Fn(&Arc<PolicySnapshot>) -> Arc<PolicySnapshot>) {
        self.rcu(|current| change(current));
    }
}

/// One policy's per-check metric handles, each made on its first use:
/// `counter!` with labels builds its key and looks it up in the registry
/// every time (~1 900 instructions per policy per check, one allocation), a
/// handle only adds. Held by the snapshot, so a reload (or a test's own
/// recorder) starts afresh.
#[derive(Default)]
pub(crate) struct CheckCounters {
    /// `floodgate_checks_total`, by decision and source.
    checks: [[OnceLock<metrics::Counter>; 3]; 3],
    /// `floodgate_cost_charged_total` by allowed checks.
    cost_charged: OnceLock<metrics::Counter>,
    /// `floodgate_concurrency_skipped_total`, by transport: the first
    /// transports to skip this policy (there are three), then `counter!`.
    skipped: [OnceLock<(&'static str, metrics::Counter)>; 3],
}

impl CheckCounters {
    /// Counts one check of `policy` with this decision and source.
    pub(crate) fn increment(&self, policy: &Arc<str>, allowed: bool, shadow: bool, source: Source) {
        let (d, decision) = match (allowed, shadow) {
            (true, _) => (0, "allowed"),
            (false, true) => (1, "shadow_denied"),
            (false, false) => (2, "denied"),
        };
        let s = match source {
            Source::Redis => 0,
            Source::Local => 1,
            Source::Fallback => 2,
        };
        self.checks[d][s]
            .get_or_init(|| {
                metrics::counter!(
                    floodgate_core::metric::CHECKS_TOTAL,
                    "policy" => policy.clone(),
                    "decision" => decision,
                    "source" => source.as_str()
                )
            })
            .increment(1);
    }

    /// Counts `hits` charged to settleable `policy` by an allowed check.
    pub(crate) fn cost_charged(&self, policy: &Arc<str>, hits: u64) {
        self.cost_charged
            .get_or_init(|| {
                metrics::counter!(floodgate_core::metric::COST_CHARGED_TOTAL, "policy" => policy.clone())
            })
            .increment(hits);
    }

    /// Counts one check on `transport` that skipped concurrency `policy`.
    pub(crate) fn skipped(&self, policy: &Arc<str>, transport: &'static str) {
        let counter = || {
            metrics::counter!(
                floodgate_core::metric::CONCURRENCY_SKIPPED_TOTAL,
                "transport" => transport,
                "policy" => policy.clone()
            )
        };
        for slot in &self.skipped {
            let (name, handle) = slot.get_or_init(|| (transport, counter()));
            if *name == transport {
                handle.increment(1);
                return;
            }
        }
        counter().increment(1);
    }
}
