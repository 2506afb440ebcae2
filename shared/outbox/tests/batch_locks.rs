//! `apply_all` takes a batch's row locks in the order of the batch's keys,
//! so that batches running at once never deadlock. In a test binary of its
//! own: its batches hold rows for a while, and the trace test in `apply.rs`
//! wants no other test's spans racing its subscriber.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use checkout_kafka::{HandlerError, Incoming};
use checkout_outbox::{Apply, UnitOfWork, apply_all, handler_error};
use checkout_testkit::incoming;
use common::{database, new_order, numbered};
use sqlx::PgPool;
use time::OffsetDateTime;

/// Counts each message in its order's row, then holds the row 200 ms.
struct Hold {
    pool: PgPool,
}

impl Apply for Hold {
    type Committed = ();
    type Batch = ();

    const CONSUMER: &'static str = "hold";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn apply(
        &self,
        work: &mut UnitOfWork,
        (): &mut (),
        message: &Incoming,
        _: OffsetDateTime,
    ) -> Result<(), HandlerError> {
        sqlx::query(
            "INSERT INTO effects (order_id, applied, last_seq) VALUES ($1, 1, 0)
             ON CONFLICT (order_id) DO UPDATE SET applied = effects.applied + 1",
        )
        .bind(message.envelope.subject.as_uuid())
        .execute(work.conn())
        .await
        .map_err(handler_error)?;
        sqlx::query("SELECT pg_sleep(0.2)").execute(work.conn()).await.map_err(handler_error)?;
        Ok(())
    }
}

#[tokio::test]
async fn batches_with_the_same_orders_in_opposite_orders_wait_for_each_other_and_never_deadlock() {
    let db = database().await;
    let hold = Hold { pool: db.pool.clone() };
    let (a, b) = (new_order(), new_order());
    // The two batches overlap: applied in the order given, each would hold
    // one order's row and wait for the other's, and PostgreSQL would abort one.
    let one: Vec<Incoming> = [numbered(a, 1), numbered(b, 1)].into_iter().map(incoming).collect();
    let two: Vec<Incoming> = [numbered(b, 2), numbered(a, 2)].into_iter().map(incoming).collect();

    let (first, second) = tokio::join!(
        apply_all(&hold, &one, OffsetDateTime::now_utc()),
        apply_all(&hold, &two, OffsetDateTime::now_utc())
    );

    assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
    let applied: Vec<i32> = sqlx::query_scalar("SELECT applied FROM effects").fetch_all(&db.pool).await.unwrap();
    assert_eq!(applied, [2, 2], "both batches applied both orders");
}
