//! Model-based properties: the saga runs against simulated participants whose
//! replies are duplicated, interleaved across participants and delayed past
//! any number of deadlines (never lost: the outbox guarantees delivery, and
//! each participant's replies keep their order, as on a Kafka partition),
//! whose reservations expire and whose payment gateway answers late. After the chaos, the
//! participants answer fairly until the saga finishes. Then:
//!
//! - every run ends: completed, cancelled, or needing attention after the pivot;
//! - a completed order is confirmed, captured, committed and emailed once;
//! - a cancelled order holds no money and no stock, and is emailed once;
//! - money is never captured for an order that is not confirmed;
//! - no compensation starts twice;
//! - an operator's retry applies to any saga that has not finished, an abort
//!   only before the pivot; an accepted abort ends in a cancellation saying so;
//! - a customer's cancel, sent at any moment the order is still pending, has
//!   one outcome: accepted before the pivot, ending cancelled for
//!   `customer_cancelled` with nothing held, or refused from the pivot on,
//!   ending with the order confirmed — never both, never stuck;
//! - money is never captured without the stock committed;
//! - applying any input a second time changes nothing;
//! - the saga waits on one step at a time, or on one of the two pairs that
//!   need nothing of each other;
//! - with reports kept back (and the timer reporting them when due, at any
//!   moment), no timeline entry is lost, repeated or reordered; a saga that is
//!   neither running nor compensating, or that sends the order service a
//!   command, keeps none back; what it keeps is due half a second after the
//!   first of it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "properties/participants.rs"]
mod participants;

use checkout_messages::payloads::notification::NotificationKind;
use checkout_messages::payloads::order::CancellationCode;
use checkout_messages::payloads::saga::{SagaStepName, StepEntry, StepOutcome};
use checkout_saga::{Ignored, Input, Operation, Saga, SagaState, SagaStatus, Step, Transition};
use common::{T0, order_id, placed, reporting_policy as policy};
use participants::{Card, INVENTORY, Money, ORDER, Order, PAYMENT, Stock, World};
use proptest::prelude::*;
use time::OffsetDateTime;

#[derive(Clone, Copy, Debug)]
enum Chaos {
    /// Deliver the oldest reply of a participant (0 inventory, 1 payment, 2 order, 3 notification).
    Deliver(usize),
    /// Deliver again the last input the saga received.
    Redeliver,
    /// Let time pass until the saga's deadline.
    FireDeadline,
    /// The inventory's hold times out.
    ExpireReservation,
    /// A gateway that did not answer now approves, even if a void reached it first.
    LateApproval,
    /// An operator re-sends the step the saga waits on or gave up on.
    OperatorRetry,
    /// An operator asks to stop the saga.
    OperatorAbort,
    /// The customer asks to cancel; the order service passes it on (on the
    /// order's own topic, behind its replies) only while the order is pending.
    CustomerCancel,
    /// The timer reports the entries the saga kept back, once they are due.
    ReportDue,
}

struct Simulation {
    saga: Saga,
    now: OffsetDateTime,
    world: World,
    /// The entries reported, in the order they were.
    timeline: Vec<StepEntry>,
    last_input: Option<Input>,
    /// Why the saga was first told to stop (an operator's abort or the
    /// customer's cancel), when it accepted.
    stopped_by: Option<CancellationCode>,
    /// A customer's cancel was refused because the pivot had passed.
    cancel_refused: bool,
}

impl Simulation {
    fn new(in_stock: bool, card: Card) -> Self {
        let world = World {
            in_stock,
            card,
            stock: Stock::None,
            money: Money::None,
            order: Order::Pending,
            emails: Vec::new(),
            queues: Default::default(),
            voided_while_pending: false,
        };
        let start = Saga::start(order_id(), &placed(), T0, &policy());
        let mut simulation = Self {
            saga: start.saga.clone(),
            now: T0,
            world,
            timeline: start.timeline,
            last_input: None,
            stopped_by: None,
            cancel_refused: false,
        };
        for command in &start.commands {
            simulation.world.execute(command);
        }
        simulation
    }

