#!/usr/bin/env bash
# bench/failover.sh — how long a 3-node `sluice dev` cluster (Kafka's
# default timeouts) takes to recover from (a) kill -9 of the active
# controller: from the kill to the next successful CreateTopics, sent to a
# surviving broker (which forwards it, retrying until a new controller
# answers); and (b) SIGTERM of the leader of a partition: from the signal
# to the moment a surviving broker's Metadata shows new leaders for every
# partition it led (its controlled shutdown); and (c) kill -9 of the leader
# of a 1-partition topic (replication factor 3, min.insync.replicas=2)
# while `sluice bench produce --acks all --rate ACK_RATE` writes to it: the
# longest ack latency of the run, which is the time from the kill to the
# next acknowledged acks=all record (the records sent just before and after
# the kill wait for the new leader), within one send interval plus one
# normal ack latency; the run must also lose nothing (no failed record).
# RUNS of each, the killed node
# restarted and caught up (full ISRs) between runs; prints every run and
# the medians. Polling resolution: one `sluice` CLI call (tens of ms). A
# benchmark, not a test.
#
# Environment: SLUICE_BIN (default target/release/sluice), RUNS (default
# 5), PARTITIONS (default 6), ACK_RATE (default 500 records/s), WORK_DIR, PORT (default 19292, below the ephemeral range; node N
# listens on PORT+N-1) and CONTROLLER_PORT (default 19392).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SLUICE=${SLUICE_BIN:-$REPO/target/release/sluice}
RUNS=${RUNS:-5}
PARTITIONS=${PARTITIONS:-6}
PORT=${PORT:-19292}
CONTROLLER_PORT=${CONTROLLER_PORT:-19392}
WORK_DIR=${WORK_DIR:-$(mktemp -d /tmp/sluice-failover.XXXXXX)}
ACK_RATE=${ACK_RATE:-500}
TOPIC=failover
ACK_TOPIC=failover-acks

DEV=
declare -A PID # node id -> pid of the running node
cleanup() {
    for pid in "${PID[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    if [ -n "$DEV" ]; then
        kill -TERM "$DEV" 2>/dev/null || true
        wait "$DEV" 2>/dev/null || true
    fi
    for pid in "${PID[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    # The node logs stay (data/node-N.log) for a failed run; the data goes.
    rm -rf "$WORK_DIR"/data/node-?/
}
trap cleanup EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
port_of() { echo $((PORT + $1 - 1)); }
other_than() { # node id -> another node's id
    if [ "$1" = 1 ]; then echo 2; else echo 1; fi
}

"$SLUICE" dev --brokers 3 --port "$PORT" --controller-port "$CONTROLLER_PORT" \
    --data-dir "$WORK_DIR/data" >"$WORK_DIR/dev.out" 2>"$WORK_DIR/dev.err" &
DEV=$!
for _ in $(seq 600); do
    grep -q '^Ctrl-C' "$WORK_DIR/dev.out" 2>/dev/null && break
    kill -0 "$DEV" 2>/dev/null || { cat "$WORK_DIR/dev.err" >&2; exit 1; }
    sleep 0.1
done
for node in 1 2 3; do
    PID[$node]=$(awk -v n="$node" '$1 == "node" && $2 == n {print $4}' "$WORK_DIR/dev.out")
done

controller() { # the active controller, as a surviving broker sees it
    "$SLUICE" cluster info -b "127.0.0.1:$(port_of "$1")" 2>/dev/null |
        awk '$1 == "CONTROLLER" {print $2}'
}
# "partition leader isr" rows of the topic, as node $1 sees it
partitions() { # node, [topic]
    "$SLUICE" topic describe "${2:-$TOPIC}" -b "127.0.0.1:$(port_of "$1")" 2>/dev/null |
        awk '$1 == "PARTITION" {rows = 1; next} rows && NF == 0 {exit} rows {print $1, $2, $5}'
}
wait_until() { # what, bound in seconds, command...
    local what=$1 bound=$2
    shift 2
    local deadline=$(( $(date +%s) + bound ))
    until "$@"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "failover: $what: not within ${bound}s" >&2
            exit 1
        fi
        sleep 0.2
    done
}
fully_replicated() { # every partition of both topics led, every ISR of three, as node $1 sees it
    local rows acks
    rows=$(partitions "$1")
    acks=$(partitions "$1" "$ACK_TOPIC")
    [ "$(echo "$rows" | grep -c .)" = "$PARTITIONS" ] && [ "$(echo "$acks" | grep -c .)" = 1 ] &&
        ! printf '%s\n%s\n' "$rows" "$acks" | awk '$2 == -1 || split($3, isr, ",") != 3 {bad = 1} END {exit !bad}'
}
restart() { # node id
    local command
    command=$(sed -n "s/^restart node $1 with: //p" "$WORK_DIR/dev.out")
    # shellcheck disable=SC2086
    setsid $command >>"$WORK_DIR/data/node-$1.log" 2>&1 &
    PID[$1]=$!
}
# Stopped: gone, or a zombie (`sluice dev` reaps its children only when it stops).
# Back: running, serving clients on its own port (a broker opens its
# listener once the controller unfenced it), and every ISR full again.
back() { # node id, a survivor
    ! stopped "$1" &&
        "$SLUICE" cluster info -b "127.0.0.1:$(port_of "$1")" >/dev/null 2>&1 &&
        fully_replicated "$2"
}
stopped() {
    local state
    state=$(awk '{print $3}' "/proc/${PID[$1]}/stat" 2>/dev/null || true)
    [ -z "$state" ] || [ "$state" = Z ]
}

