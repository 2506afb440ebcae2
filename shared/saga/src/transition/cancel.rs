//! The customer's cancel while the order is pending. Whether it is in time
//! is decided here, against the saga's own state, so a cancel that races
//! the pivot has exactly one outcome: before `ConfirmOrder` is sent the saga
//! compensates; from then on the cancel is refused and the order stands.

use checkout_messages::payloads::order::CancellationCode;

use super::{Ignored, Next, reason};
use crate::{Input, SagaState};

/// The detail recorded when the customer gave no reason.
const NO_REASON: &str = "cancelled by the customer";

impl Next<'_> {
    pub(super) fn cancel_requested(&mut self, input: &Input) {
        let Input::CancelRequested { reason: why } = input else { return };
        let detail = why.clone().filter(|why| !why.trim().is_empty()).unwrap_or_else(|| NO_REASON.to_owned());
        match &self.saga.state {
            SagaState::Running { active, .. } if active.step.is_before_pivot() => {
                self.stop(
                    &format!("cancelled by the customer: {detail}"),
                    reason(CancellationCode::CustomerCancelled, detail),
                );
            }
            // A step before the pivot was given up: nothing moves until an
            // operator acts, but the customer may still walk away.
            SagaState::NeedsAttention { step, compensation: None, .. } if step.is_before_pivot() => {
                self.stop(
                    &format!("cancelled by the customer: {detail}"),
                    reason(CancellationCode::CustomerCancelled, detail),
                );
            }
            SagaState::Compensating { .. } | SagaState::NeedsAttention { compensation: Some(_), .. } => {
                self.ignored = Some(Ignored::AlreadyCompensating);
            }
            SagaState::Cancelled { .. } => self.ignored = Some(Ignored::Finished),
            SagaState::Running { .. } | SagaState::NeedsAttention { .. } | SagaState::Completed { .. } => {
                self.ignored = Some(Ignored::CancelRefused);
            }
        }
    }
}
