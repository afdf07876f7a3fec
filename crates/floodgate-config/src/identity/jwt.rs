//! `[identity.jwt]`: the user (and other attributes) from a verified
//! bearer JWT. The key material is read here, when the configuration is
//! loaded or reloaded: a key that does not parse refuses the file.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use jsonwebtoken::Validation;

use super::keys::{self, JwtAlgorithm, JwtKeys};
use super::{is_header_name, table_key_span, MAX_HEADER_ATTRIBUTES, RESERVED_ATTRIBUTES};
use crate::error::Diagnostics;
use crate::raw::RawJwt;
use crate::section::{Node, Section};

/// Default clock-skew allowance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Largest `leeway`.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// `[identity.jwt]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// Header carrying the token, lower-cased (default `authorization`);
    /// its value is `Bearer <token>` (or the bare token).
    pub header: String,
    /// The one algorithm accepted; a token naming another is refused.
    pub algorithm: JwtAlgorithm,
    /// The verification keys.
    pub keys: JwtKeys,
    /// What a token must satisfy besides its signature: `exp` (required),
    /// `nbf`, `aud` and `iss` when configured, with the leeway.
    pub validation: Validation,
    /// Claim holding the user id (default `sub`).
    pub user_claim: String,
    /// Attributes from claims: (attribute, claim), in name order.
    pub claims: Vec<(String, String)>,
}

/// Reads `[identity.jwt]` (`node`), reporting every problem into `diag`.
pub(crate) fn read(node: &Node<'_>, diag: &mut Diagnostics<'_>) -> Option<JwtConfig> {
    let section = Section::<RawJwt>::read(node, "[identity.jwt]", diag)?;
    let errors_before = diag.len();
    let raw = &section.raw;
    let header = read_header(&section, diag);
    let algorithm = section.choice(
        "algorithm",
        raw.algorithm.as_deref(),
        &JwtAlgorithm::ALL,
        diag,
    );
    if raw.algorithm.is_none() && !section.has_failed("algorithm") {
        diag.push(
            section.header(),
            "[identity.jwt] needs an algorithm: \"HS256\", \"RS256\" or \"ES256\"",
        );
    }
    let keys = algorithm.and_then(|a| read_keys(&section, a, diag));
    let (leeway, audience) = read_checks(&section, diag);
    let user_claim = raw.user_claim.clone().unwrap_or_else(|| "sub".into());
    let claims = read_claims(&section, raw.claims.as_ref(), diag);
    let (Some(algorithm), Some(keys)) = (algorithm, keys) else {
        return None;
    };
    if diag.len() > errors_before {
        return None;
    }
    let validation = validation(algorithm, leeway, &audience, raw.issuer.as_deref());
    Some(JwtConfig {
        header,
        algorithm,
        keys,
        validation,
        user_claim,
        claims,
    })
}

/// `header`, lower-cased (default `authorization`).
fn read_header(section: &Section<'_, RawJwt>, diag: &mut Diagnostics<'_>) -> String {
    match &section.raw.header {
        Some(h) if is_header_name(h) => h.to_ascii_lowercase(),
        Some(h) => {
            diag.push(
                section.at("header"),
                format!(
                    "invalid header {h:?}: expected an HTTP header name like \"authorization\""
                ),
            );
            String::new()
        }
        None => "authorization".to_string(),
    }
}

/// Checks `leeway`, `user_claim`, `audience` and `issuer`; the leeway and
/// the audience.
fn read_checks(
    section: &Section<'_, RawJwt>,
    diag: &mut Diagnostics<'_>,
) -> (std::time::Duration, Vec<String>) {
    let raw = &section.raw;
    let leeway = raw.leeway.map_or(DEFAULT_LEEWAY, |d| d.0);
    if leeway > MAX_LEEWAY || leeway.subsec_nanos() != 0 {
        diag.push(
            section.at("leeway"),
            "leeway must be a whole number of seconds from 0s to 5m (default 30s)",
        );
    }
    let user_claim = raw.user_claim.clone().unwrap_or_else(|| "sub".into());
    if user_claim.is_empty() {
        diag.push(
            section.at("user_claim"),
            "user_claim must name a claim, like \"sub\" (the default)",
        );
    }
    let audience = raw
        .audience
        .as_ref()
        .map(|a| a.0.clone())
        .unwrap_or_default();
    if raw.audience.is_some() && (audience.is_empty() || audience.iter().any(String::is_empty)) {
        diag.push(
            section.at("audience"),
            "audience must be a non-empty string or a list of them",
        );
    }
    if raw.issuer.as_deref() == Some("") {
        diag.push(
            section.at("issuer"),
            "issuer must not be empty; remove it to accept any issuer",
        );
    }
    (leeway, audience)
}

