//! Two sidecars (two rooms, two limiters) over one store and one shared
//! ticket queue, on tokio's paused clock: waiters are served in the order
//! they joined the shared queue, whichever sidecar holds them.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use floodgate_core::{AlgorithmKind, Attributes, Clock, Policy, PolicySet, PolicySpec};
use parking_lot::Mutex;
use tokio::time::Instant;

use super::*;
use crate::{LocalConfig, LocalStore, Source, Store, StoreError};

/// The shared queue and the wake channel between the rooms.
#[derive(Default)]
struct FakeShared {
    /// (counter key, ticket) in arrival order.
    tickets: Mutex<Vec<(String, String)>>,
    /// Every sidecar's room, woken on releases and leaves.
    rooms: Mutex<Vec<Weak<WaitRoom>>>,
    /// Tickets issued.
    issued: Mutex<u64>,
}

impl FakeShared {
    fn wake_all(&self, key: &str) {
        for room in self.rooms.lock().iter().filter_map(Weak::upgrade) {
            room.wake_all(key);
        }
    }
}

#[async_trait]
impl SharedQueue for FakeShared {
    async fn len(&self, _: &Policy, key: &str) -> Result<u64, StoreError> {
        Ok(self.tickets.lock().iter().filter(|(k, _)| k == key).count() as u64)
    }

    async fn join(
        &self,
        _: &Policy,
        key: &str,
        _: Duration,
        max_waiting: u32,
    ) -> Result<Option<String>, StoreError> {
        let mut tickets = self.tickets.lock();
        if tickets.iter().filter(|(k, _)| k == key).count() >= max_waiting as usize {
            return Ok(None);
        }
        let mut issued = self.issued.lock();
        *issued += 1;
        let ticket = issued.to_string();
        tickets.push((key.to_string(), ticket.clone()));
        Ok(Some(ticket))
    }

    async fn rank(&self, _: &Policy, key: &str, ticket: &str) -> Result<Option<u64>, StoreError> {
        let tickets = self.tickets.lock();
        let mine = tickets.iter().filter(|(k, _)| k == key);
        Ok(mine
            .clone()
            .position(|(_, t)| t == ticket)
            .map(|p| p as u64))
    }

    fn leave(&self, _: &Policy, key: &str, ticket: String) {
        self.tickets
            .lock()
            .retain(|(k, t)| !(k == key && *t == ticket));
        self.wake_all(key);
    }
}

/// Publishes a release to every room, as the Redis channel does.
struct FakeBus(Arc<FakeShared>);

impl WakeBus for FakeBus {
    fn publish(&self, keys: Vec<String>) {
        for key in keys {
            self.0.wake_all(&key);
        }
    }
}

struct TokioClock(Instant);

impl Clock for TokioClock {
    fn now_us(&self) -> u64 {
        1_700_000_000_000_000 + self.0.elapsed().as_micros() as u64
    }
}

struct Sidecar {
    limiter: Arc<Limiter>,
    room: Arc<WaitRoom>,
}

fn sidecars(n: usize) -> Vec<Arc<Sidecar>> {
    sidecars_with(
        n,
        PolicySpec {
            limit: 1,
            algorithm: AlgorithmKind::Concurrency,
            ..PolicySpec::default()
        },
    )
}

fn sidecars_with(n: usize, spec: PolicySpec) -> Vec<Arc<Sidecar>> {
    let policy = Policy::new(PolicySpec {
        name: "p".into(),
        key: vec!["user".into()],
        max_wait_us: Some(60_000_000),
        ..spec
    })
    .unwrap();
    let set = PolicySet::new(vec![policy]).unwrap();
    let store: Arc<dyn Store> = Arc::new(LocalStore::new(
        LocalConfig::default(),
        Arc::new(TokioClock(Instant::now())),
        Source::Local,
    ));
    let shared = Arc::new(FakeShared::default());
    (0..n)
        .map(|_| {
            let room = Arc::new(WaitRoom::new(100, Duration::from_secs(1)));
            room.set_shared(shared.clone());
            room.set_bus(Arc::new(FakeBus(shared.clone())));
            shared.rooms.lock().push(Arc::downgrade(&room));
            let store = Arc::new(WakeOnRelease::new(store.clone(), room.clone()));
            Arc::new(Sidecar {
                limiter: Arc::new(Limiter::new(set.clone(), store)),
                room,
            })
        })
        .collect()
}

