"""Topic and broker configuration, CreatePartitions and DeleteRecords through the admin clients
of confluent-kafka (librdkafka) and kafka-python, against a running Sluice broker.

The broker is shared with the other suites: every test works on its own topic, and the one test
that changes a broker config (a cleaner default no other test depends on) removes it again.
"""


import time

import pytest
from confluent_kafka import OFFSET_END, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)

from conftest import BROKERS, CLUSTER, REPLICATION_FACTOR, unique_topic, wait_until

TIMEOUT = 15.0

# Kafka error codes
INVALID_PARTITIONS = 37
INVALID_CONFIG = 40


UNKNOWN_TOPIC_OR_PARTITION = 3
ELECTION_NOT_NEEDED = 84


# --------------------------------------------------------------------------- confluent helpers


def cfk_admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def cfk_create(bootstrap, name, partitions=1, config=None):
    admin = cfk_admin(bootstrap)
    admin.create_topics(
        [NewTopic(name, partitions, REPLICATION_FACTOR, config=config or {})], request_timeout=TIMEOUT
    )[name].result(timeout=TIMEOUT)
    wait_until(
        lambda: len(admin.list_topics(topic=name, timeout=5).topics[name].partitions) == partitions,
        TIMEOUT,
        what=f"{name} with {partitions} partitions",
    )
    return admin


def describe_topic(admin, topic):
    [fut] = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, topic)], request_timeout=TIMEOUT
    ).values()
    return fut.result(timeout=TIMEOUT)


# Reads in a row that must show a change before a test goes on (see describe_topic_changed).
CONFIRMING_READS = 2 * BROKERS if CLUSTER else 1


def describe_topic_changed(admin, topic, check):
    """The topic's configs once `check(configs)` holds on CONFIRMING_READS reads in a row.

    As in Kafka, a config change reaches each broker when that broker applies the metadata record,
    and a client may send DescribeConfigs to another broker than the one that took the change, so
    in a cluster the read right after a change may be answered by a broker a few milliseconds
    behind. Single node: the first read must show it."""
    if not CLUSTER:
        cfg = describe_topic(admin, topic)
        assert check(cfg), values(cfg)
        return cfg
    deadline = time.monotonic() + TIMEOUT
    in_a_row = 0
    while True:
        cfg = describe_topic(admin, topic)
        in_a_row = in_a_row + 1 if check(cfg) else 0
        if in_a_row >= CONFIRMING_READS:
            return cfg
        assert time.monotonic() < deadline, f"{topic}: the change did not show in {TIMEOUT}s: {values(cfg)}"
        time.sleep(0.05)


def broker_ids(admin):
    """The node ids in metadata (one per broker process run.sh started), as strings."""
    ids = sorted(admin.list_topics(timeout=10).brokers)
    assert len(ids) == BROKERS, f"expected {BROKERS} brokers in metadata, got {ids}"
    return [str(i) for i in ids]


def describe_broker(admin, name="1"):
    [fut] = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.BROKER, name)], request_timeout=TIMEOUT
    ).values()
    return fut.result(timeout=TIMEOUT)


def values(described):
    return {name: entry.value for name, entry in described.items()}


def incremental(admin, restype, name, *ops):
    """ops: (AlterConfigOpType, key, value). Returns None or raises KafkaException."""
    entries = [ConfigEntry(key, value, incremental_operation=op) for op, key, value in ops]
    [fut] = admin.incremental_alter_configs(
        [ConfigResource(restype, name, incremental_configs=entries)], request_timeout=TIMEOUT
    ).values()
    return fut.result(timeout=TIMEOUT)


