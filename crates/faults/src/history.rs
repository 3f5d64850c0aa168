//! What the workloads saw, recorded as it happened, for the checker.
//!
//! Times are seconds since the run started (a monotonic clock of the
//! harness; the nodes' clocks may be jumped, ours never is).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

/// The run's start; every recorded time is relative to it.
static START: OnceLock<Instant> = OnceLock::new();

/// Seconds since the run started.
pub fn now() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Starts the run clock (the first call wins).
pub fn start_clock() {
    let _ = START.get_or_init(Instant::now);
}

/// One record the producer sent: the value is
/// `p<partition>-i<instance>-n<seq>` padded, unique in the run.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The partition it was sent to.
    pub partition: i32,
    /// Which producer instance sent it (a new one after a fatal error).
    pub instance: u32,
    /// When it was handed to librdkafka.
    pub sent_at: f64,
    /// What librdkafka finally said, once it did.
    pub outcome: Option<Outcome>,
}

/// The end of one produce.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// When the delivery report arrived.
    pub at: f64,
    /// The offset it was acknowledged at, or the error.
    pub result: Result<i64, String>,
}

/// Everything the run recorded.
#[derive(Default)]
pub struct History {
    /// Every produced record by its sequence number (unique in the run).
    pub sent: BTreeMap<u64, Sent>,
    /// Things a workload wants in the report (fatal errors, restarts).
    pub notes: Vec<String>,
}

/// The history, shared between the workload threads.
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<History>>);

impl Shared {
    /// Locks the history (a poisoned lock still holds a usable history).
    pub fn lock(&self) -> MutexGuard<'_, History> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a note with its time.
    pub fn note(&self, note: impl Into<String>) {
        let note = format!("{:8.2}s {}", now(), note.into());
        tracing::info!("{note}");
        self.lock().notes.push(note);
    }
}

/// The value of record `seq`: who sent it where, plus padding.
pub fn value_of(partition: i32, instance: u32, seq: u64) -> String {
    format!("p{partition}-i{instance}-n{seq}-{:x<32}", "")
}

/// Parses a value of [`value_of`] back into (partition, instance, seq).
pub fn parse_value(value: &str) -> Option<(i32, u32, u64)> {
    let mut parts = value.split('-');
    let partition = parts.next()?.strip_prefix('p')?.parse().ok()?;
    let instance = parts.next()?.strip_prefix('i')?.parse().ok()?;
    let seq = parts.next()?.strip_prefix('n')?.parse().ok()?;
    Some((partition, instance, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_back() {
        let value = value_of(3, 2, 12345);
        assert_eq!(parse_value(&value), Some((3, 2, 12345)));
        assert_eq!(parse_value("garbage"), None);
    }
}
