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
//! included, and each check keeps its own. A check with less than a tenth
//! of the store timeout left when its batch forms is not sent (it fails at
//! once, charging nothing). A batch call runs until just before the
//! **latest** deadline among its checks: a check whose own deadline passes
//! first times out alone, and the others still get the reply. No check sets
//! a timer of its own: the call's one timer times out each check of it in
//! turn, and a queued check waits only behind calls that end before its
//! deadline. A check that timed out may still be run by Redis (a call
//! abandoned in flight, or one its caller stopped waiting for): it then
//! counts there, late, and the failover store answers it from its
//! fallback **without** charging the fallback
//! ([`StoreError::may_have_run`]), so it is never counted twice.
//!
//! A failed batch call counts once towards the failover breaker: the check
//! that waits longest gets the error itself, the others — and checks that
//! time out on their own — get it as [`StoreError::Uncounted`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use floodgate_store::StoreError;
use fred::types::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::script::{split_frame, Call, CheckReply, SCRIPTS};
use crate::store::Link;

/// Most ops in one batch (a check with more goes alone): bounds the time
/// one script call holds Redis.
pub(crate) const MAX_OPS: usize = 64;

/// One check waiting to be sent.
struct Job {
    /// The check's keys, in op order.
    keys: Vec<Bytes>,
    /// The check's ARGV: one value, its now override, `|`, its ops' specs.
    args: Vec<Value>,
    /// When its caller stops waiting.
    deadline: Instant,
    /// Where its reply goes.
    reply: oneshot::Sender<CheckReply>,
}

impl Job {
    /// Whether to send it: its caller still waits, with at least `margin`
    /// left. A job not sent is answered at once (its caller is about to give
    /// up, or has): unavailable, never sent — so the fallback may charge it —
    /// and [`StoreError::Uncounted`]: it waited behind calls the breaker
    /// counts already.
    fn keep(self, margin: Duration) -> Option<Job> {
        if self.reply.is_closed() {
            return None;
        }
        if self.deadline.saturating_duration_since(Instant::now()) < margin {
            let not_sent = StoreError::Unavailable("queued past its deadline; not sent".into());
            let _ = self.reply.send(Err(not_sent.uncounted()));
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
    /// `check_calls`) and returns its reply, the check's part of the
    /// script's reply, by `deadline`: at once in a call of its own when a
    /// slot is free and nobody waits, else in the next batch.
    pub(crate) async fn check(
        &self,
        keys: Vec<Bytes>,
        args: Vec<Value>,
        deadline: Instant,
    ) -> CheckReply {
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
                let mut replies = Box::pin(run(&shared.link, keys, args, 1, deadline)).await?;
                return replies
                    .pop()
                    .unwrap_or_else(|| Err(StoreError::Protocol("no reply".into())));
            }
        };
        wait(answer).await
    }
}

/// A queued check's reply. The check sets no timer of its own, yet is
/// answered by its deadline: while queued it waits only on calls that end
/// before it (checks ahead of it were asked earlier, with the same
/// timeout), a batch does not send it with less than the margin left
/// ([`Job::keep`]), and the batch that sends it times it out at its own
/// deadline ([`send_with`]).
async fn wait(answer: oneshot::Receiver<CheckReply>) -> CheckReply {
    answer.await.unwrap_or_else(|_| {
        Err(StoreError::Unavailable(
            "the Redis store closed with the check in flight".into(),
        ))
    })
}

