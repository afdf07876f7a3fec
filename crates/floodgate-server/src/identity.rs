//! Attributes of an HTTP request, for the integrations that see requests
//! rather than attributes (Envoy ext_authz, nginx `auth_request`, the
//! reverse proxy): `ip`, `user`, `endpoint`, `method`, `path`, those
//! `[identity] attributes` takes from headers (`headers.rs`) and, with
//! `[identity.jwt]`, the user and claims of a verified token (`jwt.rs`).
//!
//! The path is normalised ([`floodgate_core::path::normalize`]) before it
//! is classified and before it becomes the `path` attribute, so every
//! spelling a web framework routes alike is limited alike (one holding an
//! escaped slash is classified by both readings of it); the proxy still
//! forwards the path exactly as the client sent it. An absolute-form target
//! (`http://host/api/x`) is classified by its path.
//!
//! Header values are read as bytes: a value that is not text never makes a
//! header count as absent where that would help a client (see
//! [`header_target`]).

mod address;
pub mod headers;
pub mod jwt;

use std::borrow::Cow;
use std::net::IpAddr;

use floodgate_config::IdentityConfig;
use floodgate_core::{path, Attributes, EndpointTable};
use http::HeaderMap;

pub use address::{client_ip, forwarded_for, ip_attribute};
pub use headers::RequestHeaders;

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
    /// Every `X-Forwarded-For` line, in order, as one comma-separated list.
    pub forwarded_for: Option<Cow<'a, str>>,
    /// The address a trusted front proxy saw (nginx's `X-Real-IP`): the
    /// last hop, after the `X-Forwarded-For` entries, when
    /// `trusted_proxies` > 0.
    pub real_ip: Option<&'a str>,
    /// The value of the configured user header, if any.
    pub user: Option<&'a str>,
    /// Every header, for `[identity] attributes` and `[identity.jwt]`.
    pub headers: RequestHeaders<'a>,
}

impl<'a> HttpRequestInfo<'a> {
    /// The request `method target` from `peer` with `headers`: every
    /// `X-Forwarded-For` line, the `user_header`, and `X-Real-IP` when
    /// `real_ip` (nginx `auth_request` sets it; a client of the proxy
    /// must not).
    pub fn from_headers(
        method: &'a str,
        target: &'a str,
        peer: IpAddr,
        headers: &'a HeaderMap,
        user_header: &str,
        real_ip: bool,
    ) -> Self {
        // UTF-8, not only visible ASCII: a user id may be `josé`. A value
        // that is not UTF-8 is absent: the request is anonymous, which a
        // `user|ip` key counts by its address.
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        };
        HttpRequestInfo {
            method,
            target,
            peer: Some(peer),
            forwarded_for: forwarded_for(headers),
            real_ip: if real_ip { header("x-real-ip") } else { None },
            user: header(user_header),
            headers: RequestHeaders::Http(headers),
        }
    }
}

/// The value of header `name` as a request target or method, whatever its
/// bytes: those that may not appear in a path as is (any byte ≥ 0x80 among
/// them, as nginx's `$request_uri` passes them) percent-encoded (see
/// [`path::encode_target`]). `None` only when the header is absent.
pub fn header_target<'h>(headers: &'h HeaderMap, name: &str) -> Option<Cow<'h, str>> {
    headers.get(name).map(|v| path::encode_target(v.as_bytes()))
}

/// The path of a request target as classified: without any
/// `scheme://authority` (absolute form), query or fragment, normalised.
pub fn request_path(target: &str) -> Cow<'_, str> {
    path::normalize(raw_path(target))
}

/// The path of a request target as sent: without any `scheme://authority`,
/// query or fragment.
fn raw_path(target: &str) -> &str {
    let target = path::origin_form(target);
    target.split(['?', '#']).next().unwrap_or("")
}

/// The endpoint class of a request: its method and normalised path
/// (see [`request_path`]) against the `[[endpoint]]` table.
pub fn classify<'e>(endpoints: &'e EndpointTable, method: &str, target: &str) -> Option<&'e str> {
    let raw = raw_path(target);
    class_of(endpoints, method, raw, &path::normalize(raw))
}

