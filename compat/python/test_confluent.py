"""confluent-kafka (librdkafka) against a running Sluice broker.

No consumer groups here: consumers use manual assign(), never subscribe() or commit.
(librdkafka insists on a group.id even for assign(); it is set but never used to commit.)
Group-dependent tests live in test_confluent_groups.py, run only with SLUICE_COMPAT_GROUPS=1.
"""

import time
import uuid

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BROKERS, REPLICATION_FACTOR, bootstrap_addresses, confluent_create_topic, unique_topic, wait_until

TIMEOUT = 15.0
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


# --------------------------------------------------------------------------- helpers


def make_producer(bootstrap, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 20,
        "message.timeout.ms": int(TIMEOUT * 1000),
        "socket.timeout.ms": 10000,
    }
    conf.update(extra)
    return Producer(conf)


def produce_all(producer, topic, records, flush_each=False):
    """records: list of dicts with partition/key/value/headers/timestamp.
    Returns the delivery reports (Message objects) in delivery order; fails on any error."""
    reports = []
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            reports.append(msg)

    for r in records:
        kwargs = {"on_delivery": on_delivery}
        for field in ("partition", "key", "value", "headers", "timestamp"):
            if field in r:
                kwargs[field] = r[field]
        producer.produce(topic, **kwargs)
        producer.poll(0)
        if flush_each:
            assert producer.flush(TIMEOUT) == 0, "flush timed out"
    remaining = producer.flush(TIMEOUT)
    assert not errors, f"delivery errors: {errors}"
    assert remaining == 0, f"{remaining} messages not delivered within {TIMEOUT}s"
    assert len(reports) == len(records)
    return reports


def make_consumer(bootstrap, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        # Required by librdkafka even for assign(); never used to commit.
        "group.id": f"compat-unused-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "socket.timeout.ms": 10000,
        "session.timeout.ms": 10000,
    }
    conf.update(extra)
    return Consumer(conf)


def consume_to_end(bootstrap, topic, assignments, timeout=TIMEOUT, **extra):
    """Assign [(partition, offset)], read until every partition reports EOF.
    Returns messages in arrival order. Fails on any consumer error or timeout."""
    consumer = make_consumer(bootstrap, **extra)
    try:
        consumer.assign([TopicPartition(topic, p, off) for p, off in assignments])
        pending = {p for p, _ in assignments}
        got = []
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, (
                f"timed out: partitions {sorted(pending)} never reached EOF; got {len(got)} messages"
            )
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                    continue
                pytest.fail(f"consumer error: {msg.error()}")
            got.append(msg)
        return got
    finally:
        consumer.close()


def record_tuple(msg):
    return (
        msg.partition(),
        msg.offset(),
        msg.key(),
        msg.value(),
        [(k, v) for k, v in (msg.headers() or [])],
        msg.timestamp(),
    )


# --------------------------------------------------------------------------- produce / consume


@pytest.mark.parametrize("codec", CODECS)
def test_produce_acks_all_and_read_back(bootstrap, codec):
    """acks=all producer with each codec, then manual-assign consumer from OFFSET_BEGINNING reads
    back exactly the same records: partition, offset, key, value, headers, timestamp."""
    topic = unique_topic(f"cfk-codec-{codec}")
    confluent_create_topic(bootstrap, topic, partitions=3)
    producer = make_producer(bootstrap, **{"compression.type": codec})
    base_ts = int(time.time() * 1000) - 60_000
    records = []
    for p in range(3):
        for i in range(25):
            records.append(
                {
                    "partition": p,
                    "key": f"key-{p}-{i}".encode(),
                    # compressible payload so the codec really kicks in
                    "value": (f"value-{codec}-{p}-{i}-" * 20).encode(),
                    "headers": [("h-idx", str(i).encode()), ("h-codec", codec.encode())],
                    "timestamp": base_ts + i,
                }
            )
    # Edge records: null key, empty value, null header value, unicode, binary.
    records.append({"partition": 0, "key": None, "value": b"", "headers": [("empty", b"")], "timestamp": base_ts + 100})
    records.append({"partition": 1, "key": b"\x00\xff\x01", "value": None, "headers": [("null-hdr", None)], "timestamp": base_ts + 101})
    records.append({"partition": 2, "key": "ключ".encode(), "value": "значение ✓".encode(), "timestamp": base_ts + 102})

    reports = produce_all(producer, topic, records)
    by_part = {}
    for r in reports:
        by_part.setdefault(r.partition(), []).append(r.offset())
    for p, offsets in by_part.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {p} offsets not 0..n-1: {offsets}"

    got = consume_to_end(bootstrap, topic, [(p, OFFSET_BEGINNING) for p in range(3)])
    expected = {}
    for p in range(3):
        recs = [r for r in records if r["partition"] == p]
        expected[p] = [
            (p, off, r.get("key"), r.get("value"), list(r.get("headers") or []), (TIMESTAMP_CREATE_TIME, r["timestamp"]))
            for off, r in enumerate(recs)
        ]
    actual = {p: [] for p in range(3)}
    for m in got:
        actual[m.partition()].append(record_tuple(m))
    for p in range(3):
        assert actual[p] == expected[p], f"partition {p} mismatch"


