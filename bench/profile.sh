#!/usr/bin/env bash
# bench/profile.sh — where the CPU goes in one saturated or fixed-rate run:
# `perf record` (cpu-clock sampling, call graphs) on the broker and on the
# load generator while `sluice bench` runs, then the top symbols of each.
# Evidence for docs/BENCHMARKS.md; a benchmark aid, not a test, not in CI.
#
# Usage: bench/profile.sh [sluice bench arguments…]
#   default arguments: produce --partitions 1 --record-size 1024 --acks 1 --duration 12s
# Environment: SLUICE_BIN (default target/release/sluice), WORK_DIR (default
# mktemp), BROKER_CPU / CLIENT_CPU (default 0 / 1), SECONDS_SAMPLED (default 4),
# SAMPLE_AFTER (seconds into the run sampling starts, default 3),
# TOP (symbols listed per process, default 15), WARM_MARGIN_MIB (see
# bench/compare.sh), CALL_GRAPH (perf --call-graph:
# fp, the default, or dwarf, which unwinds Rust frames), WARM_MEMORY (default 1, see
# bench/compare.sh), PREPARE (`sluice bench` arguments run first, unsampled:
# the backlog a consume run drains, e.g. "produce --topic backlog
# --partitions 1 --record-size 1024 --acks 1 --count 2097152 --duration 120s").
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SLUICE=${SLUICE_BIN:-$REPO/target/release/sluice}
WORK_DIR=${WORK_DIR:-$(mktemp -d /tmp/sluice-profile.XXXXXX)}
BROKER_CPU=${BROKER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SECONDS_SAMPLED=${SECONDS_SAMPLED:-4}
SAMPLE_AFTER=${SAMPLE_AFTER:-3}
TOP=${TOP:-15}
CALL_GRAPH=${CALL_GRAPH:-fp}
WARM_MEMORY=${WARM_MEMORY:-1}
if [ $# -eq 0 ]; then
    set -- produce --partitions 1 --record-size 1024 --acks 1 --duration 12s
fi
command -v perf >/dev/null || { echo "profile: perf is not installed (Debian: linux-perf)" >&2; exit 1; }

log() { printf '%s profile: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
BROKER_PID=
cleanup() {
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    # The log a saturated run writes is gigabytes: never leave it behind.
    rm -rf "$WORK_DIR/warm.sparse" "$WORK_DIR/data"
}
trap cleanup EXIT

if [ "$WARM_MEMORY" = 1 ]; then
    avail_kib=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
    truncate -s $(((avail_kib - ${WARM_MARGIN_MIB:-256} * 1024) * 1024)) "$WORK_DIR/warm.sparse"
    log "warming the page cache"
    cat "$WORK_DIR/warm.sparse" >/dev/null
fi

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$WORK_DIR/data"
taskset -c "$BROKER_CPU" "$SLUICE" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK_DIR/data" \
    >"$WORK_DIR/broker.log" 2>&1 &
BROKER_PID=$!
deadline=$((SECONDS + 30))
until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { log "broker did not start"; exit 1; }
    sleep 0.2
done

if [ -n "${PREPARE:-}" ]; then
    log "prepare: sluice bench $PREPARE"
    # shellcheck disable=SC2086 # PREPARE is a list of arguments
    taskset -c "$CLIENT_CPU" "$SLUICE" bench $PREPARE -b "127.0.0.1:$PORT" --json >/dev/null 2>"$WORK_DIR/prepare.err" ||
        { log "prepare failed: $(tail -n 1 "$WORK_DIR/prepare.err")"; exit 1; }
fi
log "sluice bench $*"
taskset -c "$CLIENT_CPU" "$SLUICE" bench "$@" -b "127.0.0.1:$PORT" --broker-pid "$BROKER_PID" --json \
    >"$WORK_DIR/bench.json" 2>"$WORK_DIR/bench.err" &
CLIENT_PID=$!
sleep "$SAMPLE_AFTER"
# Both processes sampled over the same window.
perf record -F 999 --call-graph "$CALL_GRAPH" -p "$BROKER_PID" -o "$WORK_DIR/broker.perf" -- sleep "$SECONDS_SAMPLED" >/dev/null 2>&1 &
PERF_BROKER=$!
perf record -F 999 --call-graph "$CALL_GRAPH" -p "$CLIENT_PID" -o "$WORK_DIR/client.perf" -- sleep "$SECONDS_SAMPLED" >/dev/null 2>&1 &
PERF_CLIENT=$!
wait "$PERF_BROKER" "$PERF_CLIENT" || true
wait "$CLIENT_PID" || log "bench ended with an error: $(tail -n 1 "$WORK_DIR/bench.err")"

python3 - "$WORK_DIR/bench.json" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))
keys = ("megabytes_per_second", "records_per_second", "broker_cpu_seconds", "client_cpu_seconds",
        "client_cores", "elapsed_seconds", "bytes")
print("run: " + ", ".join(f"{k}={run[k]}" for k in keys if k in run))
if run.get("bytes") and run.get("broker_cpu_seconds") is not None:
    print(f"broker CPU per GB: {run['broker_cpu_seconds'] / (run['bytes'] / 1e9):.2f} s; "
          f"client CPU per GB: {run['client_cpu_seconds'] / (run['bytes'] / 1e9):.2f} s")
for key in ("ack_latency", "e2e_latency"):
    if run.get(key):
        l = run[key]
        print(f"{key}: p50 {l['p50_us']} us, p99 {l['p99_us']} us, p99.9 {l['p999_us']} us, max {l['max_us']} us")
EOF
for side in broker client; do
    echo
    echo "== $side: top $TOP symbols (self time, % of samples) =="
    perf report -i "$WORK_DIR/$side.perf" --no-children --sort dso,symbol --stdio 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -n "$TOP" || true # head closes the pipe early
done
log "perf data in $WORK_DIR"
