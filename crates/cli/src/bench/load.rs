//! The producing side shared by `bench produce` and `bench e2e`: N
//! librdkafka producer instances, each fed by its own thread, closed-loop
//! (as fast as the producer queue accepts) or open-loop at a fixed rate.
//!
//! Latency is measured per record, from its send to its delivery callback.
//! At a fixed rate, record i of a producer is *scheduled* at start + i/rate
//! and its latency counts from that scheduled time, not from when the
//! thread got round to sending it: a stalled broker then shows as latency
//! instead of silently lowering the offered load (coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};

use super::options::Keys;
use super::progress::Counters;
use super::stats::latency_histogram;

/// How long the final flush may wait for outstanding deliveries.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one record may take to be delivered, retries included.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Sleep when the producer queue is full, while librdkafka drains it.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(200);

/// The bytes e2e writes at the start of each value: run id, then the
/// scheduled send time in nanoseconds since the run's clock origin.
pub const STAMP_BYTES: usize = 16;

/// What to produce and how fast.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    pub topic: String,
    /// Value size in bytes.
    pub record_size: usize,
    /// Stop after this many records in total (split across producers).
    pub records: Option<u64>,
    /// Stop sending after this long.
    pub duration: Option<Duration>,
    /// Records per second in total, open loop; None = closed loop.
    pub rate: Option<f64>,
    pub keys: Keys,
    /// Producer instances, each with its own sending thread.
    pub producers: u32,
    /// Write a stamp (run id, scheduled time) into each value (e2e).
    pub stamp_run_id: Option<u64>,
    /// Transactional producers committing at this interval.
    pub transaction_interval: Option<Duration>,
}

/// What the producers did.
#[derive(Debug)]
pub struct LoadOutcome {
    /// From the first send to the last delivery.
    pub elapsed: Duration,
    /// Send-to-delivery latency in microseconds, all producers merged.
    pub latency: Histogram<u64>,
    /// Records the producers sent (handed to librdkafka).
    pub sent: u64,
    /// The first delivery error, if any record failed.
    pub first_error: Option<String>,
}

/// The clock every timestamp of a run is measured on: nanoseconds since
/// `origin` (monotonic; producer and consumer share the process).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub origin: Instant,
}

