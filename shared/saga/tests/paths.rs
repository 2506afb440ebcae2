//! Every path through the saga, as given / when / then.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use checkout_messages::payloads::inventory::RejectionCode;
use checkout_messages::payloads::order::CancellationCode;
use checkout_messages::payloads::payment::DeclineCode;
use checkout_messages::payloads::saga::{SagaStepName as S, StepOutcome as O};
use checkout_saga::{
    Command, Ignored, Input, InventoryHold, Operation, PaymentHold, Phase, Refusal, Saga, SagaState, SagaStatus, Step,
};
use common::{
    Driver, authorized, authorizing, cancellation, cancellation_notified, confirmed, confirmed_and_both_sent, eur,
    pricing, reserved,
};

#[test]
fn the_happy_path_runs_every_step_in_order_and_completes() {
    let mut driver = Driver::start();
    assert_eq!(command_names(&driver.last.commands), ["ReserveInventory"]);
    assert_eq!(driver.apply(Input::InventoryReserved { pricing: pricing() }), ["AuthorizePayment", "CommitInventory"]);
    assert!(matches!(&driver.last.commands[0], Command::AuthorizePayment { amount, .. } if *amount == eur(4499)));
    assert_eq!(driver.apply(authorized()), Vec::<&str>::new(), "the commit is still awaited");
    assert_eq!(driver.apply(Input::InventoryCommitted), ["ConfirmOrder"]);
    assert_eq!(driver.apply(Input::OrderConfirmed), ["CapturePayment", "NotifyOrderConfirmed"]);
    assert_eq!(driver.apply(Input::PaymentCaptured { amount: eur(4499) }), Vec::<&str>::new(), "the email is awaited");
    assert_eq!(driver.apply(confirmed()), Vec::<&str>::new());
    assert_eq!(driver.saga.status(), SagaStatus::Completed);
    assert_eq!((driver.saga.payment, driver.saga.inventory), (PaymentHold::Captured, InventoryHold::Committed));
    let started: Vec<S> = driver.history().into_iter().filter(|(_, o)| *o == O::Started).map(|(s, _)| s).collect();
    assert_eq!(
        started,
        [
            S::ReserveInventory,
            S::AuthorizePayment,
            S::CommitInventory,
            S::ConfirmOrder,
            S::CapturePayment,
            S::NotifyCustomer
        ]
    );
    assert_eq!(driver.saga.deadline(), None, "a finished saga sets no timer");
}

fn command_names(commands: &[Command]) -> Vec<&'static str> {
    common::command_names(commands)
}

#[test]
fn out_of_stock_cancels_and_releases_nothing_because_nothing_was_held() {
    let mut driver = Driver::start();
    let rejected = Input::InventoryRejected {
        code: RejectionCode::OutOfStock,
        sku: checkout_domain::Sku::parse("TEE").unwrap(),
        detail: "TEE: 1 requested, 0 available".into(),
    };
    assert_eq!(driver.apply(rejected), ["CancelOrder"]);
    assert_eq!(driver.apply(Input::OrderCancelled), ["NotifyOrderCancelled"]);
    assert_eq!(driver.apply(cancellation_notified()), Vec::<&str>::new());
    assert_eq!(cancellation(&driver), (CancellationCode::OutOfStock, "TEE: 1 requested, 0 available".into()));
}

#[test]
fn an_unknown_sku_cancels_with_that_reason() {
    let mut driver = Driver::start();
    let rejected = Input::InventoryRejected {
        code: RejectionCode::UnknownSku,
        sku: checkout_domain::Sku::parse("NOPE").unwrap(),
        detail: "NOPE is not in the catalog".into(),
    };
    driver.apply(rejected);
    driver.apply(Input::OrderCancelled);
    driver.apply(cancellation_notified());
    assert_eq!(cancellation(&driver).0, CancellationCode::UnknownSku);
}

#[test]
fn a_declined_payment_releases_the_stock_then_cancels_and_tells_the_customer() {
    let mut driver = reserved();
    let declined = Input::PaymentDeclined { code: DeclineCode::InsufficientFunds, detail: "insufficient funds".into() };
    assert_eq!(driver.apply(declined), ["ReleaseInventory"], "nothing to void: the card was declined");
    // The commit sent beside the authorization lands first; the release puts the stock back.
    assert!(driver.apply(Input::InventoryCommitted).is_empty());
    assert_eq!(driver.last.ignored, Some(Ignored::NotAwaited));
    assert_eq!(driver.apply(Input::InventoryReleased), ["CancelOrder"]);
    assert!(matches!(&driver.last.commands[0], Command::CancelOrder { pricing: p, .. } if *p == Some(pricing())));
    assert_eq!(driver.apply(Input::OrderCancelled), ["NotifyOrderCancelled"]);
    assert_eq!(driver.apply(cancellation_notified()), Vec::<&str>::new());
    assert_eq!(cancellation(&driver), (CancellationCode::PaymentDeclined, "insufficient funds".into()));
    assert_eq!(driver.saga.inventory, InventoryHold::Released);
}

