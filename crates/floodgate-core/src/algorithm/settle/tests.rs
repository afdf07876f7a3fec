use proptest::prelude::*;

use super::*;
use crate::algorithm::{FixedWindow, SlidingWindow, TokenBucket, WindowState};
use crate::outcome::Outcome;

const S: u64 = 1_000_000;

/// A check of `estimate` at `now`, and the reservation it leaves.
fn reserve(a: &Algorithm, st: &mut State, now: u64, estimate: u64) -> (Outcome, Reservation) {
    let o = a.check(st, now, estimate, 0);
    let receipt = o.receipt.expect("charged");
    (
        o,
        Reservation {
            estimate,
            receipt,
            expires_us: now + 2 * 60 * S,
        },
    )
}

fn window(st: &State) -> WindowState {
    match st {
        State::Window(w) => *w,
        other => panic!("not a window: {other:?}"),
    }
}

#[test]
fn fixed_window_overrun_goes_below_zero_and_denies_until_the_window_ends() {
    let a = Algorithm::FixedWindow(FixedWindow::new(100, 60 * S));
    let mut st = State::default();
    let t0 = 6_000 * S;
    let (_, r) = reserve(&a, &mut st, t0, 50);
    assert_eq!(a.settle(&mut st, &r, 180, t0 + S), 130);
    assert_eq!(window(&st).current, 180, "recorded past the limit of 100");
    let denied = a.check(&mut st, t0 + 2 * S, 1, 0);
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    assert_eq!(denied.retry_after_us, 58 * S);
    assert!(a.check(&mut st, t0 + 60 * S, 100, 0).allowed);
}

#[test]
fn fixed_window_refund_gives_back_in_its_window_only() {
    let a = Algorithm::FixedWindow(FixedWindow::new(100, 60 * S));
    let mut st = State::default();
    let t0 = 6_000 * S;
    let (_, r) = reserve(&a, &mut st, t0, 80);
    assert_eq!(a.settle(&mut st, &r, 30, t0 + S), -50);
    assert_eq!(window(&st).current, 30);
    assert!(a.check(&mut st, t0 + S, 70, 0).allowed);
    // A reservation settled after its window ended: the new window is not
    // refunded for a charge it never held.
    let (_, late) = reserve(&a, &mut st, t0 + 120 * S, 40);
    a.check(&mut st, t0 + 180 * S, 10, 0);
    a.settle(&mut st, &late, 0, t0 + 181 * S);
    assert_eq!(window(&st).current, 10);
}

#[test]
fn sliding_window_overrun_weighs_into_the_next_window() {
    let a = Algorithm::SlidingWindow(SlidingWindow::new(100, 60 * S));
    let mut st = State::default();
    let t0 = 6_000 * S;
    let (_, r) = reserve(&a, &mut st, t0, 100);
    a.settle(&mut st, &r, 300, t0 + 10 * S);
    assert_eq!(window(&st).current, 300);
    // Half-way through the next window, half of 300 still weighs: denied.
    let half = t0 + 90 * S;
    let denied = a.check(&mut st, half, 1, 0);
    assert!(!denied.allowed);
    // It fits once floor(300·w/60 s) ≤ 99 → w < 20 s: 10 s later + 1 ms.
    assert_eq!(denied.retry_after_us, 10 * S + 1_000);
    assert!(a.check(&mut st, half + 10 * S + 1_000, 1, 0).allowed);
}

#[test]
fn sliding_window_refund_reaches_the_previous_window() {
    let a = Algorithm::SlidingWindow(SlidingWindow::new(100, 60 * S));
    let mut st = State::default();
    let t0 = 6_000 * S;
    let (_, r) = reserve(&a, &mut st, t0 + 59 * S, 90);
    // Settled in the next window: the refund comes off `previous`.
    a.check(&mut st, t0 + 61 * S, 0, 0);
    a.settle(&mut st, &r, 10, t0 + 61 * S);
    let w = window(&st);
    assert_eq!((w.previous, w.current), (10, 0));
}

#[test]
fn window_counters_are_capped_to_stay_exact() {
    let a = Algorithm::FixedWindow(FixedWindow::new(10, 366 * 86_400 * S));
    let mut st = State::default();
    let (_, r) = reserve(&a, &mut st, 0, 1);
    a.settle(&mut st, &r, u64::MAX, 1);
    assert_eq!(window(&st).current, window_cap(366 * 86_400 * S));
}

