//! What a service records before anything scrapes it is not lost.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use checkout_platform::http::{Readiness, service_router};
use checkout_platform::metrics::Collectors;
use http_body_util::BodyExt;
use tower::ServiceExt;

#[tokio::test]
async fn a_metric_recorded_after_the_router_is_built_and_before_the_first_scrape_is_exported() {
    let app = service_router(Router::new(), Readiness::new(), Collectors::new());
    metrics::counter!("checkout_recorded_before_scrape_total").increment(3);
    let response = app.oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.contains("checkout_recorded_before_scrape_total 3"), "not exported:\n{text}");
}
