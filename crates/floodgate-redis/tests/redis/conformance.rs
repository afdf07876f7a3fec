//! The conformance suite: the same sequence of (time, check, refund) against
//! two stores must give identical outcomes. Both stores read one
//! `ManualClock` (the Redis store through its test clock), so every instant
//! is exact. Lease ids are random in both stores, so for `concurrency` only
//! the presence of a receipt is compared.

use std::sync::Arc;

use floodgate_core::testing;
use floodgate_core::{AlgorithmKind, Attributes, Clock, ManualClock, Outcome, Policy, Receipt};
use floodgate_store::{Refund, Store, StoreOp};

const MS: u64 = 1_000;
const S: u64 = 1_000_000;

/// A policy keyed by `user` (the suite's shape of
/// [`floodgate_core::testing::policy`]). For `concurrency`, `window_us` is
/// the lease timeout.
pub fn policy(
    name: &str,
    kind: AlgorithmKind,
    limit: u64,
    window_us: u64,
    burst: Option<u64>,
) -> Policy {
    testing::policy(kind, limit, window_us)
        .name(name)
        .burst(burst)
        .build()
}

/// The policies the suite walks through: every algorithm, with round and
/// awkward parameters.
pub fn policies() -> Vec<Policy> {
    use AlgorithmKind::*;
    vec![
        policy("sw", SlidingWindow, 5, S, None),
        policy("sw-odd", SlidingWindow, 7, 10 * S + 3 * MS, None),
        policy("fw", FixedWindow, 5, S, None),
        policy("fw-odd", FixedWindow, 3, 1_700 * MS, None),
        policy("log", SlidingLog, 4, S, None),
        policy("log-odd", SlidingLog, 9, 2_500 * MS, None),
        policy("tb", TokenBucket, 4, S, Some(3)),
        policy("tb-odd", TokenBucket, 3, S, None),
        policy("cc", Concurrency, 3, S, None),
        policy("cc-odd", Concurrency, 5, 1_500 * MS, None),
    ]
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// One charge, as each store receipted it.
struct Charge {
    policy: usize,
    key: String,
    hits: u64,
    local: Receipt,
    redis: Receipt,
}

/// Compares two outcomes; lease ids differ by design.
fn same(kind: AlgorithmKind, local: &Outcome, redis: &Outcome) -> bool {
    if kind == AlgorithmKind::Concurrency {
        let strip = |o: &Outcome| Outcome {
            receipt: o.receipt.map(|r| Receipt { id: 0, ..r }),
            ..*o
        };
        strip(local) == strip(redis)
    } else {
        local == redis
    }
}

/// Runs `steps` random steps per policy (single checks, multi-policy checks
/// refunded when denied, refunds and releases, clock moves) against both
/// stores and panics at the first difference. `tag` keeps the counters of
/// separate runs on one Redis apart. Returns how many outcomes matched.
pub async fn run(
    local: &dyn Store,
    redis: &dyn Store,
    clock: &ManualClock,
    tag: &str,
    steps: usize,
) -> usize {
    let policies = policies();
    let seed = std::env::var("FLOODGATE_CONFORMANCE_SEED").map_or(0, |s| s.parse().unwrap());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ tag.len() as u64 ^ seed);
    let mut compared = 0;
    for (p, policy) in policies.iter().enumerate() {
        let attributes: Attributes =
            [("user".to_string(), format!("{tag}-{}", policy.name()))].into();
        let key = policy.counter_key(&attributes);
        let window = policy.window_us();
        let limit = policy.burst();
        let mut charges: Vec<Charge> = Vec::new();
        let mut log = Vec::new();
        let (mut allowed, mut denied, mut refunded) = (0, 0, 0);
        for step in 0..steps {
            let roll = rng.next() % 100;
            if roll < 50 {
                let hits = rng.pick(&[0, 1, 1, 1, 2, 3, limit, limit + 1]);
                log.push(format!("check {hits}"));
                let ops = [StoreOp::new(policy, &key, hits)];
                let (l, r) = (
                    local.check(&ops).await.unwrap(),
                    redis.check(&ops).await.unwrap(),
                );
                assert!(
                    same(policy.kind(), &l[0].outcome, &r[0].outcome),
                    "{} step {step} diverged at {}:\nlocal {:?}\nredis {:?}\nsteps {log:?}",
                    policy.name(),
                    clock.now_us(),
                    l[0].outcome,
                    r[0].outcome
                );
                compared += 1;
                if l[0].outcome.allowed {
                    allowed += 1;
                } else {
                    denied += 1;
                }
                if let (Some(lr), Some(rr)) = (l[0].outcome.receipt, r[0].outcome.receipt) {
                    charges.push(Charge {
                        policy: p,
                        key: key.clone(),
                        hits,
                        local: lr,
                        redis: rr,
                    });
                }
            } else if roll < 72 {
                let now = clock.now_us();
                let to_boundary = window - now % window;
                let by = rng.pick(&[
                    1,
                    999,
                    MS,
                    1_001,
                    window / 7,
                    window / 2,
                    to_boundary,
                    to_boundary.saturating_sub(1).max(1),
                    2 * window + 3,
                ]);
                log.push(format!("advance {by}"));
                clock.advance(by);
            } else if roll < 87 {
                if charges.is_empty() {
                    continue;
                }
                let charge = charges.swap_remove((rng.next() % charges.len() as u64) as usize);
                log.push(format!("refund {} at {}", charge.hits, charge.local.at_us));
                refund(local, redis, &policies, &charge).await;
                refunded += 1;
            } else {
                compared += multi_check(
                    local,
                    redis,
                    &policies,
                    p,
                    &mut rng,
                    tag,
                    step,
                    &mut charges,
                )
                .await;
            }
        }
        assert!(
            allowed > 0 && denied > 0 && refunded > 0,
            "{}: too few cases ({allowed} allowed, {denied} denied, {refunded} refunded)",
            policy.name()
        );
    }
    compared
}

