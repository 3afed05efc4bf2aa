#!/usr/bin/env bash
# Two builds of `skiff-bench codec` side by side, alternating ROUNDS times so that the machine's
# drift falls on both alike. Each run reports, per case, the median ns per operation of its own
# rounds; this prints each run's line and then, per case, the median over the runs of each build.
#
#   bench/codec.sh OLD_SKIFF_BENCH NEW_SKIFF_BENCH
#   ROUNDS=7 bench/codec.sh old/target/release/skiff-bench target/release/skiff-bench
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 OLD_SKIFF_BENCH NEW_SKIFF_BENCH" >&2; exit 2; }
ROUNDS=${ROUNDS:-5}
for round in $(seq "$ROUNDS"); do
  for build in old new; do
    bin=$1
    [ "$build" = new ] && bin=$2
    "$bin" codec --rounds "${INNER_ROUNDS:-5}" | sed "s/^/$build $round /"
  done
done | tee /dev/stderr | awk '
  { split($4, kv, "="); values[$1 " " $3] = values[$1 " " $3] " " kv[2]; cases[$3] = 1 }
  function median(list,   n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    return v[int((n + 1) / 2)]
  }
  END {
    printf "%-24s %12s %12s %8s\n", "case", "old_ns", "new_ns", "new/old"
    for (c in cases) {
      o = median(values["old " c]); n = median(values["new " c])
      printf "%-24s %12.1f %12.1f %8.3f\n", c, o, n, n / o
    }
  }'
