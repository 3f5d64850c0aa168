//! Retention and DeleteRecords end to end: `retention.bytes` keeps a partition's
//! disk use bounded while far more is produced, `retention.ms` expires old
//! segments, DeleteRecords moves the log start offset (also from the CLI), a
//! consumer positioned below the log start resets per `auto.offset.reset`, and
//! the log start offset survives a restart.

mod common;
#[path = "common/group.rs"]
mod group;
#[path = "common/lifecycle.rs"]
mod lifecycle;

use std::time::Duration;

use common::{assign, consumer, poll_for, watermarks, TestBroker};
use lifecycle::{
    bulk_producer, create_topic_with, delete_records, list_files, now_ms, partition_bytes,
    partition_files, produce_all, read_until, wait_until, Outgoing, FAST_MAINTENANCE,
};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset};

/// `segment.bytes` of the size-retention topic.
const SEGMENT_BYTES: u64 = 8 * 1024;
/// `retention.bytes` of the size-retention topic.
const RETENTION_BYTES: u64 = 32 * 1024;
/// Value size of the size-retention records.
const VALUE_BYTES: usize = 500;
/// Rounds of produce; each round writes 5 × `retention.bytes`, 50 × in all.
const ROUNDS: usize = 10;
/// How long retention may take to catch up after a round.
const RETENTION_WAIT: Duration = Duration::from_secs(30);

