#!/usr/bin/env bash
# bench/drain_ab.sh — the fetch side of a change, beside an older build and
# Tansu memory://: on each broker in turn (fresh broker and data dir), fill
# 512 MiB of 1 KiB records into 1 partition (acks=1), then drain them from
# the start with one consumer; ROUNDS times, alternating. Prints MB/s of the
# drain and the broker's CPU seconds per GB served. A benchmark, not a test.
#
# Environment: SLUICE_BIN (default target/release/sluice; also the load
# generator), SLUICE_BASELINE_BIN (optional older build), TANSU_BIN (default
# ~/.cache/sluice-bench/tansu/bin/tansu, skipped if absent), ROUNDS (3),
# BROKER_CPU / CLIENT_CPU (0 / 1), CONSUME_ARGS (extra `bench consume`
# arguments, e.g. "--client raw" for the raw-protocol consumer),
# BACKLOG_RECORDS (1 KiB records filled, default 524288 = 512 MiB).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SLUICE=${SLUICE_BIN:-$REPO/target/release/sluice}
BASELINE=${SLUICE_BASELINE_BIN:-}
TANSU=${TANSU_BIN:-$HOME/.cache/sluice-bench/tansu/bin/tansu}
ROUNDS=${ROUNDS:-3}
BROKER_CPU=${BROKER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
read -r -a CONSUME_EXTRA <<<"${CONSUME_ARGS:-}"
BACKLOG_RECORDS=${BACKLOG_RECORDS:-524288}
WORK_DIR=$(mktemp -d /tmp/sluice-drain.XXXXXX)
BROKERS=(sluice)
[ -n "$BASELINE" ] && BROKERS+=(sluice-baseline)
[ -x "$TANSU" ] && BROKERS+=(tansu-memory)

PID=
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK_DIR"
}
trap cleanup EXIT

for round in $(seq "$ROUNDS"); do
    for broker in "${BROKERS[@]}"; do
        rm -rf "$WORK_DIR/data" && mkdir -p "$WORK_DIR/data"
        PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        case $broker in
        sluice | sluice-baseline)
            bin=$SLUICE
            [ "$broker" = sluice-baseline ] && bin=$BASELINE
            (cd "$WORK_DIR/data" && exec taskset -c "$BROKER_CPU" "$bin" serve \
                --listen "127.0.0.1:$PORT" --data-dir "$WORK_DIR/data" >"$WORK_DIR/$broker.log" 2>&1) &
            ;;
        tansu-memory)
            (cd "$WORK_DIR/data" && exec taskset -c "$BROKER_CPU" "$TANSU" broker \
                --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
                --storage-engine memory://tansu/ >"$WORK_DIR/$broker.log" 2>&1) &
            ;;
        esac
        PID=$!
        deadline=$((SECONDS + 30))
        until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
            [ $SECONDS -lt $deadline ] || { echo "drain_ab: $broker did not start" >&2; exit 1; }
            sleep 0.2
        done
        timeout 200 taskset -c "$CLIENT_CPU" "$SLUICE" bench produce --topic backlog --partitions 1 \
            --record-size 1024 --acks 1 --count "$BACKLOG_RECORDS" --duration 120s -b "127.0.0.1:$PORT" \
            --json >/dev/null 2>&1
        timeout 200 taskset -c "$CLIENT_CPU" "$SLUICE" bench consume --topic backlog --duration 120s \
            "${CONSUME_EXTRA[@]}" -b "127.0.0.1:$PORT" --broker-pid "$PID" --json 2>/dev/null |
            python3 -c "
import json, sys
d = json.load(sys.stdin)
print(f\"round $round  $broker  drain {d['megabytes_per_second']:.1f} MB/s  broker {d['broker_cpu_seconds'] / (d['bytes'] / 1e9):.2f} CPU s/GB  client {d['client_cpu_seconds'] / (d['bytes'] / 1e9):.2f} CPU s/GB\")"
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=
    done
done
