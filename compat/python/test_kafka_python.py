"""kafka-python 2.0.2 against a running Sluice broker.

kafka-python 2.0.2 does not negotiate: it infers a broker version from ApiVersions and then uses
fixed request versions (Metadata v0 probe then v1.., Produce up to v7, Fetch v4, ListOffsets v1) —
docs/COMPATIBILITY.md, "Behaviour clients depend on". It also pipelines requests and checks
correlation ids strictly (a response out of order raises CorrelationIdError).

No consumer groups here (group_id=None, manual assign). Group tests: test_kafka_python_groups.py.
"""

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    InvalidPartitionsError,
    InvalidTopicError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)

from conftest import BROKERS, REPLICATION_FACTOR, bootstrap_addresses, unique_topic, wait_until

TIMEOUT = 15.0
CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


# --------------------------------------------------------------------------- helpers


def make_admin(bootstrap):
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(TIMEOUT * 1000),
        api_version_auto_timeout_ms=10000,
        client_id="compat-kafka-python-admin",
    )


def create_topic(bootstrap, name, partitions=1):
    admin = make_admin(bootstrap)
    try:
        admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=REPLICATION_FACTOR)], timeout_ms=int(TIMEOUT * 1000)
        )

        def ready():
            [t] = admin.describe_topics([name])
            return (
                t["error_code"] == 0
                and len(t["partitions"]) == partitions
                and all(
                    p["leader"] >= 0 and len(p["replicas"]) == REPLICATION_FACTOR and sorted(p["isr"]) == sorted(p["replicas"])
                    for p in t["partitions"]
                )
            )

        wait_until(ready, TIMEOUT, what=f"{name} to have {partitions} partitions with leaders")
    finally:
        admin.close()


def make_producer(bootstrap, **extra):
    conf = dict(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        request_timeout_ms=int(TIMEOUT * 1000),
        max_block_ms=int(TIMEOUT * 1000),
        api_version_auto_timeout_ms=10000,
        retries=3,
    )
    conf.update(extra)
    return KafkaProducer(**conf)


def send_all(producer, topic, records):
    futures = [
        producer.send(
            topic,
            key=r.get("key"),
            value=r.get("value"),
            partition=r.get("partition"),
            headers=r.get("headers"),
            timestamp_ms=r.get("timestamp"),
        )
        for r in records
    ]
    producer.flush(timeout=TIMEOUT)
    return [f.get(timeout=TIMEOUT) for f in futures]


def make_consumer(bootstrap, **extra):
    conf = dict(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        api_version_auto_timeout_ms=10000,
        fetch_max_wait_ms=200,
        request_timeout_ms=30000,
        session_timeout_ms=10000,
        heartbeat_interval_ms=3000,
    )
    conf.update(extra)
    return KafkaConsumer(**conf)


