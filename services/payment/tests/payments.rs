//! The payment service against a real database and the test gateway.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use checkout_domain::{CardToken, Currency, Money, OrderId};
use checkout_kafka::{Handler, HandlerError};
use checkout_messages::payloads::payment::{AuthorizePayment, CapturePayment, DeclineCode, RefundPayment, VoidPayment};
use checkout_messages::{Envelope, Message, Source};
use checkout_outbox::first_message;
use checkout_payment::gateway::{Authorization, AuthorizationRequest, GatewayError, IdempotencyKey, Operation};
use checkout_payment::{MIGRATOR, PaymentGateway, PaymentHandler, TestGateway};
use checkout_testkit::{TestDatabase, incoming, outbox};
use sqlx::PgPool;
use uuid::Uuid;

/// The test gateway, counting authorization calls, and with a gate holding
/// each authorization until it is let through.
#[derive(Clone)]
struct Counting {
    authorizations: Arc<AtomicUsize>,
    inner: TestGateway,
    gate: Option<Gate>,
}

/// Told when an authorization reaches the gateway (`entered`), which then
/// waits to be let through (`release`).
#[derive(Clone, Default)]
struct Gate {
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl PaymentGateway for Counting {
    async fn authorize(&self, request: &AuthorizationRequest) -> Result<Authorization, GatewayError> {
        self.authorizations.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.entered.notify_one();
            gate.release.notified().await;
        }
        self.inner.authorize(request).await
    }

    async fn capture(&self, key: &IdempotencyKey, id: &str, amount: Money) -> Result<(), GatewayError> {
        self.inner.capture(key, id, amount).await
    }

    async fn void(&self, key: &IdempotencyKey, order: OrderId, id: Option<&str>) -> Result<(), GatewayError> {
        self.inner.void(key, order, id).await
    }

    async fn refund(&self, key: &IdempotencyKey, id: &str, amount: Money) -> Result<(), GatewayError> {
        self.inner.refund(key, id, amount).await
    }
}

struct Fixture {
    db: TestDatabase,
    gateway: Counting,
    order: OrderId,
}

impl Fixture {
    async fn new() -> Self {
        let db = TestDatabase::create(&[&checkout_outbox::MIGRATOR, &MIGRATOR]).await;
        let gateway = Counting { authorizations: Arc::default(), inner: TestGateway::new(db.pool.clone()), gate: None };
        Self { db, gateway, order: OrderId::from_uuid(Uuid::now_v7()) }
    }

    fn handler(&self) -> PaymentHandler<Counting> {
        // A short gateway timeout keeps tok_timeout tests quick.
        PaymentHandler::new(self.db.pool.clone(), self.gateway.clone(), Duration::from_millis(200))
    }

    fn command(&self, payload: impl Into<Message>) -> Envelope {
        first_message(&Source::service("orchestrator"), self.order, checkout_platform::clock::now(), payload)
    }

    async fn send(&self, envelope: Envelope) -> Result<(), HandlerError> {
        self.handler().handle(&incoming(envelope)).await
    }

    async fn authorize(&self, token: &str) {
        let command = AuthorizePayment { amount: eur(4499), card_token: CardToken::parse(token).unwrap() };
        self.send(self.command(command)).await.unwrap();
    }

    async fn replies(&self) -> Vec<Message> {
        outbox(&self.db.pool).await.into_iter().map(|e| e.payload).collect()
    }

    async fn status(&self) -> String {
        status(&self.db.pool, self.order).await
    }
}

async fn status(pool: &PgPool, order: OrderId) -> String {
    sqlx::query_scalar("SELECT status FROM payments WHERE order_id = $1")
        .bind(order.as_uuid())
        .fetch_one(pool)
        .await
        .unwrap()
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::EUR).unwrap()
}

