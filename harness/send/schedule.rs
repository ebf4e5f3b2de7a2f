//! The send schedule: every send time fixed up front as `t0 + i × interval`, so slow replies delay
//! individual sends (measured as lateness) but never stretch the pattern.

use std::time::{Duration, Instant};

/// Send times of one burst.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// When message 0 is due.
    pub t0: Instant,
    /// Gap between consecutive sends (zero: as fast as the connections allow).
    pub interval: Duration,
    /// Number of first attempts.
    pub count: u32,
}

impl Schedule {
    /// A schedule of `count` sends starting at `t0`, `interval_secs` apart (negative or NaN: zero).
    pub fn new(t0: Instant, interval_secs: f64, count: u32) -> Self {
        let interval = if interval_secs.is_finite() && interval_secs > 0.0 {
            Duration::try_from_secs_f64(interval_secs).unwrap_or(Duration::MAX)
        } else {
            Duration::ZERO
        };
        Schedule {
            t0,
            interval,
            count,
        }
    }

    /// When send `i` is due: computed from `t0`, never accumulated, so rounding cannot drift.
    pub fn at(&self, i: u32) -> Instant {
        let offset = self.interval.checked_mul(i).unwrap_or(Duration::MAX / 4);
        self.t0.checked_add(offset).unwrap_or(self.t0)
    }

    /// When the last send is due.
    pub fn last(&self) -> Instant {
        self.at(self.count.saturating_sub(1))
    }
}

/// Longest wait between retries: a day; throttling that lasts longer is not measured by retrying.
pub const MAX_BACKOFF: Duration = Duration::from_secs(86_400);

/// Backoff before retry number `retry` (1 for the first retry): `base × 2^(retry−1)`, capped.
pub fn backoff(base: Duration, retry: u32) -> Duration {
    let factor = 1u32 << retry.saturating_sub(1).min(20);
    base.checked_mul(factor)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_times_are_fixed_up_front_and_do_not_drift() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 0.01, 100_001);
        assert_eq!(s.at(0), t0);
        assert_eq!(s.at(1) - t0, Duration::from_millis(10));
        // 100,000 × 10 ms is exactly 1000 s: no accumulated rounding.
        assert_eq!(s.at(100_000) - t0, Duration::from_secs(1000));
        assert_eq!(s.last(), s.at(100_000));
        // A rate like 120/min: 0.5 s apart.
        let s = Schedule::new(t0, 60.0 / 120.0, 3);
        assert_eq!(s.at(2) - t0, Duration::from_secs(1));
    }

    #[test]
    fn odd_intervals_mean_as_fast_as_possible() {
        let t0 = Instant::now();
        for bad in [0.0, -1.0, f64::NAN] {
            let s = Schedule::new(t0, bad, 10);
            assert_eq!(s.at(9), t0);
        }
    }

    #[test]
    fn backoff_doubles() {
        let b = Duration::from_secs(30);
        assert_eq!(backoff(b, 1), Duration::from_secs(30));
        assert_eq!(backoff(b, 2), Duration::from_secs(60));
        assert_eq!(backoff(b, 3), Duration::from_secs(120));
        assert!(backoff(b, 1000) <= Duration::from_secs(86_400));
    }
}
