//! How a `Verdict` is shown to callers: milliseconds, rate-limit headers and
//! the JSON body. Shared by every transport so they all say the same thing:
//! the rate-limit headers are made in [`each_rate_limit_header`] only, the
//! check body's fields in [`CheckBody::new`] only.

mod json;

use std::time::{SystemTime, UNIX_EPOCH};

use floodgate_config::server::HeaderMode;
use floodgate_store::{PolicyStatus, Verdict};
use http::HeaderName;
#[cfg(test)]
use serde::{Serialize, Serializer};

/// Microseconds to whole milliseconds, rounded up: retrying after
/// `retry_after_ms` is never too early.
pub fn ms(us: u64) -> u64 {
    us.div_ceil(1_000)
}

/// Microseconds to whole seconds, rounded up.
pub fn secs(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

/// The rate-limit header names, made once (a name given as text is checked
/// again each time it is inserted).
static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
static RETRY_AFTER: HeaderName = http::header::RETRY_AFTER;

/// Calls `add(name, value)` for each rate-limit response header of a
/// verdict, in order, every value written into one reused buffer.
///
/// `draft`: `RateLimit-Policy` and `RateLimit` of the IETF httpapi draft for
/// the deciding policy; `legacy`: `X-RateLimit-Limit`, `-Remaining` and
/// `-Reset` (epoch seconds, as express-rate-limit sends it). `Retry-After`
/// (seconds, at least 1) accompanies every denial whatever the mode.
pub fn each_rate_limit_header(
    verdict: &Verdict,
    mode: HeaderMode,
    mut add: impl FnMut(&'static HeaderName, &str),
) {
    let Some(s) = verdict.deciding() else {
        return;
    };
    let mut value = String::with_capacity(s.policy.len() + 32);
    let mut number = itoa::Buffer::new();
    if matches!(mode, HeaderMode::Draft | HeaderMode::Both) {
        // "<policy>";q=<limit>;w=<window s>
        value.push('"');
        value.push_str(&s.policy);
        value.push_str("\";q=");
        value.push_str(number.format(s.limit));
        value.push_str(";w=");
        value.push_str(number.format(secs(s.window_us).max(1)));
        add(&RATELIMIT_POLICY, &value);
        // "<policy>";r=<remaining>;t=<reset s>
        value.clear();
        value.push('"');
        value.push_str(&s.policy);
        value.push_str("\";r=");
        value.push_str(number.format(s.remaining));
        value.push_str(";t=");
        value.push_str(number.format(secs(s.reset_after_us)));
        add(&RATELIMIT, &value);
    }
    if matches!(mode, HeaderMode::Legacy | HeaderMode::Both) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        add(&X_RATELIMIT_LIMIT, number.format(s.limit));
        add(&X_RATELIMIT_REMAINING, number.format(s.remaining));
        add(
            &X_RATELIMIT_RESET,
            number.format(secs(now + s.reset_after_us)),
        );
    }
    if !verdict.allowed {
        add(&RETRY_AFTER, number.format(secs(s.retry_after_us).max(1)));
    }
}

/// The rate-limit response headers of a verdict as (name, value) pairs
/// (see [`each_rate_limit_header`]).
pub fn rate_limit_headers(verdict: &Verdict, mode: HeaderMode) -> Vec<(&'static str, String)> {
    let mut headers = Vec::with_capacity(4);
    each_rate_limit_header(verdict, mode, |name, value| {
        headers.push((name.as_str(), value.to_string()));
    });
    headers
}

/// The JSON body of `/v1/check` (and of denials in the proxy and Envoy
/// ext_authz): the same field names as `floodgate.v1.CheckResponse`, whose
/// fields the gRPC service takes from here too. [`CheckBody::to_json`]
/// writes it; the tests hold that to what `serde_json` would write.
#[derive(Debug)]
#[cfg_attr(test, derive(Serialize))]
pub struct CheckBody<'a> {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The deciding policy ("" when none applied).
    pub policy: &'a str,
    /// Its quota.
    pub limit: u64,
    /// Quota left.
    pub remaining: u64,
    /// Milliseconds until the quota is full again.
    pub reset_after_ms: u64,
    /// Milliseconds until a retry could pass; 0 when allowed.
    pub retry_after_ms: u64,
    /// Lease to release (concurrency policies only).
    #[cfg_attr(test, serde(skip_serializing_if = "Option::is_none"))]
    pub lease: Option<&'a str>,
    /// Settlement id (a reserving check on settleable policies only).
    #[cfg_attr(test, serde(skip_serializing_if = "Option::is_none"))]
    pub settlement: Option<&'a str>,
    /// One entry per applicable policy.
    #[cfg_attr(test, serde(serialize_with = "statuses"))]
    pub statuses: &'a [PolicyStatus],
    /// The deciding policy's `deny_status`; present on denials only (set
    /// with [`CheckBody::with_deny_status`]).
    #[cfg_attr(test, serde(skip_serializing_if = "Option::is_none"))]
    pub deny_status: Option<u16>,
    /// Milliseconds the check waited for its turn (0 when it did not).
    pub waited_ms: u64,
}