def test_produce_acks_1_and_acks_0(bootstrap):
    """acks=1 gets real offsets; acks=0 gets no response from the broker (as in Kafka) and the
    records still land. A stray response to acks=0 would break the connection's correlation, so the
    acks=0 producer then sends a Metadata request on the same connection."""
    topic = unique_topic("cfk-acks")
    confluent_create_topic(bootstrap, topic, partitions=1)
    p1 = make_producer(bootstrap, acks="1")
    reports = produce_all(p1, topic, [{"partition": 0, "key": b"a1", "value": b"one"}])
    assert reports[0].offset() == 0
    p0 = make_producer(bootstrap, acks="0")
    produce_all(p0, topic, [{"partition": 0, "key": f"a0-{i}".encode(), "value": b"zero"} for i in range(5)])
    md = p0.list_topics(topic=topic, timeout=10)
    assert topic in md.topics and md.topics[topic].error is None

    def all_there():
        got = consume_to_end(bootstrap, topic, [(0, OFFSET_BEGINNING)])
        return got if len(got) >= 6 else None

    got = wait_until(all_there, TIMEOUT, interval=0.5, what="6 records after acks=0 produce")
    assert [m.key() for m in got] == [b"a1"] + [f"a0-{i}".encode() for i in range(5)]
    assert [m.offset() for m in got] == list(range(6))
    # the acks=0 producer can still produce (its connection was not broken)
    produce_all(p0, topic, [{"partition": 0, "key": b"a0-last", "value": b"zero"}])

    def seventh():
        got = consume_to_end(bootstrap, topic, [(0, OFFSET_BEGINNING)])
        return got if len(got) >= 7 else None

    got = wait_until(seventh, TIMEOUT, interval=0.5, what="7th record")
    assert got[-1].key() == b"a0-last" and got[-1].offset() == 6


def test_fetch_from_offset_inside_batch(bootstrap):
    """Ten records in one batch; a consumer assigned at offset 5 gets exactly 5..9
    (the broker returns the whole batch, the client drops 0..4, as with Kafka)."""
    topic = unique_topic("cfk-midbatch")
    confluent_create_topic(bootstrap, topic, partitions=1)
    producer = make_producer(bootstrap, **{"linger.ms": 200})
    produce_all(producer, topic, [{"partition": 0, "key": str(i).encode(), "value": f"v{i}".encode()} for i in range(10)])
    got = consume_to_end(bootstrap, topic, [(0, 5)])
    assert [(m.offset(), m.key()) for m in got] == [(i, str(i).encode()) for i in range(5, 10)]
    # and an assignment exactly at the end yields nothing but EOF
    assert consume_to_end(bootstrap, topic, [(0, 10)]) == []


def test_large_record_round_trip(bootstrap):
    """A 600 KB record (below the 1 MB default max.message.bytes) goes through in one piece."""
    topic = unique_topic("cfk-large")
    confluent_create_topic(bootstrap, topic, partitions=1)
    big = bytes(range(256)) * 2400  # 614400 bytes, incompressible-ish pattern
    produce_all(make_producer(bootstrap), topic, [{"partition": 0, "key": b"big", "value": big}])
    got = consume_to_end(bootstrap, topic, [(0, OFFSET_BEGINNING)])
    assert len(got) == 1 and got[0].value() == big


def test_produce_to_unknown_topic_auto_creates(bootstrap):
    """librdkafka producers ask for auto-creation (allow.auto.create.topics defaults to true for
    producers); the broker creates the topic and the record is readable."""
    topic = unique_topic("cfk-autocreate")
    producer = make_producer(bootstrap)
    reports = produce_all(producer, topic, [{"key": b"k", "value": b"auto"}])
    assert reports[0].topic() == topic and reports[0].offset() == 0
    got = consume_to_end(bootstrap, topic, [(reports[0].partition(), OFFSET_BEGINNING)])
    assert [(m.key(), m.value()) for m in got] == [(b"k", b"auto")]