/// The class of `path`, `raw` normalised. Routers read an escaped slash
/// two ways — a slash (WSGI and ASGI servers, nginx) or a character of its
/// segment (Go's `ServeMux`, Express, Rails) — so a path holding one falls
/// in the first class either reading does: `/files/..%2Fsecret` is no
/// escape from `/files/*`, nor `/api%2Fchat` from `/api/chat`.
fn class_of<'e>(
    endpoints: &'e EndpointTable,
    method: &str,
    raw: &str,
    path: &str,
) -> Option<&'e str> {
    let kept = path::encodes_a_slash(raw).then(|| path::normalize_keeping_slashes(raw));
    endpoints.classify_either(method, path, kept.as_deref())
}

/// `path` cut to [`MAX_PATH`] bytes at a character boundary.
fn cut(path: &str) -> &str {
    let mut end = path.len().min(MAX_PATH);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

/// The attributes of a request. Those from headers and claims come first,
/// so the ones floodgate derives itself (`ip`, `user`, `endpoint`,
/// `method`, `path`; the configuration refuses them as header or claim
/// attributes anyway) always win. With `[identity.jwt]` the user is the
/// verified token's, never the user header's.
pub fn attributes(
    info: &HttpRequestInfo<'_>,
    identity: &IdentityConfig,
    endpoints: &EndpointTable,
) -> Attributes {
    let mut attributes = Attributes::new();
    headers::add_header_attributes(&mut attributes, info.headers, identity);
    let user = match &identity.jwt {
        Some(config) => jwt::identity(config, info.headers).and_then(|verified| {
            attributes.extend(verified.attributes);
            verified.user
        }),
        None => info.user.filter(|u| !u.is_empty()).map(str::to_string),
    };
    let raw = raw_path(info.target);
    let path = path::normalize(raw);
    if let Some(ip) = client_ip(info, identity.trusted_proxies) {
        attributes.insert("ip".into(), ip_attribute(ip, identity.ipv6_prefix));
    }
    if let Some(user) = user {
        attributes.insert("user".into(), user);
    }
    if let Some(endpoint) = class_of(endpoints, info.method, raw, &path) {
        attributes.insert("endpoint".into(), endpoint.to_string());
    }
    attributes.insert("method".into(), info.method.to_ascii_uppercase());
    attributes.insert("path".into(), cut(&path).to_string());
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
            forwarded_for: xff.map(Cow::Borrowed),
            real_ip,
            user: Some("u1"),
            headers: RequestHeaders::None,
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
            client_ip(&info("10.0.0.9", None, Some("bogus")), 1)
                .unwrap()
                .to_string(),
            "10.0.0.9"
        );
        assert_eq!(
            client_ip(&info("10.0.0.9", None, Some("192.0.2.1")), 1)
                .unwrap()
                .to_string(),
            "192.0.2.1"
        );
    }

    #[test]
    fn x_real_ip_is_believed_only_behind_a_trusted_proxy() {
        let spoofed = info("10.0.0.9", Some("192.0.2.7"), Some("192.0.2.1"));
        assert_eq!(client_ip(&spoofed, 0).unwrap().to_string(), "10.0.0.9");
        assert_eq!(client_ip(&spoofed, 1).unwrap().to_string(), "192.0.2.1");
    }

    #[test]
    fn x_real_ip_is_the_last_hop() {
        // A load balancer (10.0.0.2) in front of nginx, which sets X-Real-IP
        // to its peer: the balancer.
        let chain = info(
            "10.0.0.9",
            Some("198.51.100.1, 203.0.113.7"),
            Some("10.0.0.2"),
        );
        let ip = |n| client_ip(&chain, n).unwrap().to_string();
        assert_eq!(ip(1), "10.0.0.2");
        assert_eq!(ip(2), "203.0.113.7");
        assert_eq!(ip(3), "198.51.100.1");
        assert_eq!(ip(4), "198.51.100.1");
        // Without X-Forwarded-For, X-Real-IP is the only (leftmost) hop.
        let alone = info("10.0.0.9", None, Some("192.0.2.1"));
        for n in 1..=3 {
            assert_eq!(client_ip(&alone, n).unwrap().to_string(), "192.0.2.1");
        }
    }

    #[test]
    fn every_forwarded_for_line_is_read_in_order() {
        let mut headers = HeaderMap::new();
        assert_eq!(forwarded_for(&headers), None);
        headers.append("x-forwarded-for", "198.51.100.1".parse().unwrap());
        assert_eq!(forwarded_for(&headers).as_deref(), Some("198.51.100.1"));
        headers.append("x-forwarded-for", "203.0.113.7, 10.0.0.2".parse().unwrap());
        headers.append("x-user-id", "u1".parse().unwrap());
        let info = HttpRequestInfo::from_headers(
            "GET",
            "/",
            "10.0.0.9".parse().unwrap(),
            &headers,
            "x-user-id",
            false,
        );
        assert_eq!(
            info.forwarded_for.as_deref(),
            Some("198.51.100.1, 203.0.113.7, 10.0.0.2")
        );
        assert_eq!(info.user, Some("u1"));
        // The proxy that added the last line is the one trusted: its entry
        // is the client, not the first line's.
        assert_eq!(client_ip(&info, 1).unwrap().to_string(), "10.0.0.2");
        assert_eq!(client_ip(&info, 3).unwrap().to_string(), "198.51.100.1");
    }

    #[test]
    fn forwarded_for_bytes_that_are_not_text_keep_their_place() {
        let mut headers = HeaderMap::new();
        // The client sent junk; the trusted proxy appended to its line.
        let line = http::HeaderValue::from_bytes(b"\xFF\xFE, 203.0.113.7").unwrap();
        headers.append("x-forwarded-for", line);
        let info = HttpRequestInfo::from_headers(
            "GET",
            "/",
            "10.0.0.9".parse().unwrap(),
            &headers,
            "x-user-id",
            false,
        );
        assert_eq!(client_ip(&info, 1).unwrap().to_string(), "203.0.113.7");
        // Two hops trusted: the junk is no address, the peer stands in.
        assert_eq!(client_ip(&info, 2).unwrap().to_string(), "10.0.0.9");
        headers.append("x-forwarded-for", "198.51.100.1".parse().unwrap());
        assert_eq!(
            forwarded_for(&headers).as_deref(),
            Some("\u{FFFD}\u{FFFD}, 203.0.113.7, 198.51.100.1")
        );
    }

    #[test]
    fn header_values_are_read_as_bytes() {
        let mut headers = HeaderMap::new();
        assert_eq!(header_target(&headers, "x-original-uri"), None);
        let raw = b"/api/chat/completions?x=\xC3\xA9";
        headers.insert(
            "x-original-uri",
            http::HeaderValue::from_bytes(raw).unwrap(),
        );
        headers.insert(
            "x-user-id",
            http::HeaderValue::from_bytes("josé".as_bytes()).unwrap(),
        );
        headers.insert("x-bad", http::HeaderValue::from_bytes(b"\xFF").unwrap());
        let target = header_target(&headers, "x-original-uri").unwrap();
        assert_eq!(target, "/api/chat/completions?x=%C3%A9");
        let info = HttpRequestInfo::from_headers(
            "POST",
            &target,
            "10.0.0.9".parse().unwrap(),
            &headers,
            "x-user-id",
            true,
        );
        assert_eq!(info.user, Some("josé"));
        let endpoints = EndpointTable::new(vec![Endpoint::new(
            "ai".into(),
            "/api/chat/*".into(),
            vec!["POST".into()],
        )
        .unwrap()]);
        let a = attributes(&info, &IdentityConfig::default(), &endpoints);
        assert_eq!(a["endpoint"], "ai");
        // Not UTF-8: anonymous (the stand-in counts it by address).
        let info = HttpRequestInfo::from_headers(
            "POST",
            &target,
            "10.0.0.9".parse().unwrap(),
            &headers,
            "x-bad",
            true,
        );
        assert_eq!(info.user, None);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_prefix() {
        let ip = |s: &str, prefix| ip_attribute(s.parse().unwrap(), prefix);
        assert_eq!(ip("2001:db8:0:1ff:1:2:3:4", 56), "2001:db8:0:100::/56");
        assert_eq!(ip("2001:db8:0:1aa::9", 56), "2001:db8:0:100::/56");
        assert_eq!(ip("2001:db8:0:1ff:1:2:3:4", 64), "2001:db8:0:1ff::/64");
        assert_eq!(ip("2001:db8::1", 128), "2001:db8::1/128");
        assert_eq!(ip("::1", 56), "::/56");
        assert_eq!(ip("ffff::1", 1), "8000::/1");
        assert_eq!(ip("::ffff:192.0.2.1", 56), "192.0.2.1");
        assert_eq!(ip("192.0.2.1", 56), "192.0.2.1");
    }

    #[test]
    fn an_escaped_slash_is_classified_by_both_its_readings() {
        let endpoints = EndpointTable::new(vec![
            Endpoint::new("files".into(), "/files/*".into(), vec![]).unwrap(),
            Endpoint::new("chat".into(), "/api/chat".into(), vec![]).unwrap(),
        ]);
        for (target, class) in [
            // Read as a slash: the path is /secret; kept: /files/..%2Fsecret.
            ("/files/..%2Fsecret", "files"),
            ("/files/x%2F..%2F..%2Fsecret", "files"),
            // Read as a slash: /api/chat; kept: one segment.
            ("/api%2Fchat", "chat"),
            ("/api%2fchat?x=1", "chat"),
        ] {
            assert_eq!(classify(&endpoints, "GET", target), Some(class), "{target}");
            let request = HttpRequestInfo {
                target,
                ..info("::1", None, None)
            };
            let a = attributes(&request, &IdentityConfig::default(), &endpoints);
            assert_eq!(a["endpoint"], class, "{target}");
        }
        // The attribute is the slash reading.
        let request = HttpRequestInfo {
            target: "/files/..%2Fsecret",
            ..info("::1", None, None)
        };
        let a = attributes(&request, &IdentityConfig::default(), &endpoints);
        assert_eq!(a["path"], "/secret");
        assert_eq!(classify(&endpoints, "GET", "/other%2Fx"), None);
    }

    #[test]
    fn attributes_of_a_request() {
        let endpoints = EndpointTable::new(vec![Endpoint::new(
            "ai".into(),
            "/api/chat/*".into(),
            vec!["POST".into()],
        )
        .unwrap()]);
        let identity = IdentityConfig::default();
        let a = attributes(&info("::1", None, None), &identity, &endpoints);
        assert_eq!(a["ip"], "::/56");
        assert_eq!(a["user"], "u1");
        assert_eq!(a["endpoint"], "ai");
        assert_eq!(a["method"], "POST");
        assert_eq!(a["path"], "/api/chat/completions");
        let long = format!("/{}", "é".repeat(300));
        assert!(cut(&long).len() <= MAX_PATH);
        for target in [
            "/API/Chat/completions",
            "/api/%63hat/completions?x=1",
            "//api/chat/completions",
            "/api/x/../chat/completions",
        ] {
            let request = HttpRequestInfo {
                target,
                ..info("::1", None, None)
            };
            let a = attributes(&request, &identity, &endpoints);
            assert_eq!(
                a.get("endpoint").map(String::as_str),
                Some("ai"),
                "{target}"
            );
            assert_eq!(classify(&endpoints, "POST", target), Some("ai"), "{target}");
        }
        for target in [
            "http://h/api/chat/x",
            "https://h:8443//api/Chat/x?q=1",
            "/api/chat/x?x=%C3%A9",
        ] {
            assert_eq!(classify(&endpoints, "POST", target), Some("ai"), "{target}");
        }
        assert_eq!(request_path("http://h/api/chat/x?q"), "/api/chat/x");
        assert_eq!(request_path("http://h"), "/");
        let request = HttpRequestInfo {
            target: "/api/%63hat//x/./y?q",
            ..info("::1", None, None)
        };
        assert_eq!(
            attributes(&request, &identity, &endpoints)["path"],
            "/api/chat/x/y"
        );
    }
}
