//! One error type for the HTTP API: a user-facing kind mapped to a status, and a message that says
//! what was wrong. Internal failures are logged in full and answered with a generic 500 message.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use ncf_shared::federation::ErrorBody;

/// The kinds are the federation contract's error codes, so a node reads back exactly what the
/// server meant.
pub use ncf_shared::contract::ErrorCode as ErrorKind;

/// The HTTP status of each kind.
fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden | ErrorKind::NodeRevoked => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::NoMatch | ErrorKind::ClaimsMismatch | ErrorKind::LicenceNotActive => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ErrorKind::AttemptsExhausted => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal | ErrorKind::Other => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub message: String,
    pub mismatched: Vec<String>,
}

impl AppError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), mismatched: Vec::new() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, message)
    }
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(ErrorKind::Internal, "internal error; the operator has been told in the server log")
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        if ncf_shared::db::MaybeBusy::is_busy(&e) {
            return Self::new(ErrorKind::Unavailable, BUSY_MESSAGE);
        }
        Self::internal("database error", e)
    }
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        tracing::error!(error = %e, "no database connection");
        Self::new(ErrorKind::Unavailable, "the database is not reachable; try again shortly")
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::internal("blocking task failed", e)
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        status(self.kind)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorBody {
            error: self.kind,
            message: self.message.clone(),
            mismatched: self.mismatched.clone(),
        })
    }
}

impl ncf_shared::db::MaybeBusy for AppError {
    fn is_busy(&self) -> bool {
        // `From<diesel::result::Error>` turns SQLite's "database is locked" into this one error.
        self.kind == ErrorKind::Unavailable && self.message == BUSY_MESSAGE
    }
}

const BUSY_MESSAGE: &str = "the database is busy; try again shortly";