/// How a check goes: now, in a call of its own (a slot is taken for it), or
/// in a later batch, whose reply comes through the receiver.
enum Route {
    Now(Vec<Bytes>, Vec<Value>),
    Queued(oneshot::Receiver<CheckReply>),
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
        send(&slot.0.link, batch, slot.0.margin).await;
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
async fn send(link: &Link, batch: Vec<Job>, margin: Duration) {
    send_with(batch, margin, |keys, args, checks, deadline| async move {
        run(link, keys, args, checks, deadline).await
    })
    .await;
}

/// [`send`], the call made by `call(keys, args, checks, deadline)`.
///
/// Each check keeps its own deadline: the call runs until half a `margin`
/// before the **latest** deadline among its checks (every check sent has at
/// least `margin` left, so that is in the future), and a check whose own
/// deadline passes first is answered a timeout then, alone, while the
/// others still get the reply. That timeout is [`StoreError::Uncounted`]:
/// the call is counted by the breaker once, through the check that waits
/// longest (see [`answer`]). One timer per call serves every check in it.
async fn send_with<F, Fut>(batch: Vec<Job>, margin: Duration, call: F)
where
    F: FnOnce(Vec<Bytes>, Vec<Value>, usize, Instant) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<CheckReply>, StoreError>>,
{
    let ops_total = batch.iter().map(|job| job.keys.len()).sum();
    let args_total: usize = batch.iter().map(|job| job.args.len()).sum();
    let (mut keys, mut args) = (
        Vec::with_capacity(ops_total),
        Vec::with_capacity(args_total),
    );
    let mut replies = Vec::with_capacity(batch.len());
    let mut deadlines = Vec::with_capacity(batch.len());
    let mut latest = Instant::now();
    let mut leader = 0;
    for (i, job) in batch.into_iter().enumerate() {
        if job.deadline > latest {
            (latest, leader) = (job.deadline, i);
        }
        keys.extend(job.keys);
        args.extend(job.args);
        replies.push(Some(job.reply));
        deadlines.push(job.deadline);
    }
    let deadline = latest.checked_sub(margin / 2).unwrap_or(latest);
    let checks = replies.len();
    let call = call(keys, args, checks, deadline);
    tokio::pin!(call);
    let result = loop {
        // The next deadline of a check still waiting that passes before
        // the call's own.
        let next = (replies.iter().zip(&deadlines))
            .filter(|(reply, at)| reply.is_some() && **at < deadline)
            .map(|(_, at)| *at)
            .min();
        let Some(next) = next else {
            break call.await;
        };
        tokio::select! {
            result = &mut call => break result,
            () = tokio::time::sleep_until(next) => {
                let now = Instant::now();
                for (reply, at) in replies.iter_mut().zip(&deadlines) {
                    if *at <= now {
                        if let Some(reply) = reply.take() {
                            let _ = reply.send(Err(StoreError::Timeout.uncounted()));
                        }
                    }
                }
            }
        }
    };
    answer(replies, leader, result);
}

/// Hands each check of a call its reply, or the call's error: to the check
/// that waits longest (`leader`, the one still waiting when the call is
/// abandoned) as it is, to the others [`StoreError::Uncounted`], so the
/// breaker counts one failed call once, not once per check in it.
fn answer(
    replies: Vec<Option<oneshot::Sender<CheckReply>>>,
    leader: usize,
    result: Result<Vec<CheckReply>, StoreError>,
) {
    // A check answered already (its deadline passed) has no sender left;
    // one whose caller gave up takes nothing.
    match result {
        Ok(each) => {
            for (tx, reply) in replies.into_iter().zip(each) {
                if let Some(tx) = tx {
                    let _ = tx.send(reply);
                }
            }
        }
        Err(e) => {
            for (i, tx) in replies.into_iter().enumerate() {
                let Some(tx) = tx else { continue };
                let error = if i == leader {
                    e.clone()
                } else {
                    e.clone().uncounted()
                };
                let _ = tx.send(Err(error));
            }
        }
    }
}

/// Runs the check script on `keys` and `args`, those of `checks` checks one
/// after the other, by `deadline`; returns one reply per check,
/// each packed into one string and read from the reply frame (see
/// [`split_frame`]).
async fn run(
    link: &Link,
    keys: Vec<Bytes>,
    args: Vec<Value>,
    checks: usize,
    deadline: Instant,
) -> Result<Vec<CheckReply>, StoreError> {
    let call = Call {
        script: &SCRIPTS.check,
        keys,
        args,
    };
    split_frame(link.run_frame(&call, deadline).await?, checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Answer = oneshot::Receiver<CheckReply>;

    fn job(ops: usize, deadline: Instant) -> (Job, Answer) {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            keys: vec![Bytes::new(); ops],
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
        // The check about to give up was answered, not sent: the fallback
        // may charge it, and the breaker does not count it.
        let late = late_answer.try_recv().expect("answered").unwrap_err();
        assert!(!late.may_have_run() && !late.counts_for_breaker());
        assert_eq!(sizes(&take_batch(&mut queue, margin)), [1]);
        // A check of more than MAX_OPS ops goes, alone.
        assert_eq!(sizes(&take_batch(&mut queue, margin)), [MAX_OPS + 10]);
        assert_eq!(sizes(&take_batch(&mut queue, margin)), [2]);
        assert!(take_batch(&mut queue, margin).is_empty());
    }

    /// A batch of an impatient and a patient check, its call answering
    /// `result` after `takes`; returns each check's answer and when it came.
    async fn batch_of_two(
        takes: Duration,
        result: Result<Vec<CheckReply>, StoreError>,
    ) -> [(CheckReply, Duration); 2] {
        let now = Instant::now();
        let (impatient_at, patient_at) = (now + takes / 8, now + takes * 20);
        let (impatient, impatient_answer) = job(1, impatient_at);
        let (patient, patient_answer) = job(1, patient_at);
        let call = move |_, _, _, deadline: Instant| async move {
            // A call answers by its deadline, or times out.
            match tokio::time::timeout_at(deadline, tokio::time::sleep(takes)).await {
                Ok(()) => result,
                Err(_) => Err(StoreError::Timeout),
            }
        };
        let margin = takes;
        let sent = tokio::spawn(send_with(vec![impatient, patient], margin, call));
        let timed = |answer| async move { (wait(answer).await, now.elapsed()) };
        let answers = tokio::join!(timed(impatient_answer), timed(patient_answer));
        sent.await.expect("the batch task");
        [answers.0, answers.1]
    }

    #[tokio::test(start_paused = true)]
    async fn an_impatient_check_does_not_condemn_a_patient_one() {
        let takes = Duration::from_millis(400);
        let reply = vec![7];
        let ok = Ok(vec![Ok(vec![6]), Ok(reply.clone())]);
        let [(impatient, impatient_at), (patient, patient_at)] = batch_of_two(takes, ok).await;
        // The impatient check times out alone, at its own deadline,
        // uncounted by the breaker (and, having maybe run, is not charged
        // by the fallback)…
        assert_eq!((impatient_at, patient_at), (takes / 8, takes));
        let impatient = impatient.expect_err("its own deadline passed");
        assert!(
            matches!(&impatient, StoreError::Uncounted(e) if matches!(**e, StoreError::Timeout))
        );
        assert!(!impatient.counts_for_breaker() && impatient.may_have_run());
        // …while the patient one still gets its reply.
        assert_eq!(patient.expect("the call answered in time"), reply);
    }

    #[tokio::test]
    async fn a_failed_batch_call_counts_once() {
        let takes = Duration::from_millis(100);
        let failed = Err(StoreError::Unavailable("connection lost".into()));
        let [(impatient, _), (patient, _)] = batch_of_two(takes, failed).await;
        let errors = [impatient.unwrap_err(), patient.unwrap_err()];
        let counted = errors.iter().filter(|e| e.counts_for_breaker()).count();
        assert_eq!(counted, 1, "{errors:?}");
        assert!(errors[1].counts_for_breaker(), "the longest waiter gets it");
    }

    #[test]
    fn one_failed_call_of_many_checks_is_one_counted_error() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..5).map(|_| oneshot::channel()).unzip();
        answer(
            txs.into_iter().map(Some).collect(),
            3,
            Err(StoreError::Timeout),
        );
        let counted: Vec<bool> = rxs
            .into_iter()
            .map(|mut rx| {
                let error = rx.try_recv().expect("answered").expect_err("failed");
                assert!(error.may_have_run() && error.is_transient());
                error.counts_for_breaker()
            })
            .collect();
        assert_eq!(counted, [false, false, false, true, false]);
    }
}
