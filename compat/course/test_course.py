"""The course's replication scenario, with its real clients, against three `sluice serve` processes.

Day 2 of the course: acks 0/1/all, what the ISR is, `min.insync.replicas`, and Exercise 4,
"replication factor 1 loses data". Each test drives the cluster the course's way (`sluice dev
--brokers 3`, SIGKILL of a node, the restart command `sluice dev` printed) and checks with the
clients the course uses: confluent-kafka (librdkafka), kafka-python, kcat and kafkajs.

- An idempotent acks=all producer keeps writing while a partition's leader is SIGKILLed and
  restarted: every acknowledged record is read back (by confluent-kafka, kcat and kafkajs), none
  twice, in order per partition, at the offset it was acknowledged with.
- min.insync.replicas=3 with one follower down: the ISR shrinks; acks=all fails with
  NOT_ENOUGH_REPLICAS in every client and appends nothing; acks=1 succeeds but stays invisible
  until the ISR is whole again (Kafka's strict min ISR); with the follower back and caught up the
  ISR grows and acks=all succeeds again.
- Replication factor 1 against 3: with the one broker of an RF1 partition dead, its records can be
  neither read nor written; an RF3 partition led by the same broker fails over and keeps all of its.
"""

import json
import os
import subprocess
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster

COMPAT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KCAT = os.environ.get("KCAT", "kcat")
NODE_SCRIPT = os.path.join(COMPAT_DIR, "course", "kafkajs-course.mjs")

# A failover on 2 cores: fencing after the session timeout, a new leader, a client that finds it.
FAILOVER_TIMEOUT = 90.0

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def cluster():
    binary = os.environ.get("SLUICE_BIN")
    if not binary:
        pytest.fail("SLUICE_BIN is not set; run the course suite through compat/run.sh", pytrace=False)
    c = Cluster(binary)
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def healthy(cluster):
    """Each test starts with every node up and caught up (the one before may have restarted one)."""
    cluster.wait_healthy()
    return cluster


