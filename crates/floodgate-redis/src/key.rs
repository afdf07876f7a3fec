//! The Redis key of a counter (docs/redis.md, "Key layout"):
//! `<prefix>:{<counter key>}:<algorithm>[:<shape>]`.
//!
//! The counter key (`<policy>:<escaped values>`) is the hash tag, so every
//! key of one counter lands in one cluster slot while different users spread
//! over slots. floodgate-core escapes `{`, `}` and `:` out of values, so no
//! value can close the tag early or forge another counter's key.
//!
//! After the tag come the algorithm and the parameters that give its state
//! meaning (its shape): the window in ms (`sw`, `fw`, `log`), the burst and
//! the emission interval in µs (`tb`); `cc` has none; a calendar
//! `fixed_window` has its period and time zone (`fw:day:Europe/Paris`). Each configuration of
//! a policy therefore counts in a counter of its own: sidecars that run two
//! configurations of one policy at once (a reload rolling across a fleet, or
//! a fleet left mixed) never reset or clamp each other's state, and a reload
//! that changes the algorithm, the window, the rate or the burst starts a
//! fresh counter while the old one expires by its TTL.

use bytes::BufMut;
use floodgate_core::{Algorithm, AlgorithmKind, Policy};

/// The key suffix of each algorithm's state.
pub(crate) fn suffix(kind: AlgorithmKind) -> &'static str {
    match kind {
        AlgorithmKind::SlidingWindow => "sw",
        AlgorithmKind::FixedWindow => "fw",
        AlgorithmKind::SlidingLog => "log",
        AlgorithmKind::TokenBucket => "tb",
        AlgorithmKind::Concurrency => "cc",
    }
}

/// The token bucket's emission interval in µs, as the core computes it
/// (for any other algorithm: the window spread over the limit).
pub(crate) fn interval_us(policy: &Policy) -> u64 {
    match policy.algorithm() {
        Algorithm::TokenBucket(tb) => tb.interval_us(),
        _ => policy.window_us().div_ceil(policy.limit().max(1)).max(1),
    }
}

/// Writes `<prefix>:{<counter key>}:<suffix>`, then `:<n>` for each of
/// `shape`, at the end of `out`.
fn put(out: &mut impl BufMut, prefix: &str, counter_key: &str, suffix: &str, shape: &[u64]) {
    for part in [prefix, ":{", counter_key, "}:", suffix] {
        out.put_slice(part.as_bytes());
    }
    let mut number = itoa::Buffer::new();
    for n in shape {
        out.put_u8(b':');
        out.put_slice(number.format(*n).as_bytes());
    }
}

/// What [`put`] or [`put_redis_key`] writes, as a string.
fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut key = Vec::with_capacity(96);
    write(&mut key);
    String::from_utf8(key).expect("keys are written from strings")
}

/// The Redis key of a window counter (`kind` one of `sliding_window`,
/// `fixed_window`, `sliding_log`) of `counter_key` with a window of
/// `window_us` (a whole number of ms).
pub(crate) fn window_key(
    prefix: &str,
    counter_key: &str,
    kind: AlgorithmKind,
    window_us: u64,
) -> String {
    text(|out| put(out, prefix, counter_key, suffix(kind), &[window_us / 1_000]))
}

/// The Redis key of the lockout record (`block_for`) of `counter_key`
/// (`<policy>:<escaped values>`): `<prefix>:{<counter key>}:block`, in the
/// counter's slot. `lua/block.lua` derives the same key from the counter's
/// Redis key; deleting it lifts the block and forgets the offence level.
pub fn block_key(prefix: &str, counter_key: &str) -> String {
    text(|out| put(out, prefix, counter_key, "block", &[]))
}

/// The Redis key holding the state of `counter_key` under `policy`.
pub(crate) fn redis_key(prefix: &str, counter_key: &str, policy: &Policy) -> String {
    text(|out| put_redis_key(out, prefix, counter_key, policy))
}

