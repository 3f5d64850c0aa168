#!/usr/bin/env bash
# librdkafka's own integration test suite against one `sluice serve` node, or against a
# 3-node `sluice dev` cluster.
#
#   compat/librdkafka/run.sh quick|full|cluster [NNNN...]
#
#   quick    the tests marked `quick` in tests.txt (CI: `compat/run.sh librdkafka`), in the
#            suite's quick mode (test-runner -Q), against one node
#   full     every test marked `quick` or `run` (`compat/run.sh librdkafka-full`), one node
#   cluster  the tests marked `cluster` (`compat/run.sh librdkafka-cluster`) against
#            `sluice dev --brokers 3`, plus the `noautocreate` subtests of the `quick`/`run`
#            tests (0045), which one node never runs (see "Scenarios" below)
#   NNNN     only these test numbers (they must not be excluded; on one node they must not be
#            `cluster`), e.g. to rerun a failure; `cluster NNNN` runs any such number against
#            the cluster
#
# Builds (or finds in its cache) librdkafka's test-runner with build.sh, validates tests.txt
# against the suite (every test number exactly once), starts the broker(s) ($SLUICE_BIN, default
# target/debug/sluice) on free loopback ports (never 9092) with fresh data dirs and the settings
# the suite's reference cluster has (tests/scenarios/*.json: auto.create.topics.enable=true,
# num.partitions=4, replication factor 3 on a cluster), runs each selected test number alone
# (`TESTS=NNNN test-runner -L`) under a timeout, and prints a table. Exits non-zero when a
# selected test fails, a test leaves a broker dead, or the list is out of step with the suite.
# The last line is
#   librdkafka: N run, N passed, N failed, N excluded
# (on the cluster, "run" counts test numbers per scenario: 0045 under noautocreate is one).
#
# The cluster: `sluice dev --brokers 3` (each node a broker and a metadata-quorum voter) on 3+3
# consecutive free ports, `--set` auto.create.topics.enable, num.partitions=4 and
# default.replication.factor=3 (what librdkafka's trivup cluster has; the internal topics use
# Kafka's defaults, replication factor 3, transaction.state.log.min.isr 2). Not set: broker.rack
# (trivup gives broker N `RACK<N>`): `sluice dev --set` sets one value for every node, so racks
# cannot differ per node; 0101 needs them and fetch from follower (excluded, tests.txt). The
# runner's bootstrap.servers (test.conf) is the list of all three. The cluster is stopped
# (SIGTERM to `sluice dev`, which stops its nodes; SIGKILL to any node left) on every exit.
#
# Scenarios: some tests (tests/test.c `.scenario`) run only in the suite's `noautocreate`
# scenario (auto.create.topics.enable=false); the runner skips them silently otherwise. The
# one-node modes run the default scenario only. Cluster mode reads each test's scenarios from
# test.c and runs the `default` ones on one cluster, then the `noautocreate` ones on a second,
# fresh cluster with auto.create.topics.enable=false and TEST_SCENARIO=noautocreate.
#
# Environment:
#   SLUICE_BIN                       broker binary (default: target/debug/sluice, built if absent)
#   SLUICE_LIBRDKAFKA_TEST_TIMEOUT   seconds per test number (default: 300 quick, 900 full/cluster)
#   SLUICE_LIBRDKAFKA_KEEP           1: keep the logs even when everything passed
set -euo pipefail

SUITE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SUITE_DIR/../.." && pwd)"
LIST="$SUITE_DIR/tests.txt"
# The Kafka version whose behaviour Sluice implements (docs/COMPATIBILITY.md): the suite
# switches features and expectations on it.
KAFKA_VERSION=4.0.0

log() { echo "librdkafka: $*"; }

MODE="${1:-}"
[[ "$MODE" == quick || "$MODE" == full || "$MODE" == cluster ]] || { echo "usage: $0 quick|full|cluster [NNNN...]" >&2; exit 2; }
shift
ONLY=("$@")
if [[ "$MODE" == quick ]]; then
  TEST_TIMEOUT="${SLUICE_LIBRDKAFKA_TEST_TIMEOUT:-300}"
  RUNNER_FLAGS=(-L -Q)
