//! One error type for the HTTP edge: a status code and a JSON body with a
//! stable code and a message.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use prolo_query::QueryError;

use crate::answer::{ErrorAnswer, ErrorCode, ErrorDetail};

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or unknown bearer token.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The principal's role may not ask this.
    #[error("role {role} may not {query}")]
    Forbidden {
        /// The principal's role.
        role: String,
        /// The query refused.
        query: &'static str,
    },
    /// The principal's token does not cover this clinic.
    #[error("{principal} may not read clinic {clinic}")]
    ClinicForbidden {
        /// Who asked.
        principal: String,
        /// The clinic refused.
        clinic: String,
    },
    /// A parameter is not usable.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing matches.
    #[error("{0} not found")]
    NotFound(String),
    /// The read could not be recorded in the access log, so it is not served.
    #[error("the access could not be recorded, so the data is not served: {0}")]
    NotAudited(String),
    /// Anything else.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            ApiError::ClinicForbidden { .. } => (StatusCode::FORBIDDEN, ErrorCode::ClinicForbidden),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            ApiError::NotAudited(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::NotAudited),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }
}

impl ErrorCode {
    /// The code as answered, e.g. `clinic_forbidden`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::ClinicForbidden => "clinic_forbidden",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotAudited => "not_audited",
            ErrorCode::Internal => "internal",
        }
    }
}

/// On a 401 or 403 answer: its error code and message, for the access log
/// of refused requests (`access.refused`).
#[derive(Debug, Clone)]
pub struct Refused(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = ErrorAnswer {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            response
                .extensions_mut()
                .insert(Refused(format!("{}: {self}", code.as_str())));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<prolo_projector::store::StoreError> for ApiError {
    fn from(e: prolo_projector::store::StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::NotFound(what) => ApiError::NotFound(what),
            QueryError::BadRequest(why) => ApiError::BadRequest(why),
            QueryError::Store(e) => ApiError::Internal(e.to_string()),
        }
    }
}
