#!/usr/bin/env bash
# bench/compare.sh — Sluice side by side with Tansu 0.6.0 and with this
# machine's own limits, in one run, with one client (`sluice bench`).
#
# A benchmark, not a test: not part of CI. Every run is bounded by a
# timeout; all traffic stays on 127.0.0.1. The broker under test runs on
# core $BROKER_CPU, the load generator on core $CLIENT_CPU (taskset).
#
# Environment:
#   QUICK=1               small sizes and short runs, for trying it out
#   BACKLOG_BYTES=N       consume backlog size (default 2 GiB; QUICK 256 MiB)
#   PRODUCE_BYTES=N       bytes per saturated produce run (default 1 GiB; QUICK 128 MiB)
#   RUN_SECONDS=N         time bound of each saturated produce run (default 20; QUICK 5)
#   E2E_SECONDS=N         length of each fixed-rate e2e run (default 10; QUICK 5)
#   SLUICE_BIN=path       use this sluice binary instead of building one
#   TANSU_ROOT=dir        where Tansu is installed (default ~/.cache/sluice-bench/tansu)
#   WORK_DIR=dir          scratch space for data dirs and results (default: mktemp)
#   WRITE_DOCS=0          do not rewrite docs/BENCHMARKS.md (print the table only)
#   BROKER_CPU / CLIENT_CPU  cores to pin to (default 0 and 1)
#   E2E_LINGER_MS=N       linger.ms of the fixed-rate runs (default 1; librdkafka's own
#                         default of 5 ms puts ~5 ms of client batching into every record)
#   WARM_MEMORY=0         skip warming the page cache (see warm_memory below)
#   WARM_MARGIN_MIB=256   free memory left unwarmed (this VM hands free pages
#                         back to its host, and a write into one is slow:
#                         docs/BENCHMARKS.md, item 4 of issue 15)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    BACKLOG_BYTES=${BACKLOG_BYTES:-$((256 * 1024 * 1024))}
    PRODUCE_BYTES=${PRODUCE_BYTES:-$((128 * 1024 * 1024))}
    RUN_SECONDS=${RUN_SECONDS:-5}
    E2E_SECONDS=${E2E_SECONDS:-5}
    FIO_SIZE=256M
else
    BACKLOG_BYTES=${BACKLOG_BYTES:-$((2 * 1024 * 1024 * 1024))}
    PRODUCE_BYTES=${PRODUCE_BYTES:-$((1024 * 1024 * 1024))}
    RUN_SECONDS=${RUN_SECONDS:-20}
    E2E_SECONDS=${E2E_SECONDS:-10}
    FIO_SIZE=1G
