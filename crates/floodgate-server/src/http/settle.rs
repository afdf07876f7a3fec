//! `POST /v1/settle`: settles a reservation made by `/v1/check` with
//! `"reserve": true`, with the call's actual cost.
//!
//! 200 `{"settled": true, "estimate", "actual", "charged"}` (`charged` =
//! actual − estimate; negative was given back); 400 for a malformed or
//! forged id, a missing or non-integer `actual`, or one above the hits cap;
//! 409 for an id already settled or expired. Nothing changes on an error.

use http::StatusCode;
use hyper::body::Incoming;
use hyper::Request;
use serde::{Deserialize, Serialize};

use super::body;
use super::routes::{json, parse, HttpResponse};
use crate::app::App;
use crate::errors::ApiError;

/// The body of `POST /v1/settle`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettleRequest {
    /// The id `/v1/check` returned as `settlement`.
    settlement: String,
    /// The actual cost.
    actual: u64,
}

/// The answer to a settle.
#[derive(Debug, Serialize)]
struct SettleBody {
    /// Always true (errors have their own statuses).
    settled: bool,
    /// The cost the check reserved.
    estimate: u64,
    /// The actual cost.
    actual: u64,
    /// `actual − estimate`: charged when positive, given back when negative.
    charged: i64,
}

/// Handles `POST /v1/settle`.
pub(super) async fn settle(app: &App, req: Request<Incoming>) -> Result<HttpResponse, ApiError> {
    let bytes = body::read(req).await?;
    let request: SettleRequest = parse(&bytes)?;
    let done = app
        .limiter
        .settle(&request.settlement, request.actual)
        .await?;
    Ok(json(
        StatusCode::OK,
        &SettleBody {
            settled: true,
            estimate: done.estimate,
            actual: done.actual,
            charged: done.charged(),
        },
    ))
}
