//! What a request that fails answers: a status code and a message, as JSON `{"error": …}` for the
//! API and as a page for people. Engine errors map to codes here, in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drover_engine::run::RunError;
use drover_engine::store::StoreError;

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    /// The answer's status.
    pub status: StatusCode,
    /// What went wrong, for the person or program that asked.
    pub message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    /// 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

/// The status of every kind of journal error.
fn store_status(e: &StoreError) -> StatusCode {
    match e {
        StoreError::NotFound(_) => StatusCode::NOT_FOUND,
        StoreError::Conflict(_) | StoreError::Fenced { .. } | StoreError::Locked { .. } => {
            StatusCode::CONFLICT
        }
        StoreError::ReadOnly { .. } => StatusCode::FORBIDDEN,
        StoreError::Unreachable { .. } | StoreError::WriterGone => StatusCode::SERVICE_UNAVAILABLE,
        StoreError::Corrupt { .. }
        | StoreError::Missing { .. }
        | StoreError::Empty { .. }
        | StoreError::Damaged { .. }
        | StoreError::NewerSchema { .. }
        | StoreError::Full { .. }
        | StoreError::Other { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::new(store_status(&e), e.to_string())
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> ApiError {
        let status = match &e {
            RunError::Store(store) => store_status(store),
            RunError::NotApprover { .. } => StatusCode::FORBIDDEN,
            RunError::Operator(_) | RunError::LeaseHeld { .. } | RunError::LeaseLost { .. } => {
                StatusCode::CONFLICT
            }
            RunError::Params(_) => StatusCode::BAD_REQUEST,
            RunError::Registry(_) | RunError::Plugin(_) | RunError::Definition { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, "{}", self.message);
        }
        (self.status, axum::Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}
