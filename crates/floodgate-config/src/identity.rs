//! `[identity]`: how HTTP-level integrations (ext_authz, nginx, the proxy)
//! derive the `user` and `ip` attributes from a request, which headers
//! become attributes (`attributes`), and the verified JWT the user can come
//! from instead (`[identity.jwt]`, in `jwt.rs`; its keys in `keys.rs`).

mod jwt;
mod keys;

use std::collections::BTreeMap;
use std::ops::Range;

pub use jwt::{JwtConfig, DEFAULT_LEEWAY, MAX_LEEWAY};
pub use keys::{JwtAlgorithm, JwtKey, JwtKeys, MAX_JWKS_KEYS, MIN_SECRET_BYTES};

use crate::error::Diagnostics;
use crate::raw::RawIdentity;
use crate::section::{Node, Section};

/// The attributes floodgate derives itself at the HTTP edge: no header or
/// claim can set them (`user` comes from `user_header` or the JWT's
/// `user_claim` only).
pub const RESERVED_ATTRIBUTES: [&str; 5] = ["ip", "user", "endpoint", "method", "path"];

/// Headers that carry credentials: never copied into an attribute (they
/// would end up in counter keys, in Redis and in logs).
const CREDENTIAL_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Most header attributes.
pub const MAX_HEADER_ATTRIBUTES: usize = 16;

/// `[identity]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Header carrying the user id, lower-cased; a valid header name.
    pub user_header: String,
    /// How many X-Forwarded-For hops (from the right) to trust for `ip`;
    /// 0 = use the peer address (and ignore `X-Real-IP`).
    pub trusted_proxies: u32,
    /// The `ip` of an IPv6 client is its network with this prefix length
    /// (1..=128), so one host's many addresses share one counter.
    pub ipv6_prefix: u8,
    /// Attributes read from request headers: (attribute, lower-cased
    /// header), in attribute name order. None by default.
    pub header_attributes: Vec<(String, String)>,
    /// `[identity.jwt]`: the user from a verified bearer token instead of
    /// `user_header`. Off by default.
    pub jwt: Option<JwtConfig>,
}

/// The default `[identity] ipv6_prefix`: a /56, what one home line or
/// small site is usually given.
pub const DEFAULT_IPV6_PREFIX: u8 = 56;

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            user_header: "x-user-id".to_string(),
            trusted_proxies: 0,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            header_attributes: Vec::new(),
            jwt: None,
        }
    }
}

impl IdentityConfig {
    /// Reads `[identity]`, reporting every problem into `diag`.
    pub(crate) fn read(node: Option<&Node<'_>>, diag: &mut Diagnostics<'_>) -> IdentityConfig {
        let section = Section::<RawIdentity>::read_or_default(node, "[identity]", diag);
        let default = IdentityConfig::default();
        let user_header = match &section.raw.user_header {
            Some(name) if is_header_name(name) => name.to_ascii_lowercase(),
            Some(name) => {
                diag.push(
                    section.at("user_header"),
                    format!("invalid user_header {name:?}: expected an HTTP header name like \"x-user-id\" (letters, digits and !#$%&'*+-.^_`|~)"),
                );
                default.user_header
            }
            None => default.user_header,
        };
        let ipv6_prefix = match section.raw.ipv6_prefix {
            Some(prefix) if (1..=128).contains(&prefix) => {
                u8::try_from(prefix).unwrap_or(DEFAULT_IPV6_PREFIX)
            }
            Some(prefix) => {
                diag.push(
                    section.at("ipv6_prefix"),
                    format!("invalid ipv6_prefix {prefix}: expected a prefix length from 1 to 128, like 56 (the default) or 64"),
                );
                default.ipv6_prefix
            }
            None => default.ipv6_prefix,
        };
        let jwt = section.child("jwt").and_then(|n| jwt::read(n, diag));
        if let (Some(jwt), true) = (&jwt, section.raw.user_header.is_some()) {
            diag.push(
                section.at("user_header"),
                format!("user_header and [identity.jwt] both name the user; with [identity.jwt] the user is the token's {:?} claim: remove user_header", jwt.user_claim),
            );
        }
        let header_attributes = read_header_attributes(&section, jwt.as_ref(), diag);
        IdentityConfig {
            user_header,
            ipv6_prefix,
            trusted_proxies: section
                .raw
                .trusted_proxies
                .unwrap_or(default.trusted_proxies),
            header_attributes,
            jwt,
        }
    }
}

/// `attributes = { plan = "x-plan" }`: attribute = header.
fn read_header_attributes(
    section: &Section<'_, RawIdentity>,
    jwt: Option<&JwtConfig>,
    diag: &mut Diagnostics<'_>,
) -> Vec<(String, String)> {
    let map: &BTreeMap<String, String> = match &section.raw.attributes {
        Some(map) => map,
        None => return Vec::new(),
    };
    if map.len() > MAX_HEADER_ATTRIBUTES {
        diag.push(
            section.at("attributes"),
            format!(
                "attributes lists {} headers; at most {MAX_HEADER_ATTRIBUTES}",
                map.len()
            ),
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for (attribute, header) in map {
        let at = table_key_span(section.child("attributes"), attribute)
            .unwrap_or_else(|| section.at("attributes"));
        let header_lc = header.to_ascii_lowercase();
        let problem = if attribute == "user" {
            Some("attribute \"user\" comes from user_header (or [identity.jwt]), not from attributes".to_string())
        } else if let Some(problem) = jwt::attribute_problem(attribute) {
            Some(problem)
        } else if !is_header_name(header) {
            Some(format!(
                "attribute {attribute:?}: invalid header name {header:?}"
            ))
        } else if CREDENTIAL_HEADERS.contains(&header_lc.as_str())
            || jwt.is_some_and(|j| j.header == header_lc)
        {
            Some(format!("attribute {attribute:?}: header {header:?} carries credentials and cannot become an attribute"))
        } else if jwt.is_some_and(|j| j.claims.iter().any(|(a, _)| a == attribute)) {
            Some(format!("attribute {attribute:?} is also taken from a JWT claim ([identity.jwt] claims): choose one"))
        } else {
            None
        };
        match problem {
            Some(problem) => diag.push(at, format!("[identity] attributes: {problem}")),
            None => out.push((attribute.clone(), header_lc)),
        }
    }
    out
}

/// The span of key `key` of the inline or standard table `node`.
pub(crate) fn table_key_span(node: Option<&Node<'_>>, key: &str) -> Option<Range<usize>> {
    let table = node?.get_ref().as_table()?;
    table.get_key_value(key).map(|(k, _)| k.span())
}

/// An RFC 9110 field name: one or more `tchar`.
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
