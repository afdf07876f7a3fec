//! Waiting on tokio's paused clock: arrival order, the bounds, the caps,
//! clients that leave and shutdown. The local store reads the same clock.

use std::sync::Arc;
use std::time::Duration;

use floodgate_core::{AlgorithmKind, Attributes, Clock, Policy, PolicySet, PolicySpec};
use parking_lot::Mutex;
use tokio::time::Instant;

use super::*;
use crate::{LocalConfig, LocalStore, Source, Store};

const S: u64 = 1_000_000;

/// The local store's clock, moved by tokio's (paused) clock.
struct TokioClock(Instant);

impl Clock for TokioClock {
    fn now_us(&self) -> u64 {
        1_700_000_000 * S + self.0.elapsed().as_micros() as u64
    }
}

struct Setup {
    limiter: Arc<Limiter>,
    room: Arc<WaitRoom>,
}

fn setup(spec: PolicySpec, max_total: usize) -> Setup {
    let policy = Policy::new(PolicySpec {
        name: "p".into(),
        key: vec!["user".into()],
        ..spec
    })
    .unwrap();
    let room = Arc::new(WaitRoom::new(max_total, Duration::from_secs(1)));
    let local: Arc<dyn Store> = Arc::new(LocalStore::new(
        LocalConfig::default(),
        Arc::new(TokioClock(Instant::now())),
        Source::Local,
    ));
    let store = Arc::new(WakeOnRelease::new(local, room.clone()));
    Setup {
        limiter: Arc::new(Limiter::new(PolicySet::new(vec![policy]).unwrap(), store)),
        room,
    }
}

fn concurrency(limit: u64, max_wait_us: u64, max_waiting: Option<u64>) -> PolicySpec {
    PolicySpec {
        limit,
        algorithm: AlgorithmKind::Concurrency,
        max_wait_us: Some(max_wait_us),
        max_waiting,
        ..PolicySpec::default()
    }
}

fn user(u: &str) -> Attributes {
    [("user".to_string(), u.to_string())].into_iter().collect()
}

impl Setup {
    async fn check(&self, budget: Duration) -> Waited {
        let attributes = user("u1");
        let check = Check {
            attributes: &attributes,
            hits: 1,
            domain: None,
            reserve: false,
        };
        let snapshot = self.limiter.snapshot();
        check_waiting(
            &self.limiter,
            &self.room,
            &snapshot,
            &[check],
            LeaseMode::Held,
            budget,
        )
        .await
        .unwrap()
    }

    /// Spawns a waiting check; its verdict and wait when done.
    fn spawn(&self, budget: Duration) -> tokio::task::JoinHandle<Waited> {
        let me = Setup {
            limiter: self.limiter.clone(),
            room: self.room.clone(),
        };
        tokio::spawn(async move { me.check(budget).await })
    }
}

fn lease(w: &Waited) -> String {
    assert!(w.verdicts[0].allowed, "{w:?}");
    w.verdicts[0].lease.clone().unwrap()
}

