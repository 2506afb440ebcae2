//! The outbox row keeps the writer's trace context, and publishing continues
//! that trace with a producer span whose context the record carries.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use checkout_kafka::header_names;
use checkout_outbox::{OutboxRelay, RelaySettings};
use checkout_testkit::{TestKafka, header};
use common::{TOPIC, database, new_order, numbered};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// `00-<trace id>-<span id>-<flags>`
fn ids(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    (parts[1].to_owned(), parts[2].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_continues_the_trace_of_the_transaction_that_wrote_the_row() {
    let provider = SdkTracerProvider::builder().build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let db = database().await;
    let kafka = TestKafka::with_topics(&[TOPIC], 1).await;
    let span = tracing::info_span!("checkout request");
    let writer_trace = span.context().span().span_context().trace_id().to_string();
    let writer_span = span.context().span().span_context().span_id().to_string();
    async {
        let mut tx = db.pool.begin().await.unwrap();
        checkout_outbox::enqueue(&mut tx, &numbered(new_order(), 1)).await.unwrap();
        tx.commit().await.unwrap();
    }
    .instrument(span)
    .await;

    let stored: serde_json::Value =
        sqlx::query_scalar("SELECT headers FROM outbox_messages").fetch_one(&db.pool).await.unwrap();
    let (stored_trace, stored_span) = ids(stored["traceparent"].as_str().unwrap());
    assert_eq!((stored_trace.as_str(), stored_span.as_str()), (writer_trace.as_str(), writer_span.as_str()));

    let relay = OutboxRelay::new(db.pool.clone(), kafka.publisher(), kafka.names(), RelaySettings::default());
    relay.drain().await.unwrap();
    let record = &kafka.read(&kafka.names().physical(TOPIC), 1, Duration::from_secs(10)).await[0];
    let (published_trace, published_span) = ids(header(record, header_names::TRACEPARENT).unwrap());
    assert_eq!(published_trace, writer_trace, "the record continues the writer's trace");
    assert_ne!(published_span, writer_span, "its parent is the relay's producer span, not the writer's span");
}
