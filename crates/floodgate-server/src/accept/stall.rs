//! Response bodies that hyper stopped asking for: after handing a frame
//! over (or from its start), a body waits to be polled again, which takes
//! as long as the client takes to read — on HTTP/2, to open its flow
//! control window, which no socket deadline sees. A body left waiting for
//! `send_timeout` means the client stopped reading; its connection is
//! dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The bodies of one connection that wait for hyper, and since when.
#[derive(Debug, Default)]
struct Shared {
    /// Waiting bodies by id, and whether the watch is parked for the first.
    waiting: Mutex<Waiting>,
    /// Ids of new bodies.
    next: AtomicU64,
    /// Woken when a body starts waiting while the watch is parked.
    first: Notify,
}

#[derive(Debug, Default)]
struct Waiting {
    bodies: HashMap<u64, Instant>,
    /// The watch found no body waiting and waits for the first: only then
    /// does a body that starts waiting wake it (a wake-up per request would
    /// cost more than the request's own work).
    parked: bool,
}

/// The waiting bodies of one connection.
#[derive(Debug, Clone, Default)]
pub struct Stalls(Arc<Shared>);

/// One body's place in [`Stalls`]; dropping it removes the body.
#[derive(Debug)]
pub struct Stall {
    shared: Arc<Shared>,
    id: u64,
}

impl Stalls {
    /// A new body, waiting to be polled from now on.
    pub fn body(&self) -> Stall {
        let id = self.0.next.fetch_add(1, Ordering::Relaxed);
        let stall = Stall {
            shared: self.0.clone(),
            id,
        };
        stall.waiting();
        stall
    }

    /// Resolves once some body has waited `timeout` without being polled.
    pub async fn stalled_for(&self, timeout: Duration) {
        loop {
            let first = self.0.first.notified();
            tokio::pin!(first);
            first.as_mut().enable();
            let oldest = {
                let mut waiting = self.0.lock();
                let oldest = waiting.bodies.values().min().copied();
                waiting.parked = oldest.is_none();
                oldest
            };
            match oldest {
                None => first.await,
                Some(since) if since.elapsed() >= timeout => return,
                Some(since) => tokio::time::sleep_until(since + timeout).await,
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Stall {
    /// The body handed a frame over: it waits to be polled again.
    pub fn waiting(&self) {
        let mut waiting = self.shared.lock();
        waiting.bodies.insert(self.id, Instant::now());
        if std::mem::take(&mut waiting.parked) {
            drop(waiting);
            self.shared.first.notify_waiters();
        }
    }

    /// The body is being polled.
    pub fn polled(&self) {
        self.shared.lock().bodies.remove(&self.id);
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.polled();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_left_waiting_is_a_stall_and_a_polled_one_is_not() {
        let stalls = Stalls::default();
        let timeout = Duration::from_secs(5);
        // No body: never stalled.
        assert!(
            tokio::time::timeout(Duration::from_secs(60), stalls.stalled_for(timeout))
                .await
                .is_err()
        );
        // A body polled every 4 s (waiting on its source in between) is not.
        let body = stalls.body();
        let poller = tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                body.polled();
                body.waiting();
            }
            body
        });
        let started = Instant::now();
        stalls.stalled_for(timeout).await;
        // Stalled only once the poller stopped after 40 s.
        assert!(
            started.elapsed() >= Duration::from_secs(45),
            "{:?}",
            started.elapsed()
        );
        drop(poller.await.unwrap());
        assert!(stalls.0.lock().bodies.is_empty());
    }
}
