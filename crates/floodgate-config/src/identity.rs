//! `[identity]`: how HTTP-level integrations (ext_authz, nginx, the proxy)
//! derive the `user` and `ip` attributes from a request.

use crate::error::Diagnostics;
use crate::raw::RawIdentity;
use crate::section::{Node, Section};

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
        IdentityConfig {
            user_header,
            ipv6_prefix,
            trusted_proxies: section
                .raw
                .trusted_proxies
                .unwrap_or(default.trusted_proxies),
        }
    }
}

/// An RFC 9110 field name: one or more `tchar`.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