#[tokio::test]
async fn tok_visa_is_authorized_for_the_amount_asked() {
    let f = Fixture::new().await;
    f.authorize("tok_visa").await;
    let replies = f.replies().await;
    let [Message::PaymentAuthorized(authorized)] = replies.as_slice() else { panic!("{replies:?}") };
    assert_eq!(authorized.amount, eur(4499));
    assert!(authorized.authorization_id.starts_with("auth_"));
    assert_eq!(f.status().await, "authorized");
}

#[tokio::test]
async fn declining_tokens_are_declined_with_their_reason() {
    for (token, code) in
        [("tok_decline", DeclineCode::CardDeclined), ("tok_insufficient_funds", DeclineCode::InsufficientFunds)]
    {
        let f = Fixture::new().await;
        f.authorize(token).await;
        let replies = f.replies().await;
        let [Message::PaymentDeclined(declined)] = replies.as_slice() else { panic!("{token}: {replies:?}") };
        assert_eq!(declined.code, code);
        assert_eq!(f.status().await, "declined");
    }
}

#[tokio::test]
async fn a_gateway_that_never_answers_leaves_the_outcome_unknown_until_voided() {
    let f = Fixture::new().await;
    f.authorize("tok_timeout").await;
    f.authorize("tok_timeout").await;
    assert!(f.replies().await.is_empty(), "no answer, so nothing to say");
    assert_eq!(f.status().await, "authorizing");
    assert_eq!(f.gateway.authorizations.load(Ordering::SeqCst), 2, "each retry asks again (same idempotency key)");

    f.send(f.command(VoidPayment {})).await.unwrap();
    assert_eq!(f.status().await, "voided");
    f.authorize("tok_timeout").await;
    let replies = f.replies().await;
    assert!(
        matches!(replies.as_slice(), [Message::PaymentVoided(_), Message::PaymentDeclined(d)] if d.code == DeclineCode::AlreadyVoided)
    );
    let operations: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM payment_operations ORDER BY id").fetch_all(&f.db.pool).await.unwrap();
    // Each gateway call is claimed (`started`) before it is made.
    assert_eq!(operations, ["started", "no answer", "started", "no answer", "started", "voided"]);
    let calls: i32 = sqlx::query_scalar("SELECT calls FROM test_gateway_calls WHERE operation = 'authorize'")
        .fetch_one(&f.db.pool)
        .await
        .unwrap();
    assert_eq!(calls, 2, "the gateway saw the same authorization key twice and held money once");
}

#[tokio::test]
async fn every_gateway_call_carries_the_key_of_its_order_and_operation() {
    let f = Fixture::new().await;
    f.authorize("tok_visa").await;
    f.send(f.command(CapturePayment { amount: eur(4499) })).await.unwrap();
    let journal: Vec<(String, String, i32)> =
        sqlx::query_as("SELECT idempotency_key, operation, calls FROM test_gateway_calls ORDER BY first_called_at")
            .fetch_all(&f.db.pool)
            .await
            .unwrap();
    let key = |operation| IdempotencyKey::new(f.order, operation).as_str().to_owned();
    assert_eq!(
        journal,
        [(key(Operation::Authorize), "authorize".to_owned(), 1), (key(Operation::Capture), "capture".to_owned(), 1)]
    );
    let claimed: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT outcome, idempotency_key FROM payment_operations WHERE operation = 'capture' ORDER BY id",
    )
    .fetch_all(&f.db.pool)
    .await
    .unwrap();
    assert_eq!(
        claimed,
        [("started".to_owned(), Some(key(Operation::Capture))), ("captured".to_owned(), Some(key(Operation::Capture)))]
    );
}

#[tokio::test]
async fn the_same_message_twice_calls_the_gateway_once() {
    let f = Fixture::new().await;
    let command = f.command(AuthorizePayment { amount: eur(4499), card_token: CardToken::parse("tok_visa").unwrap() });
    f.send(command.clone()).await.unwrap();
    f.send(command).await.unwrap();
    assert_eq!(f.gateway.authorizations.load(Ordering::SeqCst), 1);
    assert_eq!(f.replies().await.len(), 1);
}

