//! The steps that run side by side: authorizing the payment beside
//! committing the stock, and capturing the payment beside emailing the
//! customer.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use checkout_messages::payloads::order::CancellationCode;
use checkout_messages::payloads::saga::{SagaStepName as S, StepOutcome as O};
use checkout_saga::{
    ConfirmationEmail, Ignored, Input, InventoryHold, Operation, PaymentHold, SagaState, SagaStatus, Step,
};
use common::{
    Driver, authorized, authorizing, cancellation, cancellation_notified, confirmed, confirmed_and_both_sent, eur,
    reserved,
};

#[test]
fn the_payment_and_the_commit_run_side_by_side_and_the_order_is_confirmed_after_the_later() {
    let mut driver = reserved();
    let awaited: Vec<Step> = driver.saga.awaiting().map(|active| active.step).collect();
    assert_eq!(awaited, [Step::AuthorizePayment, Step::CommitInventory]);
    assert_eq!((driver.saga.payment, driver.saga.inventory), (PaymentHold::Requested, InventoryHold::CommitRequested));
    assert!(driver.apply(Input::InventoryCommitted).is_empty(), "the payment is still awaited");
    assert_eq!(driver.saga.active().map(|active| active.step), Some(Step::AuthorizePayment));
    assert!(driver.apply(Input::InventoryCommitted).is_empty(), "a second copy changes nothing");
    assert_eq!(driver.last.ignored, Some(Ignored::NotAwaited));
    assert_eq!(driver.apply(authorized()), ["ConfirmOrder"]);
    assert_eq!(driver.saga.awaiting().count(), 1);
}

#[test]
fn two_steps_that_time_out_together_are_resent_together_and_the_later_deadline_waits() {
    let mut driver = reserved();
    assert_eq!(driver.time_out(), ["AuthorizePayment", "CommitInventory"]);
    let attempts: Vec<(Step, u32)> = driver.saga.awaiting().map(|active| (active.step, active.attempt)).collect();
    assert_eq!(attempts, [(Step::AuthorizePayment, 2), (Step::CommitInventory, 2)]);
    // The commit answers; the payment's deadline alone wakes the saga now.
    driver.apply(Input::InventoryCommitted);
    assert_eq!(driver.saga.deadline(), driver.saga.active().map(|active| active.deadline));
    // Its last attempt runs out: void it, and put back the stock committed beside it.
    assert_eq!(driver.time_out(), ["VoidPayment"]);
    assert_eq!(driver.apply(Input::PaymentVoided), ["ReleaseInventory"]);
}

#[test]
fn an_operator_retry_resends_both_steps_awaited_side_by_side() {
    let mut driver = reserved();
    assert_eq!(driver.operate(Operation::Retry, "nudge"), Ok(vec!["AuthorizePayment", "CommitInventory"]));
    assert!(driver.saga.awaiting().all(|active| active.attempt == 1));
    assert_eq!(driver.saga.awaiting().count(), 2);
}

#[test]
fn a_reservation_that_expires_while_its_commit_is_on_the_way_leaves_the_outcome_to_the_commit() {
    let mut driver = reserved();
    assert!(driver.apply(Input::ReservationExpired).is_empty());
    assert_eq!(driver.last.ignored, Some(Ignored::NotAwaited));
    // The stock went to another order: the commit is rejected and the payment voided.
    let rejected = Input::InventoryCommitRejected { detail: "hold expired, stock gone".into() };
    assert_eq!(driver.apply(rejected), ["VoidPayment"], "no release: the stock is already back");
    assert_eq!(driver.apply(Input::PaymentVoided), ["CancelOrder"]);
    driver.apply(Input::OrderCancelled);
    driver.apply(cancellation_notified());
    assert_eq!(cancellation(&driver).0, CancellationCode::ReservationExpired);
}

