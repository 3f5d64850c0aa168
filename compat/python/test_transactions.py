"""confluent-kafka (librdkafka) transactions against a running Sluice broker.

A transactional producer commits one transaction and aborts the next: a read_committed
consumer sees only the first, a read_uncommitted one both. A second producer with the same
transactional.id fences the first. Consume-transform-produce commits the input offsets inside
the transaction (send_offsets_to_transaction); an aborted transaction leaves them alone.

kafka-python is pinned at 2.0.2 in requirements.txt, which has no transactional producer, so
only confluent-kafka runs here.
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

from conftest import confluent_create_topic, unique_topic

TIMEOUT = 20.0


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


def test_consume_transform_produce_commits_offsets_with_the_output(bootstrap):
    source_topic = unique_topic("txn-py-in")
    sink_topic = unique_topic("txn-py-out")
    confluent_create_topic(bootstrap, source_topic)
    confluent_create_topic(bootstrap, sink_topic)
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(10):
        plain.produce(source_topic, value=f"in-{i}".encode(), partition=0)
    plain.flush(TIMEOUT)

    group = f"py-ctp-{uuid.uuid4().hex[:8]}"
    consumer_config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    source = Consumer(consumer_config)
    source.subscribe([source_topic])
    app = transactional_producer(bootstrap, f"py-ctp-{uuid.uuid4().hex[:8]}")
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
    app.send_offsets_to_transaction(
        [TopicPartition(source_topic, 0, processed)], source.consumer_group_metadata(), TIMEOUT
    )
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
