//! The no-op's Redis call per check (`noop --redis`), made alone or, with
//! `--redis-group`, shared by concurrent checks the way floodgate's Redis
//! store shares its calls: at most [`CALLS`] calls in flight; a check that
//! finds one free and nobody waiting sends its own; otherwise it waits,
//! and when a call ends everything waiting leaves as one `INCRBY`, batch
//! after batch from one task until nobody waits.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use fred::clients::Pool;
use fred::interfaces::ClientLike as _;
use fred::types::{ClusterHash, CustomCommand};
use tokio::sync::oneshot;

/// Calls in flight at most: floodgate's default `pool_size`.
pub const CALLS: usize = 4;

/// The key every call counts on.
const KEY: &str = "floodgate-bench:noop";

/// How the no-op calls Redis.
#[derive(Clone)]
pub enum Redis {
    /// One `INCRBY 1` per check.
    EachCheck(Pool),
    /// Calls shared by concurrent checks.
    Grouped(Arc<Grouped>),
}

impl Redis {
    /// The Redis work of one check, done.
    ///
    /// # Errors
    /// Redis's error, or a lost call, as text.
    pub async fn check(&self) -> Result<(), String> {
        match self {
            Redis::EachCheck(pool) => incr_by(pool, 1).await,
            Redis::Grouped(grouped) => grouped.check().await,
        }
    }
}

/// `INCRBY` of [`KEY`] by `n` (one call for `n` checks).
async fn incr_by(pool: &Pool, n: usize) -> Result<(), String> {
    let command = CustomCommand::new_static("INCRBY", ClusterHash::FirstKey, false);
    // Boxed, as floodgate boxes fred's (large) futures.
    Box::pin(
        pool.next()
            .custom::<i64, _>(command, vec![KEY.to_string(), n.to_string()]),
    )
    .await
    .map(drop)
    .map_err(|e| e.to_string())
}

/// Concurrent checks' calls, shared.
pub struct Grouped {
    pool: Pool,
    state: Mutex<State>,
}

/// Calls in flight and the checks waiting for the next.
#[derive(Default)]
struct State {
    in_flight: usize,
    waiting: Vec<oneshot::Sender<Result<(), String>>>,
}

impl Grouped {
    /// Calls shared over `pool`.
    pub fn new(pool: Pool) -> Arc<Grouped> {
        Arc::new(Grouped {
            pool,
            state: Mutex::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn check(self: &Arc<Self>) -> Result<(), String> {
        let waiting = {
            let mut state = self.state();
            if state.in_flight < CALLS && state.waiting.is_empty() {
                state.in_flight += 1;
                None
            } else {
                let (reply, answer) = oneshot::channel();
                state.waiting.push(reply);
                Some(answer)
            }
        };
        match waiting {
            Some(answer) => answer
                .await
                .unwrap_or_else(|_| Err("the call was lost".into())),
            None => {
                let _slot = Slot(Arc::clone(self));
                incr_by(&self.pool, 1).await
            }
        }
    }
}

/// A call slot held: dropped, it sends what waits, or is given back.
struct Slot(Arc<Grouped>);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.0.state();
        if state.waiting.is_empty() {
            state.in_flight -= 1;
            return;
        }
        let mut batch = std::mem::take(&mut state.waiting);
        drop(state);
        let grouped = Arc::clone(&self.0);
        tokio::spawn(async move {
            loop {
                let result = incr_by(&grouped.pool, batch.len()).await;
                for reply in batch.drain(..) {
                    let _ = reply.send(result.clone());
                }
                let mut state = grouped.state();
                if state.waiting.is_empty() {
                    state.in_flight -= 1;
                    return;
                }
                batch = std::mem::take(&mut state.waiting);
            }
        });
    }
}
