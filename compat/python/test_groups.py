"""Consumer-group tests for confluent-kafka and kafka-python.

DEPENDS ON THE GROUP COORDINATOR (FindCoordinator, JoinGroup/SyncGroup/Heartbeat/LeaveGroup,
OffsetCommit/OffsetFetch). compat/run.sh runs this file only with SLUICE_COMPAT_GROUPS=1 and prints
a line saying it was not run otherwise.
"""

import time
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from conftest import confluent_create_topic, unique_topic
from test_confluent import make_producer, produce_all

TIMEOUT = 45.0


def _produce(bootstrap, topic, partitions, per_partition):
    records = [
        {"partition": p, "key": f"k{p}-{i}".encode(), "value": f"v{i}".encode(), "headers": [("i", str(i).encode())]}
        for p in range(partitions)
        for i in range(per_partition)
    ]
    produce_all(make_producer(bootstrap, **{"compression.type": "lz4"}), topic, records)
    return {(r["partition"], i % per_partition, r["key"]) for i, r in enumerate(records)}


def test_confluent_subscribe_commit_resume(bootstrap):
    topic = unique_topic("cfk-group")
    group = f"compat-cfk-{uuid.uuid4().hex[:8]}"
    confluent_create_topic(bootstrap, topic, partitions=3)
    expected = _produce(bootstrap, topic, 3, 10)

    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 10000,
    }
    c = Consumer(conf)
    seen = set()
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT
        while len(seen) < len(expected):
            assert time.monotonic() < deadline, f"timed out with {len(seen)}/{len(expected)}"
            msg = c.poll(0.5)
            if msg is None:
                continue
            assert not msg.error() or msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
            if not msg.error():
                seen.add((msg.partition(), msg.offset(), msg.key()))
        c.commit(asynchronous=False)
        committed = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
        assert sorted((tp.partition, tp.offset) for tp in committed) == [(0, 10), (1, 10), (2, 10)]
    finally:
        c.close()
    assert seen == expected

    # a new consumer in the same group resumes after the commit
    produce_all(make_producer(bootstrap), topic, [{"partition": 2, "key": b"late", "value": b"late"}])
    c2 = Consumer(conf)
    try:
        c2.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT
        got = []
        while not got:
            assert time.monotonic() < deadline, "timed out waiting for the late record"
            msg = c2.poll(0.5)
            if msg is not None and not msg.error():
                got.append((msg.partition(), msg.offset(), msg.key()))
        assert got == [(2, 10, b"late")]
    finally:
        c2.close()


def test_kafka_python_group_subscribe_commit(bootstrap):
    topic = unique_topic("kp-group")
    group = f"compat-kp-{uuid.uuid4().hex[:8]}"
    confluent_create_topic(bootstrap, topic, partitions=2)
    expected = _produce(bootstrap, topic, 2, 8)
    c = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
        api_version_auto_timeout_ms=10000,
    )
    seen = set()
    try:
        deadline = time.monotonic() + TIMEOUT
        while len(seen) < len(expected):
            assert time.monotonic() < deadline, f"timed out with {len(seen)}/{len(expected)}"
            for recs in c.poll(timeout_ms=500).values():
                seen.update((r.partition, r.offset, r.key) for r in recs)
        c.commit()
        assert c.committed(KpTopicPartition(topic, 0)) == 8
        assert c.committed(KpTopicPartition(topic, 1)) == 8
    finally:
        c.close()
    assert seen == expected