def produce_keyed(bootstrap, topic, keys, partition=None):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "message.timeout.ms": int(TIMEOUT * 1000)})
    reports, errors = [], []

    def on_delivery(err, msg):
        (errors if err is not None else reports).append(err if err is not None else msg)

    for key in keys:
        kwargs = {"key": key, "value": b"v-" + key, "on_delivery": on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        producer.produce(topic, **kwargs)
        producer.poll(0)
    assert producer.flush(TIMEOUT) == 0, "flush timed out"
    assert not errors, errors
    return reports


# --------------------------------------------------------------------------- confluent-kafka


def test_cfk_describe_configs_sources_synonyms_and_broker(bootstrap):
    topic = unique_topic("adm-describe")
    admin = cfk_create(bootstrap, topic, config={"retention.ms": "3600000"})
    cfg = describe_topic(admin, topic)

    retention = cfg["retention.ms"]
    assert retention.value == "3600000"
    assert retention.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not retention.is_default and not retention.is_read_only and not retention.is_sensitive
    # Synonyms (DescribeConfigs v1+): the override first, then the broker-level synonym(s).
    synonyms = list(retention.synonyms.values())
    assert synonyms, "retention.ms has synonyms"
    assert synonyms[0].name == "retention.ms" and synonyms[0].value == "3600000"
    assert synonyms[0].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert any(s.name.startswith("log.retention.") for s in synonyms[1:]), [s.name for s in synonyms]

    segment = cfg["segment.bytes"]
    assert segment.value == "1073741824"
    assert segment.source == ConfigSource.DEFAULT_CONFIG.value and segment.is_default
    for name in ("cleanup.policy", "retention.bytes", "delete.retention.ms", "min.cleanable.dirty.ratio",
                 "min.compaction.lag.ms", "max.compaction.lag.ms", "file.delete.delay.ms"):
        assert name in cfg, name
    assert cfg["retention.bytes"].value == "-1"

    for broker_id in broker_ids(admin):
        broker = describe_broker(admin, broker_id)
        assert broker["log.retention.bytes"].value == "-1", broker_id
        assert broker["log.retention.check.interval.ms"].is_read_only, broker_id
        assert not broker["log.retention.bytes"].is_read_only, broker_id


def test_cfk_broker_configs_name_their_own_broker(bootstrap):
    """DescribeConfigs of BROKER "<id>" (answered by that broker) reports that broker's own id as
    broker.id and node.id (Kafka: read-only, static, = node.id). Every id in metadata is checked:
    one node (id 1) with one `sluice serve`, nodes 1..N with `sluice dev --brokers N`."""
    admin = cfk_admin(bootstrap)
    got = {}
    for broker_id in broker_ids(admin):
        broker = describe_broker(admin, broker_id)
        got[broker_id] = (broker["broker.id"].value, broker["node.id"].value)
        assert broker["broker.id"].is_read_only and broker["node.id"].is_read_only, broker_id
    assert got == {broker_id: (broker_id, broker_id) for broker_id in got}, f"broker id -> (broker.id, node.id): {got}"


def test_cfk_incremental_alter_configs_set_append_subtract_delete(bootstrap):
    topic = unique_topic("adm-incremental")
    admin = cfk_create(bootstrap, topic, config={"segment.bytes": "1048576"})

    incremental(admin, ConfigResource.Type.TOPIC, topic,
                (AlterConfigOpType.SET, "retention.ms", "7200000"),
                (AlterConfigOpType.SET, "retention.bytes", "5000000"))
    cfg = describe_topic_changed(admin, topic, lambda c: c["retention.ms"].value == "7200000")
    assert cfg["retention.ms"].value == "7200000"
    assert cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["retention.bytes"].value == "5000000"
    assert cfg["segment.bytes"].value == "1048576", "SET keeps the other overrides"

    incremental(admin, ConfigResource.Type.TOPIC, topic, (AlterConfigOpType.APPEND, "cleanup.policy", "compact"))
    describe_topic_changed(admin, topic, lambda c: c["cleanup.policy"].value == "delete,compact")
    # Appending a value already there changes nothing.
    incremental(admin, ConfigResource.Type.TOPIC, topic, (AlterConfigOpType.APPEND, "cleanup.policy", "compact"))
    assert describe_topic(admin, topic)["cleanup.policy"].value == "delete,compact"

    incremental(admin, ConfigResource.Type.TOPIC, topic, (AlterConfigOpType.SUBTRACT, "cleanup.policy", "delete"))
    cfg = describe_topic_changed(admin, topic, lambda c: c["cleanup.policy"].value == "compact")
    assert cfg["cleanup.policy"].value == "compact"
    assert cfg["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    incremental(admin, ConfigResource.Type.TOPIC, topic,
                (AlterConfigOpType.DELETE, "retention.ms", None),
                (AlterConfigOpType.DELETE, "cleanup.policy", None))
    cfg = describe_topic_changed(admin, topic, lambda c: c["retention.ms"].value == "604800000")
    assert cfg["retention.ms"].value == "604800000"
    assert cfg["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert cfg["cleanup.policy"].value == "delete"
    assert cfg["retention.bytes"].value == "5000000"
    assert cfg["segment.bytes"].value == "1048576"


@pytest.mark.parametrize(
    "ops",
    [
        [(AlterConfigOpType.SET, "retention.ms", "1000"), (AlterConfigOpType.SET, "no.such.config", "1")],
        [(AlterConfigOpType.SET, "retention.ms", "1000"), (AlterConfigOpType.SET, "retention.bytes", "-2")],
        [(AlterConfigOpType.SET, "retention.ms", "1000"), (AlterConfigOpType.SET, "cleanup.policy", "bogus")],
        [(AlterConfigOpType.APPEND, "cleanup.policy", "bogus")],
        [(AlterConfigOpType.APPEND, "retention.ms", "5")],
    ],
    ids=["unknown-config", "retention-bytes-minus-2", "cleanup-policy-bogus", "append-bogus", "append-non-list"],
)
def test_cfk_incremental_alter_configs_bad_input_changes_nothing(bootstrap, ops):
    topic = unique_topic("adm-bad")
    admin = cfk_create(bootstrap, topic, config={"retention.ms": "3600000"})
    before = values(describe_topic(admin, topic))
    with pytest.raises(KafkaException) as raised:
        incremental(admin, ConfigResource.Type.TOPIC, topic, *ops)
    error = raised.value.args[0]
    assert error.code() == KafkaError.INVALID_CONFIG, error
    assert error.str(), "the broker explains the error"
    assert values(describe_topic(admin, topic)) == before, "nothing changed"


def test_cfk_legacy_alter_configs_replaces_the_overrides(bootstrap):
    topic = unique_topic("adm-legacy")
    admin = cfk_create(bootstrap, topic, config={"retention.ms": "3600000", "segment.bytes": "1048576"})
    [fut] = admin.alter_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.bytes": "123456789"})],
        request_timeout=TIMEOUT,
    ).values()
    fut.result(timeout=TIMEOUT)
    cfg = describe_topic_changed(admin, topic, lambda c: c["retention.bytes"].value == "123456789")
    # AlterConfigs (non-incremental) sets the whole override set: the others return to defaults.
    assert cfg["retention.ms"].value == "604800000"
    assert cfg["segment.bytes"].value == "1073741824"

    [fut] = admin.alter_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"cleanup.policy": "bogus"})],
        request_timeout=TIMEOUT,
    ).values()
    with pytest.raises(KafkaException) as raised:
        fut.result(timeout=TIMEOUT)
    assert raised.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert describe_topic(admin, topic)["retention.bytes"].value == "123456789", "nothing changed"


