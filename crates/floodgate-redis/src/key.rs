//! The Redis key of a counter (SPEC §5): `<prefix>:{<counter key>}:<suffix>`.
//!
//! The counter key (`<policy>:<escaped values>`) is the hash tag, so every
//! key of one counter lands in one cluster slot while different users spread
//! over slots. floodgate-core escapes `{`, `}` and `:` out of values, so no
//! value can close the tag early or forge another counter's key. The suffix
//! names the algorithm: a policy whose algorithm changes on reload starts
//! from fresh state, as in the local store.

use floodgate_core::AlgorithmKind;

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

/// The Redis key holding the state of `counter_key` under `kind`.
pub(crate) fn redis_key(prefix: &str, counter_key: &str, kind: AlgorithmKind) -> String {
    let suffix = suffix(kind);
    let mut key = String::with_capacity(prefix.len() + counter_key.len() + suffix.len() + 4);
    key.push_str(prefix);
    key.push_str(":{");
    key.push_str(counter_key);
    key.push_str("}:");
    key.push_str(suffix);
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_core::counter_key;

    #[test]
    fn the_counter_key_is_the_hash_tag() {
        let ck = counter_key("ai", ["u1"]);
        assert_eq!(
            redis_key("fg", &ck, AlgorithmKind::SlidingWindow),
            "fg:{ai:u1}:sw"
        );
        let forged = counter_key("ai", ["a}:{b"]);
        assert_eq!(
            redis_key("fg", &forged, AlgorithmKind::TokenBucket),
            "fg:{ai:a%7D%3A%7Bb}:tb"
        );
    }
}
