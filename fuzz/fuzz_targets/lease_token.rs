//! Arbitrary strings → `LeasePart::decode`.
//!
//! Invariants: no panic; a token that parses is at most `MAX_LEASE_LEN`
//! bytes; the token built from its parts parses to the same parts; and
//! parts built from arbitrary keys, ids and hits encode to a token that
//! parses back to them whenever the keys are valid counter keys.
#![no_main]

use floodgate_core::lease::MAX_LEASE_LEN;
use floodgate_core::{counter_key, LeasePart};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|token: &str| {
    if let Ok(parts) = LeasePart::decode(token) {
        assert!(token.len() <= MAX_LEASE_LEN);
        assert!(!parts.is_empty());
        for part in &parts {
            assert!(part.hits > 0, "{token:?}");
            assert!(!part.counter_key.is_empty(), "{token:?}");
        }
        let rebuilt = LeasePart::encode(&parts);
        assert_eq!(
            LeasePart::decode(&rebuilt).as_ref(),
            Ok(&parts),
            "{token:?} -> {rebuilt:?}"
        );
    }
    // The other direction: any values, escaped into a counter key the way
    // the limiter builds them, survive a round trip through a token.
    let values: Vec<&str> = token.split('\u{1}').take(8).collect();
    let key = counter_key("fuzz-policy", values.iter().copied());
    let id = token.len() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let parts = vec![
        LeasePart {
            counter_key: key,
            id,
            hits: token.len() as u64 + 1,
        };
        2
    ];
    let encoded = LeasePart::encode(&parts);
    if encoded.len() <= MAX_LEASE_LEN {
        assert_eq!(
            LeasePart::decode(&encoded).as_ref(),
            Ok(&parts),
            "{encoded:?}"
        );
    }
});
