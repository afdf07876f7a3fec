//! `[[policy]]`: each table becomes a core [`PolicySpec`], validated by
//! [`Policy::new`]; the core's errors name a field, reported at that
//! field's value (or at the `[[policy]]` header when it is absent).

use std::collections::HashMap;
use std::ops::Range;

use floodgate_core::{
    AlgorithmKind, FallbackMode, Mode, Policy, PolicyError, PolicySet, PolicySetError, PolicySpec,
};

use crate::duration::micros;
use crate::error::Diagnostics;
use crate::fallback::FALLBACK_MODES;
use crate::raw::RawPolicy;
use crate::section::{Node, Section};

/// The policy modes, by configuration name.
const MODES: [(&str, Mode); 2] = [("enforce", Mode::Enforce), ("shadow", Mode::Shadow)];

/// Reads every `[[policy]]`. Returns an empty set when any is invalid (the
/// errors are in `diag` and the whole file is refused anyway).
pub(crate) fn read_policies(node: Option<&Node<'_>>, diag: &mut Diagnostics<'_>) -> PolicySet {
    let Some(array) = node.and_then(|n| n.get_ref().as_array()) else {
        // Absent, or not an array (already reported with the top level).
        return PolicySet::default();
    };
    let mut policies = Vec::new();
    // By built policy: where its `replaces` entries (or its header) are.
    let mut places: Vec<Places> = Vec::new();
    let mut first_use: HashMap<String, usize> = HashMap::new();
    let mut all_valid = true;
    for element in array.iter() {
        let Some(section) = Section::<RawPolicy>::read(element, "[[policy]]", diag) else {
            all_valid = false;
            continue;
        };
        if let Some(name) = &section.raw.name {
            let here = section.at("name").start;
            if let Some(&first) = first_use.get(name) {
                diag.push(
                    section.at("name"),
                    format!(
                        "duplicate policy name {name:?}: already used by the [[policy]] on line {}; policy names must be unique",
                        diag.line_of(first)
                    ),
                );
                all_valid = false;
            } else {
                first_use.insert(name.clone(), here);
            }
        }
        match build(&section, diag) {
            Some(policy) => {
                let entries = policy.replaces().len();
                places.push(Places {
                    header: section.header(),
                    replaces: (0..entries)
                        .map(|i| section.element_at("replaces", i))
                        .collect(),
                });
                policies.push(policy);
            }
            None => all_valid = false,
        }
    }
    if !all_valid {
        return PolicySet::default();
    }
    let names: Vec<String> = policies.iter().map(|p| p.name().to_string()).collect();
    match PolicySet::new(policies) {
        Ok(set) => set,
        Err(errors) => {
            for error in errors {
                report(&error, &names, &places, diag);
            }
            PolicySet::default()
        }
    }
}

/// Where one built policy stands in the file.
struct Places {
    /// Its `[[policy]]` header.
    header: Range<usize>,
    /// Each entry of its `replaces`.
    replaces: Vec<Range<usize>>,
}

/// Reports a set-level error at the policy (and `replaces` entry) at fault.
fn report(error: &PolicySetError, names: &[String], places: &[Places], diag: &mut Diagnostics<'_>) {
    let (policy, index) = match error {
        // Duplicates were reported above, with both places; kept so a
        // change in the core's rules never lets a bad set through silently.
        PolicySetError::Duplicate { policy, .. } => (*policy, None),
        PolicySetError::Unknown { policy, index, .. }
        | PolicySetError::Cycle { policy, index, .. }
        | PolicySetError::Kinds { policy, index, .. } => (*policy, Some(*index)),
    };
    let Some(place) = places.get(policy) else {
        diag.push(0..0, error.to_string());
        return;
    };
    let at = index
        .and_then(|i| place.replaces.get(i).cloned())
        .unwrap_or_else(|| place.header.clone());
    let name = names.get(policy).map_or("", String::as_str);
    diag.push(at, format!("policy {name:?} {error}"));
}

/// One `[[policy]]` → a validated [`Policy`], or `None` with the reasons
/// in `diag`.
fn build(section: &Section<'_, RawPolicy>, diag: &mut Diagnostics<'_>) -> Option<Policy> {
    let errors_before = diag.len();
    let label = label(&section.raw);
    require_name_and_limit(section, &label, diag);
    let choices = Choices::read(section, diag);
    match Policy::new(spec(&section.raw, &choices)) {
        Ok(policy) => (diag.len() == errors_before).then_some(policy),
        Err(errors) => {
            report_policy_errors(section, &label, &choices, errors, diag);
            None
        }
    }
}

/// What starts each of a policy's messages: `policy "<name>": `, or
/// nothing when it has no name.
fn label(raw: &RawPolicy) -> String {
    raw.name
        .as_deref()
        .map_or_else(String::new, |n| format!("policy {n:?}: "))
}

