//! Response bodies that hyper stopped asking for: after handing a frame
//! over (or from its start), a body waits to be polled again, which takes
//! as long as the client takes to read — on HTTP/2, to open its flow
//! control window, which no socket deadline sees. A body left waiting for
//! `send_timeout` means the client stopped reading; its connection is
//! dropped.
//!
//! A body's updates cost a lock and a clock read and wake nothing: the
//! watch is lazy, like the idle watch. It looks for the body waiting
//! longest and sleeps until that body's timeout, or for the whole timeout
//! when none waits, then looks again.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// The bodies of one connection that wait for hyper, and since when: one
/// slot per live body, reused once the body is dropped, so a body's
/// updates index its slot with no hashing (several per request).
#[derive(Debug, Default)]
struct Waiting {
    /// Per slot: since when its body waits, `None` while it is polled
    /// (or the slot is free).
    since: Vec<Option<Instant>>,
    /// Slots whose body was dropped.
    free: Vec<usize>,
}

/// The waiting bodies of one connection.
#[derive(Debug, Clone, Default)]
pub struct Stalls(Arc<Mutex<Waiting>>);

/// One body's place in [`Stalls`]; dropping it removes the body.
#[derive(Debug)]
pub struct Stall {
    stalls: Stalls,
    slot: usize,
}

impl Stalls {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new body, waiting to be polled from now on.
    pub fn body(&self) -> Stall {
        let now = Some(Instant::now());
        let mut waiting = self.lock();
        let slot = match waiting.free.pop() {
            Some(slot) => {
                waiting.since[slot] = now;
                slot
            }
            None => {
                waiting.since.push(now);
                waiting.since.len() - 1
            }
        };
        drop(waiting);
        Stall {
            stalls: self.clone(),
            slot,
        }
    }

    /// Resolves once some body has waited `timeout` without being polled.
    pub async fn stalled_for(&self, timeout: Duration) {
        loop {
            let oldest = self.lock().since.iter().flatten().min().copied();
            let wake = match oldest {
                None => Instant::now() + timeout,
                Some(since) if since.elapsed() >= timeout => return,
                Some(since) => since + timeout,
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

impl Stall {
    /// The body handed a frame over: it waits to be polled again.
    pub fn waiting(&self) {
        let now = Instant::now();
        self.stalls.lock().since[self.slot] = Some(now);
    }

    /// The body is being polled.
    pub fn polled(&self) {
        self.stalls.lock().since[self.slot] = None;
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        let mut waiting = self.stalls.lock();
        waiting.since[self.slot] = None;
        waiting.free.push(self.slot);
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
        // Stalled 5 s after the poller's last poll, at 40 s.
        assert_eq!(started.elapsed(), Duration::from_secs(45));
        drop(poller.await.unwrap());
        let waiting = stalls.lock();
        assert!(waiting.since.iter().all(Option::is_none));
        assert_eq!(waiting.free.len(), waiting.since.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_body_frees_its_slot_and_the_longest_wait_counts() {
        let stalls = Stalls::default();
        let timeout = Duration::from_secs(5);
        let (first, second) = (stalls.body(), stalls.body());
        drop(first);
        second.polled();
        tokio::time::sleep(Duration::from_secs(3)).await;
        // The new body takes the dropped one's slot and waits from now.
        let third = stalls.body();
        assert_eq!((third.slot, stalls.lock().since.len()), (0, 2));
        let started = Instant::now();
        stalls.stalled_for(timeout).await;
        assert_eq!(started.elapsed(), timeout);
        third.polled();
        second.waiting();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = Instant::now();
        stalls.stalled_for(timeout).await;
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }
}
