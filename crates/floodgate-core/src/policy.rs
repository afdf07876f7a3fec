//! Policies: which checks a limit applies to, how its counter is keyed, and
//! the validated algorithm behind it. An invalid policy cannot be built.

use std::collections::HashMap;
use std::sync::Arc;

use crate::algorithm::{
    Algorithm, Concurrency, FixedWindow, SlidingLog, SlidingWindow, TokenBucket, MAX_LOG_LIMIT,
};
use crate::attributes::Attributes;
use crate::key::counter_key_of;

mod applicable;
mod block;
mod calendar;
mod index;
mod key_entry;
mod replace;
mod waiting;
pub use applicable::Applicable;
pub use block::{Block, BlockRecord, DEFAULT_BLOCK_MAX_US};
pub use calendar::{Calendar, Period, DEFAULT_TIMEZONE};
pub use key_entry::KeyEntry;
pub use replace::PolicySetError;
pub use waiting::{
    Waiting, DEFAULT_DENY_STATUS, DEFAULT_MAX_WAITING, MAX_MAX_WAITING, MAX_WAIT_US,
};

/// Longest policy name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Shortest window: 1 ms.
pub const MIN_WINDOW_US: u64 = 1_000;
/// Longest window or lease timeout: 366 days.
pub const MAX_WINDOW_US: u64 = 366 * 86_400 * 1_000_000;
/// Largest limit: far below any overflow in the stores' arithmetic.
pub const MAX_LIMIT: u64 = 1_000_000_000_000;
/// Largest `limit × window_ms` of a `sliding_window` policy: keeps its
/// weighted estimate exact in f64 (and in Lua).
const MAX_EXACT: u128 = 1 << 53;
/// Longest time a token bucket takes to refill: 3660 days, far below what
/// µs timestamps can add without overflow (in u64 and in Lua doubles).
const MAX_BUCKET_US: u64 = 10 * MAX_WINDOW_US;
/// Lease timeout of `concurrency` policies when none is given: 60 s.
pub const DEFAULT_LEASE_TIMEOUT_US: u64 = 60_000_000;

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

/// What a policy does while its shared store is unreachable (SPEC §6).
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
    /// (see [`PolicySet::applicable`]).
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

fn error(field: &'static str, message: impl Into<String>) -> PolicyError {
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

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Unique name.
    name: Arc<str>,
    /// Conditions that must all hold.
    matches: Vec<(String, Vec<String>)>,
    /// The key entries as written (normalised: `user|ip`), in order.
    key: Vec<String>,
    /// The key entries, parsed.
    entries: Vec<KeyEntry>,
    /// The quota as written.
    limit: u64,
    /// Window in µs (for `concurrency`, the lease timeout).
    window_us: u64,
    /// The algorithm with its parameters.
    algorithm: Algorithm,
    /// Its kind, for reporting.
    kind: AlgorithmKind,
    /// `token_bucket` bucket size; `limit` otherwise.
    burst: u64,
    /// Enforce or shadow.
    mode: Mode,
    /// Per-policy fallback override.
    fallback: Option<FallbackMode>,
    /// Envoy RLS domain.
    domain: Option<String>,
    /// The policies it replaces, as written (no repeats, not itself).
    replaces: Vec<String>,
    /// Whether reservations on it can be settled.
    settle: bool,
    /// Denial status and waiting bounds.
    waiting: Waiting,
    /// Lockout settings.
    block: Block,
    /// Calendar periods of a `fixed_window`, if any.
    calendar: Option<Calendar>,
}

