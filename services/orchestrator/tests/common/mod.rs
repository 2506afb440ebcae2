//! The orchestrator's test fixture: a saga's database, its order, and
//! helpers to deliver replies and fire the timer.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::time::Duration;

use checkout_domain::{
    CardToken, Currency, CustomerId, EmailAddress, Money, OrderId, OrderLine, OrderLines, PricedLine, Pricing,
    Quantity, Sku,
};
use checkout_kafka::Handler;
use checkout_messages::payloads::order::OrderPlaced;
use checkout_messages::payloads::saga::SagaStepRecorded;
use checkout_messages::{Envelope, Message, MessageType, Source};
use checkout_orchestrator::{MIGRATOR, SagaHandler, Timer};
use checkout_outbox::{caused_by, first_message};
use checkout_platform::Applied;
use checkout_saga::{SagaPolicy, StepPolicy};
use checkout_testkit::{TestDatabase, eventually, incoming, outbox};
use uuid::Uuid;

pub fn policy() -> SagaPolicy {
    let quick = StepPolicy::new(Duration::from_millis(10), 2);
    SagaPolicy {
        reserve_inventory: quick,
        authorize_payment: quick,
        after_pivot: quick,
        compensation: StepPolicy::new(Duration::from_millis(10), 5),
        // As deployed: entries wait to be reported with later ones.
        report_delay: Duration::from_millis(500),
    }
}

pub fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::EUR).unwrap()
}

pub fn pricing() -> Pricing {
    Pricing::new(vec![PricedLine {
        sku: Sku::parse("MUG-BLACK").unwrap(),
        quantity: Quantity::new(2).unwrap(),
        unit_price: eur(1250),
    }])
    .unwrap()
}

pub struct Fixture {
    pub db: TestDatabase,
    pub order: OrderId,
    pub placed: Envelope,
}

impl Fixture {
    pub async fn new() -> Self {
        let db = TestDatabase::create(&[&checkout_outbox::MIGRATOR, &MIGRATOR]).await;
        let order = OrderId::from_uuid(Uuid::now_v7());
        let placed = first_message(
            &Source::service("order"),
            order,
            checkout_platform::clock::now(),
            OrderPlaced {
                customer_id: CustomerId::parse("cust-1").unwrap(),
                email: EmailAddress::parse("ada@example.com").unwrap(),
                lines: OrderLines::new(vec![OrderLine {
                    sku: Sku::parse("MUG-BLACK").unwrap(),
                    quantity: Quantity::new(2).unwrap(),
                }])
                .unwrap(),
                card_token: CardToken::parse("tok_visa").unwrap(),
            },
        );
        Self { db, order, placed }
    }

    /// A fresh handler, as after a restart: all it knows is in the database.
    pub fn handler(&self) -> Applied<SagaHandler> {
        Applied(SagaHandler::new(self.db.pool.clone(), policy()))
    }

    pub async fn deliver(&self, envelope: &Envelope) {
        self.handler().handle(&incoming(envelope.clone())).await.unwrap();
    }

    /// A participant's reply to the latest command.
    pub async fn reply(&self, payload: impl Into<Message>) -> Envelope {
        let command = self.commands().await.pop().unwrap();
        let reply = caused_by(&command, &Source::service("participant"), checkout_platform::clock::now(), payload);
        self.deliver(&reply).await;
        reply
    }

    /// A timer over the fixture's database, with the fixture's policy.
    pub fn timer(&self) -> Timer {
        Timer::new(self.db.pool.clone(), policy(), Duration::from_secs(1))
    }

    /// Why the saga was set aside, if it was.
    pub async fn quarantine_reason(&self) -> Option<String> {
        sqlx::query_scalar("SELECT quarantine_reason FROM sagas WHERE order_id = $1")
            .bind(self.order.as_uuid())
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    /// The step reports in the outbox, oldest first.
    pub async fn reports(&self) -> Vec<(Envelope, SagaStepRecorded)> {
        outbox(&self.db.pool)
            .await
            .into_iter()
            .filter_map(|e| match &e.payload {
                Message::SagaStepRecorded(recorded) => Some((e.clone(), recorded.clone())),
                _ => None,
            })
            .collect()
    }

    pub async fn commands(&self) -> Vec<Envelope> {
        outbox(&self.db.pool).await.into_iter().filter(|e| !matches!(e.payload, Message::SagaStepRecorded(_))).collect()
    }

    pub async fn command_types(&self) -> Vec<MessageType> {
        self.commands().await.iter().map(|e| e.payload.message_type()).collect()
    }

    pub async fn status(&self) -> String {
        sqlx::query_scalar("SELECT status FROM sagas WHERE order_id = $1")
            .bind(self.order.as_uuid())
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    /// Lets the timer fire until the saga's step (with its 10 ms timeout) times out.
    pub async fn time_out(&self) {
        let timer = Timer::new(self.db.pool.clone(), policy(), Duration::from_secs(1));
        let before = self.commands().await.len();
        eventually(Duration::from_secs(5), "the step to time out", || async {
            timer.fire_due(time::OffsetDateTime::now_utc()).await.unwrap();
            (self.commands().await.len() > before).then_some(())
        })
        .await;
    }

    /// Moves the awaited steps' deadlines (the first's, and the second's
    /// when two are awaited) into the saga's state, and the row's deadline
    /// to the earliest, as the orchestrator would have set them.
    pub async fn set_deadlines(&self, deadlines: &[time::OffsetDateTime]) {
        let (mut state,): (serde_json::Value,) =
            sqlx::query_as("SELECT state FROM sagas").fetch_one(&self.db.pool).await.unwrap();
        for (slot, deadline) in ["active", "alongside"].into_iter().zip(deadlines) {
            let text = deadline.format(&time::format_description::well_known::Rfc3339).unwrap();
            state["state"][slot]["deadline"] = text.into();
        }
        sqlx::query("UPDATE sagas SET state = $1, deadline = $2")
            .bind(state)
            .bind(deadlines.iter().min().unwrap())
            .execute(&self.db.pool)
            .await
            .unwrap();
    }
}
