//! Each message of a batch applied in one transaction sends its replies in
//! its own trace. In a file (a process) of its own: the test installs a
//! tracing subscriber for its thread, and tracing caches whether a span is
//! wanted per call site for the whole process, so a test on another thread
//! that reaches the same call sites first, with no subscriber, can turn
//! this test's spans off.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use checkout_kafka::{HandlerError, Incoming};
use checkout_outbox::{Apply, UnitOfWork, apply_all, caused_by};
use checkout_testkit::incoming;
use common::{database, new_order, numbered};
use sqlx::PgPool;
use time::OffsetDateTime;
use tracing::Instrument;

/// Answers each message with one of its own.
struct Echo {
    pool: PgPool,
}

impl Apply for Echo {
    type Committed = ();
    type Batch = ();

    const CONSUMER: &'static str = "echo";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn apply(
        &self,
        work: &mut UnitOfWork,
        (): &mut (),
        message: &Incoming,
        now: OffsetDateTime,
    ) -> Result<(), HandlerError> {
        let reply = numbered(message.envelope.subject, 100).payload;
        work.send(caused_by(&message.envelope, &checkout_messages::Source::service("echo"), now, reply));
        Ok(())
    }
}

#[tokio::test]
async fn what_each_message_of_a_batch_sends_continues_that_messages_trace() {
    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);
    let trace_of = |span: &tracing::Span| span.context().span().span_context().trace_id().to_string();
    let span_of = |span: &tracing::Span| span.context().span().span_context().span_id().to_string();

    let db = database().await;
    let echo = Echo { pool: db.pool.clone() };
    // Each record is processed in a span of its own trace (its checkout's).
    let batch: Vec<Incoming> = (0..3)
        .map(|_| Incoming { span: tracing::info_span!("process record"), ..incoming(numbered(new_order(), 1)) })
        .collect();
    let mut expected: Vec<(uuid::Uuid, String)> =
        batch.iter().map(|m| (*m.envelope.subject.as_uuid(), trace_of(&m.span))).collect();
    expected.sort();
    assert_eq!(expected.iter().map(|(_, t)| t).collect::<std::collections::HashSet<_>>().len(), 3);
    let record_spans: Vec<String> = batch.iter().map(|m| span_of(&m.span)).collect();

    apply_all(&echo, &batch, OffsetDateTime::now_utc()).instrument(tracing::info_span!("batch")).await.unwrap();

    let stored: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT message_key, headers FROM outbox_messages").fetch_all(&db.pool).await.unwrap();
    let mut sent: Vec<(uuid::Uuid, String)> = Vec::new();
    for (key, headers) in &stored {
        let parts: Vec<&str> = headers["traceparent"].as_str().unwrap().split('-').collect();
        assert!(
            !record_spans.iter().any(|span| span == parts[2]),
            "a reply continues its message's part of the transaction, a span of its own, not the record's span"
        );
        sent.push((key.parse().unwrap(), parts[1].to_owned()));
    }
    sent.sort();
    assert_eq!(sent, expected, "each reply carries the trace of the record that caused it, not the batch's");
}
