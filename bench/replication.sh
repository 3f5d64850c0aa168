#!/usr/bin/env bash
# bench/replication.sh — what replication costs (issue 13): acks=all produce
# of 1 KiB records to a replication-factor-3 topic and to a
# replication-factor-1 topic of the same 3-node `sluice dev` cluster, with
# `sluice.flush.before.visible` true (the default: a record counts once
# fsynced on every in-sync replica) and false (once in each replica's page
# cache). RF 1 on the same cluster in the same minutes is the comparison
# peer. The bench's own and node 1's CPU seconds and node 1's peak RSS (so
# far) are reported (every node
# is a leader of some partitions). A benchmark, not a test.
#
# Environment: SLUICE_BIN (default target/release/sluice), DURATION
# (default 20s), PARTITIONS (default 3), ROUNDS (default 2), WORK_DIR,
# PORT (default 39092; node N listens on PORT+N-1) and CONTROLLER_PORT
# (default 39192), BENCH_ARGS (extra `sluice bench produce` options, e.g.
# "--client raw --producers 4": the raw-protocol producer, routed to each
# partition's leader).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SLUICE=${SLUICE_BIN:-$REPO/target/release/sluice}
DURATION=${DURATION:-20s}
PARTITIONS=${PARTITIONS:-3}
ROUNDS=${ROUNDS:-2}
BENCH_ARGS=${BENCH_ARGS:-}
PORT=${PORT:-39092}
CONTROLLER_PORT=${CONTROLLER_PORT:-39192}
WORK_DIR=${WORK_DIR:-$(mktemp -d /tmp/sluice-replication.XXXXXX)}
BOOTSTRAP="127.0.0.1:$PORT,127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2))"

DEV=
cleanup() {
    if [ -n "$DEV" ]; then
        kill -TERM "$DEV" 2>/dev/null || true
        wait "$DEV" 2>/dev/null || true
    fi
    rm -rf "$WORK_DIR/data"
}
trap cleanup EXIT

start_cluster() { # flush.before.visible
    rm -rf "$WORK_DIR/data"
    "$SLUICE" dev --brokers 3 --port "$PORT" --controller-port "$CONTROLLER_PORT" \
        --data-dir "$WORK_DIR/data" --set "sluice.flush.before.visible=$1" \
        >"$WORK_DIR/dev.out" 2>"$WORK_DIR/dev.err" &
    DEV=$!
    for _ in $(seq 600); do
        grep -q '^bootstrap ' "$WORK_DIR/dev.out" 2>/dev/null && return 0
        kill -0 "$DEV" 2>/dev/null || break
        sleep 0.1
    done
    echo "replication: the cluster did not start" >&2
    cat "$WORK_DIR/dev.err" >&2
    exit 1
}

stop_cluster() {
    kill -TERM "$DEV" 2>/dev/null || true
    wait "$DEV" 2>/dev/null || true
    DEV=
}

node1_pid() {
    awk '$1 == "node" && $2 == "1" {print $4}' "$WORK_DIR/dev.out"
}

printf '%-6s %-5s %-3s %10s %12s %10s %10s %10s %10s %10s\n' \
    flush rf round "MB/s" "records/s" "ack p50" "ack p99" "bench cpu" "node1 cpu" "node1 RSS"
for flush in true false; do
    for round in $(seq "$ROUNDS"); do
        start_cluster "$flush"
        for rf in 1 3; do
            topic="rf$rf-$round"
            "$SLUICE" topic create -b "$BOOTSTRAP" "$topic" --partitions "$PARTITIONS" \
                --replicas "$rf" >/dev/null
            if ! json=$("$SLUICE" bench produce -b "$BOOTSTRAP" --topic "$topic" --acks all \
                --record-size 1KiB --duration "$DURATION" $BENCH_ARGS --broker-pid "$(node1_pid)" --json \
                2>"$WORK_DIR/bench.err"); then
                echo "replication: flush=$flush rf=$rf round $round failed: $(tail -n 3 "$WORK_DIR/bench.err")" >&2
                continue
            fi
            python3 - "$flush" "$rf" "$round" "$json" <<'PY'
import json, sys
flush, rf, rnd, raw = sys.argv[1:5]
r = json.loads(raw)
lat = r.get("ack_latency", {})
print(f"{flush:<6} {rf:<5} {rnd:<3} {r['megabytes_per_second']:10.1f} "
      f"{r['records_per_second']:12.0f} {lat.get('p50_us', 0) / 1000:8.1f}ms "
      f"{lat.get('p99_us', 0) / 1000:8.1f}ms {r.get('client_cpu_seconds', 0):10.1f} "
      f"{r.get('broker_cpu_seconds', 0):10.1f} "
      f"{r.get('broker_peak_rss_bytes', 0) / 2**20:7.0f}MiB")
PY
        done
        stop_cluster
    done
done