"$SLUICE" topic create "$TOPIC" -p "$PARTITIONS" -b "127.0.0.1:$PORT" >/dev/null
"$SLUICE" topic create "$ACK_TOPIC" -p 1 -r 3 --config min.insync.replicas=2 -b "127.0.0.1:$PORT" >/dev/null
wait_until "the topic is fully replicated" 60 fully_replicated 1

kill_times=()
term_times=()
ack_times=()
for run in $(seq "$RUNS"); do
    # (a) kill -9 of the active controller -> next successful CreateTopics
    victim=$(controller 1)
    survivor=$(other_than "$victim")
    start=$(now_ms)
    kill -KILL "${PID[$victim]}"
    # Replication factor 1: the killed node counts as a broker only until
    # its session expires, and RF 3 cannot be placed on two.
    until "$SLUICE" topic create "after-kill-$run" -p 1 -r 1 -b "127.0.0.1:$(port_of "$survivor")" >/dev/null 2>&1; do
        [ $(( $(now_ms) - start )) -lt 120000 ] || { echo "failover: no CreateTopics within 120 s" >&2; exit 1; }
    done
    elapsed=$(( $(now_ms) - start ))
    kill_times+=("$elapsed")
    echo "run $run: kill -9 of the active controller (node $victim) -> CreateTopics succeeded after $elapsed ms"
    wait_until "node $victim is dead" 30 stopped "$victim"
    restart "$victim"
    wait_until "node $victim is back" 120 back "$victim" "$survivor"

    # (b) SIGTERM of a leader -> every partition it led has a new leader
    victim=$(partitions 1 | awk 'NR == 1 {print $2}')
    survivor=$(other_than "$victim")
    start=$(now_ms)
    kill -TERM "${PID[$victim]}"
    moved() {
        local rows
        rows=$(partitions "$survivor")
        [ -n "$rows" ] && ! echo "$rows" | awk -v v="$victim" '$2 == v || $2 == -1 {bad = 1} END {exit !bad}'
    }
    until moved; do
        [ $(( $(now_ms) - start )) -lt 60000 ] || { echo "failover: leaders did not move within 60 s" >&2; exit 1; }
    done
    elapsed=$(( $(now_ms) - start ))
    term_times+=("$elapsed")
    echo "run $run: SIGTERM of node $victim -> its partitions had new leaders after $elapsed ms"
    wait_until "node $victim stopped" 60 stopped "$victim"
    restart "$victim"
    wait_until "node $victim is back" 120 back "$victim" "$survivor"

    # (c) kill -9 of a leader under acks=all load -> next acknowledged record
    victim=$(partitions 1 "$ACK_TOPIC" | awk 'NR == 1 {print $2}')
    survivor=$(other_than "$victim")
    "$SLUICE" bench produce -b "127.0.0.1:$(port_of "$survivor")" --topic "$ACK_TOPIC" \
        --acks all --rate "$ACK_RATE" --record-size 1KiB --duration 30s --json \
        >"$WORK_DIR/acks-$run.json" 2>"$WORK_DIR/acks-$run.err" &
    bench=$!
    sleep 5
    kill -KILL "${PID[$victim]}"
    wait "$bench" || { cat "$WORK_DIR/acks-$run.err" >&2; exit 1; }
    read -r elapsed failed < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["ack_latency"]["max_us"] // 1000, r["failed"])' "$WORK_DIR/acks-$run.json")
    [ "$failed" = 0 ] || { echo "failover: $failed records failed in run $run" >&2; cat "$WORK_DIR/acks-$run.json" >&2; exit 1; }
    ack_times+=("$elapsed")
    echo "run $run: kill -9 of node $victim, leader of $ACK_TOPIC under acks=all -> next ack after $elapsed ms (longest ack latency; no record failed)"
    wait_until "node $victim is dead" 30 stopped "$victim"
    restart "$victim"
    wait_until "node $victim is back" 120 back "$victim" "$survivor"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
echo "median over $RUNS runs: kill -9 of the active controller -> CreateTopics: $(median "${kill_times[@]}") ms"
echo "median over $RUNS runs: SIGTERM of a leader -> new leaders: $(median "${term_times[@]}") ms"
echo "median over $RUNS runs: kill -9 of a leader under acks=all -> next ack: $(median "${ack_times[@]}") ms"
