//! Property tests of the five algorithms against the guarantees in docs/configuration.md, `[[policy]]`.
//!
//! Each test builds a policy through the public API and drives
//! `policy.algorithm().check` with a random sequence of events: clock steps
//! of 0, of about the sustained rate, to exactly the next window boundary, of
//! exactly one window and longer gaps; costs mostly 0..=3 (0 = peek),
//! sometimes above the quota.
//!
//! The limit properties (1–5) compare every decision with a reference model
//! written from the guarantee itself: a check must be allowed exactly when
//! admitting it keeps the guarantee. "Allowed ⇒ fits" is the limit never
//! being exceeded; "fits ⇒ allowed" keeps the properties from passing for a
//! limiter that denies too much. `generated_sequences_exercise_the_limits`
//! makes sure the generated sequences do hit the limits.

use floodgate_core::testing;
use floodgate_core::{AlgorithmKind, Outcome, Policy, PolicySpec, Receipt, State};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::ValueTree;
use proptest::test_runner::{FileFailurePersistence, TestRunner};

/// A Unix time in November 2023, in µs.
const BASE_US: u64 = 1_700_000_000_000_000;

/// Cases per property: together the file runs in a few seconds in debug.
const CASES: u32 = 512;

const ALL: [AlgorithmKind; 5] = [
    AlgorithmKind::SlidingWindow,
    AlgorithmKind::SlidingLog,
    AlgorithmKind::FixedWindow,
    AlgorithmKind::TokenBucket,
    AlgorithmKind::Concurrency,
];

/// A policy of `kind` keyed by `user`. For `concurrency`, `window_us` is the
/// lease timeout; `burst` is used by `token_bucket` only.
fn policy(kind: AlgorithmKind, limit: u64, window_us: u64, burst: Option<u64>) -> Policy {
    testing::policy(kind, limit, window_us)
        .name(format!("prop-{}", kind.as_str()))
        .burst(burst.filter(|_| kind == AlgorithmKind::TokenBucket))
        .build()
}

#[derive(Debug, Clone, Copy)]
enum Advance {
    /// Moves the clock forward by this many µs (0 included).
    By(u64),
    /// Moves the clock to the first µs of the next window.
    ToNextWindow,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    advance: Advance,
    /// Cost of the check; 0 peeks.
    hits: u64,
    /// `concurrency` only: releases one of the leases held, before the check.
    release: Option<Index>,
}

#[derive(Debug, Clone)]
struct Scenario {
    kind: AlgorithmKind,
    limit: u64,
    /// The window, or the lease timeout for `concurrency`.
    window_us: u64,
    /// `token_bucket` only; `None` = `limit`.
    burst: Option<u64>,
    start_us: u64,
    events: Vec<Event>,
}

impl Scenario {
    fn policy(&self) -> Policy {
        policy(self.kind, self.limit, self.window_us, self.burst)
    }
}

/// Event sequences for one algorithm.
fn scenario(kind: AlgorithmKind) -> impl Strategy<Value = Scenario> {
    let limit = prop_oneof![4 => 1..=8u64, 1 => 9..=30u64];
    let window_us = prop_oneof![
        Just(1_000u64),
        Just(1_000_000),
        Just(60_000_000),
        (1..=10_000u64).prop_map(|ms| ms * 1_000),
    ];
    (limit, window_us).prop_flat_map(move |(limit, window_us)| {
        // About the time one unit of quota takes to come back.
        let gap = (window_us / limit).max(1);
        let advance = prop_oneof![
            6 => Just(Advance::By(0)),
            16 => (1..=gap).prop_map(Advance::By),
            1 => Just(Advance::ToNextWindow),
            1 => Just(Advance::By(window_us)),
            1 => (0..=3 * window_us).prop_map(Advance::By),
        ];
        let hits = prop_oneof![10 => 0..=3u64, 1 => 4..=limit + 3];
        let event = (advance, hits, option::weighted(0.25, any::<Index>())).prop_map(
            |(advance, hits, release)| Event {
                advance,
                hits,
                release,
            },
        );
        (
            option::of(1..=2 * limit),
            0..=10 * window_us,
            vec(event, 1..60),
        )
            .prop_map(move |(burst, offset, events)| Scenario {
                kind,
                limit,
                window_us,
                burst: burst.filter(|_| kind == AlgorithmKind::TokenBucket),
                start_us: BASE_US + offset,
                events,
            })
    })
}

