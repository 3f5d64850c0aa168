//! The produce workload: one idempotent acks=all producer writing numbered,
//! unique values round robin over the data topic's partitions at a fixed
//! rate, every delivery report recorded with its offset or error.
//!
//! A librdkafka idempotent producer may raise a fatal error (for instance
//! when a message timed out and its sequence state is unknowable); the
//! workload then replaces it with a new instance (a new producer id), which
//! a careful application does too. Values never repeat across instances.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message};

use crate::history::{now, value_of, Outcome, Sent, Shared};

/// How the producer is configured and paced.
pub struct ProducerConfig {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// The data topic.
    pub topic: String,
    /// Its partition count.
    pub partitions: i32,
    /// Records per second.
    pub rate: u32,
}

/// The delivery report of one record goes to the history.
struct Recorder {
    /// Where reports go.
    history: Shared,
}

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        let result = match result {
            Ok(message) => Ok(message.offset()),
            Err((error, _)) => Err(error.to_string()),
        };
        let outcome = Outcome { at: now(), result };
        if let Some(sent) = self.history.lock().sent.get_mut(&seq) {
            sent.outcome = Some(outcome);
        }
    }
}

fn new_producer(
    config: &ProducerConfig,
    history: &Shared,
) -> anyhow::Result<ThreadedProducer<Recorder>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Long enough to ride out a failover (session timeout + election),
        // short enough that the run's final flush is bounded.
        .set("message.timeout.ms", "45000")
        .set("request.timeout.ms", "10000")
        .set("retry.backoff.ms", "100")
        .set("retry.backoff.max.ms", "1000")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "20000")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("socket.connection.setup.timeout.ms", "5000")
        .create_with_context(Recorder {
            history: history.clone(),
        })?)
}

/// Runs until `stop`, then flushes (bounded) and returns.
pub fn run(config: ProducerConfig, history: Shared, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let mut instance = 1u32;
    let mut producer = new_producer(&config, &history)?;
    let interval = Duration::from_secs_f64(1.0 / f64::from(config.rate.max(1)));
    let mut next = Instant::now();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if let Some((code, reason)) = producer.client().fatal_error() {
            history.note(format!(
                "producer instance {instance} fatal error {code:?}: {reason}; starting a new one"
            ));
            drop(producer);
            instance += 1;
            producer = new_producer(&config, &history)?;
        }
        let now_instant = Instant::now();
        if now_instant < next {
            std::thread::sleep(next - now_instant);
        }
        next += interval;
        // After a stall (queue full), do not burst to catch up.
        if next + Duration::from_secs(1) < Instant::now() {
            next = Instant::now();
        }
        let partition = (seq % config.partitions as u64) as i32;
        let value = value_of(partition, instance, seq);
        history.lock().sent.insert(
            seq,
            Sent {
                partition,
                instance,
                sent_at: now(),
                outcome: None,
            },
        );
        let record = BaseRecord::with_opaque_to(&config.topic, Box::new(seq))
            .partition(partition)
            .payload(&value);
        match producer.send::<(), String>(record) {
            Ok(()) => seq += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                // Not sent: the same sequence number is used again.
                history.lock().sent.remove(&seq);
                std::thread::sleep(Duration::from_millis(50));
            }
            Err((error, _)) => {
                history.lock().sent.remove(&seq);
                history.note(format!("producer send refused: {error}"));
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    let _ = producer.flush(Duration::from_secs(60));
    history.note(format!(
        "producer stopped after {seq} records ({} in flight at the end)",
        producer.in_flight_count()
    ));
    Ok(())
}
