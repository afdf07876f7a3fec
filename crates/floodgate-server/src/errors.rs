//! The one place where errors become HTTP statuses and gRPC codes.

use floodgate_store::LimitError;
use http::StatusCode;

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

impl From<LimitError> for ApiError {
    fn from(error: LimitError) -> Self {
        let status = if error.is_invalid_input() {
            StatusCode::BAD_REQUEST
        } else if error.is_conflict() {
            StatusCode::CONFLICT
        } else {
            tracing::warn!(%error, "check failed");
            StatusCode::SERVICE_UNAVAILABLE
        };
        ApiError {
            status,
            message: error.to_string(),
        }
    }
}

/// A limiter error as a gRPC status.
pub fn to_status(error: LimitError) -> tonic::Status {
    if error.is_invalid_input() {
        tonic::Status::invalid_argument(error.to_string())
    } else if error.is_conflict() {
        tonic::Status::failed_precondition(error.to_string())
    } else {
        tracing::warn!(%error, "check failed");
        tonic::Status::unavailable(error.to_string())
    }
}
