//! The batcher: concurrent checks in one script call.
//!
//! Every check of a standalone (or Sentinel-managed) Redis that is one call
//! (all but those naming a counter twice) goes through it. At most
//! `pool_size` calls are in flight (one per connection). A check that finds
//! a call slot free and nobody waiting is sent at once **from its own
//! task**, alone: an idle store adds no task hop to a check. Otherwise the
//! check waits in the queue; when a call slot frees, everything queued (up
//! to [`MAX_OPS`] ops) leaves as **one** `EVALSHA`, which `check.lua`
//! decides check after check, each all or nothing and each seeing the
//! charges of those before it. Nothing waits for a timer: a busy store sends
//! many checks for the price of one call — Redis's cost per call (reading,
//! parsing, the script's start, `TIME`, writing) and fred's are shared by
//! the batch.
//!
//! A freed slot with checks waiting is handed to a drain task, which sends
//! batches until the queue is empty: a caller that stops waiting (its
//! deadline, a cancelled request) never strands the checks queued behind
//! its call.
//!
//! A batch fails as a whole only when its call does (a timeout, a dropped
//! connection): each check then gets that error. A check whose command Redis
//! refuses (a key of the wrong type) fails alone (see `check.lua`).
//!
//! Time: a check's deadline runs from when it was asked, queue wait
//! included. A check with less than a tenth of the store timeout left when
//! its batch forms is not sent (it times out, charging nothing), and a batch
//! call is abandoned at the earliest deadline among its checks, so no
//! caller waits past its own. As with any call, a batch abandoned in flight
//! may still be run by Redis: those checks count, late (strict).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use floodgate_store::StoreError;
use fred::types::Value;
use tokio::sync::oneshot;
use tokio::time::{timeout_at, Instant};

use crate::script::{reply_len, Call, SCRIPTS};
use crate::store::Link;

/// Most ops in one batch (a check with more goes alone): bounds the time
/// one script call holds Redis.
pub(crate) const MAX_OPS: usize = 64;

/// One check waiting to be sent.
struct Job {
    /// The check's keys, in op order.
    keys: Vec<String>,
    /// The check's ARGV: its now override, its op count, one spec per op.
    args: Vec<Value>,
    /// When its caller stops waiting.
    deadline: Instant,
    /// Where its reply goes.
    reply: oneshot::Sender<Result<Value, StoreError>>,
}

impl Job {
    /// Whether to send it: its caller still waits, with at least `margin`
    /// left. A job not sent is answered [`StoreError::Timeout`] (its caller
    /// is about to give up, or has).
    fn keep(self, margin: Duration) -> Option<Job> {
        if self.reply.is_closed() {
            return None;
        }
        if self.deadline.saturating_duration_since(Instant::now()) < margin {
            let _ = self.reply.send(Err(StoreError::Timeout));
            return None;
        }
        Some(self)
    }
}

/// The batcher of one store. Cheap to share; dropping it lets calls in
/// flight and the checks already queued finish.
pub(crate) struct Batcher {
    shared: Arc<Shared>,
}

/// What the checks of one store share.
struct Shared {
    link: Link,
    /// Most calls in flight.
    calls: usize,
    /// A queued check with less time left than this is not sent.
    margin: Duration,
    state: Mutex<State>,
}

/// Calls in flight and checks waiting; a check waits only while every slot
/// is taken, and a slot is given back only when nobody waits. The queue
/// holds at most the checks in flight, which the servers cap (connections,
/// streams per connection), each caller waiting on its own.
#[derive(Default)]
struct State {
    in_flight: usize,
    queue: VecDeque<Job>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A call slot held: dropped (the call done, or its caller gone), it is
/// given back, or handed to a drain task when checks wait.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.0.state();
        if state.queue.is_empty() {
            state.in_flight -= 1;
            return;
        }
        drop(state);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(drain(Slot(Arc::clone(&self.0))));
            }
            // No runtime (it is shutting down): nothing could send the
            // waiting checks; they fail ("closed") and the slot is free.
            Err(_) => {
                let mut state = self.0.state();
                state.in_flight -= 1;
                state.queue.clear();
            }
        }
    }
}

