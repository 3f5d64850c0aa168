"""confluent-kafka (librdkafka) transactions against a running Sluice broker.

A transactional producer commits one transaction and aborts the next: a read_committed
consumer sees only the first, a read_uncommitted one both. A second producer with the same
transactional.id fences the first. Consume-transform-produce commits the input offsets inside
the transaction (send_offsets_to_transaction); an aborted transaction leaves them alone.

kafka-python is pinned at 2.0.2 in requirements.txt, which has no transactional producer, so
only confluent-kafka runs here (kafka-python's protocol classes only ask FindCoordinator where the
coordinators are).

In cluster mode the transaction coordinator (the leader of the transactional id's
__transaction_state partition) and the group coordinator (the leader of the group's
__consumer_offsets partition) are in general different nodes: consume-transform-produce then
sends AddOffsetsToTxn to one node and TxnOffsetCommit to another. The test runs once with ids whose
coordinators are the same node, and in cluster mode once more with ids whose coordinators differ.
"""

import time
import uuid

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from conftest import CLUSTER, confluent_create_topic, unique_topic, wait_until

TIMEOUT = 20.0


class Coordinators:
    """FindCoordinator v1 (key type 0 = group, 1 = transaction) through kafka-python's client.
    kafka-python 2.0.2's own v1 response schema lacks throttle_time_ms, hence the classes here."""

    def __init__(self, bootstrap):
        from kafka.client_async import KafkaClient
        from kafka.protocol.api import Request, Response
        from kafka.protocol.types import Int8, Int16, Int32, Schema, String

        class FindCoordinatorResponseV1(Response):
            API_KEY = 10
            API_VERSION = 1
            SCHEMA = Schema(
                ("throttle_time_ms", Int32),
                ("error_code", Int16),
                ("error_message", String("utf-8")),
                ("node_id", Int32),
                ("host", String("utf-8")),
                ("port", Int32),
            )

        class FindCoordinatorRequestV1(Request):
            API_KEY = 10
            API_VERSION = 1
            RESPONSE_TYPE = FindCoordinatorResponseV1
            SCHEMA = Schema(("key", String("utf-8")), ("key_type", Int8))

        self.request = FindCoordinatorRequestV1
        self.client = KafkaClient(bootstrap_servers=bootstrap, api_version_auto_timeout_ms=10000)

    def node_of(self, key, key_type):
        def ask():
            node = self.client.least_loaded_node()
            if node is None or not self.client.ready(node):
                self.client.poll(timeout_ms=100)
                return None
            fut = self.client.send(node, self.request(key, key_type))
            deadline = time.monotonic() + 10
            while not fut.is_done and time.monotonic() < deadline:
                self.client.poll(timeout_ms=100)
            if not fut.succeeded() or fut.value.error_code != 0:  # e.g. COORDINATOR_NOT_AVAILABLE
                return None
            return (fut.value.node_id,)

        [node_id] = wait_until(ask, TIMEOUT, what=f"the coordinator of {key!r} (key type {key_type})")
        return node_id

    def close(self):
        self.client.close()


def ids_with_coordinators(bootstrap, same):
    """(transactional id, group id) whose coordinators are the same node (same=True) or two
    different nodes (same=False, cluster mode only). Returns them and the two node ids."""
    finder = Coordinators(bootstrap)
    try:
        transactional_id = f"py-ctp-{uuid.uuid4().hex[:8]}"
        txn_node = finder.node_of(transactional_id, 1)
        for _ in range(200):
            group = f"py-ctp-group-{uuid.uuid4().hex[:8]}"
            group_node = finder.node_of(group, 0)
            if (group_node == txn_node) == same:
                return transactional_id, group, txn_node, group_node
        raise AssertionError(f"no group id with a coordinator {'=' if same else '!='} {txn_node} in 200 tries")
    finally:
        finder.close()


def transactional_producer(bootstrap, transactional_id):
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": 30000,
            "socket.timeout.ms": 10000,
        }
    )
    producer.init_transactions(TIMEOUT)
    return producer


