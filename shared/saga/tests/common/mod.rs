//! Fixtures and a small driver for the saga tests.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::time::Duration;

use checkout_domain::{
    CardToken, Currency, CustomerId, EmailAddress, Money, OrderId, OrderLine, OrderLines, PricedLine, Pricing,
    Quantity, Sku,
};
use checkout_messages::payloads::notification::NotificationKind;
use checkout_messages::payloads::order::{CancellationCode, OrderPlaced};
use checkout_messages::payloads::saga::{SagaStepName, StepEntry, StepOutcome};
use checkout_saga::{Command, Input, Operation, Refusal, Saga, SagaPolicy, SagaState, StepPolicy, Transition};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

pub const T0: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);

pub fn policy() -> SagaPolicy {
    SagaPolicy {
        reserve_inventory: StepPolicy::new(Duration::from_secs(5), 3),
        authorize_payment: StepPolicy::new(Duration::from_secs(5), 2),
        after_pivot: StepPolicy::new(Duration::from_secs(5), 4),
        compensation: StepPolicy::new(Duration::from_secs(5), 4),
        // Every transition reports its entries, as most tests read them;
        // `reports.rs` keeps them back.
        report_delay: Duration::ZERO,
    }
}

/// The policy with entries kept back for half a second, as deployed.
pub fn reporting_policy() -> SagaPolicy {
    SagaPolicy { report_delay: Duration::from_millis(500), ..policy() }
}

pub fn order_id() -> OrderId {
    OrderId::from_uuid(Uuid::from_u128(42))
}

pub fn placed() -> OrderPlaced {
    OrderPlaced {
        customer_id: CustomerId::parse("cust-1").unwrap(),
        email: EmailAddress::parse("ada@example.com").unwrap(),
        lines: OrderLines::new(vec![
            OrderLine { sku: Sku::parse("MUG").unwrap(), quantity: Quantity::new(2).unwrap() },
            OrderLine { sku: Sku::parse("TEE").unwrap(), quantity: Quantity::new(1).unwrap() },
        ])
        .unwrap(),
        card_token: CardToken::parse("tok_visa").unwrap(),
    }
}

pub fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::EUR).unwrap()
}

/// The prices the inventory quotes for `placed()`: total EUR 44.99.
pub fn pricing() -> Pricing {
    Pricing::new(vec![
        PricedLine { sku: Sku::parse("MUG").unwrap(), quantity: Quantity::new(2).unwrap(), unit_price: eur(1250) },
        PricedLine { sku: Sku::parse("TEE").unwrap(), quantity: Quantity::new(1).unwrap(), unit_price: eur(1999) },
    ])
    .unwrap()
}

pub fn authorized() -> Input {
    Input::PaymentAuthorized { authorization_id: "auth-1".into(), amount: pricing().total() }
}

/// A saga under test and the clock it runs on.
pub struct Driver {
    pub saga: Saga,
    pub now: OffsetDateTime,
    pub last: Transition,
    pub timeline: Vec<StepEntry>,
}

impl Driver {
    pub fn start() -> Self {
        let last = Saga::start(order_id(), &placed(), T0, &policy());
        Self { saga: last.saga.clone(), now: T0, timeline: last.timeline.clone(), last }
    }

    /// Applies `input` and returns the type names of the commands it produced.
    #[allow(clippy::needless_pass_by_value, reason = "tests read better passing inputs by value")]
    pub fn apply(&mut self, input: Input) -> Vec<&'static str> {
        self.last = self.saga.apply(&input, self.now, &policy());
        self.saga = self.last.saga.clone();
        self.timeline.extend(self.last.timeline.iter().cloned());
        command_names(&self.last.commands)
    }

    /// Moves the clock to the current deadline and lets the timer fire.
    pub fn time_out(&mut self) -> Vec<&'static str> {
        self.now = self.saga.deadline().expect("no active step to time out");
        self.apply(Input::DeadlinePassed)
    }

    /// An operator's action: the commands it produced, or why it was refused.
    pub fn operate(&mut self, operation: Operation, reason: &str) -> Result<Vec<&'static str>, Refusal> {
        self.last = self.saga.operate(operation, "ops@example.com", reason, self.now, &policy())?;
        self.saga = self.last.saga.clone();
        self.timeline.extend(self.last.timeline.iter().cloned());
        Ok(command_names(&self.last.commands))
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// `(step, outcome)` of every timeline entry so far, e.g. `("reserve_inventory", "succeeded")`.
    pub fn history(&self) -> Vec<(SagaStepName, StepOutcome)> {
        self.timeline.iter().map(|entry| (entry.step, entry.outcome)).collect()
    }
}

pub fn command_names(commands: &[Command]) -> Vec<&'static str> {
    commands.iter().map(Command::name).collect()
}

pub fn confirmed() -> Input {
    Input::CustomerNotified { kind: NotificationKind::OrderConfirmed }
}

pub fn cancellation_notified() -> Input {
    Input::CustomerNotified { kind: NotificationKind::OrderCancelled }
}

pub fn cancellation(driver: &Driver) -> (CancellationCode, String) {
    match &driver.saga.state {
        SagaState::Cancelled { reason, .. } => (reason.code, reason.detail.clone()),
        other => panic!("expected cancelled, got {other:?}"),
    }
}

/// Drives a saga to the point where the payment is being authorized and,
/// beside it, the stock committed.
pub fn reserved() -> Driver {
    let mut driver = Driver::start();
    assert_eq!(driver.apply(Input::InventoryReserved { pricing: pricing() }), ["AuthorizePayment", "CommitInventory"]);
    driver
}

/// A reserved saga whose stock is committed: it waits for the payment alone.
pub fn authorizing() -> Driver {
    let mut driver = reserved();
    assert!(driver.apply(Input::InventoryCommitted).is_empty(), "the payment is still awaited");
    driver
}

/// Drives a saga past the pivot: the order is confirmed, the capture and
/// the email sent.
pub fn confirmed_and_both_sent() -> Driver {
    let mut driver = reserved();
    driver.apply(authorized());
    driver.apply(Input::InventoryCommitted);
    assert_eq!(driver.apply(Input::OrderConfirmed), ["CapturePayment", "NotifyOrderConfirmed"]);
    driver
}