/// One entry of `statuses`, as `serde_json` writes it (the tests'
/// reference for [`CheckBody::to_json`]).
#[cfg(test)]
#[derive(Debug, Serialize)]
struct StatusBody<'a> {
    /// The policy.
    pub policy: &'a str,
    /// Whether this policy allows the check.
    pub allowed: bool,
    /// Its quota.
    pub limit: u64,
    /// Quota left.
    pub remaining: u64,
    /// Milliseconds until its quota is full again.
    pub reset_after_ms: u64,
    /// Milliseconds until it would allow; 0 when it allows.
    pub retry_after_ms: u64,
    /// Whether it only reports.
    pub shadow: bool,
    /// `"redis" | "local" | "fallback"`.
    pub source: &'static str,
    /// The policies this one replaced for the check; absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<&'a str>,
}

#[cfg(test)]
fn statuses<S: Serializer>(statuses: &&[PolicyStatus], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(statuses.iter().map(StatusBody::new))
}

impl<'a> CheckBody<'a> {
    /// The body for `verdict`.
    pub fn new(verdict: &'a Verdict) -> Self {
        let deciding = verdict.deciding();
        CheckBody {
            allowed: verdict.allowed,
            policy: deciding.map_or("", |s| &s.policy),
            limit: deciding.map_or(0, |s| s.limit),
            remaining: deciding.map_or(0, |s| s.remaining),
            reset_after_ms: deciding.map_or(0, |s| ms(s.reset_after_us)),
            retry_after_ms: if verdict.allowed {
                0
            } else {
                deciding.map_or(0, |s| ms(s.retry_after_us))
            },
            lease: verdict.lease.as_deref(),
            settlement: verdict.settlement.as_deref(),
            statuses: &verdict.statuses,
            deny_status: None,
            waited_ms: 0,
        }
    }

    /// The body with `deny_status` (kept only when the check was denied).
    pub fn with_deny_status(mut self, status: u16) -> Self {
        self.deny_status = (!self.allowed).then_some(status);
        self
    }

    /// The body with `waited_ms`.
    pub fn with_waited_ms(mut self, waited_ms: u64) -> Self {
        self.waited_ms = waited_ms;
        self
    }

    /// The body as JSON: exactly what `serde_json::to_vec` writes, into one
    /// buffer sized up front.
    pub fn to_json(&self) -> Vec<u8> {
        let text = |s: Option<&str>| s.map_or(0, str::len);
        let per_status = |s: &PolicyStatus| {
            let replaced: usize = s.replaced.iter().map(|r| r.len() + 3).sum();
            190 + s.policy.len() + replaced
        };
        let size = 200
            + self.policy.len()
            + text(self.lease)
            + text(self.settlement)
            + self.statuses.iter().map(per_status).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(b"{\"allowed\":");
        json::boolean(&mut out, self.allowed);
        out.extend_from_slice(b",\"policy\":");
        json::string(&mut out, self.policy);
        for (key, n) in [
            (&b",\"limit\":"[..], self.limit),
            (b",\"remaining\":", self.remaining),
            (b",\"reset_after_ms\":", self.reset_after_ms),
            (b",\"retry_after_ms\":", self.retry_after_ms),
        ] {
            out.extend_from_slice(key);
            json::number(&mut out, n);
        }
        for (key, value) in [
            (&b",\"lease\":"[..], self.lease),
            (b",\"settlement\":", self.settlement),
        ] {
            if let Some(value) = value {
                out.extend_from_slice(key);
                json::string(&mut out, value);
            }
        }
        out.extend_from_slice(b",\"statuses\":[");
        for (i, s) in self.statuses.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            status_json(&mut out, s);
        }
        out.push(b']');
        if let Some(status) = self.deny_status {
            out.extend_from_slice(b",\"deny_status\":");
            json::number(&mut out, u64::from(status));
        }
        out.extend_from_slice(b",\"waited_ms\":");
        json::number(&mut out, self.waited_ms);
        out.push(b'}');
        out
    }
}

