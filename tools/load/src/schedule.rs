//! When open-loop checkouts are due: at a constant rate, or as a Poisson
//! process (exponential gaps) with the same mean, from a seed.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrivals {
    /// Evenly spaced.
    Constant,
    /// Independent arrivals at the mean rate, as real customers come.
    Poisson,
}

/// The offsets (from the start) at which checkouts are due.
pub struct Schedule {
    arrivals: Arrivals,
    mean_gap: Duration,
    rng: fastrand::Rng,
    next: Duration,
}

impl Schedule {
    /// `rate` checkouts per second; zero or less is refused by the caller.
    pub fn new(arrivals: Arrivals, rate: f64, seed: u64) -> Self {
        Self {
            arrivals,
            mean_gap: Duration::from_secs_f64(1.0 / rate),
            rng: fastrand::Rng::with_seed(seed),
            next: Duration::ZERO,
        }
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let due = self.next;
        let gap = match self.arrivals {
            Arrivals::Constant => self.mean_gap,
            // Inverse transform: -ln(U) is exponential with mean 1 (U in (0, 1]).
            Arrivals::Poisson => self.mean_gap.mul_f64(-(1.0 - self.rng.f64()).ln()),
        };
        self.next += gap;
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_arrivals_are_evenly_spaced() {
        let due: Vec<Duration> = Schedule::new(Arrivals::Constant, 4.0, 1).take(3).collect();
        assert_eq!(due, [Duration::ZERO, Duration::from_millis(250), Duration::from_millis(500)]);
    }

    #[test]
    fn poisson_arrivals_keep_the_mean_rate_and_vary() {
        let due: Vec<Duration> = Schedule::new(Arrivals::Poisson, 100.0, 7).take(20_001).collect();
        let mean_gap = due[20_000].as_secs_f64() / 20_000.0;
        assert!((mean_gap - 0.01).abs() < 0.0005, "mean gap {mean_gap}");
        let gaps: Vec<f64> = due.windows(2).map(|w| w[1].saturating_sub(w[0]).as_secs_f64()).collect();
        let shortest = gaps.iter().copied().fold(f64::MAX, f64::min);
        let longest = gaps.iter().copied().fold(0.0, f64::max);
        assert!(shortest < 0.001 && longest > 0.05, "gaps from {shortest} to {longest}: not exponential");
    }
}
