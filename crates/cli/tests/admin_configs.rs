//! Topic and broker configuration end to end: DescribeConfigs (values and
//! sources), AlterConfigs / IncrementalAlterConfigs (rdkafka, raw requests and
//! `sluice topic alter-config`) changing retention on a running broker,
//! CreatePartitions (keyed producers spread over the new partitions), Kafka's
//! errors for bad input with nothing changed, and configs surviving restarts.

mod common;
#[path = "common/group.rs"]
mod group;
#[path = "common/lifecycle.rs"]
mod lifecycle;

use std::collections::BTreeMap;
use std::time::Duration;

use common::raw::RawConnection;
use common::{partition_count, producer, watermarks, TestBroker, CLIENT_TIMEOUT};
use kafka_protocol::messages::{
    alter_configs_request, incremental_alter_configs_request, AlterConfigsRequest,
    IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;
use lifecycle::{
    alter_configs, bulk_producer, create_partitions, create_topic_with, create_topic_with_raw,
    delete_records, describe, describe_topic, list_files, partition_files, produce_all, value_of,
    values, wait_until, Outgoing, FAST_MAINTENANCE,
};
use rdkafka::admin::{ConfigSource, ResourceSpecifier};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;

/// How long retention may take to act after a config change.
const RETENTION_WAIT: Duration = Duration::from_secs(30);

/// Kafka's INVALID_CONFIG.
const INVALID_CONFIG: i16 = 40;
/// Kafka's UNKNOWN_TOPIC_OR_PARTITION.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// ConfigResource type TOPIC.
const RESOURCE_TOPIC: i8 = 2;
/// ConfigResource type BROKER.
const RESOURCE_BROKER: i8 = 4;
/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// One IncrementalAlterConfigs operation: (operation, config name, value).
type Operation<'a> = (i8, &'a str, Option<&'a str>);

/// Sends one IncrementalAlterConfigs (v1) for one resource and returns the
/// resource's error code and message.
fn incremental_alter(
    bootstrap: &str,
    resource_type: i8,
    name: &str,
    operations: &[Operation],
) -> (i16, Option<String>) {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let configs = operations
        .iter()
        .map(|(operation, key, value)| {
            AlterableConfig::default()
                .with_name(str_bytes(key))
                .with_config_operation(*operation)
                .with_value(value.map(str_bytes))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(str_bytes(name))
            .with_configs(configs),
    ]);
    let mut connection = RawConnection::connect(bootstrap);
    let response = connection.request(1, 7, &request);
    assert_eq!(response.responses.len(), 1, "one resource in the answer");
    let resource = &response.responses[0];
    assert_eq!(resource.resource_name.as_str(), name, "resource name");
    (
        resource.error_code,
        resource.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// Sends one AlterConfigs (v1) for one resource and returns the resource's
/// error code and message (rdkafka 0.39 drops them, see `lifecycle::alter_configs`).
fn legacy_alter(
    bootstrap: &str,
    resource_type: i8,
    name: &str,
    configs: &[(&str, &str)],
) -> (i16, Option<String>) {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let configs = configs
        .iter()
        .map(|(key, value)| {
            AlterableConfig::default()
                .with_name(str_bytes(key))
                .with_value(Some(str_bytes(value)))
        })
        .collect();
    let request =
        AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(str_bytes(name))
            .with_configs(configs)]);
    let mut connection = RawConnection::connect(bootstrap);
    let response = connection.request(1, 8, &request);
    assert_eq!(response.responses.len(), 1, "one resource in the answer");
    let resource = &response.responses[0];
    assert_eq!(resource.resource_name.as_str(), name, "resource name");
    (
        resource.error_code,
        resource.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// Produces `count` records of 500 bytes to partition 0.
async fn produce_bulk(bootstrap: &str, topic: &str, count: usize) {
    let producer = bulk_producer(bootstrap, 2048);
    let records: Vec<Outgoing> = (0..count)
        .map(|index| Outgoing::keyed(format!("k{index}"), format!("{index:0>500}")))
        .collect();
    produce_all(&producer, topic, 0, &records).await;
}

/// Waits until the log start offset of partition 0 moved and the first
/// segment file is gone from the directory.
async fn wait_for_retention(broker: &TestBroker, topic: &str) -> i64 {
    let bootstrap = broker.bootstrap().to_string();
    let data_dir = broker.data_dir().to_path_buf();
    wait_until(
        &format!("retention to delete the oldest segments of {topic}"),
        RETENTION_WAIT,
        || {
            let (low, _) = watermarks(&bootstrap, topic, 0);
            let first_gone =
                !partition_files(&data_dir, topic, 0).contains_key("00000000000000000000.log");
            (low > 0 && first_gone).then_some(low)
        },
        || {
            format!(
                "watermarks {:?}; files:\n{}",
                watermarks(&bootstrap, topic, 0),
                list_files(&data_dir, topic, 0)
            )
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_configs_reports_values_and_sources() {
    let broker = TestBroker::start_with(FAST_MAINTENANCE);
    let topic = "configs-describe";
    create_topic_with(broker.bootstrap(), topic, 1, &[("retention.ms", "3600000")]).await;

    let described = describe_topic(broker.bootstrap(), topic).await;
    let retention = described
        .get("retention.ms")
        .expect("retention.ms described");
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(
        retention.source,
        ConfigSource::DynamicTopic,
        "retention.ms source"
    );
    assert!(!retention.is_default, "an override is not the default");
    assert!(!retention.is_read_only && !retention.is_sensitive);
    let segment = described
        .get("segment.bytes")
        .expect("segment.bytes described");
    assert_eq!(segment.value.as_deref(), Some("1073741824"));
    assert_eq!(
        segment.source,
        ConfigSource::Default,
        "segment.bytes source"
    );
    for name in [
        "cleanup.policy",
        "retention.bytes",
        "delete.retention.ms",
        "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms",
        "max.compaction.lag.ms",
        "file.delete.delay.ms",
    ] {
        assert!(described.get(name).is_some(), "{name} is described");
    }
    assert_eq!(value_of(&described, "cleanup.policy"), "delete");
    assert_eq!(value_of(&described, "retention.bytes"), "-1");

    let broker_configs = describe(broker.bootstrap(), ResourceSpecifier::Broker(1)).await;
    let interval = broker_configs
        .get("log.retention.check.interval.ms")
        .expect("log.retention.check.interval.ms described");
    assert_eq!(interval.value.as_deref(), Some("500"));
    assert_eq!(
        interval.source,
        ConfigSource::StaticBroker,
        "set with --set at start"
    );
    let retention_bytes = broker_configs
        .get("log.retention.bytes")
        .expect("log.retention.bytes described");
    assert_eq!(retention_bytes.value.as_deref(), Some("-1"));
    assert_eq!(retention_bytes.source, ConfigSource::Default);

    eprintln!(
        "phase: every Kafka broker config is listed and alterable as in Kafka (librdkafka 0081)"
    );
    let count = broker_configs.entries.len();
    assert!(count >= 289, "{count} broker configs");
    fn entry<'a>(
        resource: &'a rdkafka::admin::ConfigResource,
        name: &str,
    ) -> &'a rdkafka::admin::ConfigEntry {
        resource
            .get(name)
            .unwrap_or_else(|| panic!("{name} described"))
    }
    let kerberos = "sasl.kerberos.min.time.before.relogin";
    assert_eq!(
        entry(&broker_configs, kerberos).value.as_deref(),
        Some("60000"),
        "Kafka's default"
    );
    let keystore = entry(&broker_configs, "ssl.keystore.password");
    assert!(keystore.is_sensitive && keystore.value.is_none());
    assert_eq!(
        entry(&broker_configs, "advertised.listeners").value,
        None,
        "null default"
    );
    alter_configs(
        broker.bootstrap(),
        ResourceSpecifier::Broker(1),
        &[(kerberos, "58000")],
    )
    .await;
    let altered = describe(broker.bootstrap(), ResourceSpecifier::Broker(1)).await;
    assert_eq!(entry(&altered, kerberos).value.as_deref(), Some("58000"));
    assert_eq!(
        entry(&altered, kerberos).source,
        ConfigSource::DynamicBroker
    );

    eprintln!("phase: sluice topic describe shows configs with their source");
    let output = group::sluice(broker.bootstrap(), &["topic", "describe", topic]);
    assert_eq!(output.code, Some(0), "topic describe failed: {output:?}");
    assert_eq!(
        group::table_row(&output.stdout, &["retention.ms"]),
        Some(vec![
            "retention.ms".to_string(),
            "3600000".to_string(),
            "DYNAMIC_TOPIC_CONFIG".to_string()
        ]),
        "retention.ms row:\n{}",
        output.stdout
    );
    assert_eq!(
        group::table_row(&output.stdout, &["segment.bytes"]),
        Some(vec![
            "segment.bytes".to_string(),
            "1073741824".to_string(),
            "DEFAULT_CONFIG".to_string()
        ]),
        "segment.bytes row:\n{}",
        output.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_config_changes_retention_on_a_running_broker() {
    let broker = TestBroker::start_with(FAST_MAINTENANCE);
    let topic = "configs-alter-topic";
    create_topic_with(
        broker.bootstrap(),
        topic,
        1,
        &[("segment.bytes", "4096"), ("file.delete.delay.ms", "100")],
    )
    .await;
    produce_bulk(broker.bootstrap(), topic, 200).await;
    // Several retention checks pass with retention.bytes = -1: nothing goes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        watermarks(broker.bootstrap(), topic, 0),
        (0, 200),
        "unlimited retention"
    );

    eprintln!("phase: retention.bytes = 16384 through sluice topic alter-config");
    let output = group::sluice(
        broker.bootstrap(),
        &[
            "topic",
            "alter-config",
            topic,
            "-c",
            "retention.bytes=16384",
        ],
    );
    assert_eq!(
        output.code,
        Some(0),
        "topic alter-config failed: {output:?}"
    );
    let low = wait_for_retention(&broker, topic).await;
    eprintln!("low watermark {low} after the change");
    let described = describe_topic(broker.bootstrap(), topic).await;
    assert_eq!(value_of(&described, "retention.bytes"), "16384");
    assert_eq!(
        value_of(&described, "segment.bytes"),
        "4096",
        "the incremental change kept segment.bytes"
    );

    eprintln!("phase: --delete retention.bytes goes back to the default");
    let output = group::sluice(
        broker.bootstrap(),
        &[
            "topic",
            "alter-config",
            topic,
            "--delete",
            "retention.bytes",
        ],
    );
    assert_eq!(
        output.code,
        Some(0),
        "topic alter-config --delete failed: {output:?}"
    );
    let described = describe_topic(broker.bootstrap(), topic).await;
    let entry = described.get("retention.bytes").expect("retention.bytes");
    assert_eq!(entry.value.as_deref(), Some("-1"));
    assert_eq!(entry.source, ConfigSource::Default);

    eprintln!("phase: a dynamic broker config (log.retention.bytes on broker 1) applies to a topic without override");
    let other = "configs-alter-broker";
    create_topic_with(
        broker.bootstrap(),
        other,
        1,
        &[("segment.bytes", "4096"), ("file.delete.delay.ms", "100")],
    )
    .await;
    produce_bulk(broker.bootstrap(), other, 200).await;
    alter_configs(
        broker.bootstrap(),
        ResourceSpecifier::Broker(1),
        &[("log.retention.bytes", "16384")],
    )
    .await;
    let broker_configs = describe(broker.bootstrap(), ResourceSpecifier::Broker(1)).await;
    let entry = broker_configs
        .get("log.retention.bytes")
        .expect("log.retention.bytes");
    assert_eq!(entry.value.as_deref(), Some("16384"));
    assert_eq!(entry.source, ConfigSource::DynamicBroker);
    let described = describe_topic(broker.bootstrap(), other).await;
    let entry = described.get("retention.bytes").expect("retention.bytes");
    assert_eq!(
        entry.value.as_deref(),
        Some("16384"),
        "the topic inherits it"
    );
    assert_eq!(
        entry.source,
        ConfigSource::DynamicBroker,
        "topic retention.bytes source"
    );
    wait_for_retention(&broker, other).await;
}

/// Counts how many of `keys` distinct keyed records land on each partition.
async fn spread_of_keys(bootstrap: &str, topic: &str, keys: usize) -> BTreeMap<i32, usize> {
    let producer = producer(bootstrap, &[]);
    let mut spread = BTreeMap::new();
    for key in 0..keys {
        let key = format!("key-{key}");
        let record = FutureRecord::to(topic).key(&key).payload("value");
        let delivery = tokio::time::timeout(
            CLIENT_TIMEOUT + Duration::from_secs(5),
            producer.send(record, CLIENT_TIMEOUT),
        )
        .await
        .expect("delivery in time")
        .unwrap_or_else(|(error, _)| panic!("produce {key} failed: {error}"));
        *spread.entry(delivery.partition).or_insert(0) += 1;
    }
    spread
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_spreads_keyed_producers_and_refuses_decreases() {
    let broker = TestBroker::start();
    let topic = "configs-partitions";
    create_topic_with(broker.bootstrap(), topic, 1, &[]).await;
    let before = spread_of_keys(broker.bootstrap(), topic, 20).await;
    assert_eq!(before.keys().copied().collect::<Vec<_>>(), vec![0]);

    eprintln!("phase: CreatePartitions to 4");
    create_partitions(broker.bootstrap(), topic, 4)
        .await
        .expect("CreatePartitions to 4");
    assert_eq!(partition_count(broker.bootstrap(), topic), Some(4));
    for partition in 1..4 {
        assert_eq!(
            watermarks(broker.bootstrap(), topic, partition),
            (0, 0),
            "new partition {partition} is empty"
        );
    }
    assert_eq!(
        watermarks(broker.bootstrap(), topic, 0),
        (0, 20),
        "partition 0 keeps its data"
    );
    let spread = spread_of_keys(broker.bootstrap(), topic, 200).await;
    eprintln!("200 keys over 4 partitions: {spread:?}");
    assert_eq!(
        spread.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3],
        "keyed records reach every partition: {spread:?}"
    );

    eprintln!("phase: sluice topic add-partitions to 6");
    let output = group::sluice(
        broker.bootstrap(),
        &["topic", "add-partitions", topic, "-p", "6"],
    );
    assert_eq!(
        output.code,
        Some(0),
        "topic add-partitions failed: {output:?}"
    );
    assert_eq!(partition_count(broker.bootstrap(), topic), Some(6));

    eprintln!("phase: decreasing or keeping the count: INVALID_PARTITIONS, nothing changes");
    for count in [3, 6] {
        let outcome = create_partitions(broker.bootstrap(), topic, count).await;
        assert_eq!(
            outcome,
            Err(RDKafkaErrorCode::InvalidPartitions),
            "CreatePartitions to {count} of a 6-partition topic"
        );
        assert_eq!(partition_count(broker.bootstrap(), topic), Some(6));
    }
    let output = group::sluice(
        broker.bootstrap(),
        &["topic", "add-partitions", topic, "-p", "2"],
    );
    assert_ne!(
        output.code,
        Some(0),
        "add-partitions to fewer succeeded: {output:?}"
    );
    assert_eq!(partition_count(broker.bootstrap(), topic), Some(6));

    eprintln!("phase: an unknown topic: UNKNOWN_TOPIC_OR_PARTITION");
    let outcome = create_partitions(broker.bootstrap(), "configs-no-such-topic", 3).await;
    assert_eq!(outcome, Err(RDKafkaErrorCode::UnknownTopicOrPartition));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_input_gets_kafkas_errors_and_changes_nothing() {
    let broker = TestBroker::start();
    let topic = "configs-bad";
    create_topic_with(
        broker.bootstrap(),
        topic,
        1,
        &[("retention.ms", "3600000"), ("cleanup.policy", "delete")],
    )
    .await;
    let snapshot = values(&describe_topic(broker.bootstrap(), topic).await);

    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "an unknown config",
            &[("retention.ms", "1000"), ("no.such.config", "1")],
        ),
        (
            "retention.bytes = -2",
            &[("retention.ms", "1000"), ("retention.bytes", "-2")],
        ),
        (
            "cleanup.policy = bogus",
            &[("retention.ms", "1000"), ("cleanup.policy", "bogus")],
        ),
        ("retention.ms not a number", &[("retention.ms", "soon")]),
        ("segment.bytes below 14", &[("segment.bytes", "13")]),
    ];
    for (what, configs) in cases {
        eprintln!("phase: AlterConfigs with {what}");
        let (error, message) = legacy_alter(broker.bootstrap(), RESOURCE_TOPIC, topic, configs);
        assert_eq!(
            error, INVALID_CONFIG,
            "AlterConfigs with {what} ({message:?})"
        );
        assert!(
            message.as_deref().is_some_and(|m| !m.is_empty()),
            "AlterConfigs with {what} explains the error"
        );
        assert_eq!(
            values(&describe_topic(broker.bootstrap(), topic).await),
            snapshot,
            "nothing changed after AlterConfigs with {what}"
        );
    }

    eprintln!("phase: IncrementalAlterConfigs (raw v1)");
    let incremental_cases: &[(&str, &[Operation], i16)] = &[
        (
            "SET of an unknown config",
            &[
                (SET, "retention.ms", Some("1000")),
                (SET, "no.such.config", Some("1")),
            ],
            INVALID_CONFIG,
        ),
        (
            "SET retention.bytes = -2",
            &[
                (SET, "retention.ms", Some("1000")),
                (SET, "retention.bytes", Some("-2")),
            ],
            INVALID_CONFIG,
        ),
        (
            "SET cleanup.policy = bogus",
            &[
                (SET, "retention.ms", Some("1000")),
                (SET, "cleanup.policy", Some("bogus")),
            ],
            INVALID_CONFIG,
        ),
        (
            "APPEND cleanup.policy bogus",
            &[(APPEND, "cleanup.policy", Some("bogus"))],
            INVALID_CONFIG,
        ),
        (
            // KRaft's controller: "Can't APPEND to key retention.ms because its type is not LIST."
            "APPEND to retention.ms (not a list)",
            &[(APPEND, "retention.ms", Some("5"))],
            INVALID_CONFIG,
        ),
        (
            "SUBTRACT from retention.ms (not a list)",
            &[(SUBTRACT, "retention.ms", Some("5"))],
            INVALID_CONFIG,
        ),
    ];
    for (what, operations, code) in incremental_cases {
        let (error, message) =
            incremental_alter(broker.bootstrap(), RESOURCE_TOPIC, topic, operations);
        assert_eq!(
            error, *code,
            "IncrementalAlterConfigs {what} (message {message:?})"
        );
        assert!(
            message.as_deref().is_some_and(|m| !m.is_empty()),
            "IncrementalAlterConfigs {what} explains the error"
        );
        assert_eq!(
            values(&describe_topic(broker.bootstrap(), topic).await),
            snapshot,
            "nothing changed after IncrementalAlterConfigs {what}"
        );
    }
    let (error, message) = incremental_alter(
        broker.bootstrap(),
        RESOURCE_TOPIC,
        "configs-no-such-topic",
        &[(SET, "retention.ms", Some("1000"))],
    );
    assert_eq!(
        error, UNKNOWN_TOPIC_OR_PARTITION,
        "IncrementalAlterConfigs of an unknown topic ({message:?})"
    );

    eprintln!("phase: the valid incremental operations work");
    let (error, message) = incremental_alter(
        broker.bootstrap(),
        RESOURCE_TOPIC,
        topic,
        &[
            (SET, "retention.ms", Some("7200000")),
            (APPEND, "cleanup.policy", Some("compact")),
        ],
    );
    assert_eq!(error, 0, "SET + APPEND ({message:?})");
    let described = describe_topic(broker.bootstrap(), topic).await;
    assert_eq!(value_of(&described, "retention.ms"), "7200000");
    assert_eq!(value_of(&described, "cleanup.policy"), "delete,compact");
    let (error, message) = incremental_alter(
        broker.bootstrap(),
        RESOURCE_TOPIC,
        topic,
        &[
            (SUBTRACT, "cleanup.policy", Some("delete")),
            (DELETE, "retention.ms", None),
        ],
    );
    assert_eq!(error, 0, "SUBTRACT + DELETE ({message:?})");
    let described = describe_topic(broker.bootstrap(), topic).await;
    assert_eq!(value_of(&described, "cleanup.policy"), "compact");
    assert_eq!(
        value_of(&described, "retention.ms"),
        "604800000",
        "back to the default"
    );
    let snapshot = values(&described);

    eprintln!("phase: the CLI reports the errors");
    for config in [
        "retention.bytes=-2",
        "no.such.config=1",
        "cleanup.policy=bogus",
    ] {
        let output = group::sluice(
            broker.bootstrap(),
            &["topic", "alter-config", topic, "-c", config],
        );
        assert_ne!(
            output.code,
            Some(0),
            "alter-config -c {config} succeeded: {output:?}"
        );
        assert!(
            output.stderr.contains("INVALID_CONFIG") || output.stderr.contains("error 40"),
            "alter-config -c {config} names the error: {output:?}"
        );
    }
    assert_eq!(
        values(&describe_topic(broker.bootstrap(), topic).await),
        snapshot,
        "nothing changed after the failed CLI calls"
    );

    eprintln!("phase: CreateTopics with a bad config creates nothing");
    for (name, config) in [
        ("configs-bad-create-1", ("retention.bytes", "-2")),
        ("configs-bad-create-2", ("cleanup.policy", "bogus")),
        ("configs-bad-create-3", ("no.such.config", "1")),
    ] {
        let outcome = create_topic_with_raw(broker.bootstrap(), name, 1, &[config]).await;
        assert_eq!(
            outcome,
            Err(RDKafkaErrorCode::InvalidConfig),
            "CreateTopics with {config:?}"
        );
        assert_eq!(
            partition_count(broker.bootstrap(), name),
            None,
            "{name} was not created"
        );
    }

    eprintln!("phase: a bad dynamic broker config");
    let before = values(&describe(broker.bootstrap(), ResourceSpecifier::Broker(1)).await);
    for config in [
        ("log.retention.bytes", "-2"),
        ("log.cleanup.policy", "bogus"),
    ] {
        let (error, message) = legacy_alter(broker.bootstrap(), RESOURCE_BROKER, "1", &[config]);
        assert_eq!(
            error, INVALID_CONFIG,
            "broker AlterConfigs {config:?} ({message:?})"
        );
        let (key, value) = config;
        let (error, message) = incremental_alter(
            broker.bootstrap(),
            RESOURCE_BROKER,
            "",
            &[(SET, key, Some(value))],
        );
        assert_eq!(
            error, INVALID_CONFIG,
            "IncrementalAlterConfigs of the cluster default {config:?} ({message:?})"
        );
    }
    assert_eq!(
        values(&describe(broker.bootstrap(), ResourceSpecifier::Broker(1)).await),
        before,
        "broker configs unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_and_log_start_survive_restarts() {
    let mut broker = TestBroker::start_with(FAST_MAINTENANCE);
    let topic = "configs-restart";
    create_topic_with(broker.bootstrap(), topic, 2, &[("retention.ms", "3600000")]).await;
    let output = group::sluice(
        broker.bootstrap(),
        &[
            "topic",
            "alter-config",
            topic,
            "-c",
            "cleanup.policy=compact,delete",
            "-c",
            "min.cleanable.dirty.ratio=0.2",
        ],
    );
    assert_eq!(
        output.code,
        Some(0),
        "topic alter-config failed: {output:?}"
    );
    alter_configs(
        broker.bootstrap(),
        ResourceSpecifier::Broker(1),
        &[("log.retention.bytes", "1000000")],
    )
    .await;
    create_partitions(broker.bootstrap(), topic, 3)
        .await
        .expect("CreatePartitions to 3");
    produce_bulk(broker.bootstrap(), topic, 30).await;
    let low = delete_records(broker.bootstrap(), topic, 0, Offset::Offset(12))
        .await
        .expect("DeleteRecords before 12");
    assert_eq!(low, 12);
    let topic_before = values(&describe_topic(broker.bootstrap(), topic).await);
    // `listeners` names the bound address: a restart takes another port.
    let without_listeners = |mut configs: std::collections::BTreeMap<_, _>| {
        configs.remove("listeners");
        configs
    };
    let broker_before = without_listeners(values(
        &describe(broker.bootstrap(), ResourceSpecifier::Broker(1)).await,
    ));
    assert_eq!(
        topic_before.get("cleanup.policy"),
        Some(&Some("compact,delete".to_string()))
    );

    for how in ["SIGTERM", "kill -9"] {
        eprintln!("phase: {how} + restart");
        if how == "kill -9" {
            broker.kill9();
        }
        broker.restart();
        let described = describe_topic(broker.bootstrap(), topic).await;
        assert_eq!(
            values(&described),
            topic_before,
            "topic configs after {how}"
        );
        assert_eq!(
            described.get("retention.ms").map(|e| &e.source),
            Some(&ConfigSource::DynamicTopic),
            "still a topic override after {how}"
        );
        assert_eq!(
            without_listeners(values(
                &describe(broker.bootstrap(), ResourceSpecifier::Broker(1)).await
            )),
            broker_before,
            "broker configs after {how}"
        );
        assert_eq!(
            partition_count(broker.bootstrap(), topic),
            Some(3),
            "partitions after {how}"
        );
        assert_eq!(
            watermarks(broker.bootstrap(), topic, 0),
            (12, 30),
            "log start offset after {how}"
        );
    }
}

/// A Kafka listener with a name of its own (Kafka's named listeners, with
/// `listener.security.protocol.map` and `inter.broker.listener.name`)
/// serves clients, and DescribeConfigs reports it by that name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_listener_serves_clients_and_is_described_by_its_name() {
    let broker = TestBroker::start_with(&[
        ("listeners", "INTERNAL://127.0.0.1:0"),
        ("listener.security.protocol.map", "INTERNAL:PLAINTEXT"),
        ("inter.broker.listener.name", "INTERNAL"),
    ]);
    let topic = "named-listener";
    create_topic_with(broker.bootstrap(), topic, 1, &[]).await;
    let records: Vec<Outgoing> = (0..5)
        .map(|i| Outgoing {
            key: None,
            value: Some(format!("v{i}")),
            timestamp: None,
        })
        .collect();
    let offsets = produce_all(&producer(broker.bootstrap(), &[]), topic, 0, &records).await;
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    let bootstrap = broker.bootstrap().to_string();
    let (low, high) =
        tokio::task::spawn_blocking(move || watermarks(&bootstrap, "named-listener", 0))
            .await
            .unwrap();
    assert_eq!((low, high), (0, 5));
    let configs = describe(broker.bootstrap(), ResourceSpecifier::Broker(1)).await;
    assert_eq!(
        value_of(&configs, "listeners"),
        format!("INTERNAL://{}", broker.bootstrap())
    );
    assert_eq!(value_of(&configs, "inter.broker.listener.name"), "INTERNAL");
}
