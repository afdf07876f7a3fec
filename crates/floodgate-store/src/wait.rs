//! Waiting instead of refusing: a check that would be denied by policies
//! with a `max_wait` waits for its turn — up to the shorter of the
//! policies' `max_wait` and what the caller is willing to wait — then is
//! decided again; past that it is denied as before.
//!
//! Order: waiters queue per counter key (the deciding policy's counter) in
//! arrival order, and only the head of a queue re-checks, so they are
//! served first come, first served — across sidecars when the room has a
//! [`SharedQueue`] (the Redis store), within the process otherwise; a
//! check that arrives while others wait on one of its counters joins the
//! back of the queue without checking. A check that does not wait (no `max_wait_ms`) is never
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
mod shared;
mod wake;

use std::sync::Arc;
use std::time::Duration;

use floodgate_core::{AlgorithmKind, Policy, MAX_WAIT_US};
use tokio::time::Instant;

pub use room::{Place, Refused, WaitRoom, WakeBus, Woken, DEFAULT_MAX_WAITING_TOTAL};
pub use shared::{Joined, SharedQueue, Ticket};
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
    /// The deciding policy.
    policy: Arc<Policy>,
    /// Its counter key.
    key: String,
    /// The shortest `max_wait` of the denying policies, µs.
    max_wait_us: u64,
    /// When the denial could pass, µs from now.
    retry_after_us: u64,
}

impl Plan {
    /// Whether the deciding policy is `concurrency` (woken by releases).
    fn concurrency(&self) -> bool {
        self.policy.kind() == AlgorithmKind::Concurrency
    }
}

/// A waiting check's places: in this process's queue (its wake-ups and
/// caps) and, with a shared store, in the shared queue (its order across
/// sidecars).
#[derive(Debug, Default)]
struct Queued {
    /// The local place.
    place: Option<Place>,
    /// The shared ticket, if any.
    ticket: Option<Ticket>,
}

impl Queued {
    /// Joins the queues of `plan`'s counter unless already in them.
    ///
    /// # Errors
    /// [`Refused`] when a queue is full or the room closed.
    async fn join(
        &mut self,
        room: &Arc<WaitRoom>,
        plan: &Plan,
        ttl: Duration,
    ) -> Result<(), Refused> {
        if self.place.as_ref().map(Place::key) != Some(plan.key.as_str()) {
            // Leave the old queues first (their next waiters are woken).
            *self = Queued::default();
            self.place = Some(room.enter(&plan.key, plan.policy.waiting().max_waiting)?);
            if let Some(shared) = room.shared() {
                match shared::join(shared, &plan.policy, &plan.key, ttl).await {
                    Joined::Ticket(ticket) => self.ticket = Some(ticket),
                    Joined::Full => return Err(Refused::KeyFull),
                    Joined::Unreachable => {}
                }
            }
        }
        Ok(())
    }

    /// Whether this check may re-check now: first in the shared queue, or
    /// at the head of the local one.
    async fn is_first(&self) -> bool {
        match (&self.ticket, &self.place) {
            (Some(ticket), _) => ticket.is_first().await,
            (None, Some(place)) => place.is_head(),
            (None, None) => true,
        }
    }

    /// Waits until this check may re-check: when first, at `recheck_at`
    /// or when woken; otherwise until it becomes first. `Timeout` when
    /// `deadline` passed first.
    async fn wait(&self, recheck_at: Instant, deadline: Instant) -> Woken {
        let Some(place) = &self.place else {
            return Woken::Timeout;
        };
        loop {
            let first = self.is_first().await;
            // Behind others in a shared queue, a poll re-reads the order.
            let until = match (first, &self.ticket) {
                (true, _) => recheck_at,
                (false, Some(_)) => deadline.min(Instant::now() + place.room.poll()),
                (false, None) => deadline,
            };
            match place.wait(until.min(deadline)).await {
                Woken::Closed => return Woken::Closed,
                _ if Instant::now() >= deadline => return Woken::Timeout,
                Woken::Timeout if first => return Woken::Timeout,
                Woken::Notified if first => return Woken::Notified,
                Woken::Notified | Woken::Timeout => {}
            }
        }
    }
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
    if budget.is_zero() {
        // Never waits: no clock to read, no queue to look at.
        let verdicts = limiter.check_all_in(snapshot, checks, leases).await?;
        let outcome = if verdicts.iter().all(|v| v.allowed) {
            "allowed"
        } else {
            "denied"
        };
        return finish(verdicts, None, outcome);
    }
    let mut waiting = Waiting::new(budget);
    if waiting.budget_us > 0 {
        waiting
            .queue_behind_waiters(room, snapshot, checks, leases)
            .await;
    }
    loop {
        let verdicts = limiter.check_all_in(snapshot, checks, leases).await?;
        if verdicts.iter().all(|v| v.allowed) {
            return finish(verdicts, waiting.since, "allowed");
        }
        if waiting.budget_us == 0 || room.is_closed() {
            return finish(verdicts, waiting.since, "denied");
        }
        let Some(plan) = plan(snapshot, checks, &verdicts) else {
            return finish(verdicts, waiting.since, "denied");
        };
        if let Err(outcome) = waiting.wait_turn(room, &plan).await {
            return finish(verdicts, waiting.since, outcome);
        }
    }
}

