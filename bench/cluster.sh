#!/usr/bin/env bash
# The cluster benchmark: Skiff (3 durable nodes from `skiff local`, fsync on every batch) beside
# one redis-server with `appendonly yes` + `appendfsync always` and one without persistence,
# all driven by the same redis-benchmark commands, and beside a 3-member etcd cluster (Debian's
# etcd-server, every commit fsynced) driven over its gRPC API by bench/peers/etcd-bench with the
# same values and keys, in one run, on this machine. Beside the 256-byte rows: 1 KiB and 16 KiB
# values (Skiff, redis with fsync, etcd), five nodes (Skiff, and a 5-member etcd), and Skiff
# again with `skiff local --tls` (TLS on every port, mutual TLS between the nodes, the client
# password) for SET and GET at -c 1 and -c 50 on the leader, each as a share of plaintext's.
#
# Every row also gives the CPU the servers used per acknowledged request: utime + stime of every
# server process (all replicas; never the load generator), read from /proc/PID/stat before and
# after the row, divided by the requests answered; and that as a share of etcd's at the same
# load (same replica count, value size and operation; -c 1 against 1 client, -c 50 against
# ETCD_CLIENTS clients on one connection). See docs/BENCHMARKS.md, "Cluster".
#
#   bench/cluster.sh            # the full table
#   OPS=20000 bench/cluster.sh  # fewer requests per measurement (quicker, noisier)
#   ETCD=0 bench/cluster.sh     # without etcd
#   TLS=0 bench/cluster.sh      # without the TLS rows
#   FIVE=0 bench/cluster.sh     # without the five-node rows
#   SIZES= bench/cluster.sh     # without the 1 KiB and 16 KiB rows
#   SKIFF_BIN=path/to/skiff ETCD_BENCH_BIN=path/to/etcd-bench bench/cluster.sh  # no builds
#
# Installs what it needs from Debian's packages (redis-tools, redis-server, etcd-server,
# protobuf-compiler for the etcd client's build) when missing, builds skiff (unless SKIFF_BIN
# names a binary) and etcd-bench (its own workspace, crates from crates.io) into
# ETCD_BENCH_TARGET_DIR (default: bench/peers/etcd-bench/target; unless ETCD_BENCH_BIN names a
# binary). Prints one table: ops/s, p50 and p99 (ms), CPU µs per request, per system and setting,
# Skiff's throughput ratio to each row and each row's CPU ratio to etcd; then the target lines.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/local_cluster.sh
. bench/local_cluster.sh

OPS=${OPS:-200000}
ONE_CLIENT_OPS=${ONE_CLIENT_OPS:-20000}   # -c 1 waits one fsync per request: fewer requests
SIZES=${SIZES-1024 16384}                # value sizes (bytes) measured beside 256
KEYS=${KEYS:-100000}                     # keys drawn uniformly from 0..KEYS (redis-benchmark -r)
# Entries between two snapshots of a node (skiff's default), at least: a snapshot also waits
# for a log 4 times the last one's bytes (--snapshot-expansion-factor), so with 256-byte values
# over KEYS keys (a snapshot of about 25 MB, 33 MB of log a 100,000 entries) a replica
# snapshots about every 300,000 entries, 3 times in the 256-byte rows; the p99 of a
# -c 50 -P 16 row includes those that fall in it.
SNAPSHOT_EVERY=${SNAPSHOT_EVERY:-100000}
BASE=${BASE:-17001}                      # skiff local ports: clients BASE.., peers +100, HTTP +200
REDIS_PORT=${REDIS_PORT:-16379}
ETCD=${ETCD:-1}                          # 0: leave etcd out
TLS=${TLS:-1}                            # 0: leave out Skiff over TLS
FIVE=${FIVE:-1}                          # 0: leave out five Skiff nodes and five etcd members
IDLE_SECONDS=${IDLE_SECONDS:-2}          # each cluster's CPU at rest is read over this long
ETCD_PORT=${ETCD_PORT:-18379}            # etcd member i: clients ETCD_PORT+i-1, peers +100
ETCD_CLIENTS=${ETCD_CLIENTS:-64}
ETCD_OPS=${ETCD_OPS:-50000}              # requests per etcd measurement at ETCD_CLIENTS
ETCD_ONE_CLIENT_OPS=${ETCD_ONE_CLIENT_OPS:-5000}
ETCD_BENCH_TARGET_DIR=${ETCD_BENCH_TARGET_DIR:-bench/peers/etcd-bench/target}
CLK_TCK=$(getconf CLK_TCK)

