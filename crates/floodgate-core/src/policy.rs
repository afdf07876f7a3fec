//! Policies: which checks a limit applies to, how its counter is keyed, and
//! the validated algorithm behind it. An invalid policy cannot be built.

use std::collections::HashMap;
use std::sync::Arc;

use crate::algorithm::Algorithm;
use crate::attributes::Attributes;
use crate::key::push_counter_key_of;

mod applicable;
mod block;
mod build;
mod calendar;
mod index;
mod key_entry;
mod replace;
mod spec;
mod validate;
mod waiting;
pub use applicable::Applicable;
pub use block::{Block, BlockRecord, DEFAULT_BLOCK_MAX_US};
pub use calendar::{Calendar, Period, DEFAULT_TIMEZONE};
pub use key_entry::KeyEntry;
pub use replace::PolicySetError;
use spec::error;
pub use spec::{is_valid_name, AlgorithmKind, FallbackMode, Mode, PolicyError, PolicySpec};
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
/// Lease timeout of `concurrency` policies when none is given: 60 s.
pub const DEFAULT_LEASE_TIMEOUT_US: u64 = 60_000_000;

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
        let checked = validate::check(&spec, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Policy::from_checked(spec, checked))
    }

    /// The policy of a spec whose settings `checked` holds, found valid.
    fn from_checked(spec: PolicySpec, checked: validate::Checked) -> Policy {
        let algorithm = build::algorithm(build::Params {
            kind: spec.algorithm,
            limit: spec.limit,
            window_us: checked.window_us,
            burst: checked.burst,
            settle: spec.settle,
            calendar: checked.calendar.as_ref(),
        });
        Policy {
            name: spec.name.into(),
            matches: spec.matches,
            key: checked.entries.iter().map(ToString::to_string).collect(),
            entries: checked.entries,
            limit: spec.limit,
            window_us: checked.window_us,
            algorithm,
            kind: spec.algorithm,
            burst: checked.burst,
            mode: spec.mode,
            fallback: spec.fallback,
            domain: spec.domain,
            replaces: checked.replaces,
            settle: spec.settle,
            waiting: checked.waiting,
            block: checked.block,
            calendar: checked.calendar,
        }
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
        let mut key = String::with_capacity(self.name.len() + 24);
        self.push_counter_key(&mut key, attributes);
        key
    }

    /// Appends [`Policy::counter_key`] to `out`: several keys can share one
    /// buffer (the limiter builds every key of a check in one).
    pub fn push_counter_key(&self, out: &mut String, attributes: &Attributes) {
        push_counter_key_of(
            out,
            &self.name,
            self.entries.iter().map(|e| e.segment(attributes)),
        );
    }

    /// The same policy with `limit` divided by `instances` (rounded up):
    /// what one sidecar enforces alone while the shared store is away.
    pub fn scaled(&self, instances: u64) -> Policy {
        let instances = instances.max(1);
        let mut copy = self.clone();
        copy.limit = self.limit.div_ceil(instances);
        copy.burst = self.burst.div_ceil(instances);
        copy.algorithm = build::algorithm(build::Params {
            kind: self.kind,
            limit: copy.limit,
            window_us: self.window_us,
            burst: copy.burst,
            settle: self.settle,
            calendar: self.calendar.as_ref(),
        });
        copy
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
