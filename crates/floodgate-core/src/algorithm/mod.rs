//! The five algorithms (docs/configuration.md, `[[policy]]`), each a transition over its own state.
//!
//! A store owns atomicity: it locks (or scripts) a counter's state, hands it
//! to [`Algorithm::check`], and keeps what comes back. Every algorithm is
//! check-then-charge: a denied check leaves the state as it was.
//!
//! Peek (`hits == 0`) reports whether a check of one hit would be allowed
//! now, and charges nothing.

mod concurrency;
mod fixed_window;
mod settle;
mod sliding_log;
mod sliding_window;
mod token_bucket;

pub use concurrency::{Concurrency, Lease};
pub use fixed_window::FixedWindow;
pub use settle::{window_cap, MAX_DEBT_US};
pub use sliding_log::{SlidingLog, MAX_LOG_LIMIT};
pub use sliding_window::SlidingWindow;
pub use token_bucket::TokenBucket;

use std::collections::VecDeque;

use crate::outcome::{Outcome, Receipt};

/// The state of one counter, whatever its algorithm.
///
/// Large states are boxed so a local-store entry stays small (bounded
/// memory; the benchmarks hold it to ≤ 150 bytes per
/// `sliding_window` key).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum State {
    /// Nothing counted yet.
    #[default]
    Empty,
    /// `sliding_window` and `fixed_window`.
    Window(WindowState),
    /// `sliding_log`: admitted hits, oldest first.
    Log(Box<VecDeque<u64>>),
    /// `token_bucket`: the GCRA theoretical arrival time (epoch µs).
    Tat(u64),
    /// `concurrency`: the leases in flight.
    Leases(Box<Vec<Lease>>),
}

/// Counters of the current window and, for `sliding_window`, the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowState {
    /// Index of the current window: `now / window`.
    pub index: u64,
    /// Hits counted in the window before `index` (sliding window only).
    pub previous: u64,
    /// Hits counted in window `index`.
    pub current: u64,
}

/// One algorithm with its validated parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Algorithm {
    /// Two-counter weighted estimate.
    SlidingWindow(SlidingWindow),
    /// Exact log of admitted hits.
    SlidingLog(SlidingLog),
    /// Counter reset at multiples of the window since the epoch.
    FixedWindow(FixedWindow),
    /// GCRA with a burst.
    TokenBucket(TokenBucket),
    /// In-flight leases.
    Concurrency(Concurrency),
}

impl Algorithm {
    /// Decides a check of `hits` at `now_us` and charges `state` when it is
    /// allowed. `nonce` names a new lease (`concurrency`); others ignore it.
    /// A state of another algorithm's shape (after a reload changed the
    /// algorithm) is treated as empty.
    pub fn check(&self, state: &mut State, now_us: u64, hits: u64, nonce: u64) -> Outcome {
        match self {
            Algorithm::SlidingWindow(a) => a.check(window_state(state), now_us, hits),
            Algorithm::FixedWindow(a) => a.check(window_state(state), now_us, hits),
            Algorithm::SlidingLog(a) => a.check(log_state(state), now_us, hits),
            Algorithm::TokenBucket(a) => a.check(tat_state(state), now_us, hits),
            Algorithm::Concurrency(a) => a.check(lease_state(state), now_us, hits, nonce),
        }
    }

    /// Undoes the charge named by `receipt` at `now_us` (a refund of a
    /// denied multi-policy check, or a lease release). A charge whose
    /// window or debt has passed is left alone. Refund each receipt at most
    /// once: only lease releases are idempotent.
    pub fn refund(&self, state: &mut State, receipt: Receipt, hits: u64, now_us: u64) {
        match self {
            Algorithm::SlidingWindow(a) => a.refund(window_state(state), receipt, hits),
            Algorithm::FixedWindow(a) => a.refund(window_state(state), receipt, hits),
            Algorithm::SlidingLog(_) => SlidingLog::refund(log_state(state), receipt, hits),
            Algorithm::TokenBucket(a) => a.refund(tat_state(state), receipt, hits, now_us),
            Algorithm::Concurrency(_) => Concurrency::release(lease_state(state), receipt.id),
        }
    }

    /// When `state` holds nothing worth keeping any more (epoch µs): a store
    /// may drop the counter at or after this time without changing any
    /// decision.
    pub fn expires_at(&self, state: &State) -> u64 {
        match (self, state) {
            (Algorithm::SlidingWindow(a), State::Window(s)) => a.expires_at(s),
            (Algorithm::FixedWindow(a), State::Window(s)) => a.expires_at(s),
            (Algorithm::SlidingLog(a), State::Log(s)) => a.expires_at(s),
            (Algorithm::TokenBucket(_), State::Tat(tat)) => *tat,
            (Algorithm::Concurrency(_), State::Leases(s)) => Concurrency::expires_at(s),
            _ => 0,
        }
    }
}

fn window_state(state: &mut State) -> &mut WindowState {
    if !matches!(state, State::Window(_)) {
        *state = State::Window(WindowState::default());
    }
    match state {
        State::Window(s) => s,
        _ => unreachable!("state was just set to Window"),
    }
}

fn log_state(state: &mut State) -> &mut VecDeque<u64> {
    if !matches!(state, State::Log(_)) {
        *state = State::Log(Box::default());
    }
    match state {
        State::Log(s) => s,
        _ => unreachable!("state was just set to Log"),
    }
}

fn tat_state(state: &mut State) -> &mut u64 {
    if !matches!(state, State::Tat(_)) {
        *state = State::Tat(0);
    }
    match state {
        State::Tat(s) => s,
        _ => unreachable!("state was just set to Tat"),
    }
}

fn lease_state(state: &mut State) -> &mut Vec<Lease> {
    if !matches!(state, State::Leases(_)) {
        *state = State::Leases(Box::default());
    }
    match state {
        State::Leases(s) => s,
        _ => unreachable!("state was just set to Leases"),
    }
}

/// The cost a check must fit: a peek asks "would one hit fit?".
pub(crate) fn needed(hits: u64) -> u64 {
    hits.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_of_another_shape_starts_empty() {
        let algorithm = Algorithm::FixedWindow(FixedWindow::new(2, 1_000_000));
        let mut state = State::Tat(99);
        let outcome = algorithm.check(&mut state, 5_000_000, 1, 0);
        assert!(outcome.allowed);
        assert_eq!(outcome.remaining, 1);
    }

    #[test]
    fn local_state_entry_is_small() {
        assert!(std::mem::size_of::<State>() <= 32);
    }
}
