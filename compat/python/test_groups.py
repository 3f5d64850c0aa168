"""Consumer-group tests for confluent-kafka (librdkafka 2.16) and kafka-python 2.0.2.

kafka-python's coordinator client uses old, fixed API versions (FindCoordinator v0, JoinGroup <= 2,
SyncGroup/Heartbeat/LeaveGroup v1, OffsetCommit v2, OffsetFetch v1); librdkafka negotiates current
ones (JoinGroup v5+ with KIP-394 MEMBER_ID_REQUIRED, ...).

The core scenario per client (`test_*_two_members_split_commit_resume`):

1. produce N keyed records (default partitioner) to a 4-partition topic;
2. run TWO consumers of one group concurrently (one thread each), committing synchronously after
   processing each batch (manual commits, auto-commit off);
3. assert: both members got a non-empty share of the partitions, the shares are disjoint and cover
   the topic, membership stayed stable (one assignment per member, no revocation), the union of
   what they consumed is exactly the N records (no loss, no duplicate offset), and per key the
   records arrived in production order (and each key was read by one member only);
4. close both, check the committed offsets equal the high watermarks;
5. produce M more, start a NEW consumer of the same group: it resumes exactly at the committed
   offsets and reads exactly the M new records.

The broker keeps Kafka's `group.initial.rebalance.delay.ms` = 3000: the two members join within
that window, so the first generation already holds both and no rebalance re-delivers anything.
A broker restart between commit and resume is not exercised here (compat keeps its broker, or its
cluster, up for all suites); the Rust end-to-end tests cover it. In cluster mode
(SLUICE_COMPAT_BROKERS=N) the group coordinator is whichever node leads the group's
__consumer_offsets partition, so FindCoordinator routing and the commit path across nodes are
exercised too.

`test_confluent_admin_groups` covers the AdminClient side: list_consumer_groups (with state
filters), describe_consumer_groups (members, client id, host, assignment), list_consumer_group_offsets
and delete_consumer_groups (NON_EMPTY_GROUP while members are in, success once they left,
GROUP_ID_NOT_FOUND for an unknown group).
"""

import threading
import time
import uuid
from collections import defaultdict

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.structs import OffsetAndMetadata

from conftest import confluent_create_topic, unique_topic, wait_until
from test_confluent import make_producer, produce_all

TIMEOUT = 45.0  # seconds to consume everything (includes the broker's 3 s initial rebalance delay)
PARTITIONS = 4
KEYS = 16
N = 160  # records in the first round (10 per key)
M = 48  # records in the second round (3 per key)


def _keyed_records(first_seq: int, count: int):
    """count records over KEYS keys; value = per-key sequence number (continuing from first_seq)."""
    per_key = count // KEYS
    out = []
    for s in range(first_seq, first_seq + per_key):
        for k in range(KEYS):
            out.append((f"key-{k:02d}".encode(), str(s).encode()))
    return out


def _produce_confluent(bootstrap, topic, records):
    produce_all(make_producer(bootstrap), topic, [{"key": k, "value": v} for k, v in records])


def _produce_kafka_python(bootstrap, topic, records):
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, api_version_auto_timeout_ms=10000)
    try:
        futures = [p.send(topic, key=k, value=v) for k, v in records]
        p.flush(timeout=TIMEOUT)
        for f in futures:
            f.get(timeout=TIMEOUT)
    finally:
        p.close(timeout=10)


def _check_union(records, members):
    """records: the produced (key, value) list. members: per member, the (partition, offset, key, value)
    list in consumption order. Union must be exactly the records; per key in order; one member per key."""
    everything = [r for m in members for r in m]
    positions = [(p, o) for p, o, _, _ in everything]
    dups = sorted({x for x in positions if positions.count(x) > 1})
    assert not dups, f"records consumed more than once (partition, offset): {dups[:10]}"
    assert sorted((k, v) for _, _, k, v in everything) == sorted(records), (
        f"union of the members ({len(everything)} records) is not exactly the {len(records)} produced"
    )
    readers = defaultdict(set)
    seqs = defaultdict(list)
    partition_of = defaultdict(set)
    for i, m in enumerate(members):
        for p, _, k, v in m:
            readers[k].add(i)
            seqs[k].append(int(v))
            partition_of[k].add(p)
    for k in seqs:
        assert len(partition_of[k]) == 1, f"key {k!r} found in partitions {partition_of[k]}"
        assert len(readers[k]) == 1, f"key {k!r} read by several members {readers[k]} (membership not stable)"
        assert seqs[k] == sorted(seqs[k]), f"key {k!r} out of order: {seqs[k]}"


