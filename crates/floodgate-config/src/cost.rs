//! `cost` of an `[[endpoint]]`: where the reverse proxy finds the actual
//! cost of a response (the `usage` of an OpenAI-compatible answer, or a
//! header the app sets) and how it estimates it beforehand. The proxy then
//! reserves the estimate on the endpoint's `settle = true` policies and
//! settles the actual cost itself.
//!
//! ```toml
//! [[endpoint]]
//! name = "chat"
//! path = "/v1/chat/completions"
//! cost = { usage = "total_tokens", estimate = 1000, estimate_from = "max_tokens" }
//! ```

use floodgate_core::policy::is_valid_name;
use floodgate_core::MAX_HITS;
use serde::Deserialize;

use crate::error::Diagnostics;
use crate::section::{Node, Section};

/// Default and largest request body read for `estimate_from`.
pub const DEFAULT_MAX_REQUEST_BODY: u64 = 64 * 1024;
/// Largest `max_request_body`.
pub const MAX_REQUEST_BODY: u64 = 1024 * 1024;

/// Which count of an OpenAI-compatible `usage` object is the cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageField {
    /// `total_tokens`.
    Total,
    /// `prompt_tokens`.
    Prompt,
    /// `completion_tokens`.
    Completion,
}

impl UsageField {
    /// The JSON field name.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageField::Total => "total_tokens",
            UsageField::Prompt => "prompt_tokens",
            UsageField::Completion => "completion_tokens",
        }
    }
}

const USAGE_FIELDS: [(&str, UsageField); 3] = [
    ("total_tokens", UsageField::Total),
    ("prompt_tokens", UsageField::Prompt),
    ("completion_tokens", UsageField::Completion),
];

/// Where the actual cost of a response is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CostSource {
    /// A count of the `usage` object in the JSON body, or in the
    /// server-sent event that carries it.
    Usage(UsageField),
    /// A response header (lower case) holding the cost as an integer.
    Header(String),
}

/// The cost of one endpoint class, as the proxy settles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cost {
    /// Where the actual cost is.
    pub source: CostSource,
    /// The estimate reserved when the request says nothing better.
    pub estimate: u64,
    /// A top-level integer field of the request's JSON body that is the
    /// estimate when present (`max_tokens`).
    pub estimate_from: Option<String>,
    /// How much of the request body is read for `estimate_from`, in bytes.
    pub max_request_body: u64,
}

/// `cost = { ... }` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCost {
    usage: Option<String>,
    header: Option<String>,
    estimate: Option<u64>,
    estimate_from: Option<String>,
    max_request_body: Option<u64>,
}

/// Reads the `cost` table of endpoint `endpoint`, or reports why not.
pub(crate) fn read_cost(
    node: &Node<'_>,
    endpoint: &str,
    diag: &mut Diagnostics<'_>,
) -> Option<Cost> {
    let name = format!("the cost of endpoint {endpoint:?}");
    let section = Section::<RawCost>::read(node, &name, diag)?;
    let raw = &section.raw;
    let errors_before = diag.len();
    let source = read_source(&section, &name, diag);
    let estimate = read_estimate(&section, &name, diag);
    check_estimate_from(&section, &name, diag);
    let max_request_body = read_max_request_body(&section, &name, diag);
    if diag.len() != errors_before {
        return None;
    }
    Some(Cost {
        source: source?,
        estimate,
        estimate_from: raw.estimate_from.clone(),
        max_request_body,
    })
}

/// `usage` or `header`: exactly one says where the actual cost is.
fn read_source(
    section: &Section<'_, RawCost>,
    name: &str,
    diag: &mut Diagnostics<'_>,
) -> Option<CostSource> {
    let raw = &section.raw;
    let usage = section.choice("usage", raw.usage.as_deref(), &USAGE_FIELDS, diag);
    match (usage, &raw.header) {
        (Some(_), Some(_)) => {
            diag.push(
                section.at("header"),
                format!("{name}: give usage or header, not both"),
            );
            None
        }
        (Some(field), None) => Some(CostSource::Usage(field)),
        (None, Some(header)) if valid_header(header) => {
            Some(CostSource::Header(header.to_ascii_lowercase()))
        }
        (None, Some(header)) => {
            diag.push(
                section.at("header"),
                format!("{name}: header {header:?} is not an HTTP header name"),
            );
            None
        }
        (None, None) => {
            let named = raw.usage.is_some() || raw.header.is_some();
            if !named && !section.has_failed("usage") && !section.has_failed("header") {
                diag.push(
                    section.header(),
                    format!("{name} needs usage = \"total_tokens\" (or prompt_tokens, completion_tokens) or header = \"x-cost\""),
                );
            }
            None
        }
    }
}

/// `estimate`: required, between 1 and `MAX_HITS` (1 stands in when it is
/// missing or out of range, with the error reported).
fn read_estimate(section: &Section<'_, RawCost>, name: &str, diag: &mut Diagnostics<'_>) -> u64 {
    match section.raw.estimate {
        Some(n) if (1..=MAX_HITS).contains(&n) => n,
        Some(_) => {
            diag.push(
                section.at("estimate"),
                format!("{name}: estimate must be between 1 and {MAX_HITS}"),
            );
            1
        }
        None => {
            if !section.has_failed("estimate") {
                diag.push(
                    section.header(),
                    format!("{name} needs an estimate, like estimate = 1000"),
                );
            }
            1
        }
    }
}

/// `estimate_from`, when given, must be a JSON field name.
fn check_estimate_from(section: &Section<'_, RawCost>, name: &str, diag: &mut Diagnostics<'_>) {
    if let Some(field) = &section.raw.estimate_from {
        if !is_valid_name(field) {
            diag.push(section.at("estimate_from"), format!("{name}: estimate_from {field:?} must be a JSON field name of A-Z, a-z, 0-9, '_', '-', '.'"));
        }
    }
}

/// `max_request_body`: between 1 and `MAX_REQUEST_BODY` bytes, by default
/// `DEFAULT_MAX_REQUEST_BODY`.
fn read_max_request_body(
    section: &Section<'_, RawCost>,
    name: &str,
    diag: &mut Diagnostics<'_>,
) -> u64 {
    let max_request_body = section
        .raw
        .max_request_body
        .unwrap_or(DEFAULT_MAX_REQUEST_BODY);
    if !(1..=MAX_REQUEST_BODY).contains(&max_request_body) {
        diag.push(
            section.at("max_request_body"),
            format!("{name}: max_request_body must be between 1 and {MAX_REQUEST_BODY} bytes"),
        );
    }
    max_request_body
}

/// Whether `name` is an HTTP header name (a token, at most 64 bytes).
fn valid_header(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
