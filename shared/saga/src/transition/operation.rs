//! An operator's actions on a saga: retry the step it waits on or gave up
//! on, or abort it before the pivot; decided here, like every input.

use checkout_messages::payloads::order::CancellationCode;
use time::OffsetDateTime;

use super::{Next, Transition, reason};
use crate::{ActiveStep, Saga, SagaPolicy, SagaState, SagaStatus, Step};

/// What an operator may ask of a saga.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Send the step the saga waits on (or gave up on) again, with a fresh
    /// attempt budget.
    Retry,
    /// Before the pivot: stop waiting and compensate now.
    Abort,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "OperatorRetry",
            Self::Abort => "OperatorAbort",
        }
    }
}

/// Why an operator's action does not apply to the saga as it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the saga has already finished: it is {}", .0.as_str())]
    Finished(SagaStatus),
    #[error("the saga is past the pivot (at {0}): the order is confirmed, so it can only move forward; retry instead")]
    PastPivot(Step),
    #[error("the saga is already compensating (at {0}); retry that step instead")]
    Compensating(Step),
}

impl Saga {
    /// Applies an operator's action at time `now`: `operator` (who asked)
    /// and `reason` (why) go into the saga's timeline.
    pub fn operate(
        &self,
        operation: Operation,
        operator: &str,
        reason: &str,
        now: OffsetDateTime,
        policy: &SagaPolicy,
    ) -> Result<Transition, Refusal> {
        let mut next = Next::new(self.clone(), now, policy);
        next.operate(operation, operator, reason)?;
        Ok(next.finish())
    }
}

impl Next<'_> {
    fn operate(&mut self, operation: Operation, operator: &str, why: &str) -> Result<(), Refusal> {
        let state = self.saga.state.clone();
        match (operation, state) {
            (_, SagaState::Completed { .. } | SagaState::Cancelled { .. }) => {
                return Err(Refusal::Finished(self.saga.status()));
            }
            (Operation::Retry, SagaState::Running { .. } | SagaState::Compensating { .. }) => {
                let awaited: Vec<Step> = self.saga.awaiting().map(|active| active.step).collect();
                for step in awaited {
                    self.resend(step, 1, Some(format!("retried by {operator}: {why}")));
                }
            }
            (Operation::Retry, SagaState::NeedsAttention { step, compensation, .. }) => {
                self.begin(step, 1, Some(format!("retried by {operator}: {why}")), compensation);
            }
            (Operation::Abort, SagaState::Compensating { active, .. }) => {
                return Err(Refusal::Compensating(active.step));
            }
            (Operation::Abort, SagaState::NeedsAttention { step, compensation: Some(_), .. }) => {
                return Err(Refusal::Compensating(step));
            }
            // Before the pivot whatever may be held is given back, as for any other failure there.
            (
                Operation::Abort,
                SagaState::Running { active: ActiveStep { step, .. }, .. }
                | SagaState::NeedsAttention { step, compensation: None, .. },
            ) => {
                if !step.is_before_pivot() {
                    return Err(Refusal::PastPivot(step));
                }
                let aborted = reason(CancellationCode::AbortedByOperator, why.to_owned());
                self.stop(&format!("aborted by {operator}: {why}"), aborted);
            }
        }
        Ok(())
    }
}
