#!/usr/bin/env bash
# The core benchmark, Skiff beside openraft: builds `skiff-bench` and the openraft peer
# (bench/peers/openraft-bench) in release mode, then for each client count runs the two in
# turn, ROUNDS times, alternating, and prints a table of the median runs (by ops/s).
#
#   bench/core.sh                      # clients 1 64 256 1024 4096, 3 rounds
#   CLIENTS="1 64" ROUNDS=5 bench/core.sh
#   OPS=100000 bench/core.sh           # the same N for every client count
#
# Target directories: SKIFF_TARGET_DIR (default: $CARGO_TARGET_DIR or ./target) and
# PEERS_TARGET_DIR (default: bench/peers/openraft-bench/target). Raw result lines (JSON) are
# written to RESULTS (default: a temporary file, named at the end).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

CLIENTS="${CLIENTS:-1 64 256 1024 4096}"
ROUNDS="${ROUNDS:-3}"
SKIFF_TARGET_DIR="${SKIFF_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}}"
PEERS_TARGET_DIR="${PEERS_TARGET_DIR:-$root/bench/peers/openraft-bench/target}"
RESULTS="${RESULTS:-$(mktemp -t skiff-core-bench.XXXXXX.jsonl)}"

# Writes per run: enough that each openraft run takes about a second or two on a small machine.
ops_for() {
  if [ -n "${OPS:-}" ]; then echo "$OPS"; return; fi
  case "$1" in
    1) echo 30000 ;;
    64) echo 500000 ;;
    256) echo 1000000 ;;
    *) echo 2000000 ;;
  esac
}

echo "== building (release)" >&2
cargo build --release --quiet -p skiff-bench --target-dir "$SKIFF_TARGET_DIR"
cargo build --release --quiet --manifest-path bench/peers/openraft-bench/Cargo.toml \
  --target-dir "$PEERS_TARGET_DIR"
skiff="$SKIFF_TARGET_DIR/release/skiff-bench"
openraft="$PEERS_TARGET_DIR/release/openraft-bench"
openraft_version="$(awk '/^name = "openraft"$/ { getline; gsub(/version = |"/, ""); print }' \
  bench/peers/openraft-bench/Cargo.lock)"

# field NAME LINE: a number from one JSON result line.
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$2"; }

: >"$RESULTS"
for c in $CLIENTS; do
  n="$(ops_for "$c")"
  for round in $(seq 1 "$ROUNDS"); do
    for impl in skiff openraft; do
      bin="$skiff"; [ "$impl" = openraft ] && bin="$openraft"
      line="$("$bin" core --clients "$c" --ops "$n" --json)"
      echo "$line" >>"$RESULTS"
      echo "round $round: $line" >&2
    done
  done
done

# median IMPL CLIENTS: the run with the median ops/s, as "ops_per_s p50_us p99_us".
median() {
  grep "\"impl\":\"$1\",\"clients\":$2," "$RESULTS" | while read -r line; do
    echo "$(field ops_per_s "$line") $(field p50_us "$line") $(field p99_us "$line")"
  done | sort -n | awk '{ rows[NR] = $0 } END { print rows[int((NR + 1) / 2)] }'
}

echo
echo "core benchmark: 3 nodes in one process, fixed leader, closed-loop clients, empty writes"
echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1); openraft $openraft_version; median of $ROUNDS alternating rounds"
echo
printf '| %7s | %9s | %12s | %9s | %9s | %12s | %9s | %9s | %6s |\n' \
  clients ops "skiff ops/s" "p50 µs" "p99 µs" "openraft ops/s" "p50 µs" "p99 µs" ratio
printf '|--------:|----------:|-------------:|----------:|----------:|---------------:|----------:|----------:|-------:|\n'
for c in $CLIENTS; do
  read -r s_ops s_p50 s_p99 <<<"$(median skiff "$c")"
  read -r o_ops o_p50 o_p99 <<<"$(median openraft "$c")"
  ratio="$(awk -v s="$s_ops" -v o="$o_ops" 'BEGIN { printf "%.1f×", s / o }')"
  printf '| %7s | %9s | %12s | %9s | %9s | %14s | %9s | %9s | %6s |\n' \
    "$c" "$(ops_for "$c")" "$s_ops" "$s_p50" "$s_p99" "$o_ops" "$o_p50" "$o_p99" "$ratio"
done
echo
echo "raw results: $RESULTS"