def wait_until(predicate, timeout, what, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def create_topic(cluster, topic, partitions=1, replicas=3, configs=None, assignment=None):
    """Create with confluent-kafka's AdminClient; wait until every live node's own metadata shows
    every partition with a leader and a full ISR."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    if assignment is not None:
        new = NewTopic(topic, num_partitions=len(assignment), replica_assignment=assignment, config=configs or {})
    else:
        new = NewTopic(topic, num_partitions=partitions, replication_factor=replicas, config=configs or {})
    admin.create_topics([new], operation_timeout=30, request_timeout=30)[topic].result(timeout=30)

    def ready(address):
        parts = cluster.partitions(topic, address)
        return (
            parts is not None
            and len(parts) == (len(assignment) if assignment else partitions)
            and all(leader >= 0 and isr == reps for leader, reps, isr in parts.values())
        )

    wait_until(lambda: cluster.everywhere(ready), 60, f"{topic} ready on every node")


def leader_of(cluster, topic, partition):
    parts = cluster.partitions(topic)
    assert parts is not None, f"no metadata for {topic}"
    return parts[partition][0]


def read_all(bootstrap, topic, partitions, timeout=60.0):
    """Every record per partition as [(offset, value)], read to the high watermark by
    confluent-kafka (assigned, no group)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"course-unused-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
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
            got[msg.partition()].append((msg.offset(), msg.value().decode()))
        return got
    finally:
        consumer.close()


def kcat(*args, stdin=None, timeout=60):
    try:
        return subprocess.run([KCAT, *args], input=stdin, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        pytest.fail(f"{KCAT} not found on PATH (run.sh installs Debian's kcat)", pytrace=False)


def kcat_read(bootstrap, topic):
    """[(partition, offset, value)] as kcat prints them, read to the end (-e)."""
    res = kcat("-b", bootstrap, "-t", topic, "-C", "-e", "-q", "-o", "beginning", "-f", "%p %o %s\\n")
    assert res.returncode == 0, f"kcat -C exited {res.returncode}: {res.stderr}"
    out = []
    for line in res.stdout.splitlines():
        p, o, v = line.split(" ", 2)
        out.append((int(p), int(o), v))
    return out


def kafkajs(bootstrap, *args, timeout=120):
    res = subprocess.run(
        ["node", NODE_SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "SLUICE_BOOTSTRAP": bootstrap, "SLUICE_COMPAT_BROKERS": "3"},
        cwd=COMPAT_DIR,
    )
    assert res.returncode == 0, f"kafkajs-course.mjs {args[:3]} exited {res.returncode}: {res.stderr}"
    out = json.loads(res.stdout.strip().splitlines()[-1])
    # kafkajs logs (SLUICE_COMPAT_KAFKAJS_LOG) on the lines before, for a failing assertion.
    out["log"] = "\n".join(res.stdout.strip().splitlines()[:-1])[-20000:] + res.stderr[-5000:]
    return out


# ----------------------------------------------------------------------------- leader failover


def test_idempotent_acks_all_producer_loses_nothing_when_the_leader_is_sigkilled_and_restarted(healthy):
    cluster = healthy
    topic = f"course-failover-{uuid.uuid4().hex[:8]}"
    partitions = 3
    create_topic(cluster, topic, partitions=partitions, configs={"min.insync.replicas": "2"})
    victim = leader_of(cluster, topic, 0)

    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            # Long enough to ride out a failover on a slow machine: a record is retried, not lost.
            "message.timeout.ms": 180000,
            "request.timeout.ms": 15000,
        }
    )
    acked = {}  # value -> (partition, offset)
    highest_acked = {p: -1 for p in range(partitions)}  # partition -> highest sequence acknowledged
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"{msg.value()!r}: {err}")
        else:
            value = msg.value().decode()
            acked[value] = (msg.partition(), msg.offset())
            number = int(value.split(":")[1])
            highest_acked[msg.partition()] = max(highest_acked[msg.partition()], number)

    seq = {p: 0 for p in range(partitions)}

    def produce_for(seconds=None, until=None, timeout=FAILOVER_TIMEOUT, what=""):
        """Produce round-robin, ~200 records/s, for `seconds` or until `until()` holds."""
        start = time.monotonic()
        while True:
            elapsed = time.monotonic() - start
            if seconds is not None and elapsed >= seconds:
                return
            if until is not None and until():
                return
            assert elapsed < timeout, f"timed out after {timeout}s producing until {what}"
            for p in range(partitions):
                producer.produce(topic, value=f"{p}:{seq[p]:07}".encode(), partition=p, on_delivery=on_delivery)
                seq[p] += 1
            producer.poll(0.015)

    produce_for(seconds=3)
    before_kill = dict(seq)
    cluster.kill(victim)

    # Writes go on: records sent after the kill are acknowledged on every partition (the killed
    # node's partitions by their new leaders).
    def acked_after_kill():
        return all(highest_acked[p] >= before_kill[p] for p in range(partitions))

    produce_for(until=acked_after_kill, what="records sent after the kill are acknowledged")
    new_leader = leader_of(cluster, topic, 0)
    assert new_leader not in (victim, -1), f"partition 0 still led by {new_leader}"
    assert not errors, errors[:5]

    cluster.restart(victim)

    def back_in_sync():
        parts = cluster.partitions(topic)
        return parts is not None and all(victim in isr for _, _, isr in parts.values())

    produce_for(until=back_in_sync, timeout=120, what=f"node {victim} is back in every ISR")
    produce_for(seconds=2)
    remaining = producer.flush(120)
    assert remaining == 0, f"{remaining} records not delivered"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:5]}"
    total = sum(seq.values())
    assert len(acked) == total, f"{total} sent, {len(acked)} acknowledged"

    # confluent-kafka reads back every record: each acknowledged one at its offset, none twice,
    # in send order within its partition.
    got = read_all(cluster.bootstrap, topic, partitions)
    seen = {}
    for p, records in got.items():
        numbers = [int(v.split(":")[1]) for _, v in records]
        assert numbers == sorted(numbers), f"partition {p} out of order"
        for offset, value in records:
            assert value not in seen, f"{value} read twice (offsets {seen[value]} and {(p, offset)})"
            seen[value] = (p, offset)
    missing = [v for v in acked if v not in seen]
    assert not missing, f"{len(missing)} acknowledged records lost, first {sorted(missing)[:5]}"
    moved = {v: (acked[v], seen[v]) for v in acked if acked[v] != seen[v]}
    assert not moved, f"records read at another offset than acknowledged: {list(moved.items())[:5]}"

    # kcat browses the same topic from the command line and sees the same records at the same
    # offsets; kafkajs, as a group member, consumes the same values.
    assert sorted(kcat_read(cluster.bootstrap, topic)) == sorted((p, o, v) for v, (p, o) in seen.items())
    out = kafkajs(cluster.bootstrap, "consume", topic, str(len(seen)), "90000")
    consumed = out["records"]
    assert sorted(v for _, _, v in consumed) == sorted(seen), f"kafkajs consumed other values; its log:\n{out['log']}"