/// Reports a missing `name` or `limit` (unless the value given was already
/// reported as unreadable), at the `[[policy]]` header.
fn require_name_and_limit(
    section: &Section<'_, RawPolicy>,
    label: &str,
    diag: &mut Diagnostics<'_>,
) {
    let raw = &section.raw;
    if raw.name.is_none() && !section.has_failed("name") {
        diag.push(
            section.header(),
            "[[policy]] needs a name, like name = \"ai-per-user\"",
        );
    }
    if raw.limit.is_none() && !section.has_failed("limit") {
        diag.push(
            section.header(),
            format!("{label}limit is required, like limit = 500"),
        );
    }
}

/// The settings named from a fixed list, each read (or reported) by name.
struct Choices {
    /// `algorithm`, when given and known.
    algorithm: Option<AlgorithmKind>,
    /// Whether `algorithm` was given but could not be read or is unknown:
    /// the errors it causes in other fields are then left out.
    algorithm_unknown: bool,
    /// `mode`, when given and known.
    mode: Option<Mode>,
    /// `fallback`, when given and known.
    fallback: Option<FallbackMode>,
}

impl Choices {
    /// Reads `algorithm`, `mode` and `fallback`, reporting unknown names.
    fn read(section: &Section<'_, RawPolicy>, diag: &mut Diagnostics<'_>) -> Choices {
        let raw = &section.raw;
        let algorithm = section.choice(
            "algorithm",
            raw.algorithm.as_deref(),
            &AlgorithmKind::ALL,
            diag,
        );
        Choices {
            algorithm,
            algorithm_unknown: section.has_failed("algorithm")
                || (raw.algorithm.is_some() && algorithm.is_none()),
            mode: section.choice("mode", raw.mode.as_deref(), &MODES, diag),
            fallback: section.choice("fallback", raw.fallback.as_deref(), &FALLBACK_MODES, diag),
        }
    }
}

/// The core spec of a `[[policy]]`: each field as read, durations in µs,
/// defaults where absent (a missing `name` or `limit` is already reported).
fn spec(raw: &RawPolicy, choices: &Choices) -> PolicySpec {
    PolicySpec {
        name: raw.name.clone().unwrap_or_default(),
        matches: raw
            .matches
            .iter()
            .flatten()
            .map(|(attribute, values)| (attribute.clone(), values.0.clone()))
            .collect(),
        key: raw.key.clone().unwrap_or_default(),
        limit: raw.limit.unwrap_or(1),
        window_us: raw.window.map(|d| micros(d.0)),
        algorithm: choices.algorithm.unwrap_or_default(),
        burst: raw.burst,
        lease_timeout_us: raw.lease_timeout.map(|d| micros(d.0)),
        mode: choices.mode.unwrap_or_default(),
        fallback: choices.fallback,
        domain: raw.domain.clone(),
        replaces: raw.replaces.clone().unwrap_or_default(),
        settle: raw.settle.unwrap_or(false),
        deny_status: raw.deny_status,
        max_wait_us: raw.max_wait.map(|d| micros(d.0)),
        max_waiting: raw.max_waiting,
        block_for_us: raw.block_for.map(|d| micros(d.0)),
        block_escalation: raw.block_escalation.unwrap_or(false),
        block_max_us: raw.block_max.map(|d| micros(d.0)),
        calendar: raw.calendar.clone(),
        timezone: raw.timezone.clone(),
    }
}

/// Reports the core's errors about a policy, each at its field's value
/// (or list element), except those [`follows_from_earlier`] leaves out.
fn report_policy_errors(
    section: &Section<'_, RawPolicy>,
    label: &str,
    choices: &Choices,
    errors: Vec<PolicyError>,
    diag: &mut Diagnostics<'_>,
) {
    for error in errors {
        if follows_from_earlier(section, choices, error.field) {
            continue;
        }
        let at = match error.index {
            Some(i) => section.element_at(error.field, i),
            None => section.at(error.field),
        };
        diag.push(at, format!("{label}{}", error.message));
    }
}

/// Whether an error in `field` only follows from a setting already
/// reported (or missing), and so would be noise: a bad `algorithm` makes
/// `burst` look wrong.
fn follows_from_earlier(section: &Section<'_, RawPolicy>, choices: &Choices, field: &str) -> bool {
    let raw = &section.raw;
    section.has_failed(field)
        || (field == "name" && raw.name.is_none())
        || (field == "limit" && raw.limit.is_none())
        || (field == "key" && section.has_failed("match"))
        || (choices.algorithm_unknown
            && matches!(
                field,
                "limit"
                    | "window"
                    | "burst"
                    | "lease_timeout"
                    | "settle"
                    | "block_for"
                    | "calendar"
            ))
}
