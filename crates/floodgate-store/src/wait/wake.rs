//! [`WakeOnRelease`]: a store wrapper that tells the waiting room when
//! `concurrency` slots are given back, so the first waiter on that counter
//! re-checks at once instead of at its next poll.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use floodgate_core::AlgorithmKind;

use super::WaitRoom;
use crate::store::{
    Clear, Reconcile, Refund, Settle, Settled, Source, Store, StoreOp, StoreOutcome,
};
use crate::StoreError;

/// Wraps a store: every refund of a `concurrency` charge (a lease
/// release, or the undo of a denied check) wakes that counter's queue
/// here and, through the room's bus, on other sidecars.
pub struct WakeOnRelease {
    /// The store that keeps the counters.
    inner: Arc<dyn Store>,
    /// Whose queues to wake.
    room: Arc<WaitRoom>,
}

impl WakeOnRelease {
    /// `inner`, waking `room` on releases.
    pub fn new(inner: Arc<dyn Store>, room: Arc<WaitRoom>) -> Self {
        WakeOnRelease { inner, room }
    }
}

#[async_trait]
impl Store for WakeOnRelease {
    // The inner store's own future, handed on as it is: a check, the most
    // frequent call, gets no second boxed future around the first.
    fn check<'this, 'ops, 'op, 'call>(
        &'this self,
        ops: &'ops [StoreOp<'op>],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<StoreOutcome>, StoreError>> + Send + 'call>>
    where
        'this: 'call,
        'ops: 'call,
        'op: 'call,
    {
        self.inner.check(ops)
    }

    async fn refund(&self, refunds: &[Refund<'_>]) -> Result<(), StoreError> {
        let result = self.inner.refund(refunds).await;
        let mut keys: Vec<String> = Vec::new();
        for refund in refunds {
            // Only policies with a max_wait can have waiters.
            if refund.policy.kind() == AlgorithmKind::Concurrency
                && refund.policy.waiting().max_wait_us > 0
                && !keys.iter().any(|k| k == refund.key)
            {
                keys.push(refund.key.to_string());
            }
        }
        if !keys.is_empty() {
            // Even when the store failed: a waiter re-checks and learns.
            self.room.released(keys);
        }
        result
    }

    async fn reconcile(&self, charges: &[Reconcile]) -> Result<(), StoreError> {
        self.inner.reconcile(charges).await
    }

    async fn clear(&self, clears: &[Clear<'_>]) -> Result<(), StoreError> {
        self.inner.clear(clears).await
    }

    fn forget(&self, keys: &[&str]) {
        self.inner.forget(keys);
    }

    async fn settle(&self, settles: &[Settle<'_>]) -> Result<Vec<Settled>, StoreError> {
        self.inner.settle(settles).await
    }

    fn mode(&self) -> Source {
        self.inner.mode()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}