impl Batcher {
    /// A batcher for `link` with at most `calls` calls in flight (at least
    /// 1): the fewer, the larger the batches under load.
    pub(crate) fn start(link: Link, calls: usize) -> Batcher {
        let margin = link.timeout() / 10;
        Batcher {
            shared: Arc::new(Shared {
                link,
                calls: calls.max(1),
                margin,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Decides one check (its call's `keys` and `args`, as built by
    /// `check_calls`) and returns its reply, the check's element of the
    /// script's reply, by `deadline`: at once in a call of its own when a
    /// slot is free and nobody waits, else in the next batch.
    pub(crate) async fn check(
        &self,
        keys: Vec<String>,
        args: Vec<Value>,
        deadline: Instant,
    ) -> Result<Value, StoreError> {
        let shared = &self.shared;
        let route = {
            let mut state = shared.state();
            if state.in_flight < shared.calls && state.queue.is_empty() {
                state.in_flight += 1;
                Route::Now(keys, args)
            } else {
                let (reply, answer) = oneshot::channel();
                state.queue.push_back(Job {
                    keys,
                    args,
                    deadline,
                    reply,
                });
                Route::Queued(answer)
            }
        };
        let answer = match route {
            Route::Queued(answer) => answer,
            Route::Now(keys, args) => {
                let _slot = Slot(Arc::clone(shared));
                // Boxed: the call's future is kilobytes (see the size test).
                let ops = [keys.len()];
                let mut replies = Box::pin(run(&shared.link, keys, args, &ops, deadline)).await?;
                return replies
                    .pop()
                    .ok_or_else(|| StoreError::Protocol("no reply".into()));
            }
        };
        match timeout_at(deadline, answer).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(StoreError::Unavailable(
                "the Redis store closed with the check in flight".into(),
            )),
            Err(_) => Err(StoreError::Timeout),
        }
    }
}

/// How a check goes: now, in a call of its own (a slot is taken for it), or
/// in a later batch, whose reply comes through the receiver.
enum Route {
    Now(Vec<String>, Vec<Value>),
    Queued(oneshot::Receiver<Result<Value, StoreError>>),
}

/// Holding `slot`, sends what is queued, batch after batch, until nothing
/// is (the slot is then given back).
async fn drain(slot: Slot) {
    loop {
        let batch = {
            let mut state = slot.0.state();
            take_batch(&mut state.queue, slot.0.margin)
        };
        if batch.is_empty() {
            // The queue may have filled since: the slot's drop looks again.
            return;
        }
        send(&slot.0.link, batch).await;
    }
}

/// The front of `queue` up to [`MAX_OPS`] ops (at least one check, however
/// many ops it has), without the checks whose callers gave up or nearly.
fn take_batch(queue: &mut VecDeque<Job>, margin: Duration) -> Vec<Job> {
    let mut batch = Vec::new();
    let mut ops = 0;
    while let Some(job) = queue.front() {
        if !batch.is_empty() && ops + job.keys.len() > MAX_OPS {
            break;
        }
        let job = queue.pop_front().expect("a front job");
        if let Some(job) = job.keep(margin) {
            ops += job.keys.len();
            batch.push(job);
        }
    }
    batch
}

/// Sends `batch` as one call and hands each check its reply.
async fn send(link: &Link, batch: Vec<Job>) {
    let ops_total = batch.iter().map(|job| job.keys.len()).sum();
    let args_total = batch.iter().map(|job| job.args.len()).sum();
    let (mut keys, mut args) = (
        Vec::with_capacity(ops_total),
        Vec::with_capacity(args_total),
    );
    let mut replies = Vec::with_capacity(batch.len());
    let mut ops = Vec::with_capacity(batch.len());
    // The earliest caller's deadline: no caller waits past its own.
    let mut deadline = Instant::now() + link.timeout();
    for job in batch {
        deadline = deadline.min(job.deadline);
        ops.push(job.keys.len());
        keys.extend(job.keys);
        args.extend(job.args);
        replies.push(job.reply);
    }
    match run(link, keys, args, &ops, deadline).await {
        Ok(each) => {
            for (tx, reply) in replies.into_iter().zip(each) {
                // The check may have given up (its deadline): nothing to do.
                let _ = tx.send(Ok(reply));
            }
        }
        Err(e) => {
            for tx in replies {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
}

/// Runs the check script on `keys` and `args`, those of checks of `ops` ops
/// each, one after the other, by `deadline`; returns one reply per check.
async fn run(
    link: &Link,
    keys: Vec<String>,
    args: Vec<Value>,
    ops: &[usize],
    deadline: Instant,
) -> Result<Vec<Value>, StoreError> {
    let call = Call {
        script: &SCRIPTS.check,
        keys,
        args,
    };
    let reply = link
        .run_by(&[&call], deadline)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Protocol("no reply".into()))?;
    split(reply, ops)
}

/// The script's reply to a call of checks of `ops` ops each (one array,
/// every check's values one after the other: [`reply_len`] each), split
/// into one array per check.
///
/// # Errors
/// [`StoreError::Protocol`] when it is not an array of that length.
pub(crate) fn split(reply: Value, ops: &[usize]) -> Result<Vec<Value>, StoreError> {
    let expected: usize = ops.iter().map(|&n| reply_len(n)).sum();
    match reply {
        // One check (the usual call): its reply as it came.
        Value::Array(values) if values.len() == expected && ops.len() == 1 => {
            Ok(vec![Value::Array(values)])
        }
        Value::Array(values) if values.len() == expected => {
            let mut values = values.into_iter();
            Ok(ops
                .iter()
                .map(|&n| Value::Array(values.by_ref().take(reply_len(n)).collect()))
                .collect())
        }
        other => Err(StoreError::Protocol(format!(
            "expected {expected} values for {} checks, got {other:?}",
            ops.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Answer = oneshot::Receiver<Result<Value, StoreError>>;

    fn job(ops: usize, deadline: Instant) -> (Job, Answer) {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            keys: vec![String::new(); ops],
            args: Vec::new(),
            deadline,
            reply,
        };
        (job, answer)
    }

    fn sizes(batch: &[Job]) -> Vec<usize> {
        batch.iter().map(|job| job.keys.len()).collect()
    }

    #[tokio::test]
    async fn a_batch_is_the_queue_front_up_to_max_ops_without_given_up_checks() {
        let far = Instant::now() + Duration::from_secs(60);
        let margin = Duration::from_secs(1);
        let (gone, gone_answer) = job(1, far);
        drop(gone_answer);
        let (late, mut late_answer) = job(1, Instant::now() + margin / 2);
        let (a, _a) = job(40, far);
        let (b, _b) = job(24, far);
        let (c, _c) = job(1, far);
        let (big, _big) = job(MAX_OPS + 10, far);
        let (d, _d) = job(2, far);
        let mut queue = VecDeque::from([gone, late, a, b, c, big, d]);

        // 40 + 24 = MAX_OPS: the next check waits for the next batch.
        assert_eq!(sizes(&take_batch(&mut queue, margin)), [40, 24]);
        // The check about to give up was answered, not sent.
        assert!(matches!(
            late_answer.try_recv(),
            Ok(Err(StoreError::Timeout))
        ));
        assert_eq!(sizes(&take_batch(&mut queue, margin)), [1]);
        // A check of more than MAX_OPS ops goes, alone.
        assert_eq!(sizes(&take_batch(&mut queue, margin)), [MAX_OPS + 10]);
        assert_eq!(sizes(&take_batch(&mut queue, margin)), [2]);
        assert!(take_batch(&mut queue, margin).is_empty());
    }

    #[test]
    fn a_calls_reply_splits_by_each_checks_op_count() {
        let ints = |range: std::ops::Range<i64>| range.map(Value::Integer).collect::<Vec<_>>();
        // Checks of 1 and 2 ops: 7 and 12 values.
        let each = split(Value::Array(ints(0..19)), &[1, 2]).expect("19 values");
        assert_eq!(each, [Value::Array(ints(0..7)), Value::Array(ints(7..19))]);
        let one = split(Value::Array(ints(0..7)), &[1]).expect("7 values");
        assert_eq!(one, [Value::Array(ints(0..7))]);
        for wrong in [Value::Array(ints(0..18)), Value::Integer(1)] {
            assert!(matches!(
                split(wrong, &[1, 2]),
                Err(StoreError::Protocol(_))
            ));
        }
    }
}
