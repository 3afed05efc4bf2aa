#!/usr/bin/env bash
# Two builds of skiff side by side: each runs as a 3-node `skiff local` cluster and is driven by
# the same redis-benchmark commands as bench/cluster.sh, the two alternating ROUNDS times (in
# the other order each round) so that the machine's drift falls on both alike. Prints one CSV
# row per run (build, round, target, setting, command, ops/s, p50 ms, p99 ms) and, per row
# kind, the median of each build and in how many rounds the new build was the faster, and
# had the lower p99; then each build's peak RSS of its largest node, run by run.
# A redis-benchmark run that does not end within RUN_TIMEOUT seconds is stopped and reported
# (with its last output and the cluster's log), and the runs go on.
#
#   bench/ab.sh OLD_SKIFF NEW_SKIFF
#   ROUNDS=4 SETTINGS="-c 50 -P 16" bench/ab.sh old/target/release/skiff target/release/skiff
#   OPS=20000 ROUNDS=4 SETTINGS="-c 1" TESTS=set bench/ab.sh OLD NEW
# An even ROUNDS gives each build the first run of a pair as often as the other.
#
# OLD_ARGS and NEW_ARGS are passed to each build's nodes (`skiff local --serve-args`), so one
# binary can be set against itself; WARMUP=N sends N `-c 50 -P 16` SETs to the leader before
# the rows, so that they run after snapshots and compaction:
#   WARMUP=600000 ROUNDS=4 SETTINGS="-c 50 -P 16" TESTS=set \
#     OLD_ARGS=--wal-spare-segments=0 NEW_ARGS=--wal-spare-segments=2 \
#     bench/ab.sh target/release/skiff target/release/skiff
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 OLD_SKIFF NEW_SKIFF" >&2; exit 2; }
OPS=${OPS:-200000}
ROUNDS=${ROUNDS:-2}
BASE=${BASE:-17001}
TESTS=${TESTS:-set,get}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
WARMUP=${WARMUP:-0}
IFS=';' read -r -a settings <<<"${SETTINGS:--c 50;-c 50 -P 16}"
WORK=$(mktemp -d)
RESULTS="$WORK/results.csv"
pid=""
cleanup() { [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
# shellcheck source=bench/local_cluster.sh
. "$(dirname "$0")/local_cluster.sh"

run() {
  local build=$1 bin=$2 round=$3 serve_args=$4
  start_local "$bin" "$WORK/$build-$round" "$WORK/local.log" "$serve_args"
  if [ "$WARMUP" -gt 0 ]; then
    timeout "$RUN_TIMEOUT" redis-benchmark -p $((BASE + leader - 1)) -t set -d 256 -r 100000 \
      -n "$WARMUP" -c 50 -P 16 --csv >/dev/null || echo "$build round $round: warm-up failed" >&2
  fi
  for setting in "${settings[@]}"; do
    for target in leader follower; do
      local port=$((BASE + leader - 1))
      [ "$target" = follower ] && port=$((BASE + follower - 1))
      # shellcheck disable=SC2086
      if ! timeout "$RUN_TIMEOUT" redis-benchmark -p "$port" -t "$TESTS" -d 256 -r 100000 \
        -n "$OPS" --csv $setting >"$WORK/bench.out" 2>"$WORK/bench.err"; then
        echo "$build round $round $target $setting: redis-benchmark did not finish within" \
          "${RUN_TIMEOUT}s (or failed); its output and the cluster's log:" >&2
        tail -c 2000 "$WORK/bench.out" "$WORK/bench.err" >&2
        tail -n 20 "$WORK/local.log" >&2
      fi
      python3 -c '
import csv, io, math, sys
# Line by line: a cut or garbled line (a run stopped midway) is reported and left out, and
# takes no other line with it. A line is read 64 KiB at most at a time, so a line without
# an end holds no more memory than that (its pieces are not result lines).
out = io.TextIOWrapper(sys.stdin.buffer, errors="replace")
for line in iter(lambda: out.readline(1 << 16), ""):
    try:
        row = next(csv.reader([line]), [])
    except csv.Error:
        print("a line that does not read as CSV:", line.rstrip()[:200], file=sys.stderr)
        continue
    if not row or row[0] not in ("SET", "GET"):
        continue
    try:
        fields = [row[0], row[1], row[4], row[6]]
        if not all(math.isfinite(float(field)) for field in fields[1:]):
            raise ValueError("not a finite number")
    except (IndexError, ValueError):
        print("a result line that does not read:", line.rstrip()[:200], file=sys.stderr)
        continue
    print(",".join(sys.argv[1:] + fields))
' "$build" "$round" "$target" "$setting" <"$WORK/bench.out" | tee -a "$RESULTS"
    done
  done
  # The peak RSS of the largest node (VmHWM, KiB) over the run, before the cluster stops.
  local peak
  peak=$(for node in $(pgrep -P "$pid"); do
    awk '/^VmHWM:/ {print $2}' "/proc/$node/status" 2>/dev/null || true
  done | sort -n | tail -1)
  if [ -n "$peak" ]; then
    echo "$build,$peak" >>"$WORK/rss.csv"
  else
    # Said, not skipped in silence: the RSS medians below leave this run out.
    echo "no node process of $build's cluster (pid $pid) to read its peak RSS from, round $round" >&2
  fi
  # Ctrl-C stops the cluster; a build that does not stop within 10 s is killed.
  kill -INT "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    pkill -KILL -f "$WORK/$build-$round" || true
  fi
  wait "$pid" 2>/dev/null || true; pid=""
  # Each run's data goes with it: kept to the end, rounds of large values filled the disk.
  rm -rf "${WORK:?}/$build-$round"
}

echo "build,round,target,setting,command,ops_per_s,p50_ms,p99_ms"
for round in $(seq "$ROUNDS"); do
  # Each pair runs in the other order from the last: the build that ran first in a pair ran
  # 3–5 % faster on the leader (docs/benchmarks/rounds-12-and-later.md, round eighteen), an
  # order effect that an even number of rounds puts on both builds alike.
  if [ $((round % 2)) = 1 ]; then
    run old "$1" "$round" "${OLD_ARGS:-}"
    run new "$2" "$round" "${NEW_ARGS:-}"
  else
    run new "$2" "$round" "${NEW_ARGS:-}"
    run old "$1" "$round" "${OLD_ARGS:-}"
  fi
done
echo "== medians"
python3 - "$RESULTS" <<'EOF'
import csv, statistics, sys
rows = {}
for build, round_, target, setting, command, ops, p50, p99 in csv.reader(open(sys.argv[1])):
    runs = rows.setdefault((target, setting, command), {}).setdefault(build, {})
    runs[round_] = (float(ops), float(p50), float(p99))
print("target,setting,command,old_ops_per_s,new_ops_per_s,new/old,old_p50_ms,new_p50_ms,"
      "old_p99_ms,new_p99_ms,pairs_new_faster,pairs_new_lower_p99")
for (target, setting, command), builds in sorted(rows.items()):
    # Only the rounds where both builds ran the row: a failed run takes its pair with it, so
    # that the medians and the counts compare the same rounds.
    old_runs, new_runs = builds.get("old", {}), builds.get("new", {})
    pairs = [(old_runs[r], new_runs[r]) for r in old_runs if r in new_runs]
    if not pairs:
        continue
    median = lambda side, i: statistics.median(pair[side][i] for pair in pairs)
    old, new = median(0, 0), median(1, 0)
    old_p50, new_p50 = median(0, 1), median(1, 1)
    old_p99, new_p99 = median(0, 2), median(1, 2)
    # Round by round, so that a difference the spread hides shows as a count of pairs.
    faster = sum(n[0] > o[0] for o, n in pairs)
    lower = sum(n[2] < o[2] for o, n in pairs)
    ratio = new / old if old else float("nan")
    print(f"{target},{setting},{command},{old:.0f},{new:.0f},{ratio:.2f},{old_p50:.3f},"
          f"{new_p50:.3f},{old_p99:.3f},{new_p99:.3f},{faster}/{len(pairs)},"
          f"{lower}/{len(pairs)}")
EOF
if [ -s "$WORK/rss.csv" ]; then
  python3 - "$WORK/rss.csv" <<'EOF'
import csv, statistics, sys
peaks = {}
for build, kib in csv.reader(open(sys.argv[1])):
    peaks.setdefault(build, []).append(int(kib) / 1024)
for build in ("old", "new"):
    if build in peaks:
        runs = ", ".join(f"{mib:.1f}" for mib in peaks[build])
        print(f"peak RSS of the largest node, {build}: median "
              f"{statistics.median(peaks[build]):.1f} MiB ({runs})")
EOF
fi
