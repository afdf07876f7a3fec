//! Waiting instead of refusing: a check that would be denied by policies
//! with a `max_wait` waits for its turn — up to the shorter of the
//! policies' `max_wait` and what the caller is willing to wait — then is
//! decided again; past that it is denied as before.
//!
//! Order: waiters queue per counter key (the deciding policy's counter) in
//! arrival order, and only the head of a queue re-checks, so within one
//! process they are served first come, first served; a check that arrives
//! while others wait on one of its counters joins the back of the queue
//! without checking. A check that does not wait (no `max_wait_ms`) is never
//! queued. When the head re-checks: `concurrency`, on a release of that
//! counter (see [`WakeOnRelease`]), when the oldest lease lapses, or every
//! [`WaitRoom::poll`]; the window algorithms and `token_bucket`, at the
//! moment the quota allows it (`retry_after`) — and a check whose
//! `retry_after` is beyond its wait is denied at once, as nginx's
//! `limit_req` with `delay` does.
//!
//! Nothing is charged while waiting: dropping the future at any point (the
//! client went away) leaves only its place in the queue, which the drop
//! removes.

mod room;
mod wake;

use std::sync::Arc;
use std::time::Duration;

use floodgate_core::{AlgorithmKind, MAX_WAIT_US};
use tokio::time::Instant;

pub use room::{Place, Refused, WaitRoom, WakeBus, Woken, DEFAULT_MAX_WAITING_TOTAL};
pub use wake::WakeOnRelease;

use crate::limiter::{Check, LeaseMode, Limiter, PolicySnapshot, Verdict};
use crate::LimitError;

/// The verdicts of a check that may have waited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waited {
    /// One verdict per check, as [`Limiter::check_all_in`] returns them.
    pub verdicts: Vec<Verdict>,
    /// How long the checks waited, in µs (0 when they did not).
    pub waited_us: u64,
}

/// Which queue a denied check waits in, and for how long.
#[derive(Debug)]
struct Plan {
    /// The deciding policy's counter key.
    key: String,
    /// The shortest `max_wait` of the denying policies, µs.
    max_wait_us: u64,
    /// The deciding policy's `max_waiting`.
    max_waiting: u32,
    /// When the denial could pass, µs from now.
    retry_after_us: u64,
    /// Whether the deciding policy is `concurrency` (woken by releases).
    concurrency: bool,
}

/// Decides `checks` as [`Limiter::check_all_in`] does, waiting up to
/// `budget` (capped by the denying policies' `max_wait`) when they are
/// denied. A zero `budget` never waits.
///
/// # Errors
/// As [`Limiter::check_all_in`], from any of its checks.
pub async fn check_waiting(
    limiter: &Limiter,
    room: &Arc<WaitRoom>,
    snapshot: &PolicySnapshot,
    checks: &[Check<'_>],
    leases: LeaseMode,
    budget: Duration,
) -> Result<Waited, LimitError> {
    let started = Instant::now();
    let budget_us = u64::try_from(budget.as_micros()).map_or(MAX_WAIT_US, |b| b.min(MAX_WAIT_US));
    let done = |verdicts: Vec<Verdict>, outcome: &'static str| {
        let waited = started.elapsed();
        if !waited.is_zero() {
            metrics::counter!("floodgate_waits_total", "outcome" => outcome).increment(1);
            metrics::histogram!("floodgate_wait_seconds").record(waited.as_secs_f64());
        }
        Ok(Waited {
            verdicts,
            waited_us: u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
        })
    };
    let mut place = None;
    if budget_us > 0 && room.waiting() > 0 {
        // Others wait on one of our counters: behind them, unchecked.
        if let Some((key, max_wait_us, max_waiting)) = queued(room, snapshot, checks, leases) {
            let deadline = started + us(budget_us.min(max_wait_us));
            if let Ok(p) = room.enter(&key, max_waiting) {
                wait_turn(&p, deadline).await;
                place = Some(p);
            } else {
                metrics::counter!("floodgate_waits_total", "outcome" => "refused").increment(1);
            }
        }
    }
    loop {
        let verdicts = limiter.check_all_in(snapshot, checks, leases).await?;
        if verdicts.iter().all(|v| v.allowed) {
            return done(verdicts, "allowed");
        }
        if budget_us == 0 || room.is_closed() {
            return done(verdicts, "denied");
        }
        let Some(plan) = plan(snapshot, checks, &verdicts) else {
            return done(verdicts, "denied");
        };
        let deadline = started + us(budget_us.min(plan.max_wait_us));
        let now = Instant::now();
        let retry_at = now + us(plan.retry_after_us);
        if now >= deadline || (!plan.concurrency && retry_at > deadline) {
            return done(verdicts, "timeout");
        }
        if place.as_ref().map(Place::key) != Some(plan.key.as_str()) {
            // Leave the old queue first (its next waiter is woken).
            drop(place.take());
            match room.enter(&plan.key, plan.max_waiting) {
                Ok(p) => place = Some(p),
                Err(refused) => {
                    metrics::counter!("floodgate_waits_total", "outcome" => "refused")
                        .increment(1);
                    tracing::debug!(reason = refused.as_str(), "wait refused");
                    return done(verdicts, "denied");
                }
            }
        }
        let Some(p) = place.as_ref() else {
            return done(verdicts, "denied");
        };
        let recheck_at = if plan.concurrency {
            retry_at.min(now + room.poll())
        } else {
            retry_at
        };
        match wait_recheck(p, recheck_at.min(deadline), deadline).await {
            Woken::Closed => return done(verdicts, "shutdown"),
            Woken::Timeout if Instant::now() >= deadline => return done(verdicts, "timeout"),
            Woken::Notified | Woken::Timeout => {}
        }
    }
}