# ----------------------------------------------------------------------------- min.insync.replicas


def kafka_python_producer(bootstrap, acks):
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap.split(","), acks=acks, retries=0, request_timeout_ms=20000,
                         max_block_ms=20000)


def kafka_python_end_offset(bootstrap, topic):
    """The high watermark of partition 0 as kafka-python's consumer reads it (ListOffsets latest)."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition as KpTopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), request_timeout_ms=20000)
    try:
        tp = KpTopicPartition(topic, 0)
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def confluent_send(bootstrap, topic, value, acks):
    """One record, no retries; the delivery report's error code name, or its offset."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks, "retries": 0, "message.timeout.ms": 30000})
    result = []
    producer.produce(topic, value=value.encode(), partition=0,
                     on_delivery=lambda err, msg: result.append(err.name() if err else msg.offset()))
    assert producer.flush(40) == 0
    return result[0]


def kcat_send(bootstrap, topic, value, acks):
    res = kcat("-b", bootstrap, "-P", "-t", topic, "-p", "0", "-X", f"acks={acks}", "-X", "retries=0",
               "-X", "message.timeout.ms=30000", stdin=value + "\n")
    return res


def test_min_insync_replicas_3_with_a_follower_down_refuses_acks_all_and_the_isr_grows_back(healthy):
    cluster = healthy
    topic = f"course-minisr-{uuid.uuid4().hex[:8]}"
    create_topic(cluster, topic, configs={"min.insync.replicas": "3"})
    bootstrap = cluster.bootstrap
    from kafka.errors import NotEnoughReplicasError

    producer = kafka_python_producer(bootstrap, "all")
    for i in range(5):
        producer.send(topic, value=f"before-{i}".encode(), partition=0).get(timeout=30)
    producer.close()
    leader, replicas, isr = cluster.partitions(topic)[0]
    assert isr == [1, 2, 3], isr
    follower = next(n for n in replicas if n != leader)

    cluster.kill(follower)
    # The ISR shrinks: the leader drops the follower (it stopped fetching; it is fenced too).
    wait_until(
        lambda: cluster.everywhere(lambda a: (cluster.partitions(topic, a) or {0: (0, [], [follower])})[0][2]
                                   == sorted(set(replicas) - {follower})),
        FAILOVER_TIMEOUT,
        f"the ISR without node {follower} on every live node",
    )
    bootstrap = ",".join(cluster.live_addresses())
    assert kafka_python_end_offset(bootstrap, topic) == 5

    # acks=all: NOT_ENOUGH_REPLICAS from every client, and nothing appended.
    producer = kafka_python_producer(bootstrap, "all")
    with pytest.raises(NotEnoughReplicasError):
        producer.send(topic, value=b"refused-kafka-python", partition=0).get(timeout=30)
    producer.close()
    assert confluent_send(bootstrap, topic, "refused-confluent", "all") == "NOT_ENOUGH_REPLICAS"
    res = kcat_send(bootstrap, topic, "refused-kcat", "all")
    assert res.returncode != 0 and "Not enough in-sync replicas" in res.stderr, (res.returncode, res.stderr)
    out = kafkajs(bootstrap, "produce", topic, "0", "-1", "refused-kafkajs")
    assert not out["ok"] and "NOT_ENOUGH_REPLICAS" in out["types"], out

    # acks=1 is acknowledged by the leader alone, but the high watermark does not move while the
    # ISR is below min.insync.replicas: consumers do not see it yet.
    producer = kafka_python_producer(bootstrap, 1)
    meta = producer.send(topic, value=b"acks1-kafka-python", partition=0).get(timeout=30)
    producer.close()
    assert meta.offset == 5, f"the refused writes took offsets: acks=1 record at {meta.offset}"
    assert confluent_send(bootstrap, topic, "acks1-confluent", "1") == 6
    out = kafkajs(bootstrap, "produce", topic, "0", "1", "acks1-kafkajs")
    assert out["ok"] and out["baseOffset"] == "7", out
    assert kafka_python_end_offset(bootstrap, topic) == 5, "the high watermark moved with the ISR below its minimum"

    # The follower comes back, catches up, and the ISR grows back to all three.
    cluster.restart(follower)
    wait_until(
        lambda: cluster.everywhere(lambda a: (cluster.partitions(topic, a) or {0: (0, [], [])})[0][2] == [1, 2, 3]),
        120,
        f"node {follower} back in the ISR on every node",
    )
    bootstrap = cluster.bootstrap
    wait_until(lambda: kafka_python_end_offset(bootstrap, topic) == 8, 30, "the acks=1 records to become visible")

    # acks=all succeeds again, in every client.
    producer = kafka_python_producer(bootstrap, "all")
    assert producer.send(topic, value=b"after-kafka-python", partition=0).get(timeout=30).offset == 8
    producer.close()
    assert confluent_send(bootstrap, topic, "after-confluent", "all") == 9
    res = kcat_send(bootstrap, topic, "after-kcat", "all")
    assert res.returncode == 0, res.stderr
    out = kafkajs(bootstrap, "produce", topic, "0", "-1", "after-kafkajs")
    assert out["ok"] and out["baseOffset"] == "11", out

    values = [v for _, _, v in kcat_read(bootstrap, topic)]
    assert values == [f"before-{i}" for i in range(5)] + [
        "acks1-kafka-python", "acks1-confluent", "acks1-kafkajs",
        "after-kafka-python", "after-confluent", "after-kcat", "after-kafkajs",
    ], values


