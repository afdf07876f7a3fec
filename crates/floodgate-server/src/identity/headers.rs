//! The headers of a request as every edge hands them over (hyper's
//! `HeaderMap` for the proxy and `/v1/auth`, Envoy's map for ext_authz),
//! and the attributes `[identity] attributes` takes from them.
//!
//! A header becomes an attribute only when the request has exactly one
//! line of it, holding non-empty UTF-8: two lines (a client's and a
//! proxy's that appended instead of replacing) are ambiguous, so the
//! attribute is absent and the policies that need it do not apply. Envoy
//! joins repeated lines with `,` before floodgate sees them: behind Envoy,
//! have the proxy remove the header a client sent.

use std::collections::HashMap;

use floodgate_config::IdentityConfig;
use floodgate_core::Attributes;
use http::HeaderMap;

/// The headers of one request.
#[derive(Debug, Clone, Copy, Default)]
pub enum RequestHeaders<'a> {
    /// None known (tests, or a transport without headers).
    #[default]
    None,
    /// hyper's headers (the proxy, `/v1/auth`).
    Http(&'a HeaderMap),
    /// Envoy ext_authz's headers: lower-case names, repeated lines joined.
    Envoy(&'a HashMap<String, String>),
}

impl<'a> RequestHeaders<'a> {
    /// The value of header `name` (lower-case) when the request has exactly
    /// one line of it and the value is UTF-8; `None` otherwise.
    pub fn single(&self, name: &str) -> Option<&'a str> {
        match self {
            RequestHeaders::None => None,
            RequestHeaders::Http(map) => {
                let mut lines = map.get_all(name).iter();
                let value = lines.next()?;
                if lines.next().is_some() {
                    return None;
                }
                std::str::from_utf8(value.as_bytes()).ok()
            }
            RequestHeaders::Envoy(map) => map.get(name).map(String::as_str),
        }
    }
}

/// Adds the attributes `identity.header_attributes` names, each from its
/// header when present (see the module documentation).
pub fn add_header_attributes(
    attributes: &mut Attributes,
    headers: RequestHeaders<'_>,
    identity: &IdentityConfig,
) {
    for (attribute, header) in &identity.header_attributes {
        if let Some(value) = headers.single(header).filter(|v| !v.is_empty()) {
            attributes.insert(attribute.clone(), value.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{attributes, HttpRequestInfo};
    use floodgate_core::EndpointTable;
    use http::HeaderMap;

    fn identity(lines: &str) -> floodgate_config::IdentityConfig {
        let src = format!("[identity]\n{lines}\n");
        match floodgate_config::from_str(&src, "t.toml") {
            Ok(config) => config.identity,
            Err(e) => panic!("{e}"),
        }
    }

    fn request(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn of(
        map: &HeaderMap,
        identity: &floodgate_config::IdentityConfig,
    ) -> floodgate_core::Attributes {
        let info = HttpRequestInfo::from_headers(
            "POST",
            "/api/chat",
            "192.0.2.1".parse().unwrap(),
            map,
            &identity.user_header,
            false,
        );
        attributes(&info, identity, &EndpointTable::default())
    }

    #[test]
    fn configured_headers_become_attributes() {
        let id = identity("attributes = { plan = \"X-Plan\", tenant = \"x-tenant-id\" }");
        let a = of(
            &request(&[
                ("x-plan", "pro"),
                ("x-tenant-id", "acme"),
                ("x-user-id", "u1"),
            ]),
            &id,
        );
        assert_eq!(a["plan"], "pro");
        assert_eq!(a["tenant"], "acme");
        assert_eq!(a["user"], "u1");
        assert_eq!(a["ip"], "192.0.2.1");
        // Absent, empty, repeated or not text: no attribute.
        let a = of(&request(&[("x-plan", "")]), &id);
        assert!(!a.contains_key("plan") && !a.contains_key("tenant"));
        let a = of(&request(&[("x-plan", "free"), ("x-plan", "pro")]), &id);
        assert!(!a.contains_key("plan"), "two lines are ambiguous");
        let mut map = HeaderMap::new();
        map.insert("x-plan", http::HeaderValue::from_bytes(b"\xFFpro").unwrap());
        assert!(!of(&map, &id).contains_key("plan"));
        // Not configured: never read.
        assert!(!of(&request(&[("x-plan", "pro")]), &identity("")).contains_key("plan"));
    }

    #[test]
    fn with_a_jwt_the_user_header_is_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef").unwrap();
        let id = identity(&format!(
            "attributes = {{ tenant = \"x-tenant-id\" }}\n[identity.jwt]\nalgorithm = \"HS256\"\nsecret_file = {:?}\nclaims = {{ plan = \"plan\" }}",
            path.to_str().unwrap()
        ));
        let forged = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiIsInBsYW4iOiJwcm8iLCJleHAiOjk5OTk5OTk5OTl9.c2lnbmF0dXJl";
        let a = of(
            &request(&[
                ("x-user-id", "admin"),
                ("authorization", forged),
                ("x-tenant-id", "acme"),
                ("x-plan", "pro"),
            ]),
            &id,
        );
        assert!(!a.contains_key("user"), "{a:?}");
        assert!(!a.contains_key("plan"), "{a:?}");
        assert_eq!(a["tenant"], "acme");
        assert_eq!(a["ip"], "192.0.2.1");
    }
}
