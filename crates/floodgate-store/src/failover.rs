//! Failover, all of it: a shared primary store (Redis) behind a circuit
//! breaker, with a local stand-in while the primary is away (docs/configuration.md, `[fallback]`).
//! Read in this order:
//!
//! - **Start** (`background.rs`, [`start`]): connect to the primary once;
//!   unreachable, start open and keep connecting in the background. Also
//!   spawns the probe loop and, with `instances = "auto"`, the heartbeat
//!   that counts live sidecars ([`FailoverStore::set_instances`]).
//! - **Checks** ([`FailoverStore`], below): closed, every check goes to the
//!   primary. A check whose primary call fails is answered by the fallback
//!   instead (a caller never sees a store error): charged there when the
//!   call surely did not run, and decided without a charge when it may
//!   have (a timeout: Redis may run the call late), so one check is never
//!   counted twice.
//! - **Tripping** (`breaker.rs`): `failure_threshold` consecutive
//!   transient failures, or a sustained share of failed calls
//!   ([`RateTrip`]), open the breaker: from then on checks never touch the
//!   primary until [`FailoverStore::probe_once`] (the probe loop, every
//!   `probe_interval`) finds it answering again. The primary may also be
//!   absent at first (Redis down at startup) and be installed later with
//!   [`FailoverStore::install_primary`].
//! - **Falling back** (`fallback.rs`): while open, each policy decides by
//!   its fallback mode: `local` limits in the local store with
//!   `ceil(limit / instances)`, `allow` allows and `deny` denies; every
//!   outcome says [`Source::Fallback`].
//! - **Reconciling** (`journal.rs`): what the fallback admits
//!   (`fixed_window` and `sliding_window`) is journaled by counter window
//!   and added to the primary's counters of the same windows
//!   ([`Store::reconcile`]): by the probe that finds the primary answering,
//!   before it closes the breaker, and by [`FailoverStore::reconcile_once`]
//!   while closed.
//!
//! Receipts know their store: a refund goes only to the store that counted
//! the charge ([`Refund::source`]). A charge the fallback made (breaker
//! open, or one failed primary call while still closed) is refunded into the
//! fallback, never into the primary; a charge the primary made is refunded
//! into the primary while the breaker is closed, and dropped while it is
//! open (the charge stays counted until its window passes: strict, never
//! lenient). A lease released by its token (store unknown) goes to the
//! fallback and, while closed, to the primary: lease ids are random, so a
//! store that never issued the lease is untouched. Refund errors are
//! logged, not returned.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;

use crate::store::{Clear, Refund, Settle, Settled, Source, Store, StoreOp, StoreOutcome};
use crate::{LocalStore, StoreError};

mod background;
mod breaker;
mod fallback;
mod journal;

pub use background::{start, Connect, Heartbeat, HEARTBEAT_EVERY, HEARTBEAT_TTL};

use breaker::Breaker;
use journal::Journal;

/// Most journal entries one reconcile pass sends (see
/// [`FailoverStore::reconcile_once`]).
pub const RECONCILE_PER_PASS: usize = 4096;
pub use floodgate_core::store_config::{FailoverConfig, FailoverSettings, RateTrip};

/// A primary store guarded by a circuit breaker, with a local fallback.
pub struct FailoverStore {
    /// The shared store; empty until it could be reached once.
    primary: OnceLock<Arc<dyn Store>>,
    /// The stand-in (its decisions say [`Source::Fallback`]).
    fallback: Arc<LocalStore>,
    /// Trip and fallback settings.
    config: FailoverConfig,
    /// Whether the breaker is open (checks skip the primary).
    open: AtomicBool,
    /// Counts primary calls and failures while closed.
    breaker: Breaker,
    /// What the fallback admitted, to add to the primary once it is back.
    journal: Journal,
    /// `local` fallback policies scaled to the instance count.
    scaled: fallback::ScaledPolicies,
    /// The divisor of `local` fallback limits: `config.instances` until
    /// [`FailoverStore::set_instances`] reports a live count.
    instances: AtomicU64,
}

impl FailoverStore {
    /// A failover store over `primary`, or, when `None`, one that starts
    /// open until [`FailoverStore::install_primary`]. `fallback` should
    /// report [`Source::Fallback`].
    pub fn new(
        primary: Option<Arc<dyn Store>>,
        fallback: Arc<LocalStore>,
        config: FailoverConfig,
    ) -> Self {
        let open = primary.is_none();
        let cell = OnceLock::new();
        if let Some(primary) = primary {
            let _ = cell.set(primary);
        }
        metrics::gauge!(floodgate_core::metric::STORE_FALLBACK).set(if open { 1.0 } else { 0.0 });
        FailoverStore {
            primary: cell,
            fallback,
            config: FailoverConfig {
                instances: config.instances.max(1),
                failure_threshold: config.failure_threshold.max(1),
                ..config
            },
            open: AtomicBool::new(open),
            breaker: Breaker::new(config.failure_threshold, config.trip),
            journal: Journal::default(),
            scaled: fallback::ScaledPolicies::default(),
            instances: AtomicU64::new(config.instances.max(1)),
        }
    }

