//! A policy as written ([`PolicySpec`]), the names it is made of
//! ([`AlgorithmKind`], [`Mode`], [`FallbackMode`]) and why one is refused
//! ([`PolicyError`]).

use super::MAX_NAME_LEN;

/// The algorithm named in a policy, before its parameters are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlgorithmKind {
    /// `sliding_window` (the default).
    #[default]
    SlidingWindow,
    /// `sliding_log`.
    SlidingLog,
    /// `fixed_window`.
    FixedWindow,
    /// `token_bucket`.
    TokenBucket,
    /// `concurrency`.
    Concurrency,
}

impl AlgorithmKind {
    /// Every algorithm, by its configuration name.
    pub const ALL: [(&'static str, AlgorithmKind); 5] = [
        ("sliding_window", AlgorithmKind::SlidingWindow),
        ("sliding_log", AlgorithmKind::SlidingLog),
        ("fixed_window", AlgorithmKind::FixedWindow),
        ("token_bucket", AlgorithmKind::TokenBucket),
        ("concurrency", AlgorithmKind::Concurrency),
    ];

    /// The configuration name (`"sliding_window"`, …).
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("sliding_window", |(n, _)| n)
    }

    /// Parses a configuration name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }
}

/// Whether a policy's denials are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Denials deny (the default).
    #[default]
    Enforce,
    /// Count and report, never deny.
    Shadow,
}

/// What a policy does while its shared store is unreachable (docs/configuration.md, `[fallback]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackMode {
    /// Limit locally with `ceil(limit / instances)`.
    Local,
    /// Allow everything.
    Allow,
    /// Deny everything.
    Deny,
}

impl FallbackMode {
    /// Parses `"local" | "allow" | "deny"`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "local" => Some(FallbackMode::Local),
            "allow" => Some(FallbackMode::Allow),
            "deny" => Some(FallbackMode::Deny),
            _ => None,
        }
    }

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackMode::Local => "local",
            FallbackMode::Allow => "allow",
            FallbackMode::Deny => "deny",
        }
    }
}

/// A policy as written, before validation. Durations are in µs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySpec {
    /// Unique name, `[A-Za-z0-9_.-]`, 1 to 64 bytes.
    pub name: String,
    /// Conditions: attribute → accepted values (any of them).
    pub matches: Vec<(String, Vec<String>)>,
    /// Attributes whose values partition the counter; an entry may list
    /// alternatives, `"user|ip"`, the first present one wins.
    pub key: Vec<String>,
    /// The quota.
    pub limit: u64,
    /// The window; required except for `concurrency`.
    pub window_us: Option<u64>,
    /// The algorithm.
    pub algorithm: AlgorithmKind,
    /// `token_bucket` only: bucket size (default `limit`).
    pub burst: Option<u64>,
    /// `concurrency` only: lease lifetime (default 60 s).
    pub lease_timeout_us: Option<u64>,
    /// Enforce or shadow.
    pub mode: Mode,
    /// Per-policy override of the store's fallback mode.
    pub fallback: Option<FallbackMode>,
    /// Envoy RLS domain; `None` = every domain.
    pub domain: Option<String>,
    /// Names of the policies this one takes the place of when it applies
    /// (see [`PolicySet::applicable`](super::PolicySet::applicable)).
    pub replaces: Vec<String>,
    /// Whether checks may reserve an estimated cost and settle it later
    /// (`sliding_window`, `fixed_window`, `token_bucket` only).
    pub settle: bool,
    /// HTTP status of a denial (400–599; default 429).
    pub deny_status: Option<u64>,
    /// How long a denied check may wait for its turn, in µs (default 0).
    pub max_wait_us: Option<u64>,
    /// Checks that may wait on one counter at once (default 100 with a
    /// `max_wait`).
    pub max_waiting: Option<u64>,
    /// Lockout: how long a key denied by the policy is then refused, in µs
    /// (`None`: no lockout).
    pub block_for_us: Option<u64>,
    /// Whether each repeat offence doubles the block.
    pub block_escalation: bool,
    /// With escalation: the longest block, in µs (default 1 day).
    pub block_max_us: Option<u64>,
    /// `fixed_window` only: windows are calendar periods (`"day"`,
    /// `"week"`, `"month"`) instead of a `window`.
    pub calendar: Option<String>,
    /// With `calendar`: the IANA time zone (default `"UTC"`).
    pub timezone: Option<String>,
}

/// Why a policy spec was refused; `field` names the offending setting so a
/// config loader can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    /// The setting at fault (`"limit"`, `"window"`, `"name"`, …).
    pub field: &'static str,
    /// What is wrong and what was expected.
    pub message: String,
    /// The element of a list setting at fault (`key` entry), if one.
    pub index: Option<usize>,
}

pub(super) fn error(field: &'static str, message: impl Into<String>) -> PolicyError {
    PolicyError {
        field,
        message: message.into(),
        index: None,
    }
}

/// Whether `name` is a valid policy or attribute name.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
