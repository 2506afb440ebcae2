//! The read model against a real database: the rows and positions it keeps
//! whatever the delivery order, and its answers in their documented shapes.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use checkout_domain::OrderId;
use checkout_kafka::{Handler, Incoming, RecordPosition};
use checkout_messages::Source;
use checkout_messages::payloads::order::{CancelOrder, CancellationCode, CancellationReason, ConfirmOrder};
use checkout_messages::payloads::saga::{SagaStepName, StepOutcome};
use checkout_order::domain::Summary;
use checkout_order::read_model::Projection;
use checkout_order::{MIGRATOR, OrderHandler};
use checkout_outbox::first_message;
use checkout_testkit::{TestDatabase, incoming, outbox};
use serde_json::{Value, json};
use std::time::Duration;

use checkout_platform::Applied;
use common::{Api, assert_matches_schema, checkout, pricing, step_report};

/// The events of three orders as the read model receives them, each at a
/// position of its topic (one partition per order, as keyed): the order
/// service's own from its outbox, and the orchestrator's step reports.
/// One is confirmed, one cancelled after the customer asked, one pending.
async fn three_histories(api: &Api) -> (Vec<OrderId>, Vec<(checkout_messages::Envelope, RecordPosition)>) {
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(api.place().await);
    }
    let mut reports = Vec::new();
    for order in &orders {
        for (step, outcome) in [
            (SagaStepName::ReserveInventory, StepOutcome::Succeeded),
            (SagaStepName::AuthorizePayment, StepOutcome::Succeeded),
        ] {
            let report = step_report(step, outcome);
            let envelope =
                first_message(&Source::service("orchestrator"), *order, checkout_platform::clock::now(), report);
            Applied(OrderHandler::new(api.db.pool.clone())).handle(&incoming(envelope.clone())).await.unwrap();
            reports.push(envelope);
        }
    }
    api.deliver(orders[0], ConfirmOrder { pricing: pricing() }).await;
    let cancel = Request::post(format!("/orders/{}/cancel", orders[1]))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "reason": "changed my mind" }).to_string()))
        .unwrap();
    assert_eq!(api.call(cancel).await.status, StatusCode::ACCEPTED);
    let reason = CancellationReason { code: CancellationCode::CustomerCancelled, detail: "changed my mind".into() };
    api.deliver(orders[1], CancelOrder { reason, pricing: Some(pricing()) }).await;

    let published = outbox(&api.db.pool).await.into_iter().filter(|e| Summary::reads(&e.payload));
    let mut offsets: std::collections::HashMap<(String, i32), i64> = std::collections::HashMap::new();
    let mut records = Vec::new();
    for (topic, envelope) in
        published.map(|e| ("order.events", e)).chain(reports.into_iter().map(|e| ("orchestrator.events", e)))
    {
        let partition = i32::try_from(orders.iter().position(|o| *o == envelope.subject).unwrap()).unwrap();
        let offset = offsets.entry((topic.to_owned(), partition)).or_insert(0);
        records.push((envelope, RecordPosition { topic: topic.to_owned(), partition, offset: *offset }));
        *offset += 1;
    }
    (orders, records)
}

/// The `OrderPlaced` events of `count` checkouts, as the order service publishes them.
async fn placed_orders(count: usize) -> Vec<checkout_messages::Envelope> {
    let api = Api::new().await;
    for _ in 0..count {
        api.post(&checkout(), None).await;
    }
    outbox(&api.db.pool).await.into_iter().filter(|e| Summary::reads(&e.payload)).collect()
}

/// A database with the order service's tables and nothing in them, and a
/// projection into it.
async fn empty_read_model() -> (TestDatabase, Projection) {
    let db = TestDatabase::create(&[&checkout_outbox::MIGRATOR, &MIGRATOR]).await;
    let projection = Projection::new(db.pool.clone());
    (db, projection)
}