def read_partitions(bootstrap, topic, partitions, expected_count, timeout=TIMEOUT):
    """assign + seek_to_beginning, poll until expected_count records, then make sure no extra
    record shows up. Returns {partition: [ConsumerRecord]}."""
    consumer = make_consumer(bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        out = {p: [] for p in partitions}
        count = 0
        deadline = time.monotonic() + timeout
        while count < expected_count:
            assert time.monotonic() < deadline, f"timed out with {count}/{expected_count} records"
            for tp, recs in consumer.poll(timeout_ms=500).items():
                out[tp.partition].extend(recs)
                count += len(recs)
        extra = consumer.poll(timeout_ms=1000)
        assert not any(extra.values()), f"unexpected extra records: {extra}"
        assert count == expected_count
        return out
    finally:
        consumer.close()


# --------------------------------------------------------------------------- produce / consume


@pytest.mark.parametrize("codec", CODECS, ids=[c or "none" for c in CODECS])
def test_produce_acks_all_and_read_back(bootstrap, codec):
    """KafkaProducer(acks=all, compression) then KafkaConsumer assign + seek_to_beginning reads back
    exactly the records (key, value, headers, partition, offset, timestamp).

    zstd: kafka-python 2.0.2 consumes with Fetch v4, and Kafka refuses zstd data below Fetch v10
    (KIP-110, UNSUPPORTED_COMPRESSION_TYPE), so zstd records are read back with confluent-kafka."""
    topic = unique_topic(f"kp-codec-{codec or 'none'}")
    create_topic(bootstrap, topic, partitions=2)
    producer = make_producer(bootstrap, compression_type=codec)
    base_ts = int(time.time() * 1000) - 60_000
    records = []
    for p in range(2):
        for i in range(20):
            records.append(
                {
                    "partition": p,
                    "key": f"key-{p}-{i}".encode(),
                    "value": (f"value-{codec}-{p}-{i}-" * 20).encode(),
                    "headers": [("h-idx", str(i).encode()), ("h-empty", b"")],
                    "timestamp": base_ts + i,
                }
            )
    records.append({"partition": 0, "key": None, "value": b"no-key", "timestamp": base_ts + 50})
    records.append({"partition": 1, "key": b"tombstone", "value": None, "timestamp": base_ts + 51})
    try:
        metas = send_all(producer, topic, records)
    finally:
        producer.close(timeout=5)
    for p in range(2):
        offs = [m.offset for m in metas if m.partition == p]
        assert offs == list(range(len(offs))), f"partition {p} offsets {offs}"

    expected = {
        p: [
            (off, r["key"], r["value"], list(r.get("headers") or []), r["timestamp"])
            for off, r in enumerate(x for x in records if x["partition"] == p)
        ]
        for p in range(2)
    }
    if codec == "zstd":
        from confluent_kafka import OFFSET_BEGINNING

        from test_confluent import consume_to_end

        got = consume_to_end(bootstrap, topic, [(0, OFFSET_BEGINNING), (1, OFFSET_BEGINNING)])
        actual = {p: [] for p in range(2)}
        for m in got:
            actual[m.partition()].append((m.offset(), m.key(), m.value(), list(m.headers() or []), m.timestamp()[1]))
    else:
        got = read_partitions(bootstrap, topic, [0, 1], len(records))
        actual = {
            p: [(r.offset, r.key, r.value, [(k, v) for k, v in r.headers], r.timestamp) for r in recs]
            for p, recs in got.items()
        }
    assert actual == expected


def test_produce_acks_0(bootstrap):
    """acks=0: kafka-python expects no response (Kafka sends none); any reply breaks its strict
    correlation-id check. Afterwards the same producer must still work with metadata requests."""
    topic = unique_topic("kp-acks0")
    create_topic(bootstrap, topic, partitions=1)
    producer = make_producer(bootstrap, acks=0)
    try:
        send_all(producer, topic, [{"partition": 0, "key": f"k{i}".encode(), "value": b"v"} for i in range(5)])
        assert producer.partitions_for(topic) == {0}
        send_all(producer, topic, [{"partition": 0, "key": b"k5", "value": b"v"}])
    finally:
        producer.close(timeout=5)
    got = read_partitions(bootstrap, topic, [0], 6)
    assert [(r.offset, r.key) for r in got[0]] == [(i, f"k{i}".encode()) for i in range(6)]


def test_produce_to_unknown_topic_auto_creates(bootstrap):
    """Metadata v1 for an unknown topic auto-creates it (no allow_auto_topic_creation field below v4,
    which Kafka treats as allowed); the producer may see LEADER_NOT_AVAILABLE first and retries."""
    topic = unique_topic("kp-autocreate")
    producer = make_producer(bootstrap)
    try:
        [meta] = send_all(producer, topic, [{"key": b"k", "value": b"auto"}])
    finally:
        producer.close(timeout=5)
    assert meta.topic == topic and meta.offset == 0
    got = read_partitions(bootstrap, topic, [meta.partition], 1)
    assert [(r.key, r.value) for r in got[meta.partition]] == [(b"k", b"auto")]


def test_seek_to_offset_inside_batch(bootstrap):
    topic = unique_topic("kp-seek")
    create_topic(bootstrap, topic, partitions=1)
    producer = make_producer(bootstrap, linger_ms=200)
    try:
        send_all(producer, topic, [{"partition": 0, "key": str(i).encode(), "value": b"v"} for i in range(10)])
    finally:
        producer.close(timeout=5)
    consumer = make_consumer(bootstrap)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 6)
        got = []
        deadline = time.monotonic() + TIMEOUT
        while len(got) < 4 and time.monotonic() < deadline:
            got.extend(consumer.poll(timeout_ms=500).get(tp, []))
        assert [(r.offset, r.key) for r in got] == [(i, str(i).encode()) for i in range(6, 10)]
        assert consumer.position(tp) == 10
    finally:
        consumer.close()


# --------------------------------------------------------------------------- offsets / metadata


def test_beginning_and_end_offsets(bootstrap):
    topic = unique_topic("kp-offsets")
    create_topic(bootstrap, topic, partitions=2)
    producer = make_producer(bootstrap)
    try:
        send_all(producer, topic, [{"partition": 1, "value": f"v{i}".encode()} for i in range(4)])
    finally:
        producer.close(timeout=5)
    consumer = make_consumer(bootstrap)
    try:
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        assert consumer.end_offsets(tps) == {tps[0]: 0, tps[1]: 4}
        assert consumer.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0}
    finally:
        consumer.close()