impl Policy {
    /// Validates `spec` and builds the policy.
    ///
    /// # Errors
    /// Every problem found, each naming its field.
    pub fn new(spec: PolicySpec) -> Result<Policy, Vec<PolicyError>> {
        let mut errors = Vec::new();
        if !is_valid_name(&spec.name) {
            errors.push(error(
                "name",
                format!(
                    "policy name {:?} must be 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, '_', '-', '.'",
                    spec.name
                ),
            ));
        }
        let kind = spec.algorithm;
        let calendar = calendar::validate(
            kind,
            spec.calendar.as_deref(),
            spec.timezone.as_deref(),
            spec.window_us.is_some(),
            spec.settle,
            &mut errors,
        );
        if spec.limit == 0 {
            errors.push(error("limit", "limit must be at least 1"));
        } else if spec.limit > MAX_LIMIT {
            errors.push(error("limit", format!("limit must be at most {MAX_LIMIT}")));
        } else if kind == AlgorithmKind::SlidingLog && spec.limit > MAX_LOG_LIMIT {
            errors.push(error(
                "limit",
                format!(
                    "sliding_log keeps one entry per hit, so its limit must be at most {}; use sliding_window for larger limits",
                    MAX_LOG_LIMIT
                ),
            ));
        }
        let window_us = match (kind, spec.window_us) {
            // Errors of a calendar policy are reported above.
            _ if spec.calendar.is_some() => {
                calendar.as_ref().map_or(0, |c| c.period().nominal_us())
            }
            (AlgorithmKind::Concurrency, Some(_)) => {
                errors.push(error(
                    "window",
                    "concurrency policies have no window; use lease_timeout",
                ));
                0
            }
            (AlgorithmKind::Concurrency, None) => 0,
            (_, None) => {
                errors.push(error("window", "window is required (for example \"1m\")"));
                0
            }
            (_, Some(w)) if !(MIN_WINDOW_US..=MAX_WINDOW_US).contains(&w) => {
                errors.push(error("window", "window must be between 1ms and 366d"));
                0
            }
            (_, Some(w)) if w % 1_000 != 0 => {
                errors.push(error(
                    "window",
                    "window must be a whole number of milliseconds",
                ));
                0
            }
            (_, Some(w)) => w,
        };
        if kind == AlgorithmKind::SlidingWindow
            && window_us > 0
            && u128::from(spec.limit) * u128::from(window_us / 1_000) > MAX_EXACT
        {
            errors.push(error(
                "limit",
                format!(
                    "sliding_window needs limit × window in ms ≤ 2^53 to stay exact; at most {} for this window (use a shorter window or fixed_window)",
                    MAX_EXACT / u128::from(window_us / 1_000)
                ),
            ));
        }
        if kind == AlgorithmKind::TokenBucket && window_us > 0 && spec.limit > window_us {
            errors.push(error(
                "limit",
                "token_bucket limit must not exceed the window in microseconds (one token per µs at most)",
            ));
        }
        let burst = match (kind, spec.burst) {
            (AlgorithmKind::TokenBucket, Some(0)) => {
                errors.push(error("burst", "burst must be at least 1"));
                1
            }
            (AlgorithmKind::TokenBucket, Some(b)) if b > MAX_LIMIT => {
                errors.push(error("burst", format!("burst must be at most {MAX_LIMIT}")));
                1
            }
            (AlgorithmKind::TokenBucket, Some(b))
                if window_us > 0
                    && spec.limit > 0
                    && u128::from(b) * u128::from(window_us.div_ceil(spec.limit))
                        > u128::from(MAX_BUCKET_US) =>
            {
                errors.push(error(
                    "burst",
                    "burst × window / limit (the time a full bucket takes to refill) must be at most 3660d",
                ));
                1
            }
            (AlgorithmKind::TokenBucket, Some(b)) => b,
            (_, Some(_)) => {
                errors.push(error(
                    "burst",
                    "burst applies only to token_bucket policies",
                ));
                1
            }
            (_, None) => spec.limit,
        };
        let lease_timeout_us = match (kind, spec.lease_timeout_us) {
            (AlgorithmKind::Concurrency, Some(t))
                if !(MIN_WINDOW_US..=MAX_WINDOW_US).contains(&t) =>
            {
                errors.push(error(
                    "lease_timeout",
                    "lease_timeout must be between 1ms and 366d",
                ));
                DEFAULT_LEASE_TIMEOUT_US
            }
            (AlgorithmKind::Concurrency, t) => t.unwrap_or(DEFAULT_LEASE_TIMEOUT_US),
            (_, Some(_)) => {
                errors.push(error(
                    "lease_timeout",
                    "lease_timeout applies only to concurrency policies",
                ));
                0
            }
            (_, None) => 0,
        };
        let waiting = waiting::validate(
            spec.deny_status,
            spec.max_wait_us,
            spec.max_waiting,
            &mut errors,
        );
        let block = block::validate(
            kind,
            spec.block_for_us,
            spec.block_escalation,
            spec.block_max_us,
            spec.max_wait_us,
            &mut errors,
        );
        let entries = key_entry::parse_all(&spec.key, &mut errors);
        for (name, values) in &spec.matches {
            if !is_valid_name(name) {
                errors.push(error(
                    "match",
                    format!("match attribute {name:?} must be 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, '_', '-', '.'"),
                ));
            }
            if values.is_empty() {
                errors.push(error("match", format!("match on {name:?} lists no value")));
            }
        }
        if spec.key.is_empty() && spec.matches.is_empty() {
            errors.push(error(
                "key",
                "a policy with no `key` and no `match` is one global counter for every request; add a `match` or a `key`",
            ));
        }
        if spec.settle && matches!(kind, AlgorithmKind::SlidingLog | AlgorithmKind::Concurrency) {
            errors.push(error(
                "settle",
                format!(
                    "settle applies only to sliding_window, fixed_window and token_bucket policies, not {}",
                    kind.as_str()
                ),
            ));
        }
        if let Some(domain) = &spec.domain {
            if domain.is_empty() || domain.chars().any(char::is_control) {
                errors.push(error("domain", "domain must be a non-empty string"));
            }
        }
        let replaces = replace::replaces_of(&spec, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let algorithm = match kind {
            AlgorithmKind::SlidingWindow => {
                Algorithm::SlidingWindow(SlidingWindow::new(spec.limit, window_us))
            }
            AlgorithmKind::SlidingLog => {
                Algorithm::SlidingLog(SlidingLog::new(spec.limit, window_us))
            }
            AlgorithmKind::FixedWindow => {
                Algorithm::FixedWindow(fixed(spec.limit, window_us, calendar.as_ref()))
            }
            AlgorithmKind::TokenBucket => {
                Algorithm::TokenBucket(bucket(spec.limit, window_us, burst, spec.settle))
            }
            AlgorithmKind::Concurrency => {
                Algorithm::Concurrency(Concurrency::new(spec.limit, lease_timeout_us))
            }
        };
        Ok(Policy {
            name: spec.name.into(),
            matches: spec.matches,
            key: entries.iter().map(ToString::to_string).collect(),
            entries,
            limit: spec.limit,
            window_us: if kind == AlgorithmKind::Concurrency {
                lease_timeout_us
            } else {
                window_us
            },
            algorithm,
            kind,
            burst,
            mode: spec.mode,
            fallback: spec.fallback,
            domain: spec.domain,
            replaces,
            settle: spec.settle,
            waiting,
            block,
            calendar,
        })
    }

    /// The policy's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as a shared string (cheap to clone into statuses).
    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The match conditions.
    pub fn matches(&self) -> &[(String, Vec<String>)] {
        &self.matches
    }

    /// The key entries as written, in order (`"user"`, `"user|ip"`).
    pub fn key(&self) -> &[String] {
        &self.key
    }

    /// The key entries, parsed into their alternatives.
    pub fn key_entries(&self) -> &[KeyEntry] {
        &self.entries
    }

    /// The quota as written.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Window in µs; for `concurrency`, the lease timeout.
    pub fn window_us(&self) -> u64 {
        self.window_us
    }

    /// `token_bucket` bucket size; `limit` for the others.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// The algorithm with its parameters.
    pub fn algorithm(&self) -> &Algorithm {
        &self.algorithm
    }

    /// The algorithm's kind.
    pub fn kind(&self) -> AlgorithmKind {
        self.kind
    }

    /// Enforce or shadow.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Per-policy fallback override.
    pub fn fallback(&self) -> Option<FallbackMode> {
        self.fallback
    }

    /// Whether checks may reserve an estimated cost on it and settle it
    /// later (`settle = true`).
    pub fn settle(&self) -> bool {
        self.settle
    }

    /// Envoy RLS domain, if restricted to one.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The names of the policies it replaces, as written (see
    /// [`PolicySet::applicable`]).
    pub fn replaces(&self) -> &[String] {
        &self.replaces
    }

    /// The denial status and waiting bounds.
    pub fn waiting(&self) -> Waiting {
        self.waiting
    }

    /// The lockout settings (`block_for`; off when `for_us` is 0).
    pub fn block(&self) -> Block {
        self.block
    }

    /// The calendar periods of a `fixed_window` policy with a `calendar`.
    pub fn calendar(&self) -> Option<&Calendar> {
        self.calendar.as_ref()
    }

    /// The HTTP status a denial by this policy is answered with.
    pub fn deny_status(&self) -> u16 {
        self.waiting.deny_status
    }

    /// Whether the policy applies: every `match` condition holds, every key
    /// entry has a present alternative, and the domain fits. A check
    /// without a domain (floodgate.v1, HTTP, ext_authz, nginx) sees only
    /// policies without one.
    pub fn applies(&self, attributes: &Attributes, domain: Option<&str>) -> bool {
        // Policies without a domain belong to every domain.
        if let Some(own) = &self.domain {
            if domain != Some(own.as_str()) {
                return false;
            }
        }
        self.matches.iter().all(|(name, values)| {
            attributes
                .get(name)
                .is_some_and(|v| values.iter().any(|x| x == v))
        }) && self.entries.iter().all(|e| e.resolve(attributes).is_some())
    }

    /// The counter key for `attributes` (the policy must apply): one
    /// segment per key entry, a stand-in written as `<attribute>=<value>`
    /// (see [`crate::key`]).
    pub fn counter_key(&self, attributes: &Attributes) -> String {
        counter_key_of(
            &self.name,
            self.entries.iter().map(|e| e.segment(attributes)),
        )
    }

    /// The same policy with `limit` divided by `instances` (rounded up):
    /// what one sidecar enforces alone while the shared store is away.
    pub fn scaled(&self, instances: u64) -> Policy {
        let instances = instances.max(1);
        let mut copy = self.clone();
        let limit = self.limit.div_ceil(instances);
        let burst = self.burst.div_ceil(instances);
        copy.limit = limit;
        copy.burst = burst;
        copy.algorithm = match self.kind {
            AlgorithmKind::SlidingWindow => {
                Algorithm::SlidingWindow(SlidingWindow::new(limit, self.window_us))
            }
            AlgorithmKind::SlidingLog => {
                Algorithm::SlidingLog(SlidingLog::new(limit, self.window_us))
            }
            AlgorithmKind::FixedWindow => {
                Algorithm::FixedWindow(fixed(limit, self.window_us, self.calendar.as_ref()))
            }
            AlgorithmKind::TokenBucket => {
                Algorithm::TokenBucket(bucket(limit, self.window_us, burst, self.settle))
            }
            AlgorithmKind::Concurrency => {
                Algorithm::Concurrency(Concurrency::new(limit, self.window_us))
            }
        };
        copy
    }
}

/// A fixed window: of `window_us`, or the periods of `calendar`.
fn fixed(limit: u64, window_us: u64, calendar: Option<&Calendar>) -> FixedWindow {
    match calendar {
        Some(c) => FixedWindow::calendar(limit, c.clone()),
        None => FixedWindow::new(limit, window_us),
    }
}

/// A token bucket; one that settles keeps the debt of overruns.
fn bucket(limit: u64, window_us: u64, burst: u64, settle: bool) -> TokenBucket {
    let bucket = TokenBucket::new(limit, window_us, burst);
    if settle {
        bucket.settled()
    } else {
        bucket
    }
}

/// The loaded policies, in configuration order, with unique names.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    /// Policies in configuration order.
    policies: Vec<Arc<Policy>>,
    /// Name → index into `policies`.
    by_name: HashMap<Arc<str>, usize>,
    /// Which policies a check could match, built with the set.
    index: index::PolicyIndex,
    /// What each policy sets aside when it applies.
    replacements: replace::Replacements,
}

