//! Test helpers for the integration tests: every test gets its own topics
//! (a unique prefix) and its own database, so tests run in parallel against
//! one broker and one Postgres server.
//!
//! Where things are: `TEST_KAFKA_BOOTSTRAP_SERVERS` (default
//! `127.0.0.1:9092`) and `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, used to create and drop the
//! per-test databases).
//!
//! Helpers panic on failure: in a test, that is the failure report.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers fail by panicking")]

mod database;
mod infrastructure;
mod kafka;
mod otlp;
mod poll;
mod smtp;

pub use database::TestDatabase;
pub use infrastructure::{LocalBroker, LocalPostgres};
pub use kafka::{TestKafka, header};
pub use otlp::{CollectedSpan, OtlpReceiver};
pub use poll::eventually;
pub use smtp::{ReceivedMail, SmtpSink};

/// A short random id for naming per-test resources.
pub fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A record as the consumer runtime would hand it to a handler.
pub fn incoming(envelope: checkout_messages::Envelope) -> checkout_kafka::Incoming {
    let wire_version = envelope.payload.message_type().current_version();
    checkout_kafka::Incoming {
        envelope,
        wire_version,
        position: checkout_kafka::RecordPosition { topic: "test".into(), partition: 0, offset: 0 },
        headers: checkout_kafka::RecordHeaders::new(),
        attempt: 1,
        span: tracing::Span::none(),
    }
}

/// Every message in a service's outbox, oldest first, decoded.
pub async fn outbox(pool: &sqlx::PgPool) -> Vec<checkout_messages::Envelope> {
    let payloads: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM outbox_messages ORDER BY position").fetch_all(pool).await.unwrap();
    payloads.iter().map(|bytes| checkout_messages::decode(bytes).unwrap().envelope).collect()
}