#[tokio::test]
async fn a_repeated_authorization_is_answered_without_asking_the_gateway() {
    let f = Fixture::new().await;
    f.authorize("tok_visa").await;
    f.authorize("tok_visa").await;
    assert_eq!(f.gateway.authorizations.load(Ordering::SeqCst), 1);
    let replies = f.replies().await;
    assert_eq!(replies[0], replies[1]);
}

#[tokio::test]
async fn capture_takes_exactly_the_authorized_amount_once() {
    let f = Fixture::new().await;
    f.authorize("tok_visa").await;
    f.send(f.command(CapturePayment { amount: eur(4499) })).await.unwrap();
    f.send(f.command(CapturePayment { amount: eur(4499) })).await.unwrap();
    assert_eq!(f.status().await, "captured");
    assert!(matches!(f.replies().await[1..], [Message::PaymentCaptured(_), Message::PaymentCaptured(_)]));
    let wrong = f.send(f.command(CapturePayment { amount: eur(5000) })).await.unwrap_err();
    assert!(matches!(wrong, HandlerError::Permanent(_)), "{wrong}");
}

#[tokio::test]
async fn a_captured_payment_is_refunded_not_voided() {
    let f = Fixture::new().await;
    f.authorize("tok_visa").await;
    f.send(f.command(CapturePayment { amount: eur(4499) })).await.unwrap();
    let void = f.send(f.command(VoidPayment {})).await.unwrap_err();
    assert!(matches!(void, HandlerError::Permanent(_)));
    f.send(f.command(RefundPayment { amount: eur(4499) })).await.unwrap();
    f.send(f.command(RefundPayment { amount: eur(4499) })).await.unwrap();
    assert_eq!(f.status().await, "refunded");
    assert!(matches!(f.replies().await.last(), Some(Message::PaymentRefunded(_))));
}

#[tokio::test]
async fn a_void_before_any_authorization_makes_a_late_one_decline() {
    let f = Fixture::new().await;
    f.send(f.command(VoidPayment {})).await.unwrap();
    f.authorize("tok_visa").await;
    assert_eq!(f.gateway.authorizations.load(Ordering::SeqCst), 0);
    assert!(matches!(f.replies().await.as_slice(), [Message::PaymentVoided(_), Message::PaymentDeclined(_)]));
}

#[tokio::test]
async fn a_void_that_overtakes_an_authorization_during_its_gateway_call_makes_the_approval_a_late_one() {
    let f = Fixture::new().await;
    let gate = Gate::default();
    let gated = Counting { gate: Some(gate.clone()), ..f.gateway.clone() };
    let handler = PaymentHandler::new(f.db.pool.clone(), gated, Duration::from_secs(30));
    let command = AuthorizePayment { amount: eur(4499), card_token: CardToken::parse("tok_visa").unwrap() };
    let authorization = incoming(f.command(command));
    let authorizing = tokio::spawn(async move { handler.handle(&authorization).await });

    // The authorization read the payment as `authorizing` and is at the gateway.
    gate.entered.notified().await;
    f.send(f.command(VoidPayment {})).await.unwrap();
    assert_eq!(f.status().await, "voided");
    gate.release.notify_one();
    authorizing.await.unwrap().unwrap();

    // The approval, decided from `authorizing`, is not written over the void.
    assert_eq!(f.status().await, "voided", "the void stands");
    match f.replies().await.as_slice() {
        [Message::PaymentVoided(_), Message::PaymentDeclined(declined)] => {
            assert_eq!(declined.code, DeclineCode::AlreadyVoided);
        }
        other => panic!("expected the void, then a decline for the late approval: {other:?}"),
    }
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM payment_operations WHERE operation = 'authorize' ORDER BY id")
            .fetch_all(&f.db.pool)
            .await
            .unwrap();
    assert_eq!(outcomes, ["started", "approved after void"]);
}