else
  TEST_TIMEOUT="${SLUICE_LIBRDKAFKA_TEST_TIMEOUT:-900}"
  RUNNER_FLAGS=(-L)
fi
CLUSTER_NODES=3

# ----------------------------------------------------------------------------- build
LIBRDKAFKA_DIR="$("$SUITE_DIR/build.sh" | tail -n1)"
RUNNER_DIR="$LIBRDKAFKA_DIR/tests"
[[ -x "$RUNNER_DIR/test-runner" ]] || { log "ERROR: no test-runner in $RUNNER_DIR"; exit 1; }
log "test-runner: $RUNNER_DIR/test-runner (librdkafka $(basename "$LIBRDKAFKA_DIR"))"

# ----------------------------------------------------------------------------- the list
# The suite's test numbers, from its own test table (tests/test.c: `_TEST(NNNN_name, ...)`).
mapfile -t SUITE_NUMBERS < <(grep -oE '_TEST\([0-9]{4}_' "$RUNNER_DIR/test.c" | grep -oE '[0-9]{4}' | sort -u)
# The scenarios of each number's broker tests (`.scenario = "..."`, default "default"), from the
# same table: "NNNN default noautocreate". Only `default` and `noautocreate` are kept (`ak23` is
# a cluster of Kafka 2.3.0).
declare -A SCENARIOS_OF=()
while read -r number scenarios; do
  SCENARIOS_OF[$number]="$scenarios"
done < <(python3 - "$RUNNER_DIR/test.c" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
i = src.index("struct test tests[]")
of = {}
while (j := src.find("_TEST(", i)) >= 0:
    k, depth = j + 6, 1
    while depth:
        depth += {"(": 1, ")": -1}.get(src[k], 0)
        k += 1
    body, i = src[j + 6:k - 1], k
    m = re.match(r"\s*(\d{4})_\w+\s*,\s*([^,]*)", body)
    if not m or "TEST_F_LOCAL" in m.group(2):
        continue
    s = re.search(r'\.scenario\s*=\s*"([^"]*)"', body)
    for name in (s.group(1) if s else "default").split(","):
        if name in ("default", "noautocreate"):
            of.setdefault(m.group(1), set()).add(name)
for number, names in sorted(of.items()):
    print(number, *sorted(names))
PY
)
declare -A MODE_OF=() REASON_OF=()
list_errors=0
while IFS= read -r line; do
  [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
  line="${line%%  # *}"
  read -r number mode reason <<<"$line"
  if [[ ! "$number" =~ ^[0-9]{4}$ ]]; then
    log "tests.txt: not a test number: '$number'"; list_errors=$((list_errors + 1)); continue
  fi
  if [[ -n "${MODE_OF[$number]:-}" ]]; then
    log "tests.txt: $number listed twice"; list_errors=$((list_errors + 1)); continue
  fi
  case "$mode" in
    quick | run) ;;
    excluded | cluster)
      [[ -n "${reason:-}" ]] || { log "tests.txt: $number is $mode without a reason"; list_errors=$((list_errors + 1)); } ;;
    *) log "tests.txt: $number: unknown mode '$mode'"; list_errors=$((list_errors + 1)) ;;
  esac
  if [[ "$mode" == cluster && -z "${SCENARIOS_OF[$number]:-}" ]]; then
    log "tests.txt: $number is cluster but has no broker test in the suite"; list_errors=$((list_errors + 1))
  fi
  MODE_OF[$number]="$mode"
  REASON_OF[$number]="${reason:-}"
done <"$LIST"
for number in "${SUITE_NUMBERS[@]}"; do
  [[ -n "${MODE_OF[$number]:-}" ]] || { log "tests.txt: suite test $number is missing"; list_errors=$((list_errors + 1)); }
