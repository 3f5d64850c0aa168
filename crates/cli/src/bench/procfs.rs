//! What a run cost in CPU and memory, read from Linux's /proc: the broker's
//! (given `--broker-pid`) and this load generator's own, so that a report
//! can say which side was the bottleneck.

use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Clock ticks per second of the `utime`/`stime` fields of /proc/PID/stat.
/// Linux fixes USER_HZ at 100 for user space on every architecture it
/// supports; reading it through sysconf would need `libc` (and `unsafe`).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// The user + system CPU time in clock ticks from the text of
/// /proc/PID/stat. The command name (field 2) is in parentheses and may
/// itself hold spaces and parentheses, so fields are counted from the last `)`.
pub fn cpu_ticks_from_stat(text: &str) -> Option<u64> {
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: state (field 3) … utime is field 14, stime field 15.
    let user = fields.nth(11)?.parse::<u64>().ok()?;
    let system = fields.next()?.parse::<u64>().ok()?;
    Some(user + system)
}

/// A `Vm…:` line of /proc/PID/status in bytes (`VmHWM:  1234 kB`).
pub fn status_bytes(text: &str, field: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|line| line.split(':').next() == Some(field))?;
    let mut words = line.split(':').nth(1)?.split_whitespace();
    let value = words.next()?.parse::<u64>().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// One reading of a process's counters.
#[derive(Clone, Copy, Debug)]
pub struct ProcessSample {
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    /// Peak resident set size since the process started (VmHWM).
    pub peak_rss_bytes: Option<u64>,
}

/// Reads /proc/`pid`/stat and status; `pid` is a number or `self`.
pub fn sample(pid: &str) -> anyhow::Result<ProcessSample> {
    let stat_path = format!("/proc/{pid}/stat");
    let stat =
        std::fs::read_to_string(&stat_path).with_context(|| format!("reading {stat_path}"))?;
    let ticks = cpu_ticks_from_stat(&stat)
        .with_context(|| format!("{stat_path}: no utime/stime fields"))?;
    let status_path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&status_path).with_context(|| format!("reading {status_path}"))?;
    Ok(ProcessSample {
        cpu_seconds: ticks as f64 / CLOCK_TICKS_PER_SECOND,
        peak_rss_bytes: status_bytes(&status, "VmHWM"),
    })
}

/// What the run cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Wall-clock time between `start` and `finish`.
    pub elapsed: Duration,
    /// Broker CPU seconds used during the run, when its pid was given.
    pub broker_cpu_seconds: Option<f64>,
    /// The broker's peak RSS since it started (VmHWM), at the end of the run.
    pub broker_peak_rss_bytes: Option<u64>,
    /// This load generator's CPU seconds during the run (all threads).
    pub client_cpu_seconds: Option<f64>,
}

impl Usage {
    /// Cores' worth of CPU the load generator used on average; near the
    /// number of cores it may run on, it (not the broker) was the limit.
    pub fn client_cores(&self) -> Option<f64> {
        let seconds = self.elapsed.as_secs_f64();
        self.client_cpu_seconds
            .filter(|_| seconds > 0.0)
            .map(|cpu| cpu / seconds)
    }

    /// Cores' worth of CPU the broker used on average.
    pub fn broker_cores(&self) -> Option<f64> {
        let seconds = self.elapsed.as_secs_f64();
        self.broker_cpu_seconds
            .filter(|_| seconds > 0.0)
            .map(|cpu| cpu / seconds)
    }
}

/// Takes the readings at the start of a run and the deltas at its end.
#[derive(Debug)]
pub struct UsageMeter {
    /// The broker's pid, when given.
    broker_pid: Option<u32>,
    /// The broker's reading at the start.
    broker_start: Option<ProcessSample>,
    /// This process's reading at the start.
    client_start: Option<ProcessSample>,
    /// When the run started.
    started: Instant,
}

impl UsageMeter {
    /// Reads the counters now. A missing broker process is an error (the
    /// pid was given for a reason); our own /proc entry missing is not.
    pub fn start(broker_pid: Option<u32>) -> anyhow::Result<UsageMeter> {
        let broker_start = match broker_pid {
            Some(pid) => Some(sample(&pid.to_string()).context("--broker-pid")?),
            None => None,
        };
        Ok(UsageMeter {
            broker_pid,
            broker_start,
            client_start: sample("self").ok(),
            started: Instant::now(),
        })
    }

    /// The deltas since `start`.
    pub fn finish(&self) -> Usage {
        let broker_end = self
            .broker_pid
            .and_then(|pid| sample(&pid.to_string()).ok());
        let client_end = sample("self").ok();
        Usage {
            elapsed: self.started.elapsed(),
            broker_cpu_seconds: delta(self.broker_start, broker_end),
            broker_peak_rss_bytes: broker_end.and_then(|end| end.peak_rss_bytes),
            client_cpu_seconds: delta(self.client_start, client_end),
        }
    }
}

/// CPU seconds between two readings of the same process.
fn delta(start: Option<ProcessSample>, end: Option<ProcessSample>) -> Option<f64> {
    Some((end?.cpu_seconds - start?.cpu_seconds).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_ticks() {
        let cases: &[(&str, Option<u64>)] = &[
            (
                "1234 (sluice) S 1 1234 1234 0 -1 4194560 8123 0 0 0 250 75 0 0 20 0 9 0 \
                 1000 123456789 4321 18446744073709551615 1 1 0 0 0 0 0 4096 17987 0 0 0 17 1 \
                 0 0 0 0 0",
                Some(325),
            ),
            // A name with spaces and a parenthesis in it.
            (
                "77 (tokio rt) x)) R 1 77 77 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5 6 7",
                Some(7),
            ),
            ("77 (short) R 1 2 3", None),
            ("no parenthesis at all", None),
            ("5 (x) R 1 1 1 0 -1 0 0 0 0 0 a b", None),
        ];
        for (text, expected) in cases {
            assert_eq!(cpu_ticks_from_stat(text), *expected, "stat {text:?}");
        }
    }

    #[test]
    fn status_fields() {
        let status = "Name:\tsluice\nVmPeak:\t 2000000 kB\nVmHWM:\t   81236 kB\n\
                      VmRSS:\t   70000 kB\nThreads:\t9\n";
        let cases: &[(&str, Option<u64>)] = &[
            ("VmHWM", Some(81_236 * 1024)),
            ("VmRSS", Some(70_000 * 1024)),
            ("Threads", Some(9)),
            ("VmSwap", None),
            ("Name", None),
            ("Vm", None),
        ];
        for (field, expected) in cases {
            assert_eq!(status_bytes(status, field), *expected, "field {field}");
        }
    }

    #[test]
    fn cores_used() {
        let usage = Usage {
            elapsed: Duration::from_secs(4),
            broker_cpu_seconds: Some(3.0),
            broker_peak_rss_bytes: None,
            client_cpu_seconds: Some(3.8),
        };
        assert_eq!(usage.broker_cores(), Some(0.75));
        assert_eq!(usage.client_cores(), Some(0.95));
        assert_eq!(Usage::default().client_cores(), None);
    }

    #[test]
    fn own_process_is_readable() {
        let own = sample("self").expect("reading /proc/self");
        assert!(own.cpu_seconds >= 0.0);
        assert!(own.peak_rss_bytes.is_some_and(|bytes| bytes > 0));
    }
}