impl Clock {
    pub fn now_nanos(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// Per-producer delivery accounting, shared with its callback thread.
#[derive(Debug)]
struct DeliveryStats {
    /// The run's clock.
    clock: Clock,
    /// Send (or scheduled) to delivery latency, microseconds.
    latency: Mutex<Histogram<u64>>,
    /// The run-wide counters the progress bar reads.
    counters: Arc<Counters>,
    /// The time of the latest delivery, nanoseconds on `clock`.
    last_delivery_nanos: AtomicU64,
    /// The first failure, reported at the end.
    first_error: Mutex<Option<String>>,
}

/// The librdkafka context that receives delivery callbacks.
struct DeliveryContext(Arc<DeliveryStats>);

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        tracing::debug!(target: "librdkafka", ?level, facility, "{message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
    }
}

impl ProducerContext for DeliveryContext {
    /// The send (or scheduled) time, nanoseconds on the run's clock.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_nanos: usize) {
        let stats = &self.0;
        let now = stats.clock.now_nanos();
        match result {
            Ok(message) => {
                let bytes = message.payload_len() + message.key().map_or(0, <[u8]>::len);
                stats.counters.add(1, bytes as u64);
                let micros = now.saturating_sub(sent_nanos as u64) / 1000;
                stats
                    .latency
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .saturating_record(micros.max(1));
                stats.last_delivery_nanos.fetch_max(now, Ordering::Relaxed);
            }
            Err((error, _)) => {
                stats.counters.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = stats
                    .first_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                first.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// Runs the plan to the end: every sender thread stops, every producer is
/// flushed. `config` holds the broker list and producer settings.
pub fn run(
    config: &ClientConfig,
    plan: &LoadPlan,
    clock: Clock,
    counters: &Arc<Counters>,
) -> anyhow::Result<LoadOutcome> {
    let started_nanos = clock.now_nanos();
    let mut config = config.clone();
    config.set(
        "message.timeout.ms",
        DELIVERY_TIMEOUT.as_millis().to_string(),
    );
    let producers = plan.producers.max(1);
    let mut threads = Vec::new();
    let mut all_stats = Vec::new();
    for index in 0..producers {
        let stats = Arc::new(DeliveryStats {
            clock,
            latency: Mutex::new(latency_histogram()),
            counters: counters.clone(),
            last_delivery_nanos: AtomicU64::new(started_nanos),
            first_error: Mutex::new(None),
        });
        let mut producer_config = config.clone();
        if plan.transaction_interval.is_some() {
            producer_config.set(
                "transactional.id",
                format!("sluice-bench-{}-{index}", std::process::id()),
            );
        }
        let producer: ThreadedProducer<DeliveryContext> = producer_config
            .create_with_context(DeliveryContext(stats.clone()))
            .context("creating a producer")?;
        if plan.transaction_interval.is_some() {
            producer
                .init_transactions(FLUSH_TIMEOUT)
                .context("initializing transactions")?;
            producer
                .begin_transaction()
                .context("beginning a transaction")?;
        }
        all_stats.push(stats);
        let share = Share::of(plan, index, producers);
        let plan = plan.clone();
        let thread = std::thread::Builder::new()
            .name(format!("bench-producer-{index}"))
            .spawn(move || send_all(&producer, &plan, share, clock, index))
            .context("starting a producer thread")?;
        threads.push(thread);
    }
    let mut sent = 0;
    for thread in threads {
        match thread.join() {
            Ok(result) => sent += result?,
            Err(_) => anyhow::bail!("a producer thread panicked"),
        }
    }
    let mut latency = latency_histogram();
    let mut last_delivery_nanos = started_nanos;
    let mut first_error = None;
    for stats in &all_stats {
        let histogram = stats.latency.lock().unwrap_or_else(PoisonError::into_inner);
        latency
            .add(&*histogram)
            .context("merging latency histograms")?;
        last_delivery_nanos =
            last_delivery_nanos.max(stats.last_delivery_nanos.load(Ordering::Relaxed));
        let error = stats
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        first_error = first_error.or(error);
    }
    Ok(LoadOutcome {
        elapsed: Duration::from_nanos(last_delivery_nanos - started_nanos),
        latency,
        sent,
        first_error,
    })
}

/// One producer's part of the plan.
#[derive(Clone, Copy, Debug)]
struct Share {
    /// Records this producer sends at most.
    records: Option<u64>,
    /// Its rate in records per second.
    rate: Option<f64>,
}

impl Share {
    fn of(plan: &LoadPlan, index: u32, producers: u32) -> Share {
        let records = plan.records.map(|total| {
            let base = total / producers as u64;
            base + u64::from((index as u64) < total % producers as u64)
        });
        Share {
            records,
            rate: plan.rate.map(|rate| rate / producers as f64),
        }
    }
}

/// One sender thread: sends its share, then flushes. Returns records sent.
fn send_all(
    producer: &ThreadedProducer<DeliveryContext>,
    plan: &LoadPlan,
    share: Share,
    clock: Clock,
    index: u32,
) -> anyhow::Result<u64> {
    let mut random = XorShift::seeded(u64::from(index) + clock.now_nanos());
    let mut value = random.letters(plan.record_size);
    let fixed_keys: Vec<Vec<u8>> = match plan.keys {
        Keys::Fixed(count) => (0..count)
            .map(|i| format!("key-{i}").into_bytes())
            .collect(),
        Keys::None | Keys::Random => Vec::new(),
    };
    let started = clock.now_nanos();
    let deadline = plan
        .duration
        .map(|duration| started + duration.as_nanos() as u64);
    let interval_nanos = share.rate.map(|rate| 1e9 / rate);
    let transaction_nanos = plan.transaction_interval.map(|t| t.as_nanos() as u64);
    let mut transaction_started = started;
    let mut sent = 0u64;
    loop {
        if let Some(every) = transaction_nanos {
            if clock.now_nanos().saturating_sub(transaction_started) >= every {
                producer
                    .commit_transaction(FLUSH_TIMEOUT)
                    .context("committing a transaction")?;
                producer
                    .begin_transaction()
                    .context("beginning a transaction")?;
                transaction_started = clock.now_nanos();
            }
        }
        if share.records.is_some_and(|records| sent >= records) {
            break;
        }
        let send_nanos = match interval_nanos {
            Some(interval) => {
                let scheduled = started + (sent as f64 * interval) as u64;
                wait_until(clock, scheduled);
                scheduled
            }
            None => clock.now_nanos(),
        };
        // The wall clock too: an open-loop sender that fell behind a slow
        // broker stops on time rather than sending its whole schedule late.
        if deadline.is_some_and(|deadline| send_nanos >= deadline || clock.now_nanos() >= deadline)
        {
            break;
        }
        if let Some(run_id) = plan.stamp_run_id {
            value[..8].copy_from_slice(&run_id.to_le_bytes());
            value[8..STAMP_BYTES].copy_from_slice(&send_nanos.to_le_bytes());
        }
        let random_key;
        let key: Option<&[u8]> = match plan.keys {
            Keys::None => None,
            Keys::Random => {
                random_key = random.next().to_le_bytes();
                Some(&random_key)
            }
            Keys::Fixed(count) => Some(&fixed_keys[(random.next() % u64::from(count)) as usize]),
        };
        let mut record =
            BaseRecord::with_opaque_to(&plan.topic, send_nanos as usize).payload(value.as_slice());
        if let Some(key) = key {
            record = record.key(key);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    std::thread::sleep(QUEUE_FULL_BACKOFF);
                }
                Err((error, _)) => {
                    return Err(anyhow::Error::new(error).context("sending a record"));
                }
            }
        }
        sent += 1;
    }
    if transaction_nanos.is_some() {
        producer
            .commit_transaction(FLUSH_TIMEOUT)
            .context("committing the last transaction")?;
    } else {
        producer
            .flush(FLUSH_TIMEOUT)
            .context("waiting for the last deliveries")?;
    }
    Ok(sent)
}

/// Sleeps until the clock reads `nanos`. It never spins: a spinning
/// sender would burn the core the load generator is pinned to and hide
/// whether it, or the broker, was the bottleneck. A sleep overshoots by
/// tens of microseconds; the latency, counted from the scheduled time,
/// includes that.
fn wait_until(clock: Clock, nanos: u64) {
    let now = clock.now_nanos();
    if now < nanos {
        std::thread::sleep(Duration::from_nanos(nanos - now));
    }
}

/// A small fast PRNG for keys and values; benchmark data need not be
/// unpredictable, only not trivially compressible.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn seeded(seed: u64) -> XorShift {
        // Never zero: zero is xorshift's fixed point.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// `length` random capital letters (as Kafka's producer-perf-test
    /// writes): compressible to about 60%, like text.
    pub fn letters(&mut self, length: usize) -> Vec<u8> {
        (0..length)
            .map(|_| b'A' + (self.next() % 26) as u8)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(records: Option<u64>, rate: Option<f64>) -> LoadPlan {
        LoadPlan {
            topic: "t".to_string(),
            record_size: 10,
            records,
            duration: None,
            rate,
            keys: Keys::None,
            producers: 3,
            stamp_run_id: None,
            transaction_interval: None,
        }
    }

    #[test]
    fn shares_add_up() {
        let cases: &[(u64, [u64; 3])] = &[(10, [4, 3, 3]), (2, [1, 1, 0]), (9, [3, 3, 3])];
        for (total, expected) in cases {
            let plan = plan(Some(*total), Some(300.0));
            let shares: Vec<Share> = (0..3).map(|i| Share::of(&plan, i, 3)).collect();
            let records: Vec<u64> = shares.iter().filter_map(|s| s.records).collect();
            assert_eq!(records, expected, "total {total}");
            assert!(shares.iter().all(|s| s.rate == Some(100.0)));
        }
        let open = Share::of(&plan(None, None), 0, 3);
        assert_eq!((open.records, open.rate), (None, None));
    }

    #[test]
    fn random_letters() {
        let mut random = XorShift::seeded(0);
        let letters = random.letters(1000);
        assert_eq!(letters.len(), 1000);
        assert!(letters.iter().all(u8::is_ascii_uppercase));
        assert_ne!(random.next(), random.next());
    }
}
