//! The cleaner's I/O rate limit (Kafka's `log.cleaner.io.max.bytes.per.second`
//! and its `Throttler`): the cleaner reports every byte it reads and writes;
//! once it has moved what the rate allows in `CHECK_INTERVAL`, the throttler
//! compares the bytes of the period with the time it took and sleeps the
//! (blocking) cleaner thread for the difference.

use std::time::{Duration, Instant};

/// How much I/O, in time at the configured rate, is counted between checks:
/// the cleaner may run ahead of the rate by at most this much.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Paces the cleaner's reads and writes to a byte rate. One throttler serves
/// every pass of a maintenance round, so the rate holds across partitions.
#[derive(Debug)]
pub struct Throttler {
    /// Allowed bytes per second, read and written together.
    bytes_per_second: f64,
    /// Bytes after which the rate is checked: what the rate allows in
    /// `CHECK_INTERVAL` (at least 1; saturates for an unlimited rate).
    check_bytes: u64,
    /// Bytes counted since `period_start`.
    period_bytes: u64,
    /// Start of the current measuring period.
    period_start: Instant,
    /// Time spent sleeping so far, for logs and tests.
    throttled: Duration,
}

impl Throttler {
    /// A throttler for `bytes_per_second` (> 0; `f64::MAX`, Kafka's default,
    /// or infinity never sleeps).
    pub fn new(bytes_per_second: f64) -> Throttler {
        assert!(
            bytes_per_second > 0.0,
            "the cleaner's I/O rate must be positive, got {bytes_per_second}"
        );
        // `as` saturates: an enormous rate never reaches a check.
        let check_bytes = (bytes_per_second * CHECK_INTERVAL.as_secs_f64()).max(1.0) as u64;
        Throttler {
            bytes_per_second,
            check_bytes,
            period_bytes: 0,
            period_start: Instant::now(),
            throttled: Duration::ZERO,
        }
    }

    /// A throttler that never sleeps.
    pub fn unlimited() -> Throttler {
        Throttler::new(f64::INFINITY)
    }

    /// Counts `bytes` of I/O; sleeps when the period ran ahead of the rate.
    pub fn observe(&mut self, bytes: u64) {
        self.period_bytes = self.period_bytes.saturating_add(bytes);
        if self.period_bytes < self.check_bytes {
            return;
        }
        if let Some(pause) = pause_needed(
            self.period_bytes,
            self.period_start.elapsed(),
            self.bytes_per_second,
        ) {
            std::thread::sleep(pause);
            self.throttled += pause;
        }
        self.period_bytes = 0;
        self.period_start = Instant::now();
    }

    /// Time spent sleeping so far.
    pub fn throttled(&self) -> Duration {
        self.throttled
    }
}

/// How long to pause after moving `bytes` in `elapsed` so that the average
/// stays at or under `bytes_per_second`; `None` when it already does.
fn pause_needed(bytes: u64, elapsed: Duration, bytes_per_second: f64) -> Option<Duration> {
    let due = Duration::try_from_secs_f64(bytes as f64 / bytes_per_second).ok()?;
    due.checked_sub(elapsed).filter(|pause| !pause.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_is_what_the_rate_still_requires() {
        let ms = Duration::from_millis;
        // (bytes, elapsed, rate, expected pause)
        let cases: &[(u64, Duration, f64, Option<Duration>)] = &[
            (1_000_000, ms(0), 1e6, Some(ms(1000))),
            (1_000_000, ms(400), 1e6, Some(ms(600))),
            (1_000_000, ms(1000), 1e6, None),
            (1_000_000, ms(5000), 1e6, None),
            (500, ms(0), 1e3, Some(ms(500))),
            (u64::MAX, ms(0), f64::MAX, None),
            (u64::MAX, ms(0), f64::INFINITY, None),
        ];
        for &(bytes, elapsed, rate, expected) in cases {
            assert_eq!(
                pause_needed(bytes, elapsed, rate),
                expected,
                "{bytes} bytes in {elapsed:?} at {rate} B/s"
            );
        }
    }

    #[test]
    fn checks_come_every_interval_worth_of_bytes() {
        assert_eq!(Throttler::new(1e6).check_bytes, 100_000);
        assert_eq!(Throttler::new(0.5).check_bytes, 1);
        assert_eq!(Throttler::new(f64::MAX).check_bytes, u64::MAX);
        assert_eq!(Throttler::unlimited().check_bytes, u64::MAX);
        // Below a check nothing sleeps, whatever the rate.
        let mut throttler = Throttler::new(1.0);
        throttler.check_bytes = 10;
        throttler.observe(9);
        assert_eq!(throttler.throttled(), Duration::ZERO);
    }

    #[test]
    #[should_panic(expected = "must be positive")]
    fn a_rate_of_zero_is_a_bug() {
        Throttler::new(0.0);
    }
}
