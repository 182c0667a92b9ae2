//! The one exponential backoff: a first wait, doubled after each further failure in a
//! row up to a longest wait, cleared by a success. The microphone recorder, the MQTT
//! messenger's reconnects and the messaging task's rejected messages all use it.

use std::time::Duration;

/// Failures in a row and the wait each one earns: `first`, `2 × first`, `4 × first`, …
/// never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff with no failure yet.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            failures: 0,
        }
    }

    /// The wait after the `failures`-th failure in a row (the first wait for 0 or 1).
    pub fn wait_after(&self, failures: u32) -> Duration {
        let factor = 2u32
            .checked_pow(failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }

    /// Notes one more failure; the wait it earns.
    pub fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.wait_after(self.failures)
    }

    /// Failures in a row since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn waits_double_up_to_the_maximum() {
        let mut backoff = Backoff::new(SECOND, 60 * SECOND);
        let waits: Vec<u64> = (0..9).map(|_| backoff.fail().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff.failures(), 9);
    }

    #[test]
    fn a_success_starts_again_at_the_first_wait() {
        let mut backoff = Backoff::new(SECOND, 60 * SECOND);
        backoff.fail();
        backoff.fail();
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert_eq!(backoff.fail(), SECOND);
    }

    #[test]
    fn counts_far_past_the_maximum_saturate() {
        let backoff = Backoff::new(60 * SECOND, 6 * 3600 * SECOND);
        assert_eq!(backoff.wait_after(0), 60 * SECOND);
        assert_eq!(backoff.wait_after(1), 60 * SECOND);
        assert_eq!(backoff.wait_after(40), 6 * 3600 * SECOND);
        assert_eq!(backoff.wait_after(u32::MAX), 6 * 3600 * SECOND);
        let mut stuck = Backoff {
            failures: u32::MAX,
            ..backoff
        };
        assert_eq!(stuck.fail(), 6 * 3600 * SECOND);
    }
}