def _check_shares(assignments):
    """assignments: per member, the list of assignments it received (each a sorted partition list)."""
    for i, a in enumerate(assignments):
        assert len(a) == 1, f"member {i} was assigned {len(a)} times {a}: membership was not stable"
    shares = [set(a[0]) for a in assignments]
    assert all(shares), f"a member got no partition: {shares}"
    assert not (shares[0] & shares[1]), f"overlapping assignments {shares}"
    assert shares[0] | shares[1] == set(range(PARTITIONS)), f"assignments {shares} do not cover the topic"


def _watermarks(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"compat-wm-{uuid.uuid4().hex[:8]}"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    finally:
        c.close()


def _confluent_committed(bootstrap, group, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})  # never subscribes: no join
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


# --------------------------------------------------------------------------- confluent-kafka


class _ConfluentMember(threading.Thread):
    def __init__(self, conf, topic, stop):
        super().__init__(daemon=True)
        self.conf, self.topic, self.stop = conf, topic, stop
        self.records, self.assignments, self.revocations, self.errors = [], [], [], []
        self.commits = 0

    def run(self):
        try:
            c = Consumer(self.conf)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(e)
            return
        try:
            c.subscribe(
                [self.topic],
                on_assign=lambda _c, parts: self.assignments.append(sorted(p.partition for p in parts)),
                on_revoke=self._on_revoke,
            )
            while not self.stop.is_set():
                batch = {}
                for msg in c.consume(num_messages=50, timeout=0.3):
                    if msg.error():
                        if msg.error().code() != KafkaError._PARTITION_EOF:
                            self.errors.append(msg.error())
                        continue
                    self.records.append((msg.partition(), msg.offset(), msg.key(), msg.value()))
                    batch[msg.partition()] = msg.offset() + 1
                if batch:  # commit after processing
                    c.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in batch.items()], asynchronous=False)
                    self.commits += 1
        except Exception as e:  # noqa: BLE001
            self.errors.append(e)
        finally:
            c.close()  # LeaveGroup (revokes the assignment first, which is not counted)

    def _on_revoke(self, _c, parts):
        if not self.stop.is_set():
            self.revocations.append(sorted(p.partition for p in parts))


def _confluent_conf(bootstrap, group, client_id):
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": client_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "socket.timeout.ms": 10000,
    }


@pytest.mark.timeout(150)
def test_confluent_two_members_split_commit_resume(bootstrap):
    topic = unique_topic("cfk-group")
    group = f"compat-cfk-{uuid.uuid4().hex[:8]}"
    confluent_create_topic(bootstrap, topic, partitions=PARTITIONS)
    first = _keyed_records(0, N)
    _produce_confluent(bootstrap, topic, first)

    stop = threading.Event()
    members = [_ConfluentMember(_confluent_conf(bootstrap, group, f"cfk-{i}"), topic, stop) for i in range(2)]
    for m in members:
        m.start()
    try:
        wait_until(
            lambda: sum(len(m.records) for m in members) >= N or any(m.errors for m in members),
            TIMEOUT,
            what=f"{N} records over two members",
        )
        time.sleep(1.0)  # anything consumed twice would show up now
    finally:
        stop.set()
        for m in members:
            m.join(20)
    assert not any(m.is_alive() for m in members), "a consumer did not close within 20 s"
    assert not [e for m in members for e in m.errors], [e for m in members for e in m.errors]
    _check_shares([m.assignments for m in members])
    assert not [m.revocations for m in members if m.revocations], "a member had partitions revoked mid-test"
    _check_union(first, [m.records for m in members])

    # after close: committed offsets = high watermarks
    hwm = _watermarks(bootstrap, topic)
    assert sum(hwm.values()) == N
    assert _confluent_committed(bootstrap, group, topic) == hwm

    # a NEW member resumes exactly after the committed offsets
    second = _keyed_records(N // KEYS, M)
    _produce_confluent(bootstrap, topic, second)
    stop2 = threading.Event()
    late = _ConfluentMember(_confluent_conf(bootstrap, group, "cfk-late"), topic, stop2)
    late.start()
    try:
        wait_until(lambda: len(late.records) >= M or late.errors, TIMEOUT, what=f"{M} more records")
        time.sleep(1.5)
    finally:
        stop2.set()
        late.join(20)
    assert not late.is_alive() and not late.errors, late.errors
    assert late.assignments == [list(range(PARTITIONS))]
    _check_union(second, [late.records])
    first_offsets = {}
    for p, o, _, _ in late.records:
        first_offsets.setdefault(p, o)
    assert first_offsets == {p: o for p, o in hwm.items() if p in first_offsets}, (first_offsets, hwm)
    assert _confluent_committed(bootstrap, group, topic) == _watermarks(bootstrap, topic)


# --------------------------------------------------------------------------- kafka-python


class _KpListener(ConsumerRebalanceListener):
    def __init__(self, member):
        self.member = member

    def on_partitions_assigned(self, assigned):
        self.member.assignments.append(sorted(tp.partition for tp in assigned))

    def on_partitions_revoked(self, revoked):
        if revoked and not self.member.stop.is_set():
            self.member.revocations.append(sorted(tp.partition for tp in revoked))


class _KpMember(threading.Thread):
    def __init__(self, bootstrap, group, topic, client_id, stop):
        super().__init__(daemon=True)
        self.bootstrap, self.group, self.topic, self.client_id, self.stop = bootstrap, group, topic, client_id, stop
        self.records, self.assignments, self.revocations, self.errors = [], [], [], []

    def run(self):
        try:
            c = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=self.group,
                client_id=self.client_id,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                session_timeout_ms=10000,
                heartbeat_interval_ms=1000,
                api_version_auto_timeout_ms=10000,
                request_timeout_ms=30000,
            )
        except Exception as e:  # noqa: BLE001
            self.errors.append(e)
            return
        try:
            c.subscribe([self.topic], listener=_KpListener(self))
            while not self.stop.is_set():
                batch = {}
                for tp, recs in c.poll(timeout_ms=300).items():
                    for r in recs:
                        self.records.append((r.partition, r.offset, r.key, r.value))
                        batch[tp] = OffsetAndMetadata(r.offset + 1, "")
                if batch:  # commit after processing (OffsetCommit v2)
                    c.commit(batch)
        except Exception as e:  # noqa: BLE001
            self.errors.append(e)
        finally:
            c.close()  # LeaveGroup


