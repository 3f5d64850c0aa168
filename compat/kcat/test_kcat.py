"""kcat (Debian's kcat, built on its own librdkafka — 2.0.2 in bookworm) driven as a subprocess.

librdkafka before 2.11.1 turns compression off *silently* unless the broker advertises Produce v0
(KAFKA-18659); these tests catch that through the client's log line. Topics with several
partitions are created with confluent-kafka's AdminClient (kcat cannot create topics); the
auto-create test lets kcat's producer create its topic.
"""

import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import BROKERS, REPLICATION_FACTOR, confluent_create_topic, unique_topic, wait_until

TIMEOUT = 20.0
KCAT = os.environ.get("KCAT", "kcat")
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
FMT = "%k:%s:%p:%o\\n"


def kcat(*args, stdin=None, timeout=TIMEOUT, check=True):
    path = shutil.which(KCAT)
    if path is None:
        pytest.fail(f"{KCAT} not found on PATH (run.sh installs Debian's kcat)", pytrace=False)
    cmd = [path, *args]
    try:
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"kcat timed out after {timeout}s: {cmd}\nstdout: {e.stdout}\nstderr: {e.stderr}", pytrace=False)
    if check and res.returncode != 0:
        pytest.fail(f"kcat exited {res.returncode}: {cmd}\nstdout: {res.stdout}\nstderr: {res.stderr}", pytrace=False)
    return res


def assert_no_client_trouble(stderr: str):
    """Warnings librdkafka prints when it silently degrades against a broker."""
    lowered = stderr.lower()
    for needle in ("does not support compression", "not compressing"):
        assert needle not in lowered, f"kcat reported {needle!r}:\n{stderr}"


def produce(bootstrap, topic, lines, *extra, partition=None):
    args = ["-b", bootstrap, "-t", topic, "-P", "-K:", "-X", "acks=all"]
    if partition is not None:
        args += ["-p", str(partition)]
    res = kcat(*args, *extra, stdin="".join(line + "\n" for line in lines))
    assert_no_client_trouble(res.stderr)
    return res


def consume(bootstrap, topic, *extra, fmt=FMT, offset="beginning"):
    res = kcat("-b", bootstrap, "-t", topic, "-C", "-e", "-q", "-o", offset, "-f", fmt, *extra)
    return res.stdout.splitlines()


# --------------------------------------------------------------------------- metadata