    /// The local stand-in (for the server's periodic sweep).
    pub fn fallback_store(&self) -> Arc<LocalStore> {
        self.fallback.clone()
    }

    /// The settings in force.
    pub fn config(&self) -> &FailoverConfig {
        &self.config
    }

    /// The sidecars now taken to share each limit (≥ 1).
    pub fn instances(&self) -> u64 {
        self.instances.load(Ordering::Relaxed)
    }

    /// Sets how many sidecars share each limit, from a live count (the
    /// heartbeat). Ignored while the breaker is open, so an outage keeps the
    /// count seen last before it; 0 counts as 1. Returns whether it took.
    pub fn set_instances(&self, live: u64) -> bool {
        if self.is_open() {
            return false;
        }
        self.instances.store(live.max(1), Ordering::Relaxed);
        true
    }

    /// Whether the breaker is open (checks answered by the fallback).
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Installs the primary that could not be reached at startup and closes
    /// the breaker. A second call is ignored (returns `false`).
    pub fn install_primary(&self, primary: Arc<dyn Store>) -> bool {
        if self.primary.set(primary).is_err() {
            return false;
        }
        self.close();
        true
    }

    /// One probe: while open with a primary, pings it and closes the breaker
    /// when it answers. Returns whether the breaker is closed afterwards.
    pub async fn probe_once(&self) -> bool {
        if !self.is_open() {
            return true;
        }
        let Some(primary) = self.primary.get() else {
            return false;
        };
        match primary.ping().await {
            Ok(()) => {
                // What the fallback admitted goes to the primary first, so
                // no check sees the primary without it (checks meanwhile
                // are still answered by the fallback, never held up).
                if let Err(error) = self.reconcile_with(primary.as_ref()).await {
                    count_error(&error);
                    // Only a failure that may pass keeps the fallback: one
                    // that will not (a key of the wrong type) must not hold
                    // the sidecar off Redis for good.
                    if error.is_transient() {
                        tracing::debug!(%error, "reconcile failed; staying in fallback");
                        return false;
                    }
                }
                self.close();
                true
            }
            Err(error) => {
                count_error(&error);
                tracing::debug!(%error, "store probe failed; staying in fallback");
                false
            }
        }
    }

    /// One reconcile pass while closed: sends at most
    /// [`RECONCILE_PER_PASS`] journal entries (what the fallback admitted,
    /// by counter window) to the primary, to be added to its counters of
    /// the same windows. The server calls it every `probe_interval`; the
    /// probe that closes the breaker runs one first. Returns the entries
    /// sent; on failure they are kept for the next pass.
    pub async fn reconcile_once(&self) -> usize {
        let Some(primary) = self.primary.get().filter(|_| !self.is_open()) else {
            return 0;
        };
        let before = self.journal.len();
        match self.reconcile_with(primary.as_ref()).await {
            Ok(()) => before.saturating_sub(self.journal.len()),
            Err(error) => {
                self.failed(&error);
                tracing::debug!(%error, "reconcile failed; kept for the next pass");
                0
            }
        }
    }

    /// Journal entries waiting for the primary.
    pub fn pending_reconcile(&self) -> usize {
        self.journal.len()
    }

    async fn reconcile_with(&self, primary: &dyn Store) -> Result<(), StoreError> {
        let charges = self.journal.take(RECONCILE_PER_PASS);
        if charges.is_empty() {
            return Ok(());
        }
        match primary.reconcile(&charges).await {
            Ok(()) => {
                metrics::counter!(floodgate_core::metric::RECONCILED_TOTAL)
                    .increment(charges.len() as u64);
                Ok(())
            }
            Err(error) => {
                if error.is_transient() {
                    self.journal.restore(charges);
                } else {
                    tracing::warn!(
                        %error,
                        counters = charges.len(),
                        "the store refused the fallback's charges: they are dropped"
                    );
                    metrics::counter!(floodgate_core::metric::RECONCILE_DROPPED_TOTAL)
                        .increment(charges.iter().map(|c| c.hits).sum());
                }
                Err(error)
            }
        }
    }

    fn trip(&self, error: &StoreError) {
        if !self.open.swap(true, Ordering::AcqRel) {
            metrics::gauge!(floodgate_core::metric::STORE_FALLBACK).set(1.0);
            tracing::warn!(
                %error,
                failures = self.config.failure_threshold,
                probe_interval = ?self.config.probe_interval,
                "store unreachable: switching to fallback"
            );
        }
    }

