//! The notification service sends real email over SMTP, once per outcome.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use checkout_domain::{Currency, EmailAddress, Money, OrderId, PricedLine, Pricing, Quantity, Sku};
use checkout_kafka::{Handler, HandlerError};
use checkout_messages::payloads::notification::{NotificationKind, NotifyOrderCancelled, NotifyOrderConfirmed};
use checkout_messages::payloads::order::{CancellationCode, CancellationReason};
use checkout_messages::{Envelope, Message, Source};
use checkout_notification::{MIGRATOR, Mailer, NotificationHandler};
use checkout_outbox::first_message;
use checkout_testkit::{SmtpSink, TestDatabase, incoming, outbox};
use uuid::Uuid;

struct Fixture {
    db: TestDatabase,
    smtp: SmtpSink,
    order: OrderId,
}

impl Fixture {
    async fn new() -> Self {
        let db = TestDatabase::create(&[&checkout_outbox::MIGRATOR, &MIGRATOR]).await;
        Self { db, smtp: SmtpSink::start(), order: OrderId::from_uuid(Uuid::now_v7()) }
    }

    fn handler(&self, smtp_timeout: Duration) -> NotificationHandler {
        let mailer = Mailer::new("127.0.0.1", self.smtp.port(), "Shop <orders@shop.test>", smtp_timeout).unwrap();
        NotificationHandler::new(self.db.pool.clone(), mailer)
    }

    async fn send(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        self.handler(Duration::from_secs(5)).handle(&incoming(envelope.clone())).await
    }

    fn confirmed(&self) -> Envelope {
        confirmation(self.order)
    }
}

fn confirmation(order: OrderId) -> Envelope {
    let pricing = Pricing::new(vec![PricedLine {
        sku: Sku::parse("MUG-BLACK").unwrap(),
        quantity: Quantity::new(2).unwrap(),
        unit_price: Money::new(1250, Currency::EUR).unwrap(),
    }])
    .unwrap();
    first_message(
        &Source::service("orchestrator"),
        order,
        checkout_platform::clock::now(),
        NotifyOrderConfirmed { email: ada(), pricing },
    )
}

fn ada() -> EmailAddress {
    EmailAddress::parse("ada@example.com").unwrap()
}

#[tokio::test]
async fn a_confirmation_is_emailed_and_acknowledged() {
    let f = Fixture::new().await;
    f.send(&f.confirmed()).await.unwrap();

    let mail = f.smtp.mail();
    assert_eq!(mail.len(), 1);
    assert_eq!(
        (mail[0].from.as_str(), mail[0].to.as_slice()),
        ("orders@shop.test", &["ada@example.com".to_owned()][..])
    );
    assert!(mail[0].header("Subject").unwrap().ends_with("is confirmed"));
    assert_eq!(
        mail[0].header("Message-ID").unwrap(),
        format!("<{}.order_confirmed@checkout-saga.local>", f.order.as_uuid().simple())
    );
    assert!(mail[0].data.contains("EUR 25.00"), "{}", mail[0].data);
    let replies: Vec<Message> = outbox(&f.db.pool).await.into_iter().map(|e| e.payload).collect();
    assert!(matches!(replies.as_slice(), [Message::CustomerNotified(n)] if n.kind == NotificationKind::OrderConfirmed));
}

#[tokio::test]
async fn a_repeated_command_sends_no_second_email_but_is_acknowledged() {
    let f = Fixture::new().await;
    f.send(&f.confirmed()).await.unwrap();
    f.send(&f.confirmed()).await.unwrap();
    assert_eq!(f.smtp.mail().len(), 1, "one email per order outcome");
    assert_eq!(outbox(&f.db.pool).await.len(), 2, "each command is answered");
}

#[tokio::test]
async fn a_redelivered_message_changes_nothing() {
    let f = Fixture::new().await;
    let command = f.confirmed();
    f.send(&command).await.unwrap();
    f.send(&command).await.unwrap();
    assert_eq!((f.smtp.mail().len(), outbox(&f.db.pool).await.len()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_racing_its_original_is_acknowledged_once() {
    let f = Fixture::new().await;
    let command = f.confirmed();
    // Both pass the read before the email; the inbox claim in the write
    // lets one record and answer, and the other write nothing.
    let (first, second) = tokio::join!(f.send(&command), f.send(&command));
    first.unwrap();
    second.unwrap();
    assert_eq!(outbox(&f.db.pool).await.len(), 1, "answered once");
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications").fetch_one(&f.db.pool).await.unwrap();
    let claimed: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox_messages").fetch_one(&f.db.pool).await.unwrap();
    assert_eq!((recorded, claimed), (1, 1));
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_a_transient_failure_then_the_email_goes_out() {
    let f = Fixture::new().await;
    f.smtp.refuse(true);
    let error = f.send(&f.confirmed()).await.unwrap_err();
    assert!(matches!(error, HandlerError::Transient { .. }), "{error}");
    assert!(outbox(&f.db.pool).await.is_empty(), "nothing recorded while the email is not sent");
    f.smtp.refuse(false);
    f.send(&f.confirmed()).await.unwrap();
    assert_eq!(f.smtp.mail().len(), 1);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_a_transient_failure() {
    let f = Fixture::new().await;
    f.smtp.silent(true);
    let error = f.handler(Duration::from_millis(300)).handle(&incoming(f.confirmed())).await.unwrap_err();
    assert!(matches!(error, HandlerError::Transient { .. }), "{error}");
    assert!(error.to_string().contains("did not finish"), "{error}");
    assert!(outbox(&f.db.pool).await.is_empty());
}

#[tokio::test]
async fn a_mailbox_the_server_refuses_is_a_permanent_failure() {
    let f = Fixture::new().await;
    f.smtp.reject_mailbox(ada().as_str());
    let error = f.send(&f.confirmed()).await.unwrap_err();
    assert!(matches!(error, HandlerError::Permanent(_)), "{error}");
    assert!(f.smtp.mail().is_empty());
    assert!(outbox(&f.db.pool).await.is_empty(), "nothing recorded for an email not sent");
}

#[tokio::test]
async fn a_cancellation_email_says_why() {
    let f = Fixture::new().await;
    let reason =
        CancellationReason { code: CancellationCode::OutOfStock, detail: "TEE-M: 1 requested, 0 available".into() };
    let command = first_message(
        &Source::service("orchestrator"),
        f.order,
        checkout_platform::clock::now(),
        NotifyOrderCancelled { email: ada(), reason },
    );
    f.send(&command).await.unwrap();
    let mail = f.smtp.mail();
    assert!(mail[0].header("Subject").unwrap().ends_with("was cancelled"));
    assert!(mail[0].data.contains("Reason: TEE-M: 1 requested, 0 available"));
}

/// Sends confirmations of `count` new orders, one after another, through one handler.
async fn confirm_in_turn(f: &Fixture, count: usize) {
    let handler = f.handler(Duration::from_secs(5));
    for _ in 0..count {
        handler.handle(&incoming(confirmation(OrderId::from_uuid(Uuid::now_v7())))).await.unwrap();
    }
}

#[tokio::test]
async fn emails_sent_one_after_another_share_one_connection() {
    let f = Fixture::new().await;
    confirm_in_turn(&f, 3).await;
    assert_eq!((f.smtp.mail().len(), f.smtp.connections()), (3, 1), "(emails, connections)");
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced_and_the_email_still_goes_out() {
    let f = Fixture::new().await;
    f.smtp.hang_up_after_each_message(true);
    confirm_in_turn(&f, 3).await;
    assert_eq!((f.smtp.mail().len(), f.smtp.connections()), (3, 3), "(emails, connections)");
}