done
for number in "${!MODE_OF[@]}"; do
  [[ " ${SUITE_NUMBERS[*]} " == *" $number "* ]] || { log "tests.txt: $number is not a test of the suite"; list_errors=$((list_errors + 1)); }
done
if ((list_errors)); then
  log "ERROR: tests.txt does not match the suite (${#SUITE_NUMBERS[@]} test numbers): $list_errors problem(s)"
  exit 1
fi

# SELECTED: "NNNN" (one node, default scenario) or "NNNN:SCENARIO" (cluster), in run order.
SELECTED=()
EXCLUDED=0
named() { ((${#ONLY[@]})) && [[ " ${ONLY[*]} " == *" $1 "* ]]; }
if [[ "$MODE" != cluster ]]; then
  for number in "${SUITE_NUMBERS[@]}"; do
    mode="${MODE_OF[$number]}"
    if ((${#ONLY[@]})); then
      named "$number" || continue
      [[ "$mode" != excluded ]] || { log "ERROR: $number is excluded: ${REASON_OF[$number]}"; exit 2; }
      [[ "$mode" != cluster ]] || { log "ERROR: $number runs on the cluster only (run.sh cluster $number): ${REASON_OF[$number]}"; exit 2; }
      SELECTED+=("$number")
    elif [[ "$mode" == excluded || "$mode" == cluster ]]; then
      # One node: a `cluster` test is excluded, for its reason (it needs several brokers).
      EXCLUDED=$((EXCLUDED + 1))
    elif [[ "$mode" == quick || "$MODE" == full ]]; then
      SELECTED+=("$number")
    fi
  done
else
  for scenario in default noautocreate; do
    for number in "${SUITE_NUMBERS[@]}"; do
      mode="${MODE_OF[$number]}"
      [[ " ${SCENARIOS_OF[$number]:-} " == *" $scenario "* ]] || continue
      if ((${#ONLY[@]})); then
        named "$number" || continue
        [[ "$mode" != excluded ]] || { log "ERROR: $number is excluded: ${REASON_OF[$number]}"; exit 2; }
        SELECTED+=("$number:$scenario")
      elif [[ "$mode" == cluster ]]; then
        SELECTED+=("$number:$scenario")
      elif [[ "$scenario" == noautocreate && ( "$mode" == quick || "$mode" == run ) ]]; then
        # Its noautocreate subtests: one node never runs them (its broker auto-creates).
        SELECTED+=("$number:$scenario")
      fi
    done
  done
  for number in "${ONLY[@]}"; do
    [[ -n "${MODE_OF[$number]:-}" ]] || { log "ERROR: $number is not a test of the suite"; exit 2; }
    [[ "${MODE_OF[$number]}" != excluded ]] || { log "ERROR: $number is excluded: ${REASON_OF[$number]}"; exit 2; }
    [[ " ${SELECTED[*]} " == *" $number:"* ]] ||
      { log "ERROR: $number has no broker test in scenario default or noautocreate"; exit 2; }
  done
  for number in "${SUITE_NUMBERS[@]}"; do
    [[ "${MODE_OF[$number]}" == excluded ]] && EXCLUDED=$((EXCLUDED + 1))
  done
fi
((${#SELECTED[@]})) || { log "ERROR: nothing selected"; exit 2; }
numbers_selected="$(printf '%s\n' "${SELECTED[@]}" | cut -d: -f1 | sort -u | wc -l)"
log "${#SUITE_NUMBERS[@]} test numbers in the suite; $MODE mode selects ${#SELECTED[@]} run(s) of $numbers_selected number(s); $EXCLUDED excluded; $((${#SUITE_NUMBERS[@]} - numbers_selected - EXCLUDED)) not selected"
[[ "$MODE" == cluster ]] && log "selected (number:scenario): ${SELECTED[*]}"

# ----------------------------------------------------------------------------- the broker(s)
if [[ -z "${SLUICE_BIN:-}" ]]; then
  SLUICE_BIN="$REPO_DIR/target/debug/sluice"
  if [[ ! -x "$SLUICE_BIN" ]]; then
    log "building sluice (cargo build -p sluice)"
    (cd "$REPO_DIR" && nice -n 19 cargo build -j 2 -p sluice)
  fi
fi
[[ -x "$SLUICE_BIN" ]] || { log "ERROR: broker binary $SLUICE_BIN not found"; exit 1; }

WORK="$(mktemp -d -t sluice-librdkafka.XXXXXX)"
BROKER_PID="" # one node: the `sluice serve`; cluster: the `sluice dev`
NODE_PIDS=()  # cluster: the nodes' pids (from sluice dev's stdout)
BOOTSTRAP=""
CLUSTER_DIR="" # cluster: this cluster's dir (dev.out, data/node-N.log)
BROKER_STARTS=0
SCENARIO=default

# A pid that is running (a zombie — a node that exited and that `sluice dev` has not reaped yet —
# does not count). As compat/run.sh.
running() { # pid
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# Stops the broker, or the cluster: SIGTERM to `sluice dev` stops its nodes (a controlled
# shutdown each, within 30 s of its own); SIGKILL after the bound, and to any node left.
stop_broker() {
  [[ -n "$BROKER_PID" ]] || return 0
  local pid="$BROKER_PID" bound=150 i node
  BROKER_PID=""
  [[ "$MODE" == cluster ]] && bound=450
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < bound; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "WARNING: pid $pid did not exit within $((bound / 10)) s of SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  for node in "${NODE_PIDS[@]}"; do
    if running "$node"; then
      log "WARNING: node pid $node still running after sluice dev exited; sending SIGKILL"
      kill -KILL "$node" 2>/dev/null || true
    fi
  done
  NODE_PIDS=()
}
# The test running (its subshell) when this script is stopped: SIGTERM to its `timeout`, which
# passes it on to the runner.
TEST_PID=""
stop_test() {
  [[ -n "$TEST_PID" ]] || return 0
  local child
  for child in $(pgrep -P "$TEST_PID" 2>/dev/null || true); do kill -TERM "$child" 2>/dev/null || true; done
  kill -TERM "$TEST_PID" 2>/dev/null || true
  wait "$TEST_PID" 2>/dev/null || true
  TEST_PID=""
}
trap 'stop_test; stop_broker' EXIT
trap 'exit 130' INT TERM

# The suite reads its client settings from test.conf (RDKAFKA_TEST_CONF).
write_test_conf() { printf 'bootstrap.servers=%s\n' "$BOOTSTRAP" >"$WORK/test.conf"; }

start_single() {
  BROKER_STARTS=$((BROKER_STARTS + 1))
  local data="$WORK/data.$BROKER_STARTS" out="$WORK/broker.$BROKER_STARTS.out" port="" i
  mkdir -p "$data"
  "$SLUICE_BIN" serve --listen 127.0.0.1:0 --data-dir "$data" \
    --set auto.create.topics.enable=true --set num.partitions=4 \
    >"$out" 2>"$WORK/broker.$BROKER_STARTS.err" &
  BROKER_PID=$!
  for ((i = 0; i < 300; i++)); do
    port="$(grep -m1 -oE 'listening on 127\.0\.0\.1:[0-9]+' "$out" 2>/dev/null | grep -oE '[0-9]+$' || true)"
    [[ -n "$port" ]] && break
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$port" ]]; then
    log "ERROR: the broker did not start; stderr:"
    tail -n 30 "$WORK/broker.$BROKER_STARTS.err" >&2 || true
    exit 1
  fi
  BOOTSTRAP="127.0.0.1:$port"
  write_test_conf
  log "broker pid $BROKER_PID listening on $BOOTSTRAP (data dir $data)"
}

# Two bases P and Q such that P..P+N-1 and Q..Q+N-1 are all free on 127.0.0.1 right now, below
# the ephemeral range (as compat/run.sh). Prints "P Q".
free_port_bases() { # N
  python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
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
    print(p, p + n)
    sys.exit(0)
sys.exit("no 2N consecutive free ports found in 200 tries")
PY
}

# `sluice dev --brokers 3` for $SCENARIO (as compat/run.sh's start_cluster: up to 3 attempts on
# fresh ports, ready once it prints its `bootstrap` and node lines). Sets BROKER_PID, NODE_PIDS,
# BOOTSTRAP; exits on failure.
start_cluster() {
  local attempt bases port cport dir out i line autocreate=true
  [[ "$SCENARIO" == noautocreate ]] && autocreate=false
  for attempt in 1 2 3; do
    BROKER_STARTS=$((BROKER_STARTS + 1))
    dir="$WORK/cluster.$BROKER_STARTS"
    out="$dir/dev.out"
    bases="$(free_port_bases "$CLUSTER_NODES")" || { log "ERROR: no free ports found"; exit 1; }
    read -r port cport <<<"$bases"
    mkdir -p "$dir/data"
    log "starting sluice dev --brokers $CLUSTER_NODES --port $port --controller-port $cport (scenario $SCENARIO: auto.create.topics.enable=$autocreate; attempt $attempt)"
    "$SLUICE_BIN" dev --brokers "$CLUSTER_NODES" --port "$port" --controller-port "$cport" --data-dir "$dir/data" \
      --set auto.create.topics.enable="$autocreate" --set num.partitions=4 --set default.replication.factor=3 \
      >"$out" 2>"$dir/dev.err" &
    BROKER_PID=$!
    line=""
    for ((i = 0; i < 900; i++)); do # 90 s (sluice dev gives its nodes 60 s)
      if grep -q '^Ctrl-C stops every node' "$out" 2>/dev/null; then
        line="$(grep -m1 -E '^bootstrap 127\.0\.0\.1:[0-9]+(,127\.0\.0\.1:[0-9]+)*$' "$out" || true)"
        break
      fi
      kill -0 "$BROKER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if [[ -n "$line" ]]; then
      BOOTSTRAP="${line#bootstrap }"
      mapfile -t NODE_PIDS < <(grep -E '^node [0-9]+ pid [0-9]+ ' "$out" | awk '{print $4}')
      if [[ "${#NODE_PIDS[@]}" != "$CLUSTER_NODES" ]]; then
        log "ERROR: sluice dev printed ${#NODE_PIDS[@]} node lines, expected $CLUSTER_NODES"
        cat "$out"
        exit 1
      fi
      write_test_conf
      log "cluster: sluice dev pid $BROKER_PID, nodes (pids ${NODE_PIDS[*]}) on $BOOTSTRAP, logs $dir/data/node-*.log"
      CLUSTER_DIR="$dir"
      return 0
    fi
    if kill -0 "$BROKER_PID" 2>/dev/null; then
      log "ERROR: sluice dev did not print its bootstrap line within 90 s"
      tail -n 20 "$dir/dev.err" "$dir"/data/node-*.log 2>/dev/null || true
      exit 1 # alive but not ready: a retry would not help (the EXIT trap stops it)
    fi
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
    log "sluice dev exited before printing its bootstrap line (attempt $attempt):"
    tail -n 10 "$dir/dev.err" "$dir"/data/node-*.log 2>/dev/null || true
  done
  log "ERROR: the cluster did not start in 3 attempts"
  exit 1
}

start_broker() { if [[ "$MODE" == cluster ]]; then start_cluster; else start_single; fi; }

# Is the broker (every node and sluice dev) still running? Says which one is not.
broker_alive() {
  local i ok=0
  if ! kill -0 "$BROKER_PID" 2>/dev/null; then
    log "ERROR: $([[ "$MODE" == cluster ]] && echo "sluice dev (pid $BROKER_PID)" || echo "the broker") exited"
    ok=1
  fi
  for ((i = 0; i < ${#NODE_PIDS[@]}; i++)); do
    running "${NODE_PIDS[$i]}" && continue
    log "ERROR: node $((i + 1)) (pid ${NODE_PIDS[$i]}) exited; last lines of its log:"
    tail -n 30 "$CLUSTER_DIR/data/node-$((i + 1)).log" 2>/dev/null | sed 's/^/    /' || true
    ok=1
  done
  return "$ok"
}

# A stand-in for Kafka's bin/kafka-topics.sh, which some tests call through KAFKA_PATH to
# create, grow and delete topics: the same operations through `sluice topic`.
mkdir -p "$WORK/kafka/bin"
cat >"$WORK/kafka/bin/kafka-topics.sh" <<EOF
#!/usr/bin/env bash
# kafka-topics.sh stand-in for librdkafka's tests: --create/--alter/--delete via sluice topic.
set -euo pipefail
brokers="" op="" topic="" partitions=-1 replicas=-1 configs=()
while ((\$#)); do
  case "\$1" in
    --bootstrap-server) brokers="\$2"; shift 2 ;;
    --create | --alter | --delete) op="\${1#--}"; shift ;;
    --topic) topic="\$2"; shift 2 ;;
    --partitions) partitions="\$2"; shift 2 ;;
    --replication-factor) replicas="\$2"; shift 2 ;;
    --config) configs+=(-c "\$2"); shift 2 ;;
    *) echo "kafka-topics.sh stand-in: unsupported argument \$1" >&2; exit 2 ;;
  esac
done
[[ -n "\$brokers" && -n "\$topic" ]] || { echo "kafka-topics.sh stand-in: --bootstrap-server and --topic are required" >&2; exit 2; }
case "\$op" in
  create) exec "$SLUICE_BIN" topic -b "\$brokers" create "\$topic" -p "\$partitions" -r "\$replicas" \${configs[@]+"\${configs[@]}"} ;;
  alter) exec "$SLUICE_BIN" topic -b "\$brokers" add-partitions "\$topic" -p "\$partitions" ;;
  delete) exec "$SLUICE_BIN" topic -b "\$brokers" delete "\$topic" ;;
  *) echo "kafka-topics.sh stand-in: one of --create, --alter, --delete is required" >&2; exit 2 ;;
esac
EOF
chmod +x "$WORK/kafka/bin/kafka-topics.sh"

# The runner leaves files in its directory (stats_*.json of failed tests, a file offset store):
# the ones this run made are removed at the end.
touch "$WORK/started"

# ----------------------------------------------------------------------------- the tests
declare -A RESULT=() NOTE=() SECONDS_OF=()
PASSED=0
FAILED=0
mkdir -p "$WORK/logs"
started_all=$SECONDS
for entry in "${SELECTED[@]}"; do
  number="${entry%%:*}"
  scenario=default
  [[ "$entry" == *:* ]] && scenario="${entry#*:}"
  if [[ -z "$BROKER_PID" || "$scenario" != "$SCENARIO" ]]; then
    # A fresh cluster for each scenario (its broker settings differ).
    stop_broker
    SCENARIO="$scenario"
    start_broker
  fi
  out="$WORK/logs/${entry/:/-}.log"
  started=$SECONDS
  rc=0
  (
    cd "$RUNNER_DIR"
    export TESTS="$number" TEST_KAFKA_VERSION="$KAFKA_VERSION" RDKAFKA_TEST_CONF="$WORK/test.conf"
    export KAFKA_PATH="$WORK/kafka" BROKERS="$BOOTSTRAP" TEST_SCENARIO="$SCENARIO"
    export LD_LIBRARY_PATH="$LIBRDKAFKA_DIR/src:$LIBRDKAFKA_DIR/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # Not exec'd: a runner killed by a signal (its failed assertions abort) is then reported
    # into the log by this subshell, not on the terminal.
    timeout --kill-after=10 "$TEST_TIMEOUT" ./test-runner "${RUNNER_FLAGS[@]}"
  ) >"$out" 2>&1 &
  # In the background and waited for, so that a signal to this script (compat/run.sh's suite
  # timeout) runs the EXIT trap at once: it stops the test (stop_test) and the broker(s).
  TEST_PID=$!
  wait "$TEST_PID" || rc=$?
  TEST_PID=""
  SECONDS_OF[$entry]=$((SECONDS - started))
  # The runner's summary: one `| NNNN_name | STATE | time |` line per subtest it ran.
  states="$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -oE "^\| *${number}_[a-z0-9_]+ +\| +[A-Z_]+ +\|" | grep -oE '[A-Z_]{5,}' || true)"
  if [[ "$rc" == 124 || "$rc" == 137 ]]; then
    RESULT[$entry]=FAILED; NOTE[$entry]="timed out after ${TEST_TIMEOUT}s"
  elif [[ "$rc" != 0 ]] || grep -qvE '^(PASSED|SKIPPED)$' <<<"$states"; then
    RESULT[$entry]=FAILED
    # The first failure: the line after the runner's `### Test "…" failed at …` header.
    NOTE[$entry]="$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -m1 -A1 '^### Test ' | tail -n1 | cut -c1-160 || true)"
    [[ -n "${NOTE[$entry]}" ]] || NOTE[$entry]="exit status $rc"
  elif ! grep -qx PASSED <<<"$states"; then
    RESULT[$entry]=FAILED; NOTE[$entry]="no subtest passed (skipped itself: $(grep -m1 -oE 'SKIPPING( TEST)?: .*' "$out" | cut -c1-100 || true))"
  else
    RESULT[$entry]=PASSED
  fi
  if [[ "${RESULT[$entry]}" == PASSED ]]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
  log "$entry ${RESULT[$entry]} in ${SECONDS_OF[$entry]}s${NOTE[$entry]:+: ${NOTE[$entry]}}"
  if ! broker_alive; then
    [[ "$MODE" == cluster ]] || { log "stderr:"; tail -n 30 "$WORK/broker.$BROKER_STARTS.err" || true; }
    [[ "${RESULT[$entry]}" == PASSED ]] && { PASSED=$((PASSED - 1)); FAILED=$((FAILED + 1)); }
    RESULT[$entry]=FAILED; NOTE[$entry]="a broker died"
    stop_broker # the rest (sluice dev, the nodes still running); the next test starts afresh
  fi
done
stop_broker
find "$RUNNER_DIR" -maxdepth 1 -newer "$WORK/started" \( -name 'stats_*.json' -o -name 'rdkafkatest_*' \) -delete 2>/dev/null || true
# A panic a node survived (in a task) is not a crash, but it is worth a look.
for f in "$WORK"/cluster.*/data/node-*.log "$WORK"/broker.*.err; do
  [[ -f "$f" ]] || continue
  panics="$(grep -c 'panicked' "$f" || true)"
  [[ "$panics" != 0 ]] && log "WARNING: $panics 'panicked' line(s) in $f" && SLUICE_LIBRDKAFKA_KEEP=1
done

echo
where="one node"
[[ "$MODE" == cluster ]] && where="$CLUSTER_NODES-node sluice dev cluster"
log "results ($MODE mode, $where, librdkafka $(basename "$LIBRDKAFKA_DIR"), TEST_KAFKA_VERSION=$KAFKA_VERSION):"
printf '  %-18s %-8s %6s  %s\n' test result seconds note
for entry in "${SELECTED[@]}"; do
  printf '  %-18s %-8s %6s  %s\n' "$entry" "${RESULT[$entry]}" "${SECONDS_OF[$entry]}" "${NOTE[$entry]:-}"
done
log "total time $((SECONDS - started_all))s"
if ((FAILED)) || [[ "${SLUICE_LIBRDKAFKA_KEEP:-0}" == 1 ]]; then
  log "logs (one per test, broker stdout/stderr or cluster.N/ with the node logs): $WORK"
else
  rm -rf "$WORK"
fi
echo "librdkafka: ${#SELECTED[@]} run, $PASSED passed, $FAILED failed, $EXCLUDED excluded"
((FAILED == 0))
