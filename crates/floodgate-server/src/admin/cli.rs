//! `floodgate admin state|reset|top`: the admin API from the command line.
//! The token comes from `FLOODGATE_ADMIN_TOKEN` or `--token-file`; the
//! answer is printed as JSON; every failure is one line on stderr and a
//! non-zero exit.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long one admin call may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAction {
    /// `GET /v1/admin/state`.
    State,
    /// `POST /v1/admin/reset`, optionally one policy.
    Reset,
    /// `GET /v1/admin/top`.
    Top,
}

/// One admin call, as the command line gives it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Which action.
    pub action: AdminAction,
    /// The server's HTTP (or admin) listener, `http://host:port`.
    pub url: String,
    /// `name=value` attributes (state, reset).
    pub attributes: Vec<(String, String)>,
    /// One policy (reset, top).
    pub policy: Option<String>,
    /// Keys per policy (top).
    pub n: Option<usize>,
}

/// The token: `--token-file` if given, else `FLOODGATE_ADMIN_TOKEN`.
///
/// # Errors
/// A clear message when neither gives a token.
pub fn token(file: Option<&Path>) -> Result<String, String> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?,
        None => std::env::var("FLOODGATE_ADMIN_TOKEN").map_err(|_| {
            "no admin token: set FLOODGATE_ADMIN_TOKEN or give --token-file".to_string()
        })?,
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err("the admin token is empty".into());
    }
    if token.chars().any(char::is_control) {
        return Err("the admin token holds a control character (a line break?): it cannot be sent as a header".into());
    }
    Ok(token)
}

/// `name=value` pairs, names unique.
///
/// # Errors
/// A clear message for a malformed or repeated pair.
pub fn parse_attributes(args: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for arg in args {
        let Some((name, value)) = arg.split_once('=').filter(|(n, _)| !n.is_empty()) else {
            return Err(format!(
                "invalid attribute {arg:?}: expected name=value, like user=u1"
            ));
        };
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("attribute {name:?} is given more than once"));
        }
        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}

/// The method, path and query, and body of `call`.
///
/// # Errors
/// A clear message when the call lacks what its action needs.
fn build(call: &Call) -> Result<(Method, String, Option<String>), String> {
    let base = call.url.trim_end_matches('/');
    if !base.starts_with("http://") {
        return Err(format!(
            "invalid --url {:?}: expected http://host:port",
            call.url
        ));
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    match call.action {
        AdminAction::State | AdminAction::Reset if call.attributes.is_empty() => {
            Err("give the key's attributes as name=value, like user=u1 endpoint=ai".into())
        }
        AdminAction::State => {
            for (name, value) in &call.attributes {
                query.append_pair(name, value);
            }
            Ok((
                Method::GET,
                format!("{base}/v1/admin/state?{}", query.finish()),
                None,
            ))
        }
        AdminAction::Reset => {
            let attributes: serde_json::Map<String, serde_json::Value> = (call.attributes.iter())
                .map(|(n, v)| (n.clone(), serde_json::Value::String(v.clone())))
                .collect();
            let mut body = serde_json::json!({ "attributes": attributes });
            if let Some(policy) = &call.policy {
                body["policy"] = serde_json::Value::String(policy.clone());
            }
            Ok((
                Method::POST,
                format!("{base}/v1/admin/reset"),
                Some(body.to_string()),
            ))
        }
        AdminAction::Top => {
            if let Some(policy) = &call.policy {
                query.append_pair("policy", policy);
            }
            if let Some(n) = call.n {
                query.append_pair("n", &n.to_string());
            }
            Ok((
                Method::GET,
                format!("{base}/v1/admin/top?{}", query.finish()),
                None,
            ))
        }
    }
}

/// The HTTP request making `call` with `token`.
///
/// # Errors
/// One line saying which argument is wrong (the `--url`, a missing key).
pub fn request(call: &Call, token: &str) -> Result<Request<Full<Bytes>>, String> {
    let (method, uri, body) = build(call)?;
    Request::builder()
        .method(method)
        .uri(&uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| format!("invalid --url {:?}: {e}", call.url))
}

/// Sends `request` (made by [`request`] for `call`) and returns the JSON
/// answer, pretty-printed.
///
/// # Errors
/// One line saying what went wrong: an unreachable server, a refused
/// token, or the server's own error.
pub async fn run(call: &Call, request: Request<Full<Bytes>>) -> Result<String, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| format!("{} did not answer within {TIMEOUT:?}", call.url))?
        .map_err(|e| format!("cannot reach {}: {}", call.url, source_of(&e)))?;
    let status = response.status();
    let bytes = tokio::time::timeout(TIMEOUT, response.into_body().collect())
        .await
        .map_err(|_| format!("{} did not finish its answer within {TIMEOUT:?}", call.url))?
        .map_err(|e| format!("reading the answer of {}: {e}", call.url))?
        .to_bytes();
    let json: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    let said = json
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(|e| e.as_str())
        .map_or_else(
            || String::from_utf8_lossy(&bytes).into_owned(),
            str::to_string,
        );
    match status {
        s if s.is_success() => Ok(json.map_or_else(
            || String::from_utf8_lossy(&bytes).into_owned(),
            |j| serde_json::to_string_pretty(&j).unwrap_or_default(),
        )),
        StatusCode::UNAUTHORIZED => Err(format!(
            "the server refused the admin token (401): check FLOODGATE_ADMIN_TOKEN or --token-file against [admin] of {}",
            call.url
        )),
        StatusCode::NOT_FOUND if said.starts_with("no route") => Err(format!(
            "{} has no admin API (404): is [admin] configured, and is this its listener?",
            call.url
        )),
        s => Err(format!("{} answered {s}: {said}", call.url)),
    }
}

/// The innermost cause of a client error (connection refused, ...).
fn source_of(error: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = error;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(action: AdminAction, attributes: &[&str]) -> Call {
        Call {
            action,
            url: "http://127.0.0.1:9720/".into(),
            attributes: parse_attributes(
                &attributes.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            )
            .unwrap(),
            policy: Some("ai per user".into()),
            n: Some(3),
        }
    }

    #[test]
    fn requests_are_built_from_the_arguments() {
        let (m, uri, body) =
            build(&call(AdminAction::State, &["user=u 1", "endpoint=ai"])).unwrap();
        assert_eq!(m, Method::GET);
        assert_eq!(
            uri,
            "http://127.0.0.1:9720/v1/admin/state?user=u+1&endpoint=ai"
        );
        assert!(body.is_none());
        let (m, uri, body) = build(&call(AdminAction::Reset, &["user=u1"])).unwrap();
        assert_eq!(
            (m, uri.as_str()),
            (Method::POST, "http://127.0.0.1:9720/v1/admin/reset")
        );
        let body: serde_json::Value = serde_json::from_str(&body.unwrap()).unwrap();
        assert_eq!(body["attributes"]["user"], "u1");
        assert_eq!(body["policy"], "ai per user");
        let (_, uri, _) = build(&call(AdminAction::Top, &[])).unwrap();
        assert_eq!(
            uri,
            "http://127.0.0.1:9720/v1/admin/top?policy=ai+per+user&n=3"
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(build(&call(AdminAction::State, &[])).is_err());
        assert!(parse_attributes(&["user".into()]).is_err());
        assert!(parse_attributes(&["=x".into()]).is_err());
        assert!(parse_attributes(&["a=1".into(), "a=2".into()]).is_err());
        let mut bad = call(AdminAction::Top, &[]);
        bad.url = "127.0.0.1:9720".into();
        assert!(build(&bad).is_err());
    }
}
