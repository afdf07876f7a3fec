//! Arbitrary bytes → `floodgate_core::path` as the server uses it.
//!
//! The input is a raw request target, as a header value may carry it:
//! `path::encode_target` turns it into text, then `identity::request_path`
//! (`origin_form`, query and fragment cut, `normalize`) makes it the path
//! that is classified. When the input is UTF-8 it also goes through
//! `normalize` directly.
//!
//! Invariants: no panic; `encode_target` leaves only bytes that may appear
//! in a path, keeps a target that needed nothing as is, and is idempotent;
//! `normalize` is idempotent, and its output starts with `/`, holds only
//! bytes that may appear in a path, every `%` starting an upper-case escape
//! of a byte that is not unreserved, no `//`, no `.` or `..` segment (so no
//! `/./`, `/../`, trailing `/.` or `/..`); a UTF-8 path and its encoded
//! bytes normalise alike; `request_path` is `normalize` of the origin-form
//! path.
#![no_main]

use floodgate_core::path::{encode_target, normalize, origin_form};
use floodgate_server::identity::request_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let target = encode_target(data);
    assert_encoded(data, &target);
    let path = request_path(&target);
    assert_normal(&target, &path);
    let expected = normalize(origin_form(&target).split(['?', '#']).next().unwrap_or(""));
    assert_eq!(path, expected, "{target:?}");

    if let Ok(text) = std::str::from_utf8(data) {
        let once = normalize(text);
        assert_normal(text, &once);
        assert_eq!(
            normalize(&encode_target(text.as_bytes())),
            once,
            "{text:?}: the encoded bytes normalise differently"
        );
        let origin = origin_form(text);
        assert!(
            origin.is_empty() || origin.starts_with(['/', '?', '#']) || origin == text,
            "{text:?} -> origin form {origin:?}"
        );
        assert!(text.ends_with(origin), "{text:?} -> origin form {origin:?}");
    }
});

/// Whether `byte` may appear in a path as is (as `path.rs` documents it).
fn allowed(byte: u8) -> bool {
    byte.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&byte)
}

fn assert_encoded(raw: &[u8], target: &str) {
    assert!(target.bytes().all(allowed), "{raw:?} -> {target:?}");
    if raw.iter().all(|&b| allowed(b)) {
        assert_eq!(target.as_bytes(), raw);
    }
    assert_eq!(encode_target(target.as_bytes()), target, "not idempotent");
}

fn assert_normal(input: &str, once: &str) {
    assert_eq!(
        normalize(once),
        once,
        "not idempotent for {input:?} -> {once:?}"
    );
    assert!(once.starts_with('/'), "{input:?} -> {once:?}");
    assert!(!once.contains("//"), "{input:?} -> {once:?}");
    assert!(once.bytes().all(allowed), "{input:?} -> {once:?}");
    let segments: Vec<&str> = once[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        assert!(
            *segment != "." && *segment != "..",
            "{input:?} -> {once:?} keeps a dot segment"
        );
        assert!(
            !segment.is_empty() || i + 1 == segments.len(),
            "{input:?} -> {once:?} has an empty segment"
        );
    }
    let bytes = once.as_bytes();
    for (i, _) in once.match_indices('%') {
        let escape = bytes.get(i + 1..i + 3);
        let Some(&[high, low]) = escape else {
            panic!("{input:?} -> {once:?}: a `%` that starts no escape");
        };
        let upper = |b: u8| b.is_ascii_digit() || (b'A'..=b'F').contains(&b);
        assert!(upper(high) && upper(low), "{input:?} -> {once:?}");
        let byte = u8::from_str_radix(&once[i + 1..i + 3], 16).expect("hex");
        assert!(
            !(byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)),
            "{input:?} -> {once:?}: an unreserved byte stays escaped"
        );
    }
}
