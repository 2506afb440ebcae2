use std::time::Duration;

use crate::Step;

/// How long to wait for a step's reply, and how often to ask again.
///
/// Attempt `n` waits `timeout * 2^(n-1)`, capped at `max_timeout`; after
/// `max_attempts` unanswered attempts the step is exhausted: compensated
/// before the pivot, left for an operator after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepPolicy {
    pub timeout: Duration,
    pub max_timeout: Duration,
    pub max_attempts: u32,
}

impl StepPolicy {
    pub const fn new(timeout: Duration, max_attempts: u32) -> Self {
        Self { timeout, max_timeout: Duration::from_secs(60), max_attempts }
    }

    /// How long attempt `attempt` (from 1) waits for its reply.
    pub fn timeout_for(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        self.timeout.saturating_mul(1 << doublings).min(self.max_timeout.max(self.timeout))
    }
}

/// The policy of every step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SagaPolicy {
    /// Reserving and committing the stock, both before the pivot.
    pub reserve_inventory: StepPolicy,
    /// A payment that never answers is compensated after these attempts.
    pub authorize_payment: StepPolicy,
    /// Steps from the pivot on: retried generously, then left for an operator.
    pub after_pivot: StepPolicy,
    pub compensation: StepPolicy,
    /// How long a saga's timeline entries may wait to be reported with
    /// later ones (see [`crate::Unreported`]); zero reports every
    /// transition's entries at once.
    pub report_delay: Duration,
}

impl Default for SagaPolicy {
    fn default() -> Self {
        Self {
            reserve_inventory: StepPolicy::new(Duration::from_secs(5), 3),
            authorize_payment: StepPolicy::new(Duration::from_secs(5), 2),
            after_pivot: StepPolicy::new(Duration::from_secs(5), 8),
            compensation: StepPolicy::new(Duration::from_secs(5), 8),
            report_delay: Duration::from_millis(500),
        }
    }
}

impl SagaPolicy {
    pub fn for_step(&self, step: Step) -> StepPolicy {
        match step {
            Step::ReserveInventory | Step::CommitInventory => self.reserve_inventory,
            Step::AuthorizePayment => self.authorize_payment,
            Step::ConfirmOrder | Step::CapturePayment | Step::NotifyCustomer => self.after_pivot,
            Step::VoidPayment | Step::ReleaseInventory | Step::CancelOrder | Step::NotifyCancellation => {
                self.compensation
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_per_attempt_up_to_the_cap() {
        let policy =
            StepPolicy { timeout: Duration::from_secs(5), max_timeout: Duration::from_secs(30), max_attempts: 9 };
        let waits: Vec<u64> = (1..=5).map(|n| policy.timeout_for(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 30, 30]);
        assert_eq!(policy.timeout_for(u32::MAX).as_secs(), 30);
    }
}
