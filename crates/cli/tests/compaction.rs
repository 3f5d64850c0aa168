//! Log compaction end to end: a compacted topic ends with the latest value per
//! key (offsets unchanged, with gaps), tombstones go once `delete.retention.ms`
//! has passed, aborted transactional records and settled transaction markers
//! are removed while committed ones compact like any other record, a kill -9
//! in the middle of cleaning leaves the topic whole, and a record without a
//! key is refused.

mod common;
#[path = "common/group.rs"]
mod group;
#[path = "common/lifecycle.rs"]
mod lifecycle;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{watermarks, TestBroker, CLIENT_TIMEOUT};
use kafka_protocol::records::RecordBatchDecoder;
use lifecycle::{
    bulk_producer, create_topic_with, list_files, partition_files, produce_all, read_until,
    segment_bases, strings, wait_until, Outgoing, FAST_MAINTENANCE,
};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset};

/// How long the cleaner may take to reach the expected state.
const CLEAN_WAIT: Duration = Duration::from_secs(120);
/// How long one read of the whole partition may take.
const READ_WAIT: Duration = Duration::from_secs(60);

/// Keys of the updates workload.
fn key_for(key: usize) -> String {
    format!("key-{key:03}")
}

/// The value of update `update` of key `key`: about 20 bytes, naming both.
fn value_for(update: usize, key: usize) -> String {
    format!("v{update:04}-k{key:03}-payload")
}

/// `updates` rounds over `keys` keys, each round in its own pseudo-random
/// order (so that the latest records of the keys are not one contiguous run);
/// the `(key, value)` of record `i` (offset `i`) is element `i`.
fn updates_workload(keys: usize, updates: usize) -> Vec<(String, String)> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut records = Vec::with_capacity(keys * updates);
    for update in 0..updates {
        let mut order: Vec<usize> = (0..keys).collect();
        for index in (1..order.len()).rev() {
            order.swap(index, (next() % (index as u64 + 1)) as usize);
        }
        records.extend(
            order
                .into_iter()
                .map(|key| (key_for(key), value_for(update, key))),
        );
    }
    records
}

/// The workload as records to produce.
fn outgoing(workload: &[(String, String)]) -> Vec<Outgoing> {
    workload
        .iter()
        .map(|(key, value)| Outgoing::keyed(key.as_str(), value.as_str()))
        .collect()
}

/// Asserts every record read is the one produced at its offset.
fn assert_as_produced(messages: &[OwnedMessage], workload: &[(String, String)]) {
    for message in messages {
        let offset = message.offset() as usize;
        let (key, value) = &workload[offset];
        assert_eq!(
            strings(message),
            (Some(key.clone()), Some(value.clone())),
            "record at offset {offset} is the one produced there"
        );
    }
}

/// Reads the whole partition 0 (from the beginning up to `high`).
fn read_all(bootstrap: &str, topic: &str, high: i64) -> Vec<OwnedMessage> {
    read_until(
        bootstrap,
        topic,
        0,
        Offset::Beginning,
        high,
        "error",
        READ_WAIT,
    )
}

/// Keys that occur more than once among the records below `below`.
fn duplicated_keys(messages: &[OwnedMessage], below: i64) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut duplicated = BTreeSet::new();
    for message in messages.iter().filter(|m| m.offset() < below) {
        let key = strings(message).0.unwrap_or_default();
        if !seen.insert(key.clone()) {
            duplicated.insert(key);
        }
    }
    duplicated
}

/// The base offset of the active (last) segment.
fn active_base(data_dir: &Path, topic: &str) -> i64 {
    segment_bases(data_dir, topic, 0)
        .last()
        .copied()
        .unwrap_or_else(|| panic!("no segment of {topic}-0"))
}

/// Asserts offsets strictly increase, and returns the last value seen per key.
fn latest_per_key(messages: &[OwnedMessage]) -> BTreeMap<String, Option<String>> {
    let mut latest = BTreeMap::new();
    let mut previous = -1;
    for message in messages {
        assert!(
            message.offset() > previous,
            "offsets strictly increase: {} after {previous}",
            message.offset()
        );
        previous = message.offset();
        let (key, value) = strings(message);
        latest.insert(key.expect("every record has a key"), value);
    }
    latest
}

