//! Attributes of an HTTP request, for the integrations that see requests
//! rather than attributes (Envoy ext_authz, nginx `auth_request`, the
//! reverse proxy): `ip`, `user`, `endpoint`, `method`, `path`.

use std::net::IpAddr;

use floodgate_config::IdentityConfig;
use floodgate_core::{Attributes, EndpointTable};

/// Longest `path` attribute kept, in bytes; longer paths are cut (at a
/// character boundary) so a long URL never makes a request invalid.
const MAX_PATH: usize = 256;

/// What an integration knows about one HTTP request.
pub struct HttpRequestInfo<'a> {
    /// The method (`GET`, `POST`, …).
    pub method: &'a str,
    /// The request target: path, possibly with a query string.
    pub target: &'a str,
    /// The peer address of the connection that carried it.
    pub peer: Option<IpAddr>,
    /// `X-Forwarded-For`, if any.
    pub forwarded_for: Option<&'a str>,
    /// A client address set by a trusted front proxy (nginx's
    /// `X-Real-IP`), which wins over `X-Forwarded-For` when it parses.
    pub real_ip: Option<&'a str>,
    /// The value of the configured user header, if any.
    pub user: Option<&'a str>,
}

/// The client address: a trusted `X-Real-IP`; else, with `trusted_proxies`
/// = N > 0, the N-th `X-Forwarded-For` entry from the right (the leftmost
/// when there are fewer); else the peer. An entry that is not an IP address
/// is never used: the peer address stands in.
pub fn client_ip(info: &HttpRequestInfo<'_>, trusted_proxies: u32) -> Option<IpAddr> {
    if let Some(ip) = info.real_ip.and_then(parse_ip) {
        return Some(ip);
    }
    if trusted_proxies > 0 {
        if let Some(xff) = info.forwarded_for {
            let hops: Vec<&str> = xff.split(',').map(str::trim).collect();
            let index = hops.len().saturating_sub(trusted_proxies as usize);
            if let Some(ip) = hops.get(index).copied().and_then(parse_ip) {
                return Some(ip);
            }
        }
    }
    info.peer
}

/// Parses `1.2.3.4`, `::1`, `[::1]`, `[::1]:80` or `1.2.3.4:80`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    text.rsplit_once(':')
        .filter(|(host, port)| !host.contains(':') && port.parse::<u16>().is_ok())
        .and_then(|(host, _)| host.parse().ok())
}

/// The path without its query, cut to [`MAX_PATH`] bytes.
pub fn path_of(target: &str) -> &str {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let mut end = path.len().min(MAX_PATH);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

/// The attributes of a request.
pub fn attributes(
    info: &HttpRequestInfo<'_>,
    identity: &IdentityConfig,
    endpoints: &EndpointTable,
) -> Attributes {
    let mut attributes = Attributes::with_capacity(5);
    let path = path_of(info.target);
    if let Some(ip) = client_ip(info, identity.trusted_proxies) {
        attributes.insert("ip".into(), ip.to_string());
    }
    if let Some(user) = info.user.filter(|u| !u.is_empty()) {
        attributes.insert("user".into(), user.to_string());
    }
    if let Some(endpoint) = endpoints.classify(info.method, path) {
        attributes.insert("endpoint".into(), endpoint.to_string());
    }
    attributes.insert("method".into(), info.method.to_ascii_uppercase());
    attributes.insert("path".into(), path.to_string());
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_core::Endpoint;

    fn info<'a>(peer: &str, xff: Option<&'a str>, real_ip: Option<&'a str>) -> HttpRequestInfo<'a> {
        HttpRequestInfo {
            method: "post",
            target: "/api/chat/completions?stream=1",
            peer: peer.parse().ok(),
            forwarded_for: xff,
            real_ip,
            user: Some("u1"),
        }
    }

    #[test]
    fn forwarded_for_is_trusted_only_as_far_as_configured() {
        let xff = Some("203.0.113.7, 10.0.0.2, 10.0.0.3");
        let peer = "10.0.0.9";
        assert_eq!(
            client_ip(&info(peer, xff, None), 0).unwrap().to_string(),
            peer
        );
        assert_eq!(
            client_ip(&info(peer, xff, None), 1).unwrap().to_string(),
            "10.0.0.3"
        );
        assert_eq!(
            client_ip(&info(peer, xff, None), 3).unwrap().to_string(),
            "203.0.113.7"
        );
        assert_eq!(
            client_ip(&info(peer, xff, None), 9).unwrap().to_string(),
            "203.0.113.7"
        );
        assert_eq!(
            client_ip(&info(peer, Some("[2001:db8::1]:443"), None), 1)
                .unwrap()
                .to_string(),
            "2001:db8::1"
        );
    }

    #[test]
    fn malformed_forwarded_for_never_becomes_a_key() {
        for bad in ["not-an-ip", "a}:{b", "", "1.2.3.4.5", ",,,"] {
            assert_eq!(
                client_ip(&info("10.0.0.9", Some(bad), None), 1)
                    .unwrap()
                    .to_string(),
                "10.0.0.9",
                "{bad}"
            );
        }
        assert_eq!(
            client_ip(&info("10.0.0.9", None, Some("bogus")), 0)
                .unwrap()
                .to_string(),
            "10.0.0.9"
        );
        assert_eq!(
            client_ip(&info("10.0.0.9", None, Some("192.0.2.1")), 0)
                .unwrap()
                .to_string(),
            "192.0.2.1"
        );
    }

    #[test]
    fn attributes_of_a_request() {
        let endpoints = EndpointTable::new(vec![Endpoint::new(
            "ai".into(),
            "/api/chat/*".into(),
            vec!["POST".into()],
        )
        .unwrap()]);
        let identity = IdentityConfig {
            user_header: "x-user-id".into(),
            trusted_proxies: 0,
        };
        let a = attributes(&info("::1", None, None), &identity, &endpoints);
        assert_eq!(a["ip"], "::1");
        assert_eq!(a["user"], "u1");
        assert_eq!(a["endpoint"], "ai");
        assert_eq!(a["method"], "POST");
        assert_eq!(a["path"], "/api/chat/completions");
        let long = format!("/{}", "é".repeat(300));
        assert!(path_of(&long).len() <= MAX_PATH);
    }
}
