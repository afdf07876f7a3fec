//! [`DenyCache`]: a [`Store`] in front of the shared one that remembers its
//! denials, so a key far over its limit costs no round trip.
//!
//! When Redis denies an op and says it could pass again in `retry_after`,
//! the cache answers every later op on that counter with the same or a
//! larger cost "denied" until then, without asking. Time is this process's
//! clock, counted from before the call was sent, so a cached denial ends no
//! later than Redis's own (whose clock read came after), up to the drift
//! between the two clocks over one wait. The cache never denies what Redis
//! would allow as long as nothing gives quota back early: quota returns
//! only with time for `fixed_window`, `sliding_log` and `token_bucket`, and
//! `sliding_window`'s estimate only falls with time. A refund gives quota
//! back early, so a denial is not learned when the same check charged that
//! counter too (it will be refunded); a refund by another sidecar (a check
//! naming one counter twice, or spanning Cluster slots) can still free quota
//! the cache learns of only when its wait ends. `concurrency` is never
//! cached: a release frees a slot at any moment.
//!
//! It sits in front of the failover store and learns only denials whose
//! source is Redis: fallback decisions are never cached, and a check it
//! answers alone never reaches the failover store, so it neither resets
//! nor counts towards the breaker. Cached answers report source `redis`,
//! the denial's `limit` and `remaining` and the time left of its
//! `retry_after`; for an op costing more than the one denied, that wait is
//! a lower bound.
//!
//! A policy with a lockout (`block_for`) blocks a key it denies: the
//! denial's `retry_after` is the block's end, and the cache answers every
//! op on that key (whatever its cost) from the cache until then, so a
//! locked-out client costs no Redis call while its block lasts.
//!
//! When an enforced op of a check is denied from the cache, the check is
//! denied whatever the others say, so they are decided with their real cost
//! but not charged ([`StoreOp::charge`] false): their statuses stay true and
//! there is nothing to refund. A check whose every op is cached makes no
//! call at all.
//!
//! Bounded like the local store (a [`ShardedMap`]); entries lapse at their
//! denial's end and are dropped when met lapsed, evicted first when full.

use std::sync::Arc;

use async_trait::async_trait;
use floodgate_core::{AlgorithmKind, Clock, Outcome, Policy};
use smallvec::SmallVec;

use crate::shards::{Expiring, ShardedMap};
use crate::store::{Clear, Refund, Settle, Settled, Source, Store, StoreOp, StoreOutcome};
use crate::StoreError;

/// Most denials remembered at once.
pub const DENY_CACHE_ENTRIES: usize = 100_000;

/// The quota a denial was made under: a reloaded policy with other numbers
/// must ask again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quota {
    kind: AlgorithmKind,
    limit: u64,
    burst: u64,
    window_us: u64,
}

impl Quota {
    fn of(policy: &Policy) -> Quota {
        Quota {
            kind: policy.kind(),
            limit: policy.limit(),
            burst: policy.burst(),
            window_us: policy.window_us(),
        }
    }
}

/// One remembered denial.
#[derive(Debug, Clone, Copy)]
struct Denial {
    /// Until when (this clock's epoch µs) the counter stays denied.
    until_us: u64,
    /// The smallest cost denied: an op costing less may fit.
    hits: u64,
    /// The policy's numbers when denied.
    quota: Quota,
    /// The denial as the inner store reported it.
    limit: u64,
    remaining: u64,
    /// When the counter resets (this clock's epoch µs).
    reset_at_us: u64,
}

impl Expiring for Denial {
    fn expires_us(&self) -> u64 {
        self.until_us
    }
}

/// Whether an op's outcome could be answered from a denial.
fn cacheable(policy: &Policy) -> bool {
    policy.kind() != AlgorithmKind::Concurrency
}

/// A store that remembers the denials of an inner one. Cheap to share.
pub struct DenyCache {
    /// The store asked when the cache cannot answer.
    inner: Arc<dyn Store>,
    /// Denials by counter key.
    denials: ShardedMap<Denial>,
    /// Time source.
    clock: Arc<dyn Clock>,
    /// `floodgate_deny_cache_hits_total`, registered once.
    hits: metrics::Counter,
}

/// What the cache knew of one op before asking.
enum Lookup {
    /// Denied until later: answered.
    Denied(Outcome),
    /// A denial that no longer applies was found (and dropped, if lapsed).
    Stale,
    /// Nothing cached.
    Miss,
}

impl DenyCache {
    /// A cache of at most `max_entries` denials in front of `inner`.
    pub fn new(inner: Arc<dyn Store>, clock: Arc<dyn Clock>, max_entries: usize) -> Self {
        DenyCache {
            inner,
            denials: ShardedMap::new(max_entries, 64),
            clock,
            hits: metrics::counter!(floodgate_core::metric::DENY_CACHE_HITS_TOTAL),
        }
    }

    /// Denials remembered now (lapsed ones not yet met included).
    pub fn len(&self) -> usize {
        self.denials.len()
    }

