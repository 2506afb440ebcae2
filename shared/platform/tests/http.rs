//! Every way a request can be wrong is answered with a problem document.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::post;
use checkout_platform::http::{ApiJson, MAX_BODY_BYTES, Readiness, ReadinessCheck, service_router};
use checkout_platform::metrics::Collectors;
use http_body_util::BodyExt;
use serde::Deserialize;
use tower::ServiceExt;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "only deserialized")]
struct Greeting {
    name: String,
}

fn app(readiness: Readiness) -> Router {
    service_router(
        Router::new().route("/greet", post(|ApiJson(_): ApiJson<Greeting>| async { "hi" })),
        readiness,
        Collectors::new(),
    )
}

async fn call(app: Router, request: Request<Body>) -> (StatusCode, Option<String>, serde_json::Value) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

fn post_json(body: impl Into<Body>) -> Request<Body> {
    Request::post("/greet").header(header::CONTENT_TYPE, "application/json").body(body.into()).unwrap()
}

#[tokio::test]
async fn each_kind_of_bad_body_gets_its_own_problem() {
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (post_json("{not json"), StatusCode::BAD_REQUEST, "malformed-request"),
        (post_json(r#"{"name": 42}"#), StatusCode::UNPROCESSABLE_ENTITY, "invalid-body"),
        (post_json("{}"), StatusCode::UNPROCESSABLE_ENTITY, "invalid-body"),
        (post_json(r#"{"name": "a", "extra": 1}"#), StatusCode::UNPROCESSABLE_ENTITY, "invalid-body"),
        (
            Request::post("/greet").header(header::CONTENT_TYPE, "text/plain").body(Body::from("{}")).unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (post_json(vec![b' '; MAX_BODY_BYTES + 1]), StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
        (Request::get("/nowhere").body(Body::empty()).unwrap(), StatusCode::NOT_FOUND, "not-found"),
    ];
    for (request, status, problem_type) in cases {
        let (got, content_type, body) = call(app(Readiness::new()), request).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        assert_eq!(body["type"], format!("https://checkout-saga.dev/problems/{problem_type}"));
        assert_eq!(body["status"], status.as_u16());
    }
}

#[tokio::test]
async fn a_missing_field_is_named_in_the_detail() {
    let (_, _, body) = call(app(Readiness::new()), post_json("{}")).await;
    assert!(body["detail"].as_str().unwrap().contains("missing field `name`"), "{body}");
}

#[tokio::test]
async fn readiness_reports_each_check_and_fails_until_all_pass() {
    let consumer = checkout_kafka::ConsumerStatus::default();
    let readiness = Readiness::new().with(ReadinessCheck::Consumer("orders".into(), consumer));
    let (status, _, body) = call(app(readiness), Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unavailable");
    assert!(body["checks"]["consumer:orders"].as_str().unwrap().contains("not yet"));

    let (status, _, body) = call(app(Readiness::new()), Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
}

#[tokio::test]
async fn readiness_fails_while_the_consumer_cannot_reach_the_broker_or_its_client_is_silent() {
    let consumer = checkout_kafka::ConsumerStatus::default();
    consumer.set_assigned(3);
    let readiness = Readiness::new().with(ReadinessCheck::Consumer("orders".into(), consumer.clone()));
    let readyz = || Request::get("/readyz").body(Body::empty()).unwrap();
    let now = std::time::Instant::now();
    consumer.record_broker_connections(1, 1, now);
    let (status, _, body) = call(app(readiness.clone()), readyz()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    consumer.record_broker_connections(0, 1, now);
    let (status, _, body) = call(app(readiness.clone()), readyz()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["checks"]["consumer:orders"].as_str().unwrap().contains("broker unreachable"), "{body}");

    let long_ago = now.checked_sub(std::time::Duration::from_secs(30)).unwrap();
    consumer.record_broker_connections(1, 1, long_ago);
    let (status, _, body) = call(app(readiness), readyz()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["checks"]["consumer:orders"].as_str().unwrap().contains("no report from the Kafka client"), "{body}");
}

#[tokio::test]
async fn readiness_fails_while_an_outbox_message_waits_too_long_to_be_published() {
    let db = checkout_testkit::TestDatabase::create(&[&checkout_outbox::MIGRATOR]).await;
    let readiness = Readiness::new().with(ReadinessCheck::Outbox(db.pool.clone(), std::time::Duration::from_secs(30)));
    let readyz = || Request::get("/readyz").body(Body::empty()).unwrap();
    let (status, _, _) = call(app(readiness.clone()), readyz()).await;
    assert_eq!(status, StatusCode::OK, "an empty outbox is fine");

    sqlx::query(
        "INSERT INTO outbox_messages (message_id, topic, message_key, payload, headers, created_at)
         VALUES (gen_random_uuid(), 'order.events', 'k', '\\x00', '{}', now() - interval '45 seconds')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let (status, _, body) = call(app(readiness.clone()), readyz()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["checks"]["outbox"].as_str().unwrap().contains("45 s old"), "{body}");

    sqlx::query("UPDATE outbox_messages SET published_at = now()").execute(&db.pool).await.unwrap();
    let (status, _, _) = call(app(readiness), readyz()).await;
    assert_eq!(status, StatusCode::OK, "ready again once published");
}