/// Event sequences for any of `kinds`.
fn any_scenario(kinds: &'static [AlgorithmKind]) -> impl Strategy<Value = Scenario> {
    select(kinds).prop_flat_map(scenario)
}

/// A charge the limiter admitted and that was not released since.
#[derive(Debug, Clone, Copy)]
struct Charge {
    at_us: u64,
    hits: u64,
    receipt: Receipt,
}

/// Hits of `charges` for which `pick` holds.
fn hits_where(charges: &[Charge], pick: impl Fn(&Charge) -> bool) -> u64 {
    charges.iter().filter(|c| pick(c)).map(|c| c.hits).sum()
}

/// One counter driven through a scenario, with the record of what it
/// admitted.
struct Sim {
    policy: Policy,
    state: State,
    now_us: u64,
    nonce: u64,
    admitted: Vec<Charge>,
}

impl Sim {
    fn new(s: &Scenario) -> Sim {
        Sim {
            policy: s.policy(),
            state: State::default(),
            now_us: s.start_us,
            nonce: 0,
            admitted: Vec::new(),
        }
    }

    /// Moves the clock and, for `concurrency`, releases the lease the event
    /// names (expired ones included: releasing those is harmless). Returns
    /// the released charge.
    fn advance(&mut self, event: &Event) -> Option<Charge> {
        let window_us = self.policy.window_us();
        self.now_us = match event.advance {
            Advance::By(us) => self.now_us + us,
            Advance::ToNextWindow => (self.now_us / window_us + 1) * window_us,
        };
        let index = event.release?;
        if self.policy.kind() != AlgorithmKind::Concurrency || self.admitted.is_empty() {
            return None;
        }
        let charge = self.admitted.remove(index.index(self.admitted.len()));
        self.policy
            .algorithm()
            .refund(&mut self.state, charge.receipt, charge.hits, self.now_us);
        Some(charge)
    }

    /// Checks `hits` now and records the charge when it is admitted.
    fn check(&mut self, hits: u64) -> Outcome {
        self.nonce += 1;
        let outcome = self
            .policy
            .algorithm()
            .check(&mut self.state, self.now_us, hits, self.nonce);
        assert_eq!(
            outcome.receipt.is_some(),
            outcome.allowed && hits > 0,
            "a receipt exactly for charged checks: {outcome:?}"
        );
        if let Some(receipt) = outcome.receipt {
            self.admitted.push(Charge {
                at_us: self.now_us,
                hits,
                receipt,
            });
        }
        outcome
    }
}

/// Runs `s` and asserts that every check is allowed exactly when
/// `fits(admitted, now, need)` says that admitting `need` more hits now keeps
/// the guarantee (a peek needs 1). Returns the charges admitted.
fn assert_decisions_follow(
    s: &Scenario,
    fits: impl Fn(&[Charge], u64, u64) -> bool,
) -> Result<Vec<Charge>, TestCaseError> {
    let mut sim = Sim::new(s);
    for event in &s.events {
        sim.advance(event);
        let need = event.hits.max(1);
        let expected = fits(&sim.admitted, sim.now_us, need);
        let at = sim.now_us - s.start_us;
        let outcome = sim.check(event.hits);
        prop_assert!(
            !outcome.allowed || expected,
            "admitted {} hits at start+{at} over the limit: {outcome:?}",
            event.hits
        );
        prop_assert!(
            outcome.allowed || !expected,
            "denied {} hits at start+{at} although they fit: {outcome:?}",
            event.hits
        );
    }
    Ok(sim.admitted)
}