#[test]
fn a_payment_that_never_answers_is_retried_then_voided_released_and_cancelled() {
    let mut driver = authorizing();
    assert_eq!(driver.time_out(), ["AuthorizePayment"], "the first timeout retries");
    assert_eq!(driver.saga.active().unwrap().attempt, 2);
    assert_eq!(driver.time_out(), ["VoidPayment"], "the authorization may still succeed: void it");
    assert_eq!(driver.apply(Input::PaymentVoided), ["ReleaseInventory"]);
    assert_eq!(driver.apply(Input::InventoryReleased), ["CancelOrder"]);
    assert_eq!(driver.apply(Input::OrderCancelled), ["NotifyOrderCancelled"]);
    driver.apply(cancellation_notified());
    assert_eq!(cancellation(&driver).0, CancellationCode::PaymentTimedOut);
    assert!(driver.history().contains(&(S::AuthorizePayment, O::TimedOut)));
}

#[test]
fn an_authorization_arriving_after_cancellation_is_voided() {
    let mut driver = authorizing();
    driver.time_out();
    driver.time_out();
    for reply in [Input::PaymentVoided, Input::InventoryReleased, Input::OrderCancelled, cancellation_notified()] {
        driver.apply(reply);
    }
    assert_eq!(driver.saga.status(), SagaStatus::Cancelled);

    assert_eq!(driver.apply(authorized()), ["VoidPayment"]);
    assert_eq!(driver.saga.payment, PaymentHold::VoidRequested);
    assert_eq!(driver.apply(authorized()), Vec::<&str>::new(), "a second copy waits for the same void");
    driver.apply(Input::PaymentVoided);
    assert_eq!((driver.saga.status(), driver.saga.payment), (SagaStatus::Cancelled, PaymentHold::Voided));
}

#[test]
fn an_authorization_arriving_during_compensation_is_covered_by_the_pending_void() {
    let mut driver = authorizing();
    driver.time_out();
    driver.time_out();
    assert_eq!(driver.saga.active().unwrap().step, Step::VoidPayment);
    assert_eq!(driver.apply(authorized()), Vec::<&str>::new());
    assert_eq!(driver.last.ignored, Some(Ignored::NotAwaited));
}

#[test]
fn a_reservation_arriving_after_cancellation_is_released() {
    let mut driver = Driver::start();
    for _ in 0..3 {
        driver.time_out();
    }
    assert_eq!(command_names(&driver.last.commands), ["ReleaseInventory"], "the reservation may have happened");
    for reply in [Input::InventoryReleased, Input::OrderCancelled, cancellation_notified()] {
        driver.apply(reply);
    }
    assert_eq!(cancellation(&driver).0, CancellationCode::InventoryTimedOut);
    assert_eq!(driver.apply(Input::InventoryReserved { pricing: pricing() }), ["ReleaseInventory"]);
}

#[test]
fn after_the_pivot_failures_are_never_compensated() {
    let mut driver = confirmed_order();
    for _ in 0..4 {
        assert_eq!(driver.time_out().len(), usize::from(driver.saga.status() == SagaStatus::Running));
    }
    assert!(matches!(&driver.saga.state, SagaState::NeedsAttention { step: Step::CapturePayment, .. }));
    assert!(!driver.history().iter().any(|(s, _)| matches!(s, S::VoidPayment | S::CancelOrder)));
}

#[test]
fn a_capture_that_succeeds_after_its_attempts_ran_out_still_completes_the_saga() {
    let mut driver = confirmed_order();
    while driver.saga.status() == SagaStatus::Running {
        driver.time_out();
    }
    assert!(matches!(&driver.saga.state, SagaState::NeedsAttention { step: Step::CapturePayment, .. }));
    // The gateway did capture; its reply was only late. The customer was emailed beside it.
    let amount = driver.saga.phase.pricing().unwrap().total();
    assert_eq!(driver.apply(Input::PaymentCaptured { amount }), Vec::<&str>::new());
    assert_eq!(driver.saga.status(), SagaStatus::Completed);
    // A second copy of the late reply changes nothing.
    assert!(driver.apply(Input::PaymentCaptured { amount }).is_empty());
}

