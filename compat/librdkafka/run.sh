#!/usr/bin/env bash
# librdkafka's own integration test suite against one `sluice serve` node.
#
#   compat/librdkafka/run.sh quick|full [NNNN...]
#
#   quick  the tests marked `quick` in tests.txt (CI: `compat/run.sh librdkafka`), in the
#          suite's quick mode (test-runner -Q)
#   full   every test marked `quick` or `run` (`compat/run.sh librdkafka-full`)
#   NNNN   only these test numbers (they must not be excluded), e.g. to rerun a failure
#
# Builds (or finds in its cache) librdkafka's test-runner with build.sh, validates tests.txt
# against the suite (every test number exactly once), starts `sluice serve` ($SLUICE_BIN,
# default target/debug/sluice) on a free loopback port with a fresh data dir and the settings
# the suite's reference cluster has (auto.create.topics.enable=true, num.partitions=4), runs
# each selected test number alone (`TESTS=NNNN test-runner -L`) under a timeout, and prints a
# table. Exits non-zero when a selected test fails, a test leaves the broker dead, or the list
# is out of step with the suite. The last line is
#   librdkafka: N run, N passed, N failed, N excluded
#
# Environment:
#   SLUICE_BIN                       broker binary (default: target/debug/sluice, built if absent)
#   SLUICE_LIBRDKAFKA_TEST_TIMEOUT   seconds per test number (default: 300 quick, 900 full)
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
[[ "$MODE" == quick || "$MODE" == full ]] || { echo "usage: $0 quick|full [NNNN...]" >&2; exit 2; }
shift
ONLY=("$@")
if [[ "$MODE" == quick ]]; then
  TEST_TIMEOUT="${SLUICE_LIBRDKAFKA_TEST_TIMEOUT:-300}"
  RUNNER_FLAGS=(-L -Q)
else
  TEST_TIMEOUT="${SLUICE_LIBRDKAFKA_TEST_TIMEOUT:-900}"
  RUNNER_FLAGS=(-L)
fi

# ----------------------------------------------------------------------------- build
LIBRDKAFKA_DIR="$("$SUITE_DIR/build.sh" | tail -n1)"
RUNNER_DIR="$LIBRDKAFKA_DIR/tests"
[[ -x "$RUNNER_DIR/test-runner" ]] || { log "ERROR: no test-runner in $RUNNER_DIR"; exit 1; }
log "test-runner: $RUNNER_DIR/test-runner (librdkafka $(basename "$LIBRDKAFKA_DIR"))"

# ----------------------------------------------------------------------------- the list
# The suite's test numbers, from its own test table (tests/test.c: `_TEST(NNNN_name, ...)`).
mapfile -t SUITE_NUMBERS < <(grep -oE '_TEST\([0-9]{4}_' "$RUNNER_DIR/test.c" | grep -oE '[0-9]{4}' | sort -u)
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
    excluded)
      [[ -n "${reason:-}" ]] || { log "tests.txt: $number is excluded without a reason"; list_errors=$((list_errors + 1)); } ;;
    *) log "tests.txt: $number: unknown mode '$mode'"; list_errors=$((list_errors + 1)) ;;
  esac
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