/// Asserts that no window `[k·w, (k+1)·w)` holds more than `limit` hits.
fn assert_fixed_windows_within(
    admitted: &[Charge],
    window_us: u64,
    limit: u64,
) -> Result<(), TestCaseError> {
    for c in admitted {
        let k = c.at_us / window_us;
        let in_window = hits_where(admitted, |d| d.at_us / window_us == k);
        prop_assert!(in_window <= limit, "{in_window} hits in window {k}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/properties.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// 1. No more than `limit` hits in any interval `(t − window, t]`.
    #[test]
    fn sliding_log_is_exact_in_every_interval(s in scenario(AlgorithmKind::SlidingLog)) {
        let (w, limit) = (s.window_us, s.limit);
        assert_decisions_follow(&s, |admitted, now, need| {
            hits_where(admitted, |c| c.at_us + w > now) + need <= limit
        })?;
    }

    /// 2. No more than `limit` hits in any window `[k·w, (k+1)·w)`.
    #[test]
    fn fixed_window_counts_each_epoch_window(s in scenario(AlgorithmKind::FixedWindow)) {
        let (w, limit) = (s.window_us, s.limit);
        let admitted = assert_decisions_follow(&s, |admitted, now, need| {
            hits_where(admitted, |c| c.at_us / w == now / w) + need <= limit
        })?;
        assert_fixed_windows_within(&admitted, w, limit)?;
    }

    /// 3. GCRA with `T = ceil(window / limit)`: for admissions at t1 ≤ t2,
    /// the hits admitted in [t1, t2] are at most `burst + floor((t2−t1)/T)`.
    /// (With no refund this is also exactly when GCRA admits.)
    #[test]
    fn token_bucket_bounds_every_interval(s in scenario(AlgorithmKind::TokenBucket)) {
        let t = s.window_us.div_ceil(s.limit);
        let burst = s.burst.unwrap_or(s.limit);
        assert_decisions_follow(&s, |admitted, now, need| {
            need <= burst
                && admitted.iter().all(|first| {
                    hits_where(admitted, |c| c.at_us >= first.at_us) + need
                        <= burst + (now - first.at_us) / t
                })
        })?;
    }

    /// 4. At every admission at t, in window k = t / w with weight
    /// (k+1)·w − t counted in whole milliseconds rounded up:
    /// floor(previous·weight_ms / w_ms) + current ≤ limit, counting this
    /// one; and no fixed window holds more than `limit`.
    #[test]
    fn sliding_window_bounds_the_weighted_estimate(s in scenario(AlgorithmKind::SlidingWindow)) {
        let (w, limit) = (s.window_us, s.limit);
        let admitted = assert_decisions_follow(&s, |admitted, now, need| {
            let k = now / w;
            let weight_ms = ((k + 1) * w - now).div_ceil(1_000);
            let previous = hits_where(admitted, |c| c.at_us / w + 1 == k);
            let current = hits_where(admitted, |c| c.at_us / w == k);
            let carried = u128::from(previous) * u128::from(weight_ms) / u128::from(w / 1_000);
            carried + u128::from(current + need) <= u128::from(limit)
        })?;
        assert_fixed_windows_within(&admitted, w, limit)?;
    }

    /// 5. The leases in flight (admitted, not released, not expired) never
    /// hold more than `limit` slots; leases are released at random.
    #[test]
    fn concurrency_bounds_leases_in_flight(s in scenario(AlgorithmKind::Concurrency)) {
        let (timeout, limit) = (s.window_us, s.limit);
        assert_decisions_follow(&s, |held, now, need| {
            hits_where(held, |c| c.at_us + timeout > now) + need <= limit
        })?;
    }

    /// 6. Refunding a charge at once (with its receipt) restores what a peek
    /// reports.
    #[test]
    fn a_refund_restores_the_quota(s in any_scenario(&ALL)) {
        let mut sim = Sim::new(&s);
        let algorithm = sim.policy.algorithm().clone();
        for (i, event) in s.events.iter().enumerate() {
            sim.advance(event);
            let now = sim.now_us;
            let mut probe = sim.state.clone();
            let before = algorithm.check(&mut probe, now, 0, 0);
            let charged = algorithm.check(&mut probe, now, event.hits, u64::MAX - i as u64);
            if let Some(receipt) = charged.receipt {
                algorithm.refund(&mut probe, receipt, event.hits, now);
                let after = algorithm.check(&mut probe, now, 0, 0);
                prop_assert_eq!(before, after, "refund of {} hits at {}", event.hits, now);
            }
            sim.check(event.hits);
        }
    }

    /// 7. A denied check leaves the state as a peek at the same time would
    /// (which only drops what has expired), and neither denied checks nor
    /// peeks change any later decision: a counter that never saw them
    /// decides every check identically.
    #[test]
    fn denials_and_peeks_change_nothing(s in any_scenario(&ALL)) {
        let mut sim = Sim::new(&s);
        let algorithm = sim.policy.algorithm().clone();
        let mut unseen = State::default();
        for event in &s.events {
            if let Some(released) = sim.advance(event) {
                algorithm.refund(&mut unseen, released.receipt, released.hits, sim.now_us);
            }
            let now = sim.now_us;
            let mut peeked = sim.state.clone();
            algorithm.check(&mut peeked, now, 0, 0);
            let mut without = unseen.clone();
            let expected = algorithm.check(&mut without, now, event.hits, sim.nonce + 1);
            let outcome = sim.check(event.hits);
            prop_assert_eq!(
                outcome,
                expected,
                "{} hits at start+{}: a counter that never saw the denials and peeks decides otherwise",
                event.hits,
                now - s.start_us
            );
            if !outcome.allowed {
                prop_assert_eq!(&sim.state, &peeked, "a denied check changed the state");
            }
            if outcome.receipt.is_some() {
                unseen = without;
            }
        }
    }

    /// 8. `retry_after_us` is exact (see `assert_retry_after_exact`).
    #[test]
    fn retry_after_is_when_the_check_fits(s in any_scenario(&[
        AlgorithmKind::SlidingWindow,
        AlgorithmKind::SlidingLog,
        AlgorithmKind::FixedWindow,
        AlgorithmKind::TokenBucket,
    ])) {
        assert_retry_after_exact(&s)?;
    }

    /// 8, for `concurrency` (leases released before the denial only).
    #[test]
    fn concurrency_retry_after_is_when_the_check_fits(s in scenario(AlgorithmKind::Concurrency)) {
        assert_retry_after_exact(&s)?;
    }
}

/// When a check of at most the quota (`burst` for `token_bucket`) is denied
/// with `retry_after_us = r`, the same check on the unchanged state is
/// allowed at now + r and not 1 µs before.
fn assert_retry_after_exact(s: &Scenario) -> Result<(), TestCaseError> {
    let mut sim = Sim::new(s);
    let algorithm = sim.policy.algorithm().clone();
    let capacity = sim.policy.burst();
    for event in &s.events {
        sim.advance(event);
        let now = sim.now_us;
        let outcome = sim.check(event.hits);
        if outcome.allowed || event.hits > capacity {
            continue;
        }
        let r = outcome.retry_after_us;
        let at = now - s.start_us;
        prop_assert!(r > 0, "denied with retry_after 0: {:?}", outcome);
        let retried = algorithm.check(&mut sim.state.clone(), now + r, event.hits, 0);
        prop_assert!(
            retried.allowed,
            "{} hits denied at start+{at} with retry_after {r}, denied again then: {retried:?}",
            event.hits
        );
        let early = algorithm.check(&mut sim.state.clone(), now + r - 1, event.hits, 0);
        prop_assert!(
            !early.allowed,
            "{} hits denied at start+{at} with retry_after {r}, but allowed 1 µs earlier",
            event.hits
        );
    }
    Ok(())
}

/// The generated sequences are not vacuous: for every algorithm a good share
/// of the checks that could fit the quota are denied, and a good share are
/// allowed.
#[test]
fn generated_sequences_exercise_the_limits() {
    for kind in ALL {
        let mut runner = TestRunner::deterministic();
        let strategy = scenario(kind);
        let (mut checks, mut denied) = (0u64, 0u64);
        for _ in 0..200 {
            let s = strategy.new_tree(&mut runner).unwrap().current();
            let mut sim = Sim::new(&s);
            let capacity = sim.policy.burst();
            for event in &s.events {
                sim.advance(event);
                let outcome = sim.check(event.hits);
                if event.hits <= capacity {
                    checks += 1;
                    denied += u64::from(!outcome.allowed);
                }
            }
        }
        let share = denied * 100 / checks;
        assert!(
            (15..=70).contains(&share),
            "{kind:?}: {denied} of {checks} checks within the quota denied ({share}%)"
        );
    }
}

// Minimal reproductions of bugs the properties found.

/// `concurrency`: `retry_after_us` points at the first lease expiry, even
/// when that frees too few slots for the check.
#[test]
fn concurrency_retry_after_waits_for_enough_slots() {
    let p = policy(AlgorithmKind::Concurrency, 2, 1_000_000, None);
    let (a, mut state) = (p.algorithm(), State::default());
    let t = BASE_US;
    assert!(a.check(&mut state, t, 1, 1).allowed); // lease 1 lapses at t + 1 s
    assert!(a.check(&mut state, t + 100_000, 1, 2).allowed); // lease 2 at t + 1.1 s
    let denied = a.check(&mut state, t + 200_000, 2, 3);
    assert!(!denied.allowed);
    // Two free slots need both leases gone: at t + 1.1 s, 900 ms from now.
    assert!(!a.check(&mut state.clone(), t + 1_000_000, 2, 4).allowed);
    assert_eq!(denied.retry_after_us, 900_000);
}

/// `token_bucket`: refunding a charge whose debt has already drained gives
/// nothing back, so it cannot let more than `burst` through.
#[test]
fn token_bucket_refund_of_a_drained_charge_is_harmless() {
    // One per second, bursts of 1.
    let p = policy(AlgorithmKind::TokenBucket, 1, 1_000_000, None);
    let (a, mut state) = (p.algorithm(), State::default());
    let t = BASE_US;
    let first = a.check(&mut state, t, 1, 0);
    assert!(first.allowed);
    // At t + 1 s the first token is back, so the first charge has drained.
    assert!(a.check(&mut state, t + 1_000_000, 1, 0).allowed);
    a.refund(&mut state, first.receipt.unwrap(), 1, t + 1_000_000);
    // A second hit within the same µs would exceed the burst of 1.
    assert!(!a.check(&mut state, t + 1_000_000, 1, 0).allowed);
}

/// `sliding_window`: the largest quota a window accepts is still exact: at
/// the first ms of the next window the full previous window weighs `limit`.
/// One more is refused when the policy is built.
#[test]
fn sliding_window_estimate_is_exact_for_the_largest_quota() {
    let window_us: u64 = 30 * 86_400 * 1_000_000;
    let limit = (1u64 << 53) / (window_us / 1_000);
    let p = policy(AlgorithmKind::SlidingWindow, limit, window_us, None);
    let (a, mut state) = (p.algorithm(), State::default());
    let t = BASE_US / window_us * window_us;
    assert!(a.check(&mut state, t, limit, 0).allowed);
    // Next window, weight = window: floor(limit · window / window) = limit.
    assert!(!a.check(&mut state, t + window_us, 1, 0).allowed);
    let too_large = Policy::new(PolicySpec {
        name: "p".into(),
        key: vec!["user".into()],
        limit: limit + 1,
        window_us: Some(window_us),
        ..PolicySpec::default()
    });
    assert_eq!(too_large.unwrap_err()[0].field, "limit");
}

/// `token_bucket`: a bucket whose refill time would overflow the
/// arithmetic (one per minute, bursts up to 10^12) is refused when built;
/// the largest accepted one decides without overflow.
#[test]
fn token_bucket_capacity_cannot_overflow() {
    let spec = |burst| PolicySpec {
        name: "p".into(),
        key: vec!["user".into()],
        limit: 1,
        window_us: Some(60_000_000),
        algorithm: AlgorithmKind::TokenBucket,
        burst: Some(burst),
        ..PolicySpec::default()
    };
    assert_eq!(
        Policy::new(spec(1_000_000_000_000)).unwrap_err()[0].field,
        "burst"
    );
    let largest = 3660 * 86_400 / 60;
    let p = Policy::new(spec(largest)).unwrap();
    let mut state = State::default();
    let outcome = p.algorithm().check(&mut state, BASE_US, 1, 0);
    assert!(outcome.allowed);
    assert_eq!(outcome.remaining, largest - 1);
}
