//! `apply_one` and `apply_all`: one message or a whole batch in one
//! transaction, each message claimed once, all of it or nothing durable.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use checkout_kafka::{HandlerError, Incoming};
use checkout_messages::Message;
use checkout_outbox::{Apply, Committed, UnitOfWork, apply_all, apply_one, caused_by};
use checkout_testkit::incoming;
use common::{database, new_order, numbered};
use sqlx::PgPool;
use time::OffsetDateTime;

/// Counts each step report per order, answers each with a report of its
/// own, and refuses attempt 0 (a message that can never be applied); notes
/// every delivery, a duplicate's too, in `observed`.
#[derive(Clone)]
struct Steps {
    pool: PgPool,
    /// Incremented only after a commit, once per message applied.
    counted: Arc<AtomicUsize>,
}

struct Count(Arc<AtomicUsize>);

impl Committed for Count {
    fn done(self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Apply for Steps {
    type Committed = Count;
    type Batch = ();

    const CONSUMER: &'static str = "steps";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn apply(
        &self,
        work: &mut UnitOfWork,
        (): &mut (),
        message: &Incoming,
        now: OffsetDateTime,
    ) -> Result<Count, HandlerError> {
        let Message::SagaStepRecorded(step) = &message.envelope.payload else {
            return Err(HandlerError::permanent("unexpected message"));
        };
        if step.attempt == 0 {
            return Err(HandlerError::permanent("attempt 0 cannot be applied"));
        }
        sqlx::query(
            "INSERT INTO effects (order_id, applied, last_seq) VALUES ($1, 1, $2)
             ON CONFLICT (order_id) DO UPDATE SET applied = effects.applied + 1, last_seq = $2",
        )
        .bind(message.envelope.subject.as_uuid())
        .bind(i32::try_from(step.attempt).unwrap())
        .execute(work.conn())
        .await
        .map_err(checkout_outbox::handler_error)?;
        let reply = numbered(message.envelope.subject, step.attempt + 100).payload;
        work.send(caused_by(&message.envelope, &checkout_messages::Source::service("steps"), now, reply));
        Ok(Count(Arc::clone(&self.counted)))
    }

    async fn observe(
        &self,
        work: &mut UnitOfWork,
        messages: &[&Incoming],
        _: OffsetDateTime,
    ) -> Result<(), HandlerError> {
        for message in messages {
            sqlx::query("INSERT INTO observed (message_id) VALUES ($1)")
                .bind(message.envelope.id.as_uuid())
                .execute(work.conn())
                .await
                .map_err(checkout_outbox::handler_error)?;
        }
        Ok(())
    }
}

async fn effects(pool: &PgPool) -> Vec<(uuid::Uuid, i32, i32)> {
    sqlx::query_as("SELECT order_id, applied, last_seq FROM effects ORDER BY order_id").fetch_all(pool).await.unwrap()
}

async fn rows(pool: &PgPool, table: &'static str) -> i64 {
    let sql = match table {
        "inbox_messages" => "SELECT count(*) FROM inbox_messages",
        "outbox_messages" => "SELECT count(*) FROM outbox_messages",
        "observed" => "SELECT count(*) FROM observed",
        other => panic!("no count for {other}"),
    };
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn a_batch_applies_each_message_once_in_order_with_one_commit() {
    let db = database().await;
    let steps = Steps { pool: db.pool.clone(), counted: Arc::default() };
    let (a, b) = (new_order(), new_order());
    let batch: Vec<Incoming> =
        [numbered(a, 1), numbered(b, 1), numbered(a, 2), numbered(a, 3)].into_iter().map(incoming).collect();

    apply_all(&steps, &batch, OffsetDateTime::now_utc()).await.unwrap();

    assert_eq!(writers(&db.pool).await, 1, "the whole batch is one transaction");
    let mut expected = vec![(*a.as_uuid(), 3, 3), (*b.as_uuid(), 1, 1)];
    expected.sort();
    assert_eq!(effects(&db.pool).await, expected, "each order's messages applied once each, in the batch's order");
    assert_eq!(rows(&db.pool, "outbox_messages").await, 4, "every reply is in the outbox");
    assert_eq!(rows(&db.pool, "inbox_messages").await, 4);
    assert_eq!(steps.counted.load(Ordering::SeqCst), 4, "each applied message is counted after the commit");
    assert_eq!(rows(&db.pool, "observed").await, 4, "each delivery is observed, in the same transaction");

    // Delivered again, with one new message among them: only that one applies.
    let mut again: Vec<Incoming> = batch.iter().map(|m| incoming(m.envelope.clone())).collect();
    again.push(incoming(numbered(b, 2)));
    apply_all(&steps, &again, OffsetDateTime::now_utc()).await.unwrap();
    expected = vec![(*a.as_uuid(), 3, 3), (*b.as_uuid(), 2, 2)];
    expected.sort();
    assert_eq!(effects(&db.pool).await, expected);
    assert_eq!(rows(&db.pool, "outbox_messages").await, 5, "duplicates send nothing");
    assert_eq!(steps.counted.load(Ordering::SeqCst), 5, "duplicates are not counted");
    assert_eq!(rows(&db.pool, "observed").await, 9, "but every delivery is observed, a duplicate's too");

    // One at a time, a duplicate is observed as well, and applies nothing.
    apply_one(&steps, &incoming(batch[0].envelope.clone()), OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(rows(&db.pool, "observed").await, 10);
    assert_eq!(effects(&db.pool).await, expected);
}

#[tokio::test]
async fn a_message_twice_in_one_batch_applies_once_and_is_observed_twice() {
    let db = database().await;
    let steps = Steps { pool: db.pool.clone(), counted: Arc::default() };
    let a = new_order();
    // A relay that published a message again after a crash can put both
    // copies in one batch: they are claimed in one statement.
    let message = numbered(a, 1);
    let batch: Vec<Incoming> = [message.clone(), numbered(a, 2), message].into_iter().map(incoming).collect();

    apply_all(&steps, &batch, OffsetDateTime::now_utc()).await.unwrap();

    assert_eq!(effects(&db.pool).await, [(*a.as_uuid(), 2, 2)], "the copy applies nothing");
    assert_eq!(rows(&db.pool, "inbox_messages").await, 2);
    assert_eq!(rows(&db.pool, "outbox_messages").await, 2, "the copy sends nothing");
    assert_eq!(steps.counted.load(Ordering::SeqCst), 2);
    assert_eq!(rows(&db.pool, "observed").await, 3, "every delivery is observed, the copy's too");
}

#[tokio::test]
async fn a_message_that_fails_leaves_nothing_of_its_batch_and_the_rest_applies_one_by_one() {
    let db = database().await;
    let steps = Steps { pool: db.pool.clone(), counted: Arc::default() };
    let (a, b) = (new_order(), new_order());
    let batch: Vec<Incoming> = [numbered(a, 1), numbered(b, 0), numbered(a, 2)].into_iter().map(incoming).collect();

    let failed = apply_all(&steps, &batch, OffsetDateTime::now_utc()).await;

    assert!(matches!(failed, Err(HandlerError::Permanent(_))), "{failed:?}");
    assert_eq!(effects(&db.pool).await, [], "the messages before the failure were rolled back with it");
    assert_eq!(rows(&db.pool, "inbox_messages").await, 0, "no message is claimed: each may be handled again");
    assert_eq!(rows(&db.pool, "outbox_messages").await, 0);
    assert_eq!(rows(&db.pool, "observed").await, 0, "observations roll back with their batch");
    assert_eq!(steps.counted.load(Ordering::SeqCst), 0, "nothing is counted for a rolled-back batch");

    // What the consumer runtime does next: each message on its own.
    let results: Vec<bool> = {
        let mut results = Vec::new();
        for message in &batch {
            results.push(apply_one(&steps, message, OffsetDateTime::now_utc()).await.is_ok());
        }
        results
    };
    assert_eq!(results, [true, false, true], "only the bad message fails");
    assert_eq!(effects(&db.pool).await, [(*a.as_uuid(), 2, 2)]);
    assert_eq!(steps.counted.load(Ordering::SeqCst), 2);
}

/// How many transactions wrote the rows of the inbox, the outbox and the effects.
async fn writers(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(DISTINCT xmin::TEXT) FROM (SELECT xmin FROM inbox_messages UNION ALL
           SELECT xmin FROM outbox_messages UNION ALL SELECT xmin FROM effects) AS written",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}