#[test]
fn a_reservation_that_cannot_be_committed_voids_the_payment_before_anything_is_promised() {
    let mut driver = reserved();
    assert!(driver.apply(authorized()).is_empty(), "the commit is still awaited");
    assert_eq!(
        driver.apply(Input::InventoryCommitRejected { detail: "hold expired, stock gone".into() }),
        ["VoidPayment"],
        "nothing to release: the stock is gone"
    );
    assert_eq!(driver.apply(Input::PaymentVoided), ["CancelOrder"]);
    driver.apply(Input::OrderCancelled);
    driver.apply(cancellation_notified());
    assert_eq!(cancellation(&driver).0, CancellationCode::ReservationExpired);
    assert!(!driver.history().iter().any(|(s, o)| *s == S::ConfirmOrder && *o == O::Started), "never confirmed");
}

#[test]
fn a_commit_that_is_never_answered_puts_the_stock_back_and_voids_the_payment() {
    let mut driver = reserved();
    assert!(driver.apply(authorized()).is_empty(), "the commit is still awaited");
    while driver.saga.status() == SagaStatus::Running {
        driver.time_out();
    }
    assert_eq!(command_names(&driver.last.commands), ["VoidPayment"]);
    assert_eq!(driver.apply(Input::PaymentVoided), ["ReleaseInventory"], "the commit may have happened");
    assert_eq!(driver.apply(Input::InventoryReleased), ["CancelOrder"]);
}

/// Past the pivot, the customer emailed: the capture alone is awaited.
fn confirmed_order() -> Driver {
    let mut driver = confirmed_and_both_sent();
    assert!(driver.apply(confirmed()).is_empty());
    assert_eq!(driver.saga.awaiting().map(|active| active.step).collect::<Vec<_>>(), [Step::CapturePayment]);
    driver
}

#[test]
fn an_operator_aborts_a_saga_before_the_pivot_and_everything_held_is_given_back() {
    let mut driver = reserved();
    assert_eq!(driver.operate(Operation::Abort, "customer called"), Ok(vec!["VoidPayment"]));
    assert_eq!(driver.apply(Input::PaymentVoided), ["ReleaseInventory"]);
    assert_eq!(driver.apply(Input::InventoryReleased), ["CancelOrder"]);
    driver.apply(Input::OrderCancelled);
    driver.apply(cancellation_notified());
    assert_eq!(cancellation(&driver), (CancellationCode::AbortedByOperator, "customer called".to_owned()));
    let aborted: Vec<_> = driver.timeline.iter().filter(|e| e.outcome == O::Failed).collect();
    assert_eq!(aborted.iter().map(|e| e.step).collect::<Vec<_>>(), [S::AuthorizePayment, S::CommitInventory]);
    assert!(aborted.iter().all(|e| e.detail.as_deref() == Some("aborted by ops@example.com: customer called")));
}

#[test]
fn an_abort_after_the_pivot_or_while_compensating_or_finished_is_refused_and_changes_nothing() {
    let mut driver = confirmed_order();
    let before = driver.saga.clone();
    assert_eq!(driver.operate(Operation::Abort, "too late"), Err(Refusal::PastPivot(Step::CapturePayment)));
    assert_eq!(driver.saga, before);

    let mut driver = reserved();
    driver.apply(Input::PaymentDeclined { code: DeclineCode::CardDeclined, detail: "no".into() });
    assert_eq!(driver.operate(Operation::Abort, "again"), Err(Refusal::Compensating(Step::ReleaseInventory)));
    for reply in [Input::InventoryReleased, Input::OrderCancelled, cancellation_notified()] {
        driver.apply(reply);
    }
    assert_eq!(driver.operate(Operation::Abort, "x"), Err(Refusal::Finished(SagaStatus::Cancelled)));
    assert_eq!(driver.operate(Operation::Retry, "x"), Err(Refusal::Finished(SagaStatus::Cancelled)));
}

#[test]
fn an_operator_retries_a_step_that_ran_out_of_attempts_with_a_fresh_budget() {
    let mut driver = confirmed_order();
    while driver.saga.status() == SagaStatus::Running {
        driver.time_out();
    }
    assert!(matches!(driver.saga.state, SagaState::NeedsAttention { step: Step::CapturePayment, .. }));
    assert_eq!(driver.operate(Operation::Retry, "gateway is back"), Ok(vec!["CapturePayment"]));
    let active = driver.saga.active().unwrap().clone();
    assert_eq!((active.step, active.attempt), (Step::CapturePayment, 1));
    assert_eq!(driver.saga.status(), SagaStatus::Running);
    // The whole budget again: every attempt but the last is resent.
    let attempts = common::policy().after_pivot.max_attempts as usize;
    for _ in 1..attempts {
        assert_eq!(driver.time_out(), ["CapturePayment"]);
    }
    assert_eq!(driver.time_out(), Vec::<&str>::new());
    assert_eq!(driver.saga.status(), SagaStatus::NeedsAttention);
}

