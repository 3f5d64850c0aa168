"""kafka-python >= 2.2 transactions against a running Sluice broker.

Runs in its own venv (compat/.venv-kp2, python/requirements-kp2.txt): the main venv keeps
kafka-python 2.0.2, which has no transactional producer. A KafkaProducer with a transactional_id
commits one transaction (N records) and aborts the next (M records); a read_committed
KafkaConsumer (assign + seek_to_beginning) sees exactly the N committed records, a
read_uncommitted one all N + M. Control records (the commit/abort markers) are never handed to
the application, but each takes one offset.
"""

import time
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from conftest import REPLICATION_FACTOR, unique_topic

PARTITIONS = 2
N = 10  # committed, 5 per partition
M = 6  # aborted, 3 per partition
CLIENT_MS = 15000


def create_topic(bootstrap, topic, partitions):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=CLIENT_MS)
    try:
        admin.create_topics([NewTopic(topic, partitions, REPLICATION_FACTOR)], timeout_ms=CLIENT_MS)
    finally:
        admin.close()


def read_all(bootstrap, topic, isolation, timeout=30.0):
    """Every (partition, value) of `topic` visible at `isolation`, read until each partition's
    position reaches its end offset (the LSO for read_committed), sorted."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation,
        enable_auto_commit=False,
        request_timeout_ms=CLIENT_MS + 1000,
        fetch_max_wait_ms=200,
        consumer_timeout_ms=1000,
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(tps)
        records = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, (
                f"{isolation}: positions {[consumer.position(tp) for tp in tps]} never reached "
                f"end offsets {[ends[tp] for tp in tps]}; got {records}"
            )
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend((r.partition, r.value) for r in batch)
        # Nothing more arrives after the end offsets.
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend((r.partition, r.value) for r in batch)
        return sorted(records), ends
    finally:
        consumer.close()


def test_commit_then_abort_read_committed_sees_only_the_commit(bootstrap):
    topic = unique_topic("kp2-txn")
    create_topic(bootstrap, topic, PARTITIONS)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=f"kp2-txn-{uuid.uuid4().hex[:8]}",
        transaction_timeout_ms=30000,
        max_block_ms=CLIENT_MS,
        request_timeout_ms=CLIENT_MS,
    )
    try:
        producer.init_transactions()

        committed = [(i % PARTITIONS, f"committed-{i}".encode()) for i in range(N)]
        producer.begin_transaction()
        futures = [producer.send(topic, value=v, partition=p) for p, v in committed]
        producer.commit_transaction()
        for f in futures:
            assert f.succeeded(), f.exception

        aborted = [(i % PARTITIONS, f"aborted-{i}".encode()) for i in range(M)]
        producer.begin_transaction()
        for p, v in aborted:
            producer.send(topic, value=v, partition=p)
        producer.flush(timeout=CLIENT_MS / 1000)
        producer.abort_transaction()
    finally:
        producer.close(timeout=10)

    got, ends = read_all(bootstrap, topic, "read_committed")
    assert got == sorted(committed)
    # No transaction is open any more: the LSO is the high watermark, which counts each
    # partition's records plus its two control records (commit and abort markers).
    for p in range(PARTITIONS):
        n_p = sum(1 for q, _ in committed if q == p)
        m_p = sum(1 for q, _ in aborted if q == p)
        assert ends[TopicPartition(topic, p)] == n_p + m_p + 2

    got, ends = read_all(bootstrap, topic, "read_uncommitted")
    assert got == sorted(committed + aborted)
