//! Arbitrary paths → `floodgate_core::path::normalize`.
//!
//! Invariants: no panic; idempotent (`normalize(normalize(x)) ==
//! normalize(x)`); the output starts with `/` when the input does; the
//! output holds no `//` and no `.` or `..` segment.
#![no_main]

use floodgate_core::path::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|path: &str| {
    let once = normalize(path);
    let twice = normalize(&once);
    assert_eq!(twice.as_ref(), once.as_ref(), "not idempotent for {path:?}");
    if path.starts_with('/') {
        assert!(once.starts_with('/'), "{path:?} -> {once:?}");
    }
    assert!(!once.contains("//"), "{path:?} -> {once:?}");
    for segment in once.split('/') {
        assert!(
            segment != "." && segment != "..",
            "{path:?} -> {once:?} keeps a dot segment"
        );
    }
});