#[test]
fn a_compensation_that_ran_out_carries_on_after_a_late_reply_or_an_operators_retry() {
    let mut driver = reserved();
    driver.apply(Input::PaymentDeclined { code: DeclineCode::CardDeclined, detail: "no".into() });
    while driver.saga.status() == SagaStatus::Compensating {
        driver.time_out();
    }
    assert!(matches!(
        &driver.saga.state,
        SagaState::NeedsAttention { step: Step::ReleaseInventory, compensation: Some(left), .. }
            if left.remaining == [Step::CancelOrder, Step::NotifyCancellation]
    ));
    let stuck = driver.saga.clone();
    // The operator sends the release again, and the compensation goes on from there.
    assert_eq!(driver.operate(Operation::Retry, "inventory fixed"), Ok(vec!["ReleaseInventory"]));
    assert_eq!(driver.saga.status(), SagaStatus::Compensating);
    // Or, without the operator, the release's late reply does the same.
    driver.saga = stuck;
    assert_eq!(driver.apply(Input::InventoryReleased), ["CancelOrder"]);
    driver.apply(Input::OrderCancelled);
    driver.apply(cancellation_notified());
    assert_eq!(cancellation(&driver).0, CancellationCode::PaymentDeclined);
}

#[test]
fn an_authorization_for_the_wrong_amount_is_voided_and_the_order_cancelled() {
    let mut driver = reserved();
    let wrong = Input::PaymentAuthorized { authorization_id: "auth-1".into(), amount: eur(1) };
    assert_eq!(driver.apply(wrong), ["VoidPayment"]);
    assert_eq!(driver.saga.status(), SagaStatus::Compensating);
}

#[test]
fn a_duplicate_reply_changes_nothing() {
    let mut driver = reserved();
    let before = driver.saga.clone();
    assert_eq!(driver.apply(Input::InventoryReserved { pricing: pricing() }), Vec::<&str>::new());
    assert_eq!((driver.saga.clone(), driver.last.ignored), (before, Some(Ignored::NotAwaited)));
}

#[test]
fn a_timer_firing_early_changes_nothing() {
    let mut driver = reserved();
    driver.advance(Duration::from_secs(1));
    let before = driver.saga.clone();
    assert_eq!(driver.apply(Input::DeadlinePassed), Vec::<&str>::new());
    assert_eq!((driver.saga.clone(), driver.last.ignored), (before, Some(Ignored::DeadlineNotDue)));
}

#[test]
fn a_reply_for_another_step_changes_nothing() {
    let mut driver = reserved();
    let before = driver.saga.clone();
    assert_eq!(driver.apply(Input::OrderConfirmed), Vec::<&str>::new());
    assert_eq!(driver.saga, before);
}

#[test]
fn inventory_that_never_answers_is_released_in_case_it_reserved() {
    let mut driver = Driver::start();
    assert_eq!(driver.time_out(), ["ReserveInventory"]);
    assert_eq!(driver.time_out(), ["ReserveInventory"]);
    assert_eq!(driver.time_out(), ["ReleaseInventory"]);
    assert_eq!(driver.saga.status(), SagaStatus::Compensating);
}

#[test]
fn lines_priced_differently_from_the_order_are_rejected() {
    let mut driver = Driver::start();
    let other = checkout_domain::Pricing::new(vec![checkout_domain::PricedLine {
        sku: checkout_domain::Sku::parse("MUG").unwrap(),
        quantity: checkout_domain::Quantity::new(9).unwrap(),
        unit_price: eur(1),
    }])
    .unwrap();
    assert_eq!(driver.apply(Input::InventoryReserved { pricing: other }), ["ReleaseInventory"]);
}

#[test]
fn the_saga_survives_a_round_trip_through_its_stored_form() {
    let driver = reserved();
    let stored = serde_json::to_string(&driver.saga).unwrap();
    let restored: Saga = serde_json::from_str(&stored).unwrap();
    assert_eq!(restored, driver.saga);
}

#[test]
fn each_phase_carries_what_its_steps_need() {
    let mut driver = Driver::start();
    assert_eq!(driver.saga.phase, Phase::Reserving);
    driver.apply(Input::InventoryReserved { pricing: pricing() });
    assert_eq!(driver.saga.phase, Phase::Reserved { pricing: pricing() });
    driver.apply(authorized());
    assert_eq!(driver.saga.phase, Phase::Authorized { pricing: pricing(), authorization_id: "auth-1".into() });
}

