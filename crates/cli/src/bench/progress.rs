//! Live progress on stderr: an `indicatif` bar on a terminal, a plain line
//! every few seconds otherwise (CI logs, `compare.sh`), so stdout carries
//! only the final report.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the terminal bar is redrawn.
const BAR_INTERVAL: Duration = Duration::from_millis(200);
/// How often a plain progress line is printed when stderr is not a terminal.
const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// Counters the data path bumps and the progress thread reads.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records delivered or received so far.
    pub records: AtomicU64,
    /// Their key + value bytes.
    pub bytes: AtomicU64,
    /// Records that failed.
    pub failed: AtomicU64,
}

impl Counters {
    pub fn add(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// What the bar measures progress against.
#[derive(Clone, Copy, Debug)]
pub enum Goal {
    /// A number of records.
    Records(u64),
    /// A length of time.
    Time(Duration),
    /// Nothing known in advance.
    Open,
}

/// The running progress reporter; `finish` stops and clears it.
#[derive(Debug)]
pub struct Progress {
    /// Tells the reporter thread to stop.
    stop: Arc<AtomicBool>,
    /// The reporter thread.
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn start(label: &'static str, goal: Goal, counters: Arc<Counters>) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("bench-progress".to_string())
                .spawn(move || {
                    if std::io::stderr().is_terminal() {
                        draw_bar(label, goal, &counters, &stop);
                    } else {
                        print_lines(label, &counters, &stop);
                    }
                })
                .ok()
        };
        Progress { stop, thread }
    }

    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn draw_bar(label: &str, goal: Goal, counters: &Counters, stop: &AtomicBool) {
    let length = match goal {
        Goal::Records(records) => records,
        Goal::Time(duration) => duration.as_millis() as u64,
        Goal::Open => 0,
    };
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
    let template = if length > 0 {
        "{prefix} {elapsed_precise} [{bar:30}] {percent:>3}% {msg}"
    } else {
        "{prefix} {elapsed_precise} {spinner} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label.to_string());
    let started = Instant::now();
    let mut rate = Rate::new(counters);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(BAR_INTERVAL);
        let (records, megabytes_per_second, records_per_second) = rate.sample(counters);
        bar.set_position(match goal {
            Goal::Records(_) => records,
            Goal::Time(duration) => (started.elapsed().min(duration)).as_millis() as u64,
            Goal::Open => records,
        });
        bar.set_message(format!(
            "{} records, {megabytes_per_second:.1} MB/s, {} rec/s",
            super::stats::format_count(records),
            super::stats::format_count(records_per_second as u64)
        ));
    }
    bar.finish_and_clear();
}

fn print_lines(label: &str, counters: &Counters, stop: &AtomicBool) {
    let started = Instant::now();
    let mut rate = Rate::new(counters);
    let mut next = started + LINE_INTERVAL;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() < next {
            continue;
        }
        next += LINE_INTERVAL;
        let (records, megabytes_per_second, records_per_second) = rate.sample(counters);
        eprintln!(
            "{label}: {:.0} s, {} records, {megabytes_per_second:.1} MB/s, {} rec/s (last {} s)",
            started.elapsed().as_secs_f64(),
            super::stats::format_count(records),
            super::stats::format_count(records_per_second as u64),
            LINE_INTERVAL.as_secs()
        );
    }
}

/// The rate since the previous sample.
struct Rate {
    at: Instant,
    records: u64,
    bytes: u64,
}

impl Rate {
    fn new(counters: &Counters) -> Rate {
        Rate {
            at: Instant::now(),
            records: counters.records.load(Ordering::Relaxed),
            bytes: counters.bytes.load(Ordering::Relaxed),
        }
    }

    /// (records so far, MB/s and records/s since the last sample).
    fn sample(&mut self, counters: &Counters) -> (u64, f64, f64) {
        let now = Instant::now();
        let records = counters.records.load(Ordering::Relaxed);
        let bytes = counters.bytes.load(Ordering::Relaxed);
        let seconds = now.duration_since(self.at).as_secs_f64().max(1e-9);
        let megabytes_per_second = bytes.saturating_sub(self.bytes) as f64 / 1e6 / seconds;
        let records_per_second = records.saturating_sub(self.records) as f64 / seconds;
        *self = Rate {
            at: now,
            records,
            bytes,
        };
        (records, megabytes_per_second, records_per_second)
    }
}