#[test]
fn token_bucket_overrun_is_a_debt_beyond_the_bucket() {
    // 10 per 10 s, bursts of 10: one token a second.
    let a = Algorithm::TokenBucket(TokenBucket::new(10, 10 * S, 10).settled());
    let mut st = State::default();
    let t0 = 1_000 * S;
    let (_, r) = reserve(&a, &mut st, t0, 5);
    assert_eq!(a.settle(&mut st, &r, 25, t0), 20);
    // 25 tokens owed from a bucket of 10: 25 s of debt, never clamped.
    assert_eq!(st, State::Tat(t0 + 25 * S));
    let denied = a.check(&mut st, t0 + S, 1, 0);
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after_us, 15 * S);
    assert_eq!(st, State::Tat(t0 + 25 * S), "a check keeps the debt");
    assert!(a.check(&mut st, t0 + 16 * S, 1, 0).allowed);
}

#[test]
fn a_bucket_that_does_not_settle_still_clamps_its_debt() {
    let a = Algorithm::TokenBucket(TokenBucket::new(10, 10 * S, 10));
    let mut st = State::Tat(1_000 * S + 25 * S);
    a.check(&mut st, 1_000 * S, 0, 0);
    assert_eq!(st, State::Tat(1_000 * S + 10 * S));
}

#[test]
fn token_bucket_refund_gives_back_what_has_not_drained() {
    let a = Algorithm::TokenBucket(TokenBucket::new(10, 10 * S, 10).settled());
    let mut st = State::default();
    let t0 = 1_000 * S;
    let (_, r) = reserve(&a, &mut st, t0, 8);
    assert_eq!(a.settle(&mut st, &r, 2, t0), -6);
    assert_eq!(st, State::Tat(t0 + 2 * S));
    // Settled once 5 of its 8 tokens have drained: only 3 s are still owed,
    // so at most 3 come back however small the actual cost.
    let mut st = State::default();
    let (_, r) = reserve(&a, &mut st, t0, 8);
    a.settle(&mut st, &r, 0, t0 + 5 * S);
    assert_eq!(st, State::Tat(t0 + 5 * S));
}

#[test]
fn token_bucket_debt_is_capped() {
    let a = Algorithm::TokenBucket(TokenBucket::new(1, 366 * 86_400 * S, 1).settled());
    let mut st = State::default();
    let (_, r) = reserve(&a, &mut st, S, 1);
    a.settle(&mut st, &r, u64::MAX, S);
    assert_eq!(st, State::Tat(S + MAX_DEBT_US));
}

#[test]
fn an_exact_estimate_changes_nothing_and_logs_do_not_settle() {
    let a = Algorithm::FixedWindow(FixedWindow::new(100, 60 * S));
    let mut st = State::default();
    let (_, r) = reserve(&a, &mut st, 0, 40);
    assert_eq!(a.settle(&mut st, &r, 40, 1), 0);
    assert_eq!(window(&st).current, 40);
    let log = Algorithm::SlidingLog(crate::algorithm::SlidingLog::new(5, S));
    assert!(!log.settles());
    let mut st = State::default();
    let (_, r) = reserve(&log, &mut st, 0, 2);
    let before = st.clone();
    assert_eq!(log.settle(&mut st, &r, 5, 1), 0);
    assert_eq!(st, before);
}

proptest! {
    /// Within one fixed window the counter is exactly the actual costs of
    /// the settled reservations plus the estimates of the others: nothing
    /// is lost, nothing counted twice; and a reservation is admitted only
    /// while the counter has room for its estimate.
    #[test]
    fn fixed_window_bookkeeping_is_exact(
        steps in proptest::collection::vec((1u64..60, 0u64..200, any::<bool>()), 1..40)
    ) {
        let limit = 500;
        let a = Algorithm::FixedWindow(FixedWindow::new(limit, 3_600 * S));
        let mut st = State::default();
        let mut expected = 0u64;
        for (i, (estimate, actual, settle)) in steps.into_iter().enumerate() {
            let now = i as u64;
            let before = window(&{ let mut p = st.clone(); a.check(&mut p, now, 0, 0); p }).current;
            let o = a.check(&mut st, now, estimate, 0);
            prop_assert_eq!(o.allowed, before + estimate <= limit);
            let Some(receipt) = o.receipt else { continue };
            let r = Reservation { estimate, receipt, expires_us: u64::MAX };
            if settle {
                a.settle(&mut st, &r, actual, now);
                expected += actual;
            } else {
                expected += estimate;
            }
            prop_assert_eq!(window(&st).current, expected);
        }
    }
}
