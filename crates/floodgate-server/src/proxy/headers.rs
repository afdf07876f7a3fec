//! Header rules of a forwarding proxy (RFC 9110 §7.6): hop-by-hop headers
//! stay on their hop, and the `X-Forwarded-*` headers say where the request
//! came from.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// The protocol a WebSocket (or other) upgrade asks for, if any.
pub fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Removes hop-by-hop headers — the fixed ones, `Upgrade`, and any named
/// in `Connection` — then puts the upgrade back when `upgrade` says one is
/// being forwarded.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<&HeaderValue>) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
}

/// Appends `peer` to `X-Forwarded-For` (every line the client sent, in
/// order, become one) and sets `X-Forwarded-Proto` and `X-Forwarded-Host`
/// (from the request's host, when it had one).
pub fn add_forwarded(headers: &mut HeaderMap, peer: IpAddr, host: Option<&str>) {
    let chain = match crate::identity::forwarded_for(headers).as_deref() {
        Some(before) if !before.trim().is_empty() => format!("{before}, {peer}"),
        _ => peer.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert("x-forwarded-for", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(value) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert("x-forwarded-host", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("x-user-id", HeaderValue::from_static("u1"));
        assert!(upgrade_of(&h).is_none());
        strip_hop_by_hop(&mut h, None);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-user-id"]);
    }

    #[test]
    fn an_upgrade_is_kept_for_the_next_hop() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        let upgrade = upgrade_of(&h);
        assert_eq!(upgrade.as_ref().unwrap(), "websocket");
        strip_hop_by_hop(&mut h, upgrade.as_ref());
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = HeaderMap::new();
        add_forwarded(&mut h, "10.0.0.9".parse().unwrap(), Some("app.example"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.5"));
        add_forwarded(&mut h, "10.0.0.9".parse().unwrap(), None);
        assert_eq!(h["x-forwarded-for"], "203.0.113.5, 10.0.0.9");
        h.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("203.0.113.5"));
        add_forwarded(&mut h, "10.0.0.9".parse().unwrap(), None);
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 203.0.113.5, 10.0.0.9");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "app.example");
    }
}