def test_offsets_for_times(bootstrap):
    """ListOffsets v1 by timestamp: earliest offset with timestamp >= target; None when no such record."""
    topic = unique_topic("kp-oft")
    create_topic(bootstrap, topic, partitions=1)
    t0 = int(time.time() * 1000) - 3_600_000
    producer = make_producer(bootstrap, linger_ms=200)
    try:
        send_all(producer, topic, [{"partition": 0, "value": b"x", "timestamp": t0 + 1000 * i} for i in range(5)])
    finally:
        producer.close(timeout=5)
    consumer = make_consumer(bootstrap)
    try:
        tp = TopicPartition(topic, 0)
        for target, want in [(t0 - 1, 0), (t0, 0), (t0 + 1, 1), (t0 + 3000, 3), (t0 + 3999, 4), (t0 + 4000, 4)]:
            res = consumer.offsets_for_times({tp: target})[tp]
            assert res is not None, f"no offset for t0+{target - t0}"
            assert (res.offset, res.timestamp) == (want, t0 + 1000 * want), f"t0+{target - t0} -> {res}"
        assert consumer.offsets_for_times({tp: t0 + 4001})[tp] is None
    finally:
        consumer.close()


def test_metadata(bootstrap):
    topic = unique_topic("kp-md")
    create_topic(bootstrap, topic, partitions=3)
    admin = make_admin(bootstrap)
    try:
        cluster = admin.describe_cluster()
        node_ids = {b["node_id"] for b in cluster["brokers"]}
        assert len(node_ids) == BROKERS, cluster
        assert cluster["controller_id"] in node_ids, cluster
        assert cluster.get("cluster_id"), cluster
        assert {(b["host"], b["port"]) for b in cluster["brokers"]} == set(bootstrap_addresses(bootstrap)), cluster
        assert topic in admin.list_topics()
        [t] = admin.describe_topics([topic])
        assert t["error_code"] == 0 and t["topic"] == topic and not t["is_internal"]
        parts = sorted(t["partitions"], key=lambda p: p["partition"])
        assert [p["partition"] for p in parts] == [0, 1, 2]
        for p in parts:
            assert p["error_code"] == 0
            assert p["leader"] in node_ids and p["leader"] in p["replicas"] and p["leader"] in p["isr"]
            assert len(set(p["replicas"])) == REPLICATION_FACTOR and set(p["replicas"]) <= node_ids, p
            assert sorted(p["isr"]) == sorted(p["replicas"]), p
    finally:
        admin.close()
    # consumer-side metadata: all-topics request (v1+ with a null topic list means all topics;
    # an empty list means none)
    consumer = make_consumer(bootstrap)
    try:
        assert topic in consumer.topics()
        assert consumer.partitions_for_topic(topic) == {0, 1, 2}
    finally:
        consumer.close()


# --------------------------------------------------------------------------- admin


def test_admin_create_and_delete_topics(bootstrap):
    t1, t2 = unique_topic("kp-admin-a"), unique_topic("kp-admin-b")
    admin = make_admin(bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(t1, num_partitions=1, replication_factor=REPLICATION_FACTOR),
                NewTopic(t2, num_partitions=4, replication_factor=REPLICATION_FACTOR),
            ],
            timeout_ms=int(TIMEOUT * 1000),
        )
        wait_until(lambda: {t1, t2} <= set(admin.list_topics()), TIMEOUT, what="both topics listed")
        desc = {t["topic"]: t for t in admin.describe_topics([t1, t2])}
        assert len(desc[t1]["partitions"]) == 1 and len(desc[t2]["partitions"]) == 4

        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(t1, num_partitions=1, replication_factor=1)], timeout_ms=int(TIMEOUT * 1000))

        admin.delete_topics([t1, t2], timeout_ms=int(TIMEOUT * 1000))
        wait_until(lambda: not ({t1, t2} & set(admin.list_topics())), TIMEOUT, what="both topics gone")

        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topics([t1], timeout_ms=int(TIMEOUT * 1000))
    finally:
        admin.close()


@pytest.mark.parametrize("bad", ["has space", "..", "x" * 250])
def test_admin_create_invalid_topic_name(bootstrap, bad):
    admin = make_admin(bootstrap)
    try:
        with pytest.raises(InvalidTopicError):
            admin.create_topics([NewTopic(bad, num_partitions=1, replication_factor=1)], timeout_ms=int(TIMEOUT * 1000))
    finally:
        admin.close()


def test_admin_create_zero_partitions(bootstrap):
    admin = make_admin(bootstrap)
    try:
        with pytest.raises(InvalidPartitionsError):
            admin.create_topics([NewTopic(unique_topic("kp-zero"), num_partitions=0, replication_factor=1)], timeout_ms=int(TIMEOUT * 1000))
    finally:
        admin.close()


