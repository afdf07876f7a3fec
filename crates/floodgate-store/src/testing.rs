//! One fake shared store for tests: [`FakeStore`] answers as Redis would
//! (`Source::Redis`), counts its calls, records the ops it is asked, and
//! can be put down, brought back up, or made to fail with a chosen
//! [`StoreError`]. It decides either "always allow" ([`FakeStore::allowing`])
//! or through a real [`LocalStore`] ([`FakeStore::over`]). Compiled only
//! with the `testing` feature, which the workspace's crates enable in their
//! `[dev-dependencies]`; production builds never do.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use floodgate_core::Outcome;
use parking_lot::Mutex;

use crate::{
    Clear, LocalStore, Reconcile, Refund, Settle, Settled, Source, Store, StoreError, StoreOp,
    StoreOutcome,
};

/// A primary whose answers the test scripts. Every [`Store`] method is
/// counted; while a failure is set ([`FakeStore::fail_with`],
/// [`FakeStore::down`]) every call that reaches the store fails with it.
#[derive(Default)]
pub struct FakeStore {
    /// The real decider; `None` allows every op without a receipt.
    decider: Option<LocalStore>,
    /// `Some(e)`: every call fails with `e` (the store is down).
    fail: Mutex<Option<StoreError>>,
    /// `Some(e)`: reconciles fail with `e` although other calls answer.
    reconcile_fail: Mutex<Option<StoreError>>,
    /// Calls to each method, failed ones included.
    calls: Calls,
    /// The `(hits, charge)` of every op a check that answered asked, in
    /// order.
    asked: Mutex<Vec<(u64, bool)>>,
    /// The charges every reconcile that answered added, in order.
    reconciled: Mutex<Vec<Reconcile>>,
    /// The keys every `forget` named, in order.
    forgotten: Mutex<Vec<String>>,
}

/// How many times each [`Store`] method was called.
#[derive(Default)]
struct Calls {
    check: AtomicUsize,
    refund: AtomicUsize,
    reconcile: AtomicUsize,
    settle: AtomicUsize,
    clear: AtomicUsize,
    forget: AtomicUsize,
    ping: AtomicUsize,
}

impl FakeStore {
    /// A store that is up and allows every op (limit from the policy,
    /// nothing remaining, no receipt).
    pub fn allowing() -> Self {
        FakeStore::default()
    }

    /// A store that is up and decides through `local`, reporting its
    /// outcomes as Redis's.
    pub fn over(local: LocalStore) -> Self {
        FakeStore {
            decider: Some(local),
            ..FakeStore::default()
        }
    }

    /// The local store deciding, if any.
    pub fn local(&self) -> Option<&LocalStore> {
        self.decider.as_ref()
    }

    /// Every call fails with `error` from now on; `None` answers again.
    pub fn fail_with(&self, error: Option<StoreError>) {
        *self.fail.lock() = error;
    }

    /// The store is unreachable: every call fails with
    /// `StoreError::Unavailable("down")`.
    pub fn down(&self) {
        self.fail_with(Some(StoreError::Unavailable("down".into())));
    }

    /// The store answers again.
    pub fn up(&self) {
        self.fail_with(None);
    }

    /// Reconciles fail with `error` (while other calls answer); `None`
    /// lets them through again.
    pub fn fail_reconcile_with(&self, error: Option<StoreError>) {
        *self.reconcile_fail.lock() = error;
    }

    /// Calls to `check` so far.
    pub fn checks(&self) -> usize {
        self.calls.check.load(Ordering::SeqCst)
    }

    /// Calls to `refund` so far.
    pub fn refunds(&self) -> usize {
        self.calls.refund.load(Ordering::SeqCst)
    }

    /// Calls to `reconcile` so far.
    pub fn reconciles(&self) -> usize {
        self.calls.reconcile.load(Ordering::SeqCst)
    }

    /// Calls to `settle` so far.
    pub fn settles(&self) -> usize {
        self.calls.settle.load(Ordering::SeqCst)
    }

