//! Reading request bodies with a hard size cap (413 over 64 KiB; docs/api.md, "Input limits").

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::Body as _;
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
    let mut body = Limited::new(req.into_body(), MAX_BODY);
    // A small body comes in one frame, handed on as it is; only a second
    // frame makes a buffer to join them in.
    let (mut whole, mut joined) = (Bytes::new(), None::<BytesMut>);
    // The body's end known from its length: no poll to hear it again.
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(unreadable)?.into_data() else {
            continue; // trailers
        };
        let end = body.is_end_stream();
        match &mut joined {
            Some(buffer) => buffer.extend_from_slice(&data),
            None if whole.is_empty() => whole = data,
            None => {
                let mut buffer = BytesMut::from(&whole[..]);
                buffer.extend_from_slice(&data);
                joined = Some(buffer);
            }
        }
        if end {
            break;
        }
    }
    Ok(joined.map_or(whole, BytesMut::freeze))
}

/// 413 for a body over the cap, 400 for one that could not be read.
fn unreadable(error: Box<dyn std::error::Error + Send + Sync>) -> ApiError {
    if error.is::<http_body_util::LengthLimitError>() {
        return too_large();
    }
    ApiError::bad_request(format!("could not read the request body: {error}"))
}