async fn refund(local: &dyn Store, redis: &dyn Store, policies: &[Policy], charge: &Charge) {
    let refund = |receipt| Refund {
        policy: &policies[charge.policy],
        key: &charge.key,
        hits: charge.hits,
        receipt,
        source: None,
    };
    local.refund(&[refund(charge.local)]).await.unwrap();
    redis.refund(&[refund(charge.redis)]).await.unwrap();
}

/// A check matching three policies at once, refunded when any denies (the
/// limiter's rule); allowed charges are kept for later refunds.
#[allow(clippy::too_many_arguments)]
async fn multi_check(
    local: &dyn Store,
    redis: &dyn Store,
    policies: &[Policy],
    first: usize,
    rng: &mut Rng,
    tag: &str,
    step: usize,
    charges: &mut Vec<Charge>,
) -> usize {
    let chosen = [
        first,
        (first + 3) % policies.len(),
        (first + 7) % policies.len(),
    ];
    let keys: Vec<String> = chosen
        .iter()
        .map(|&i| {
            let attributes: Attributes = [("user".to_string(), format!("{tag}-multi"))].into();
            policies[i].counter_key(&attributes)
        })
        .collect();
    let hits = rng.pick(&[0, 1, 1, 2]);
    let ops: Vec<StoreOp<'_>> = chosen
        .iter()
        .zip(&keys)
        .map(|(&i, key)| StoreOp::new(&policies[i], key, hits))
        .collect();
    let (l, r) = (
        local.check(&ops).await.unwrap(),
        redis.check(&ops).await.unwrap(),
    );
    let allowed = l.iter().all(|o| o.outcome.allowed);
    // A denied check: the local store charged the allowed ops (the limiter
    // refunds them), the Redis store charged none in the calls where a
    // policy denied. The decisions and figures must agree all the same.
    let unreceipted = |o: &Outcome| Outcome {
        receipt: None,
        ..*o
    };
    for (i, op) in ops.iter().enumerate() {
        let agree = if allowed {
            same(op.policy.kind(), &l[i].outcome, &r[i].outcome)
        } else {
            unreceipted(&l[i].outcome) == unreceipted(&r[i].outcome)
        };
        assert!(
            agree,
            "multi-policy check at step {step} diverged on {}:\nlocal {:?}\nredis {:?}",
            op.policy.name(),
            l[i].outcome,
            r[i].outcome
        );
    }
    if allowed {
        let made =
            chosen
                .iter()
                .zip(&keys)
                .zip(l.iter().zip(&r))
                .filter_map(|((&p, key), (lo, ro))| {
                    Some(Charge {
                        policy: p,
                        key: key.clone(),
                        hits,
                        local: lo.outcome.receipt?,
                        redis: ro.outcome.receipt?,
                    })
                });
        charges.extend(made);
    } else {
        // Each store refunds what it charged, as the limiter would.
        for (store, outcomes) in [(local, &l), (redis, &r)] {
            let refunds: Vec<Refund<'_>> = ops
                .iter()
                .zip(outcomes.iter())
                .filter_map(|(op, o)| {
                    Some(Refund {
                        policy: op.policy,
                        key: op.key,
                        hits: op.hits,
                        receipt: o.outcome.receipt?,
                        source: Some(o.source),
                    })
                })
                .collect();
            store.refund(&refunds).await.unwrap();
        }
    }
    ops.len()
}

/// A fresh local store reading `clock`.
pub fn local_store(clock: &Arc<ManualClock>) -> floodgate_store::LocalStore {
    floodgate_store::LocalStore::new(
        floodgate_store::LocalConfig::default(),
        clock.clone(),
        floodgate_store::Source::Local,
    )
}

/// The clock both stores read: an arbitrary instant of this era, not
/// aligned on any window.
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(1_750_000_000_123_457))
}
