#!/usr/bin/env bash
# The fault-injection suite (issue 14): a cluster of real `sluice serve`
# processes inside a private network + mount + pid namespace created for
# this run, an idempotent acks=all producer, a seeded nemesis (kills,
# pauses, iptables partitions), a healing phase and a checker. See "The
# fault-injection suite" in docs/ARCHITECTURE.md; findings in docs/FAULTS.md.
#
#   scripts/faults.sh [--duration SECS] [--seed N] [--nodes 3|5] [--keep] [harness options]
#
# Other options go to the harness (`sluice-faults --help`): --partitions,
# --rate, --faults kill,pause,… (also pause-new-leader, bridge, disk-full,
# clock-jump), --combine. Needs root (namespaces, iptables,
# setpriv). Exit status: 0 pass, 1 a violation, 2 the harness could not run.
# The namespace takes the nodes, the iptables rules and the tmpfs mounts
# with it on every exit path; the run directory (logs) is removed after a
# pass (unless --keep) and kept, with its path printed, otherwise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

duration=75
seed=""
nodes=3
keep=0
passthrough=()
while (($#)); do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --nodes) nodes="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) passthrough+=("$1"); shift ;;
  esac
done
[[ -n "$seed" ]] || seed=$(( $(date +%s) % 100000 ))
echo "faults.sh: seed $seed, $nodes nodes, $duration s of faults (replay: scripts/faults.sh --seed $seed --nodes $nodes --duration $duration ${passthrough[*]:-})"

if [[ $(id -u) -ne 0 ]]; then
  echo "faults.sh: needs root (network namespace, iptables, setpriv)" >&2
  exit 2
fi

export DEBIAN_FRONTEND=noninteractive
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
if ((${#missing[@]})); then
  echo "faults.sh: installing ${missing[*]}"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "faults.sh: building sluice and sluice-faults"
cargo build --quiet -p sluice -p sluice-faults
target="${CARGO_TARGET_DIR:-target}"

run_dir=$(mktemp -d /tmp/sluice-faults.XXXXXX)
# The run uses its own copies of the binaries: a node restarted late in a
# long run must be the build the run started with, whatever is built in
# the tree meanwhile.
mkdir "$run_dir/bin"
cp "$target/debug/sluice" "$target/debug/sluice-faults" "$run_dir/bin/"
sluice="$run_dir/bin/sluice"
harness="$run_dir/bin/sluice-faults"
status=2
cleanup() {
  if [[ $status -eq 0 && $keep -eq 0 ]]; then
    rm -rf "$run_dir"
  else
    rm -rf "$run_dir/bin"
    echo "faults.sh: exit $status; node logs and the harness log kept in $run_dir"
  fi
}
trap cleanup EXIT

# --pid --fork --kill-child: the harness is pid 1 of its own pid namespace,
# so when it ends, however it ends, the kernel kills every node with it.
# Every wait inside is bounded; `timeout` bounds the whole run as well. The
# run is a background job so that Ctrl-C or a SIGTERM to this script can be
# passed on to it and the cleanup above still runs: the harness (pid 1 of
# its namespace) and unshare ignore SIGTERM, so timeout's SIGKILL 3 s later
# ends unshare, and --kill-child and the namespace take the rest.
timeout --foreground --kill-after=3 $((duration + 1500)) \
  unshare --net --mount --propagation private --pid --fork --mount-proc --kill-child \
  env SLUICE_FAULTS_PRIVATE_NAMESPACE=1 bash -c '
    set -e
    ip link set lo up
    exec "$@"
  ' faults "$harness" --sluice "$sluice" --run-dir "$run_dir" \
    --seed "$seed" --nodes "$nodes" --duration "$duration" "${passthrough[@]}" \
  > >(tee "$run_dir/harness.log") 2>&1 &
run=$!
trap 'echo "faults.sh: interrupted; stopping the run"; kill -TERM "$run" 2>/dev/null' INT TERM
set +e
wait "$run"
status=$?
# A trap interrupts `wait`; wait again until the run has really ended.
while kill -0 "$run" 2>/dev/null; do
  wait "$run"
  status=$?
done
set -e
# tee may still be writing the last lines.
sleep 0.5
exit "$status"
