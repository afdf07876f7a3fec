//! Arrival order across sidecars for waiting checks: a queue of tickets
//! kept next to the counter in the shared store (Redis). Only the
//! ticket first in that queue re-checks; it leaves the queue when served,
//! when its wait ends, or when its client goes away (the drop of the
//! waiting future), and each leave wakes every sidecar's waiters on that
//! counter so the next ticket learns it is first.
//!
//! When the shared store cannot be reached the waiter falls back to the
//! local order (its own queue in this process), as the failover store
//! falls back to local counters.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use floodgate_core::Policy;

use crate::StoreError;

/// A queue of waiting tickets per counter, shared by every sidecar.
#[async_trait]
pub trait SharedQueue: Send + Sync {
    /// How many tickets wait on `key` (lapsed ones not counted).
    ///
    /// # Errors
    /// [`StoreError`] when the shared store cannot be reached.
    async fn len(&self, policy: &Policy, key: &str) -> Result<u64, StoreError>;

    /// Joins the back of `key`'s queue with a ticket that lapses after
    /// `ttl` (a sidecar that dies leaves no ticket behind for longer).
    /// `None` when the queue holds `max_waiting` tickets already.
    ///
    /// # Errors
    /// [`StoreError`] when the shared store cannot be reached.
    async fn join(
        &self,
        policy: &Policy,
        key: &str,
        ttl: Duration,
        max_waiting: u32,
    ) -> Result<Option<String>, StoreError>;

    /// The ticket's place in the queue, 0 = first (lapsed tickets ahead
    /// are dropped); `None` when the ticket is no longer there.
    ///
    /// # Errors
    /// [`StoreError`] when the shared store cannot be reached.
    async fn rank(
        &self,
        policy: &Policy,
        key: &str,
        ticket: &str,
    ) -> Result<Option<u64>, StoreError>;

    /// Leaves the queue and wakes every sidecar's waiters on `key`. Must
    /// not block (it is called from `Drop`): sent in the background.
    fn leave(&self, policy: &Policy, key: &str, ticket: String);
}

/// A ticket held in a [`SharedQueue`]; leaves the queue when dropped.
pub struct Ticket {
    /// The queue.
    queue: Arc<dyn SharedQueue>,
    /// The counter's policy.
    policy: Arc<Policy>,
    /// The counter key.
    key: String,
    /// The ticket, as the queue names it.
    ticket: String,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("key", &self.key)
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}

/// What joining the shared queue gave.
#[derive(Debug)]
pub enum Joined {
    /// A ticket in the shared queue.
    Ticket(Ticket),
    /// The queue is full: denied at once.
    Full,
    /// The shared store is unreachable: wait in local order.
    Unreachable,
}

/// Joins `key`'s shared queue.
pub(super) async fn join(
    queue: &Arc<dyn SharedQueue>,
    policy: &Arc<Policy>,
    key: &str,
    ttl: Duration,
) -> Joined {
    let max_waiting = policy.waiting().max_waiting;
    match queue.join(policy, key, ttl, max_waiting).await {
        Ok(Some(ticket)) => Joined::Ticket(Ticket {
            queue: queue.clone(),
            policy: policy.clone(),
            key: key.to_string(),
            ticket,
        }),
        Ok(None) => Joined::Full,
        Err(error) => {
            tracing::debug!(%error, "shared wait queue unreachable: local order");
            Joined::Unreachable
        }
    }
}

impl Ticket {
    /// The counter key it waits on.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether it is first in the shared queue. `true` when the queue
    /// cannot be read (the check then decides, in local order) or the
    /// ticket lapsed.
    pub async fn is_first(&self) -> bool {
        match self.queue.rank(&self.policy, &self.key, &self.ticket).await {
            Ok(Some(rank)) => rank == 0,
            Ok(None) | Err(_) => true,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.queue
            .leave(&self.policy, &self.key, std::mem::take(&mut self.ticket));
    }
}
