use std::time::Duration;

/// Bounded exponential backoff for transient failures.
///
/// A record is retried until it succeeds, `max_attempts` attempts have been
/// made, or the next wait would end more than `max_elapsed` after the first
/// failure; then it is dead-lettered so its partition moves on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `failed_attempt + 1`, or `None` when the record
    /// has had its last attempt. `elapsed` is the time since the first failure.
    pub fn next_backoff(&self, failed_attempt: u32, elapsed: Duration) -> Option<Duration> {
        if failed_attempt >= self.max_attempts {
            return None;
        }
        let doublings = failed_attempt.saturating_sub(1).min(31);
        let backoff = self.initial_backoff.saturating_mul(1 << doublings).min(self.max_backoff);
        (elapsed.saturating_add(backoff) <= self.max_elapsed).then_some(backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        max_elapsed: Duration::from_secs(10),
    };

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let waits: Vec<_> = (1..5).map(|n| POLICY.next_backoff(n, Duration::ZERO).unwrap().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500]);
    }

    #[test]
    fn attempts_are_bounded() {
        assert_eq!(POLICY.next_backoff(5, Duration::ZERO), None);
        assert_eq!(RetryPolicy { max_attempts: 1, ..POLICY }.next_backoff(1, Duration::ZERO), None);
    }

    #[test]
    fn time_is_bounded() {
        assert_eq!(POLICY.next_backoff(2, Duration::from_millis(9_700)), Some(Duration::from_millis(200)));
        assert_eq!(POLICY.next_backoff(2, Duration::from_millis(9_900)), None);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let generous = RetryPolicy { max_attempts: u32::MAX, max_elapsed: Duration::MAX, ..POLICY };
        assert_eq!(generous.next_backoff(1000, Duration::ZERO), Some(Duration::from_millis(500)));
    }
}
