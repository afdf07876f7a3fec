//! The HTTP status a denial is answered with: the deciding policy's
//! `deny_status` (429 unless the policy says otherwise). Looked up in the
//! policy set the check was decided against, so a reload in between
//! cannot mix two configurations.

use floodgate_core::{PolicySet, DEFAULT_DENY_STATUS};
use floodgate_store::Verdict;
use http::StatusCode;

/// The deciding policy's `deny_status` when `verdict` is a denial; 0 when
/// it is allowed. 429 when the deciding policy is not in `policies`.
pub fn deny_status(verdict: &Verdict, policies: &PolicySet) -> u16 {
    if verdict.allowed {
        return 0;
    }
    verdict
        .deciding()
        .and_then(|s| policies.get(&s.policy))
        .map_or(DEFAULT_DENY_STATUS, |p| p.deny_status())
}

/// [`deny_status`] as an HTTP status code (429 for a status outside
/// 400–599, which the config never lets through).
pub fn deny_http_status(verdict: &Verdict, policies: &PolicySet) -> StatusCode {
    StatusCode::from_u16(deny_status(verdict, policies))
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::TOO_MANY_REQUESTS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_core::{Policy, PolicySpec};
    use floodgate_store::{PolicyStatus, Source};

    fn verdict(allowed: bool, policy: &str) -> Verdict {
        Verdict {
            allowed,
            decider: Some(0),
            statuses: vec![PolicyStatus {
                policy: policy.into(),
                allowed,
                limit: 1,
                remaining: 0,
                reset_after_us: 1,
                retry_after_us: 1,
                window_us: 1_000_000,
                shadow: false,
                source: Source::Local,
                replaced: Vec::new(),
            }],
            lease: None,
            settlement: None,
        }
    }

    fn set() -> PolicySet {
        let policy = |name: &str, deny_status| {
            Policy::new(PolicySpec {
                name: name.into(),
                key: vec!["user".into()],
                limit: 1,
                window_us: Some(1_000_000),
                deny_status,
                ..PolicySpec::default()
            })
            .unwrap()
        };
        PolicySet::new(vec![policy("busy", Some(503)), policy("plain", None)]).unwrap()
    }

    #[test]
    fn a_denial_carries_the_deciding_policys_status() {
        let set = set();
        assert_eq!(deny_status(&verdict(false, "busy"), &set), 503);
        assert_eq!(
            deny_http_status(&verdict(false, "busy"), &set),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(deny_status(&verdict(false, "plain"), &set), 429);
        // Gone in a reload: the default.
        assert_eq!(deny_status(&verdict(false, "gone"), &set), 429);
        assert_eq!(deny_status(&verdict(true, "busy"), &set), 0);
        assert_eq!(deny_status(&Verdict::default(), &set), 429);
    }
}