# ----------------------------------------------------------------------------- Exercise 4


def test_replication_factor_1_loses_its_partition_with_its_broker_and_replication_factor_3_does_not(healthy):
    cluster = healthy
    victim = 2
    others = [n for n in sorted(cluster.nodes) if n != victim]
    rf1 = f"course-rf1-{uuid.uuid4().hex[:8]}"
    rf3 = f"course-rf3-{uuid.uuid4().hex[:8]}"
    # Both led by the victim: the RF1 partition has no other copy, the RF3 one has two.
    create_topic(cluster, rf1, assignment=[[victim]])
    create_topic(cluster, rf3, assignment=[[victim, *others]], configs={"min.insync.replicas": "2"})
    lines = [f"order-{i}" for i in range(20)]
    for topic in (rf1, rf3):
        res = kcat("-b", cluster.bootstrap, "-P", "-t", topic, "-p", "0", "-X", "acks=all", stdin="\n".join(lines) + "\n")
        assert res.returncode == 0, res.stderr
        assert [v for _, _, v in kcat_read(cluster.bootstrap, topic)] == lines

    cluster.kill(victim)
    bootstrap = ",".join(cluster.live_addresses())
    # RF3: a new leader from the ISR, and every record is still there.
    wait_until(lambda: (cluster.partitions(rf3) or {0: (-1,)})[0][0] in others, FAILOVER_TIMEOUT, "a new RF3 leader")
    assert [v for _, _, v in kcat_read(bootstrap, rf3)] == lines
    # RF1: the partition is offline (no leader), its records can be neither read nor written.
    wait_until(lambda: (cluster.partitions(rf1) or {0: (0,)})[0][0] == -1, FAILOVER_TIMEOUT, "the RF1 partition offline")
    res = kcat("-b", bootstrap, "-P", "-t", rf1, "-p", "0", "-X", "acks=all", "-X", "message.timeout.ms=5000",
               stdin="lost\n")
    assert res.returncode != 0, f"a write to an offline partition succeeded: {res.stderr}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"course-{uuid.uuid4().hex[:8]}"})
    try:
        consumer.assign([TopicPartition(rf1, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            assert msg is None or msg.error(), f"read {msg.value()!r} from a partition with no leader"
    finally:
        consumer.close()

    # The broker comes back with its disk: the RF1 records return with it (kill -9 loses nothing
    # Sluice acknowledged) -- but only because this disk survived.
    cluster.restart(victim)
    wait_until(lambda: (cluster.partitions(rf1) or {0: (-1,)})[0][0] == victim, FAILOVER_TIMEOUT, "the RF1 partition back")
    assert [v for _, _, v in kcat_read(cluster.bootstrap, rf1)] == lines
