//! Requests' time limits, kept by their connection: a request answered in
//! its first poll (most checks on the local store) costs nothing; one still
//! pending takes a slot in its connection's [`Deadlines`], and the
//! connection's watch wakes it once its time is up. One timer per
//! connection, set for the earliest limit, instead of one per request.
//! When that limit comes the watch looks over the connection's pending
//! requests, at most `max_concurrent_streams` of them.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The time limits of one connection's pending requests.
#[derive(Debug, Clone, Default)]
pub struct Deadlines(Arc<Shared>);

/// What a connection's requests and its watch share.
#[derive(Debug, Default)]
struct Shared {
    slots: Mutex<Slots>,
    /// Tells the watch of a limit earlier than the one it sleeps until.
    earlier: Notify,
}

/// The pending requests' slots, and what the watch knows of them.
#[derive(Debug, Default)]
struct Slots {
    /// One entry per slot; a free slot's entry has no waker.
    entries: Vec<Entry>,
    /// Free slots.
    free: Vec<usize>,
    /// What the watch sleeps until: no limit before it goes unseen.
    next: Option<Instant>,
    /// The watch has ended (the connection is gone): a request still
    /// pending is out of time.
    closed: bool,
}

/// One pending request's limit.
#[derive(Debug)]
struct Entry {
    /// When its time is up.
    at: Instant,
    /// Its task; `None` once the slot is free.
    waker: Option<Waker>,
    /// Its time is up and it was woken for that (or the watch ended).
    expired: bool,
}

impl Deadlines {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.0.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a request pending until `at`, woken through `waker` once
    /// `at` has passed; `None` when the watch has ended.
    fn add(&self, at: Instant, waker: &Waker) -> Option<usize> {
        let mut slots = self.lock();
        if slots.closed {
            return None;
        }
        let entry = Entry {
            at,
            waker: Some(waker.clone()),
            expired: false,
        };
        let slot = match slots.free.pop() {
            Some(slot) => {
                slots.entries[slot] = entry;
                slot
            }
            None => {
                slots.entries.push(entry);
                slots.entries.len() - 1
            }
        };
        let earlier = slots.next.is_none_or(|next| at < next);
        if earlier {
            slots.next = Some(at);
        }
        drop(slots);
        if earlier {
            self.0.earlier.notify_one();
        }
        Some(slot)
    }

    /// Whether `slot`'s time is up; if not, it is woken through `waker`.
    fn expired(&self, slot: usize, waker: &Waker) -> bool {
        let mut slots = self.lock();
        let entry = &mut slots.entries[slot];
        if entry.expired {
            return true;
        }
        match &mut entry.waker {
            Some(held) if held.will_wake(waker) => {}
            held => *held = Some(waker.clone()),
        }
        false
    }

    fn free(&self, slot: usize) {
        let mut slots = self.lock();
        slots.entries[slot].waker = None;
        slots.free.push(slot);
    }

    /// Wakes every request whose time is up; the earliest limit left.
    fn expire_due(&self) -> Option<Instant> {
        let mut slots = self.lock();
        let (due, next) = slots.expire(Some(Instant::now()));
        slots.next = next;
        drop(slots);
        due.into_iter().for_each(Waker::wake);
        next
    }

    /// Keeps the limits: wakes each pending request once its time is up.
    /// Never returns. The pending requests are looked over only when the
    /// earliest limit comes; a new, earlier one just moves the wake-up.
    pub async fn keep(&self) -> Infallible {
        let sleep = tokio::time::sleep_until(Instant::now());
        tokio::pin!(sleep);
        let mut next = self.expire_due();
        loop {
            match next {
                Some(at) => {
                    sleep.as_mut().reset(at);
                    tokio::select! {
                        () = sleep.as_mut() => next = self.expire_due(),
                        // `add` has lowered `next` to the new limit.
                        () = self.0.earlier.notified() => next = self.lock().next,
                    }
                }
                None => {
                    self.0.earlier.notified().await;
                    next = self.lock().next;
                }
            }
        }
    }
}

/// Held by a connection's watch: once dropped (the connection is gone),
/// every request still pending, and every one that would wait from then
/// on, is out of time.
#[derive(Debug)]
pub struct Kept(pub Deadlines);

impl Drop for Kept {
    fn drop(&mut self) {
        let mut slots = self.0.lock();
        slots.closed = true;
        let (due, _) = slots.expire(None);
        drop(slots);
        due.into_iter().for_each(Waker::wake);
    }
}

impl Slots {
    /// Marks expired each pending request whose time is up by `now` (every
    /// one, without a `now`): their wakers, to wake once the lock is given
    /// back, and the earliest limit left.
    fn expire(&mut self, now: Option<Instant>) -> (Vec<Waker>, Option<Instant>) {
        let (mut due, mut next) = (Vec::new(), None::<Instant>);
        for entry in &mut self.entries {
            let Some(waker) = &entry.waker else { continue };
            if entry.expired {
                continue;
            }
            if now.is_none_or(|now| entry.at <= now) {
                entry.expired = true;
                due.push(waker.clone());
            } else if next.is_none_or(|n| entry.at < n) {
                next = Some(entry.at);
            }
        }
        (due, next)
    }
}

/// A request's time limit, and its answer once the limit has passed.
pub type Limit<T> = (Duration, fn(Duration) -> T);