/// Lets spawned tasks run until they all wait.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn released_slots_go_to_waiters_in_arrival_order() {
    let s = setup(concurrency(1, 10 * S, None), 100);
    let first = lease(&s.check(Duration::ZERO).await);
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (task, order) = (s.spawn(Duration::from_secs(10)), order.clone());
        tasks.push(tokio::spawn(async move {
            let w = task.await.unwrap();
            order.lock().push(i);
            w
        }));
        settle().await;
    }
    assert_eq!(s.room.waiting(), 4);
    let mut held = first;
    for (i, task) in tasks.into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.limiter.release(&held).await.unwrap();
        let w = task.await.unwrap();
        held = lease(&w);
        assert_eq!(
            w.waited_us,
            (i as u64 + 1) * 100_000,
            "woken at the release"
        );
        assert_eq!(order.lock().len(), i + 1, "one slot, one waiter served");
    }
    assert_eq!(*order.lock(), [0, 1, 2, 3]);
    assert_eq!(s.room.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_newcomer_queues_behind_the_waiters_even_if_a_slot_is_free() {
    let s = setup(concurrency(1, 10 * S, None), 100);
    let first = lease(&s.check(Duration::ZERO).await);
    let waiter = s.spawn(Duration::from_secs(10));
    settle().await;
    s.limiter.release(&first).await.unwrap();
    // The newcomer arrives before the woken waiter has re-checked.
    let newcomer = s.spawn(Duration::from_secs(10));
    let w = waiter.await.unwrap();
    assert!(w.verdicts[0].allowed);
    settle().await;
    assert!(!newcomer.is_finished(), "it waits for the next release");
    s.limiter.release(&lease(&w)).await.unwrap();
    assert!(newcomer.await.unwrap().verdicts[0].allowed);
}

#[tokio::test(start_paused = true)]
async fn a_wait_ends_at_the_shorter_of_max_wait_and_the_callers_budget() {
    let s = setup(concurrency(1, 2 * S, None), 100);
    let _held = lease(&s.check(Duration::ZERO).await);
    let started = Instant::now();
    let w = s.check(Duration::from_secs(60)).await;
    assert!(!w.verdicts[0].allowed);
    assert_eq!(w.waited_us, 2 * S);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    let w = s.check(Duration::from_millis(500)).await;
    assert!(!w.verdicts[0].allowed);
    assert_eq!(w.waited_us, 500_000);
    // No budget: denied at once.
    assert_eq!(s.check(Duration::ZERO).await.waited_us, 0);
    assert_eq!(s.room.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_lapsed_lease_frees_its_slot_for_the_waiter() {
    let s = setup(
        PolicySpec {
            lease_timeout_us: Some(1_500_000),
            ..concurrency(1, 5 * S, None)
        },
        100,
    );
    let _never_released = lease(&s.check(Duration::ZERO).await);
    let w = s.check(Duration::from_secs(5)).await;
    assert!(w.verdicts[0].allowed);
    assert_eq!(w.waited_us, 1_500_000);
}

#[tokio::test(start_paused = true)]
async fn past_the_queue_bounds_a_check_is_denied_at_once() {
    let s = setup(concurrency(1, 10 * S, Some(2)), 100);
    let _held = lease(&s.check(Duration::ZERO).await);
    let _a = s.spawn(Duration::from_secs(10));
    let _b = s.spawn(Duration::from_secs(10));
    settle().await;
    assert_eq!(s.room.waiting(), 2);
    let started = Instant::now();
    let w = s.check(Duration::from_secs(10)).await;
    assert!(!w.verdicts[0].allowed);
    assert_eq!((w.waited_us, started.elapsed()), (0, Duration::ZERO));

    // The room's own cap, over every key.
    let s = setup(concurrency(1, 10 * S, None), 1);
    let _held = lease(&s.check(Duration::ZERO).await);
    let _a = s.spawn(Duration::from_secs(10));
    settle().await;
    let w = s.check(Duration::from_secs(10)).await;
    assert_eq!((w.verdicts[0].allowed, w.waited_us), (false, 0));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_leaves_takes_nothing() {
    let s = setup(concurrency(1, 10 * S, None), 100);
    let first = lease(&s.check(Duration::ZERO).await);
    let gone = s.spawn(Duration::from_secs(10));
    let next = s.spawn(Duration::from_secs(10));
    settle().await;
    assert_eq!(s.room.waiting(), 2);
    gone.abort();
    settle().await;
    assert_eq!(s.room.waiting(), 1, "its place is gone");
    s.limiter.release(&first).await.unwrap();
    let w = next.await.unwrap();
    s.limiter.release(&lease(&w)).await.unwrap();
    // Nothing left held: a check without waiting passes.
    assert!(s.check(Duration::ZERO).await.verdicts[0].allowed);
}

#[tokio::test(start_paused = true)]
async fn shutdown_answers_every_waiter_at_once() {
    let s = setup(concurrency(1, 10 * S, None), 100);
    let _held = lease(&s.check(Duration::ZERO).await);
    let a = s.spawn(Duration::from_secs(10));
    let b = s.spawn(Duration::from_secs(10));
    settle().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.room.close();
    for task in [a, b] {
        let w = task.await.unwrap();
        assert!(!w.verdicts[0].allowed);
        assert_eq!(w.waited_us, 300_000);
    }
    // After shutdown nobody waits.
    assert_eq!(s.check(Duration::from_secs(10)).await.waited_us, 0);
}

#[tokio::test(start_paused = true)]
async fn token_bucket_waiters_take_the_next_conforming_times() {
    // One token per second, bucket of 1, waits up to 2.5 s.
    let s = setup(
        PolicySpec {
            limit: 1,
            window_us: Some(S),
            algorithm: AlgorithmKind::TokenBucket,
            max_wait_us: Some(2_500_000),
            ..PolicySpec::default()
        },
        100,
    );
    assert!(s.check(Duration::ZERO).await.verdicts[0].allowed);
    let a = s.spawn(Duration::from_secs(10));
    settle().await;
    let b = s.spawn(Duration::from_secs(10));
    settle().await;
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert!(a.verdicts[0].allowed && b.verdicts[0].allowed);
    assert_eq!((a.waited_us, b.waited_us), (S, 2 * S));
}

#[tokio::test(start_paused = true)]
async fn a_window_denial_beyond_the_wait_is_denied_at_once() {
    let s = setup(
        PolicySpec {
            limit: 1,
            window_us: Some(60 * S),
            algorithm: AlgorithmKind::FixedWindow,
            max_wait_us: Some(2 * S),
            ..PolicySpec::default()
        },
        100,
    );
    assert!(s.check(Duration::ZERO).await.verdicts[0].allowed);
    let w = s.check(Duration::from_secs(10)).await;
    assert_eq!((w.verdicts[0].allowed, w.waited_us), (false, 0));
}

#[tokio::test(start_paused = true)]
async fn a_window_denial_within_the_wait_waits_for_the_next_window() {
    let s = setup(
        PolicySpec {
            limit: 2,
            window_us: Some(S),
            algorithm: AlgorithmKind::FixedWindow,
            max_wait_us: Some(2 * S),
            ..PolicySpec::default()
        },
        100,
    );
    for _ in 0..2 {
        assert!(s.check(Duration::ZERO).await.verdicts[0].allowed);
    }
    let w = s.check(Duration::from_secs(10)).await;
    assert!(w.verdicts[0].allowed);
    assert!(w.waited_us > 0 && w.waited_us <= S, "{}", w.waited_us);
}

#[tokio::test(start_paused = true)]
async fn a_policy_without_max_wait_never_waits() {
    let s = setup(
        PolicySpec {
            limit: 1,
            algorithm: AlgorithmKind::Concurrency,
            ..PolicySpec::default()
        },
        100,
    );
    let _held = lease(&s.check(Duration::ZERO).await);
    let w = s.check(Duration::from_secs(10)).await;
    assert_eq!((w.verdicts[0].allowed, w.waited_us), (false, 0));
}
