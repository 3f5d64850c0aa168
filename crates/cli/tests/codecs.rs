//! Every compression codec round-trips through the broker, and the broker stores
//! the producer's batches as they arrived (codec bits untouched).

mod common;

use std::time::Duration;

use common::segment::read_first_segment;
use common::{assign, consumer, create_topic, poll_for, poll_messages, producer, start_in_process};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset};

/// Records produced per codec.
const RECORD_COUNT: usize = 200;

/// One test per (librdkafka `compression.type`, codec id in the batch attributes).
macro_rules! codec_tests {
    ($($name:ident => $codec_id:expr),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            round_trip(stringify!($name), $codec_id).await;
        }
    )*};
}

// librdkafka compresses with LZ4 only when the broker advertises FindCoordinator (its
// RD_KAFKA_FEATURE_LZ4 dates LZ4 support by that API, src/rdkafka_feature.c); otherwise it
// silently sends lz4 batches uncompressed and the `lz4` case sees codec 0 on disk.
codec_tests! {
    none => 0,
    gzip => 1,
    snappy => 2,
    lz4 => 3,
    zstd => 4,
}

fn value_for(index: usize) -> String {
    // Compressible, so librdkafka keeps the compressed form.
    format!("value-{index:05}-{}", "abcdefgh".repeat(16))
}

async fn round_trip(codec: &str, codec_id: i16) {
    let cluster = start_in_process(&[]);
    eprintln!("phase: codec {codec}");
    let topic = format!("codec-{codec}");
    create_topic(cluster.bootstrap(), &topic, 1).await;

    let producer = producer(
        cluster.bootstrap(),
        &[
            ("compression.type", codec),
            ("linger.ms", "50"),
            ("acks", "all"),
        ],
    );
    let mut deliveries = Vec::with_capacity(RECORD_COUNT);
    for index in 0..RECORD_COUNT {
        let key = format!("key-{index}");
        let value = value_for(index);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "index",
                value: Some(index.to_string().as_bytes()),
            })
            .insert(Header {
                key: "codec",
                value: Some(codec.as_bytes()),
            });
        let record = FutureRecord::to(&topic)
            .partition(0)
            .key(&key)
            .payload(&value)
            .headers(headers);
        deliveries.push(
            producer
                .send_result(record)
                .unwrap_or_else(|(error, _)| panic!("enqueue record {index}: {error}")),
        );
    }
    for (index, delivery) in deliveries.into_iter().enumerate() {
        let outcome = tokio::time::timeout(Duration::from_secs(30), delivery)
            .await
            .expect("delivery report in time")
            .expect("delivery future not cancelled");
        let delivery =
            outcome.unwrap_or_else(|(error, _)| panic!("{codec}: record {index} failed: {error}"));
        assert_eq!(delivery.partition, 0);
        assert_eq!(
            delivery.offset, index as i64,
            "{codec}: acknowledged offset of record {index}"
        );
    }

    eprintln!("phase: consume {codec}");
    let consumer = consumer(cluster.bootstrap(), &[]);
    assign(&consumer, &topic, &[(0, Offset::Beginning)]);
    let messages = poll_messages(&consumer, RECORD_COUNT, Duration::from_secs(30));
    assert_eq!(messages.len(), RECORD_COUNT, "{codec}: records consumed");
    for (index, message) in messages.iter().enumerate() {
        assert_eq!(message.offset(), index as i64, "{codec}: offset");
        assert_eq!(message.partition(), 0);
        assert_eq!(
            message.key(),
            Some(format!("key-{index}").as_bytes()),
            "{codec}: key at {index}"
        );
        assert_eq!(
            message.payload(),
            Some(value_for(index).as_bytes()),
            "{codec}: value at {index}"
        );
        let headers = message.headers().expect("headers present");
        let headers: Vec<(String, Option<Vec<u8>>)> = headers
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(
            headers,
            vec![
                ("index".to_string(), Some(index.to_string().into_bytes())),
                ("codec".to_string(), Some(codec.as_bytes().to_vec())),
            ],
            "{codec}: headers at {index}"
        );
    }
    let extra = poll_for(&consumer, Duration::from_millis(500));
    assert!(
        extra.is_empty(),
        "{codec}: no records past the produced ones"
    );

    eprintln!("phase: segment file {codec}");
    let (_, batches) = read_first_segment(cluster.node(1).data_dir(), &topic, 0);
    assert!(!batches.is_empty(), "{codec}: segment has batches");
    eprintln!("{codec}: stored batches {batches:?}");
    let mut next_offset = 0;
    for batch in &batches {
        assert_eq!(
            batch.magic, 2,
            "{codec}: magic of batch at {}",
            batch.position
        );
        assert_eq!(
            batch.codec(),
            codec_id,
            "{codec}: codec bits of batch at offset {} (attributes {:#06x})",
            batch.base_offset,
            batch.attributes
        );
        assert_eq!(
            batch.base_offset, next_offset,
            "{codec}: batches are contiguous"
        );
        next_offset = batch.last_offset() + 1;
    }
    assert_eq!(
        next_offset, RECORD_COUNT as i64,
        "{codec}: segment holds every record"
    );
}
