"""Shared fixtures for the Python-driven compat suites (confluent-kafka, kafka-python, kcat).

Every test talks to the broker named by $SLUICE_BOOTSTRAP (host:port), which compat/run.sh
sets after starting `sluice serve`. A missing variable is a failure, never a skip.
"""

import os
import time
import uuid

import pytest


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
    """Create a topic through confluent-kafka's AdminClient and wait until metadata shows
    every partition with a leader."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    futures[name].result(timeout=timeout)

    def ready():
        md = admin.list_topics(topic=name, timeout=5)
        t = md.topics.get(name)
        if t is None or t.error is not None or len(t.partitions) != partitions:
            return False
        return all(p.leader >= 0 for p in t.partitions.values())

    wait_until(ready, timeout, what=f"topic {name} to have {partitions} partitions with leaders")
    return admin