fi
TANSU_VERSION=0.6.0
TANSU_ROOT=${TANSU_ROOT:-$HOME/.cache/sluice-bench/tansu}
TANSU_BIN=$TANSU_ROOT/bin/tansu
BROKER_CPU=${BROKER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
WRITE_DOCS=${WRITE_DOCS:-1}
E2E_LINGER_MS=${E2E_LINGER_MS:-1}
WARM_MEMORY=${WARM_MEMORY:-1}
WORK_DIR=${WORK_DIR:-$(mktemp -d /tmp/sluice-compare.XXXXXX)}
RESULTS=$WORK_DIR/results
mkdir -p "$RESULTS"
COMMANDS=$RESULTS/commands.log
: >"$COMMANDS"

log() { printf '%s compare: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Every process this script starts, so that the exit trap stops exactly them.
STARTED_PIDS=()
cleanup() {
    for pid in "${STARTED_PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    rm -f "$WORK_DIR/warm.sparse"
}
trap cleanup EXIT

# Warming. On a virtual machine whose memory the host backs lazily (and
# takes back when the guest frees it: balloon free-page reporting), the
# first write to a freed page costs a host fault: on the project's 2-core
# machine `dd` into the page cache cost 2.2 s of system CPU per GB cold and
# 0.27 s/GB once the page cache had filled free memory. A broker's write()
# into the page cache pays that, and it would decide the result rather than
# the broker. So before the machine limits and before every broker start,
# the script reads a sparse file as large as the available memory (less
# WARM_MARGIN_MIB, 256 MiB: with the earlier 2 GiB a 1 GiB run fitted in
# the margin and wrote only into cold pages; docs/BENCHMARKS.md, issue 15
# item 4): free memory becomes clean page cache, and new writes reuse
# reclaimed pages, as on a long-running server. It costs no disk space.
WARM_FILE=
warm_memory() {
    [ "$WARM_MEMORY" = 1 ] || return 0
    if [ -z "$WARM_FILE" ]; then
        WARM_FILE=$WORK_DIR/warm.sparse
        local avail_kib
        avail_kib=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
        truncate -s $(((avail_kib - ${WARM_MARGIN_MIB:-256} * 1024) * 1024)) "$WARM_FILE"
    fi
    local started=$SECONDS
    cat "$WARM_FILE" >/dev/null
    log "warmed the page cache in $((SECONDS - started)) s"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() { # port pid
    local deadline=$((SECONDS + 30))
    while ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        if ! kill -0 "$2" 2>/dev/null; then return 1; fi
        if [ $SECONDS -gt $deadline ]; then return 1; fi
        sleep 0.2
    done
}

for tool in iperf3 fio taskset python3 timeout; do
    if ! command -v "$tool" >/dev/null; then
        log "installing $tool"
        apt-get install -y iperf3 fio util-linux >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && apt-get install -y iperf3 fio util-linux >/dev/null 2>&1; } ||
            log "could not install $tool"
    fi
done

# --- the client (and Sluice): one release binary ----------------------------
if [ -z "${SLUICE_BIN:-}" ]; then
    log "building sluice (release)"
    (cd "$REPO" && cargo build --release -p sluice)
    SLUICE_BIN=$REPO/target/release/sluice
fi
# A private copy: a rebuild during the run must not swap the binary.
cp "$SLUICE_BIN" "$WORK_DIR/sluice"
SLUICE=$WORK_DIR/sluice

# --- the peer: Tansu 0.6.0, installed outside the repository ----------------
TANSU_STATUS=ok
if [ ! -x "$TANSU_BIN" ]; then
    log "installing tansu $TANSU_VERSION into $TANSU_ROOT (about 10 minutes on 2 cores)"
    if ! CARGO_BUILD_JOBS=1 timeout 3600 nice -n 19 cargo install tansu --version "$TANSU_VERSION" \
        --features libsql,dynostore --root "$TANSU_ROOT" >"$RESULTS/tansu-install.log" 2>&1; then
        TANSU_STATUS="install failed (see $RESULTS/tansu-install.log)"
        log "TANSU INSTALL FAILED: measuring Sluice and the machine only; $TANSU_STATUS"
    fi
fi

# --- machine limits -----------------------------------------------------------
DISK_DIR=$WORK_DIR/disk
mkdir -p "$DISK_DIR"
warm_memory
log "machine: loopback TCP (iperf3, 5 s)"
IPERF_PORT=$(free_port)
taskset -c "$BROKER_CPU" iperf3 -s -1 -B 127.0.0.1 -p "$IPERF_PORT" >/dev/null 2>&1 &
STARTED_PIDS+=($!)
sleep 0.5
echo "taskset -c $CLIENT_CPU iperf3 -c 127.0.0.1 -p PORT -t 5 -J" >>"$COMMANDS"
timeout 30 taskset -c "$CLIENT_CPU" iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t 5 -J \
    >"$RESULTS/machine__iperf3.json" || log "iperf3 failed"
log "machine: sequential write with a final fsync (fio, $FIO_SIZE)"
echo "fio --name=seqwrite --directory=DATA_DISK --rw=write --bs=1M --size=$FIO_SIZE --ioengine=psync --end_fsync=1 --output-format=json" >>"$COMMANDS"
timeout 300 fio --name=seqwrite --directory="$DISK_DIR" --rw=write --bs=1M --size="$FIO_SIZE" \
    --ioengine=psync --end_fsync=1 --output-format=json >"$RESULTS/machine__fio_write.json" || log "fio write failed"
rm -f "$DISK_DIR"/seqwrite*
log "machine: fsync latency (fio, 4 KiB writes, fsync after each, 10 s)"
echo "fio --name=fsync --directory=DATA_DISK --rw=write --bs=4k --size=64M --fsync=1 --runtime=10 --ioengine=psync --output-format=json" >>"$COMMANDS"
timeout 120 fio --name=fsync --directory="$DISK_DIR" --rw=write --bs=4k --size=64M --fsync=1 \
    --runtime=10 --ioengine=psync --output-format=json >"$RESULTS/machine__fio_fsync.json" || log "fio fsync failed"
rm -f "$DISK_DIR"/fsync*
# What one core can write into the page cache (no fsync): the ceiling of a
# broker pinned to one core that writes through the page cache.
log "machine: page-cache write on the broker's core (dd, 1 GiB, no fsync)"
echo "taskset -c $BROKER_CPU dd if=/dev/zero of=DATA_DISK/pagecache bs=1M count=1024 (wall and system CPU seconds from bash's time)" >>"$COMMANDS"
warm_memory
(
    TIMEFORMAT='%R %S'
    { time taskset -c "$BROKER_CPU" dd if=/dev/zero of="$DISK_DIR/pagecache" bs=1M count=1024 2>/dev/null; } 2>&1
) >"$RESULTS/machine__pagecache.txt" || log "page-cache write failed"
rm -f "$DISK_DIR/pagecache"

# --- brokers ------------------------------------------------------------------
BROKER_PID=
BROKER_PORT=
start_broker() { # name
    local name=$1 dir=$WORK_DIR/data-$1
    rm -rf "$dir" && mkdir -p "$dir"
    warm_memory
    BROKER_PORT=$(free_port)
    case $name in
    sluice)
        echo "taskset -c $BROKER_CPU sluice serve --listen 127.0.0.1:PORT --data-dir DATA_DIR" >>"$COMMANDS"
        (cd "$dir" && exec taskset -c "$BROKER_CPU" "$SLUICE" serve --listen "127.0.0.1:$BROKER_PORT" \
            --data-dir "$dir" >"$dir/broker.log" 2>&1) &
        ;;
    tansu-sqlite | tansu-memory)
        local engine=sqlite://tansu.db
        [ "$name" = tansu-memory ] && engine=memory://tansu/
        echo "taskset -c $BROKER_CPU tansu broker --listener-url tcp://127.0.0.1:PORT --advertised-listener-url tcp://127.0.0.1:PORT --storage-engine $engine" >>"$COMMANDS"
        (cd "$dir" && exec taskset -c "$BROKER_CPU" "$TANSU_BIN" broker \
            --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
            --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" \
            --storage-engine "$engine" >"$dir/broker.log" 2>&1) &
        ;;
    esac
    BROKER_PID=$!
    STARTED_PIDS+=("$BROKER_PID")
    if ! wait_for_port "$BROKER_PORT" "$BROKER_PID"; then
        log "$name did not start listening; see $dir/broker.log"
        return 1
    fi
}

stop_broker() { # name
    kill "$BROKER_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 "$BROKER_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -9 "$BROKER_PID" 2>/dev/null || true
    rm -rf "$WORK_DIR/data-$1"
}

# bench NAME WORKLOAD TIMEOUT ARGS… — one `sluice bench` run, pinned, bounded.
bench() {
    local name=$1 workload=$2 limit=$3
    shift 3
    echo "taskset -c $CLIENT_CPU sluice bench $* -b 127.0.0.1:PORT --broker-pid PID --json" >>"$COMMANDS"
    log "$name: $workload"
    if ! timeout "$limit" taskset -c "$CLIENT_CPU" "$SLUICE" bench "$@" \
        -b "127.0.0.1:$BROKER_PORT" --broker-pid "$BROKER_PID" --json \
        >"$RESULTS/${name}__${workload}.json" 2>"$RESULTS/${name}__${workload}.err"; then
        log "$name: $workload ended with an error: $(tail -n 1 "$RESULTS/${name}__${workload}.err")"
    fi
}

# The saturated rate of Sluice (1 KiB, 1 partition, acks=1): the e2e runs
# of every broker use 50% and 80% of it.
E2E_RATE_50=
E2E_RATE_80=
# Half the saturated acks=all rate of Sluice: the fixed-rate acks=all run
# (ack latency without the client's own queue, which fills at saturation).
ACKS_ALL_RATE_50=

# One fresh broker per workload: clean state, and a per-workload peak RSS.
run_workload() { # name workload timeout args…
    local name=$1
    start_broker "$name" || return 0
    bench "$@"
    stop_broker "$name"
}

measure() { # broker name
    local name=$1
    for size in 1024 100; do
        local count=$((PRODUCE_BYTES / size))
        for partitions in 1 16; do
            for acks in 1 all; do
                run_workload "$name" "produce_${size}B_${partitions}p_acks${acks}" $((RUN_SECONDS + 90)) \
                    produce --topic bench --partitions "$partitions" --record-size "$size" \
                    --acks "$acks" --count "$count" --duration "${RUN_SECONDS}s"
            done
        done
    done
    if [ "$name" = sluice ]; then
        local rate
        rate=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records_per_second"])' \
            "$RESULTS/sluice__produce_1024B_1p_acks1.json" 2>/dev/null || echo "")
        if [ -z "$rate" ]; then
            log "no saturated Sluice rate; e2e runs at 10000 and 16000 records/s"
            rate=20000
        fi
        E2E_RATE_50=$(python3 -c "print(max(1, int($rate * 0.5)))")
        E2E_RATE_80=$(python3 -c "print(max(1, int($rate * 0.8)))")
        echo "$E2E_RATE_50 $E2E_RATE_80" >"$RESULTS/e2e_rates"
        rate=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records_per_second"])' \
            "$RESULTS/sluice__produce_1024B_1p_acksall.json" 2>/dev/null || echo 20000)
        ACKS_ALL_RATE_50=$(python3 -c "print(max(1, int($rate * 0.5)))")
        echo "$ACKS_ALL_RATE_50 $E2E_LINGER_MS" >"$RESULTS/acks_all_rate"
    fi
    for percent in 50 80; do
        local rate_var=E2E_RATE_$percent
        run_workload "$name" "e2e_${percent}pct" $((E2E_SECONDS + 120)) \
            e2e --topic e2e --partitions 1 --record-size 1024 --acks 1 \
            --rate "${!rate_var}" --linger-ms "$E2E_LINGER_MS" --duration "${E2E_SECONDS}s"
    done
    run_workload "$name" "produce_1024B_1p_acksall_50pct" $((E2E_SECONDS + 120)) \
        produce --topic bench --partitions 1 --record-size 1024 --acks all \
        --rate "$ACKS_ALL_RATE_50" --linger-ms "$E2E_LINGER_MS" --duration "${E2E_SECONDS}s"
    # The backlog: fill, then drain it from the start, on the same broker.
    start_broker "$name" || return 0
    local backlog_count=$((BACKLOG_BYTES / 1024))
    bench "$name" "backlog_fill" 900 produce --topic backlog --partitions 1 \
        --record-size 1024 --acks 1 --count "$backlog_count" --duration 600s
    bench "$name" "consume_backlog" 900 consume --topic backlog --duration 600s
    du -sb "$WORK_DIR/data-$name" 2>/dev/null | cut -f1 >"$RESULTS/${name}__backlog_disk_bytes" || true
    stop_broker "$name"
}

START_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
measure sluice
if [ "$TANSU_STATUS" = ok ]; then
    measure tansu-sqlite
    measure tansu-memory
fi

# --- the report -----------------------------------------------------------------
cat >"$RESULTS/run.json" <<EOF
{"date": "$START_DATE", "quick": $QUICK, "backlog_bytes": $BACKLOG_BYTES,
 "produce_bytes": $PRODUCE_BYTES, "run_seconds": $RUN_SECONDS, "e2e_seconds": $E2E_SECONDS,
 "fio_size": "$FIO_SIZE", "broker_cpu": $BROKER_CPU, "client_cpu": $CLIENT_CPU,
 "tansu_status": "$TANSU_STATUS", "tansu_version": "$TANSU_VERSION",
 "commit": "$(cd "$REPO" && git rev-parse --short HEAD)",
 "dirty": "$(cd "$REPO" && git status --porcelain --untracked-files=no | head -c1 | wc -c)",
 "cores": $(nproc), "mem_kib": $(awk '/MemTotal/ {print $2}' /proc/meminfo),
 "cpu_model": "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)",
 "kernel": "$(uname -r)", "load_before": "$LOAD_BEFORE",
 "warm_memory": $WARM_MEMORY, "e2e_linger_ms": $E2E_LINGER_MS,
 "sluice_bin": "${SLUICE_BIN_NOTE:-cargo build --release -p sluice}"}
EOF
python3 "$REPO/bench/report.py" "$RESULTS" >"$RESULTS/section.md"
cat "$RESULTS/section.md"
if [ "$WRITE_DOCS" = 1 ]; then
    python3 "$REPO/bench/report.py" --replace "$REPO/docs/BENCHMARKS.md" "$RESULTS/section.md"
    log "wrote the section into docs/BENCHMARKS.md"
fi
log "results in $RESULTS"
