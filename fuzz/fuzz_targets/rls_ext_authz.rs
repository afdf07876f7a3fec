//! Envoy RLS `RateLimitRequest` and ext_authz `CheckRequest` → attributes.
//!
//! The input is decoded as both messages. RLS descriptors go through the
//! service's `descriptor_attributes` (with the configured `ipv6_prefix`);
//! ext_authz's HTTP attributes through the service's `request_info` and
//! `identity::attributes`. Every
//! set of attributes then goes through the limiter, and the counter key a
//! policy keyed on all of them would use is checked field by field.
//! Invariants: no panic; no value can put an unescaped `:` (or any other
//! reserved byte) into a counter key; an accepted check passes
//! `validate_attributes`.
#![no_main]

mod common;

use floodgate_core::policy::is_valid_name;
use floodgate_core::{Attributes, Policy, PolicySpec};
use floodgate_proto::envoy::service::auth::v3 as authz;
use floodgate_proto::envoy::service::ratelimit::v3 as rls;
use floodgate_server::grpc::ext_authz::request_info;
use floodgate_server::grpc::rls::{descriptor_attributes, MAX_DESCRIPTORS};
use floodgate_server::identity::attributes;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = rls::RateLimitRequest::decode(data) {
        rate_limit(&request);
    }
    if let Ok(request) = authz::CheckRequest::decode(data) {
        check(&request);
    }
});

fn rate_limit(request: &rls::RateLimitRequest) {
    if request.domain.is_empty() || request.descriptors.len() > MAX_DESCRIPTORS {
        return;
    }
    let h = common::harness();
    let request_hits = u64::from(request.hits_addend.max(1));
    for (i, d) in request.descriptors.iter().enumerate() {
        let Ok(attributes) = descriptor_attributes(i, d, h.config.identity.ipv6_prefix) else {
            continue;
        };
        assert!(!attributes.contains_key("remote_address"));
        assert_keys(&attributes);
        let hits = d.hits_addend.unwrap_or(request_hits);
        common::check_and_assert(&attributes, hits, Some(&request.domain));
    }
}

fn check(request: &authz::CheckRequest) {
    let h = common::harness();
    let Some(context) = request.attributes.as_ref() else {
        return;
    };
    let Some(http) = context.request.as_ref().and_then(|r| r.http.as_ref()) else {
        return;
    };
    let info = request_info(context, http, &h.config.identity.user_header);
    let attributes = attributes(&info, &h.config.identity, &h.config.endpoints);
    assert_keys(&attributes);
    common::check_and_assert(&attributes, 1, None);
}

/// The counter key of a policy keyed on every attribute with a valid name
/// (names sorted), checked field by field.
fn assert_keys(attributes: &Attributes) {
    let mut names: Vec<&String> = attributes.keys().filter(|n| is_valid_name(n)).collect();
    names.sort();
    if names.is_empty() {
        return;
    }
    let spec = PolicySpec {
        name: "fuzz".into(),
        key: names.iter().map(|n| n.to_string()).collect(),
        limit: 1,
        window_us: Some(1_000_000),
        ..PolicySpec::default()
    };
    let policy = Policy::new(spec).expect("a policy keyed on valid names");
    let values: Vec<&str> = names.iter().map(|n| attributes[*n].as_str()).collect();
    common::assert_counter_key(&policy.counter_key(attributes), "fuzz", &values);
}
