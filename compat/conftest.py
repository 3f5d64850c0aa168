"""Shared fixtures for the Python-driven compat suites (confluent-kafka, kafka-python, kcat).

Every test talks to the broker(s) named by $SLUICE_BOOTSTRAP (host:port, or host:port,host:port,...
in cluster mode), which compat/run.sh sets after starting `sluice serve` (or `sluice dev --brokers
N` when SLUICE_COMPAT_BROKERS=N > 1). A missing variable is a failure, never a skip.

Cluster facts the tests check against come from here: BROKERS (the number of broker processes
run.sh started), REPLICATION_FACTOR (what the tests create their topics with: min(3, BROKERS), the
same as `sluice dev`'s default.replication.factor), CLUSTER (BROKERS > 1; known cluster-mode bugs
are pinned with `pytest.mark.xfail(CLUSTER, strict=True, reason="... FINDINGS.md #N ...")`).
"""

import os
import time
import uuid

import pytest


def _brokers() -> int:
    value = os.environ.get("SLUICE_COMPAT_BROKERS", "1").strip() or "1"
    if not value.isdigit() or int(value) < 1:
        raise RuntimeError(f"SLUICE_COMPAT_BROKERS must be a positive integer, not {value!r}")
    return int(value)


BROKERS = _brokers()
REPLICATION_FACTOR = min(3, BROKERS)
CLUSTER = BROKERS > 1


def bootstrap_addresses(bootstrap: str):
    """[(host, port)] of every address in the bootstrap list."""
    out = []
    for address in bootstrap.split(","):
        host, port = address.strip().rsplit(":", 1)
        out.append((host, int(port)))
    return out


def _bootstrap() -> str:
    value = os.environ.get("SLUICE_BOOTSTRAP", "").strip()
    if not value:
        pytest.fail("SLUICE_BOOTSTRAP is not set; run the suites through compat/run.sh", pytrace=False)
    return value


@pytest.fixture(scope="session")
def bootstrap() -> str:
    return _bootstrap()


def unique_topic(prefix: str) -> str:
    """A fresh, valid, never-reused topic name."""
    return f"compat-{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def topic_name(request) -> str:
    # Derive a readable prefix from the test name (only legal topic characters).
    base = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in request.node.name)[:60]
    return unique_topic(base)


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll predicate() until it returns a truthy value or the timeout expires."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def confluent_create_topic(bootstrap: str, name: str, partitions: int = 1, timeout: float = 15.0):
    """Create a topic (REPLICATION_FACTOR replicas) through confluent-kafka's AdminClient and
    wait until metadata shows every partition with a leader and all its replicas in sync."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=REPLICATION_FACTOR)],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    futures[name].result(timeout=timeout)

    def ready():
        md = admin.list_topics(topic=name, timeout=5)
        t = md.topics.get(name)
        if t is None or t.error is not None or len(t.partitions) != partitions:
            return False
        return all(
            p.leader >= 0 and len(p.replicas) == REPLICATION_FACTOR and sorted(p.isrs) == sorted(p.replicas)
            for p in t.partitions.values()
        )

    wait_until(ready, timeout, what=f"topic {name} to have {partitions} partitions with leaders and full ISRs")
    return admin
