//! The batcher: concurrent checks in one script call.
//!
//! Every check of a standalone (or Sentinel-managed) Redis that is one call
//! (all but those naming a counter twice) goes through one task. While
//! `pool_size` calls are in flight (one per connection), checks wait in its
//! queue; when a call slot frees, everything queued (up to [`MAX_OPS`] ops)
//! leaves as **one** `EVALSHA`, which `check.lua` decides check after
//! check, each all or nothing and each seeing the charges of those before
//! it. Nothing waits for a timer: an idle store sends a lone check at once, a busy one
//! sends many checks for the price of one call — Redis's cost per call
//! (reading, parsing, the script's start, `TIME`, writing) and fred's are
//! shared by the batch.
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

use std::sync::Arc;
use std::time::Duration;

use floodgate_store::StoreError;
use fred::types::Value;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::{timeout_at, Instant};

use crate::script::{Call, SCRIPTS};
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

/// The handle of a store's batching task; dropping it ends the task (calls
/// already sent finish on tasks of their own).
pub(crate) struct Batcher {
    queue: mpsc::UnboundedSender<Job>,
}

impl Batcher {
    /// Starts the batching task for `link` on the current tokio runtime,
    /// with at most `calls` calls in flight (at least 1): the fewer, the
    /// larger the batches under load.
    pub(crate) fn start(link: Link, calls: usize) -> Batcher {
        let (queue, jobs) = mpsc::unbounded_channel();
        let margin = link.timeout() / 10;
        tokio::spawn(drive(link, jobs, calls.max(1), margin));
        Batcher { queue }
    }

    /// Decides one check (its call's `keys` and `args`, as built by
    /// `check_calls`) in the next batch and returns its reply, the check's
    /// element of the script's reply, by `deadline`.
    pub(crate) async fn check(
        &self,
        keys: Vec<String>,
        args: Vec<Value>,
        deadline: Instant,
    ) -> Result<Value, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job {
                keys,
                args,
                deadline,
                reply,
            })
            .map_err(|_| StoreError::Unavailable("the Redis store is closed".into()))?;
        match timeout_at(deadline, answer).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(StoreError::Unavailable(
                "the Redis store closed with the check in flight".into(),
            )),
            Err(_) => Err(StoreError::Timeout),
        }
    }
}

/// The batching task: takes a call slot, then everything queued by then,
/// and sends it as one call; ends when the [`Batcher`] is dropped.
async fn drive(link: Link, mut jobs: mpsc::UnboundedReceiver<Job>, calls: usize, margin: Duration) {
    let slots = Arc::new(Semaphore::new(calls));
    // A job taken from the queue that did not fit the last batch.
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        // Checks whose callers gave up, or nearly, while waiting for a slot
        // (a slow or frozen Redis) are not sent.
        let Some(first) = first.keep(margin) else {
            continue;
        };
        let mut ops = first.keys.len();
        let mut batch = vec![first];
        while ops < MAX_OPS {
            match jobs.try_recv() {
                Ok(job) => match job.keep(margin) {
                    None => {}
                    Some(job) if ops + job.keys.len() <= MAX_OPS => {
                        ops += job.keys.len();
                        batch.push(job);
                    }
                    Some(job) => {
                        carried = Some(job);
                        break;
                    }
                },
                Err(_) => break,
            }
        }
        let link = link.clone();
        tokio::spawn(async move {
            send(&link, batch).await;
            drop(slot);
        });
    }
}

/// Sends `batch` as one call and hands each check its reply.
async fn send(link: &Link, batch: Vec<Job>) {
    let (mut keys, mut args) = (Vec::new(), Vec::new());
    let mut replies = Vec::with_capacity(batch.len());
    // The earliest caller's deadline: no caller waits past its own.
    let mut deadline = Instant::now() + link.timeout();
    for job in batch {
        deadline = deadline.min(job.deadline);
        keys.extend(job.keys);
        args.extend(job.args);
        replies.push(job.reply);
    }
    let call = Call {
        script: &SCRIPTS.check,
        keys,
        args,
    };
    let result = link
        .run_by(&[&call], deadline)
        .await
        .and_then(|mut r| {
            r.pop()
                .ok_or_else(|| StoreError::Protocol("no reply".into()))
        })
        .and_then(|reply| split(reply, replies.len()));
    match result {
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

/// The script's reply to a call of `checks` checks: one element per check.
///
/// # Errors
/// [`StoreError::Protocol`] when it is not an array of that length.
pub(crate) fn split(reply: Value, checks: usize) -> Result<Vec<Value>, StoreError> {
    match reply {
        Value::Array(each) if each.len() == checks => Ok(each),
        other => Err(StoreError::Protocol(format!(
            "expected one reply per check ({checks}), got {other:?}"
        ))),
    }
}