/// A saga saved while the commit still followed the authorization: it
/// waits for the payment alone, its stock held but not committed.
fn authorizing_before_side_by_side() -> Driver {
    let mut driver = authorizing();
    let mut stored = serde_json::to_value(&driver.saga).unwrap();
    stored["inventory"] = "held".into();
    assert!(stored["state"].as_object_mut().unwrap().remove("alongside").is_none(), "one step awaited");
    driver.saga = serde_json::from_value(stored).unwrap();
    driver
}

#[test]
fn a_saga_saved_before_steps_ran_side_by_side_commits_after_its_authorization() {
    let mut driver = authorizing_before_side_by_side();
    assert_eq!(driver.apply(authorized()), ["CommitInventory"]);
    assert_eq!(driver.apply(Input::InventoryCommitted), ["ConfirmOrder"]);

    // And it still hears of its reservation's expiry: the stock is back, so only the payment is voided.
    let mut driver = authorizing_before_side_by_side();
    assert_eq!(driver.apply(Input::ReservationExpired), ["VoidPayment"]);
    assert_eq!(driver.apply(Input::PaymentVoided), ["CancelOrder"]);
    driver.apply(Input::OrderCancelled);
    driver.apply(cancellation_notified());
    assert_eq!(cancellation(&driver).0, CancellationCode::ReservationExpired);
}

#[test]
fn after_the_pivot_a_step_given_up_beside_another_still_hears_the_other_and_sends_nothing_twice() {
    let mut driver = confirmed_and_both_sent();
    // Neither answers: both are resent together until the capture, the first, runs out.
    let attempts = common::policy().after_pivot.max_attempts as usize;
    for _ in 1..attempts {
        assert_eq!(driver.time_out(), ["CapturePayment", "NotifyOrderConfirmed"]);
    }
    assert!(driver.time_out().is_empty());
    assert!(matches!(&driver.saga.state, SagaState::NeedsAttention { step: Step::CapturePayment, .. }));
    // The email was sent after all: recorded, not sent again.
    assert!(driver.apply(confirmed()).is_empty());
    assert_eq!((driver.last.ignored, driver.saga.confirmation_email), (None, ConfirmationEmail::Sent));
    assert!(driver.history().contains(&(S::NotifyCustomer, O::Succeeded)));
    // The capture's late reply completes the saga without a second email.
    let amount = driver.saga.phase.pricing().unwrap().total();
    assert!(driver.apply(Input::PaymentCaptured { amount }).is_empty());
    assert_eq!(driver.saga.status(), SagaStatus::Completed);
}

#[test]
fn after_the_pivot_an_operator_retry_of_a_given_up_email_completes_a_captured_saga() {
    let mut driver = confirmed_and_both_sent();
    assert!(driver.apply(Input::PaymentCaptured { amount: eur(4499) }).is_empty());
    while driver.saga.status() == SagaStatus::Running {
        assert!(driver.time_out().iter().all(|command| *command == "NotifyOrderConfirmed"));
    }
    assert!(matches!(&driver.saga.state, SagaState::NeedsAttention { step: Step::NotifyCustomer, .. }));
    assert_eq!(driver.operate(Operation::Retry, "mail is back"), Ok(vec!["NotifyOrderConfirmed"]));
    assert!(driver.apply(confirmed()).is_empty(), "captured already: nothing more to send");
    assert_eq!(driver.saga.status(), SagaStatus::Completed);
}

#[test]
fn a_saga_saved_before_the_email_went_beside_the_capture_emails_after_it() {
    let mut driver = confirmed_and_both_sent();
    let mut stored = serde_json::to_value(&driver.saga).unwrap();
    // As saved then: capturing alone, nothing known of the email.
    stored.as_object_mut().unwrap().remove("confirmation_email");
    stored["state"].as_object_mut().unwrap().remove("alongside");
    driver.saga = serde_json::from_value(stored).unwrap();
    assert_eq!(driver.saga.confirmation_email, ConfirmationEmail::None);
    assert_eq!(driver.apply(Input::PaymentCaptured { amount: eur(4499) }), ["NotifyOrderConfirmed"]);
    assert!(driver.apply(confirmed()).is_empty());
    assert_eq!(driver.saga.status(), SagaStatus::Completed);
}
