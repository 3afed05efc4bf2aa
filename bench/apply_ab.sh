#!/usr/bin/env bash
# Two builds of skiff-bench side by side on the store's apply (`skiff-bench apply --rounds 1`:
# a million overwrites of a filled store, as every replica applies them): the old and the new
# binary run one after the other PAIRS times, in the other order each pair, so that the
# machine's drift falls on both alike. Prints each run's nanoseconds a write, then each
# build's median, the median of the pairs' new/old ratios, and in how many pairs the new
# build was the faster: on a machine whose speed moves by several percent from minute to
# minute, a count of pairs shows what one median hides.
#
#   bench/apply_ab.sh OLD_SKIFF_BENCH NEW_SKIFF_BENCH [skiff-bench apply options...]
#   PAIRS=10 bench/apply_ab.sh old/target/release/skiff-bench target/release/skiff-bench \
#     --freeze-every 100000
#
# The server runs on jemalloc and skiff-bench on the system allocator, so jemalloc is
# preloaded into both builds when ALLOCATOR names a library (by default Debian's
# libjemalloc2, if installed); ALLOCATOR= runs them on the system allocator.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OLD_SKIFF_BENCH NEW_SKIFF_BENCH [apply options...]" >&2; exit 2; }
old=$1 new=$2
shift 2
PAIRS=${PAIRS:-10}
[[ "$PAIRS" =~ ^[1-9][0-9]*$ ]] || { echo "PAIRS must be a positive integer" >&2; exit 2; }
ALLOCATOR=${ALLOCATOR-/usr/lib/x86_64-linux-gnu/libjemalloc.so.2}
[ -n "$ALLOCATOR" ] && [ ! -f "$ALLOCATOR" ] && ALLOCATOR=""
for bin in "$old" "$new"; do
  [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }
done

# One run: the median nanoseconds a write that `skiff-bench apply` reports, or nothing (and
# the reason on stderr) if its output has no such figure.
one() {
  local bin=$1 out
  shift
  if ! out=$(LD_PRELOAD="$ALLOCATOR" "$bin" apply --rounds 1 "$@" 2>&1); then
    echo "$bin failed: $(tail -c 500 <<<"$out")" >&2
    return 0
  fi
  grep -o 'median_ns=[0-9][0-9.]*' <<<"$out" | tail -1 | cut -d= -f2 ||
    echo "$bin printed no median_ns: $(tail -c 500 <<<"$out")" >&2
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT
echo "pair,build,ns_per_write"
for pair in $(seq "$PAIRS"); do
  if [ $((pair % 2)) = 1 ]; then order="old new"; else order="new old"; fi
  for build in $order; do
    bin=$old
    [ "$build" = new ] && bin=$new
    ns=$(one "$bin" "$@")
    [ -n "$ns" ] && echo "$pair,$build,$ns" | tee -a "$results"
  done
done
python3 - "$results" <<'EOF'
import csv, math, statistics, sys
runs = {}
for row in csv.reader(open(sys.argv[1])):
    try:
        pair, build, ns = int(row[0]), row[1], float(row[2])
        if not math.isfinite(ns) or ns <= 0:
            raise ValueError("not a positive number")
    except (IndexError, ValueError):
        print("a result that does not read:", ",".join(row)[:200], file=sys.stderr)
        continue
    runs.setdefault(pair, {})[build] = ns
# Only the pairs where both builds gave a figure.
pairs = [r for r in runs.values() if "old" in r and "new" in r]
if not pairs:
    sys.exit("no complete pair")
old = statistics.median(r["old"] for r in pairs)
new = statistics.median(r["new"] for r in pairs)
ratio = statistics.median(r["new"] / r["old"] for r in pairs)
faster = sum(r["new"] < r["old"] for r in pairs)
print(f"== medians: old {old:.1f} ns a write, new {new:.1f}; median of the pairs' new/old "
      f"{ratio:.3f}; new faster in {faster} of {len(pairs)} pairs")
EOF