SELECTED=()
EXCLUDED=0
for number in "${SUITE_NUMBERS[@]}"; do
  mode="${MODE_OF[$number]}"
  if ((${#ONLY[@]})); then
    [[ " ${ONLY[*]} " == *" $number "* ]] || continue
    [[ "$mode" != excluded ]] || { log "ERROR: $number is excluded: ${REASON_OF[$number]}"; exit 2; }
    SELECTED+=("$number")
  elif [[ "$mode" == excluded ]]; then
    EXCLUDED=$((EXCLUDED + 1))
  elif [[ "$mode" == quick || "$MODE" == full ]]; then
    SELECTED+=("$number")
  fi
done
log "${#SUITE_NUMBERS[@]} test numbers in the suite; $MODE mode selects ${#SELECTED[@]}; $EXCLUDED excluded; $((${#SUITE_NUMBERS[@]} - ${#SELECTED[@]} - EXCLUDED)) not selected"

# ----------------------------------------------------------------------------- the broker
if [[ -z "${SLUICE_BIN:-}" ]]; then
  SLUICE_BIN="$REPO_DIR/target/debug/sluice"
  if [[ ! -x "$SLUICE_BIN" ]]; then
    log "building sluice (cargo build -p sluice)"
    (cd "$REPO_DIR" && nice -n 19 cargo build -j 2 -p sluice)
  fi
fi
[[ -x "$SLUICE_BIN" ]] || { log "ERROR: broker binary $SLUICE_BIN not found"; exit 1; }

WORK="$(mktemp -d -t sluice-librdkafka.XXXXXX)"
BROKER_PID=""
BOOTSTRAP=""
stop_broker() {
  [[ -n "$BROKER_PID" ]] || return 0
  local pid="$BROKER_PID" i
  BROKER_PID=""
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
trap stop_broker EXIT
trap 'exit 130' INT TERM

BROKER_STARTS=0
start_broker() {
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
  # The suite reads its client settings from test.conf (RDKAFKA_TEST_CONF).
  printf 'bootstrap.servers=%s\n' "$BOOTSTRAP" >"$WORK/test.conf"
  log "broker pid $BROKER_PID listening on $BOOTSTRAP (data dir $data)"
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

start_broker
# The runner leaves files in its directory (stats_*.json of failed tests, a file offset store):
# the ones this run made are removed at the end.
touch "$WORK/started"

# ----------------------------------------------------------------------------- the tests
declare -A RESULT=() NOTE=() SECONDS_OF=()
PASSED=0
FAILED=0
mkdir -p "$WORK/logs"
started_all=$SECONDS
for number in "${SELECTED[@]}"; do
  out="$WORK/logs/$number.log"
  started=$SECONDS
  rc=0
  (
    cd "$RUNNER_DIR"
    export TESTS="$number" TEST_KAFKA_VERSION="$KAFKA_VERSION" RDKAFKA_TEST_CONF="$WORK/test.conf"
    export KAFKA_PATH="$WORK/kafka" BROKERS="$BOOTSTRAP"
    export LD_LIBRARY_PATH="$LIBRDKAFKA_DIR/src:$LIBRDKAFKA_DIR/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # Not exec'd: a runner killed by a signal (its failed assertions abort) is then reported
    # into the log by this subshell, not on the terminal.
    timeout --kill-after=10 "$TEST_TIMEOUT" ./test-runner "${RUNNER_FLAGS[@]}"
  ) >"$out" 2>&1 || rc=$?
  SECONDS_OF[$number]=$((SECONDS - started))
  # The runner's summary: one `| NNNN_name | STATE | time |` line per subtest it ran.
  states="$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -oE "^\| *${number}_[a-z0-9_]+ +\| +[A-Z_]+ +\|" | grep -oE '[A-Z_]{5,}' || true)"
  if [[ "$rc" == 124 || "$rc" == 137 ]]; then
    RESULT[$number]=FAILED; NOTE[$number]="timed out after ${TEST_TIMEOUT}s"
  elif [[ "$rc" != 0 ]] || grep -qvE '^(PASSED|SKIPPED)$' <<<"$states"; then
    RESULT[$number]=FAILED
    # The first failure: the line after the runner's `### Test "…" failed at …` header.
    NOTE[$number]="$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -m1 -A1 '^### Test ' | tail -n1 | cut -c1-160 || true)"
    [[ -n "${NOTE[$number]}" ]] || NOTE[$number]="exit status $rc"
  elif ! grep -qx PASSED <<<"$states"; then
    RESULT[$number]=FAILED; NOTE[$number]="no subtest passed (skipped itself: $(grep -m1 -oE 'SKIPPING: .*' "$out" | cut -c1-100 || true))"
  else
    RESULT[$number]=PASSED
  fi
  if [[ "${RESULT[$number]}" == PASSED ]]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
  log "$number ${RESULT[$number]} in ${SECONDS_OF[$number]}s${NOTE[$number]:+: ${NOTE[$number]}}"
  if ! kill -0 "$BROKER_PID" 2>/dev/null; then
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
    log "ERROR: the broker died during $number; stderr:"
    tail -n 30 "$WORK/broker.$BROKER_STARTS.err" || true
    [[ "${RESULT[$number]}" == PASSED ]] && { PASSED=$((PASSED - 1)); FAILED=$((FAILED + 1)); }
    RESULT[$number]=FAILED; NOTE[$number]="the broker died"
    start_broker
  fi
done
stop_broker
find "$RUNNER_DIR" -maxdepth 1 -newer "$WORK/started" \( -name 'stats_*.json' -o -name 'rdkafkatest_*' \) -delete 2>/dev/null || true

echo
log "results ($MODE mode, librdkafka $(basename "$LIBRDKAFKA_DIR"), TEST_KAFKA_VERSION=$KAFKA_VERSION):"
printf '  %-6s %-8s %6s  %s\n' test result seconds note
for number in "${SELECTED[@]}"; do
  printf '  %-6s %-8s %6s  %s\n' "$number" "${RESULT[$number]}" "${SECONDS_OF[$number]}" "${NOTE[$number]:-}"
done
log "total time $((SECONDS - started_all))s"
if ((FAILED)) || [[ "${SLUICE_LIBRDKAFKA_KEEP:-0}" == 1 ]]; then
  log "logs (one per test number, broker stdout/stderr): $WORK"
else
  rm -rf "$WORK"
fi
echo "librdkafka: ${#SELECTED[@]} run, $PASSED passed, $FAILED failed, $EXCLUDED excluded"
((FAILED == 0))
