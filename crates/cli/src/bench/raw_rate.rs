//! `--client raw --rate`: the raw producer open loop, for `bench e2e`.
//!
//! Each producer thread has its share of the rate and a schedule: record
//! k is due at `start + k / rate`. Due records wait at most `--linger-ms`
//! (default 1 ms, the e2e workloads' setting for librdkafka) and at most
//! `--batch-size` bytes, then go out as one batch in one Produce request, to
//! the producer's partitions in turn, over one connection per leader with
//! up to `--in-flight` requests outstanding. A batch is encoded per request
//! (kafka-protocol's encoder: the values carry e2e's stamp, run id and
//! scheduled time, so they differ every time); at the rates a latency run
//! uses that costs the client little, and the report shows what it costs.
//! Latency, ack and end to end, counts from each record's scheduled time,
//! so a client or broker that falls behind shows as latency.

use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::records::Record;

use super::load::{Clock, LoadOutcome, LoadPlan, XorShift, STAMP_BYTES};
use super::progress::Counters;
use super::raw::{
    connect, encode_batch, frame, plain_record, produce_request, RawPlan, Sent, CORRELATION_ID_AT,
};
use super::stats::latency_histogram;

/// Linger when none is asked for.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(1);

/// Runs `plan` (which has a rate) with open-loop raw producers.
pub fn run(
    plan: &LoadPlan,
    raw: &RawPlan,
    clock: Clock,
    counters: &Arc<Counters>,
) -> anyhow::Result<LoadOutcome> {
    let Some(rate) = plan.rate else {
        bail!("the open-loop raw producer needs a rate");
    };
    let producers = plan.producers.max(1) as usize;
    // Every partition, with the route (leader) it goes to.
    let targets: Vec<(usize, i32)> = raw
        .routes
        .iter()
        .enumerate()
        .flat_map(|(route, r)| r.partitions.iter().map(move |p| (route, *p)))
        .collect();
    if targets.is_empty() {
        bail!("no partition to produce to");
    }
    let started = clock.now_nanos();
    let latency = Arc::new(Mutex::new(latency_histogram()));
    let mut threads = Vec::with_capacity(producers);
    for index in 0..producers {
        let records_max = plan.records.map(|records| {
            records / producers as u64 + u64::from((index as u64) < records % producers as u64)
        });
        // Producer i starts at partition i, so producers spread at once.
        let mut mine = targets.clone();
        mine.rotate_left(index % targets.len());
        let sender = Sender {
            plan: plan.clone(),
            raw: raw.clone(),
            targets: mine,
            interval_nanos: 1e9 * producers as f64 / rate,
            started,
            deadline_nanos: plan.duration.map(|d| started + d.as_nanos() as u64),
            records_max,
            clock,
            counters: counters.clone(),
            latency: latency.clone(),
            filler: Bytes::from(XorShift::seeded(index as u64 + 1).letters(plan.record_size)),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("bench-raw-rate-{index}"))
                .spawn(move || sender.run())
                .context("starting a raw producer thread")?,
        );
    }
    let (sent, first_error) = super::raw::join_producers(threads)?;
    let latency = latency
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(LoadOutcome {
        elapsed: Duration::from_nanos(clock.now_nanos() - started),
        latency,
        sent,
        first_error,
    })
}

/// One open-loop producer thread.
struct Sender {
    plan: LoadPlan,
    raw: RawPlan,
    /// (route, partition), sent to in turn.
    targets: Vec<(usize, i32)>,
    /// Nanoseconds between this producer's records.
    interval_nanos: f64,
    started: u64,
    deadline_nanos: Option<u64>,
    records_max: Option<u64>,
    clock: Clock,
    counters: Arc<Counters>,
    latency: Arc<Mutex<hdrhistogram::Histogram<u64>>>,
    /// The value bytes after the stamp.
    filler: Bytes,
}