    fn close(&self) {
        self.breaker.reset();
        if self.open.swap(false, Ordering::AcqRel) {
            metrics::gauge!(floodgate_core::metric::STORE_FALLBACK).set(0.0);
            tracing::info!("store reachable again: leaving fallback");
        }
    }

    /// Notes a failed primary call; opens the breaker at the threshold.
    fn failed(&self, error: &StoreError) {
        count_error(error);
        if !error.counts_for_breaker() {
            return;
        }
        if self.breaker.failure() {
            self.trip(error);
        }
    }
}

fn count_error(error: &StoreError) {
    metrics::counter!(floodgate_core::metric::STORE_ERRORS_TOTAL, "kind" => error.kind())
        .increment(1);
}

#[async_trait]
impl Store for FailoverStore {
    async fn check(&self, ops: &[StoreOp<'_>]) -> Result<Vec<StoreOutcome>, StoreError> {
        let primary = match self.primary.get() {
            Some(primary) if !self.is_open() => primary,
            _ => return Ok(self.fallback_all(ops)),
        };
        match primary.check(ops).await {
            Ok(outcomes) => {
                self.breaker.success();
                Ok(outcomes)
            }
            Err(error) => {
                self.failed(&error);
                if error.may_have_run() {
                    // The primary may still count this check (a timed-out
                    // call can run late): decide it in the fallback without
                    // charging there, so it is never counted twice.
                    let peeks: Vec<StoreOp<'_>> = ops
                        .iter()
                        .map(|op| StoreOp {
                            charge: false,
                            ..*op
                        })
                        .collect();
                    return Ok(self.fallback_all(&peeks));
                }
                Ok(self.fallback_all(ops))
            }
        }
    }

    async fn refund(&self, refunds: &[Refund<'_>]) -> Result<(), StoreError> {
        let closed = self.primary.get().filter(|_| !self.is_open());
        let mut to_primary = Vec::new();
        for refund in refunds {
            match refund.source {
                // Charged by the fallback (breaker open, or a failed primary
                // call): refunded there alone.
                Some(Source::Fallback | Source::Local) => {
                    self.fallback.refund_one(refund);
                    let (policy, at_us) = (refund.policy, refund.receipt.at_us);
                    self.journal.sub(policy, refund.key, refund.hits, at_us);
                }
                // Charged by the primary: refunded there while it is in use;
                // while the breaker is open it is not called, and the charge
                // stays counted until its window passes (strict).
                Some(Source::Redis) => {
                    if closed.is_some() {
                        to_primary.push(*refund);
                    } else {
                        metrics::counter!(floodgate_core::metric::STORE_REFUNDS_DROPPED_TOTAL)
                            .increment(1);
                    }
                }
                // A lease released by its token: whichever store issued it
                // (an id no store issued is a no-op).
                None => {
                    self.fallback.refund_one(refund);
                    if closed.is_some() {
                        to_primary.push(*refund);
                    }
                }
            }
        }
        if let (Some(primary), false) = (closed, to_primary.is_empty()) {
            if let Err(error) = primary.refund(&to_primary).await {
                self.failed(&error);
                tracing::warn!(%error, "refund to the primary store failed");
            }
        }
        Ok(())
    }

    /// Settles on the primary: reservations are only issued by it (a charge
    /// the fallback counted keeps its estimate). While the breaker is open
    /// a settle cannot be applied: [`StoreError::Unavailable`].
    async fn settle(&self, settles: &[Settle<'_>]) -> Result<Vec<Settled>, StoreError> {
        let Some(primary) = self.primary.get().filter(|_| !self.is_open()) else {
            return Err(StoreError::Unavailable(
                "the shared store is unreachable; settle again later".into(),
            ));
        };
        let result = primary.settle(settles).await;
        match &result {
            Ok(_) => self.breaker.success(),
            Err(error) => self.failed(error),
        }
        result
    }

    /// Clears the fallback's counters, then the primary's: while the
    /// breaker is open the primary cannot be cleared
    /// ([`StoreError::Unavailable`], the fallback is cleared all the same).
    async fn clear(&self, clears: &[Clear<'_>]) -> Result<(), StoreError> {
        let keys: Vec<&str> = clears.iter().map(|c| c.key).collect();
        self.fallback.forget(&keys);
        let Some(primary) = self.primary.get().filter(|_| !self.is_open()) else {
            return Err(StoreError::Unavailable(
                "the shared store is unreachable: only this sidecar's fallback counters were cleared; reset again later".into(),
            ));
        };
        let result = primary.clear(clears).await;
        match &result {
            Ok(()) => self.breaker.success(),
            Err(error) => self.failed(error),
        }
        result
    }

    fn forget(&self, keys: &[&str]) {
        self.fallback.forget(keys);
    }

    fn mode(&self) -> Source {
        if self.is_open() {
            Source::Fallback
        } else {
            Source::Redis
        }
    }
}

#[cfg(test)]
mod tests;