    fn apply(&mut self, input: Input) -> Result<(), TestCaseError> {
        let cancel_applies = before_pivot_and_not_undoing(&self.saga.state);
        let transition = self.saga.apply(&input, self.now, &policy());
        if matches!(input, Input::CancelRequested { .. }) {
            let accepted = transition.ignored.is_none();
            prop_assert_eq!(accepted, cancel_applies, "cancel accepted = {} in {:?}", accepted, self.saga.state);
            if accepted {
                self.stopped_by.get_or_insert(CancellationCode::CustomerCancelled);
            }
            self.cancel_refused |= transition.ignored == Some(Ignored::CancelRefused);
        }
        // Idempotence: the same input again, right after, changes nothing.
        let again = transition.saga.apply(&input, self.now, &policy());
        prop_assert!(again.commands.is_empty(), "{input:?} twice sent {:?}", again.commands);
        prop_assert_eq!(&again.saga, &transition.saga, "{:?} twice changed the saga", input);
        self.take(transition)?;
        self.last_input = Some(input);
        Ok(())
    }

    /// Takes a transition's saga, reports and commands, checking that the
    /// saga waits as it may and keeps back what it may.
    fn take(&mut self, transition: Transition) -> Result<(), TestCaseError> {
        let known_before = self.known();
        self.saga = transition.saga;
        awaits_one_step_or_a_pair(&self.saga)?;
        self.timeline.extend(transition.timeline);
        for command in &transition.commands {
            self.world.execute(command);
        }
        let known = self.known();
        prop_assert!(known.starts_with(&known_before), "entries lost or reordered: {known_before:?} then {known:?}");
        if let Some(kept) = &self.saga.unreported {
            let running = matches!(self.saga.status(), SagaStatus::Running | SagaStatus::Compensating);
            prop_assert!(running, "kept back {:?} in {:?}", kept.entries, self.saga.state);
            let first = kept.entries.first().and_then(|entry| entry.at);
            prop_assert_eq!(first.map(|at| at + policy().report_delay), Some(kept.due));
        }
        Ok(())
    }

    /// Every entry the saga recorded: reported, then kept back.
    fn known(&self) -> Vec<StepEntry> {
        let kept = self.saga.unreported.iter().flat_map(|kept| kept.entries.iter().cloned());
        self.timeline.iter().cloned().chain(kept).collect()
    }

    fn chaos(&mut self, action: Chaos) -> Result<(), TestCaseError> {
        match action {
            Chaos::Deliver(queue) => {
                if let Some(input) = self.world.queues[queue].pop_front() {
                    self.apply(input)?;
                }
            }
            Chaos::Redeliver => {
                if let Some(input) = self.last_input.clone() {
                    self.apply(input)?;
                }
            }
            Chaos::FireDeadline => {
                if let Some(deadline) = self.saga.deadline() {
                    self.now = self.now.max(deadline);
                    self.apply(Input::DeadlinePassed)?;
                }
            }
            Chaos::ExpireReservation => {
                if self.world.stock == Stock::Held {
                    self.world.stock = Stock::Released;
                    self.world.queues[INVENTORY].push_back(Input::ReservationExpired);
                }
            }
            Chaos::OperatorRetry => self.operate(Operation::Retry)?,
            Chaos::OperatorAbort => self.operate(Operation::Abort)?,
            Chaos::CustomerCancel => {
                if self.world.order == Order::Pending {
                    self.world.queues[ORDER]
                        .push_back(Input::CancelRequested { reason: Some("changed my mind".into()) });
                }
            }
            Chaos::ReportDue => {
                if let Some(due) = self.saga.report_due() {
                    let known = self.known();
                    self.now = self.now.max(due);
                    let reported = self.saga.take_unreported();
                    prop_assert!(!reported.is_empty(), "nothing reported when due");
                    self.timeline.extend(reported);
                    prop_assert_eq!(self.known(), known);
                }
            }
            Chaos::LateApproval => {
                let voided_late = self.world.money == Money::Voided && self.world.voided_while_pending;
                if self.world.money == Money::Pending || voided_late {
                    self.world.voided_while_pending = false;
                    self.world.money = Money::Authorized;
                    self.world.queues[PAYMENT].push_back(common::authorized());
                }
            }
        }
        Ok(())
    }