/// One call of [`check_waiting`]: its budget, its places in the queues and
/// how long it has waited.
struct Waiting {
    /// When the call started.
    started: Instant,
    /// What the caller is willing to wait, µs (at most `MAX_WAIT_US`).
    budget_us: u64,
    /// Set when the check first waits: the checks themselves are not waits.
    since: Option<Instant>,
    /// Where the check waits.
    queued: Queued,
}

impl Waiting {
    /// A call starting now, willing to wait `budget`.
    fn new(budget: Duration) -> Waiting {
        Waiting {
            started: Instant::now(),
            budget_us: u64::try_from(budget.as_micros())
                .map_or(MAX_WAIT_US, |b| b.min(MAX_WAIT_US)),
            since: None,
            queued: Queued::default(),
        }
    }

    /// When others wait on one of the counters of `checks`, waits behind
    /// them, unchecked.
    async fn queue_behind_waiters(
        &mut self,
        room: &Arc<WaitRoom>,
        snapshot: &PolicySnapshot,
        checks: &[Check<'_>],
        leases: LeaseMode,
    ) {
        let Some(plan) = queued_plan(room, snapshot, checks, leases).await else {
            return;
        };
        let wait_us = self.budget_us.min(plan.max_wait_us);
        let deadline = self.started + us(wait_us);
        if self.queued.join(room, &plan, us(wait_us)).await.is_ok() {
            self.since.get_or_insert_with(Instant::now);
            self.queued.wait(self.started, deadline).await;
        } else {
            self.queued = Queued::default();
        }
    }

    /// Waits in the queue of `plan` until the check may re-check; the
    /// outcome that ends the call instead (`timeout`, `refused`,
    /// `shutdown`).
    async fn wait_turn(&mut self, room: &Arc<WaitRoom>, plan: &Plan) -> Result<(), &'static str> {
        let deadline = self.started + us(self.budget_us.min(plan.max_wait_us));
        let now = Instant::now();
        let retry_at = now + us(plan.retry_after_us);
        if now >= deadline || (!plan.concurrency() && retry_at > deadline) {
            return Err("timeout");
        }
        let ttl = deadline.saturating_duration_since(now);
        if let Err(refused) = self.queued.join(room, plan, ttl).await {
            tracing::debug!(reason = refused.as_str(), "wait refused");
            return Err("refused");
        }
        let recheck_at = if plan.concurrency() {
            retry_at.min(now + room.poll())
        } else {
            retry_at
        };
        self.since.get_or_insert_with(Instant::now);
        match self.queued.wait(recheck_at.min(deadline), deadline).await {
            Woken::Closed => Err("shutdown"),
            Woken::Timeout if Instant::now() >= deadline => Err("timeout"),
            Woken::Notified | Woken::Timeout => Ok(()),
        }
    }
}

/// The answer, counting the wait (from `since`) in the metrics.
fn finish(
    verdicts: Vec<Verdict>,
    since: Option<Instant>,
    outcome: &'static str,
) -> Result<Waited, LimitError> {
    let waited = since.map_or(Duration::ZERO, |t| t.elapsed());
    if since.is_some() || outcome == "refused" {
        metrics::counter!(floodgate_core::metric::WAITS_TOTAL, "outcome" => outcome).increment(1);
        metrics::histogram!(floodgate_core::metric::WAIT_SECONDS).record(waited.as_secs_f64());
    }
    Ok(Waited {
        verdicts,
        waited_us: u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
    })
}

/// µs as a `Duration`.
fn us(us: u64) -> Duration {
    Duration::from_micros(us)
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
                    policy: policy.clone(),
                    key: policy.counter_key(check.attributes),
                    max_wait_us: 0,
                    retry_after_us: status.retry_after_us,
                });
            }
        }
    }
    plan.map(|p| Plan { max_wait_us, ..p })
}

/// A counter of `checks` with checks waiting on it (here, or in the
/// shared queue for `concurrency`), if any: the queue to join at once.
async fn queued_plan(
    room: &WaitRoom,
    snapshot: &PolicySnapshot,
    checks: &[Check<'_>],
    leases: LeaseMode,
) -> Option<Plan> {
    let set = snapshot.policies();
    for check in checks {
        let waitable = set
            .applicable(check.attributes, check.domain)
            .map(|(_, p)| p)
            .filter(|p| p.waiting().max_wait_us > 0)
            .filter(|p| leases == LeaseMode::Held || p.kind() != AlgorithmKind::Concurrency);
        for policy in waitable {
            let key = policy.counter_key(check.attributes);
            let waiting = match room.shared() {
                Some(shared) => match shared.len(policy, &key).await {
                    Ok(n) => n > 0,
                    // Unreachable: the order of this sidecar.
                    Err(_) => room.has_waiters(&key),
                },
                None => room.has_waiters(&key),
            };
            if waiting {
                return Some(Plan {
                    policy: policy.clone(),
                    key,
                    max_wait_us: policy.waiting().max_wait_us,
                    retry_after_us: 0,
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod shared_tests;
#[cfg(test)]
mod tests;
