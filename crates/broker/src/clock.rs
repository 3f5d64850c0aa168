//! Time, for everything in the broker that needs it: wall-clock
//! milliseconds, and the coordinators' clock that tests with paused tokio
//! time control. A leaf: it imports nothing of the crate.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Milliseconds the runtime hands the state machine: wall-clock time at
/// start plus tokio's monotonic elapsed time, so tests with paused tokio
/// time control it and commit timestamps stay real.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Wall-clock milliseconds at `base`.
    base_ms: i64,
    /// The tokio instant the clock started at.
    base: tokio::time::Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock {
            base_ms: now_ms(),
            base: tokio::time::Instant::now(),
        }
    }

    /// Milliseconds now.
    pub fn now_ms(&self) -> i64 {
        self.base_ms + self.base.elapsed().as_millis() as i64
    }

    /// The tokio instant of a time in milliseconds of this clock.
    pub fn instant_of(&self, ms: i64) -> tokio::time::Instant {
        let offset = (ms - self.base_ms).max(0) as u64;
        self.base + std::time::Duration::from_millis(offset)
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}
