use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::TraceContextExt;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// One server span per request (joining the caller's trace when it sends a
/// `traceparent`), a `traceparent` response header so callers can find the
/// trace, and request count and latency metrics by route and status.
pub async fn trace_and_measure(request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = Empty,
    );
    let parent = caller_trace_context(request.headers());
    let _ = span.set_parent(parent);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;

    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        let traceparent = format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        );
        if let Ok(value) = traceparent.parse() {
            response.headers_mut().insert("traceparent", value);
        }
    }
    let labels = [("method", method), ("route", route), ("status", status.as_u16().to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// The caller's W3C trace context, via the globally installed propagator.
fn caller_trace_context(headers: &axum::http::HeaderMap) -> opentelemetry::Context {
    struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);
    impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|value| value.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(axum::http::HeaderName::as_str).collect()
        }
    }
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)))
}

/// Bodies larger than this are not read at all before refusing them.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// Refuses a request whose declared length exceeds the body limit with a 413
/// problem, after reading and discarding what the client sends (up to 1 MiB).
/// Answering before the body is read would close the connection under a
/// client still sending, which then sees a reset instead of the answer.
pub async fn refuse_oversized(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    match declared {
        Some(length) if length > super::MAX_BODY_BYTES => {
            if length <= DRAIN_LIMIT {
                let _ = axum::body::to_bytes(request.into_body(), DRAIN_LIMIT).await;
            }
            axum::response::IntoResponse::into_response(super::Problem::payload_too_large(super::MAX_BODY_BYTES))
        }
        _ => next.run(request).await,
    }
}