#[test]
fn a_saga_stored_before_phases_reads_back_in_its_phase() {
    let mut driver = reserved();
    driver.apply(authorized());
    let mut stored = serde_json::to_value(&driver.saga).unwrap();
    // The earlier shape: two optional fields where the phase is now.
    let fields = stored.as_object_mut().unwrap();
    fields.remove("phase");
    let legacy = |pricing: serde_json::Value, authorization: serde_json::Value| {
        let mut fields = fields.clone();
        fields.insert("pricing".into(), pricing);
        fields.insert("authorization_id".into(), authorization);
        serde_json::from_value::<Saga>(serde_json::Value::Object(fields)).unwrap().phase
    };
    let priced = serde_json::to_value(pricing()).unwrap();
    assert_eq!(legacy(serde_json::Value::Null, serde_json::Value::Null), Phase::Reserving);
    assert_eq!(legacy(priced.clone(), serde_json::Value::Null), Phase::Reserved { pricing: pricing() });
    assert_eq!(
        legacy(priced, "auth-1".into()),
        Phase::Authorized { pricing: pricing(), authorization_id: "auth-1".into() }
    );
}

fn cancel(reason: Option<&str>) -> Input {
    Input::CancelRequested { reason: reason.map(str::to_owned) }
}

#[test]
fn a_customer_cancel_while_reserving_releases_whatever_the_reservation_may_hold() {
    let mut driver = Driver::start();
    assert_eq!(driver.apply(cancel(Some("wrong size"))), ["ReleaseInventory"]);
    // The reservation's reply was already on its way: the release covers it.
    assert!(driver.apply(Input::InventoryReserved { pricing: pricing() }).is_empty());
    assert_eq!(driver.apply(Input::InventoryReleased), ["CancelOrder"]);
    driver.apply(Input::OrderCancelled);
    driver.apply(cancellation_notified());
    assert_eq!(cancellation(&driver), (CancellationCode::CustomerCancelled, "wrong size".to_owned()));
    let failed = driver.timeline.iter().find(|e| e.outcome == O::Failed).unwrap();
    assert_eq!(failed.step, S::ReserveInventory);
    assert_eq!(failed.detail.as_deref(), Some("cancelled by the customer: wrong size"));
}

#[test]
fn a_customer_cancel_while_authorizing_voids_the_payment_and_releases_the_stock() {
    let mut driver = reserved();
    assert_eq!(driver.apply(cancel(None)), ["VoidPayment"]);
    assert_eq!(driver.apply(Input::PaymentVoided), ["ReleaseInventory"]);
    assert_eq!(driver.apply(Input::InventoryReleased), ["CancelOrder"]);
    driver.apply(Input::OrderCancelled);
    driver.apply(cancellation_notified());
    assert_eq!(cancellation(&driver), (CancellationCode::CustomerCancelled, "cancelled by the customer".to_owned()));
    assert_eq!((driver.saga.payment, driver.saga.inventory), (PaymentHold::Voided, InventoryHold::Released));
}

#[test]
fn a_customer_cancel_from_the_pivot_on_is_refused_and_changes_nothing() {
    let mut driver = reserved();
    driver.apply(authorized());
    assert_eq!(driver.apply(Input::InventoryCommitted), ["ConfirmOrder"]);
    let before = driver.saga.clone();
    assert!(driver.apply(cancel(Some("too late"))).is_empty());
    assert_eq!(driver.last.ignored, Some(Ignored::CancelRefused));
    assert_eq!(driver.saga, before);
    assert_eq!(driver.apply(Input::OrderConfirmed), ["CapturePayment", "NotifyOrderConfirmed"]);
}

#[test]
fn a_customer_cancel_while_compensating_or_after_cancelling_is_absorbed() {
    let mut driver = reserved();
    driver.apply(Input::PaymentDeclined { code: DeclineCode::CardDeclined, detail: "no".into() });
    assert!(driver.apply(cancel(None)).is_empty());
    assert_eq!(driver.last.ignored, Some(Ignored::AlreadyCompensating));
    for reply in [Input::InventoryReleased, Input::OrderCancelled, cancellation_notified()] {
        driver.apply(reply);
    }
    assert!(driver.apply(cancel(None)).is_empty());
    assert_eq!(driver.last.ignored, Some(Ignored::Finished));
    assert_eq!(cancellation(&driver).0, CancellationCode::PaymentDeclined);
}
