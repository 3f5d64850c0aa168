"""A 3-node cluster of real `sluice serve` processes for the course suite, started with the
course's own command, `sluice dev --brokers 3`, and driven the way the course drives it: SIGKILL
a node, restart it with the command `sluice dev` printed for it, SIGSTOP/SIGCONT it.

The suite owns this cluster (it kills its nodes), so it never shares the one compat/run.sh starts
for the other suites. Node logs and data live under $SLUICE_COMPAT_WORK/course-*, which run.sh
keeps when anything failed.
"""

import os
import random
import shlex
import signal
import socket
import subprocess
import tempfile
import time

from confluent_kafka.admin import AdminClient

NODES = 3

# Kafka's configs that bound how fast the cluster reacts, shortened as the fault suite does (and
# with room for 2 cores running three brokers, the clients and a build): a dead broker is fenced
# after broker.session.timeout.ms without a heartbeat, a follower that stops fetching leaves the
# ISR after replica.lag.time.max.ms.
SETTINGS = {
    "broker.session.timeout.ms": "6000",
    "broker.heartbeat.interval.ms": "1000",
    "replica.lag.time.max.ms": "6000",
}

START_TIMEOUT = 120.0


def _running(pid: int) -> bool:
    """The pid runs (a zombie, a killed node `sluice dev` has not reaped, does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _free_port_bases(n: int):
    """Two bases P and Q with P..P+n-1 and Q..Q+n-1 free on 127.0.0.1 (below the ephemeral range,
    so client connections do not take them meanwhile)."""
    for _ in range(200):
        p = random.randrange(20000, 32000 - 2 * n, 2 * n)
        held = []
        try:
            for port in range(p, p + 2 * n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return p, p + n
    raise RuntimeError("no 2N consecutive free ports found in 200 tries")


class Node:
    def __init__(self, node_id, pid, address, log, restart_cmd):
        self.node_id = node_id
        self.pid = pid
        self.address = address
        self.log = log
        self.restart_cmd = restart_cmd
        self.process = None  # a restarted node: our own child
        self.paused = False

    def running(self) -> bool:
        return _running(self.pid)

    def listening_lines(self) -> int:
        try:
            with open(self.log, errors="replace") as f:
                return sum(1 for line in f if line.startswith("listening on "))
        except FileNotFoundError:
            return 0


class Cluster:
    def __init__(self, binary: str):
        self.binary = binary
        base = os.environ.get("SLUICE_COMPAT_WORK") or None
        self.dir = tempfile.mkdtemp(prefix="course-", dir=base)
        self.dev = None
        self.nodes = {}
        self.bootstrap = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self):
        last = ""
        for attempt in range(3):
            port, cport = _free_port_bases(NODES)
            data = os.path.join(self.dir, f"data-{attempt}")
            out_path = os.path.join(self.dir, f"dev-{attempt}.out")
            cmd = [self.binary, "dev", "--brokers", str(NODES), "--port", str(port),
                   "--controller-port", str(cport), "--data-dir", data]
            for key, value in SETTINGS.items():
                cmd += ["--set", f"{key}={value}"]
            with open(out_path, "w") as out:
                self.dev = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self.dev.poll() is None:
                with open(out_path) as f:
                    text = f.read()
                if "Ctrl-C stops every node" in text:
                    self._parse(text)
                    self.wait_healthy()
                    return self
                time.sleep(0.1)
            with open(out_path) as f:
                last = f.read()[-2000:]
            self._stop_dev()
        raise RuntimeError(f"sluice dev did not start its {NODES} nodes in 3 attempts; last output:\n{last}")

    def _parse(self, text: str):
        restart = {}
        for line in text.splitlines():
            words = line.split()
            if line.startswith("bootstrap "):
                self.bootstrap = words[1]
            elif line.startswith("node ") and words[2] == "pid":
                node_id = int(words[1])
                log = words[words.index("log") + 1]
                self.nodes[node_id] = Node(node_id, int(words[3]), words[5], log, None)
            elif line.startswith("restart node "):
                node_id = int(words[2])
                restart[node_id] = shlex.split(line.split(" with: ", 1)[1])
        assert len(self.nodes) == NODES and set(restart) == set(self.nodes), text
        for node_id, cmd in restart.items():
            self.nodes[node_id].restart_cmd = cmd

    def _stop_dev(self):
        if self.dev is not None and self.dev.poll() is None:
            self.dev.terminate()
            try:
                self.dev.wait(60)
            except subprocess.TimeoutExpired:
                self.dev.kill()
                self.dev.wait()

    def stop(self):
        for node in self.nodes.values():
            if node.paused:
                self.resume(node.node_id)
        self._stop_dev()  # SIGTERM to the nodes it started (a controlled shutdown each)
        for node in self.nodes.values():
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes.values():
            if node.process is not None:
                try:
                    node.process.wait(60)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()
            if node.running():
                os.kill(node.pid, signal.SIGKILL)

    # ------------------------------------------------------------------ faults

    def kill(self, node_id: int):
        """SIGKILL, and wait until the process is gone."""
        node = self.nodes[node_id]
        os.kill(node.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while node.running():
            assert time.monotonic() < deadline, f"node {node_id} (pid {node.pid}) survived SIGKILL"
            time.sleep(0.05)
        if node.process is not None:
            node.process.wait()

    def restart(self, node_id: int):
        """Start the node again with the command `sluice dev` printed; wait until it listens."""
        node = self.nodes[node_id]
        assert not node.running(), f"node {node_id} still runs"
        before = node.listening_lines()
        with open(node.log, "a") as log:
            node.process = subprocess.Popen(node.restart_cmd, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
        node.pid = node.process.pid
        deadline = time.monotonic() + START_TIMEOUT
        while node.listening_lines() <= before:
            assert node.process.poll() is None, f"node {node_id} exited while restarting; see {node.log}"
            assert time.monotonic() < deadline, f"node {node_id} did not listen within {START_TIMEOUT}s"
            time.sleep(0.1)

    def pause(self, node_id: int):
        os.kill(self.nodes[node_id].pid, signal.SIGSTOP)
        self.nodes[node_id].paused = True

    def resume(self, node_id: int):
        os.kill(self.nodes[node_id].pid, signal.SIGCONT)
        self.nodes[node_id].paused = False

    # ------------------------------------------------------------------ what metadata says

    def live_addresses(self):
        return [n.address for n in self.nodes.values() if n.running() and not n.paused]

    def partitions(self, topic: str, address: str = None):
        """{partition: (leader, replicas, isr)} as one broker's own metadata image shows it (a
        fresh client with that broker as its only bootstrap asks it first), or None."""
        admin = AdminClient({"bootstrap.servers": address or ",".join(self.live_addresses()),
                             "socket.timeout.ms": 5000})
        try:
            md = admin.list_topics(topic=topic, timeout=5)
        except Exception:
            return None
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return None
        return {p.id: (p.leader, sorted(p.replicas), sorted(p.isrs)) for p in t.partitions.values()}

    def brokers(self, address: str):
        admin = AdminClient({"bootstrap.servers": address, "socket.timeout.ms": 5000})
        try:
            return sorted(admin.list_topics(timeout=5).brokers)
        except Exception:
            return None

    def everywhere(self, check) -> bool:
        """check(address) holds on every live node."""
        return all(check(address) for address in self.live_addresses())

    def wait_healthy(self, timeout: float = 120.0):
        """Every node runs, every node's metadata lists all of them as brokers, and no partition
        of the internal topics is under-replicated (a restarted node has caught up)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if all(n.running() and not n.paused for n in self.nodes.values()):
                views = {a: self.brokers(a) for a in self.live_addresses()}
                last = views
                if all(v == sorted(self.nodes) for v in views.values()) and self._internal_in_sync():
                    return
            time.sleep(0.5)
        raise AssertionError(f"cluster not healthy within {timeout}s: brokers per node {last}")

    def _internal_in_sync(self) -> bool:
        for topic in ("__consumer_offsets", "__transaction_state"):
            parts = self.partitions(topic)
            if parts is None:
                continue  # not created yet
            if any(leader < 0 or isr != replicas for leader, replicas, isr in parts.values()):
                return False
        return True