impl PolicySet {
    /// Builds a set.
    ///
    /// # Errors
    /// The names used more than once; `replaces` entries that name no
    /// policy, form a cycle or mix `concurrency` and rate policies.
    pub fn new(policies: Vec<Policy>) -> Result<PolicySet, Vec<PolicySetError>> {
        let mut by_name = HashMap::new();
        let mut duplicates = Vec::new();
        for (i, p) in policies.iter().enumerate() {
            if by_name.insert(p.name.clone(), i).is_some() {
                duplicates.push(PolicySetError::Duplicate {
                    policy: i,
                    name: p.name().to_string(),
                });
            }
        }
        if !duplicates.is_empty() {
            return Err(duplicates);
        }
        let policies: Vec<Arc<Policy>> = policies.into_iter().map(Arc::new).collect();
        Ok(PolicySet {
            index: index::PolicyIndex::new(&policies),
            replacements: replace::Replacements::new(&policies, &by_name)?,
            policies,
            by_name,
        })
    }

    /// All policies, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.policies.iter()
    }

    /// How many policies there are.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The policy named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Policy>> {
        self.by_name.get(name).map(|&i| &self.policies[i])
    }

    /// The policies in force for a check, in configuration order, each
    /// with its index in the set (`0..len()`): those that apply
    /// ([`Policy::applies`]) less those set aside by an enforced policy
    /// that applies and replaces them (the rules are in the `replace`
    /// module's documentation). Only the policies an index built with the
    /// set says could apply are tried: the cost hardly grows with the
    /// number of policies when they match on different values (one policy
    /// per tenant, say).
    pub fn applicable<'a>(
        &'a self,
        attributes: &'a Attributes,
        domain: Option<&'a str>,
    ) -> Applicable<'a> {
        Applicable::new(
            self,
            self.index.candidates(attributes, domain),
            attributes,
            domain,
        )
    }

    /// Whether any policy of the set replaces another.
    pub fn has_replacements(&self) -> bool {
        self.replacements.any()
    }

    /// The policies `policy` (of this set, in force for the check) sets
    /// aside for a check with `attributes` in `domain`: those of its
    /// replacements, direct or through others, that apply. None when it is
    /// in `mode = "shadow"` or replaces nothing.
    pub fn replaced_by<'a>(
        &'a self,
        policy: &Policy,
        attributes: &'a Attributes,
        domain: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<Policy>> + 'a {
        let aside = match self.by_name.get(policy.name()) {
            Some(&i) if policy.mode() == Mode::Enforce => self.replacements.of(i),
            _ => &[],
        };
        aside
            .iter()
            .map(|&i| &self.policies[i as usize])
            .filter(move |p| p.applies(attributes, domain))
    }
}

#[cfg(test)]
mod tests;
