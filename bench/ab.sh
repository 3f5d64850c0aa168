#!/usr/bin/env bash
# bench/ab.sh — one `sluice bench` run against a fresh broker of the given
# build, with the broker's fdatasync calls and context switches per second
# (`perf stat` over 5 s, from 5 s into the run): the A/B step behind
# docs/BENCHMARKS.md's item-4 figures. Run it alternately with two builds.
# A benchmark aid, not a test, not in CI; traffic stays on 127.0.0.1.
#
#   bash bench/ab.sh BIN LABEL [sluice bench arguments…]
#   e.g. bash bench/ab.sh /tmp/sluice-a a e2e --client raw --topic omb --partitions 100 \
#            --producers 4 --consumers 4 --rate 50000 --record-size 1024 --acks 1 \
#            --linger-ms 1 --duration 20s
#
# Environment: BROKER_CPU / CLIENT_CPU (default 0 / 1), SERVE_ARGS (extra
# `sluice serve` arguments, e.g. "--set sluice.flush.before.visible=false"),
# WARM (1: warm the page cache first, as bench/compare.sh does; default 0),
# WARM_MARGIN_MIB (free memory left unwarmed, default 256 as there).
set -euo pipefail

BIN=$1 LABEL=$2
shift 2
BROKER_CPU=${BROKER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
command -v perf >/dev/null || { echo "ab: perf is not installed (Debian: linux-perf)" >&2; exit 1; }
WORK_DIR=$(mktemp -d /tmp/sluice-ab.XXXXXX)
BROKER_PID=
cleanup() {
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK_DIR"
}
trap cleanup EXIT
mkdir -p "$WORK_DIR/data"
if [ "${WARM:-0}" = 1 ]; then
    avail_kib=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
    truncate -s $(((avail_kib - ${WARM_MARGIN_MIB:-256} * 1024) * 1024)) "$WORK_DIR/warm.sparse"
    cat "$WORK_DIR/warm.sparse" >/dev/null
fi
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086 # SERVE_ARGS is a list of arguments
taskset -c "$BROKER_CPU" "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK_DIR/data" \
    ${SERVE_ARGS:-} >"$WORK_DIR/broker.log" 2>&1 &
BROKER_PID=$!
deadline=$((SECONDS + 30))
until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "ab: broker did not start" >&2; exit 1; }
    sleep 0.2
done
taskset -c "$CLIENT_CPU" "$BIN" bench "$@" -b "127.0.0.1:$PORT" --broker-pid "$BROKER_PID" --json \
    >"$WORK_DIR/out.json" 2>"$WORK_DIR/bench.err" &
CLIENT_PID=$!
sleep 5
perf stat -x, -e 'syscalls:sys_enter_fdatasync,context-switches' -p "$BROKER_PID" -- sleep 5 \
    2>"$WORK_DIR/stat" >/dev/null || true
wait "$CLIENT_PID" || { echo "ab: bench failed: $(tail -n 1 "$WORK_DIR/bench.err")" >&2; exit 1; }
python3 - "$WORK_DIR/out.json" "$WORK_DIR/stat" "$LABEL" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
counts = {}
for line in open(sys.argv[2]).read().splitlines():
    fields = line.split(",")
    if len(fields) > 2 and fields[0].replace(".", "").isdigit():
        counts[fields[2]] = float(fields[0]) / 5
gb = run["bytes"] / 1e9
e2e, ack = run.get("e2e_latency") or {}, run.get("ack_latency") or {}
ms = lambda lat, p: f"{lat.get(p + '_us', 0) / 1000:.1f}"
print(f"{sys.argv[3]:<10} {run['megabytes_per_second']:8.1f} MB/s  broker {run['broker_cpu_seconds'] / gb:5.2f} CPU s/GB"
      f"  client {run['client_cpu_seconds'] / gb:5.2f}  ack p99 {ms(ack, 'p99')} ms"
      f"  e2e p50/p99/p99.9 {ms(e2e, 'p50')}/{ms(e2e, 'p99')}/{ms(e2e, 'p999')} ms"
      f"  fdatasync/s {counts.get('syscalls:sys_enter_fdatasync', 0):.0f}"
      f"  context switches/s {counts.get('context-switches', 0):.0f}")
PY