/// Waits until the log below the active segment holds each key at most once,
/// and returns the whole partition as then read.
async fn wait_until_compacted(broker: &TestBroker, topic: &str, high: i64) -> Vec<OwnedMessage> {
    let bootstrap = broker.bootstrap().to_string();
    let data_dir = broker.data_dir().to_path_buf();
    let deadline = Instant::now() + CLEAN_WAIT;
    loop {
        let messages = read_all(&bootstrap, topic, high);
        let below = active_base(&data_dir, topic);
        let duplicated = duplicated_keys(&messages, below);
        if duplicated.is_empty() {
            return messages;
        }
        assert!(
            Instant::now() < deadline,
            "the log was not compacted within {CLEAN_WAIT:?}: {} records read, active segment \
             at {below}, {} keys duplicated below it (e.g. {:?}); files:\n{}",
            messages.len(),
            duplicated.len(),
            duplicated.iter().next(),
            list_files(&data_dir, topic, 0)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topic_keeps_the_latest_value_per_key() {
    const KEYS: usize = 100;
    const UPDATES: usize = 1000;
    let broker = TestBroker::start_with(FAST_MAINTENANCE);
    let topic = "compaction-latest";
    create_topic_with(
        broker.bootstrap(),
        topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "32768"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("file.delete.delay.ms", "100"),
        ],
    )
    .await;
    let producer = bulk_producer(broker.bootstrap(), 16 * 1024);
    let workload = updates_workload(KEYS, UPDATES);
    let total = workload.len() as i64;
    let offsets = produce_all(&producer, topic, 0, &outgoing(&workload)).await;
    assert_eq!(
        offsets,
        (0..total).collect::<Vec<_>>(),
        "record i at offset i"
    );
    assert_eq!(watermarks(broker.bootstrap(), topic, 0), (0, total));

    let messages = wait_until_compacted(&broker, topic, total).await;
    eprintln!(
        "{} of {total} records left after cleaning; files:\n{}",
        messages.len(),
        list_files(broker.data_dir(), topic, 0)
    );
    assert_eq!(
        watermarks(broker.bootstrap(), topic, 0),
        (0, total),
        "compaction moves neither watermark"
    );
    assert!(
        messages.len() < (total / 10) as usize,
        "cleaning removed most records ({} left)",
        messages.len()
    );
    assert_eq!(
        messages.last().map(Message::offset),
        Some(total - 1),
        "the last record stays"
    );
    let gaps = messages
        .windows(2)
        .filter(|pair| pair[1].offset() > pair[0].offset() + 1)
        .count();
    assert!(
        messages[0].offset() > 0 && gaps > 0,
        "a consumer reading from offset 0 sees increasing offsets with gaps \
         (first {}, {gaps} gaps)",
        messages[0].offset()
    );
    assert_as_produced(&messages, &workload);
    let latest = latest_per_key(&messages);
    let expected: BTreeMap<String, Option<String>> = (0..KEYS)
        .map(|key| (key_for(key), Some(value_for(UPDATES - 1, key))))
        .collect();
    assert_eq!(latest, expected, "the latest value of every key");
}

/// Produces filler records (keys `filler-N`) until the active segment starts
/// above `offset`, so that every record up to it lies in a closed segment.
async fn roll_past(
    producer: &FutureProducer,
    data_dir: &Path,
    topic: &str,
    offset: i64,
    filler: &mut usize,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while active_base(data_dir, topic) <= offset {
        assert!(
            Instant::now() < deadline,
            "the active segment did not roll past {offset}; files:\n{}",
            list_files(data_dir, topic, 0)
        );
        let records: Vec<Outgoing> = (0..10)
            .map(|index| Outgoing::keyed(format!("filler-{index}"), format!("filler-{filler}")))
            .collect();
        *filler += 1;
        produce_all(producer, topic, 0, &records).await;
    }
}

/// The keys the tombstone test deletes (of `t0`..`t9`).
const DELETED: [&str; 5] = ["t0", "t1", "t2", "t3", "t4"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_go_after_delete_retention_ms() {
    let broker = TestBroker::start_with(FAST_MAINTENANCE);
    let topic = "compaction-tombstones";
    create_topic_with(
        broker.bootstrap(),
        topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1024"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("file.delete.delay.ms", "100"),
        ],
    )
    .await;
    let producer = bulk_producer(broker.bootstrap(), 16 * 1024);
    let data_dir = broker.data_dir().to_path_buf();
    let mut filler = 0usize;

    eprintln!("phase: 10 keys x 5 updates, then tombstones for 5 of them");
    let updates: Vec<Outgoing> = (0..5)
        .flat_map(|update| {
            (0..10).map(move |key| Outgoing::keyed(format!("t{key}"), format!("u{update}")))
        })
        .collect();
    produce_all(&producer, topic, 0, &updates).await;
    let tombstones: Vec<Outgoing> = (0..5)
        .map(|key| Outgoing::tombstone(format!("t{key}")))
        .collect();
    let offsets = produce_all(&producer, topic, 0, &tombstones).await;
    let last_tombstone = *offsets.last().unwrap();
    roll_past(&producer, &data_dir, topic, last_tombstone, &mut filler).await;

    eprintln!("phase: cleaned with delete.retention.ms = 1 day: the tombstones stay");
    let (_, high) = watermarks(broker.bootstrap(), topic, 0);
    let messages = wait_until_compacted(&broker, topic, high).await;
    let latest = latest_per_key(&messages);
    for key in 0..10 {
        let key = format!("t{key}");
        let want = if DELETED.contains(&key.as_str()) {
            None
        } else {
            Some("u4".to_string())
        };
        assert_eq!(
            latest.get(&key),
            Some(&want),
            "latest of {key} (None: a tombstone)"
        );
    }
    let old_values = messages
        .iter()
        .filter(|m| {
            let (key, value) = strings(m);
            key.is_some_and(|k| DELETED.contains(&k.as_str())) && value.is_some()
        })
        .count();
    assert_eq!(old_values, 0, "the values the tombstones deleted are gone");

    eprintln!(
        "phase: delete.retention.ms = 500 set on the running broker (CLI): the tombstones go"
    );
    let output = group::sluice(
        broker.bootstrap(),
        &[
            "topic",
            "alter-config",
            topic,
            "-c",
            "delete.retention.ms=500",
        ],
    );
    assert_eq!(
        output.code,
        Some(0),
        "topic alter-config failed: {output:?}"
    );
    let described = lifecycle::describe_topic(broker.bootstrap(), topic).await;
    assert_eq!(
        lifecycle::value_of(&described, "delete.retention.ms"),
        "500"
    );
    assert_eq!(
        lifecycle::value_of(&described, "cleanup.policy"),
        "compact",
        "an incremental change keeps the other overrides"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let bootstrap = broker.bootstrap().to_string();
    let deadline = Instant::now() + CLEAN_WAIT;
    let messages = loop {
        // New dirty data makes the cleaner run again; it rewrites the whole
        // cleanable range, tombstone segments included.
        let (_, high) = watermarks(&bootstrap, topic, 0);
        roll_past(&producer, &data_dir, topic, high - 1, &mut filler).await;
        let (_, high) = watermarks(&bootstrap, topic, 0);
        let messages = read_all(&bootstrap, topic, high);
        let remaining: Vec<i64> = messages
            .iter()
            .filter(|m| strings(m).0.is_some_and(|k| DELETED.contains(&k.as_str())))
            .map(Message::offset)
            .collect();
        if remaining.is_empty() {
            break messages;
        }
        assert!(
            Instant::now() < deadline,
            "tombstones still at offsets {remaining:?} after {CLEAN_WAIT:?}; files:\n{}",
            list_files(&data_dir, topic, 0)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let latest = latest_per_key(&messages);
    for key in 0..10 {
        let key = format!("t{key}");
        let want = (!DELETED.contains(&key.as_str())).then(|| Some("u4".to_string()));
        assert_eq!(
            latest.get(&key),
            want.as_ref(),
            "after tombstone removal: {key}"
        );
    }
}

/// Transaction markers in the partition's live segments, in offset order:
/// (offset, true for COMMIT). `None` when a segment vanished while being
/// read (a cleaner swap): ask again.
fn markers_on_disk(data_dir: &Path, topic: &str) -> Option<Vec<(i64, bool)>> {
    let dir = data_dir.join(format!("{topic}-0"));
    let mut markers = Vec::new();
    for base in segment_bases(data_dir, topic, 0) {
        let bytes = std::fs::read(dir.join(format!("{base:020}.log"))).ok()?;
        let mut rest = &bytes[..];
        // Whole batches only: the active segment may be mid-append.
        while rest.len() >= 61 {
            let length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
            let total = 12 + usize::try_from(length).expect("a stored batch length is positive");
            if total > rest.len() {
                break;
            }
            let mut batch = bytes::Bytes::copy_from_slice(&rest[..total]);
            let set = RecordBatchDecoder::decode(&mut batch).expect("a stored batch decodes");
            for record in set.records.iter().filter(|record| record.control) {
                let key = record.key.as_deref().unwrap_or_default();
                markers.push((record.offset, key == [0, 0, 0, 1]));
            }
            rest = &rest[total..];
        }
    }
    Some(markers)
}

/// Reads the whole partition 0 up to `high` at an isolation level.
fn read_isolated(bootstrap: &str, topic: &str, high: i64, isolation: &str) -> Vec<OwnedMessage> {
    let consumer = common::consumer(
        bootstrap,
        &[
            ("isolation.level", isolation),
            ("auto.offset.reset", "earliest"),
            ("fetch.wait.max.ms", "100"),
        ],
    );
    common::assign(&consumer, topic, &[(0, Offset::Beginning)]);
    lifecycle::read_from(&consumer, high, READ_WAIT)
}

/// (key, value) of the records whose key starts with `t`, in offset order.
fn transactional_keys(messages: &[OwnedMessage]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(strings)
        .filter_map(|(key, value)| Some((key?, value.unwrap_or_default())))
        .filter(|(key, _)| key.starts_with('t'))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_transactions_and_settled_markers_are_removed() {
    const KEYS: usize = 10;
    const ROUNDS: usize = 6;
    let broker = TestBroker::start_with(FAST_MAINTENANCE);
    let topic = "compaction-transactions";
    create_topic_with(
        broker.bootstrap(),
        topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1024"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "100"),
            ("file.delete.delay.ms", "100"),
        ],
    )
    .await;
    let data_dir = broker.data_dir().to_path_buf();
    let bootstrap = broker.bootstrap().to_string();

    eprintln!("phase: {ROUNDS} transactions over {KEYS} keys, even rounds committed, odd aborted");
    let transactional = common::producer(
        &bootstrap,
        &[
            ("transactional.id", "compaction-transactions"),
            ("transaction.timeout.ms", "30000"),
        ],
    );
    transactional
        .init_transactions(CLIENT_TIMEOUT)
        .expect("init_transactions");
    for round in 0..ROUNDS {
        let commit = round % 2 == 0;
        transactional.begin_transaction().expect("begin");
        for key in 0..KEYS {
            let value = format!("{}{round}-k{key}", if commit { "c" } else { "a" });
            let key = format!("t{key}");
            let record = FutureRecord::to(topic)
                .partition(0)
                .key(&key)
                .payload(&value);
            transactional
                .send(record, CLIENT_TIMEOUT)
                .await
                .unwrap_or_else(|(error, _)| panic!("send {value}: {error}"));
        }
        if commit {
            transactional
                .commit_transaction(CLIENT_TIMEOUT)
                .expect("commit");
        } else {
            transactional
                .abort_transaction(CLIENT_TIMEOUT)
                .expect("abort");
        }
    }
    // The latest committed value of every key; the aborted round after it
    // must not win.
    let expected: Vec<String> = (0..KEYS)
        .map(|key| format!("c{}-k{key}", ROUNDS - 2))
        .collect();

    eprintln!("phase: plain traffic rolls the segments; the cleaner removes the aborted records");
    let filler_producer = bulk_producer(&bootstrap, 16 * 1024);
    let mut filler = 0usize;
    let deadline = Instant::now() + CLEAN_WAIT;
    loop {
        let (_, high) = watermarks(&bootstrap, topic, 0);
        roll_past(&filler_producer, &data_dir, topic, high - 1, &mut filler).await;
        let (_, high) = watermarks(&bootstrap, topic, 0);
        let found = transactional_keys(&read_isolated(&bootstrap, topic, high, "read_uncommitted"));
        let values: Vec<&String> = found.iter().map(|(_, value)| value).collect();
        if values == expected.iter().collect::<Vec<_>>() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "read_uncommitted still sees {found:?} after {CLEAN_WAIT:?} (want {expected:?}); \
             files:\n{}",
            list_files(&data_dir, topic, 0)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    eprintln!("phase: the markers whose transactions left no data go after delete.retention.ms");
    // Left: only the COMMIT of the last committed round, whose records are
    // the latest. (The last round's newest batch stays, empty, for the
    // producer's sequence; an empty batch keeps no marker.)
    let deadline = Instant::now() + CLEAN_WAIT;
    loop {
        let (_, high) = watermarks(&bootstrap, topic, 0);
        roll_past(&filler_producer, &data_dir, topic, high - 1, &mut filler).await;
        let markers = markers_on_disk(&data_dir, topic);
        let kinds: Option<Vec<bool>> = markers
            .as_ref()
            .map(|markers| markers.iter().map(|(_, commit)| *commit).collect());
        if kinds == Some(vec![true]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "markers on disk {markers:?} after {CLEAN_WAIT:?}; files:\n{}",
            list_files(&data_dir, topic, 0)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    eprintln!("phase: both isolation levels read the latest committed values");
    let (_, high) = watermarks(&bootstrap, topic, 0);
    for isolation in ["read_uncommitted", "read_committed"] {
        let found = transactional_keys(&read_isolated(&bootstrap, topic, high, isolation));
        let values: Vec<String> = found.into_iter().map(|(_, value)| value).collect();
        assert_eq!(values, expected, "{isolation}");
    }
}

/// The last value of every key of the workload.
fn expected_latest(workload: &[(String, String)]) -> BTreeMap<String, Option<String>> {
    workload
        .iter()
        .map(|(key, value)| (key.clone(), Some(value.clone())))
        .collect()
}

/// Kills the broker (SIGKILL) while the cleaner is at work on `topic`: as
/// soon as a `.cleaned` or `.swap` file appears, or, with `after_swap`, once a
/// group was swapped in (a `.deleted` file) and the next one is being written
/// (or 5 s after the swap, whichever is first; or after 10 s of an idle cleaner).
fn kill_mid_clean(broker: &mut TestBroker, topic: &str, after_swap: bool) {
    let data_dir = broker.data_dir().to_path_buf();
    let deadline = Instant::now() + Duration::from_secs(30);
    let idle_deadline = Instant::now() + Duration::from_secs(10);
    let mut swapped_at: Option<Instant> = None;
    // `.deleted` files left from before the restart do not count.
    let old_deleted: BTreeSet<String> = partition_files(&data_dir, topic, 0)
        .into_keys()
        .filter(|name| name.ends_with(".deleted"))
        .collect();
    let seen = loop {
        let files = partition_files(&data_dir, topic, 0);
        let writing = files
            .keys()
            .find(|name| name.ends_with(".cleaned") || name.ends_with(".swap"))
            .cloned();
        let swapped = files
            .keys()
            .any(|name| name.ends_with(".deleted") && !old_deleted.contains(name));
        if swapped && swapped_at.is_none() {
            swapped_at = Some(Instant::now());
        }
        match (after_swap, swapped_at, writing) {
            (false, _, Some(name)) => break format!("writing {name}"),
            (false, Some(_), None) => break "a group swapped in".to_string(),
            (true, Some(_), Some(name)) => break format!("a group swapped in, writing {name}"),
            (true, Some(at), None) if at.elapsed() > Duration::from_secs(5) => {
                break "5 s after a group swapped in".to_string()
            }
            // The first kill may have come after the pass wrote its checkpoint:
            // then there is nothing left to clean, and a kill of the idle
            // cleaner is all this round can do.
            (true, None, None) if Instant::now() > idle_deadline => {
                break "the cleaner stayed idle for 10 s".to_string()
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the cleaner did not get there within 30 s (after_swap {after_swap}); files:\n{}\nbroker log:\n{}",
            list_files(&data_dir, topic, 0),
            broker.log_tail()
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    broker.kill9();
    eprintln!(
        "killed the broker: {seen}; files:\n{}",
        list_files(&data_dir, topic, 0)
    );
}

/// Asserts the topic is whole after a crash: watermarks unchanged, offsets
/// strictly increasing (nothing duplicated), every record read is the one
/// produced at its offset, and every key's latest record is there.
fn assert_whole(broker: &TestBroker, topic: &str, workload: &[(String, String)]) {
    let total = workload.len() as i64;
    let (low, high) = watermarks(broker.bootstrap(), topic, 0);
    assert_eq!((low, high), (0, total), "watermarks after the restart");
    let messages = read_all(broker.bootstrap(), topic, high);
    let latest = latest_per_key(&messages);
    assert_as_produced(&messages, workload);
    assert_eq!(
        latest,
        expected_latest(workload),
        "every key's latest value after the crash"
    );
    let present: BTreeSet<i64> = messages.iter().map(Message::offset).collect();
    let mut last_of_key = BTreeMap::new();
    for (offset, (key, _)) in workload.iter().enumerate() {
        last_of_key.insert(key.clone(), offset as i64);
    }
    for (key, last) in &last_of_key {
        assert!(present.contains(last), "latest record of {key} at {last}");
    }
    eprintln!(
        "{} of {total} records readable after the restart",
        messages.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_cleaning_leaves_the_topic_whole() {
    const KEYS: usize = 200;
    const UPDATES: usize = 500;
    let mut broker = TestBroker::start_with(FAST_MAINTENANCE);
    let topic = "compaction-kill9";
    // Nothing is cleanable while min.compaction.lag.ms is an hour.
    create_topic_with(
        broker.bootstrap(),
        topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "65536"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("min.compaction.lag.ms", "3600000"),
            ("file.delete.delay.ms", "100"),
        ],
    )
    .await;
    let producer = bulk_producer(broker.bootstrap(), 32 * 1024);
    let workload = updates_workload(KEYS, UPDATES);
    let total = workload.len() as i64;
    let offsets = produce_all(&producer, topic, 0, &outgoing(&workload)).await;
    assert_eq!(
        offsets,
        (0..total).collect::<Vec<_>>(),
        "record i at offset i"
    );
    drop(producer);
    let segments = segment_bases(broker.data_dir(), topic, 0).len();
    eprintln!("{segments} segments before cleaning");

    eprintln!("phase: min.compaction.lag.ms = 0 starts the cleaner; kill -9 as soon as it writes");
    let output = group::sluice(
        broker.bootstrap(),
        &[
            "topic",
            "alter-config",
            topic,
            "-c",
            "min.compaction.lag.ms=0",
        ],
    );
    assert_eq!(
        output.code,
        Some(0),
        "topic alter-config failed: {output:?}"
    );
    kill_mid_clean(&mut broker, topic, false);

    eprintln!("phase: restart; the cleaner starts over; kill -9 after it swapped a group in");
    broker.restart();
    kill_mid_clean(&mut broker, topic, true);

    eprintln!("phase: restart; the topic is whole");
    broker.restart();
    assert_whole(&broker, topic, &workload);

    let data_dir = broker.data_dir().to_path_buf();
    let expected = expected_latest(&workload);
    eprintln!("phase: the cleaner finishes after the restart, leaving no temporary files");
    let messages = wait_until_compacted(&broker, topic, total).await;
    assert_eq!(
        latest_per_key(&messages),
        expected,
        "latest values after cleaning"
    );
    wait_until(
        "no .cleaned / .swap files",
        CLEAN_WAIT,
        || {
            (!partition_files(&data_dir, topic, 0)
                .keys()
                .any(|name| name.ends_with(".cleaned") || name.ends_with(".swap")))
            .then_some(())
        },
        || list_files(&data_dir, topic, 0),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_without_key_is_refused_by_a_compacted_topic() {
    let broker = TestBroker::start();
    let topic = "compaction-keyless";
    create_topic_with(
        broker.bootstrap(),
        topic,
        1,
        &[("cleanup.policy", "compact")],
    )
    .await;
    let producer = common::producer(
        broker.bootstrap(),
        &[
            ("enable.idempotence", "false"),
            ("retries", "0"),
            ("message.send.max.retries", "0"),
        ],
    );
    let record = FutureRecord::<(), str>::to(topic)
        .partition(0)
        .payload("no key");
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        producer.send(record, Duration::from_secs(20)),
    )
    .await
    .expect("delivery report in time");
    match outcome {
        Err((KafkaError::MessageProduction(code), _)) => assert_eq!(
            code,
            RDKafkaErrorCode::InvalidRecord,
            "keyless record to a compacted topic"
        ),
        Err((other, _)) => panic!("unexpected error {other:?}"),
        Ok(delivery) => panic!("keyless record accepted at offset {}", delivery.offset),
    }
    assert_eq!(
        watermarks(broker.bootstrap(), topic, 0),
        (0, 0),
        "nothing appended"
    );
    let offset = common::produce_one(broker.bootstrap(), topic, "k", "keyed").await;
    assert_eq!(offset, 0, "a keyed record is accepted");
}