/// `envelope` delivered from `topic`, partition 0, at `offset`.
fn at(topic: &str, offset: i64, envelope: &checkout_messages::Envelope) -> Incoming {
    Incoming {
        position: RecordPosition { topic: topic.to_owned(), partition: 0, offset },
        ..incoming(envelope.clone())
    }
}

/// Projects `batches` into a fresh database; its rows and read positions.
async fn project(batches: &[Vec<&(checkout_messages::Envelope, RecordPosition)>]) -> (Value, Value) {
    let db = TestDatabase::create(&[&checkout_outbox::MIGRATOR, &MIGRATOR]).await;
    project_into(&db.pool, batches).await;
    let rows =
        sqlx::query_scalar("SELECT COALESCE(jsonb_agg(to_jsonb(s) ORDER BY order_id), '[]') FROM order_summaries s")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let positions = sqlx::query_scalar(
        "SELECT COALESCE(jsonb_agg(to_jsonb(p) ORDER BY topic, partition), '[]') FROM read_model_positions p",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    (rows, positions)
}

async fn project_into(pool: &sqlx::PgPool, batches: &[Vec<&(checkout_messages::Envelope, RecordPosition)>]) {
    let projection = Projection::new(pool.clone());
    for batch in batches {
        let batch: Vec<Incoming> = batch
            .iter()
            .map(|(envelope, position)| Incoming { position: position.clone(), ..incoming(envelope.clone()) })
            .collect();
        projection.handle_batch(&batch).await.unwrap();
    }
}

#[tokio::test]
async fn the_read_model_keeps_the_same_rows_whether_events_come_once_in_order_or_redelivered_and_reordered() {
    let api = Api::new().await;
    let (orders, records) = three_histories(&api).await;
    assert_eq!(records.len(), 3 + 6 + 1 + 1 + 1, "placed ×3, steps ×6, confirmed, cancel requested, cancelled");
    let once_in_order: Vec<Vec<_>> = records.iter().map(|record| vec![record]).collect();
    let (rows, positions) = project(&once_in_order).await;
    let status =
        |n: usize| rows.as_array().unwrap().iter().find(|row| row["order_id"] == orders[n].to_string()).unwrap();
    assert_eq!((status(0)["status"].as_str(), status(0)["total_minor"].as_i64()), (Some("CONFIRMED"), Some(4499)));
    assert_eq!(status(1)["status"], "CANCELLED");
    assert_eq!(status(1)["cancellation_code"], "customer_cancelled");
    assert!(status(1)["cancel_requested_at"].is_string(), "{rows:#}");
    assert_eq!(status(2)["status"], "PENDING");
    for n in 0..3 {
        assert_eq!(status(n)["last_step"]["step"], "authorize_payment", "the latest step report wins: {rows:#}");
    }

    // Redelivered (each twice), reordered (newest first, odd before even),
    // and in batches of other sizes, duplicates within one batch included.
    let reversed_twice: Vec<_> = records.iter().rev().flat_map(|record| [record, record]).collect();
    let odd_then_even: Vec<_> = records.iter().skip(1).step_by(2).chain(records.iter().step_by(2)).collect();
    let all_twice: Vec<_> = records.iter().chain(records.iter()).collect();
    for (how, batches) in [
        ("reversed, each twice, in threes", reversed_twice.chunks(3).map(<[_]>::to_vec).collect::<Vec<_>>()),
        ("odd before even, in pairs", odd_then_even.chunks(2).map(<[_]>::to_vec).collect()),
        ("everything twice in one batch", vec![all_twice]),
    ] {
        assert_eq!(project(&batches).await, (rows.clone(), positions.clone()), "{how}");
    }

    // The API answers from these rows: filters, `placed_after`, the documented shape.
    project_into(&api.db.pool, &once_in_order).await;
    let listed = api.get("/orders?customer_id=cust-42").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_matches_schema(&listed.body, "OrderList");
    let placed: Vec<&str> =
        listed.body["orders"].as_array().unwrap().iter().map(|o| o["placed_at"].as_str().unwrap()).collect();
    assert_eq!(placed.len(), 3, "{:#}", listed.body);
    let newer = api.get(&format!("/orders?customer_id=cust-42&placed_after={}", placed[1].replace('+', "%2B"))).await;
    let ids: Vec<&str> =
        newer.body["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [listed.body["orders"][0]["order_id"].as_str().unwrap()],
        "only what was placed after: {:#}",
        newer.body
    );
    let confirmed = api.get("/orders?status=confirmed").await.body;
    assert_eq!(confirmed["orders"].as_array().map(Vec::len), Some(1), "{confirmed:#}");
    let bad = api.get("/orders?placed_after=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_matches_schema(&bad.body, "Problem");
}

/// An order's events come on two topics, so its first events may be folded
/// by two batches at once: both must be kept (a row written by each, the
/// later overwriting the earlier, kept only one of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orders_first_events_folded_at_once_from_both_topics_are_both_kept() {
    let placed = placed_orders(40).await;
    assert_eq!(placed.len(), 40);
    let (db, projection) = empty_read_model().await;
    for (offset, placed) in (0..).zip(&placed) {
        let step = step_report(SagaStepName::ReserveInventory, StepOutcome::Started);
        let step = first_message(&Source::service("orchestrator"), placed.subject, placed.time, step);
        let (order_events, orchestrator_events) =
            ([at("order.events", offset, placed)], [at("orchestrator.events", offset, &step)]);
        let (a, b) =
            tokio::join!(projection.handle_batch(&order_events), projection.handle_batch(&orchestrator_events));
        a.unwrap();
        b.unwrap();
    }
    let incomplete: Vec<(uuid::Uuid, bool, bool)> = sqlx::query_as(
        "SELECT order_id, placed_at IS NOT NULL, last_step IS NOT NULL FROM order_summaries
          WHERE placed_at IS NULL OR last_step IS NULL",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(incomplete, [], "rows that lost one of their first two events (order, placed kept, step kept)");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM order_summaries").fetch_one(&db.pool).await.unwrap();
    assert_eq!(rows, 40);
}

/// The read position of `orchestrator.events` partition 0, and the order's
/// last step, as the read model has them.
async fn step_and_position(pool: &sqlx::PgPool, order: OrderId) -> (Option<i64>, Option<Value>) {
    let position =
        sqlx::query_scalar("SELECT next_offset FROM read_model_positions WHERE topic = 'orchestrator.events'")
            .fetch_optional(pool)
            .await
            .unwrap();
    let step = sqlx::query_scalar("SELECT last_step FROM order_summaries WHERE order_id = $1")
        .bind(order.as_uuid())
        .fetch_optional(pool)
        .await
        .unwrap()
        .flatten();
    (position, step)
}

#[tokio::test]
async fn the_order_handler_folds_a_step_report_with_its_append_and_a_redelivery_still_moves_the_position() {
    let api = Api::new().await;
    let order = api.place().await;
    let report = step_report(SagaStepName::ReserveInventory, StepOutcome::Succeeded);
    let envelope = first_message(&Source::service("orchestrator"), order, checkout_platform::clock::now(), report);
    let handler = Applied(OrderHandler::new(api.db.pool.clone()));
    let appended = "SELECT count(*) FROM order_events WHERE event_type = 'SagaStepsRecorded'";

    handler.handle(&at("orchestrator.events", 4, &envelope)).await.unwrap();
    let (position, step) = step_and_position(&api.db.pool, order).await;
    assert_eq!(position, Some(5), "the report's position is read");
    assert_eq!(step.unwrap()["step"], "reserve_inventory", "and its step is folded in the same transaction");
    assert_eq!(sqlx::query_scalar::<_, i64>(appended).fetch_one(&api.db.pool).await.unwrap(), 1);

    // Redelivered further on (say, after a rebuild moved the positions
    // back): appended once only, but read up to where it now sits.
    sqlx::query("DELETE FROM read_model_positions").execute(&api.db.pool).await.unwrap();
    handler.handle_batch(&[at("orchestrator.events", 9, &envelope)]).await.unwrap();
    assert_eq!(step_and_position(&api.db.pool, order).await.0, Some(10), "a duplicate moves the position too");
    assert_eq!(sqlx::query_scalar::<_, i64>(appended).fetch_one(&api.db.pool).await.unwrap(), 1, "not appended twice");

    // A report for an order this service never had is refused whole.
    let stranger = OrderId::from_uuid(uuid::Uuid::now_v7());
    let report = step_report(SagaStepName::AuthorizePayment, StepOutcome::Started);
    let unknown = first_message(&Source::service("orchestrator"), stranger, checkout_platform::clock::now(), report);
    let refused = handler.handle(&incoming(unknown)).await;
    assert!(matches!(refused, Err(checkout_kafka::HandlerError::Permanent(_))), "{refused:?}");
    assert_eq!(step_and_position(&api.db.pool, stranger).await.1, None, "nothing of it is folded");
}

/// A rebuild's swap, as `read_model::rebuild` does it: the live tables
/// locked `IN EXCLUSIVE MODE`, dropped, and the rebuilt ones moved into their
/// place, in one transaction. A projection write that arrives meanwhile
/// waits, then lands in the swapped-in tables (its statements prepared
/// against the dropped ones re-resolve their names), not in the dropped ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_write_held_off_by_a_rebuilds_swap_lands_in_the_swapped_in_tables() {
    let [before, during] = <[_; 2]>::try_from(placed_orders(2).await).unwrap();
    let (db, projection) = empty_read_model().await;
    // Prepares the projection's statements against the live tables.
    projection.handle_batch(&[at("order.events", 0, &before)]).await.unwrap();
    sqlx::raw_sql(
        "CREATE SCHEMA rebuilt;
         CREATE TABLE rebuilt.order_summaries (LIKE public.order_summaries INCLUDING ALL);
         CREATE TABLE rebuilt.read_model_positions (LIKE public.read_model_positions INCLUDING ALL);",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let mut swap = db.pool.begin().await.unwrap();
    sqlx::raw_sql("LOCK TABLE public.order_summaries, public.read_model_positions IN EXCLUSIVE MODE")
        .execute(&mut *swap)
        .await
        .unwrap();
    let live = tokio::spawn({
        let (projection, record) = (projection.clone(), at("order.events", 1, &during));
        async move { projection.handle_batch(&[record]).await }
    });
    checkout_testkit::eventually(Duration::from_secs(10), "the projection to wait for the swap", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (waiting > 0).then_some(())
    })
    .await;
    assert!(!live.is_finished(), "the projection wrote while the live tables were locked");
    sqlx::raw_sql(
        "DROP TABLE public.order_summaries, public.read_model_positions;
         ALTER TABLE rebuilt.order_summaries SET SCHEMA public;
         ALTER TABLE rebuilt.read_model_positions SET SCHEMA public;
         DROP SCHEMA rebuilt;",
    )
    .execute(&mut *swap)
    .await
    .unwrap();
    swap.commit().await.unwrap();
    live.await.unwrap().unwrap();

    let rows: Vec<(uuid::Uuid, bool)> =
        sqlx::query_as("SELECT order_id, placed_at IS NOT NULL FROM public.order_summaries")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(rows, [(*during.subject.as_uuid(), true)], "only the write that waited, in the swapped-in table");
    let positions: Vec<(String, i32, i64)> =
        sqlx::query_as("SELECT topic, partition, next_offset FROM public.read_model_positions")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(positions, [("order.events".to_owned(), 0, 2)]);
}
