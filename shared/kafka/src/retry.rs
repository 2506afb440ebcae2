use std::time::Duration;

/// Capped exponential backoff for transient failures, for as long as they last.
///
/// A transient failure (a database or mail server that does not answer, a
/// pool that is exhausted, a serialization conflict) says nothing about the
/// record: it will succeed once the dependency is back. So it is retried
/// until it does, never dead-lettered: the partition waits (and is paused,
/// so nothing piles up behind it) while the other partitions go on. This is
/// what Temporal does for activities and what NServiceBus's delayed retries
/// amount to when their budget is unbounded; a dead letter is for records
/// that would fail the same way every time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    /// The longest wait between two attempts, so a record is retried within
    /// this long of its dependency coming back.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { initial_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    /// The wait before attempt `failed_attempt + 1`.
    pub fn backoff(&self, failed_attempt: u32) -> Duration {
        let doublings = failed_attempt.saturating_sub(1).min(31);
        self.initial_backoff.saturating_mul(1 << doublings).min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy =
        RetryPolicy { initial_backoff: Duration::from_millis(100), max_backoff: Duration::from_millis(500) };

    #[test]
    fn backoff_doubles_up_to_its_cap_and_stays_there() {
        let waits: Vec<_> = (1..7).map(|n| POLICY.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500, 500]);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        assert_eq!(POLICY.backoff(u32::MAX), Duration::from_millis(500));
    }
}