/// One entry of `statuses`.
fn status_json(out: &mut Vec<u8>, s: &PolicyStatus) {
    out.extend_from_slice(b"{\"policy\":");
    json::string(out, &s.policy);
    out.extend_from_slice(b",\"allowed\":");
    json::boolean(out, s.allowed);
    for (key, n) in [
        (&b",\"limit\":"[..], s.limit),
        (b",\"remaining\":", s.remaining),
        (b",\"reset_after_ms\":", ms(s.reset_after_us)),
        (b",\"retry_after_ms\":", ms(s.retry_after_us)),
    ] {
        out.extend_from_slice(key);
        json::number(out, n);
    }
    out.extend_from_slice(b",\"shadow\":");
    json::boolean(out, s.shadow);
    out.extend_from_slice(b",\"source\":");
    json::string(out, s.source.as_str());
    if !s.replaced.is_empty() {
        out.extend_from_slice(b",\"replaced\":[");
        for (i, name) in s.replaced.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::string(out, name);
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// `{"error": message}`, the body of every JSON error answer.
pub fn error_json(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    out.push(b'{');
    json::key(&mut out, "error", true);
    json::string(&mut out, message);
    out.push(b'}');
    out
}

#[cfg(test)]
impl<'a> StatusBody<'a> {
    fn new(s: &'a PolicyStatus) -> Self {
        StatusBody {
            policy: &s.policy,
            allowed: s.allowed,
            limit: s.limit,
            remaining: s.remaining,
            reset_after_ms: ms(s.reset_after_us),
            retry_after_ms: ms(s.retry_after_us),
            shadow: s.shadow,
            source: s.source.as_str(),
            replaced: s.replaced.iter().map(|r| &**r).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_store::Source;

    fn verdict(allowed: bool) -> Verdict {
        Verdict {
            allowed,
            decider: Some(0),
            statuses: vec![PolicyStatus {
                policy: "ai-per-user".into(),
                allowed,
                limit: 500,
                remaining: 0,
                reset_after_us: 11_200_000,
                retry_after_us: 1_500_000,
                window_us: 60_000_000,
                shadow: false,
                source: Source::Local,
                replaced: Vec::new(),
            }],
            lease: None,
            settlement: None,
        }
    }

    #[test]
    fn draft_headers_on_deny() {
        let h = rate_limit_headers(&verdict(false), HeaderMode::Draft);
        assert_eq!(
            h,
            vec![
                ("ratelimit-policy", "\"ai-per-user\";q=500;w=60".to_string()),
                ("ratelimit", "\"ai-per-user\";r=0;t=12".to_string()),
                ("retry-after", "2".to_string()),
            ]
        );
    }

    #[test]
    fn legacy_and_none() {
        let h = rate_limit_headers(&verdict(true), HeaderMode::Legacy);
        let names: Vec<_> = h.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset"
            ]
        );
        assert!(rate_limit_headers(&verdict(true), HeaderMode::None).is_empty());
        assert_eq!(
            rate_limit_headers(&verdict(false), HeaderMode::None),
            vec![("retry-after", "2".to_string())]
        );
    }

    #[test]
    fn body_rounds_up_to_milliseconds() {
        let v = verdict(false);
        let body = serde_json::to_value(CheckBody::new(&v)).unwrap();
        assert_eq!(body["retry_after_ms"], 1500);
        assert_eq!(body["reset_after_ms"], 11200);
        assert_eq!(body["statuses"][0]["source"], "local");
        assert!(body.get("lease").is_none());
        assert!(body.get("deny_status").is_none());
        assert_eq!(body["waited_ms"], 0);
        let body = serde_json::to_value(CheckBody::new(&v).with_deny_status(503)).unwrap();
        assert_eq!(body["deny_status"], 503);
        let allowed = verdict(true);
        let body = serde_json::to_value(CheckBody::new(&allowed).with_deny_status(503)).unwrap();
        assert!(body.get("deny_status").is_none());
        assert_eq!(ms(1), 1);
        assert_eq!(secs(1_000_001), 2);
    }

    #[test]
    fn both_modes_send_every_header_once() {
        let h = rate_limit_headers(&verdict(false), HeaderMode::Both);
        let names: Vec<_> = h.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "ratelimit-policy",
                "ratelimit",
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset",
                "retry-after"
            ]
        );
        assert_eq!(h[2].1, "500");
        assert_eq!(h[3].1, "0");
        assert!(rate_limit_headers(&Verdict::default(), HeaderMode::Both).is_empty());
    }

    #[test]
    fn the_written_body_is_what_serde_json_writes() {
        let mut many = verdict(false);
        let mut second = many.statuses[0].clone();
        second.policy = "we\"ird\\näme\u{1}".into();
        second.shadow = true;
        second.source = Source::Fallback;
        second.replaced = vec!["a".into(), "b-c".into()];
        second.limit = u64::MAX;
        many.statuses.push(second);
        many.decider = Some(1);
        many.lease = Some("ai:u1/00000000000000ff/1".into());
        many.settlement = Some("tok:u1/0123/5,x".into());
        let allowed = verdict(true);
        let none = Verdict {
            allowed: true,
            ..Verdict::default()
        };
        for v in [&many, &allowed, &none, &verdict(false)] {
            for body in [
                CheckBody::new(v),
                CheckBody::new(v).with_deny_status(429).with_waited_ms(7),
            ] {
                let written = String::from_utf8(body.to_json()).unwrap();
                let serde = serde_json::to_string(&body).unwrap();
                assert_eq!(written, serde);
            }
        }
        for message in ["", "no route for /x\"y\n"] {
            assert_eq!(
                error_json(message),
                serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap()
            );
        }
    }
}