async fn check(s: &Sidecar, budget: Duration) -> Waited {
    let attributes: Attributes = [("user".to_string(), "u".to_string())]
        .into_iter()
        .collect();
    let check = Check {
        attributes: &attributes,
        hits: 1,
        domain: None,
        reserve: false,
    };
    let snapshot = s.limiter.snapshot();
    check_waiting(
        &s.limiter,
        &s.room,
        &snapshot,
        &[check],
        LeaseMode::Held,
        budget,
    )
    .await
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn waiters_on_different_sidecars_are_served_in_shared_arrival_order() {
    let cars = sidecars(2);
    let first = check(&cars[0], Duration::ZERO).await;
    let mut held = first.verdicts[0].lease.clone().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..6usize {
        // Alternate sidecars; the release below always goes through [0].
        let (car, order) = (cars[(i + 1) % 2].clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let w = check(&car, Duration::from_secs(60)).await;
            order.lock().push(i);
            w
        }));
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }
    for (i, task) in tasks.into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(10)).await;
        cars[i % 2].limiter.release(&held).await.unwrap();
        let w = task.await.unwrap();
        assert!(w.verdicts[0].allowed, "{w:?}");
        held = w.verdicts[0].lease.clone().unwrap();
    }
    assert_eq!(*order.lock(), [0, 1, 2, 3, 4, 5]);
}

#[tokio::test(start_paused = true)]
async fn a_newcomer_on_another_sidecar_queues_behind_the_shared_queue() {
    let cars = sidecars(2);
    let held = check(&cars[0], Duration::ZERO).await.verdicts[0]
        .lease
        .clone()
        .unwrap();
    let waiter = {
        let car = cars[0].clone();
        tokio::spawn(async move { check(&car, Duration::from_secs(60)).await })
    };
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    // Released, but before the waiter re-checks a newcomer arrives at
    // the other sidecar (polled first): it must not take the slot.
    cars[0].limiter.release(&held).await.unwrap();
    let car = cars[1].clone();
    let mut newcomer = Box::pin(async move { check(&car, Duration::from_secs(60)).await });
    tokio::select! {
        biased;
        w = &mut newcomer => panic!("the newcomer overtook the waiter: {w:?}"),
        () = tokio::task::yield_now() => {}
    }
    let w = waiter.await.unwrap();
    assert!(w.verdicts[0].allowed);
    cars[1]
        .limiter
        .release(w.verdicts[0].lease.as_deref().unwrap())
        .await
        .unwrap();
    assert!(newcomer.await.verdicts[0].allowed);
}

#[tokio::test(start_paused = true)]
async fn token_bucket_waiters_on_different_sidecars_take_the_next_tokens_in_order() {
    // One token a second, a bucket of one.
    let cars = sidecars_with(
        2,
        PolicySpec {
            limit: 1,
            window_us: Some(1_000_000),
            algorithm: AlgorithmKind::TokenBucket,
            ..PolicySpec::default()
        },
    );
    assert!(check(&cars[0], Duration::ZERO).await.verdicts[0].allowed);
    let started = Instant::now();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..4usize {
        let (car, order) = (cars[(i + 1) % 2].clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let w = check(&car, Duration::from_secs(60)).await;
            order.lock().push((i, started.elapsed().as_millis()));
            w
        }));
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }
    for task in tasks {
        assert!(task.await.unwrap().verdicts[0].allowed);
    }
    let order = order.lock().clone();
    assert_eq!(
        order.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    // Each takes the next token: one a second.
    for (n, (_, at)) in order.iter().enumerate() {
        assert!(*at >= 1_000 * (n as u128 + 1), "{order:?}");
    }
}