def test_cfk_dynamic_broker_config_set_and_delete(bootstrap):
    """A per-broker dynamic config (resource BROKER "<id>"): set, refused bad value, delete. In
    cluster mode it is set on the first broker only, and the others keep the default."""
    admin = cfk_admin(bootstrap)
    name = "log.cleaner.delete.retention.ms"
    target, *others = broker_ids(admin)
    default = describe_broker(admin, target)[name]
    assert default.source == ConfigSource.DEFAULT_CONFIG.value, default
    try:
        incremental(admin, ConfigResource.Type.BROKER, target, (AlterConfigOpType.SET, name, "86400001"))
        entry = describe_broker(admin, target)[name]
        assert entry.value == "86400001" and entry.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value, entry
        for other in others:
            entry = describe_broker(admin, other)[name]
            assert entry.value == default.value and entry.source == ConfigSource.DEFAULT_CONFIG.value, (other, entry)
        with pytest.raises(KafkaException) as raised:
            incremental(admin, ConfigResource.Type.BROKER, target, (AlterConfigOpType.SET, name, "not-a-number"))
        assert raised.value.args[0].code() == KafkaError.INVALID_CONFIG
        assert describe_broker(admin, target)[name].value == "86400001", "nothing changed"
    finally:
        incremental(admin, ConfigResource.Type.BROKER, target, (AlterConfigOpType.DELETE, name, None))
    entry = describe_broker(admin, target)[name]
    assert entry.value == default.value and entry.source == ConfigSource.DEFAULT_CONFIG.value, entry