    /// An operator's action, checked against when it must apply: a retry
    /// whenever the saga has not finished; an abort only before the pivot
    /// and not while compensating.
    fn operate(&mut self, operation: Operation) -> Result<(), TestCaseError> {
        let applies = match (&self.saga.state, operation) {
            (SagaState::Completed { .. } | SagaState::Cancelled { .. }, _)
            | (SagaState::Compensating { .. }, Operation::Abort) => false,
            (_, Operation::Retry) => true,
            (SagaState::Running { active, .. }, Operation::Abort) => active.step.is_before_pivot(),
            (SagaState::NeedsAttention { step, compensation, .. }, Operation::Abort) => {
                compensation.is_none() && step.is_before_pivot()
            }
        };
        match self.saga.operate(operation, "ops", "chaos", self.now, &policy()) {
            Ok(transition) => {
                prop_assert!(applies, "{operation:?} accepted in {:?}", self.saga.state);
                if operation == Operation::Abort {
                    self.stopped_by.get_or_insert(CancellationCode::AbortedByOperator);
                }
                self.take(transition)?;
            }
            Err(refusal) => prop_assert!(!applies, "{operation:?} refused ({refusal}) in {:?}", self.saga.state),
        }
        Ok(())
    }

    /// Participants answer everything, and timers fire, until the saga finishes.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..500 {
            if let Some(queue) = self.world.queues.iter().position(|q| !q.is_empty()) {
                let input = self.world.queues[queue].pop_front().unwrap();
                self.apply(input)?;
            } else if let Some(deadline) = self.saga.deadline() {
                self.now = self.now.max(deadline);
                self.apply(Input::DeadlinePassed)?;
            } else {
                return Ok(());
            }
        }
        Err(TestCaseError::fail(format!("the saga did not finish: {:?}", self.saga.state)))
    }

    fn started_compensations(&self, step: SagaStepName) -> usize {
        self.timeline
            .iter()
            .filter(|e| e.step == step && e.outcome == StepOutcome::Started && e.attempt == 1 && e.detail.is_none())
            .count()
    }
}

/// The saga waits on one step, or on one of the two pairs that need nothing
/// of each other, the first of them (by `Step` order) first.
fn awaits_one_step_or_a_pair(saga: &Saga) -> Result<(), TestCaseError> {
    let awaited: Vec<Step> = saga.awaiting().map(|active| active.step).collect();
    let allowed = awaited.len() <= 1
        || awaited == [Step::AuthorizePayment, Step::CommitInventory]
        || awaited == [Step::CapturePayment, Step::NotifyCustomer];
    prop_assert!(allowed, "waits on {:?} in {:?}", awaited, saga.state);
    Ok(())
}

/// Where a stop (abort or cancel) still applies: before the pivot, and not
/// already compensating.
fn before_pivot_and_not_undoing(state: &SagaState) -> bool {
    match state {
        SagaState::Running { active, .. } => active.step.is_before_pivot(),
        SagaState::NeedsAttention { step, compensation: None, .. } => step.is_before_pivot(),
        _ => false,
    }
}

fn chaos() -> impl Strategy<Value = Chaos> {
    prop_oneof![
        6 => (0..4_usize).prop_map(Chaos::Deliver),
        1 => Just(Chaos::Redeliver),
        2 => Just(Chaos::FireDeadline),
        1 => Just(Chaos::ExpireReservation),
        1 => Just(Chaos::LateApproval),
        1 => Just(Chaos::OperatorRetry),
        1 => Just(Chaos::OperatorAbort),
        1 => Just(Chaos::CustomerCancel),
        1 => Just(Chaos::ReportDue),
    ]
}

