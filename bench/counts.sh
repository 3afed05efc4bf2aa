#!/usr/bin/env bash
# Per-request counts of one build, which do not depend on the machine's load: syscalls, context
# switches and CPU time per SET on the leader and on one follower of a 3-node `skiff local`,
# while redis-benchmark sends SETs to the leader (after 2 000 to warm up). Prints one CSV row
# per node: build, setting, node role, syscalls/SET, context switches/SET, CPU µs/SET, ops/s.
# Needs perf (linux-perf) and redis-benchmark.
#
#   bench/counts.sh SKIFF [LABEL]
#   OPS=20000 SETTING="-c 1" bench/counts.sh target/release/skiff new
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 SKIFF [LABEL]" >&2; exit 2; }
BIN=$1
LABEL=${2:-$1}
OPS=${OPS:-20000}
BASE=${BASE:-17301}
SETTING=${SETTING:--c 1}
WORK=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# shellcheck source=bench/local_cluster.sh
. "$(dirname "$0")/local_cluster.sh"
start_local "$BIN" "$WORK/data" "$WORK/local.log"
port=$((BASE + leader - 1))

# The serve process of node $1: a child of `skiff local` whose data directory is node$1.
node_pid() {
  for child in $(pgrep -P "$pid"); do
    if tr '\0' '\n' <"/proc/$child/cmdline" | grep -qx ".*/node$1"; then echo "$child"; fi
  done
}
# utime + stime of process $1, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

lpid=$(node_pid "$leader")
fpid=$(node_pid "$follower")
[ -n "$lpid" ] && [ -n "$fpid" ] || { echo "node processes not found" >&2; exit 1; }
# shellcheck disable=SC2086
timeout 120 redis-benchmark -p "$port" -t set -d 256 -r 100000 -n 2000 $SETTING -q >/dev/null
lcpu=$(cpu_ticks "$lpid"); fcpu=$(cpu_ticks "$fpid")
perf stat -x, -e context-switches,raw_syscalls:sys_enter -p "$lpid" -o "$WORK/leader.perf" &
lperf=$!
perf stat -x, -e context-switches,raw_syscalls:sys_enter -p "$fpid" -o "$WORK/follower.perf" &
fperf=$!
sleep 0.5
# shellcheck disable=SC2086
timeout 600 redis-benchmark -p "$port" -t set -d 256 -r 100000 -n "$OPS" $SETTING --csv >"$WORK/bench.out"
kill -INT "$lperf" "$fperf"
wait "$lperf" "$fperf" 2>/dev/null || true
lcpu=$(( $(cpu_ticks "$lpid") - lcpu )); fcpu=$(( $(cpu_ticks "$fpid") - fcpu ))
ops=$(python3 -c 'import csv,sys
for row in csv.reader(sys.stdin):
    if row and row[0] == "SET": print(row[1])' <"$WORK/bench.out")
hz=$(getconf CLK_TCK)
for role in leader follower; do
  cpu=$lcpu; [ "$role" = follower ] && cpu=$fcpu
  python3 - "$WORK/$role.perf" "$LABEL" "$SETTING" "$role" "$OPS" "$cpu" "$hz" "$ops" <<'EOF'
import sys
path, label, setting, role, ops, cpu, hz, rate = sys.argv[1:]
counts = {}
for line in open(path):
    fields = line.strip().split(",")
    if len(fields) > 2 and fields[0].replace(".", "").isdigit():
        counts[fields[2]] = float(fields[0])
ops = int(ops)
print(f"{label},{setting},{role},{counts['raw_syscalls:sys_enter'] / ops:.1f},"
      f"{counts['context-switches'] / ops:.2f},{int(cpu) / int(hz) * 1e6 / ops:.0f},{rate}")
EOF
done