def test_cfk_create_partitions(bootstrap):
    topic = unique_topic("adm-partitions")
    admin = cfk_create(bootstrap, topic, partitions=1)
    admin.create_partitions([NewPartitions(topic, 3)], request_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)
    wait_until(lambda: len(admin.list_topics(topic=topic, timeout=5).topics[topic].partitions) == 3,
               TIMEOUT, what=f"{topic} with 3 partitions")

    reports = produce_keyed(bootstrap, topic, [f"key-{i}".encode() for i in range(100)])
    assert {r.partition() for r in reports} == {0, 1, 2}, "keyed records reach the new partitions"

    for count in (2, 3):
        with pytest.raises(KafkaException) as raised:
            admin.create_partitions([NewPartitions(topic, count)], request_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)
        assert raised.value.args[0].code() == KafkaError.INVALID_PARTITIONS, raised.value
    assert len(admin.list_topics(topic=topic, timeout=5).topics[topic].partitions) == 3


def test_cfk_elect_leaders(bootstrap):
    """ElectLeaders (key 43) through librdkafka's rd_kafka_ElectLeaders: a partition led by its
    preferred replica needs no election, nor does an unclean election of a partition with a
    leader; an unknown partition is UNKNOWN_TOPIC_OR_PARTITION. (The cluster tests in
    crates/cli/tests/cluster.rs move a leadership away and back.)"""
    from confluent_kafka import ElectionType

    topic = unique_topic("adm-elect")
    admin = cfk_create(bootstrap, topic, partitions=2)
    wait_until(
        lambda: all(p.leader >= 0 for p in admin.list_topics(topic=topic, timeout=5).topics[topic].partitions.values()),
        TIMEOUT,
        what=f"leaders of {topic}",
    )

    def codes(election, partitions):
        # No request_timeout: confluent-kafka 2.16.1's binding fails on any keyword argument here
        # (SystemError "more argument specifiers than keyword list entries").
        result = admin.elect_leaders(election, partitions).result(timeout=TIMEOUT)
        return {(tp.topic, tp.partition): (e.code() if e is not None else 0) for tp, e in result.items()}

    asked = [TopicPartition(topic, 0), TopicPartition(topic, 1), TopicPartition(topic, 9)]
    assert codes(ElectionType.PREFERRED, asked) == {
        (topic, 0): ELECTION_NOT_NEEDED,
        (topic, 1): ELECTION_NOT_NEEDED,
        (topic, 9): UNKNOWN_TOPIC_OR_PARTITION,
    }
    assert codes(ElectionType.UNCLEAN, [TopicPartition(topic, 1)]) == {(topic, 1): ELECTION_NOT_NEEDED}
    # Every partition: those already led by their preferred replica are not answered.
    assert all(t != topic for (t, _) in codes(ElectionType.PREFERRED, None))


def test_cfk_delete_records(bootstrap):
    topic = unique_topic("adm-delete-records")
    admin = cfk_create(bootstrap, topic, partitions=1)
    produce_keyed(bootstrap, topic, [f"k{i}".encode() for i in range(20)], partition=0)
    consumer_conf = {"bootstrap.servers": bootstrap, "group.id": "compat-unused-adm"}
    from confluent_kafka import Consumer

    consumer = Consumer(consumer_conf)
    try:
        tp = TopicPartition(topic, 0, 8)
        [fut] = admin.delete_records([tp], request_timeout=TIMEOUT).values()
        assert fut.result(timeout=TIMEOUT).low_watermark == 8
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT) == (8, 20)

        # Below the current log start: nothing moves back.
        [fut] = admin.delete_records([TopicPartition(topic, 0, 3)], request_timeout=TIMEOUT).values()
        assert fut.result(timeout=TIMEOUT).low_watermark == 8

        # Above the high watermark: OFFSET_OUT_OF_RANGE.
        [fut] = admin.delete_records([TopicPartition(topic, 0, 25)], request_timeout=TIMEOUT).values()
        with pytest.raises(KafkaException) as raised:
            fut.result(timeout=TIMEOUT)
        assert raised.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE, raised.value
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT) == (8, 20)

        # OFFSET_END (-1): the high watermark.
        [fut] = admin.delete_records([TopicPartition(topic, 0, OFFSET_END)], request_timeout=TIMEOUT).values()
        assert fut.result(timeout=TIMEOUT).low_watermark == 20
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT) == (20, 20)
    finally:
        consumer.close()


