//! The waiting room: one FIFO queue of waiting checks per counter key, a
//! cap per key and in total, wake-ups on release, and one switch that
//! answers every waiter at once on shutdown.
//!
//! A waiter is a [`Place`]: a ticket in its key's queue and a [`Notify`].
//! Only the head of a queue re-checks; when it leaves (allowed, timed out,
//! or dropped because its client went away) the next one becomes head and
//! is woken. Nothing is charged while waiting, so dropping a waiter at any
//! point leaves nothing behind but its removal from the queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::shared::SharedQueue;

/// Waiting checks in total when no cap is configured.
pub const DEFAULT_MAX_WAITING_TOTAL: usize = 10_000;

/// Tells other sidecars that slots of counters were released, so that
/// their waiters re-check (the Redis store publishes; see floodgate-redis).
pub trait WakeBus: Send + Sync {
    /// Announces releases on `keys` (counter keys, `<policy>:<values>`).
    /// Must not block; failures are only logged (waiters also poll).
    fn publish(&self, keys: Vec<String>);
}

/// Why a check could not join a queue: it is denied at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The key's queue holds `max_waiting` checks already.
    KeyFull,
    /// `max_waiting_total` checks wait already.
    TotalFull,
    /// The server is shutting down.
    Closed,
}

impl Refused {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::KeyFull => "key_full",
            Refused::TotalFull => "total_full",
            Refused::Closed => "shutdown",
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// Notified: a release, or the place ahead left.
    Notified,
    /// The time asked for has come.
    Timeout,
    /// The server is shutting down.
    Closed,
}

/// One counter's waiters: (ticket, wake-up), in arrival order.
type Queue = VecDeque<(u64, Arc<Notify>)>;

/// The queues of one process.
pub struct WaitRoom {
    /// Counter key → tickets in arrival order, with their wake-up.
    queues: Mutex<HashMap<String, Queue>>,
    /// Waiters in all queues.
    total: AtomicUsize,
    /// Most waiters in all queues together.
    max_total: usize,
    /// Next ticket number (arrival order).
    next_ticket: AtomicU64,
    /// Cancelled on shutdown: every waiter is answered at once.
    closed: CancellationToken,
    /// How often the head of a `concurrency` queue re-checks without being
    /// woken: a safety net for wake-ups that never come (a lease that
    /// lapsed, a message lost between sidecars).
    poll: Duration,
    /// Where releases are announced to other sidecars, if anywhere.
    bus: OnceLock<Arc<dyn WakeBus>>,
    /// The queue of waiters shared by every sidecar, if any.
    shared: OnceLock<Arc<dyn SharedQueue>>,
}

impl std::fmt::Debug for WaitRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitRoom")
            .field("total", &self.total.load(Ordering::Relaxed))
            .field("max_total", &self.max_total)
            .finish_non_exhaustive()
    }
}

impl WaitRoom {
    /// A room for at most `max_total` waiters; a queue head without news
    /// re-checks every `poll`.
    pub fn new(max_total: usize, poll: Duration) -> Self {
        WaitRoom {
            queues: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
            max_total,
            next_ticket: AtomicU64::new(0),
            closed: CancellationToken::new(),
            poll,
            bus: OnceLock::new(),
            shared: OnceLock::new(),
        }
    }

    /// Orders waiters by `queue` across sidecars (once; later calls are
    /// ignored).
    pub fn set_shared(&self, queue: Arc<dyn SharedQueue>) {
        let _ = self.shared.set(queue);
    }

    /// The shared queue, if set.
    pub fn shared(&self) -> Option<&Arc<dyn SharedQueue>> {
        self.shared.get()
    }

    /// Wakes every waiter on `key` (each then asks whether it is first).
    pub fn wake_all(&self, key: &str) {
        if self.waiting() == 0 {
            return;
        }
        if let Some(queue) = self.queues.lock().get(key) {
            for (_, notify) in queue {
                notify.notify_one();
            }
        }
    }

    /// Sends releases to `bus` too (once; later calls are ignored).
    pub fn set_bus(&self, bus: Arc<dyn WakeBus>) {
        let _ = self.bus.set(bus);
    }