    /// Whether no denial is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(&self, op: &StoreOp<'_>, now: u64) -> Lookup {
        if !cacheable(op.policy) {
            return Lookup::Miss;
        }
        let hash = self.denials.hash(op.key);
        let mut shard = self.denials.lock(&hash);
        let Some(denial) = shard.get(&hash).copied() else {
            return Lookup::Miss;
        };
        if denial.until_us <= now {
            shard.remove(&hash);
            return Lookup::Stale;
        }
        if denial.quota != Quota::of(op.policy) || op.hits.max(1) < denial.hits {
            return Lookup::Stale;
        }
        Lookup::Denied(Outcome {
            allowed: false,
            limit: denial.limit,
            remaining: denial.remaining,
            reset_after_us: denial.reset_at_us.saturating_sub(now),
            retry_after_us: denial.until_us - now,
            receipt: None,
        })
    }

    /// Learns from the inner store's answer to `op`, asked at `asked_us`;
    /// `stale` says whether a denial was cached for it, `refunded` whether
    /// this check also charged the same counter (and will be refunded).
    fn learn(
        &self,
        op: &StoreOp<'_>,
        answer: &StoreOutcome,
        asked_us: u64,
        stale: bool,
        refunded: bool,
    ) {
        let outcome = &answer.outcome;
        if !cacheable(op.policy) {
            return;
        }
        let hash = self.denials.hash(op.key);
        if outcome.allowed {
            if stale {
                self.denials.lock(&hash).remove(&hash);
            }
            return;
        }
        if outcome.retry_after_us == 0 || answer.source != Source::Redis || refunded {
            return;
        }
        // A lockout policy's denial of an op with a cost blocks the key
        // (or found it blocked): every op is denied until the block's end.
        // Its peeks start no block, so they are not learned.
        let block = op.policy.block().is_on();
        if block && op.hits == 0 {
            return;
        }
        let denial = Denial {
            until_us: asked_us.saturating_add(outcome.retry_after_us),
            hits: if block { 1 } else { op.hits.max(1) },
            quota: Quota::of(op.policy),
            limit: outcome.limit,
            remaining: outcome.remaining,
            reset_at_us: asked_us.saturating_add(outcome.reset_after_us),
        };
        let mut shard = self.denials.lock(&hash);
        self.denials.insert(&mut shard, hash, denial, asked_us);
    }
}

#[async_trait]
impl Store for DenyCache {
    async fn check(&self, ops: &[StoreOp<'_>]) -> Result<Vec<StoreOutcome>, StoreError> {
        let now = self.clock.now_us();
        let lookups: SmallVec<[Lookup; 4]> = ops.iter().map(|op| self.lookup(op, now)).collect();
        let mut blocked = false;
        let mut cached = 0;
        for (op, lookup) in ops.iter().zip(&lookups) {
            if let Lookup::Denied(_) = lookup {
                cached += 1;
                blocked |= op.enforced;
            }
        }
        if cached > 0 {
            self.hits.increment(cached);
        }
        // The ops the cache cannot answer, decided but not charged when the
        // check is denied anyway, and whether a lapsed denial was met.
        let (asked, stale): (SmallVec<[StoreOp<'_>; 4]>, SmallVec<[bool; 4]>) = ops
            .iter()
            .zip(&lookups)
            .filter(|(_, l)| !matches!(l, Lookup::Denied(_)))
            .map(|(op, l)| {
                let op = StoreOp {
                    charge: op.charge && !blocked,
                    ..*op
                };
                (op, matches!(l, Lookup::Stale))
            })
            .unzip();
        let answers = if asked.is_empty() {
            Vec::new()
        } else {
            self.inner.check(&asked).await?
        };
        if answers.len() != asked.len() {
            return Err(StoreError::Protocol("a store answered too few ops".into()));
        }
        for (i, (op, answer)) in asked.iter().zip(&answers).enumerate() {
            // Another op of this check charged the same counter: the
            // denial may be that charge's, which a refund will undo.
            let refunded = asked
                .iter()
                .zip(&answers)
                .enumerate()
                .any(|(j, (other, a))| {
                    j != i && other.key == op.key && a.outcome.receipt.is_some()
                });
            self.learn(op, answer, now, stale[i], refunded);
        }
        if cached == 0 {
            // Every op was asked, in order: the answers as they are.
            return Ok(answers);
        }
        let mut answers = answers.into_iter();
        Ok(lookups
            .into_iter()
            .map(|lookup| match lookup {
                Lookup::Denied(outcome) => StoreOutcome {
                    outcome,
                    source: Source::Redis,
                },
                _ => answers.next().expect("one answer per asked op"),
            })
            .collect())
    }

    async fn refund(&self, refunds: &[Refund<'_>]) -> Result<(), StoreError> {
        self.inner.refund(refunds).await
    }

    /// Settles in the inner store; a refund forgets the counter's cached
    /// denial (it may pass sooner now).
    async fn settle(&self, settles: &[Settle<'_>]) -> Result<Vec<Settled>, StoreError> {
        let results = self.inner.settle(settles).await?;
        for (settle, result) in settles.iter().zip(&results) {
            if matches!(result, Settled::Applied { estimate } if *estimate > settle.actual) {
                let hash = self.denials.hash(settle.key);
                self.denials.lock(&hash).remove(&hash);
            }
        }
        Ok(results)
    }

    /// Forgets the counters' cached denials first (a check racing the
    /// reset then asks the inner store), then clears them there.
    async fn clear(&self, clears: &[Clear<'_>]) -> Result<(), StoreError> {
        let keys: Vec<&str> = clears.iter().map(|c| c.key).collect();
        self.forget(&keys);
        let result = self.inner.clear(clears).await;
        self.forget(&keys);
        result
    }

    fn forget(&self, keys: &[&str]) {
        for key in keys {
            let hash = self.denials.hash(key);
            self.denials.lock(&hash).remove(&hash);
        }
        self.inner.forget(keys);
    }

    fn mode(&self) -> Source {
        self.inner.mode()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests;
