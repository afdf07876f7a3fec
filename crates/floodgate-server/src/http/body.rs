//! Reading request bodies with a hard size cap (413 over 64 KiB; docs/api.md, "Input limits").

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::Request;

use crate::errors::ApiError;

/// Largest request body accepted: 64 KiB.
pub const MAX_BODY: usize = 64 * 1024;

fn too_large() -> ApiError {
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("request body is larger than {MAX_BODY} bytes"),
    }
}

/// Reads the whole body, refusing more than `MAX_BODY` bytes (64 KiB) before
/// buffering them.
///
/// # Errors
/// 413 when the body is too large, 400 when it cannot be read.
pub async fn read(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(error) => Err(ApiError::bad_request(format!(
            "could not read the request body: {error}"
        ))),
    }
}