def test_record_too_large_is_rejected(bootstrap):
    """A 1.5 MB record (client limit raised) exceeds the broker's max.message.bytes default
    (1048588): MESSAGE_TOO_LARGE (10), and nothing is appended."""
    topic = unique_topic("cfk-toolarge")
    confluent_create_topic(bootstrap, topic, partitions=1)
    producer = make_producer(bootstrap, **{"message.max.bytes": 3_000_000, "retries": 0})
    errors = []
    producer.produce(topic, value=b"x" * 1_500_000, partition=0, on_delivery=lambda err, msg: errors.append(err))
    assert producer.flush(TIMEOUT) == 0
    assert len(errors) == 1 and errors[0] is not None, errors
    assert errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errors[0]
    consumer = make_consumer(bootstrap)
    try:
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 0)
    finally:
        consumer.close()


@pytest.mark.parametrize("reset", ["earliest", "error"])
def test_offset_out_of_range(bootstrap, reset):
    """Fetching above the high watermark gets OFFSET_OUT_OF_RANGE (1): librdkafka then resets to the
    beginning (auto.offset.reset=earliest) or reports _AUTO_OFFSET_RESET (=error)."""
    topic = unique_topic(f"cfk-oor-{reset}")
    confluent_create_topic(bootstrap, topic, partitions=1)
    produce_all(make_producer(bootstrap), topic, [{"partition": 0, "value": f"r{i}".encode()} for i in range(3)])
    consumer = make_consumer(bootstrap, **{"auto.offset.reset": reset})
    try:
        consumer.assign([TopicPartition(topic, 0, 50)])
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert time.monotonic() < deadline, "no reset and no error"
            msg = consumer.poll(0.5)
            if msg is None or (msg.error() and msg.error().code() == KafkaError._PARTITION_EOF):
                continue
            break
        if reset == "earliest":
            assert msg.error() is None and (msg.offset(), msg.value()) == (0, b"r0")
        else:
            assert msg.error() is not None and msg.error().code() == KafkaError._AUTO_OFFSET_RESET, msg.error()
            assert "out of range" in msg.error().str().lower()
    finally:
        consumer.close()


