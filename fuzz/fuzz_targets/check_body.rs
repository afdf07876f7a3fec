//! `POST /v1/check` and `/v1/auth` input → attributes → a check.
//!
//! The input is a `/v1/check` JSON body, then optionally a NUL byte and a
//! header block (`name: value` lines) read as the headers of a `/v1/auth`
//! request. The body goes through the route's own parser
//! (`routes::parse::<CheckRequest>`), the headers through the route's
//! header reads (`identity::header_target`,
//! `HttpRequestInfo::from_headers`) and `identity::attributes`; both then
//! through the limiter.
//! Invariants: no panic; whatever the limiter accepts passes
//! `validate_attributes`; only malformed attributes or cost are refused; an
//! issued lease decodes and re-encodes to itself.
#![no_main]

mod common;

use floodgate_server::http::routes::{parse, CheckRequest};
use floodgate_server::identity::{attributes, header_target, HttpRequestInfo};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (body, headers) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], Some(&data[nul + 1..])),
        None => (data, None),
    };
    if let Ok(request) = parse::<CheckRequest>(body) {
        common::check_and_assert(&request.attributes, request.hits, None);
    }
    if let Some(block) = headers {
        auth(&header_map(block));
    }
});

/// The headers hyper would hand the route: lines that are a valid header
/// name and value; later lines of the same name are appended.
fn header_map(block: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in block.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        map.append(name, value);
    }
    map
}

/// What `routes::auth` does with a request's headers: method and target
/// from `X-Original-*` read as bytes (as nginx sends them), the rest
/// through `HttpRequestInfo::from_headers` with `X-Real-IP` believed.
fn auth(headers: &HeaderMap) {
    let h = common::harness();
    let method = header_target(headers, "x-original-method");
    let target = header_target(headers, "x-original-uri");
    if let Some(target) = &target {
        assert!(target.is_ascii(), "{target:?}");
    }
    let info = HttpRequestInfo::from_headers(
        method.as_deref().unwrap_or("GET"),
        target.as_deref().unwrap_or("/"),
        "192.0.2.1".parse().expect("an address"),
        headers,
        &h.config.identity.user_header,
        true,
    );
    let attributes = attributes(&info, &h.config.identity, &h.config.endpoints);
    let path = &attributes["path"];
    assert!(path.starts_with('/'), "{path:?}");
    common::check_and_assert(&attributes, 1, None);
}
