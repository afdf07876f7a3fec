//! How a `Verdict` is shown to callers: milliseconds, rate-limit headers and
//! the JSON body. Shared by every transport so they all say the same thing.

use std::time::{SystemTime, UNIX_EPOCH};

use floodgate_config::server::HeaderMode;
use floodgate_store::{PolicyStatus, Verdict};
use serde::Serialize;

/// Microseconds to whole milliseconds, rounded up: retrying after
/// `retry_after_ms` is never too early.
pub fn ms(us: u64) -> u64 {
    us.div_ceil(1_000)
}

/// Microseconds to whole seconds, rounded up.
pub fn secs(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

/// The rate-limit response headers for a verdict, as (name, value) pairs.
///
/// `draft`: `RateLimit-Policy` and `RateLimit` of the IETF httpapi draft for
/// the deciding policy; `legacy`: `X-RateLimit-Limit`, `-Remaining` and
/// `-Reset` (epoch seconds, as express-rate-limit sends it). `Retry-After`
/// (seconds, at least 1) accompanies every denial whatever the mode.
pub fn rate_limit_headers(verdict: &Verdict, mode: HeaderMode) -> Vec<(&'static str, String)> {
    let mut headers = Vec::with_capacity(4);
    if let Some(s) = verdict.deciding() {
        if matches!(mode, HeaderMode::Draft | HeaderMode::Both) {
            headers.push((
                "ratelimit-policy",
                format!(
                    "\"{}\";q={};w={}",
                    s.policy,
                    s.limit,
                    secs(s.window_us).max(1)
                ),
            ));
            headers.push((
                "ratelimit",
                format!(
                    "\"{}\";r={};t={}",
                    s.policy,
                    s.remaining,
                    secs(s.reset_after_us)
                ),
            ));
        }
        if matches!(mode, HeaderMode::Legacy | HeaderMode::Both) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            headers.push(("x-ratelimit-limit", s.limit.to_string()));
            headers.push(("x-ratelimit-remaining", s.remaining.to_string()));
            headers.push((
                "x-ratelimit-reset",
                secs(now + s.reset_after_us).to_string(),
            ));
        }
        if !verdict.allowed {
            headers.push(("retry-after", secs(s.retry_after_us).max(1).to_string()));
        }
    }
    headers
}

/// The JSON body of `/v1/check` (and of denials in the proxy): the same
/// field names as `floodgate.v1.CheckResponse`.
#[derive(Debug, Serialize)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<&'a str>,
    /// Settlement id (a reserving check on settleable policies only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settlement: Option<&'a str>,
    /// One entry per applicable policy.
    pub statuses: Vec<StatusBody<'a>>,
    /// The deciding policy's `deny_status`; present on denials only (set
    /// with [`CheckBody::with_deny_status`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny_status: Option<u16>,
    /// Milliseconds the check waited for its turn (0 when it did not).
    pub waited_ms: u64,
}

/// One entry of `statuses`.
#[derive(Debug, Serialize)]
pub struct StatusBody<'a> {
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
            statuses: verdict.statuses.iter().map(StatusBody::new).collect(),
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
}

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
}
