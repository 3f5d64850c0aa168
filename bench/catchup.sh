#!/usr/bin/env bash
# bench/catchup.sh — how fast a follower that was down catches up (issue
# 13): a 3-node `sluice dev` cluster, a topic of PARTITIONS partitions with
# replication factor 3 and min.insync.replicas=2; node 3 is stopped
# (SIGTERM, its leaderships move away), BYTES of 1 KiB records are written
# with acks=all (`sluice bench produce`), node 3 is started again, and the
# time from its start to the moment it is back in every ISR of the topic is
# measured, as seen through node 1's Metadata (polled with `sluice topic
# describe`, tens of ms). The rate is the record bytes written while it was
# down (what it must fetch) over that time; the time includes the node's
# own start (opening its logs, joining the metadata quorum, registering),
# which the log line `metadata quorum open` separates.
# ROUNDS rounds on the same cluster. A benchmark, not a test.
#
# Environment: SLUICE_BIN (default target/release/sluice), RECORDS (default
# 1048576: 1 GiB of 1 KiB values),
# PARTITIONS (default 3), ROUNDS (default 3), WORK_DIR, PORT (default 19492,
# below the ephemeral range; node N listens on PORT+N-1), CONTROLLER_PORT
# (default 19592), FLUSH (sluice.flush.before.visible, default true).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SLUICE=${SLUICE_BIN:-$REPO/target/release/sluice}
RECORDS=${RECORDS:-1048576}
PARTITIONS=${PARTITIONS:-3}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-19492}
CONTROLLER_PORT=${CONTROLLER_PORT:-19592}
FLUSH=${FLUSH:-true}
WORK_DIR=${WORK_DIR:-$(mktemp -d /tmp/sluice-catchup.XXXXXX)}
TOPIC=catchup

DEV=
NODE3=
cleanup() {
    [ -n "$NODE3" ] && kill -TERM "$NODE3" 2>/dev/null || true
    if [ -n "$DEV" ]; then
        kill -TERM "$DEV" 2>/dev/null || true
        wait "$DEV" 2>/dev/null || true
    fi
    if [ -n "$NODE3" ]; then
        for _ in $(seq 100); do kill -0 "$NODE3" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NODE3" 2>/dev/null || true
    fi
    rm -rf "$WORK_DIR"/data/node-?/
}
trap cleanup EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

"$SLUICE" dev --brokers 3 --port "$PORT" --controller-port "$CONTROLLER_PORT" \
    --data-dir "$WORK_DIR/data" --set "sluice.flush.before.visible=$FLUSH" \
    >"$WORK_DIR/dev.out" 2>"$WORK_DIR/dev.err" &
DEV=$!
for _ in $(seq 600); do
    grep -q '^Ctrl-C' "$WORK_DIR/dev.out" 2>/dev/null && break
    kill -0 "$DEV" 2>/dev/null || { cat "$WORK_DIR/dev.err" >&2; exit 1; }
    sleep 0.1
done
NODE3=$(awk '$1 == "node" && $2 == 3 {print $4}' "$WORK_DIR/dev.out")
B1="127.0.0.1:$PORT"

# "partition leader isr" rows of the topic, as node 1 sees it
partitions() {
    "$SLUICE" topic describe "$TOPIC" -b "$B1" 2>/dev/null |
        awk '$1 == "PARTITION" {rows = 1; next} rows && NF == 0 {exit} rows {print $1, $2, $5}'
}
in_every_isr() { # node id
    local rows
    rows=$(partitions)
    [ "$(echo "$rows" | grep -c .)" = "$PARTITIONS" ] &&
        ! echo "$rows" | awk -v n="$1" '{gsub(/[][]/, "", $3); split($3, isr, ","); found = 0; for (i in isr) if (isr[i] == n) found = 1; if (!found) bad = 1} END {exit !bad}'
}
stopped() {
    local state
    state=$(awk '{print $3}' "/proc/$NODE3/stat" 2>/dev/null || true)
    [ -z "$state" ] || [ "$state" = Z ]
}
wait_until() { # what, bound in seconds, command...
    local what=$1 bound=$2
    shift 2
    local deadline=$(( $(date +%s) + bound ))
    until "$@"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "catchup: $what: not within ${bound}s" >&2
            exit 1
        fi
        sleep 0.05
    done
}

"$SLUICE" topic create "$TOPIC" -p "$PARTITIONS" -r 3 -c min.insync.replicas=2 -b "$B1" >/dev/null
wait_until "full ISRs" 60 in_every_isr 3

times=()
rates=()
restart_command=$(sed -n "s/^restart node 3 with: //p" "$WORK_DIR/dev.out")
for round in $(seq "$ROUNDS"); do
    kill -TERM "$NODE3"
    wait_until "node 3 stopped" 60 stopped
    "$SLUICE" bench produce -b "$B1" --topic "$TOPIC" --acks all --record-size 1KiB \
        --count "$RECORDS" --json >"$WORK_DIR/produce-$round.json" 2>"$WORK_DIR/produce-$round.err" ||
        { cat "$WORK_DIR/produce-$round.err" >&2; exit 1; }
    start=$(now_ms)
    # shellcheck disable=SC2086
    setsid $restart_command >>"$WORK_DIR/data/node-3.log" 2>&1 &
    NODE3=$!
    wait_until "node 3 back in every ISR" 600 in_every_isr 3
    elapsed=$(( $(now_ms) - start ))
    read -r produced bytes < <(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["megabytes_per_second"], r["bytes"])' "$WORK_DIR/produce-$round.json")
    rate=$(awk -v b="$bytes" -v ms="$elapsed" 'BEGIN {printf "%.1f", b / 1048576 / (ms / 1000)}')
    # From its log: the node's own start (to `node started`: logs opened,
    # quorum joined, registered), the rest is fetching.
    up=$(python3 -c '
import datetime, sys
def at(line):
    return datetime.datetime.fromisoformat(line.split()[0].rstrip("Z"))
lines = open(sys.argv[1]).read().splitlines()
start = [l for l in lines if "starting broker" in l][-1]
up = [l for l in lines if "node started" in l][-1]
print(int((at(up) - at(start)).total_seconds() * 1000))' "$WORK_DIR/data/node-3.log")
    times+=("$elapsed")
    rates+=("$rate")
    echo "round $round: $RECORDS records of 1 KiB written while node 3 was down (acks=all at $produced MB/s); node 3 started -> in every ISR after $elapsed ms (its own start $up ms): $rate MiB/s of what was written"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo "median over $ROUNDS rounds: start -> in every ISR $(median "${times[@]}") ms, $(median "${rates[@]}") MiB/s"