/// What a token must satisfy besides its signature.
fn validation(
    algorithm: JwtAlgorithm,
    leeway: std::time::Duration,
    audience: &[String],
    issuer: Option<&str>,
) -> Validation {
    let mut validation = Validation::new(algorithm.jose());
    validation.leeway = leeway.as_secs();
    validation.validate_nbf = true;
    validation.validate_aud = !audience.is_empty();
    if !audience.is_empty() {
        validation.set_audience(audience);
        validation.required_spec_claims.insert("aud".into());
    }
    if let Some(issuer) = issuer {
        validation.set_issuer(&[issuer]);
        validation.required_spec_claims.insert("iss".into());
    }
    validation
}

/// The keys named by `secret_file`, `secret_env`, `public_key_file` or
/// `jwks_file` — exactly one, and one that fits `algorithm`.
fn read_keys(
    section: &Section<'_, RawJwt>,
    algorithm: JwtAlgorithm,
    diag: &mut Diagnostics<'_>,
) -> Option<JwtKeys> {
    let raw = &section.raw;
    let given: Vec<&str> = [
        ("secret_file", raw.secret_file.is_some()),
        ("secret_env", raw.secret_env.is_some()),
        ("public_key_file", raw.public_key_file.is_some()),
        ("jwks_file", raw.jwks_file.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    let fits: &[&str] = match algorithm {
        JwtAlgorithm::Hs256 => &["secret_file", "secret_env"],
        _ => &["public_key_file", "jwks_file"],
    };
    let (at, alg) = (
        section.at("algorithm"),
        raw.algorithm.as_deref().unwrap_or(""),
    );
    match given.as_slice() {
        [] => {
            diag.push(
                at,
                format!("{alg} needs its key: one of {}", fits.join(" or ")),
            );
            return None;
        }
        [one] if fits.contains(one) => {}
        [one] => {
            diag.push(
                section.at(one),
                format!(
                    "{one} does not fit algorithm {alg}: use {}",
                    fits.join(" or ")
                ),
            );
            return None;
        }
        [_, second, ..] => {
            diag.push(
                section.at(second),
                format!("give only one of {}", given.join(", ")),
            );
            return None;
        }
    }
    let loaded = load_keys(raw, given[0], algorithm);
    loaded.map_err(|e| diag.push(section.at(given[0]), e)).ok()
}

/// Reads the key that setting `key` of `raw` names.
fn load_keys(raw: &RawJwt, key: &str, algorithm: JwtAlgorithm) -> Result<JwtKeys, String> {
    if let Some(var) = &raw.secret_env {
        read_env(var).and_then(|s| keys::secret(&s))
    } else {
        let path = [&raw.secret_file, &raw.public_key_file, &raw.jwks_file]
            .into_iter()
            .flatten()
            .next()
            .map_or("", String::as_str);
        std::fs::read(path)
            .map_err(|e| format!("cannot read {path:?}: {e}"))
            .and_then(|bytes| match key {
                "secret_file" => keys::secret(&bytes),
                "public_key_file" => keys::pem(&bytes, algorithm),
                _ => keys::jwks(&bytes, algorithm),
            })
            .map_err(|e| format!("{key} {path:?}: {e}"))
    }
}

/// The value of environment variable `var`, which must be set and not empty.
fn read_env(var: &str) -> Result<Vec<u8>, String> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => Ok(v.into_encoded_bytes()),
        _ => Err(format!(
            "environment variable {var:?} (secret_env) is not set or empty"
        )),
    }
}

/// `claims = { plan = "plan", tenant = "org_id" }`: attribute = claim.
fn read_claims(
    section: &Section<'_, RawJwt>,
    claims: Option<&BTreeMap<String, String>>,
    diag: &mut Diagnostics<'_>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if claims.is_some_and(|c| c.len() > MAX_HEADER_ATTRIBUTES) {
        diag.push(
            section.at("claims"),
            format!("claims lists more than {MAX_HEADER_ATTRIBUTES} attributes"),
        );
        return out;
    }
    for (attribute, claim) in claims.into_iter().flatten() {
        let at: Range<usize> = table_key_span(section.child("claims"), attribute)
            .unwrap_or_else(|| section.at("claims"));
        if let Some(problem) = attribute_problem(attribute) {
            diag.push(at, format!("claims: {problem}"));
        } else if attribute == "user" {
            diag.push(
                at,
                "claims: the user comes from user_claim (default \"sub\"), not from claims",
            );
        } else if claim.is_empty() {
            diag.push(
                at,
                format!("claims: attribute {attribute:?} names an empty claim"),
            );
        } else {
            out.push((attribute.clone(), claim.clone()));
        }
    }
    out
}

/// Why `name` cannot be an attribute taken from a request, if it cannot.
pub(super) fn attribute_problem(name: &str) -> Option<String> {
    if !floodgate_core::policy::is_valid_name(name) {
        return Some(format!(
            "attribute name {name:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.'"
        ));
    }
    (RESERVED_ATTRIBUTES.contains(&name) && name != "user").then(|| {
        format!("attribute {name:?} is set by floodgate itself (ip, user, endpoint, method and path are); a request cannot choose it")
    })
}
