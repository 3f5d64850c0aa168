"""confluent-kafka (librdkafka) idempotent producer against a running Sluice broker.

`enable.idempotence=True` makes librdkafka call InitProducerId and number every batch per
partition; it turns a broker answer it does not expect into a fatal error. The stream is read
back by a consumer assigned at the beginning (no consumer groups): every record exactly once,
in send order within its partition.
"""

import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from conftest import confluent_create_topic, unique_topic

TIMEOUT = 15.0
PARTITIONS = 3


def value_for(partition, seq):
    return f"p{partition}-{seq:06}".encode()


def read_all(bootstrap, topic, partitions, timeout=30.0):
    """Every record of `topic`, per partition as [(offset, value)], read to EOF."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"compat-unused-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "socket.timeout.ms": 10000,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        pending = set(range(partitions))
        got = {p: [] for p in range(partitions)}
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
            got[msg.partition()].append((msg.offset(), msg.value()))
        return got
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_idempotent_producer_stream_every_record_once_in_order(bootstrap, codec):
    topic = unique_topic(f"idem-{codec}")
    confluent_create_topic(bootstrap, topic, partitions=PARTITIONS)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "max.in.flight.requests.per.connection": 5,
            "linger.ms": 5,
            "batch.num.messages": 50,
            "compression.type": codec,
            "message.timeout.ms": int(TIMEOUT * 1000),
            "socket.timeout.ms": 10000,
        }
    )
    errors = []
    reports = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            reports.append((msg.partition(), msg.offset(), msg.value()))

    sent = [0] * PARTITIONS
    for index in range(900):
        partition = index % PARTITIONS
        producer.produce(
            topic,
            key=f"key-{index}".encode(),
            value=value_for(partition, sent[partition]),
            partition=partition,
            on_delivery=on_delivery,
        )
        sent[partition] += 1
        producer.poll(0)
    remaining = producer.flush(TIMEOUT)
    assert not errors, f"delivery errors: {errors[:5]}"
    assert remaining == 0, f"{remaining} messages not delivered within {TIMEOUT}s"
    assert len(reports) == sum(sent)
    # Each record is reported at its place in its partition.
    for partition, offset, value in reports:
        assert value == value_for(partition, offset), (partition, offset, value)

    got = read_all(bootstrap, topic, PARTITIONS)
    for partition in range(PARTITIONS):
        want = [(seq, value_for(partition, seq)) for seq in range(sent[partition])]
        assert got[partition] == want, f"partition {partition}: {len(got[partition])} read, {len(want)} sent"


def test_two_idempotent_producers_interleave_on_one_partition(bootstrap):
    """Two producers (two producer ids) writing the same partition: each one's records are
    all there, once, in its own send order."""
    topic = unique_topic("idem-two")
    confluent_create_topic(bootstrap, topic, partitions=1)
    conf = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "message.timeout.ms": int(TIMEOUT * 1000),
        "socket.timeout.ms": 10000,
    }
    producers = {name: Producer(dict(conf)) for name in ("a", "b")}
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    for index in range(300):
        for name, producer in producers.items():
            producer.produce(topic, value=f"{name}-{index:04}".encode(), partition=0, on_delivery=on_delivery)
            producer.poll(0)
    for producer in producers.values():
        assert producer.flush(TIMEOUT) == 0, "flush timed out"
    assert not errors, f"delivery errors: {errors[:5]}"

    got = read_all(bootstrap, topic, 1)[0]
    assert [offset for offset, _ in got] == list(range(600)), "offsets contiguous, nothing extra"
    for name in producers:
        mine = [value for _, value in got if value.startswith(f"{name}-".encode())]
        assert mine == [f"{name}-{index:04}".encode() for index in range(300)], name