    /// Calls to `clear` so far.
    pub fn clears(&self) -> usize {
        self.calls.clear.load(Ordering::SeqCst)
    }

    /// Calls to `forget` so far.
    pub fn forgets(&self) -> usize {
        self.calls.forget.load(Ordering::SeqCst)
    }

    /// Calls to `ping` so far.
    pub fn pings(&self) -> usize {
        self.calls.ping.load(Ordering::SeqCst)
    }

    /// The `(hits, charge)` of every op answered checks asked, in order.
    pub fn asked(&self) -> Vec<(u64, bool)> {
        self.asked.lock().clone()
    }

    /// Forgets the ops asked so far.
    pub fn clear_asked(&self) {
        self.asked.lock().clear();
    }

    /// The charges answered reconciles added, in order.
    pub fn reconciled(&self) -> Vec<Reconcile> {
        self.reconciled.lock().clone()
    }

    /// The keys `forget` was given, in order.
    pub fn forgotten(&self) -> Vec<String> {
        self.forgotten.lock().clone()
    }

    /// Counts one call and fails it if a failure is set.
    fn call(&self, counter: &AtomicUsize) -> Result<(), StoreError> {
        counter.fetch_add(1, Ordering::SeqCst);
        self.fail.lock().clone().map_or(Ok(()), Err)
    }
}

/// What an always-allowing store answers for `op`.
fn allowed(op: &StoreOp<'_>) -> StoreOutcome {
    StoreOutcome {
        outcome: Outcome {
            allowed: true,
            limit: op.policy.limit(),
            remaining: 0,
            reset_after_us: 0,
            retry_after_us: 0,
            receipt: None,
        },
        source: Source::Redis,
    }
}

#[async_trait]
impl Store for FakeStore {
    async fn check(&self, ops: &[StoreOp<'_>]) -> Result<Vec<StoreOutcome>, StoreError> {
        self.call(&self.calls.check)?;
        self.asked
            .lock()
            .extend(ops.iter().map(|op| (op.hits, op.charge)));
        let Some(local) = &self.decider else {
            return Ok(ops.iter().map(allowed).collect());
        };
        let mut outcomes = local.check(ops).await?;
        for outcome in &mut outcomes {
            outcome.source = Source::Redis;
        }
        Ok(outcomes)
    }

    async fn refund(&self, refunds: &[Refund<'_>]) -> Result<(), StoreError> {
        self.call(&self.calls.refund)?;
        match &self.decider {
            Some(local) => local.refund(refunds).await,
            None => Ok(()),
        }
    }

    async fn reconcile(&self, charges: &[Reconcile]) -> Result<(), StoreError> {
        self.call(&self.calls.reconcile)?;
        if let Some(error) = self.reconcile_fail.lock().clone() {
            return Err(error);
        }
        self.reconciled.lock().extend_from_slice(charges);
        match &self.decider {
            Some(local) => local.reconcile(charges).await,
            None => Ok(()),
        }
    }

    async fn settle(&self, settles: &[Settle<'_>]) -> Result<Vec<Settled>, StoreError> {
        self.call(&self.calls.settle)?;
        match &self.decider {
            Some(local) => local.settle(settles).await,
            None => Err(StoreError::Protocol("this store cannot settle".into())),
        }
    }

    async fn clear(&self, clears: &[Clear<'_>]) -> Result<(), StoreError> {
        self.call(&self.calls.clear)?;
        match &self.decider {
            Some(local) => local.clear(clears).await,
            None => Ok(()),
        }
    }

    /// Records the keys. The decider keeps its counters: `forget` never
    /// touches a shared store's state, and this store stands for one.
    fn forget(&self, keys: &[&str]) {
        self.calls.forget.fetch_add(1, Ordering::SeqCst);
        self.forgotten
            .lock()
            .extend(keys.iter().map(|key| (*key).to_owned()));
    }

    fn mode(&self) -> Source {
        Source::Redis
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.call(&self.calls.ping)
    }
}
