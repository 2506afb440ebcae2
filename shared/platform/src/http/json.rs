use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::{MAX_BODY_BYTES, Problem};

/// `axum::Json`, but a body that cannot be read as `T` is answered with a
/// problem document: 400 for broken JSON, 415 for a wrong content type, 413
/// for an oversized body, 422 for JSON of the wrong shape (with serde's
/// description of what is wrong).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(problem_for(&rejection)),
        }
    }
}

fn problem_for(rejection: &JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonSyntaxError(e) => Problem::bad_request(format!("malformed JSON: {}", source_text(e))),
        JsonRejection::JsonDataError(e) => {
            Problem::unprocessable("invalid-body", "The request body does not have the expected shape", source_text(e))
        }
        JsonRejection::MissingJsonContentType(_) => Problem::unsupported_media_type(),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::payload_too_large(MAX_BODY_BYTES)
        }
        other => Problem::bad_request(other.body_text()),
    }
}

/// The innermost error message (serde's, with line and column), without axum's prefix.
fn source_text(error: &dyn std::error::Error) -> String {
    let mut innermost = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        innermost = cause.to_string();
        source = cause.source();
    }
    innermost
}