def test_topic_configs_log_append_time_and_describe_configs(bootstrap):
    """CreateTopics with configs; DescribeConfigs shows them (source DYNAMIC_TOPIC_CONFIG) next to
    defaults; message.timestamp.type=LogAppendTime makes the broker stamp records (type 2)."""
    from confluent_kafka.admin import ConfigResource, ConfigSource

    topic = unique_topic("cfk-configs")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics(
        [NewTopic(topic, 1, REPLICATION_FACTOR, config={"message.timestamp.type": "LogAppendTime", "retention.ms": "123456789"})],
        request_timeout=TIMEOUT,
    )[topic].result(timeout=TIMEOUT)
    [fut] = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)], request_timeout=TIMEOUT).values()
    cfg = fut.result(timeout=TIMEOUT)
    assert cfg["message.timestamp.type"].value == "LogAppendTime"
    assert cfg["message.timestamp.type"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["retention.ms"].value == "123456789"
    assert cfg["cleanup.policy"].value == "delete"
    assert cfg["cleanup.policy"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    before = int(time.time() * 1000)
    reports = produce_all(make_producer(bootstrap), topic, [{"partition": 0, "value": b"stamped", "timestamp": 1000}])
    after = int(time.time() * 1000)
    ts_type, ts = reports[0].timestamp()
    assert ts_type == TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= ts <= after + 1000, reports[0].timestamp()
    [msg] = consume_to_end(bootstrap, topic, [(0, OFFSET_BEGINNING)])
    assert msg.timestamp() == (TIMESTAMP_LOG_APPEND_TIME, ts)


def test_describe_broker_configs(bootstrap):
    """DescribeConfigs for the BROKER resource (name = broker id) returns entries (admin UIs such as
    kafka-ui need them)."""
    from confluent_kafka.admin import ConfigResource

    admin = AdminClient({"bootstrap.servers": bootstrap})
    broker_ids = sorted(admin.list_topics(timeout=10).brokers)
    assert len(broker_ids) == BROKERS, broker_ids
    # every broker answers for itself (librdkafka sends a BROKER resource to that broker)
    for broker_id in broker_ids:
        [fut] = admin.describe_configs([ConfigResource(ConfigResource.Type.BROKER, str(broker_id))], request_timeout=TIMEOUT).values()
        cfg = fut.result(timeout=TIMEOUT)
        assert "num.partitions" in cfg and "log.retention.hours" in cfg or "log.retention.ms" in cfg, (broker_id, sorted(cfg))
        assert cfg["default.replication.factor"].value == str(REPLICATION_FACTOR), (broker_id, cfg["default.replication.factor"])


# --------------------------------------------------------------------------- metadata / offsets


def test_list_topics_metadata(bootstrap):
    topic = unique_topic("cfk-md")
    admin = confluent_create_topic(bootstrap, topic, partitions=3)
    md = admin.list_topics(timeout=10)
    assert len(md.brokers) == BROKERS, f"expected {BROKERS} brokers in metadata, got {list(md.brokers)}"
    assert md.controller_id in md.brokers, f"controller_id {md.controller_id} not in brokers {list(md.brokers)}"
    assert md.cluster_id, "cluster_id is empty"
    advertised = {(b.host, b.port) for b in md.brokers.values()}
    # every node of the bootstrap list is advertised, and nothing else
    assert advertised == set(bootstrap_addresses(bootstrap)), f"bootstrap {bootstrap} != advertised brokers {advertised}"
    assert topic in md.topics
    t = md.topics[topic]
    assert t.error is None
    assert sorted(t.partitions) == [0, 1, 2]
    # Kafka stripes replicas (first replica = leader) over the brokers: 3 partitions on N brokers
    # get min(3, N) different leaders, so clients of a cluster talk to several leaders
    assert len({p.leader for p in t.partitions.values()}) == min(3, BROKERS), {i: p.leader for i, p in t.partitions.items()}
    for p in t.partitions.values():
        assert p.error is None
        assert p.leader in md.brokers
        assert p.leader in p.replicas
        assert p.leader in p.isrs
        assert len(set(p.replicas)) == REPLICATION_FACTOR and set(p.replicas) <= set(md.brokers), p.replicas
        assert sorted(p.isrs) == sorted(p.replicas), (p.isrs, p.replicas)
    # single-topic request returns just that topic
    md1 = admin.list_topics(topic=topic, timeout=10)
    assert set(md1.topics) == {topic}
    # cluster id is stable across requests
    assert admin.list_topics(timeout=10).cluster_id == md.cluster_id


def test_get_watermark_offsets(bootstrap):
    topic = unique_topic("cfk-wm")
    confluent_create_topic(bootstrap, topic, partitions=2)
    produce_all(make_producer(bootstrap), topic, [{"partition": 0, "value": f"m{i}".encode()} for i in range(7)])
    consumer = make_consumer(bootstrap)
    try:
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 7)
        assert consumer.get_watermark_offsets(TopicPartition(topic, 1), timeout=10) == (0, 0)
    finally:
        consumer.close()


def test_offsets_for_times(bootstrap):
    """ListOffsets by timestamp returns the earliest offset whose timestamp >= target, or -1 (end)
    when there is none (docs/COMPATIBILITY.md, ListOffsets). Partition 0 has one batch per record;
    partition 1 has all records in one batch, so the broker must look inside the batch."""
    topic = unique_topic("cfk-oft")
    confluent_create_topic(bootstrap, topic, partitions=2)
    t0 = int(time.time() * 1000) - 3_600_000
    stamps = [t0 + 1000 * i for i in range(5)]  # t0, t0+1s, ... t0+4s
    producer = make_producer(bootstrap, **{"linger.ms": 200})
    produce_all(producer, topic, [{"partition": 0, "value": b"x", "timestamp": ts} for ts in stamps], flush_each=True)
    produce_all(producer, topic, [{"partition": 1, "value": b"y", "timestamp": ts} for ts in stamps])

    consumer = make_consumer(bootstrap)
    try:
        cases = [
            (t0 - 5000, 0),  # before everything -> first record
            (t0, 0),
            (t0 + 1, 1),  # strictly after record 0 -> record 1
            (t0 + 2000, 2),
            (t0 + 2500, 3),
            (t0 + 4000, 4),
            (t0 + 4001, -1),  # after everything -> no offset (end)
        ]
        # One timestamp per partition per request: a ListOffsets request may not name a
        # partition twice (Kafka answers INVALID_REQUEST for duplicates).
        for part in (0, 1):
            got = []
            for ts, _ in cases:
                [tp] = consumer.offsets_for_times([TopicPartition(topic, part, ts)], timeout=10)
                got.append((tp.offset, tp.error))
            want = [(off, None) for _, off in cases]
            assert got == want, f"partition {part}: timestamps {[ts - t0 for ts, _ in cases]} -> {got}"
        # both partitions in one request
        res = consumer.offsets_for_times([TopicPartition(topic, 0, t0 + 1500), TopicPartition(topic, 1, t0 + 3500)], timeout=10)
        assert sorted((tp.partition, tp.offset) for tp in res) == [(0, 2), (1, 4)]
    finally:
        consumer.close()


# --------------------------------------------------------------------------- admin


def test_create_topic_already_exists(bootstrap):
    topic = unique_topic("cfk-exists")
    admin = confluent_create_topic(bootstrap, topic, partitions=1)
    fut = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)], request_timeout=TIMEOUT)[topic]
    with pytest.raises(KafkaException) as exc:
        fut.result(timeout=TIMEOUT)
    assert exc.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, exc.value