/// µs as a `Duration`.
fn us(us: u64) -> Duration {
    Duration::from_micros(us)
}

/// Waits, not at the head, until `place` becomes head (or the deadline, or
/// shutdown).
async fn wait_turn(place: &Place, deadline: Instant) {
    while !place.is_head() {
        if place.wait(deadline).await != Woken::Notified {
            return;
        }
    }
}

/// Waits until `place` may re-check: as head, at `recheck_at` or when
/// woken; behind others, until it becomes head. `Timeout` when `deadline`
/// passed first.
async fn wait_recheck(place: &Place, recheck_at: Instant, deadline: Instant) -> Woken {
    loop {
        let head = place.is_head();
        let until = if head { recheck_at } else { deadline };
        match place.wait(until).await {
            Woken::Closed => return Woken::Closed,
            Woken::Timeout if head || Instant::now() >= deadline => return Woken::Timeout,
            Woken::Notified if place.is_head() => return Woken::Notified,
            Woken::Notified | Woken::Timeout => {}
        }
    }
}

/// The queue of a denied check: the deciding denial's counter, waiting as
/// long as every enforced denial allows. `None` when one of the denying
/// policies does not wait (or has gone from the set).
fn plan(snapshot: &PolicySnapshot, checks: &[Check<'_>], verdicts: &[Verdict]) -> Option<Plan> {
    let set = snapshot.policies();
    let mut plan: Option<Plan> = None;
    let mut max_wait_us = u64::MAX;
    for (check, verdict) in checks.iter().zip(verdicts).filter(|(_, v)| !v.allowed) {
        for status in verdict.statuses.iter().filter(|s| !s.allowed && !s.shadow) {
            let policy = set.get(&status.policy)?;
            let waiting = policy.waiting();
            if waiting.max_wait_us == 0 {
                return None;
            }
            max_wait_us = max_wait_us.min(waiting.max_wait_us);
            if plan
                .as_ref()
                .is_none_or(|p| status.retry_after_us > p.retry_after_us)
            {
                plan = Some(Plan {
                    key: policy.counter_key(check.attributes),
                    max_wait_us: 0,
                    max_waiting: waiting.max_waiting,
                    retry_after_us: status.retry_after_us,
                    concurrency: policy.kind() == AlgorithmKind::Concurrency,
                });
            }
        }
    }
    plan.map(|p| Plan { max_wait_us, ..p })
}

/// A counter of `checks` with checks waiting on it, if any: the key, its
/// policy's `max_wait` and `max_waiting`.
fn queued(
    room: &WaitRoom,
    snapshot: &PolicySnapshot,
    checks: &[Check<'_>],
    leases: LeaseMode,
) -> Option<(String, u64, u32)> {
    let set = snapshot.policies();
    checks.iter().find_map(|check| {
        set.applicable(check.attributes, check.domain)
            .map(|(_, p)| p)
            .filter(|p| p.waiting().max_wait_us > 0)
            .filter(|p| {
                leases == LeaseMode::Held || p.kind() != AlgorithmKind::Concurrency
            })
            .find_map(|p| {
                let key = p.counter_key(check.attributes);
                room.has_waiters(&key).then(|| {
                    let w = p.waiting();
                    (key, w.max_wait_us, w.max_waiting)
                })
            })
    })
}

#[cfg(test)]
mod tests;