/// `future`'s answer, or `limit.1(limit.0)` once it has been pending for
/// `limit.0`, kept by `deadlines`; without a limit, `future`'s answer
/// whenever it comes.
pub fn deadline<F: Future>(
    deadlines: Deadlines,
    limit: Option<Limit<F::Output>>,
    future: F,
) -> Deadline<F> {
    Deadline {
        future,
        limit,
        slot: Slot {
            deadlines,
            slot: None,
        },
    }
}

/// A request's place in [`Deadlines`], given back when dropped.
struct Slot {
    deadlines: Deadlines,
    slot: Option<usize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.deadlines.free(slot);
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`deadline`]: the answer's future, its time limit, the
    /// answer given when it runs out, and its slot once it is pending.
    pub struct Deadline<F: Future> {
        #[pin]
        future: F,
        limit: Option<Limit<F::Output>>,
        slot: Slot,
    }
}

impl<F: Future> Future for Deadline<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(answer) = this.future.poll(cx) {
            return Poll::Ready(answer);
        }
        let Some((timeout, elapsed)) = *this.limit else {
            return Poll::Pending;
        };
        let Slot { deadlines, slot } = this.slot;
        let out_of_time = match *slot {
            Some(held) => deadlines.expired(held, cx.waker()),
            None => {
                *slot = deadlines.add(Instant::now() + timeout, cx.waker());
                slot.is_none()
            }
        };
        if out_of_time {
            return Poll::Ready(elapsed(timeout));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn late(timeout: Duration) -> Result<u32, Duration> {
        Err(timeout)
    }

    async fn after(delay: Duration) -> Result<u32, Duration> {
        tokio::time::sleep(delay).await;
        Ok(7)
    }

    fn limit(seconds: u64) -> Option<Limit<Result<u32, Duration>>> {
        Some((Duration::from_secs(seconds), late))
    }

    /// `deadlines` kept by a task of its own, as a connection's watch
    /// keeps them; dropping the handle ends the watch.
    fn watched(deadlines: &Deadlines) -> tokio_util::task::AbortOnDropHandle<()> {
        let (deadlines, kept) = (deadlines.clone(), Kept(deadlines.clone()));
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            let _kept = kept;
            deadlines.keep().await;
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_ready_answer_takes_no_slot_and_a_slow_one_times_out() {
        let deadlines = Deadlines::default();
        let _watch = watched(&deadlines);
        let answer = deadline(deadlines.clone(), limit(1), async { Ok(7) });
        tokio::pin!(answer);
        assert_eq!(answer.as_mut().await, Ok(7));
        assert!(answer.slot.slot.is_none());
        assert!(deadlines.lock().entries.is_empty());

        let started = Instant::now();
        let slow = deadline(deadlines.clone(), limit(1), after(Duration::from_secs(5)));
        assert_eq!(slow.await, Err(Duration::from_secs(1)));
        assert_eq!(started.elapsed(), Duration::from_secs(1));

        let in_time = deadline(deadlines.clone(), limit(2), after(Duration::from_secs(1)));
        assert_eq!(in_time.await, Ok(7));
        // Both slots were given back; the next request takes one of them.
        let slots = deadlines.lock();
        assert_eq!((slots.entries.len(), slots.free.len()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn each_request_ends_at_its_own_limit_whatever_the_order() {
        let deadlines = Deadlines::default();
        let _watch = watched(&deadlines);
        let started = Instant::now();
        // A long limit first: the watch sleeps until it, and must be told
        // of each shorter one that comes after.
        let requests: Vec<_> = [30, 10, 20, 5]
            .into_iter()
            .map(|seconds| {
                let request = deadline(deadlines.clone(), limit(seconds), std::future::pending());
                tokio::spawn(async move {
                    let answer = request.await;
                    (answer, started.elapsed().as_secs())
                })
            })
            .collect();
        for (request, seconds) in requests.into_iter().zip([30, 10, 20, 5]) {
            let (answer, ended) = request.await.unwrap();
            assert_eq!(
                (answer, ended),
                (Err(Duration::from_secs(seconds)), seconds)
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_woken_by_its_answer_keeps_its_limit() {
        let deadlines = Deadlines::default();
        let _watch = watched(&deadlines);
        let started = Instant::now();
        // Woken every second by its own work, never done.
        let busy = async {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        let answer = deadline(deadlines.clone(), limit(3), busy).await;
        assert_eq!(answer, Err(Duration::from_secs(3)));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn once_the_watch_ends_pending_requests_are_out_of_time() {
        let deadlines = Deadlines::default();
        let watch = watched(&deadlines);
        let pending = tokio::spawn(deadline(
            deadlines.clone(),
            limit(60),
            std::future::pending(),
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        drop(watch);
        assert_eq!(pending.await.unwrap(), Err(Duration::from_secs(60)));
        assert_eq!(started.elapsed(), Duration::ZERO);
        // And a request that would wait after that ends at once.
        let late = deadline(deadlines.clone(), limit(60), std::future::pending());
        assert_eq!(late.await, Err(Duration::from_secs(60)));
        // So too when the watch is dropped before it ever ran.
        let deadlines = Deadlines::default();
        drop(watched(&deadlines));
        let late = deadline(deadlines.clone(), limit(60), std::future::pending());
        assert_eq!(late.await, Err(Duration::from_secs(60)));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_limit_a_request_waits_for_its_answer() {
        let deadlines = Deadlines::default();
        let _watch = watched(&deadlines);
        let answer = deadline(deadlines.clone(), None, after(Duration::from_secs(3600)));
        assert_eq!(answer.await, Ok(7));
        assert!(deadlines.lock().entries.is_empty());
    }
}