fn card() -> impl Strategy<Value = Card> {
    prop_oneof![Just(Card::Approves), Just(Card::Declines), Just(Card::NeverAnswers)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_run_ends_consistently(in_stock in any::<bool>(), card in card(), script in proptest::collection::vec(chaos(), 0..80)) {
        let mut simulation = Simulation::new(in_stock, card);
        for action in script {
            simulation.chaos(action)?;
        }
        simulation.drain()?;
        let world = &simulation.world;

        match &simulation.saga.state {
            SagaState::Completed { .. } => {
                prop_assert_eq!(world.order, Order::Confirmed);
                prop_assert_eq!(world.money, Money::Captured);
                prop_assert_eq!(world.stock, Stock::Committed);
                prop_assert_eq!(&world.emails, &vec![NotificationKind::OrderConfirmed]);
            }
            SagaState::Cancelled { .. } => {
                prop_assert_eq!(world.order, Order::Cancelled);
                prop_assert!(matches!(world.money, Money::None | Money::Declined | Money::Voided), "money left held: {:?}", world.money);
                prop_assert!(matches!(world.stock, Stock::None | Stock::Released), "stock left held: {:?}", world.stock);
                prop_assert_eq!(&world.emails, &vec![NotificationKind::OrderCancelled]);
            }
            SagaState::NeedsAttention { step, .. } if step.is_compensation() => {
                // A compensation is never abandoned early: only after every attempt timed out.
                let attempts = policy().for_step(*step).max_attempts;
                let exhausted = simulation.timeline.iter().any(|e| {
                    e.step == step.wire_name() && e.outcome == StepOutcome::TimedOut && e.attempt == attempts
                });
                prop_assert!(exhausted, "gave up on {step} before its last attempt");
            }
            SagaState::NeedsAttention { step, .. } => {
                // After the pivot the customer was promised the order, so nothing is undone.
                prop_assert!(!step.is_before_pivot(), "needs attention at {step}, before the pivot");
                prop_assert_eq!(world.order, Order::Confirmed);
            }
            other => prop_assert!(false, "not finished: {:?}", other),
        }
        prop_assert!(world.money != Money::Captured || world.order == Order::Confirmed, "charged an unconfirmed order");
        prop_assert!(world.money != Money::Captured || world.stock == Stock::Committed, "charged without the stock");
        if let Some(code) = simulation.stopped_by {
            let cancelled_so = matches!(&simulation.saga.state,
                SagaState::Cancelled { reason, .. } if reason.code == code);
            prop_assert!(cancelled_so, "stopped by {:?}, then ended {:?}", code, simulation.saga.state);
        }
        if simulation.cancel_refused {
            prop_assert_eq!(world.order, Order::Confirmed, "a refused cancel must leave the order confirmed");
            prop_assert!(!matches!(simulation.saga.state, SagaState::Cancelled { .. }), "refused, yet cancelled");
        }
        for step in [SagaStepName::VoidPayment, SagaStepName::ReleaseInventory, SagaStepName::CancelOrder, SagaStepName::NotifyCancellation] {
            prop_assert!(simulation.started_compensations(step) <= 1, "{step:?} started twice");
        }
        prop_assert_eq!(simulation.saga.status().is_terminal(), true);
    }

    #[test]
    fn without_interference_the_outcome_follows_stock_and_card(in_stock in any::<bool>(), card in card()) {
        let mut simulation = Simulation::new(in_stock, card);
        simulation.drain()?;
        let expected = if in_stock && matches!(card, Card::Approves) { SagaStatus::Completed } else { SagaStatus::Cancelled };
        prop_assert_eq!(simulation.saga.status(), expected);
    }
}

#[test]
fn compensation_plans_never_include_forward_steps() {
    for step in Step::COMPENSATIONS {
        assert!(step.is_compensation() && !Step::FORWARD.contains(&step));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// On an otherwise happy run, a cancel delivered after the saga's `k`th
    /// input wins exactly when `ConfirmOrder` has not been sent yet.
    #[test]
    fn a_cancel_on_the_happy_path_wins_exactly_before_the_pivot(k in 0..8_usize) {
        let mut simulation = Simulation::new(true, Card::Approves);
        for _ in 0..k {
            if let Some(queue) = simulation.world.queues.iter().position(|q| !q.is_empty()) {
                let input = simulation.world.queues[queue].pop_front().unwrap();
                simulation.apply(input)?;
            }
        }
        let pivot_sent = simulation.known().iter().any(|e| e.step == SagaStepName::ConfirmOrder);
        simulation.apply(Input::CancelRequested { reason: None })?;
        simulation.drain()?;
        if pivot_sent {
            prop_assert_eq!(simulation.saga.status(), SagaStatus::Completed);
            prop_assert!(simulation.cancel_refused);
        } else {
            let customer_cancelled = matches!(&simulation.saga.state,
                SagaState::Cancelled { reason, .. } if reason.code == CancellationCode::CustomerCancelled);
            prop_assert!(customer_cancelled, "ended {:?}", simulation.saga.state);
            prop_assert!(matches!(simulation.world.money, Money::None | Money::Voided));
            prop_assert!(matches!(simulation.world.stock, Stock::None | Stock::Released));
        }
    }
}
