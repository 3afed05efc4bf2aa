#!/usr/bin/env bash
# The core benchmark, Skiff beside openraft: builds `skiff-bench` and the openraft peer
# (bench/peers/openraft-bench) in release mode, then for each client count runs, in turn and
# ROUNDS times over, Skiff driven by one loop (`--shape loop`), Skiff with a thread per node and
# one for the clients (`--shape threads`), and openraft; and prints a table of the median runs
# (by ops/s) with the ratios of Skiff's throughput to openraft's.
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
    for impl in skiff skiff-threads openraft; do
      case "$impl" in
        skiff) cmd=("$skiff" core --shape loop) ;;
        skiff-threads) cmd=("$skiff" core --shape threads) ;;
        openraft) cmd=("$openraft" core) ;;
      esac
      line="$("${cmd[@]}" --clients "$c" --ops "$n" --json)"
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
printf '| %7s | %7s | %10s | %7s | %7s | %10s | %7s | %7s | %10s | %7s | %7s | %6s | %6s |\n' \
  clients ops "loop ops/s" p50_us p99_us "thr. ops/s" p50_us p99_us "openraft" p50_us p99_us "loop/o" "thr./o"
echo '|--------:|--------:|-----------:|--------:|--------:|-----------:|--------:|--------:|-----------:|--------:|--------:|-------:|-------:|'
for c in $CLIENTS; do
  read -r l_ops l_p50 l_p99 <<<"$(median skiff "$c")"
  read -r t_ops t_p50 t_p99 <<<"$(median skiff-threads "$c")"
  read -r o_ops o_p50 o_p99 <<<"$(median openraft "$c")"
  ratio() { awk -v s="$1" -v o="$2" 'BEGIN { printf "%.1fx", s / o }'; }
  printf '| %7s | %7s | %10s | %7s | %7s | %10s | %7s | %7s | %10s | %7s | %7s | %6s | %6s |\n' \
    "$c" "$(ops_for "$c")" "$l_ops" "$l_p50" "$l_p99" "$t_ops" "$t_p50" "$t_p99" \
    "$o_ops" "$o_p50" "$o_p99" "$(ratio "$l_ops" "$o_ops")" "$(ratio "$t_ops" "$o_ops")"
done
echo
echo "loop: skiff-bench core --shape loop; thr.: --shape threads; openraft: openraft-bench core;"
echo "ops/s = writes / elapsed; p50_us, p99_us: write latency in microseconds; loop/o, thr./o: ratio to openraft"
echo "raw results: $RESULTS"