@pytest.mark.parametrize("bad", ["has space", "bad/slash", "..", ".", "x" * 250, "ünïcode"])
def test_create_topic_invalid_name(bootstrap, bad):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(bad, num_partitions=1, replication_factor=1)], request_timeout=TIMEOUT)[bad]
    with pytest.raises(KafkaException) as exc:
        fut.result(timeout=TIMEOUT)
    assert exc.value.args[0].code() == KafkaError.TOPIC_EXCEPTION, exc.value  # INVALID_TOPIC_EXCEPTION (17)
    assert bad not in admin.list_topics(timeout=10).topics


def test_create_topic_replication_factor_too_large(bootstrap):
    """Replication factor above the broker count is INVALID_REPLICATION_FACTOR (38)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = unique_topic("cfk-rf")
    too_many = len(admin.list_topics(timeout=10).brokers) + 1
    assert too_many == BROKERS + 1
    fut = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=too_many)], request_timeout=TIMEOUT)[topic]
    with pytest.raises(KafkaException) as exc:
        fut.result(timeout=TIMEOUT)
    assert exc.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR, exc.value


def test_create_topic_broker_defaults(bootstrap):
    """num_partitions = replication_factor = -1 means broker defaults (CreateTopics v4+, KIP-464)."""
    topic = unique_topic("cfk-defaults")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(topic, num_partitions=-1, replication_factor=-1)], request_timeout=TIMEOUT)[topic]
    fut.result(timeout=TIMEOUT)
    md = wait_until(lambda: admin.list_topics(topic=topic, timeout=5).topics.get(topic), TIMEOUT, what=topic)
    assert md.error is None and len(md.partitions) >= 1
    # default.replication.factor: 1 for one `sluice serve`, min(3, N) for `sluice dev --brokers N`
    assert all(len(p.replicas) == REPLICATION_FACTOR for p in md.partitions.values()), {
        i: p.replicas for i, p in md.partitions.items()
    }


def test_create_topic_validate_only(bootstrap):
    topic = unique_topic("cfk-validate")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)], validate_only=True, request_timeout=TIMEOUT)[topic]
    fut.result(timeout=TIMEOUT)
    assert topic not in admin.list_topics(timeout=10).topics, "validate_only created the topic"


def test_delete_topics(bootstrap):
    topic = unique_topic("cfk-delete")
    admin = confluent_create_topic(bootstrap, topic, partitions=2)
    produce_all(make_producer(bootstrap), topic, [{"partition": 0, "value": b"doomed"}])
    admin.delete_topics([topic], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)
    wait_until(lambda: topic not in admin.list_topics(timeout=5).topics, TIMEOUT, what=f"{topic} to disappear")
    # deleting it again: UNKNOWN_TOPIC_OR_PARTITION (3)
    fut = admin.delete_topics([topic], request_timeout=TIMEOUT)[topic]
    with pytest.raises(KafkaException) as exc:
        fut.result(timeout=TIMEOUT)
    assert exc.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, exc.value


def test_recreated_topic_starts_empty(bootstrap):
    """Delete then re-create the same name: the new topic must not serve the old records."""
    topic = unique_topic("cfk-recreate")
    admin = confluent_create_topic(bootstrap, topic, partitions=1)
    produce_all(make_producer(bootstrap), topic, [{"partition": 0, "value": f"old{i}".encode()} for i in range(3)])
    admin.delete_topics([topic], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)
    wait_until(lambda: topic not in admin.list_topics(timeout=5).topics, TIMEOUT, what=f"{topic} to disappear")

    def recreate():
        try:
            confluent_create_topic(bootstrap, topic, partitions=1)
            return True
        except KafkaException as e:  # deletion may still be completing
            if e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return False
            raise

    wait_until(recreate, TIMEOUT, interval=0.5, what=f"re-creation of {topic}")
    produce_all(make_producer(bootstrap), topic, [{"partition": 0, "value": b"new"}])
    got = consume_to_end(bootstrap, topic, [(0, OFFSET_BEGINNING)])
    assert [(m.offset(), m.value()) for m in got] == [(0, b"new")]
