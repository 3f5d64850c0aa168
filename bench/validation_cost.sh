#!/usr/bin/env bash
# bench/validation_cost.sh — what the produce path's batch validation costs:
# the headline workload (1 KiB records of random capital letters, 1
# partition, acks=1, 1 GiB or 20 s) against two builds, alternating, per
# codec, each run on a fresh broker pinned to its own core; prints MB/s and
# the broker's CPU seconds per GB produced. A benchmark, not a test.
#
# Usage: BEFORE=path/to/sluice AFTER=path/to/sluice bench/validation_cost.sh
# Environment: ROUNDS (default 3), CODECS (default "none lz4"),
# BROKER_CPU / CLIENT_CPU (default 0 / 1), WORK_DIR.
set -euo pipefail

BEFORE=${BEFORE:?path of the build without validation}
AFTER=${AFTER:?path of the build with validation}
ROUNDS=${ROUNDS:-3}
CODECS=${CODECS:-none lz4}
BROKER_CPU=${BROKER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
WORK_DIR=${WORK_DIR:-$(mktemp -d /tmp/sluice-validation.XXXXXX)}

PID=
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK_DIR/data"
}
trap cleanup EXIT

for codec in $CODECS; do
    for round in $(seq "$ROUNDS"); do
        for build in before after; do
            binary=$BEFORE
            [ "$build" = after ] && binary=$AFTER
            rm -rf "$WORK_DIR/data" && mkdir -p "$WORK_DIR/data"
            PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
            (cd "$WORK_DIR/data" && exec taskset -c "$BROKER_CPU" "$binary" serve \
                --listen "127.0.0.1:$PORT" --data-dir "$WORK_DIR/data" >"$WORK_DIR/$build.log" 2>&1) &
            PID=$!
            deadline=$((SECONDS + 30))
            until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
                [ $SECONDS -lt $deadline ] || { echo "validation_cost: $build did not start" >&2; exit 1; }
                sleep 0.2
            done
            timeout 120 taskset -c "$CLIENT_CPU" "$AFTER" bench produce --topic bench --partitions 1 \
                --record-size 1024 --acks 1 --compression "$codec" --count 1048576 --duration 20s \
                -b "127.0.0.1:$PORT" --broker-pid "$PID" --json 2>/dev/null |
                python3 -c "
import json, sys
d = json.load(sys.stdin)
print(f\"$codec round $round $build: {d['megabytes_per_second']:.1f} MB/s  broker {d['broker_cpu_seconds'] / (d['bytes'] / 1e9):.2f} CPU s/GB  client {d['client_cores']:.2f} cores  {d['bytes'] / 1e9:.2f} GB\")"
            kill "$PID" 2>/dev/null || true
            wait "$PID" 2>/dev/null || true
            PID=
        done
    done
done