@pytest.mark.timeout(150)
def test_kafka_python_two_members_split_commit_resume(bootstrap):
    topic = unique_topic("kp-group")
    group = f"compat-kp-{uuid.uuid4().hex[:8]}"
    confluent_create_topic(bootstrap, topic, partitions=PARTITIONS)
    first = _keyed_records(0, N)
    _produce_kafka_python(bootstrap, topic, first)

    stop = threading.Event()
    members = [_KpMember(bootstrap, group, topic, f"kp-{i}", stop) for i in range(2)]
    for m in members:
        m.start()
    try:
        wait_until(
            lambda: sum(len(m.records) for m in members) >= N or any(m.errors for m in members),
            TIMEOUT,
            what=f"{N} records over two members",
        )
        time.sleep(1.0)
    finally:
        stop.set()
        for m in members:
            m.join(20)
    assert not any(m.is_alive() for m in members), "a consumer did not close within 20 s"
    assert not [e for m in members for e in m.errors], [e for m in members for e in m.errors]
    _check_shares([m.assignments for m in members])
    assert not [m.revocations for m in members if m.revocations], "a member had partitions revoked mid-test"
    _check_union(first, [m.records for m in members])

    hwm = _watermarks(bootstrap, topic)
    assert sum(hwm.values()) == N
    # committed offsets read back through kafka-python's own OffsetFetch v1
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, api_version_auto_timeout_ms=10000)
    try:
        assert {p: probe.committed(KpTopicPartition(topic, p)) for p in range(PARTITIONS)} == hwm
    finally:
        probe.close()
    assert _confluent_committed(bootstrap, group, topic) == hwm  # and through librdkafka's

    second = _keyed_records(N // KEYS, M)
    _produce_kafka_python(bootstrap, topic, second)
    stop2 = threading.Event()
    late = _KpMember(bootstrap, group, topic, "kp-late", stop2)
    late.start()
    try:
        wait_until(lambda: len(late.records) >= M or late.errors, TIMEOUT, what=f"{M} more records")
        time.sleep(1.5)
    finally:
        stop2.set()
        late.join(20)
    assert not late.is_alive() and not late.errors, late.errors
    assert late.assignments == [list(range(PARTITIONS))]
    _check_union(second, [late.records])
    first_offsets = {}
    for p, o, _, _ in late.records:
        first_offsets.setdefault(p, o)
    assert first_offsets == {p: o for p, o in hwm.items() if p in first_offsets}, (first_offsets, hwm)
    assert _confluent_committed(bootstrap, group, topic) == _watermarks(bootstrap, topic)


# --------------------------------------------------------------------------- AdminClient


def _error_code(future, timeout=15):
    try:
        future.result(timeout=timeout)
    except KafkaException as e:
        return e.args[0].code()
    return None


def _listed(admin, group, **kwargs):
    res = admin.list_consumer_groups(request_timeout=10, **kwargs).result(timeout=15)
    assert not res.errors, res.errors
    return {g.group_id: g for g in res.valid}.get(group)


def _describe(admin, group):
    return admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)