need=()
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
if [ "$ETCD" = 1 ]; then
  command -v etcd >/dev/null || need+=(etcd-server)
  [ -n "${ETCD_BENCH_BIN:-}" ] || command -v protoc >/dev/null || need+=(protobuf-compiler)
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null ||
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

if [ -n "${SKIFF_BIN:-}" ]; then
  SKIFF=$SKIFF_BIN
else
  cargo build --release -p skiff >/dev/null 2>&1 || cargo build --release -p skiff
  SKIFF=${CARGO_TARGET_DIR:-target}/release/skiff
fi
if [ "$ETCD" = 1 ]; then
  if [ -n "${ETCD_BENCH_BIN:-}" ]; then
    ETCD_BENCH=$ETCD_BENCH_BIN
  else
    cargo build --release --quiet --manifest-path bench/peers/etcd-bench/Cargo.toml \
      --target-dir "$ETCD_BENCH_TARGET_DIR"
    ETCD_BENCH=$ETCD_BENCH_TARGET_DIR/release/etcd-bench
  fi
fi
WORK=$(mktemp -d)
RESULTS="$WORK/results.csv"   # one row per measurement (see bench/cluster_report.py)
EXTRA="$WORK/extra.csv"       # idle CPU, the supervisor's CPU, leader announcements
: >"$RESULTS"; : >"$EXTRA"
pids=()
etcd_pids=()
servers=()                    # the server processes whose CPU the rows count
cleanup() {
  # etcd members get SIGKILL: their data is thrown away, and a leader stopped with SIGTERM
  # waits for a leadership transfer that the others, stopped too, cannot take.
  for pid in "${etcd_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# cpu_ticks PID…: utime + stime of these processes, all their threads, in clock ticks (CLK_TCK).
cpu_ticks() {
  local pid stat total=0 fields
  for pid in "$@"; do
    stat=$(<"/proc/$pid/stat")
    # "pid (comm) state ppid …": comm may hold spaces, so split after its closing parenthesis;
    # then utime and stime (fields 14 and 15 of proc(5)) are the 12th and 13th.
    read -r -a fields <<<"${stat##*) }"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# expect_server PID WORD: fail unless PID's command line holds WORD (the rows must count the
# real servers, not a shell or a supervisor that stands in front of them).
expect_server() {
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline")
  [[ " $cmdline " == *" $2 "* ]] ||
    { echo "process $1 is not a $2 ($cmdline)" >&2; exit 1; }
}

# idle SYSTEM NODES: the CPU the servers use over IDLE_SECONDS with no client (ticks, timers,
# heartbeats): a floor under every row's CPU.
idle() {
  local before after
  before=$(cpu_ticks "${servers[@]}")
  sleep "$IDLE_SECONDS"
  after=$(cpu_ticks "${servers[@]}")
  echo "idle,$1,$2,$((after - before)),$IDLE_SECONDS" >>"$EXTRA"
}

# scaled OPS BYTES: the requests for a row with BYTES-byte values: all of OPS up to 256 bytes,
# a quarter up to 4 KiB, an eighth above, so that each row takes seconds and the stores stay a
# few hundred MiB.
scaled() {
  if [ "$2" -le 256 ]; then echo "$1"
  elif [ "$2" -le 4096 ]; then echo $(($1 / 4))
  else echo $(($1 / 8)); fi
}

# measure SYSTEM NODES ROLE PORT CLIENTS PIPELINE BYTES [FLAGS…]: redis-benchmark's SETs, then
# its GETs, against PORT, each with the CPU `servers` used meanwhile; a CSV row each.
measure() {
  local system=$1 nodes=$2 role=$3 port=$4 clients=$5 pipeline=$6 bytes=$7; shift 7
  local ops=$OPS test before after out flags=(-c "$clients")
  [ "$clients" = 1 ] && ops=$ONE_CLIENT_OPS
  ops=$(scaled "$ops" "$bytes")
  [ "$pipeline" = 1 ] || flags+=(-P "$pipeline")
  for test in set get; do
    before=$(cpu_ticks "${servers[@]}")
    # redis-benchmark stops at the first error reply, so a row it completes had every request
    # answered without one.
    out=$(redis-benchmark -p "$port" -t "$test" -d "$bytes" -r "$KEYS" -n "$ops" "${flags[@]}" \
      --csv "$@" 2>"$WORK/redis-benchmark.err") ||
      { cat "$WORK/redis-benchmark.err" >&2; echo "redis-benchmark failed: $system $role" \
        "-c $clients -P $pipeline -d $bytes -t $test" >&2; exit 1; }
    after=$(cpu_ticks "${servers[@]}")
    python3 -c '
import csv, sys
fields, out = sys.argv[1:-1], sys.argv[-1]
result = None
for row in csv.reader(out.splitlines()):
    if row and row[0] in ("SET", "GET"):
        # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
        result = row
if result is None:
    sys.exit("redis-benchmark gave no result:\n" + out)
system, nodes, role, clients, pipeline, size, ops, ticks = fields
csv.writer(sys.stdout).writerow([system, nodes, role, clients, clients, pipeline, size, result[0],
                                 ops, result[1], result[4], result[6], ticks])
' "$system" "$nodes" "$role" "$clients" "$pipeline" "$bytes" "$ops" "$((after - before))" \
      "$out" >>"$RESULTS"
  done
}

# start_skiff NODES DIR [FLAGS…]: `skiff local` with NODES nodes and its data in DIR; sets
# `leader`, `follower` and `servers` (its `skiff serve` children: the replicas).
start_skiff() {
  local nodes=$1 dir=$2 pid; shift 2
  $SKIFF local --nodes "$nodes" --data-dir "$dir" --client-port "$BASE" \
    --peer-port $((BASE + 100)) --http-port $((BASE + 200)) --control-port $((BASE + 199)) \
    --serve-args="--snapshot-every=$SNAPSHOT_EVERY" "$@" >"$dir.log" 2>&1 &
  pids+=($!)
  await_leader "$dir.log"
  follower=$((leader % nodes + 1))
  expect_server "${pids[0]}" local
  mapfile -t servers < <(pgrep -P "${pids[0]}")
  [ "${#servers[@]}" = "$nodes" ] ||
    { echo "skiff local runs ${#servers[@]} processes, not $nodes" >&2; exit 1; }
  for pid in "${servers[@]}"; do expect_server "$pid" serve; done
  supervisor_before=$(cpu_ticks "${pids[0]}")
}

# stop_skiff SYSTEM NODES DIR: note what the supervisor used and the leader announcements, then
# Ctrl-C to `skiff local`, which stops its nodes.
stop_skiff() {
  local system=$1 nodes=$2 dir=$3
  echo "supervisor,$system,$nodes,$(($(cpu_ticks "${pids[0]}") - supervisor_before)),0" >>"$EXTRA"
  echo "leaders,$system,$nodes,$(grep -c '^leader: node' "$dir.log" || true),0" >>"$EXTRA"
  kill -INT "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=(); servers=()
}

settings=("1 1" "50 1" "50 16")   # clients and pipeline: -c 1, -c 50, -c 50 -P 16

# at_settings SYSTEM NODES ROLE PORT: the 256-byte rows at each of `settings`.
at_settings() {
  local setting clients pipeline
  for setting in "${settings[@]}"; do
    read -r clients pipeline <<<"$setting"
    measure "$@" "$clients" "$pipeline" 256
  done
}

# at_sizes SYSTEM NODES ROLE PORT: the rows at -c 1 and -c 50 with each of SIZES.
at_sizes() {
  local bytes
  for bytes in $SIZES; do
    measure "$@" 1 1 "$bytes"
    measure "$@" 50 1 "$bytes"
  done
}

echo "== skiff: 3 nodes (skiff local), every batch fsynced" >&2
start_skiff 3 "$WORK/skiff"
idle skiff 3
for setting in "${settings[@]}"; do
  read -r clients pipeline <<<"$setting"
  measure skiff 3 leader $((BASE + leader - 1)) "$clients" "$pipeline" 256
  measure skiff 3 follower $((BASE + follower - 1)) "$clients" "$pipeline" 256
done
# How many snapshots each replica took during those rows (they ran while it served).
for i in 1 2 3; do
  taken=$(python3 -c '
import sys, urllib.request
for line in urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().splitlines():
    if line.startswith("skiff_snapshot_duration_seconds_count"):
        print(line.split()[-1])
' "http://127.0.0.1:$((BASE + 200 + i - 1))/metrics" 2>/dev/null || echo "?")
  echo "skiff node $i: ${taken:-0} snapshots during the 256-byte rows" >&2
done
# The peak before the larger values: the RSS target is judged under the 256-byte rows.
rss=$(for pid in "${servers[@]}"; do awk '/VmHWM/ {print $2}' "/proc/$pid/status"; done |
  sort -n | tail -1)
at_sizes skiff 3 leader $((BASE + leader - 1))
stop_skiff skiff 3 "$WORK/skiff"

if [ "$FIVE" = 1 ]; then
  echo "== skiff: 5 nodes (skiff local --nodes 5), every batch fsynced" >&2
  start_skiff 5 "$WORK/skiff-5"
  idle skiff 5
  at_settings skiff 5 leader $((BASE + leader - 1))
  stop_skiff skiff 5 "$WORK/skiff-5"
fi

if [ "$TLS" = 1 ]; then
  echo "== skiff: 3 nodes (skiff local --tls), TLS on every port and the client password" >&2
  start_skiff 3 "$WORK/skiff-tls" --tls
  idle skiff-tls 3
  tls_flags=(--tls --cacert "$WORK/skiff-tls/certs/ca.crt" -a "$(cat "$WORK/skiff-tls/requirepass")")
  measure skiff-tls 3 leader $((BASE + leader - 1)) 1 1 256 "${tls_flags[@]}"
  measure skiff-tls 3 leader $((BASE + leader - 1)) 50 1 256 "${tls_flags[@]}"
  stop_skiff skiff-tls 3 "$WORK/skiff-tls"
fi

for mode in always none; do
  echo "== redis-server, persistence: $mode" >&2
  dir="$WORK/redis-$mode"; mkdir -p "$dir"
  if [ "$mode" = always ]; then persist=(--appendonly yes --appendfsync always --save "");
  else persist=(--appendonly no --save ""); fi
  redis-server --port "$REDIS_PORT" --dir "$dir" "${persist[@]}" --daemonize no >"$dir/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  expect_server "${pids[0]}" redis-server
  servers=("${pids[0]}")
  at_settings "redis-$mode" 1 "" "$REDIS_PORT"
  if [ "$mode" = always ]; then at_sizes "redis-$mode" 1 "" "$REDIS_PORT"; fi
  kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=(); servers=()
done

# start_etcd MEMBERS: an etcd cluster of MEMBERS members with a leader; sets `endpoints` and
# `servers`.
start_etcd() {
  local members=$1 i initial="" client peer
  endpoints=""
  for i in $(seq "$members"); do initial+="e$i=http://127.0.0.1:$((ETCD_PORT + 100 + i - 1)),"; done
  for i in $(seq "$members"); do
    client="http://127.0.0.1:$((ETCD_PORT + i - 1))" peer="http://127.0.0.1:$((ETCD_PORT + 100 + i - 1))"
    endpoints+="${client#http://},"
    etcd --name "e$i" --data-dir "$WORK/etcd-$members/e$i" \
      --listen-client-urls "$client" --advertise-client-urls "$client" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --initial-cluster "${initial%,}" --initial-cluster-token "skiff-bench-$members" \
      --initial-cluster-state new --logger zap --log-outputs "$WORK/etcd-$members-e$i.log" \
      >/dev/null 2>&1 &
    etcd_pids+=($!)
  done
  # One read once a leader is elected, before any row: its start-up is no row's CPU.
  "$ETCD_BENCH" --endpoints "${endpoints%,}" --wait 30 --op get --ops 1 >/dev/null
  for pid in "${etcd_pids[@]}"; do expect_server "$pid" etcd; done
  servers=("${etcd_pids[@]}")
}

stop_etcd() {
  for pid in "${etcd_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait "${etcd_pids[@]}" 2>/dev/null || true; etcd_pids=(); servers=()
}

# etcd_measure MEMBERS OP CLIENTS CONNS OPS BYTES: one etcd-bench run against the leader, with
# the CPU of every member meanwhile.
etcd_measure() {
  local before after out
  before=$(cpu_ticks "${servers[@]}")
  out=$("$ETCD_BENCH" --endpoints "${endpoints%,}" --wait 30 --op "$2" --clients "$3" --conns "$4" \
    --ops "$5" --value-bytes "$6" --keys "$KEYS" --json)
  after=$(cpu_ticks "${servers[@]}")
  python3 -c '
import csv, json, sys
members, clients, conns, size, ticks, out = sys.argv[1:]
r = json.loads(out)
csv.writer(sys.stdout).writerow(["etcd", members, "leader", clients, conns, 1, size,
                                 r["op"].upper(), r["ops"], r["ops_per_s"], r["p50_ms"],
                                 r["p99_ms"], ticks])
' "$1" "$3" "$4" "$6" "$((after - before))" "$out" >>"$RESULTS"
}

# etcd_pair MEMBERS CLIENTS CONNS OPS BYTES: puts, then gets over the same keys (the gets read
# some of the keys the puts wrote, as redis-benchmark's GETs do).
etcd_pair() {
  local ops
  ops=$(scaled "$4" "$5")
  etcd_measure "$1" put "$2" "$3" "$ops" "$5"
  etcd_measure "$1" get "$2" "$3" "$ops" "$5"
}

etcd_note=""
if [ "$ETCD" = 1 ]; then
  echo "== etcd: 3 members (etcd-server), every commit fsynced" >&2
  start_etcd 3
  idle etcd 3
  etcd_pair 3 1 1 "$ETCD_ONE_CLIENT_OPS" 256
  etcd_pair 3 "$ETCD_CLIENTS" 1 "$ETCD_OPS" 256
  etcd_pair 3 "$ETCD_CLIENTS" "$ETCD_CLIENTS" "$ETCD_OPS" 256
  for bytes in $SIZES; do
    etcd_pair 3 1 1 "$ETCD_ONE_CLIENT_OPS" "$bytes"
    etcd_pair 3 "$ETCD_CLIENTS" 1 "$ETCD_OPS" "$bytes"
  done
  stop_etcd
  if [ "$FIVE" = 1 ]; then
    echo "== etcd: 5 members (etcd-server), every commit fsynced" >&2
    start_etcd 5
    idle etcd 5
    etcd_pair 5 1 1 "$ETCD_ONE_CLIENT_OPS" 256
    etcd_pair 5 "$ETCD_CLIENTS" 1 "$ETCD_OPS" 256
    stop_etcd
  fi
  client_version=$(awk '/^name = "etcd-client"$/ { getline; gsub(/version = |"/, ""); print }' \
    bench/peers/etcd-bench/Cargo.lock)
  etcd_note="etcd $(etcd --version | awk '/^etcd Version/ {print $3}') (Debian etcd-server), driven by bench/peers/etcd-bench: the Rust gRPC client etcd-client $client_version, closed-loop clients on the leader sharing the stated number of HTTP/2 connections; PUT is compared with Skiff's SET, 1 client with -c 1, $ETCD_CLIENTS clients with -c 50"
fi

python3 bench/cluster_report.py "$RESULTS" "$EXTRA" "$CLK_TCK" "$ETCD_CLIENTS" "$rss" "$etcd_note"
echo "bench/cluster.sh took $SECONDS s"