def test_list_metadata(bootstrap):
    topic = unique_topic("kcat-md")
    confluent_create_topic(bootstrap, topic, partitions=3)
    res = kcat("-b", bootstrap, "-L")
    assert f" {BROKERS} brokers:" in res.stdout, res.stdout
    assert f'topic "{topic}" with 3 partitions' in res.stdout, res.stdout

    md = json.loads(kcat("-b", bootstrap, "-L", "-J", "-t", topic).stdout)
    broker_ids = {b["id"] for b in md["brokers"]}
    assert md["controllerid"] in broker_ids, md
    assert {b["name"] for b in md["brokers"]} == set(bootstrap.split(",")), md  # every node, nothing else
    [t] = md["topics"]
    assert t["topic"] == topic and "error" not in t
    parts = sorted(t["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    for p in parts:
        assert p["leader"] in broker_ids
        assert p["leader"] in {r["id"] for r in p["replicas"]}
        assert p["leader"] in {r["id"] for r in p["isrs"]}
        assert len(p["replicas"]) == REPLICATION_FACTOR and {r["id"] for r in p["replicas"]} <= broker_ids, p
        assert {r["id"] for r in p["isrs"]} == {r["id"] for r in p["replicas"]}, p


# --------------------------------------------------------------------------- produce / consume


@pytest.mark.parametrize("codec", CODECS)
def test_produce_with_codec_and_consume(bootstrap, codec):
    """-P -z CODEC -K: into two partitions, then -C -e -o beginning reads back exactly
    key:value:partition:offset for every record."""
    topic = unique_topic(f"kcat-{codec}")
    confluent_create_topic(bootstrap, topic, partitions=2)
    expected = set()
    for p in range(2):
        lines = [f"key{p}-{i}:" + f"value-{codec}-{p}-{i}-" * 10 for i in range(30)]
        produce(bootstrap, topic, lines, "-z", codec, partition=p)
        for i, line in enumerate(lines):
            k, v = line.split(":", 1)
            expected.add(f"{k}:{v}:{p}:{i}")
    got = consume(bootstrap, topic)
    assert len(got) == len(expected), f"got {len(got)} lines, expected {len(expected)}"
    assert set(got) == expected
    # within each partition offsets come back in order
    for p in range(2):
        offs = [int(line.rsplit(":", 1)[1]) for line in got if line.split(":")[2] == str(p)]
        assert offs == list(range(30))


def test_headers_and_empty_key(bootstrap):
    topic = unique_topic("kcat-headers")
    confluent_create_topic(bootstrap, topic, partitions=1)
    produce(bootstrap, topic, ["k1:v1", ":no-key", "k3:"], "-H", "trace=abc", "-H", "empty=", partition=0)
    got = consume(bootstrap, topic, fmt="%k|%s|%h|%o\\n")
    assert got == [
        "k1|v1|trace=abc,empty=|0",
        "|no-key|trace=abc,empty=|1",
        "k3||trace=abc,empty=|2",
    ]


def test_consume_from_offset_and_relative(bootstrap):
    """-o N starts inside a batch (the broker returns the whole batch, librdkafka drops the records
    before N); -o -N counts back from the end (ListOffsets)."""
    topic = unique_topic("kcat-offsets")
    confluent_create_topic(bootstrap, topic, partitions=1)
    produce(bootstrap, topic, [f"k{i}:v{i}" for i in range(10)], partition=0)
    assert consume(bootstrap, topic, "-p", "0", offset="7") == [f"k{i}:v{i}:0:{i}" for i in range(7, 10)]
    assert consume(bootstrap, topic, "-p", "0", offset="-2") == [f"k{i}:v{i}:0:{i}" for i in range(8, 10)]
    assert consume(bootstrap, topic, "-p", "0", offset="end") == []
    # -c limits the count
    assert consume(bootstrap, topic, "-p", "0", "-c", "3") == [f"k{i}:v{i}:0:{i}" for i in range(3)]


def test_query_offset_by_timestamp(bootstrap):
    """kcat -Q topic:partition:timestamp (ListOffsets by time)."""
    topic = unique_topic("kcat-query")
    confluent_create_topic(bootstrap, topic, partitions=1)
    produce(bootstrap, topic, ["a:1", "b:2"], partition=0)
    time.sleep(0.05)
    mid = int(time.time() * 1000)
    time.sleep(0.05)
    produce(bootstrap, topic, ["c:3"], partition=0)

    def query(ts):
        res = kcat("-b", bootstrap, "-Q", "-t", f"{topic}:0:{ts}")
        m = re.search(r"\[0\]\s+offset\s+(-?\d+)", res.stdout)
        assert m, f"unexpected -Q output: {res.stdout!r} {res.stderr!r}"
        return int(m.group(1))

    assert query(0) == 0
    assert query(mid) == 2
    assert query(int(time.time() * 1000) + 3_600_000) == -1


def test_auto_create_on_produce(bootstrap):
    """kcat -P to a topic that does not exist: librdkafka's producer asks for auto-creation."""
    topic = unique_topic("kcat-auto")
    produce(bootstrap, topic, ["a:alpha", "b:beta"])
    md = json.loads(kcat("-b", bootstrap, "-L", "-J", "-t", topic).stdout)
    [t] = md["topics"]
    assert "error" not in t and len(t["partitions"]) >= 1, md
    got = consume(bootstrap, topic, fmt="%k:%s\\n")
    assert sorted(got) == ["a:alpha", "b:beta"]


def test_consume_unknown_topic_does_not_create_it(bootstrap):
    """librdkafka consumers send allow_auto_topic_creation=false (their default): consuming a
    missing topic must fail rather than create it."""
    topic = unique_topic("kcat-nocreate")
    res = kcat("-b", bootstrap, "-t", topic, "-C", "-e", "-o", "beginning", check=False, timeout=TIMEOUT)
    assert res.returncode != 0 or res.stdout == "", res
    md = json.loads(kcat("-b", bootstrap, "-L", "-J").stdout)
    assert topic not in {t["topic"] for t in md["topics"]}, "consumer metadata request auto-created the topic"
