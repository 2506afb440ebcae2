//! HTTP conventions shared by every service: problem+json errors, a JSON body
//! extractor whose rejections are problems too, request spans that join the
//! caller's trace, request metrics, and the health endpoints.

mod health;
mod json;
mod middleware;
mod operator;
mod path;
mod problem;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::metrics::Collectors;

pub use health::{Readiness, ReadinessCheck, health_routes};
pub use json::ApiJson;
pub use operator::{Operator, OperatorTokens, Unauthorized};
pub use path::OrderIdPath;
pub use problem::{FieldError, Problem};

/// Largest request body any service accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Wraps a service's routes with the health endpoints and the shared layers.
pub fn service_router(routes: Router, readiness: Readiness, collectors: Collectors) -> Router {
    routes
        .merge(health_routes(readiness, collectors))
        .fallback(|| async { Problem::not_found("no such resource") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(middleware::refuse_oversized))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("request handler panicked");
            axum::response::IntoResponse::into_response(Problem::internal())
        }))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(30)))
        .layer(axum::middleware::from_fn(middleware::trace_and_measure))
}
