//! Moving forward: the replies that move a running saga on, and the steps
//! it sends next, one at a time or two side by side.

use checkout_domain::{OrderLines, Pricing};
use checkout_messages::payloads::inventory::RejectionCode;
use checkout_messages::payloads::notification::NotificationKind;
use checkout_messages::payloads::order::CancellationCode;
use checkout_messages::payloads::saga::StepOutcome;

use super::{Next, completes, reason};
use crate::{ActiveStep, ConfirmationEmail, Input, InventoryHold, PaymentHold, Phase, SagaState, Step};

impl Next<'_> {
    /// Forward steps: an awaited reply moves on; anything else is late.
    pub(super) fn running(&mut self, input: &Input) {
        if matches!(input, Input::ReservationExpired) {
            self.reservation_expired();
            return;
        }
        let Some(active) = self.saga.awaiting().find(|active| answers(active.step, input)).cloned() else {
            self.late(input);
            return;
        };
        let (active, attempt) = (&active, active.attempt);
        match (active.step, input) {
            (Step::ReserveInventory, Input::InventoryReserved { pricing }) => {
                self.saga.inventory = InventoryHold::Held;
                self.saga.phase = Phase::Reserved { pricing: pricing.clone() };
                if priced_as_ordered(&self.saga.lines, pricing) {
                    self.succeed(active, None);
                } else {
                    let detail = "the inventory priced different lines than were ordered".to_owned();
                    self.record(Step::ReserveInventory, StepOutcome::Failed, attempt, Some(detail.clone()));
                    self.compensate(reason(CancellationCode::Other, detail));
                }
            }
            (Step::ReserveInventory, Input::InventoryRejected { code, detail, .. }) => {
                // A rejection means nothing is held for the order.
                self.saga.inventory = InventoryHold::None;
                self.record(Step::ReserveInventory, StepOutcome::Failed, attempt, Some(detail.clone()));
                let code = match code {
                    RejectionCode::OutOfStock => CancellationCode::OutOfStock,
                    RejectionCode::UnknownSku => CancellationCode::UnknownSku,
                    RejectionCode::Other => CancellationCode::Other,
                };
                self.compensate(reason(code, detail.clone()));
            }
            (Step::AuthorizePayment, Input::PaymentAuthorized { authorization_id, amount }) => {
                self.saga.payment = PaymentHold::Authorized;
                match self.saga.phase.pricing().cloned() {
                    Some(pricing) if pricing.total() == *amount => {
                        self.saga.phase = Phase::Authorized { pricing, authorization_id: authorization_id.clone() };
                        self.succeed(active, Some(format!("authorized {amount}")));
                    }
                    quoted => {
                        let detail = match quoted {
                            Some(pricing) => format!("authorized {amount}, but the order totals {}", pricing.total()),
                            None => format!("authorized {amount} for an order that was never priced"),
                        };
                        self.record(Step::AuthorizePayment, StepOutcome::Failed, attempt, Some(detail.clone()));
                        self.compensate(reason(CancellationCode::Other, detail));
                    }
                }
            }
            (Step::AuthorizePayment, Input::PaymentDeclined { detail, .. }) => {
                self.saga.payment = PaymentHold::None;
                self.record(Step::AuthorizePayment, StepOutcome::Failed, attempt, Some(detail.clone()));
                self.compensate(reason(CancellationCode::PaymentDeclined, detail.clone()));
            }
            (Step::CommitInventory, Input::InventoryCommitted) => {
                self.saga.inventory = InventoryHold::Committed;
                self.succeed(active, None);
            }
            (Step::CommitInventory, Input::InventoryCommitRejected { detail }) => {
                // The hold ran out and its stock went to another order: nothing is held.
                self.saga.inventory = InventoryHold::Released;
                self.record(Step::CommitInventory, StepOutcome::Failed, attempt, Some(detail.clone()));
                self.compensate(reason(CancellationCode::ReservationExpired, detail.clone()));
            }
            (Step::ConfirmOrder, Input::OrderConfirmed) => self.succeed(active, None),
            (Step::CapturePayment, Input::PaymentCaptured { amount }) => {
                self.saga.payment = PaymentHold::Captured;
                self.succeed(active, Some(format!("captured {amount}")));
            }
            (Step::NotifyCustomer, Input::CustomerNotified { kind: NotificationKind::OrderConfirmed }) => {
                self.saga.confirmation_email = ConfirmationEmail::Sent;
                self.succeed(active, None);
            }
            _ => self.late(input),
        }
    }

    /// The inventory's hold ran out before it was committed. Once the commit
    /// is sent, its reply decides: the inventory commits an expired hold
    /// while its stock is still free, and rejects the commit otherwise. Only
    /// a saga saved before the commit went out beside the authorization can
    /// hear of the expiry first: the stock is back, so nothing is released.
    fn reservation_expired(&mut self) {
        if self.saga.inventory != InventoryHold::Held {
            self.late(&Input::ReservationExpired);
            return;
        }
        self.saga.inventory = InventoryHold::Released;
        let detail = "the stock reservation expired before payment was authorized".to_owned();
        self.record(Step::ReserveInventory, StepOutcome::Failed, 1, Some(detail.clone()));
        self.compensate(reason(CancellationCode::ReservationExpired, detail));
    }

    /// Records `active` as done; once no step beside it is awaited, starts
    /// the next forward steps, or completes.
    pub(super) fn succeed(&mut self, active: &ActiveStep, detail: Option<String>) {
        self.record(active.step, StepOutcome::Succeeded, active.attempt, detail);
        let other = self.saga.awaiting().find(|awaited| awaited.step != active.step).cloned();
        if let Some(other) = other {
            self.saga.state = SagaState::Running { active: other, alongside: None };
            return;
        }
        let next = self.forward_after(active.step);
        if next.is_empty() {
            self.saga.state = SagaState::Completed { at: self.now };
        } else {
            self.begin_forward(&next);
        }
    }

    /// The forward steps to send once `done` has succeeded and nothing else
    /// is awaited. Authorizing the payment and committing the stock need
    /// only the reservation's prices, so they go out together, and the order
    /// is confirmed once both are done; after it, the capture and the email
    /// go out together, and the saga completes once both are done. Each
    /// pair sends only what the saga has not heard of: a saga saved while
    /// they ran one after the other, or one that resumes after a step beside
    /// another was given up.
    fn forward_after(&self, done: Step) -> Vec<Step> {
        let saga = &self.saga;
        let unheard = |pair: [(Step, bool); 2]| -> Vec<Step> {
            pair.into_iter().filter(|&(_, heard)| !heard).map(|(step, _)| step).collect()
        };
        match done {
            Step::ReserveInventory | Step::AuthorizePayment | Step::CommitInventory => {
                let next = unheard([
                    (Step::AuthorizePayment, saga.payment == PaymentHold::Authorized),
                    (Step::CommitInventory, saga.inventory == InventoryHold::Committed),
                ]);
                if next.is_empty() { vec![Step::ConfirmOrder] } else { next }
            }
            Step::ConfirmOrder | Step::CapturePayment | Step::NotifyCustomer => unheard([
                (Step::CapturePayment, saga.payment == PaymentHold::Captured),
                (Step::NotifyCustomer, saga.confirmation_email == ConfirmationEmail::Sent),
            ]),
            // Compensations move on through `next_compensation`.
            Step::VoidPayment | Step::ReleaseInventory | Step::CancelOrder | Step::NotifyCancellation => Vec::new(),
        }
    }

    /// Sends each of `steps` as its first attempt and waits for them all.
    fn begin_forward(&mut self, steps: &[Step]) {
        let mut sent = Vec::with_capacity(steps.len());
        for &step in steps {
            match self.send(step, 1, None, None) {
                Some(active) => sent.push(active),
                None => return self.lacks_prices(step, None),
            }
        }
        let mut sent = sent.into_iter();
        if let Some(active) = sent.next() {
            self.saga.state = SagaState::Running { active, alongside: sent.next() };
        }
    }
}

/// Whether `input` is `step`'s reply, successful or not.
fn answers(step: Step, input: &Input) -> bool {
    completes(step, input)
        || matches!(
            (step, input),
            (Step::ReserveInventory, Input::InventoryReserved { .. } | Input::InventoryRejected { .. })
                | (Step::AuthorizePayment, Input::PaymentAuthorized { .. } | Input::PaymentDeclined { .. })
                | (Step::CommitInventory, Input::InventoryCommitRejected { .. })
        )
}

/// The quoted lines are exactly the ordered ones (same SKUs, same quantities).
fn priced_as_ordered(lines: &OrderLines, pricing: &Pricing) -> bool {
    let mut ordered: Vec<_> = lines.iter().map(|l| (l.sku.clone(), l.quantity)).collect();
    let mut priced: Vec<_> = pricing.lines().iter().map(|l| (l.sku.clone(), l.quantity)).collect();
    ordered.sort();
    priced.sort();
    ordered == priced
}