class RawClient:
    """kafka-python's KafkaClient: requests built from its protocol classes, sent to one node."""

    def __init__(self, bootstrap):
        from kafka.client_async import KafkaClient

        self.client = KafkaClient(bootstrap_servers=bootstrap, api_version_auto_timeout_ms=10000)

    def node_ids(self):
        def brokers():
            # before the first Metadata response the cluster holds only "bootstrap-N" entries
            self.client.cluster.request_update()
            self.client.poll(timeout_ms=100)
            ids = [b.nodeId for b in self.client.cluster.brokers()]
            return sorted(ids) if ids and all(isinstance(i, int) for i in ids) else None

        ids = wait_until(brokers, TIMEOUT, what="brokers in metadata")
        assert len(ids) == BROKERS, ids
        return ids

    def leader(self, topic, partition):
        def known():
            self.client.cluster.request_update()
            self.client.poll(timeout_ms=100)
            leader = self.client.cluster.leader_for_partition(TopicPartition(topic, partition))
            return (leader,) if leader is not None and leader >= 0 else None

        self.client.add_topic(topic)
        [leader] = wait_until(known, TIMEOUT, what=f"the leader of {topic}-{partition}")
        return leader

    def send(self, node, request):
        def ready():
            self.client.poll(timeout_ms=100)
            return self.client.ready(node)

        wait_until(ready, TIMEOUT, what=f"a connection to broker {node}")
        fut = self.client.send(node, request)
        deadline = time.monotonic() + TIMEOUT
        while not fut.is_done and time.monotonic() < deadline:
            self.client.poll(timeout_ms=100)
        assert fut.succeeded(), (node, fut.exception)
        return fut.value

    def close(self):
        self.client.close()


def test_list_offsets_duplicate_partition_is_invalid_request(bootstrap):
    """Raw ListOffsets v1 naming one partition twice: Kafka answers INVALID_REQUEST (42) for every
    duplicated entry (KafkaApis: offsetRequest.duplicatePartitions), before it looks at leadership:
    so every broker answers so, the partition's leader and (in cluster mode) the others."""
    from kafka.protocol.offset import OffsetRequest

    topic = unique_topic("kp-dup-lo")
    create_topic(bootstrap, topic, partitions=1)
    client = RawClient(bootstrap)
    try:
        for node in client.node_ids():
            response = client.send(node, OffsetRequest[1](-1, [(topic, [(0, -1), (0, -2)])]))
            errors = [p[1] for t in response.topics for p in t[1]]
            assert errors == [42, 42], (node, response)
    finally:
        client.close()


def test_only_the_leader_serves_produce_fetch_and_list_offsets(bootstrap):
    """Produce v7, Fetch v4 and ListOffsets v1 (kafka-python 2.0.2's versions) sent to each broker
    for one partition: the leader serves them, every other broker (cluster mode) answers
    NOT_LEADER_OR_FOLLOWER (6) — and appends nothing — as Kafka does; that error is what makes
    clients refresh their metadata and go to the leader."""
    from kafka.protocol.fetch import FetchRequest
    from kafka.protocol.offset import OffsetRequest
    from kafka.protocol.produce import ProduceRequest
    from kafka.record.memory_records import MemoryRecordsBuilder

    topic = unique_topic("kp-leader-only")
    create_topic(bootstrap, topic, partitions=1)
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    builder.append(timestamp=None, key=b"k", value=b"v", headers=[])
    builder.close()
    batch = builder.buffer()
    client = RawClient(bootstrap)
    try:
        nodes = client.node_ids()
        leader = client.leader(topic, 0)
        assert leader in nodes, (leader, nodes)
        for node in [n for n in nodes if n != leader] + [leader]:  # the leader last: nothing before it
            want = 0 if node == leader else 6
            produced = client.send(node, ProduceRequest[7](transactional_id=None, required_acks=-1, timeout=10000, topics=[(topic, [(0, batch)])]))
            [(_, [(_, error, offset, *_)])] = produced.topics
            assert (node, error) == (node, want), produced
            assert offset == (0 if node == leader else -1), produced
            listed = client.send(node, OffsetRequest[1](-1, [(topic, [(0, -1)])]))
            [(_, [(_, error, _, offset)])] = listed.topics
            assert (node, error, offset) == (node, want, 1 if node == leader else -1), listed
            fetched = client.send(node, FetchRequest[4](-1, 100, 1, 1 << 20, 0, [(topic, [(0, 0, 1 << 20)])]))
            [(_, [(_, error, high_watermark, *_)])] = fetched.topics
            assert (node, error, high_watermark) == (node, want, 1 if node == leader else -1), fetched
    finally:
        client.close()
