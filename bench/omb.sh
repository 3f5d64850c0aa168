#!/usr/bin/env bash
# bench/omb.sh — OpenMessaging-Benchmark-style workloads (issue 15, item 2)
# against Sluice, and Tansu memory:// when it is installed, one broker at a
# time, with one client (`sluice bench e2e`, librdkafka; see
# bench/workloads/*.workload for the exact parameters, which every result
# line repeats). A benchmark, not a test: not part of CI; every run is
# bounded by `timeout`; all traffic stays on 127.0.0.1.
#
#   bash bench/omb.sh [WORKLOAD ...]     (default: every bench/workloads/omb-*.workload)
#
# For each workload and rate: a fresh broker and data directory, then
# `sluice bench e2e --partitions P --producers N --consumers C --rate R
# --record-size S --acks A --duration D`; printed: the rate asked and
# achieved, publish (ack) and end-to-end latency p50/p99/p99.9/max, broker
# and client CPU, the broker's peak RSS, and whether the broker kept up (98 % of the rate
# delivered, every delivered record consumed, p99 end to end under 1 s).
#
# Environment: SLUICE_BIN (default target/release/sluice; also the load
# generator), TANSU_BIN (default ~/.cache/sluice-bench/tansu/bin/tansu,
# skipped if absent; OMB_BROKERS="sluice tansu-memory" picks), BROKER_CPU / CLIENT_CPU (0 / 1: with 2 cores the
# broker gets one and the client, 4 producers and 4 consumers, the other),
# BENCH_ARGS (extra `sluice bench e2e` options: `--client raw` for the
# raw-protocol producers and consumers, which measure the broker rather
# than librdkafka).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SLUICE=${SLUICE_BIN:-$REPO/target/release/sluice}
TANSU=${TANSU_BIN:-$HOME/.cache/sluice-bench/tansu/bin/tansu}
BROKER_CPU=${BROKER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BENCH_ARGS=${BENCH_ARGS:-}
WORK_DIR=$(mktemp -d /tmp/sluice-omb.XXXXXX)
if [ -n "${OMB_BROKERS:-}" ]; then
    read -r -a BROKERS <<<"$OMB_BROKERS"
else
    BROKERS=(sluice)
    [ -x "$TANSU" ] && BROKERS+=(tansu-memory)
fi
[ -x "$SLUICE" ] || { echo "omb: no sluice binary at $SLUICE (cargo build --release -p sluice)" >&2; exit 2; }

if (($#)); then
    WORKLOADS=("$@")
else
    WORKLOADS=("$REPO"/bench/workloads/omb-*.workload)
fi

PID=
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK_DIR"
}
trap cleanup EXIT

start_broker() { # name port
    rm -rf "$WORK_DIR/data" && mkdir -p "$WORK_DIR/data"
    case $1 in
    sluice)
        (cd "$WORK_DIR/data" && exec taskset -c "$BROKER_CPU" "$SLUICE" serve \
            --listen "127.0.0.1:$2" --data-dir "$WORK_DIR/data" >"$WORK_DIR/$1.log" 2>&1) &
        ;;
    tansu-memory)
        (cd "$WORK_DIR/data" && exec taskset -c "$BROKER_CPU" "$TANSU" broker \
            --listener-url "tcp://127.0.0.1:$2" --advertised-listener-url "tcp://127.0.0.1:$2" \
            --storage-engine memory://tansu/ >"$WORK_DIR/$1.log" 2>&1) &
        ;;
    esac
    PID=$!
    local deadline=$((SECONDS + 30))
    until (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { echo "omb: $1 did not start" >&2; exit 1; }
        sleep 0.2
    done
}

stop_broker() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
}

echo "omb: $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), sluice $("$SLUICE" --version 2>/dev/null || echo '?')"
for workload in "${WORKLOADS[@]}"; do
    # shellcheck disable=SC1090
    partitions= record_size= producers= consumers= acks= duration= rates=
    source <(grep -v '^#' "$workload")
    name=$(basename "$workload" .workload)
    echo "== $name: partitions=$partitions record_size=$record_size producers=$producers consumers=$consumers acks=$acks duration=$duration rates=[$rates]"
    for broker in "${BROKERS[@]}"; do
        for rate in $rates; do
            port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
            start_broker "$broker" "$port"
            seconds=${duration%s}
            out=$WORK_DIR/result.json
            set +e
            timeout $((seconds + 120)) taskset -c "$CLIENT_CPU" "$SLUICE" bench e2e \
                --topic omb --partitions "$partitions" --producers "$producers" \
                --consumers "$consumers" --rate "$rate" --record-size "$record_size" \
                --acks "$acks" --duration "$duration" --linger-ms 1 $BENCH_ARGS \
                -b "127.0.0.1:$port" --broker-pid "$PID" --json >"$out" 2>"$WORK_DIR/e2e.err"
            status=$?
            set -e
            stop_broker
            python3 - "$out" "$name" "$broker" "$rate" "$status" <<'PY'
import json, sys
path, name, broker, rate, status = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
try:
    d = json.load(open(path))
except Exception:
    print(f"{name}  {broker:<13} rate {rate:>9.0f}/s  FAILED (exit {status}, no report)")
    sys.exit(0)
def ms(key, p):
    v = (d.get(key) or {}).get(p + "_us")
    return "-" if v is None else f"{v / 1000:.1f}"
achieved = d.get("records_per_second") or 0.0
e2e, ack = "e2e_latency", "ack_latency"
p99 = (d.get(e2e) or {}).get("p99_us")
kept = status == 0 and achieved >= 0.98 * rate and d.get("received") == d.get("records") and p99 is not None and p99 < 1_000_000
gb = d.get("bytes", 0) / 1e9
cpu = lambda key: "-" if not gb or d.get(key) is None else f"{d[key] / gb:.2f}"
client = d.get("client", "?")
print(f"{name}  {broker:<13} {client:<10} rate {rate:>9.0f}/s achieved {achieved:>9.0f}/s  "
      f"ack p50/p99/p99.9/max {ms(ack,'p50')}/{ms(ack,'p99')}/{ms(ack,'p999')}/{ms(ack,'max')} ms  "
      f"e2e p50/p99/p99.9/max {ms(e2e,'p50')}/{ms(e2e,'p99')}/{ms(e2e,'p999')}/{ms(e2e,'max')} ms  "
      f"CPU s/GB broker {cpu('broker_cpu_seconds')} client {cpu('client_cpu_seconds')}  "
      f"broker peak RSS {d.get('broker_peak_rss_bytes', 0) / 2**20:.0f} MiB  "
      f"{'kept up' if kept else 'did NOT keep up'}")
PY
        done
    done
done
