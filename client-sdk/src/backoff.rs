//! Exponential backoff with jitter between retries of a retryable failure.
//!
//! Starts at [`Backoff::INITIAL`] (100 ms, the pause before looking up a stream's owner that a
//! node did not know), doubles up to [`Backoff::MAX`], and adds up to 25% random jitter so that
//! many clients retrying after the same outage do not arrive in lockstep.

use std::time::Duration;

/// The delays between successive retries.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: Self::INITIAL,
        }
    }
}

impl Backoff {
    /// The first delay.
    pub(crate) const INITIAL: Duration = Duration::from_millis(100);
    /// The longest delay.
    pub(crate) const MAX: Duration = Duration::from_secs(2);

    /// The delay before the next retry; each call doubles the following one.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        let jitter = base.mul_f64(fastrand::f64() * 0.25);
        base + jitter
    }

    /// Starts over after a success.
    pub(crate) fn reset(&mut self) {
        self.next = Self::INITIAL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first >= Backoff::INITIAL && first <= Backoff::INITIAL.mul_f64(1.25));
        for _ in 0..20 {
            assert!(b.next_delay() <= Backoff::MAX.mul_f64(1.25));
        }
        assert!(b.next_delay() >= Backoff::MAX);
        b.reset();
        assert!(b.next_delay() <= Backoff::INITIAL.mul_f64(1.25));
    }
}
