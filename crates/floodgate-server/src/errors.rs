//! The one place where errors become answers: an HTTP status with the JSON
//! body `{"error": ...}`, or a gRPC status.

use bytes::Bytes;
use floodgate_store::LimitError;
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::render::error_json;

/// An HTTP error answer: a status and a reason for the JSON body.
#[derive(Debug)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// What went wrong, for the caller.
    pub message: String,
}

impl ApiError {
    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

/// Who a limiter error is down to, for its HTTP status and gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Malformed input: 400 / INVALID_ARGUMENT.
    Input,
    /// Well formed but at odds with the state: 409 / FAILED_PRECONDITION.
    Conflict,
    /// The service could not decide: 503 / UNAVAILABLE (logged).
    Service,
}

impl Fault {
    fn of(error: &LimitError) -> Self {
        if error.is_invalid_input() {
            Fault::Input
        } else if error.is_conflict() {
            Fault::Conflict
        } else {
            tracing::warn!(%error, "check failed");
            Fault::Service
        }
    }
}

impl From<LimitError> for ApiError {
    fn from(error: LimitError) -> Self {
        let status = match Fault::of(&error) {
            Fault::Input => StatusCode::BAD_REQUEST,
            Fault::Conflict => StatusCode::CONFLICT,
            Fault::Service => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError {
            status,
            message: error.to_string(),
        }
    }
}

/// A limiter error as a gRPC status.
pub fn to_status(error: LimitError) -> tonic::Status {
    let code = match Fault::of(&error) {
        Fault::Input => tonic::Code::InvalidArgument,
        Fault::Conflict => tonic::Code::FailedPrecondition,
        Fault::Service => tonic::Code::Unavailable,
    };
    tonic::Status::new(code, error.to_string())
}

/// `error` as a JSON `{"error": ...}` response with its status.
pub fn error_response(error: ApiError) -> Response<Full<Bytes>> {
    json_response(error.status, error_json(&error.message))
}

/// A JSON response: `body` with `status`.
pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_core::AttributeError;

    #[test]
    fn one_fault_gives_the_status_and_the_code() {
        let bad = || LimitError::InvalidAttributes(AttributeError::TooManyHits(u64::MAX));
        assert_eq!(ApiError::from(bad()).status, StatusCode::BAD_REQUEST);
        assert_eq!(to_status(bad()).code(), tonic::Code::InvalidArgument);
        let response = error_response(ApiError::bad_request("no \"x\""));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["content-type"], "application/json");
    }
}
