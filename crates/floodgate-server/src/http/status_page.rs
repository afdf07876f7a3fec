//! The status page: `GET /` (or `/ui`) on the HTTP listener. One page and
//! its script and style, compiled into the binary: no build step, no
//! external assets. The script polls `/readyz`, `/v1/policies` and
//! `/metrics`, so the page shows nothing those do not already show.

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::Full;

use super::routes::HttpResponse;

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// Only this origin's script, style and requests; no framing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The page's paths, for the routes' 405 answer.
pub const PATHS: [&str; 4] = ["/", "/ui", "/ui/app.js", "/ui/app.css"];

/// The asset at `path`, or `None` when the path is not the page's.
pub fn asset(path: &str) -> Option<HttpResponse> {
    let (body, content_type) = match path {
        "/" | "/ui" => (INDEX, "text/html; charset=utf-8"),
        "/ui/app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/ui/app.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_has_its_type_and_a_strict_policy() {
        for (path, kind) in [
            ("/", "text/html"),
            ("/ui", "text/html"),
            ("/ui/app.js", "text/javascript"),
            ("/ui/app.css", "text/css"),
        ] {
            let response = asset(path).expect(path);
            let headers = response.headers();
            assert!(headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind));
            assert!(headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'none'"));
        }
        assert!(PATHS.iter().all(|p| asset(p).is_some()));
        assert!(asset("/ui/").is_none());
        assert!(asset("/index.html").is_none());
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for text in [INDEX, SCRIPT, STYLE] {
            assert!(!text.contains("http://") || text.contains("http://www.w3.org/2000/svg"));
            assert!(!text.contains("https://"));
            assert!(!text.contains("innerHTML"));
        }
    }
}
