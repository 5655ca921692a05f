//! Backoff with jitter, and a sliding-window limit on calls per second.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Exponential backoff with "equal jitter": the n-th wait is half of `min(cap, base·2ⁿ⁻¹)`
/// plus a random part up to the other half, so retries from many callers spread out but
/// never come back at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait's ceiling.
    pub base: Duration,
    /// The largest wait.
    pub cap: Duration,
}

impl Backoff {
    /// The wait after the `attempt`-th failed call (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        let jitter_ns = fastrand::u64(0..=half.as_nanos().min(u128::from(u64::MAX)) as u64);
        half + Duration::from_nanos(jitter_ns)
    }

    /// `min(cap, base·2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.base
            .checked_mul(1u32 << exp)
            .map_or(self.cap, |d| d.min(self.cap))
    }
}

/// At most `per_second` calls in any one-second window (sliding), in this process.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: u32,
    window: Duration,
    starts: VecDeque<Instant>,
}

impl RateLimiter {
    /// A limiter of `per_second` calls per second (at least one).
    pub fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            per_second: per_second.max(1),
            // A hair over one second, so that two windows measured by another clock (the
            // marketplace's) never see one call too many.
            window: Duration::from_millis(1010),
            starts: VecDeque::new(),
        }
    }

    /// Waits until one more call fits, then counts it.
    pub fn acquire(&mut self) {
        loop {
            let now = Instant::now();
            while self
                .starts
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                self.starts.pop_front();
            }
            if self.starts.len() < self.per_second as usize {
                self.starts.push_back(now);
                return;
            }
            if let Some(oldest) = self.starts.front() {
                let wait = self.window.saturating_sub(now.duration_since(*oldest));
                std::thread::sleep(wait.max(Duration::from_millis(1)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(400));
        assert_eq!(b.ceiling(20), Duration::from_secs(2));
        for attempt in 1..10 {
            let d = b.delay(attempt);
            assert!(d >= b.ceiling(attempt) / 2 && d <= b.ceiling(attempt));
        }
    }

    #[test]
    fn limiter_keeps_ten_per_second() {
        let mut l = RateLimiter::new(10);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..25 {
            l.acquire();
            at.push(start.elapsed());
        }
        // The 11th and 21st calls wait for the window to move on.
        assert!(at[10] >= Duration::from_millis(1000));
        assert!(at[20] >= Duration::from_millis(2000));
        for w in at.windows(11) {
            assert!(w[10] - w[0] >= Duration::from_millis(1000));
        }
    }
}