def read_values(bootstrap, topic, partitions, isolation, timeout=30.0):
    """Every value of `topic` visible at `isolation`, read to EOF, sorted."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"compat-unused-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        pending = set(range(partitions))
        values = []
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, f"partitions {sorted(pending)} never reached EOF"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                    continue
                pytest.fail(f"consumer error: {msg.error()}")
            values.append(msg.value().decode())
        return sorted(values)
    finally:
        consumer.close()


def test_commit_then_abort_read_committed_sees_only_the_commit(bootstrap):
    topic = unique_topic("txn-py")
    confluent_create_topic(bootstrap, topic, partitions=2)
    producer = transactional_producer(bootstrap, f"py-txn-{uuid.uuid4().hex[:8]}")

    producer.begin_transaction()
    for p in range(2):
        producer.produce(topic, value=f"committed-{p}".encode(), partition=p)
    producer.commit_transaction(TIMEOUT)

    producer.begin_transaction()
    for p in range(2):
        producer.produce(topic, value=f"aborted-{p}".encode(), partition=p)
    producer.flush(TIMEOUT)
    producer.abort_transaction(TIMEOUT)

    assert read_values(bootstrap, topic, 2, "read_committed") == ["committed-0", "committed-1"]
    assert read_values(bootstrap, topic, 2, "read_uncommitted") == [
        "aborted-0",
        "aborted-1",
        "committed-0",
        "committed-1",
    ]


def test_second_producer_fences_the_first(bootstrap):
    topic = unique_topic("txn-py-zombie")
    confluent_create_topic(bootstrap, topic)
    transactional_id = f"py-zombie-{uuid.uuid4().hex[:8]}"
    zombie = transactional_producer(bootstrap, transactional_id)
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie", partition=0)
    zombie.flush(TIMEOUT)

    fresh = transactional_producer(bootstrap, transactional_id)
    fresh.begin_transaction()
    fresh.produce(topic, value=b"fresh", partition=0)
    fresh.commit_transaction(TIMEOUT)

    with pytest.raises(KafkaException) as raised:
        zombie.commit_transaction(TIMEOUT)
    error = raised.value.args[0]
    assert error.fatal() or "fenced" in str(error).lower(), str(error)
    assert read_values(bootstrap, topic, 1, "read_committed") == ["fresh"]


# Different coordinators exist only with several brokers (compat/FINDINGS.md #6, fixed).
COORDINATORS = ["same", "different"] if CLUSTER else ["same"]


@pytest.mark.parametrize("coordinators", COORDINATORS, ids=lambda c: f"{c}-coordinator")
def test_consume_transform_produce_commits_offsets_with_the_output(bootstrap, coordinators):
    transactional_id, group, txn_node, group_node = ids_with_coordinators(bootstrap, coordinators == "same")
    source_topic = unique_topic("txn-py-in")
    sink_topic = unique_topic("txn-py-out")
    confluent_create_topic(bootstrap, source_topic)
    confluent_create_topic(bootstrap, sink_topic)
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(10):
        plain.produce(source_topic, value=f"in-{i}".encode(), partition=0)
    plain.flush(TIMEOUT)

    consumer_config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    source = Consumer(consumer_config)
    source.subscribe([source_topic])
    app = transactional_producer(bootstrap, transactional_id)
    app.begin_transaction()
    processed = 0
    deadline = time.monotonic() + 30
    while processed < 5:
        assert time.monotonic() < deadline, "input records did not arrive"
        msg = source.poll(0.5)
        if msg is None or msg.error():
            continue
        app.produce(sink_topic, value=msg.value().replace(b"in", b"out"), partition=0)
        processed = msg.offset() + 1
    try:
        app.send_offsets_to_transaction(
            [TopicPartition(source_topic, 0, processed)], source.consumer_group_metadata(), TIMEOUT
        )
    except KafkaException as e:
        raise AssertionError(
            f"send_offsets_to_transaction failed: transaction coordinator node {txn_node}, "
            f"group coordinator node {group_node}: {e}"
        ) from e
    app.commit_transaction(TIMEOUT)

    app.begin_transaction()
    app.produce(sink_topic, value=b"out-aborted", partition=0)
    app.send_offsets_to_transaction(
        [TopicPartition(source_topic, 0, 9)], source.consumer_group_metadata(), TIMEOUT
    )
    app.abort_transaction(TIMEOUT)
    source.close()

    checker = Consumer(consumer_config)
    try:
        committed = checker.committed([TopicPartition(source_topic, 0)], timeout=TIMEOUT)
        assert committed[0].offset == 5
    finally:
        checker.close()
    assert read_values(bootstrap, sink_topic, 1, "read_committed") == [
        f"out-{i}" for i in range(5)
    ]