# --------------------------------------------------------------------------- kafka-python


def kp_admin(bootstrap):
    from kafka import KafkaAdminClient

    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(TIMEOUT * 1000),
        api_version_auto_timeout_ms=10000,
        client_id="compat-kafka-python-admin",
    )


def kp_entries(response):
    """{name: (value, read_only, source_or_is_default, is_sensitive, synonyms...)} of a
    DescribeConfigs response with one resource (kafka-python returns raw response structs)."""
    [resource] = response.resources
    error_code, error_message, _rtype, _rname, entries = resource[:5]
    assert error_code == 0, (error_code, error_message)
    return {entry[0]: entry[1:] for entry in entries}


def test_kp_describe_configs(bootstrap):
    from kafka.admin import ConfigResource as KpConfigResource, ConfigResourceType

    topic = unique_topic("adm-kp-describe")
    cfk_create(bootstrap, topic, config={"retention.ms": "3600000"})
    admin = kp_admin(bootstrap)
    try:
        [response] = admin.describe_configs(
            [KpConfigResource(ConfigResourceType.TOPIC, topic)], include_synonyms=True
        )
        entries = kp_entries(response)
        value, read_only, source, sensitive, synonyms = entries["retention.ms"]
        assert value == "3600000" and not read_only and not sensitive
        assert source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        assert synonyms and synonyms[0][0] == "retention.ms", synonyms
        assert entries["segment.bytes"][0] == "1073741824"
        assert entries["segment.bytes"][2] == ConfigSource.DEFAULT_CONFIG.value

        # kafka-python sends a BROKER resource to that broker: every broker answers for itself
        nodes = sorted(b["node_id"] for b in admin.describe_cluster()["brokers"])
        assert len(nodes) == BROKERS, nodes
        for node in nodes:
            [response] = admin.describe_configs([KpConfigResource(ConfigResourceType.BROKER, str(node))])
            entries = kp_entries(response)
            assert entries["log.retention.bytes"][0] == "-1", node
            assert "num.partitions" in entries, node
    finally:
        admin.close()


def test_kp_alter_configs(bootstrap):
    from kafka.admin import ConfigResource as KpConfigResource, ConfigResourceType

    topic = unique_topic("adm-kp-alter")
    cfk = cfk_create(bootstrap, topic)
    admin = kp_admin(bootstrap)
    try:
        response = admin.alter_configs(
            [KpConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7200000"})]
        )
        [resource] = response.resources
        assert resource[0] == 0, resource
        describe_topic_changed(cfk, topic, lambda c: c["retention.ms"].value == "7200000")

        before = values(describe_topic(cfk, topic))
        for bad in ({"no.such.config": "1"}, {"retention.bytes": "-2"}, {"cleanup.policy": "bogus"}):
            response = admin.alter_configs([KpConfigResource(ConfigResourceType.TOPIC, topic, configs=bad)])
            [resource] = response.resources
            assert resource[0] == INVALID_CONFIG, (bad, resource)
            assert values(describe_topic(cfk, topic)) == before, f"nothing changed after {bad}"
    finally:
        admin.close()


def test_kp_create_partitions(bootstrap):
    from kafka.admin import NewPartitions as KpNewPartitions
    from kafka.errors import InvalidPartitionsError

    topic = unique_topic("adm-kp-partitions")
    cfk = cfk_create(bootstrap, topic, partitions=1)
    admin = kp_admin(bootstrap)
    try:
        response = admin.create_partitions({topic: KpNewPartitions(total_count=4)}, timeout_ms=int(TIMEOUT * 1000))
        [result] = response.topic_errors
        assert result[0] == topic and result[1] == 0, result
        wait_until(lambda: len(cfk.list_topics(topic=topic, timeout=5).topics[topic].partitions) == 4,
                   TIMEOUT, what=f"{topic} with 4 partitions")

        # kafka-python raises the topic's error code as an exception.
        with pytest.raises(InvalidPartitionsError) as raised:
            admin.create_partitions({topic: KpNewPartitions(total_count=2)}, timeout_ms=int(TIMEOUT * 1000))
        assert raised.value.errno == INVALID_PARTITIONS
        assert len(cfk.list_topics(topic=topic, timeout=5).topics[topic].partitions) == 4
    finally:
        admin.close()
