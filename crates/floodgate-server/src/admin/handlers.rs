//! The three admin actions: state, reset, top.

use std::net::SocketAddr;
use std::sync::Arc;

use floodgate_core::{Attributes, Policy};
use floodgate_store::{Check, DenialTop, PolicyStatus};
use http::StatusCode;
use hyper::body::Incoming;
use hyper::Request;
use serde::{Deserialize, Serialize};

use super::query;
use crate::app::App;
use crate::errors::ApiError;
use crate::http::routes::{json, parse, HttpResponse};
use crate::render::ms;

/// One policy's view of a key in `GET /v1/admin/state`.
#[derive(Debug, Serialize)]
struct PolicyState {
    policy: String,
    used: u64,
    remaining: u64,
    limit: u64,
    reset_after_ms: u64,
    retry_after_ms: u64,
    /// Whether a check of cost 1 would be denied by this policy now.
    denied: bool,
    shadow: bool,
    source: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    replaced: Vec<String>,
}

impl PolicyState {
    fn of(s: &PolicyStatus) -> Self {
        PolicyState {
            policy: s.policy.to_string(),
            used: s.limit.saturating_sub(s.remaining),
            remaining: s.remaining,
            limit: s.limit,
            reset_after_ms: ms(s.reset_after_us),
            retry_after_ms: ms(s.retry_after_us),
            denied: !s.allowed || s.remaining == 0,
            shadow: s.shadow,
            source: s.source.as_str(),
            replaced: s.replaced.iter().map(|r| r.to_string()).collect(),
        }
    }
}

fn names(statuses: impl Iterator<Item = Arc<str>>) -> String {
    statuses
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `GET /v1/admin/state?<attributes>`: every applicable policy's counter,
/// peeked (cost 0, nothing charged).
pub(super) async fn state(
    app: &App,
    req: &Request<Incoming>,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    let attributes = query::attributes(req.uri().query())?;
    let verdict = app
        .limiter
        .check(Check {
            attributes: &attributes,
            hits: 0,
            domain: None,
            reserve: false,
        })
        .await?;
    let policies: Vec<PolicyState> = verdict.statuses.iter().map(PolicyState::of).collect();
    let applied = names(verdict.statuses.iter().map(|s| s.policy.clone()));
    tracing::info!(%peer, action = "state", policies = %applied, "admin request");
    tracing::debug!(%peer, action = "state", ?attributes, "admin request attributes");
    #[derive(Serialize)]
    struct Body<'a> {
        attributes: &'a Attributes,
        policies: Vec<PolicyState>,
    }
    Ok(json(
        StatusCode::OK,
        &Body {
            attributes: &attributes,
            policies,
        },
    ))
}

/// The body of `POST /v1/admin/reset`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    #[serde(deserialize_with = "crate::http::routes::unique_attributes")]
    attributes: Attributes,
    #[serde(default)]
    policy: Option<String>,
}

#[derive(Debug, Serialize)]
struct ResetEntry {
    policy: String,
    key: String,
}

/// `POST /v1/admin/reset`: clears the key's counters in every applicable
/// policy (or the named one) in the store, and tells every sidecar to
/// forget its cached denials and fallback counters of them.
pub(super) async fn reset(
    app: &App,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    let bytes = crate::http::read_body(req).await?;
    let request: ResetRequest = parse(&bytes)?;
    if let Some(name) = &request.policy {
        if app.limiter.policies().get(name).is_none() {
            return Err(ApiError {
                status: StatusCode::NOT_FOUND,
                message: format!("no policy named {name:?} is loaded"),
            });
        }
    }
    let only = request.policy.as_deref();
    let result = app.limiter.reset(&request.attributes, only).await;
    let targets = match &result {
        Ok(targets) => targets.clone(),
        // Forget here and elsewhere all the same: what could be cleared was.
        Err(_) => app
            .limiter
            .reset_targets(&request.attributes, only)
            .unwrap_or_default(),
    };
    if !targets.is_empty() {
        app.resets
            .announce(targets.iter().map(|t| t.key.clone()).collect());
        // Checks waiting here on those counters re-check at once.
        for target in &targets {
            app.waits.wake_all(&target.key);
        }
    }
    let cleared = names(targets.iter().map(|t| t.policy.clone()));
    tracing::info!(%peer, action = "reset", policies = %cleared, ok = result.is_ok(), "admin request");
    tracing::debug!(%peer, action = "reset", attributes = ?request.attributes, "admin request attributes");
    result?;
    #[derive(Serialize)]
    struct Body {
        reset: Vec<ResetEntry>,
        message: String,
    }
    let message = match (targets.len(), only) {
        (0, Some(name)) => {
            format!("policy {name:?} does not apply to these attributes: nothing was reset")
        }
        (0, None) => "no policy applies to these attributes: nothing was reset".to_string(),
        (n, _) => format!("reset {n} counter(s)"),
    };
    let reset = targets
        .into_iter()
        .map(|t| ResetEntry {
            policy: t.policy.to_string(),
            key: t.key,
        })
        .collect();
    Ok(json(StatusCode::OK, &Body { reset, message }))
}

#[derive(Debug, Serialize)]
struct TopKey {
    key: String,
    count: u64,
    lower: u64,
    upper: u64,
}

#[derive(Debug, Serialize)]
struct PolicyTop {
    policy: String,
    /// Denials of this policy seen in the window.
    denials: u64,
    /// No key's `upper - lower` exceeds it.
    error_bound: u64,
    top: Vec<TopKey>,
}

/// `GET /v1/admin/top?policy=NAME&n=10`: the keys each policy denied most
/// on this sidecar over the last minutes.
pub(super) fn top(
    app: &App,
    req: &Request<Incoming>,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    let shape = DenialTop::config();
    let asked = query::top(req.uri().query(), shape.capacity)?;
    let set = app.limiter.policies();
    let chosen: Vec<&Arc<Policy>> = match &asked.policy {
        Some(name) => vec![set.get(name).ok_or_else(|| ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no policy named {name:?} is loaded"),
        })?],
        None => set.iter().collect(),
    };
    let denials = app.limiter.denials();
    let policies: Vec<PolicyTop> = chosen
        .into_iter()
        .map(|p| {
            let report = denials.top(p.name(), asked.n);
            PolicyTop {
                policy: p.name().to_string(),
                denials: report.total,
                error_bound: report.error_bound,
                top: (report.entries.into_iter())
                    .map(|e| TopKey {
                        key: e.key,
                        count: e.count,
                        lower: e.lower,
                        upper: e.upper,
                    })
                    .collect(),
            }
        })
        .collect();
    tracing::info!(%peer, action = "top", policy = asked.policy.as_deref().unwrap_or("*"), "admin request");
    #[derive(Serialize)]
    struct Body {
        /// The window: between `(slots - 1) × slot` and `slots × slot`.
        window_s: u64,
        per_sidecar: bool,
        policies: Vec<PolicyTop>,
    }
    Ok(json(
        StatusCode::OK,
        &Body {
            window_s: shape.slots as u64 * shape.slot_us / 1_000_000,
            per_sidecar: true,
            policies,
        },
    ))
}
