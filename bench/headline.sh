#!/usr/bin/env bash
# bench/headline.sh — the headline workload of bench/compare.sh (1 KiB
# records, 1 partition, acks=1, 1 GiB or 20 s) repeated ROUNDS times on
# Sluice and Tansu memory://, alternating, each run on a fresh broker after
# warming the page cache (see warm_memory in bench/compare.sh). One run of a
# couple of seconds moves by ±30% on this machine; the median of several
# alternating runs is the figure to compare. A benchmark, not a test.
#
# Environment: ROUNDS (default 3), SLUICE_BIN (default target/release/sluice),
# TANSU_BIN (default ~/.cache/sluice-bench/tansu/bin/tansu), WORK_DIR,
# BROKER_CPU / CLIENT_CPU (default 0 / 1), SLUICE_BASELINE_BIN (optional: an
# older Sluice build, e.g. from `git worktree add ../base COMMIT`, measured
# in the same alternation as "sluice-baseline", so a change is compared
# with what it changed on the same machine in the same minutes).
# BENCH_ARGS: extra `sluice bench produce` options for every run, e.g.
# "--client raw" for the raw-protocol producer. ACKS: 1 (default) or all.
# WARM_MARGIN_MIB: free memory left unwarmed (default 256; see
# bench/compare.sh).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SLUICE=${SLUICE_BIN:-$REPO/target/release/sluice}
TANSU=${TANSU_BIN:-$HOME/.cache/sluice-bench/tansu/bin/tansu}
ROUNDS=${ROUNDS:-3}
BROKER_CPU=${BROKER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
WORK_DIR=${WORK_DIR:-$(mktemp -d /tmp/sluice-headline.XXXXXX)}
BASELINE=${SLUICE_BASELINE_BIN:-}
BROKERS=(sluice)
[ -n "$BASELINE" ] && BROKERS+=(sluice-baseline)
[ -x "$TANSU" ] && BROKERS+=(tansu-memory) || echo "headline: no Tansu at $TANSU; Sluice only" >&2

PID=
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK_DIR/warm.sparse" "$WORK_DIR/data"
}
trap cleanup EXIT
avail_kib=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
truncate -s $(((avail_kib - ${WARM_MARGIN_MIB:-256} * 1024) * 1024)) "$WORK_DIR/warm.sparse"

for round in $(seq "$ROUNDS"); do
    for broker in "${BROKERS[@]}"; do
        rm -rf "$WORK_DIR/data" && mkdir -p "$WORK_DIR/data"
        cat "$WORK_DIR/warm.sparse" >/dev/null
        PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        if [ "$broker" = sluice ] || [ "$broker" = sluice-baseline ]; then
            bin=$SLUICE
            [ "$broker" = sluice-baseline ] && bin=$BASELINE
            (cd "$WORK_DIR/data" && exec taskset -c "$BROKER_CPU" "$bin" serve \
                --listen "127.0.0.1:$PORT" --data-dir "$WORK_DIR/data" >"$WORK_DIR/$broker.log" 2>&1) &
        else
            (cd "$WORK_DIR/data" && exec taskset -c "$BROKER_CPU" "$TANSU" broker \
                --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
                --storage-engine memory://tansu/ >"$WORK_DIR/$broker.log" 2>&1) &
        fi
        PID=$!
        deadline=$((SECONDS + 30))
        until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
            [ $SECONDS -lt $deadline ] || { echo "headline: $broker did not start" >&2; exit 1; }
            sleep 0.2
        done
        timeout 120 taskset -c "$CLIENT_CPU" "$SLUICE" bench produce --topic bench --partitions 1 \
            --record-size 1024 --acks "${ACKS:-1}" --count 1048576 --duration 20s -b "127.0.0.1:$PORT" ${BENCH_ARGS:-} \
            --broker-pid "$PID" --json 2>/dev/null |
            python3 -c "
import json, sys
d = json.load(sys.stdin)
print(f\"round $round  $broker  {d['megabytes_per_second']:.1f} MB/s  broker {d['broker_cpu_seconds'] / (d['bytes'] / 1e9):.2f} CPU s/GB  client {d['client_cores']:.2f} cores  broker peak RSS {d.get('broker_peak_rss_bytes', 0) / 2**20:.0f} MiB\")"
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=
    done
done
