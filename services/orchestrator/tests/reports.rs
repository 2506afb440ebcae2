//! Step reports against a real database: a saga keeps its timeline entries
//! back and reports several transitions' in one record, or the timer
//! reports them once they are due.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use checkout_messages::payloads::inventory::{InventoryCommitted, InventoryReserved};
use checkout_messages::payloads::notification::{CustomerNotified, NotificationKind};
use checkout_messages::payloads::order::OrderConfirmed;
use checkout_messages::payloads::payment::{PaymentAuthorized, PaymentCaptured};
use checkout_messages::payloads::saga::{SagaStepName as S, StepOutcome as O};
use common::{Fixture, eur, pricing};
use time::OffsetDateTime;

impl Fixture {
    async fn report_due_at(&self) -> Option<OffsetDateTime> {
        sqlx::query_scalar("SELECT report_due_at FROM sagas WHERE order_id = $1")
            .bind(self.order.as_uuid())
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_confirmed_checkout_reports_its_steps_in_one_record_at_its_end_each_entry_with_its_time() {
    let f = Fixture::new().await;
    let placed_at = OffsetDateTime::now_utc();
    f.deliver(&f.placed).await;
    f.reply(InventoryReserved { pricing: pricing(), expires_at: OffsetDateTime::now_utc() }).await;
    f.reply(PaymentAuthorized { authorization_id: "auth-1".into(), amount: eur(2500) }).await;
    f.reply(InventoryCommitted {}).await;
    assert!(f.report_due_at().await.is_some(), "confirming reports nothing: the steps wait");
    f.reply(OrderConfirmed { total: eur(2500) }).await;
    f.reply(PaymentCaptured { amount: eur(2500) }).await;
    assert!(f.reports().await.is_empty(), "nothing reported before the end");
    f.reply(CustomerNotified { kind: NotificationKind::OrderConfirmed }).await;
    assert_eq!(f.status().await, "completed");

    let reports = f.reports().await;
    let shapes: Vec<Vec<(S, O)>> =
        reports.iter().map(|(_, r)| r.entries().map(|e| (e.step, e.outcome)).collect()).collect();
    assert_eq!(shapes.len(), 1, "{shapes:?}");
    assert_eq!(shapes[0].len(), 12, "every step's start and end: {:?}", shapes[0]);
    assert_eq!(shapes[0][6], (S::ConfirmOrder, O::Started));
    assert_eq!(shapes[0].last(), Some(&(S::NotifyCustomer, O::Succeeded)));
    assert_eq!(reports.iter().map(|(_, r)| r.finished).collect::<Vec<_>>(), [true]);
    let times: Vec<OffsetDateTime> = reports.iter().flat_map(|(_, r)| r.entries()).map(|e| e.at.unwrap()).collect();
    assert!(times.is_sorted(), "{times:?}");
    assert!(times[0] >= placed_at - Duration::from_secs(1) && times[0] <= reports[0].0.time);
    assert_eq!(f.report_due_at().await, None);
    assert!(f.timer().report_due(OffsetDateTime::now_utc() + Duration::from_secs(60)).await.unwrap() == 0);
}

#[tokio::test]
async fn the_timer_reports_the_entries_of_a_saga_that_waits_once_they_are_due() {
    let f = Fixture::new().await;
    f.deliver(&f.placed).await;
    let due = f.report_due_at().await.expect("the step's start is kept back");
    let timer = f.timer();
    assert_eq!(timer.report_due(due - Duration::from_millis(1)).await.unwrap(), 0, "not due yet");
    assert!(f.reports().await.is_empty());
    assert_eq!(timer.report_due(due).await.unwrap(), 1);
    let reports = f.reports().await;
    let (envelope, report) = reports.first().unwrap();
    assert_eq!((report.step, report.outcome, report.finished), (S::ReserveInventory, O::Started, false));
    assert_eq!(envelope.correlation_id, f.placed.correlation_id, "the report continues the checkout");
    assert_eq!(envelope.causation_id, f.placed.id);
    assert_eq!(f.report_due_at().await, None);
    assert_eq!(timer.report_due(due + Duration::from_secs(60)).await.unwrap(), 0, "reported once");
    // The saga still moves on from its saved state, without the entry.
    f.reply(InventoryReserved { pricing: pricing(), expires_at: OffsetDateTime::now_utc() }).await;
    let reports_now = f.reports().await.len();
    assert_eq!(reports_now, 1, "the next entries are kept back afresh");
    assert!(f.report_due_at().await.is_some());
}

#[tokio::test]
async fn a_saga_row_that_does_not_decode_is_quarantined_by_the_report_pass_and_stops_none() {
    let f = Fixture::new().await;
    f.deliver(&f.placed).await;
    sqlx::query(
        "UPDATE sagas SET state = '{\"written_by\": \"a newer build\"}', report_due_at = now() - interval '1 s'",
    )
    .execute(&f.db.pool)
    .await
    .unwrap();
    let now = OffsetDateTime::now_utc();
    let timer = f.timer();
    assert_eq!(timer.report_due(now).await.unwrap(), 1, "the pass succeeds and sets the row aside");
    let reason = f.quarantine_reason().await;
    assert!(reason.is_some());
    assert_eq!(timer.report_due(now).await.unwrap(), 0, "and it is not due again");
}
