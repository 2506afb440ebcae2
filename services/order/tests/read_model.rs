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
use checkout_messages::payloads::saga::{SagaStepName, SagaStepRecorded, StepOutcome};
use checkout_order::domain::Summary;
use checkout_order::read_model::Projection;
use checkout_order::{MIGRATOR, OrderHandler};
use checkout_outbox::first_message;
use checkout_testkit::{TestDatabase, incoming, outbox};
use serde_json::{Value, json};

use common::{Api, assert_matches_schema, checkout, pricing};

/// The events of three orders as the read model receives them, each at a
/// position of its topic (one partition per order, as keyed): the order
/// service's own from its outbox, and the orchestrator's step reports.
/// One is confirmed, one cancelled after the customer asked, one pending.
async fn three_histories(api: &Api) -> (Vec<OrderId>, Vec<(checkout_messages::Envelope, RecordPosition)>) {
    let mut orders = Vec::new();
    for _ in 0..3 {
        let accepted = api.post(&checkout(), None).await;
        orders.push(accepted.body["order_id"].as_str().unwrap().parse::<OrderId>().unwrap());
    }
    let mut reports = Vec::new();
    for order in &orders {
        for (step, outcome) in [
            (SagaStepName::ReserveInventory, StepOutcome::Succeeded),
            (SagaStepName::AuthorizePayment, StepOutcome::Succeeded),
        ] {
            let report = SagaStepRecorded { earlier: Vec::new(), step, outcome, attempt: 1, detail: None };
            let envelope =
                first_message(&Source::service("orchestrator"), *order, checkout_platform::clock::now(), report);
            OrderHandler::new(api.db.pool.clone()).handle(&incoming(envelope.clone())).await.unwrap();
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
    let api = Api::new().await;
    for _ in 0..40 {
        api.post(&checkout(), None).await;
    }
    let placed: Vec<_> = outbox(&api.db.pool).await.into_iter().filter(|e| Summary::reads(&e.payload)).collect();
    assert_eq!(placed.len(), 40);
    let db = TestDatabase::create(&[&checkout_outbox::MIGRATOR, &MIGRATOR]).await;
    let projection = Projection::new(db.pool.clone());
    for (offset, placed) in (0..).zip(&placed) {
        let step = SagaStepRecorded {
            earlier: Vec::new(),
            step: SagaStepName::ReserveInventory,
            outcome: StepOutcome::Started,
            attempt: 1,
            detail: None,
        };
        let step = first_message(&Source::service("orchestrator"), placed.subject, placed.time, step);
        let at = |topic: &str, envelope: &checkout_messages::Envelope| Incoming {
            position: RecordPosition { topic: topic.to_owned(), partition: 0, offset },
            ..incoming(envelope.clone())
        };
        let (order_events, orchestrator_events) = ([at("order.events", placed)], [at("orchestrator.events", &step)]);
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