/// A value of `VALUE_BYTES` bytes that names its record.
fn value_for(index: usize) -> String {
    let prefix = format!("value-{index}-");
    format!("{prefix}{}", "x".repeat(VALUE_BYTES - prefix.len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_bytes_keeps_disk_bounded_while_50x_is_produced() {
    let mut broker = TestBroker::start_with(FAST_MAINTENANCE);
    let topic = "retention-size";
    let segment_bytes = SEGMENT_BYTES.to_string();
    let retention_bytes = RETENTION_BYTES.to_string();
    create_topic_with(
        broker.bootstrap(),
        topic,
        1,
        &[
            ("segment.bytes", segment_bytes.as_str()),
            ("retention.bytes", retention_bytes.as_str()),
            ("file.delete.delay.ms", "100"),
        ],
    )
    .await;
    // Batches of at most 4 KiB, so that segments stay near segment.bytes.
    let producer = bulk_producer(broker.bootstrap(), 4096);
    let per_round = (5 * RETENTION_BYTES as usize).div_ceil(VALUE_BYTES);
    // What may stay after a retention check: retention.bytes, plus the segment
    // that would take the log below it, plus the active one, plus indexes.
    let settled_bound = RETENTION_BYTES + 2 * SEGMENT_BYTES + 8 * 1024;
    // What may be there just after a round: that, plus the round itself.
    let peak_bound = settled_bound + (per_round * (VALUE_BYTES + 100)) as u64;
    let mut next = 0usize;
    let mut peak = 0u64;
    let mut lows = Vec::new();
    for round in 0..ROUNDS {
        let records: Vec<Outgoing> = (next..next + per_round)
            .map(|index| Outgoing::keyed(format!("k{index}"), value_for(index)))
            .collect();
        let offsets = produce_all(&producer, topic, 0, &records).await;
        assert_eq!(
            offsets.first(),
            Some(&(next as i64)),
            "offsets follow the produce order"
        );
        next += per_round;
        let after_round = partition_bytes(broker.data_dir(), topic, 0);
        peak = peak.max(after_round);
        let data_dir = broker.data_dir().to_path_buf();
        let settled = wait_until(
            &format!("round {round}: partition at most {settled_bound} bytes"),
            RETENTION_WAIT,
            || {
                let bytes = partition_bytes(&data_dir, topic, 0);
                (bytes <= settled_bound).then_some(bytes)
            },
            || list_files(&data_dir, topic, 0),
        )
        .await;
        let (low, high) = watermarks(broker.bootstrap(), topic, 0);
        eprintln!("round {round}: {after_round} bytes after produce, {settled} settled, watermarks {low}..{high}");
        assert_eq!(high, next as i64, "high watermark after round {round}");
        lows.push(low);
    }
    let produced_bytes = (next * VALUE_BYTES) as u64;
    assert!(
        produced_bytes >= 50 * RETENTION_BYTES,
        "the test produced {produced_bytes} bytes, 50 x retention.bytes"
    );
    assert!(
        peak <= peak_bound,
        "disk use peaked at {peak} bytes (bound {peak_bound}) while {produced_bytes} bytes were produced"
    );
    assert!(
        lows.windows(2).all(|pair| pair[0] <= pair[1]),
        "the low watermark never moves back: {lows:?}"
    );
    let (low, high) = watermarks(broker.bootstrap(), topic, 0);
    assert!(low > 0, "the earliest offset moved: {lows:?}");
    let retained_max = (settled_bound as usize / VALUE_BYTES) as i64 + 1;
    assert!(
        high - low <= retained_max,
        "{} records retained (at most {retained_max} fit the bound); files:\n{}",
        high - low,
        list_files(broker.data_dir(), topic, 0)
    );

    eprintln!("phase: the retained records read back from the beginning");
    let messages = read_until(
        broker.bootstrap(),
        topic,
        0,
        Offset::Beginning,
        high,
        "error",
        Duration::from_secs(30),
    );
    assert_eq!(
        messages[0].offset(),
        low,
        "reading from the beginning starts at the low watermark"
    );
    for (position, message) in messages.iter().enumerate() {
        let offset = low + position as i64;
        assert_eq!(
            message.offset(),
            offset,
            "contiguous offsets above the log start"
        );
        assert_eq!(
            message.payload(),
            Some(value_for(offset as usize).as_bytes()),
            "value at offset {offset}"
        );
    }

    eprintln!("phase: deleted segment files are removed after file.delete.delay.ms");
    let data_dir = broker.data_dir().to_path_buf();
    wait_until(
        "no *.deleted files",
        RETENTION_WAIT,
        || {
            (!partition_files(&data_dir, topic, 0)
                .keys()
                .any(|name| name.ends_with(".deleted")))
            .then_some(())
        },
        || list_files(&data_dir, topic, 0),
    )
    .await;

    eprintln!("phase: the log start offset survives a restart");
    broker.restart();
    let (low_after, high_after) = watermarks(broker.bootstrap(), topic, 0);
    assert_eq!(
        (low_after, high_after),
        (low, high),
        "watermarks after SIGTERM + restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_ms_expires_old_segments_and_keeps_recent_ones() {
    let broker = TestBroker::start_with(FAST_MAINTENANCE);
    let topic = "retention-time";
    create_topic_with(
        broker.bootstrap(),
        topic,
        1,
        &[("retention.ms", "60000"), ("file.delete.delay.ms", "100")],
    )
    .await;
    let producer = bulk_producer(broker.bootstrap(), 16 * 1024);

    eprintln!("phase: records stamped an hour ago expire (retention.ms = 1 min)");
    let hour_ago = now_ms() - 3_600_000;
    let old: Vec<Outgoing> = (0..20)
        .map(|index| Outgoing {
            timestamp: Some(hour_ago + index),
            ..Outgoing::keyed(format!("old-{index}"), format!("old-value-{index}"))
        })
        .collect();
    let offsets = produce_all(&producer, topic, 0, &old).await;
    assert_eq!(
        offsets,
        (0..20).collect::<Vec<i64>>(),
        "offsets of the old records"
    );
    let bootstrap = broker.bootstrap().to_string();
    let data_dir = broker.data_dir().to_path_buf();
    wait_until(
        "low watermark 20 (the old records expired)",
        RETENTION_WAIT,
        || (watermarks(&bootstrap, topic, 0) == (20, 20)).then_some(()),
        || {
            format!(
                "watermarks {:?}; files:\n{}",
                watermarks(&bootstrap, topic, 0),
                list_files(&data_dir, topic, 0)
            )
        },
    )
    .await;

    eprintln!("phase: recent records stay");
    let recent: Vec<Outgoing> = (0..5)
        .map(|index| Outgoing::keyed(format!("new-{index}"), format!("new-value-{index}")))
        .collect();
    let offsets = produce_all(&producer, topic, 0, &recent).await;
    assert_eq!(
        offsets,
        (20..25).collect::<Vec<i64>>(),
        "offsets of the recent records"
    );
    // Several retention checks pass (every 500 ms); none may touch them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        watermarks(broker.bootstrap(), topic, 0),
        (20, 25),
        "records younger than retention.ms are kept"
    );
    let messages = read_until(
        broker.bootstrap(),
        topic,
        0,
        Offset::Beginning,
        25,
        "error",
        Duration::from_secs(20),
    );
    let got: Vec<(i64, Option<Vec<u8>>)> = messages
        .iter()
        .map(|m| (m.offset(), m.payload().map(<[u8]>::to_vec)))
        .collect();
    let want: Vec<(i64, Option<Vec<u8>>)> = (0..5)
        .map(|index| (20 + index, Some(format!("new-value-{index}").into_bytes())))
        .collect();
    assert_eq!(got, want, "only the recent records remain");

    eprintln!("phase: a smaller retention.ms set on the running broker expires them too");
    lifecycle::alter_configs(
        broker.bootstrap(),
        rdkafka::admin::ResourceSpecifier::Topic(topic),
        &[("retention.ms", "1000"), ("file.delete.delay.ms", "100")],
    )
    .await;
    wait_until(
        "low watermark 25 after retention.ms=1000",
        RETENTION_WAIT,
        || (watermarks(&bootstrap, topic, 0) == (25, 25)).then_some(()),
        || {
            format!(
                "watermarks {:?}; files:\n{}",
                watermarks(&bootstrap, topic, 0),
                list_files(&data_dir, topic, 0)
            )
        },
    )
    .await;
}

/// Produces `count` records `value-<offset>` with keys `k<offset>` to partition 0.
async fn produce_numbered(bootstrap: &str, topic: &str, from: usize, count: usize) {
    let producer = bulk_producer(bootstrap, 16 * 1024);
    let records: Vec<Outgoing> = (from..from + count)
        .map(|index| Outgoing::keyed(format!("k{index}"), format!("value-{index}")))
        .collect();
    let offsets = produce_all(&producer, topic, 0, &records).await;
    assert_eq!(
        offsets,
        (from as i64..(from + count) as i64).collect::<Vec<_>>(),
        "offsets of the produced records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_below_log_start_resets_per_auto_offset_reset() {
    let broker = TestBroker::start_with(FAST_MAINTENANCE);
    let topic = "retention-reset";
    create_topic_with(broker.bootstrap(), topic, 1, &[]).await;
    produce_numbered(broker.bootstrap(), topic, 0, 50).await;
    let low = delete_records(broker.bootstrap(), topic, 0, Offset::Offset(30))
        .await
        .expect("DeleteRecords before 30");
    assert_eq!(low, 30, "low watermark answered by DeleteRecords");

    eprintln!("phase: auto.offset.reset=earliest from offset 5 starts at the log start");
    let messages = read_until(
        broker.bootstrap(),
        topic,
        0,
        Offset::Offset(5),
        50,
        "earliest",
        Duration::from_secs(30),
    );
    let offsets: Vec<i64> = messages.iter().map(Message::offset).collect();
    assert_eq!(
        offsets,
        (30..50).collect::<Vec<_>>(),
        "earliest: offsets 30..50"
    );
    assert_eq!(
        messages[0].payload(),
        Some(&b"value-30"[..]),
        "value at the log start"
    );

    eprintln!("phase: auto.offset.reset=error from offset 5 reports the error");
    let strict = consumer(broker.bootstrap(), &[("auto.offset.reset", "error")]);
    assign(&strict, topic, &[(0, Offset::Offset(5))]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let error = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no offset-out-of-range error within 20 s"
        );
        match strict.poll(Duration::from_millis(200)) {
            Some(Err(error)) => break error,
            Some(Ok(message)) => panic!(
                "auto.offset.reset=error delivered offset {} below the log start",
                message.offset()
            ),
            None => {}
        }
    };
    let code = match &error {
        KafkaError::MessageConsumption(code) => *code,
        other => panic!("unexpected consumer error {other:?}"),
    };
    assert!(
        matches!(
            code,
            RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange
        ),
        "offset out of range, got {code:?} ({error})"
    );

    eprintln!("phase: auto.offset.reset=latest from offset 5 skips to the end");
    let latest = consumer(
        broker.bootstrap(),
        &[
            ("auto.offset.reset", "latest"),
            ("fetch.wait.max.ms", "100"),
        ],
    );
    assign(&latest, topic, &[(0, Offset::Offset(5))]);
    let producer = common::producer(broker.bootstrap(), &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut produced = 50;
    let first = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the latest consumer received nothing within 30 s"
        );
        let value = format!("value-{produced}");
        let key = format!("k{produced}");
        let record = FutureRecord::to(topic)
            .partition(0)
            .key(&key)
            .payload(&value);
        let delivery = tokio::time::timeout(
            Duration::from_secs(25),
            producer.send(record, Duration::from_secs(20)),
        )
        .await
        .expect("delivery in time")
        .unwrap_or_else(|(error, _)| panic!("produce failed: {error}"));
        assert_eq!(delivery.offset, produced as i64, "offset of the new record");
        produced += 1;
        let messages = poll_for(&latest, Duration::from_millis(500));
        if let Some(first) = messages.first() {
            break first.offset();
        }
    };
    assert!(
        first >= 50,
        "latest: the first record read is past the old end (offset {first})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_and_survives_restart() {
    let mut broker = TestBroker::start_with(FAST_MAINTENANCE);
    let topic = "retention-delete-records";
    create_topic_with(broker.bootstrap(), topic, 2, &[]).await;
    produce_numbered(broker.bootstrap(), topic, 0, 50).await;

    eprintln!("phase: DeleteRecords before 20");
    let low = delete_records(broker.bootstrap(), topic, 0, Offset::Offset(20))
        .await
        .expect("DeleteRecords before 20");
    assert_eq!(low, 20, "new low watermark");
    assert_eq!(
        watermarks(broker.bootstrap(), topic, 0),
        (20, 50),
        "watermarks"
    );
    assert_eq!(
        watermarks(broker.bootstrap(), topic, 1),
        (0, 0),
        "the other partition is untouched"
    );
    let messages = read_until(
        broker.bootstrap(),
        topic,
        0,
        Offset::Beginning,
        50,
        "error",
        Duration::from_secs(20),
    );
    assert_eq!(messages[0].offset(), 20, "the first readable record");
    assert_eq!(messages.len(), 30, "records 20..50 remain");

    eprintln!("phase: an offset below the log start changes nothing");
    let low = delete_records(broker.bootstrap(), topic, 0, Offset::Offset(10))
        .await
        .expect("DeleteRecords before 10 (already deleted)");
    assert_eq!(low, 20, "the low watermark does not move back");

    eprintln!("phase: above the high watermark: OFFSET_OUT_OF_RANGE");
    match delete_records(broker.bootstrap(), topic, 0, Offset::Offset(51)).await {
        Err(error) => assert_eq!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::OffsetOutOfRange),
            "DeleteRecords above the high watermark: {error}"
        ),
        Ok(low) => panic!("DeleteRecords above the high watermark succeeded (low {low})"),
    }
    assert_eq!(
        watermarks(broker.bootstrap(), topic, 0),
        (20, 50),
        "nothing changed"
    );

    eprintln!("phase: offset -1 means the high watermark");
    let low = delete_records(broker.bootstrap(), topic, 0, Offset::End)
        .await
        .expect("DeleteRecords before the high watermark");
    assert_eq!(low, 50, "low watermark = high watermark");
    assert_eq!(
        watermarks(broker.bootstrap(), topic, 0),
        (50, 50),
        "empty partition"
    );

    eprintln!("phase: a fetch below the log start resets to it");
    produce_numbered(broker.bootstrap(), topic, 50, 3).await;
    let messages = read_until(
        broker.bootstrap(),
        topic,
        0,
        Offset::Offset(0),
        53,
        "earliest",
        Duration::from_secs(30),
    );
    let offsets: Vec<i64> = messages.iter().map(Message::offset).collect();
    assert_eq!(offsets, vec![50, 51, 52], "records after the reset");

    eprintln!("phase: sluice topic trim");
    let output = group::sluice(
        broker.bootstrap(),
        &["topic", "trim", topic, "--partition", "0", "--offset", "51"],
    );
    assert_eq!(output.code, Some(0), "topic trim failed: {output:?}");
    assert!(
        output.stdout.contains("51"),
        "topic trim prints the new start offset: {output:?}"
    );
    assert_eq!(
        watermarks(broker.bootstrap(), topic, 0),
        (51, 53),
        "after topic trim"
    );
    let output = group::sluice(
        broker.bootstrap(),
        &["topic", "trim", topic, "--partition", "0", "--offset", "99"],
    );
    assert_ne!(
        output.code,
        Some(0),
        "topic trim above the high watermark fails: {output:?}"
    );
    assert_eq!(
        watermarks(broker.bootstrap(), topic, 0),
        (51, 53),
        "a failed trim changes nothing"
    );

    eprintln!("phase: SIGTERM + restart keeps the log start offset");
    broker.restart();
    assert_eq!(
        watermarks(broker.bootstrap(), topic, 0),
        (51, 53),
        "after restart"
    );
    let messages = read_until(
        broker.bootstrap(),
        topic,
        0,
        Offset::Beginning,
        53,
        "error",
        Duration::from_secs(20),
    );
    let offsets: Vec<i64> = messages.iter().map(Message::offset).collect();
    assert_eq!(offsets, vec![51, 52], "readable records after restart");

    eprintln!("phase: kill -9 + restart keeps it too");
    broker.kill9();
    broker.restart();
    assert_eq!(
        watermarks(broker.bootstrap(), topic, 0),
        (51, 53),
        "after kill -9 and restart"
    );
}
