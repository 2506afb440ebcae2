use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An RFC 9457 problem document, served as `application/problem+json`.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Field-level complaints for validation failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds after which repeating the request may succeed (`Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    /// JSON pointer-ish path, e.g. `items[1].quantity`.
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(status: StatusCode, problem_type: &str, title: &str, detail: impl Into<Option<String>>) -> Self {
        Self {
            problem_type: format!("https://checkout-saga.dev/problems/{problem_type}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    #[must_use]
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed-request", "Malformed request", detail.into())
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed", "The request is not valid", detail)
            .with_errors(errors)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail.into())
    }

    pub fn conflict(problem_type: &str, title: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, problem_type, title, detail.into())
    }

    pub fn unprocessable(problem_type: &str, title: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, problem_type, title, detail.into())
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Request body too large",
            format!("bodies are limited to {limit} bytes"),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as JSON with Content-Type: application/json".to_owned(),
        )
    }

    /// A server-side failure; details stay in the logs, not the response.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal server error", None)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable", detail.into())
    }

    /// A request that failed on the service's own storage, logged once:
    /// `503` with `Retry-After` while the database is unreachable, busy or
    /// read-only (the request is safe to repeat: every write is idempotent or
    /// keyed), `500` for anything else.
    pub fn storage(error: impl std::error::Error + 'static) -> Self {
        let error: &(dyn std::error::Error + 'static) = &error;
        let transient = std::iter::successors(Some(error), |e| e.source())
            .filter_map(|e| e.downcast_ref::<sqlx::Error>())
            .any(checkout_outbox::is_transient);
        if transient {
            tracing::warn!(%error, "database unavailable; answering 503");
            let mut problem = Self::unavailable("the service's database is unavailable; try again shortly".to_owned());
            problem.retry_after = Some(STORAGE_RETRY_AFTER_SECS);
            problem
        } else {
            tracing::error!(%error, "request failed");
            Self::internal()
        }
    }
}

/// What a client is told to wait before repeating a request that met an
/// unavailable database.
const STORAGE_RETRY_AFTER_SECS: u32 = 2;

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(&self)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}
