//! The user (and attributes from claims) of a request with a bearer JWT,
//! verified against `[identity.jwt]`: the one configured algorithm, a
//! configured key, `exp` required, `nbf`, `aud` and `iss` checked with the
//! leeway. A token that fails any check yields nothing: the request is
//! anonymous, each failure counted in
//! `floodgate_jwt_rejected_total{reason}`.

use floodgate_config::JwtConfig;
use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};

use super::headers::RequestHeaders;

/// Longest token tried, in bytes; longer ones are refused unread.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// What a verified token says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// The `user_claim`, when present as a string or an integer.
    pub user: Option<String>,
    /// (attribute, value) for each configured claim present as a string,
    /// a number or a boolean.
    pub attributes: Vec<(String, String)>,
}

/// The verified identity of a request with `headers`, or `None` when it
/// carries no token or one that does not verify.
pub fn identity(jwt: &JwtConfig, headers: RequestHeaders<'_>) -> Option<Verified> {
    let value = headers.single(&jwt.header)?;
    let claims = match verify(jwt, value) {
        Ok(claims) => claims,
        Err(reason) => {
            metrics::counter!(floodgate_core::metric::JWT_REJECTED_TOTAL, "reason" => reason)
                .increment(1);
            tracing::debug!(reason, "JWT rejected: the request is anonymous");
            return None;
        }
    };
    let attributes = (jwt.claims.iter())
        .filter_map(|(attribute, claim)| Some((attribute.clone(), scalar(claims.get(claim)?)?)))
        .collect();
    Some(Verified {
        user: claims.get(&jwt.user_claim).and_then(user),
        attributes,
    })
}

/// The claims of the token in header value `value`, or why it is refused
/// (a metric label: one of a fixed few words).
pub fn verify(jwt: &JwtConfig, value: &str) -> Result<Map<String, Value>, &'static str> {
    let value = value.trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim_start(),
        Some(_) => return Err("malformed"),
        None => value,
    };
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err("malformed");
    }
    // `alg: none` and every algorithm but the configured one end here.
    let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed")?;
    if header.alg != jwt.algorithm.jose() {
        return Err("algorithm");
    }
    let mut reason = "signature";
    for key in jwt.keys.candidates(header.kid.as_deref()) {
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &jwt.validation) {
            Ok(data) => return Ok(data.claims),
            Err(error) => {
                reason = match error.kind() {
                    ErrorKind::ExpiredSignature => "expired",
                    ErrorKind::ImmatureSignature => "not_yet_valid",
                    ErrorKind::InvalidAudience => "audience",
                    ErrorKind::InvalidIssuer => "issuer",
                    ErrorKind::MissingRequiredClaim(_) => "claims",
                    ErrorKind::InvalidSignature => "signature",
                    _ => "malformed",
                };
                if reason != "signature" {
                    // The signature was good: another key changes nothing.
                    break;
                }
            }
        }
    }
    Err(reason)
}

/// A claim as an attribute value: strings as they are, numbers and
/// booleans written out; arrays, objects and null give none.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The user claim: a non-empty string or an integer.
fn user(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