@pytest.mark.timeout(120)
def test_confluent_admin_groups(bootstrap):
    topic = unique_topic("cfk-admin-group")
    group = f"compat-admin-{uuid.uuid4().hex[:8]}"
    admin = confluent_create_topic(bootstrap, topic, partitions=PARTITIONS)
    records = _keyed_records(0, 32)
    _produce_confluent(bootstrap, topic, records)
    hwm = _watermarks(bootstrap, topic)

    stop = threading.Event()
    members = [_ConfluentMember(_confluent_conf(bootstrap, group, f"admin-member-{i}"), topic, stop) for i in range(2)]
    for m in members:
        m.start()
    try:
        wait_until(lambda: sum(len(m.records) for m in members) >= len(records) or any(m.errors for m in members), TIMEOUT, what="all records")
        assert not [e for m in members for e in m.errors]
        wait_until(lambda: all(m.assignments for m in members), 10, what="both members assigned")

        # list: the group is there, Stable; the state filter works both ways
        listing = _listed(admin, group)
        assert listing is not None, "group not listed"
        assert listing.state == ConsumerGroupState.STABLE and not listing.is_simple_consumer_group, listing
        assert _listed(admin, group, states={ConsumerGroupState.STABLE}) is not None
        assert _listed(admin, group, states={ConsumerGroupState.EMPTY}) is None

        # describe: two members with their client ids, hosts and disjoint, covering assignments
        desc = _describe(admin, group)
        assert desc.group_id == group and desc.state == ConsumerGroupState.STABLE, desc
        assert not desc.is_simple_consumer_group
        assert desc.partition_assignor in ("range", "roundrobin"), desc.partition_assignor
        assert desc.coordinator is not None and desc.coordinator.id >= 0
        assert sorted(mem.client_id for mem in desc.members) == ["admin-member-0", "admin-member-1"], desc.members
        shares = {}
        for mem in desc.members:
            assert mem.member_id.startswith(mem.client_id + "-"), mem.member_id  # KIP-394 <client_id>-<uuid>
            assert "127.0.0.1" in mem.host, mem.host
            parts = {tp.partition for tp in mem.assignment.topic_partitions if tp.topic == topic}
            assert len(parts) == len(mem.assignment.topic_partitions)
            shares[mem.client_id] = parts
        assert all(shares.values()) and set().union(*shares.values()) == set(range(PARTITIONS)), shares
        assert sum(len(s) for s in shares.values()) == PARTITIONS, shares
        by_member = {f"admin-member-{i}": set(m.assignments[-1]) for i, m in enumerate(members)}
        assert shares == by_member

        # committed offsets (all partitions, and an explicit list)
        def offsets(req):
            res = admin.list_consumer_group_offsets([req], request_timeout=10)[group].result(timeout=15)
            assert res.group_id == group
            return {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic}

        wait_until(lambda: offsets(ConsumerGroupTopicPartitions(group)) == hwm, 10, what=f"committed offsets {hwm}")
        assert offsets(ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 1), TopicPartition(topic, 3)])) == {
            1: hwm[1],
            3: hwm[3],
        }

        # delete refuses a group with members
        fs = admin.delete_consumer_groups([group], request_timeout=10)
        assert _error_code(fs[group]) == KafkaError.NON_EMPTY_GROUP
    finally:
        stop.set()
        for m in members:
            m.join(20)
    assert not any(m.is_alive() for m in members)

    # both left (LeaveGroup on close): Empty, offsets kept
    wait_until(lambda: _describe(admin, group).state == ConsumerGroupState.EMPTY, 15, what="group Empty")
    desc = _describe(admin, group)
    assert desc.members == [], desc.members
    assert _listed(admin, group, states={ConsumerGroupState.EMPTY}) is not None
    assert _listed(admin, group, states={ConsumerGroupState.STABLE}) is None
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=10)[group].result(timeout=15)
    assert {tp.partition: tp.offset for tp in res.topic_partitions} == hwm

    # delete succeeds now; the group and its offsets are gone
    fs = admin.delete_consumer_groups([group], request_timeout=10)
    assert fs[group].result(timeout=15) is None
    assert _listed(admin, group) is None
    res = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])], request_timeout=10
    )[group].result(timeout=15)
    assert all(tp.offset < 0 for tp in res.topic_partitions), res.topic_partitions

    # unknown group (and a second delete of the same one)
    unknown = f"compat-no-such-group-{uuid.uuid4().hex[:8]}"
    fs = admin.delete_consumer_groups([unknown, group], request_timeout=10)
    assert _error_code(fs[unknown]) == KafkaError.GROUP_ID_NOT_FOUND
    assert _error_code(fs[group]) == KafkaError.GROUP_ID_NOT_FOUND
