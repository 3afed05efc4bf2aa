#!/usr/bin/env bash
# A follower that stops reading, and what its leader holds while it catches up: a 3-node
# `skiff local`; one follower is stopped (SIGSTOP); WRITES SETs of VALUE_BYTES bytes go through
# the leader to 8 keys (one client, so that the log grows by exactly the bytes written); then the
# follower is resumed. Prints the leader's resident memory before, at its peak and after (VmRSS
# and VmHWM from /proc), the follower's peak, how long the follower took to apply every write
# (sampled every 250 ms) and the bytes the leader sent it meanwhile. See docs/BENCHMARKS.md,
# "Round eight".
#
#   bench/catchup.sh                              # 12,288 SETs of 16 KiB: a 192 MiB lag
#   WRITES=3000 SKIFF_BIN=path/to/skiff bench/catchup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/local_cluster.sh
. bench/local_cluster.sh

BASE=${BASE:-17001}
WRITES=${WRITES:-12288}
VALUE_BYTES=${VALUE_BYTES:-16384}
command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark (redis-tools)" >&2; exit 1; }
if [ -n "${SKIFF_BIN:-}" ]; then
  SKIFF=$SKIFF_BIN
else
  cargo build --release -p skiff >/dev/null 2>&1 || cargo build --release -p skiff
  SKIFF=${CARGO_TARGET_DIR:-target}/release/skiff
fi
WORK=$(mktemp -d)
stopped_pid=""
pid=""
cleanup() {
  [ -n "$stopped_pid" ] && kill -CONT "$stopped_pid" 2>/dev/null
  [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

start_local "$SKIFF" "$WORK/data" "$WORK/local.log"
# node_pid N: the `skiff serve` process of node N.
node_pid() {
  local child
  for child in $(pgrep -P "$pid"); do
    if tr '\0' ' ' <"/proc/$child/cmdline" | grep -q "/node$1 "; then echo "$child"; return; fi
  done
  echo "no process for node $1" >&2; exit 1
}
# kib PID FIELD: VmRSS or VmHWM of PID, in KiB.
kib() { awk -v field="$2:" '$1 == field {print $2}' "/proc/$1/status"; }
# applied N: node N's applied index.
applied() {
  curl -s "http://127.0.0.1:$((BASE + 200 + $1 - 1))/status" | grep -o '"applied":[0-9]*' | cut -d: -f2
}
# sent_to N: bytes the leader has sent node N.
sent_to() {
  curl -s "http://127.0.0.1:$((BASE + 200 + leader - 1))/metrics" |
    awk -v peer="skiff_peer_bytes_sent_total{peer=\"$1\"}" '$1 == peer {print $2}'
}

leader_pid=$(node_pid "$leader")
stopped_pid=$(node_pid "$follower")
kill -STOP "$stopped_pid"
redis-benchmark -p $((BASE + leader - 1)) -t set -d "$VALUE_BYTES" -r 8 -n "$WRITES" -c 1 -q \
  >"$WORK/bench.out" 2>&1 || { cat "$WORK/bench.out"; exit 1; }
target=$(curl -s "http://127.0.0.1:$((BASE + 200 + leader - 1))/status" |
  grep -o '"commit":[0-9]*' | cut -d: -f2)
before=$(kib "$leader_pid" VmRSS)
sent_before=$(sent_to "$follower")
kill -CONT "$stopped_pid"
resumed=$(date +%s%N)
caught_up=""
for _ in $(seq 240); do
  sleep 0.25
  now=$(applied "$follower" || true)
  if [ -n "$now" ] && [ "$now" -ge "$target" ]; then
    caught_up=$(( ($(date +%s%N) - resumed) / 1000000 ))
    break
  fi
done
[ -n "$caught_up" ] || { echo "node $follower did not catch up within 60 s" >&2; exit 1; }
sleep 1
echo "$WRITES SETs of $VALUE_BYTES bytes with node $follower stopped, then resumed:"
echo "  leader (node $leader): $((before / 1024)) MiB resident before, peak $(( $(kib "$leader_pid" VmHWM) / 1024 )) MiB, $(( $(kib "$leader_pid" VmRSS) / 1024 )) MiB after"
echo "  node $follower: peak $(( $(kib "$stopped_pid" VmHWM) / 1024 )) MiB; applied index $target within ${caught_up} ms (sampled every 250 ms)"
echo "  bytes the leader sent it meanwhile: $(( $(sent_to "$follower") - sent_before ))"