    /// The poll interval of `concurrency` queue heads.
    pub fn poll(&self) -> Duration {
        self.poll
    }

    /// Waiters right now, in all queues.
    pub fn waiting(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Whether checks on `key` are waiting.
    pub fn has_waiters(&self, key: &str) -> bool {
        self.waiting() > 0 && self.queues.lock().contains_key(key)
    }

    /// Answers every waiter now and refuses new ones (shutdown).
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Whether the room is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Wakes the head of each queue of `keys` (slots were released there).
    pub fn wake(&self, keys: &[&str]) {
        if self.waiting() == 0 {
            return;
        }
        let queues = self.queues.lock();
        for key in keys {
            if let Some((_, notify)) = queues.get(*key).and_then(VecDeque::front) {
                notify.notify_one();
            }
        }
    }

    /// [`WaitRoom::wake`] here, and announces the releases to other
    /// sidecars through the bus.
    pub fn released(&self, keys: Vec<String>) {
        self.wake(&keys.iter().map(String::as_str).collect::<Vec<_>>());
        if let Some(bus) = self.bus.get() {
            bus.publish(keys);
        }
    }

    /// Joins the back of `key`'s queue, unless it holds `max_waiting`
    /// already, the room is full or closed.
    ///
    /// # Errors
    /// [`Refused`]: the check is denied at once.
    pub fn enter(self: &Arc<Self>, key: &str, max_waiting: u32) -> Result<Place, Refused> {
        if self.is_closed() {
            return Err(Refused::Closed);
        }
        let mut queues = self.queues.lock();
        let queue = queues.entry(key.to_string()).or_default();
        if queue.len() >= max_waiting as usize {
            if queue.is_empty() {
                queues.remove(key);
            }
            return Err(Refused::KeyFull);
        }
        if self.total.fetch_add(1, Ordering::Relaxed) >= self.max_total {
            self.total.fetch_sub(1, Ordering::Relaxed);
            if queue.is_empty() {
                queues.remove(key);
            }
            return Err(Refused::TotalFull);
        }
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        queue.push_back((ticket, notify.clone()));
        metrics::gauge!(floodgate_core::metric::WAITING).increment(1.0);
        Ok(Place {
            room: self.clone(),
            key: key.to_string(),
            ticket,
            notify,
        })
    }

    /// Removes `ticket` from `key`'s queue; wakes the new head if the
    /// leaver was the head.
    fn leave(&self, key: &str, ticket: u64) {
        let mut queues = self.queues.lock();
        let Some(queue) = queues.get_mut(key) else {
            return;
        };
        let Some(at) = queue.iter().position(|(t, _)| *t == ticket) else {
            return;
        };
        queue.remove(at);
        self.total.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!(floodgate_core::metric::WAITING).decrement(1.0);
        match queue.front() {
            Some((_, next)) if at == 0 => next.notify_one(),
            Some(_) => {}
            None => {
                queues.remove(key);
            }
        }
    }

    fn is_head(&self, key: &str, ticket: u64) -> bool {
        self.queues
            .lock()
            .get(key)
            .and_then(VecDeque::front)
            .is_some_and(|(t, _)| *t == ticket)
    }
}

/// A check's place in a queue; leaving the queue when dropped.
#[derive(Debug)]
pub struct Place {
    /// The room it waits in.
    pub(super) room: Arc<WaitRoom>,
    /// The counter key it waits on.
    key: String,
    /// Its arrival number.
    ticket: u64,
    /// Woken when it becomes head or, as head, on a release.
    notify: Arc<Notify>,
}

impl Place {
    /// The counter key it waits on.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether it is first in its queue (the only place that re-checks).
    pub fn is_head(&self) -> bool {
        self.room.is_head(&self.key, self.ticket)
    }

    /// Waits until woken, `until`, or shutdown, whichever comes first.
    pub async fn wait(&self, until: Instant) -> Woken {
        tokio::select! {
            biased;
            () = self.room.closed.cancelled() => Woken::Closed,
            () = self.notify.notified() => Woken::Notified,
            () = tokio::time::sleep_until(until) => Woken::Timeout,
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.room.leave(&self.key, self.ticket);
    }
}