impl Sender {
    /// Sends on schedule until the deadline or the record count; returns
    /// the records sent.
    fn run(self) -> anyhow::Result<u64> {
        let acks_zero = self.raw.acks == 0;
        let linger = self.plan_linger();
        let per_batch = (self.raw.batch_bytes / self.plan.record_size.max(1)).max(1) as u64;
        let mut connections = Vec::with_capacity(self.raw.routes.len());
        for route in &self.raw.routes {
            connections.push(connect(
                &route.broker,
                self.raw.in_flight,
                acks_zero,
                self.clock,
                &self.counters,
                &self.latency,
            )?);
        }
        let result = self.send_all(&mut connections, linger, per_batch, acks_zero);
        let mut read = Ok(());
        for (stream, window, reader) in connections {
            drop(window);
            drop(stream);
            if let Some(reader) = reader {
                let done = reader
                    .join()
                    .map_err(|_| anyhow::anyhow!("a raw reader thread panicked"))?;
                if read.is_ok() {
                    read = done;
                }
            }
        }
        let sent = result?;
        read?;
        Ok(sent)
    }

    fn plan_linger(&self) -> u64 {
        self.raw.linger.unwrap_or(DEFAULT_LINGER).as_nanos() as u64
    }

    fn scheduled(&self, record: u64) -> u64 {
        self.started + (record as f64 * self.interval_nanos) as u64
    }

    fn send_all(
        &self,
        connections: &mut [super::raw::Connection],
        linger: u64,
        per_batch: u64,
        acks_zero: bool,
    ) -> anyhow::Result<u64> {
        let mut next = 0u64; // the next record of the schedule not sent
        let mut turn = 0usize;
        let mut correlation_id = 0i32;
        loop {
            let remaining = self.records_max.map_or(u64::MAX, |max| max - next);
            if remaining == 0 {
                break;
            }
            let now = self.clock.now_nanos();
            let oldest = self.scheduled(next);
            if self.deadline_nanos.is_some_and(|d| oldest >= d || now >= d) {
                break;
            }
            if now < oldest {
                sleep_until(self.clock, oldest);
                continue;
            }
            // Records due by now, not sent yet.
            let due = (((now - self.started) as f64 / self.interval_nanos) as u64 + 1)
                .saturating_sub(next)
                .max(1);
            let count = due.min(per_batch).min(remaining);
            if count < per_batch && count < remaining && now < oldest + linger {
                sleep_until(self.clock, oldest + linger);
                continue;
            }
            let (route, partition) = self.targets[turn % self.targets.len()];
            turn += 1;
            let mut request = self.request(partition, next, count)?;
            request[CORRELATION_ID_AT..CORRELATION_ID_AT + 4]
                .copy_from_slice(&correlation_id.to_be_bytes());
            let (stream, window, _) = &mut connections[route];
            let bytes = count * self.plan.record_size as u64;
            if !acks_zero {
                let sent = Sent {
                    correlation_id,
                    sent_nanos: oldest,
                    interval_nanos: self.interval_nanos,
                    records: count,
                    bytes,
                };
                if window.send(sent).is_err() {
                    break; // the reader stopped, and says why
                }
            }
            stream
                .write_all(&request)
                .context("sending a Produce request")?;
            if acks_zero {
                self.counters.add(count, bytes);
            }
            correlation_id = correlation_id.wrapping_add(1);
            next += count;
        }
        Ok(next)
    }

    /// The Produce request frame for records `first..first + count` of the
    /// schedule, to `partition`.
    fn request(&self, partition: i32, first: u64, count: u64) -> anyhow::Result<BytesMut> {
        let records: Vec<Record> = (0..count)
            .map(|index| {
                let mut value = BytesMut::with_capacity(self.plan.record_size);
                if let Some(run_id) = self.plan.stamp_run_id {
                    value.put_u64_le(run_id);
                    value.put_u64_le(self.scheduled(first + index));
                    value.put_slice(&self.filler[STAMP_BYTES.min(self.filler.len())..]);
                } else {
                    value.put_slice(&self.filler);
                }
                plain_record(index as usize, value.freeze())
            })
            .collect();
        let batch = encode_batch(&records, self.raw.compression)?;
        let request = produce_request(&self.plan.topic, partition, self.raw.acks, batch);
        frame(ApiKey::Produce, super::raw::PRODUCE_VERSION, 0, &request)
    }
}

fn sleep_until(clock: Clock, nanos: u64) {
    let now = clock.now_nanos();
    if now < nanos {
        std::thread::sleep(Duration::from_nanos(nanos - now));
    }
}