/// Writes [`redis_key`] at the end of `out` (a check writes its keys into
/// one buffer).
pub(crate) fn put_redis_key(
    out: &mut impl BufMut,
    prefix: &str,
    counter_key: &str,
    policy: &Policy,
) {
    match policy.kind() {
        AlgorithmKind::FixedWindow if policy.calendar().is_some() => {
            let calendar = policy
                .calendar()
                .map_or(("", ""), |c| (c.period().as_str(), c.zone()));
            put(out, prefix, counter_key, "fw", &[]);
            for part in [calendar.0, calendar.1] {
                out.put_u8(b':');
                out.put_slice(part.as_bytes());
            }
        }
        kind @ (AlgorithmKind::SlidingWindow
        | AlgorithmKind::FixedWindow
        | AlgorithmKind::SlidingLog) => put(
            out,
            prefix,
            counter_key,
            suffix(kind),
            &[policy.window_us() / 1_000],
        ),
        AlgorithmKind::TokenBucket => put(
            out,
            prefix,
            counter_key,
            "tb",
            &[policy.burst(), interval_us(policy)],
        ),
        AlgorithmKind::Concurrency => put(out, prefix, counter_key, "cc", &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_core::{counter_key, testing};

    fn policy(kind: AlgorithmKind, limit: u64, window_us: u64, burst: Option<u64>) -> Policy {
        testing::policy(kind, limit, window_us).burst(burst).build()
    }

    #[test]
    fn the_counter_key_is_the_hash_tag() {
        let ck = counter_key("ai", ["u1"]);
        let sw = policy(AlgorithmKind::SlidingWindow, 5, 60_000_000, None);
        assert_eq!(redis_key("fg", &ck, &sw), "fg:{ai:u1}:sw:60000");
        let forged = counter_key("ai", ["a}:{b"]);
        let tb = policy(AlgorithmKind::TokenBucket, 10, 1_000_000, Some(20));
        assert_eq!(
            redis_key("fg", &forged, &tb),
            "fg:{ai:a%7D%3A%7Bb}:tb:20:100000"
        );
        let cc = policy(AlgorithmKind::Concurrency, 2, 30_000_000, None);
        assert_eq!(redis_key("fg", &ck, &cc), "fg:{ai:u1}:cc");
    }

    #[test]
    fn each_configuration_counts_in_its_own_key_of_one_slot() {
        let ck = counter_key("ai", ["u1"]);
        let keys = [
            redis_key(
                "fg",
                &ck,
                &policy(AlgorithmKind::FixedWindow, 3, 1_000_000, None),
            ),
            redis_key(
                "fg",
                &ck,
                &policy(AlgorithmKind::FixedWindow, 3, 10_000_000, None),
            ),
            redis_key(
                "fg",
                &ck,
                &policy(AlgorithmKind::SlidingWindow, 3, 1_000_000, None),
            ),
            redis_key(
                "fg",
                &ck,
                &policy(AlgorithmKind::SlidingLog, 3, 1_000_000, None),
            ),
            redis_key(
                "fg",
                &ck,
                &policy(AlgorithmKind::TokenBucket, 3, 1_000_000, Some(3)),
            ),
            redis_key(
                "fg",
                &ck,
                &policy(AlgorithmKind::TokenBucket, 3, 1_000_000, Some(6)),
            ),
            redis_key(
                "fg",
                &ck,
                &policy(AlgorithmKind::TokenBucket, 6, 1_000_000, Some(6)),
            ),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // The limit of a window counter is not part of its shape: a reload
        // that only changes it keeps counting in the same counter.
        assert_eq!(
            keys[0],
            redis_key(
                "fg",
                &ck,
                &policy(AlgorithmKind::FixedWindow, 9, 1_000_000, None)
            )
        );
        let slot = fred::util::redis_keyslot(keys[0].as_bytes());
        assert!(keys
            .iter()
            .all(|k| fred::util::redis_keyslot(k.as_bytes()) == slot));
    }
}
