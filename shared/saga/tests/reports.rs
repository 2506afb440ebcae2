//! Reporting a saga's steps in fewer records: entries wait in the saga until
//! its status changes or it ends, or until the timer finds them due.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use checkout_messages::payloads::saga::{SagaStepName as S, StepEntry, StepOutcome as O};
use checkout_saga::{Input, Saga, SagaPolicy, SagaStatus, Transition};
use common::{T0, authorized, confirmed, order_id, placed, pricing, reporting_policy};
use time::OffsetDateTime;

/// A saga under the reporting policy, and every report it made.
struct Reporter {
    saga: Saga,
    now: OffsetDateTime,
    policy: SagaPolicy,
    reports: Vec<Vec<StepEntry>>,
}

impl Reporter {
    fn start(policy: SagaPolicy) -> Self {
        let start = Saga::start(order_id(), &placed(), T0, &policy);
        let mut reporter = Self { saga: start.saga.clone(), now: T0, policy, reports: Vec::new() };
        reporter.take(start);
        reporter
    }

    fn apply(&mut self, input: &Input, after: Duration) {
        self.now += after;
        let transition = self.saga.apply(input, self.now, &self.policy);
        self.take(transition);
    }

    fn take(&mut self, transition: Transition) {
        if !transition.timeline.is_empty() {
            self.reports.push(transition.timeline);
        }
        self.saga = transition.saga;
    }

    fn shapes(&self) -> Vec<Vec<(S, O)>> {
        self.reports.iter().map(|report| report.iter().map(|e| (e.step, e.outcome)).collect()).collect()
    }
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_confirmed_checkout_reports_its_steps_once_at_its_end() {
    let mut saga = Reporter::start(reporting_policy());
    assert!(saga.reports.is_empty(), "the first step waits to be reported with later ones");
    assert_eq!(saga.saga.report_due(), Some(T0 + Duration::from_millis(500)));
    saga.apply(&Input::InventoryReserved { pricing: pricing() }, 3 * MS);
    saga.apply(&Input::InventoryCommitted, 4 * MS);
    assert!(saga.reports.is_empty());
    saga.apply(&authorized(), 5 * MS);
    assert!(saga.reports.is_empty(), "the confirm command waits too: the order service needs no report with it");
    saga.apply(&Input::OrderConfirmed, 6 * MS);
    saga.apply(&Input::PaymentCaptured { amount: pricing().total() }, 7 * MS);
    saga.apply(&confirmed(), 8 * MS);
    assert_eq!(saga.saga.status(), SagaStatus::Completed);
    assert_eq!(
        saga.shapes(),
        [vec![
            (S::ReserveInventory, O::Started),
            (S::ReserveInventory, O::Succeeded),
            (S::AuthorizePayment, O::Started),
            (S::CommitInventory, O::Started),
            (S::CommitInventory, O::Succeeded),
            (S::AuthorizePayment, O::Succeeded),
            (S::ConfirmOrder, O::Started),
            (S::ConfirmOrder, O::Succeeded),
            (S::CapturePayment, O::Started),
            (S::NotifyCustomer, O::Started),
            (S::CapturePayment, O::Succeeded),
            (S::NotifyCustomer, O::Succeeded),
        ]]
    );
    // Each entry keeps the time its transition happened.
    let times: Vec<i128> = saga.reports.concat().iter().map(|e| (e.at.unwrap() - T0).whole_milliseconds()).collect();
    assert_eq!(times, [0, 3, 3, 3, 7, 12, 12, 18, 18, 18, 25, 33]);
    assert_eq!(saga.saga.unreported, None);
}

#[test]
fn a_saga_that_waits_past_the_delay_has_its_entries_reported_by_the_timer_and_the_next_wait_starts_afresh() {
    let mut saga = Reporter::start(reporting_policy());
    saga.apply(&Input::InventoryReserved { pricing: pricing() }, 300 * MS);
    assert_eq!(saga.saga.report_due(), Some(T0 + 500 * MS), "due by the first entry kept back");
    let reported = saga.saga.take_unreported();
    assert_eq!(reported.len(), 4, "{reported:?}");
    assert_eq!(saga.saga.report_due(), None);
    saga.apply(&Input::InventoryCommitted, 400 * MS);
    assert!(saga.reports.is_empty());
    assert_eq!(saga.saga.report_due(), Some(T0 + 1200 * MS));
}

#[test]
fn a_failure_is_reported_at_once_and_so_is_every_status_change() {
    let mut saga = Reporter::start(reporting_policy());
    saga.apply(&Input::InventoryReserved { pricing: pricing() }, MS);
    let declined = Input::PaymentDeclined {
        code: checkout_messages::payloads::payment::DeclineCode::InsufficientFunds,
        detail: "insufficient funds".into(),
    };
    saga.apply(&declined, MS);
    assert_eq!(saga.saga.status(), SagaStatus::Compensating);
    let last = saga.shapes().pop().unwrap();
    assert_eq!(last.first(), Some(&(S::ReserveInventory, O::Started)), "the entries kept back come first");
    assert_eq!(last.last(), Some(&(S::ReleaseInventory, O::Started)), "a declined payment holds nothing to void");
    assert_eq!(saga.saga.unreported, None);
}

#[test]
fn with_no_delay_every_transition_reports_its_own_entries() {
    let policy = SagaPolicy { report_delay: Duration::ZERO, ..reporting_policy() };
    let mut saga = Reporter::start(policy);
    saga.apply(&Input::InventoryReserved { pricing: pricing() }, MS);
    saga.apply(&Input::InventoryCommitted, MS);
    assert_eq!(saga.reports.len(), 3);
    assert_eq!(saga.saga.unreported, None);
}
