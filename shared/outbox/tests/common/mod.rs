//! A consumer whose effect is a counter per order, made exactly-once by the inbox.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use checkout_domain::OrderId;
use checkout_kafka::{ConsumerRuntime, ConsumerSettings, Handler, HandlerError, Incoming, RetryPolicy};
use checkout_messages::payloads::saga::{SagaStepName, SagaStepRecorded, StepOutcome};
use checkout_messages::{Envelope, Message, MessageId, Source, Topic};
use checkout_outbox::{Claim, claim, handler_error};
use checkout_testkit::{TestDatabase, TestKafka, eventually};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const TOPIC: Topic = Topic::OrchestratorEvents;

pub async fn database() -> TestDatabase {
    let db = TestDatabase::create(&[&checkout_outbox::MIGRATOR]).await;
    sqlx::raw_sql(
        "CREATE TABLE effects (order_id UUID PRIMARY KEY, applied INT NOT NULL, last_seq INT NOT NULL);
         CREATE TABLE observed (message_id UUID NOT NULL)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    db
}

pub fn numbered(order: OrderId, seq: u32) -> Envelope {
    let payload = SagaStepRecorded {
        earlier: Vec::new(),
        at: None,
        finished: false,
        step: SagaStepName::ReserveInventory,
        outcome: StepOutcome::Started,
        attempt: seq,
        detail: None,
    };
    Envelope::first(
        MessageId::from_uuid(Uuid::now_v7()),
        Source::service("test"),
        order,
        time::OffsetDateTime::now_utc(),
        Message::from(payload),
    )
}

pub fn new_order() -> OrderId {
    OrderId::from_uuid(Uuid::now_v7())
}

/// Adds `envelopes` to the outbox in one committed transaction.
pub async fn commit_to_outbox(pool: &PgPool, envelopes: &[Envelope]) {
    let mut tx = pool.begin().await.unwrap();
    for envelope in envelopes {
        checkout_outbox::enqueue(&mut tx, envelope).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Applies each message once: `applied` counts messages per order.
#[derive(Clone)]
pub struct Counter {
    pub pool: PgPool,
    pub deliveries: Arc<AtomicUsize>,
    pub duplicates: Arc<AtomicUsize>,
}

impl Counter {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, deliveries: Arc::default(), duplicates: Arc::default() }
    }

    pub fn deliveries(&self) -> usize {
        self.deliveries.load(Ordering::SeqCst)
    }

    pub fn duplicates(&self) -> usize {
        self.duplicates.load(Ordering::SeqCst)
    }

    pub async fn total_applied(&self) -> i64 {
        sqlx::query_scalar::<_, Option<i64>>("SELECT SUM(applied)::BIGINT FROM effects")
            .fetch_one(&self.pool)
            .await
            .unwrap()
            .unwrap_or(0)
    }
}

impl Handler for Counter {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        self.deliveries.fetch_add(1, Ordering::SeqCst);
        let Message::SagaStepRecorded(step) = &message.envelope.payload else {
            return Err(HandlerError::permanent("unexpected message"));
        };
        let mut tx = self.pool.begin().await.map_err(handler_error)?;
        if claim(&mut tx, "counter", &message.envelope).await.map_err(handler_error)? == Claim::Duplicate {
            self.duplicates.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO effects (order_id, applied, last_seq) VALUES ($1, 1, $2)
             ON CONFLICT (order_id) DO UPDATE SET applied = effects.applied + 1, last_seq = $2",
        )
        .bind(message.envelope.subject.as_uuid())
        .bind(i32::try_from(step.attempt).unwrap())
        .execute(&mut *tx)
        .await
        .map_err(handler_error)?;
        tx.commit().await.map_err(handler_error)?;
        Ok(())
    }
}

/// Runs `handler` as a consumer group member until the returned token is cancelled.
pub async fn consume(kafka: &TestKafka, handler: Counter) -> CancellationToken {
    let retry = RetryPolicy { initial_backoff: Duration::from_millis(20), ..RetryPolicy::default() };
    let settings = ConsumerSettings { retry, ..ConsumerSettings::new("counter", [TOPIC]) };
    let runtime = ConsumerRuntime::new(&kafka.settings, settings, kafka.publisher(), handler).unwrap();
    let status = runtime.status();
    let shutdown = CancellationToken::new();
    tokio::spawn(runtime.run(shutdown.clone()));
    eventually(Duration::from_secs(30), "the consumer to join its group", || {
        let status = status.clone();
        async move { status.joined().then_some(()) }
    })
    .await;
    shutdown
}

pub async fn unpublished(pool: &PgPool) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox_messages WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap()
}
