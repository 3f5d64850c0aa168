"""kcat -G (balanced KafkaConsumer mode of Debian's kcat 1.7.1 / librdkafka 2.0.2) against the group
coordinator. Part of the groups-kcat suite (compat/run.sh).

kcat -G facts these tests rely on (checked against kcat 1.7.1):
- `-o beginning` in -G mode sets auto.offset.reset for partitions without a committed offset;
  without it kcat starts at the end (latest), so a resuming consumer is run *without* `-o`;
- `-e` works in -G mode: kcat exits once every partition assigned to it reached its end;
- `-c N` exits after N messages;
- kcat keeps librdkafka's enable.auto.commit=true: offsets are committed in the background and on
  close (LeaveGroup), so the committed offsets are checked after kcat exits;
- stderr carries `% Group G rebalanced (memberid ...): assigned: T [0], T [1]` lines.
Every kcat run is bounded by a subprocess timeout.
"""

import re
import shutil
import subprocess
import uuid
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import confluent_create_topic, unique_topic
from test_kcat import KCAT, kcat, produce

TIMEOUT = 30.0
FMT = "%k:%s:%p:%o\\n"
PARTITIONS = 4
KEYS = 12


def _records(first_seq, rounds):
    return [f"key-{k:02d}:{s}" for s in range(first_seq, first_seq + rounds) for k in range(KEYS)]


def _parse(lines):
    """kcat lines key:value:partition:offset -> list of (key, seq, partition, offset)."""
    out = []
    for line in lines:
        k, v, p, o = line.rsplit(":", 3)
        out.append((k, int(v), int(p), int(o)))
    return out


def _check_exact(produced, consumed_lists):
    everything = [r for c in consumed_lists for r in c]
    positions = [(p, o) for _, _, p, o in everything]
    assert len(set(positions)) == len(positions), f"duplicates: {sorted(positions)}"
    assert sorted(f"{k}:{v}" for k, v, _, _ in everything) == sorted(produced)
    for consumed in consumed_lists:
        seqs = defaultdict(list)
        for k, v, _, _ in consumed:
            seqs[k].append(v)
        for k, s in seqs.items():
            assert s == sorted(s), f"key {k} out of order: {s}"


def _watermarks_and_committed(bootstrap, topic, group):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        hwm = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
        committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)}
        return hwm, committed
    finally:
        c.close()


def _assigned(stderr):
    """Partitions of each `assigned:` line kcat printed, in order."""
    return [sorted(int(p) for p in re.findall(r"\[(\d+)\]", m)) for m in re.findall(r"assigned: (.*)", stderr)]


def test_kcat_balanced_consumer_reads_all_commits_and_resumes(bootstrap):
    topic = unique_topic("kcat-group")
    group = f"compat-kcat-{uuid.uuid4().hex[:8]}"
    confluent_create_topic(bootstrap, topic, partitions=PARTITIONS)
    first = _records(0, 5)
    produce(bootstrap, topic, first)

    res = kcat("-b", bootstrap, "-G", group, topic, "-o", "beginning", "-e", "-f", FMT, timeout=TIMEOUT)
    consumed = _parse(res.stdout.splitlines())
    _check_exact(first, [consumed])
    assert _assigned(res.stderr) == [list(range(PARTITIONS))], res.stderr

    hwm, committed = _watermarks_and_committed(bootstrap, topic, group)
    assert sum(hwm.values()) == len(first)
    assert committed == hwm, "kcat's auto-commit on close did not commit the end offsets"

    # resume: no -o (kcat would otherwise start at the end), -c the number of new records
    second = _records(5, 2)
    produce(bootstrap, topic, second)
    res = kcat("-b", bootstrap, "-G", group, topic, "-c", str(len(second)), "-f", FMT, timeout=TIMEOUT)
    resumed = _parse(res.stdout.splitlines())
    _check_exact(second, [resumed])
    first_offsets = {}
    for _, _, p, o in resumed:
        first_offsets.setdefault(p, o)
    assert first_offsets == {p: hwm[p] for p in first_offsets}, (first_offsets, hwm)
    hwm2, committed2 = _watermarks_and_committed(bootstrap, topic, group)
    assert committed2 == hwm2


def test_kcat_two_balanced_consumers_split_the_topic(bootstrap):
    topic = unique_topic("kcat-group2")
    group = f"compat-kcat2-{uuid.uuid4().hex[:8]}"
    confluent_create_topic(bootstrap, topic, partitions=PARTITIONS)
    records = _records(0, 6)
    produce(bootstrap, topic, records)

    path = shutil.which(KCAT)
    if path is None:
        pytest.fail(f"{KCAT} not found on PATH", pytrace=False)
    cmd = [path, "-b", bootstrap, "-G", group, topic, "-o", "beginning", "-e", "-f", FMT]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT)
            outs.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for rc, out, err in outs:
        assert rc == 0, f"kcat exited {rc}\nstdout: {out}\nstderr: {err}"
    # both members were in the first generation (the broker's 3 s initial rebalance delay) and got a share
    firsts = [_assigned(err)[0] for _, _, err in outs]
    assert all(firsts), firsts
    assert sorted(firsts[0] + firsts[1]) == list(range(PARTITIONS)), firsts
    _check_exact(records, [_parse(out.splitlines()) for _, out, _ in outs])
    hwm, committed = _watermarks_and_committed(bootstrap, topic, group)
    assert committed == hwm
