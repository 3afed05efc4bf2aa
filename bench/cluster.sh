#!/usr/bin/env bash
# The cluster benchmark: Skiff (3 durable nodes from `skiff local`, fsync on every batch) beside
# one redis-server with `appendonly yes` + `appendfsync always` and one without persistence,
# all driven by the same redis-benchmark commands, and beside a 3-member etcd cluster (Debian's
# etcd-server, every commit fsynced) driven over its gRPC API by bench/peers/etcd-bench with the
# same values and keys, in one run, on this machine. Skiff runs again with `skiff local --tls`
# (TLS on every port, mutual TLS between the nodes, the client password) for SET and GET at
# -c 50 on the leader, and the report gives TLS's throughput as a share of plaintext's.
#
#   bench/cluster.sh            # the full table
#   OPS=20000 bench/cluster.sh  # fewer requests per measurement (quicker, noisier)
#   ETCD=0 bench/cluster.sh     # without etcd
#   TLS=0 bench/cluster.sh      # without the TLS rows
#
# Installs what it needs from Debian's packages (redis-tools, redis-server, etcd-server,
# protobuf-compiler for the etcd client's build) when missing, and builds etcd-bench (its own
# workspace, crates from crates.io) into ETCD_BENCH_TARGET_DIR (default:
# bench/peers/etcd-bench/target).
# Prints one table: ops/s, p50 and p99 (ms) per system and setting, and Skiff's ratio to each.
set -euo pipefail
cd "$(dirname "$0")/.."

OPS=${OPS:-200000}
ONE_CLIENT_OPS=${ONE_CLIENT_OPS:-20000}   # -c 1 waits one fsync per request: fewer requests
BASE=${BASE:-17001}                      # skiff local ports: clients BASE.., peers +100, HTTP +200
REDIS_PORT=${REDIS_PORT:-16379}
ETCD=${ETCD:-1}                          # 0: leave etcd out
TLS=${TLS:-1}                            # 0: leave out Skiff over TLS
ETCD_PORT=${ETCD_PORT:-18379}            # etcd member i: clients ETCD_PORT+i-1, peers +100
ETCD_CLIENTS=${ETCD_CLIENTS:-64}
ETCD_OPS=${ETCD_OPS:-50000}              # requests per etcd measurement at ETCD_CLIENTS
ETCD_ONE_CLIENT_OPS=${ETCD_ONE_CLIENT_OPS:-5000}
ETCD_BENCH_TARGET_DIR=${ETCD_BENCH_TARGET_DIR:-bench/peers/etcd-bench/target}

need=()
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
if [ "$ETCD" = 1 ]; then
  command -v etcd >/dev/null || need+=(etcd-server)
  command -v protoc >/dev/null || need+=(protobuf-compiler)
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null ||
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

cargo build --release -p skiff >/dev/null 2>&1 || cargo build --release -p skiff
SKIFF=${CARGO_TARGET_DIR:-target}/release/skiff
if [ "$ETCD" = 1 ]; then
  cargo build --release --quiet --manifest-path bench/peers/etcd-bench/Cargo.toml \
    --target-dir "$ETCD_BENCH_TARGET_DIR"
  ETCD_BENCH=$ETCD_BENCH_TARGET_DIR/release/etcd-bench
fi
WORK=$(mktemp -d)
RESULTS="$WORK/results.csv"
pids=()
cleanup() {
  # etcd members get SIGKILL: their data is thrown away, and a leader stopped with SIGTERM
  # waits for a leadership transfer that the others, stopped too, cannot take.
  for pid in "${etcd_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
etcd_pids=()
trap cleanup EXIT

# One measurement: system, setting, port, extra redis-benchmark flags.
measure() {
  local system=$1 setting=$2 port=$3; shift 3
  local ops=$OPS
  [[ " $* " == *" -c 1 "* ]] && ops=$ONE_CLIENT_OPS
  redis-benchmark -p "$port" -t set,get -d 256 -r 100000 -n "$ops" --csv "$@" 2>/dev/null |
    python3 -c '
import csv, sys
system, setting = sys.argv[1], sys.argv[2]
for row in csv.reader(sys.stdin):
    if row and row[0] in ("SET", "GET"):
        # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
        print(f"{system},{setting},{row[0]},{row[1]},{row[4]},{row[6]}")
' "$system" "$setting" >>"$RESULTS"
}

settings=("-c 1" "-c 50" "-c 50 -P 16")

# start_skiff DIR [FLAGS…]: `skiff local` with its data in DIR; sets `leader` and `follower`.
start_skiff() {
  local dir=$1; shift
  $SKIFF local --data-dir "$dir" --client-port "$BASE" --peer-port $((BASE + 100)) \
    --http-port $((BASE + 200)) --control-port $((BASE + 199)) "$@" >"$dir.log" 2>&1 &
  pids+=($!)
  leader=""
  for _ in $(seq 100); do
    leader=$(grep -o 'leader: node [0-9]*' "$dir.log" | tail -1 | awk '{print $3}' || true)
    [ -n "$leader" ] && break
    sleep 0.1
  done
  [ -n "$leader" ] || { cat "$dir.log"; echo "no leader" >&2; exit 1; }
  follower=$(( leader % 3 + 1 ))
}

# stop_skiff: Ctrl-C to `skiff local`, which stops its nodes.
stop_skiff() {
  kill -INT "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
}

echo "== skiff: 3 nodes (skiff local), every batch fsynced" >&2
start_skiff "$WORK/skiff"
for setting in "${settings[@]}"; do
  # shellcheck disable=SC2086
  measure skiff "leader $setting" $((BASE + leader - 1)) $setting
  # shellcheck disable=SC2086
  measure skiff "follower $setting" $((BASE + follower - 1)) $setting
done
rss=$(for pid in $(pgrep -f "skiff serve --data-dir $WORK/skiff" || true); do
  awk '/VmHWM/ {print $2}' "/proc/$pid/status"; done | sort -n | tail -1)
leader_changes=$(grep -c '^leader: node' "$WORK/skiff.log" || true)
stop_skiff

if [ "$TLS" = 1 ]; then
  echo "== skiff: 3 nodes (skiff local --tls), TLS on every port and the client password" >&2
  start_skiff "$WORK/skiff-tls" --tls
  measure skiff-tls "leader -c 50" $((BASE + leader - 1)) -c 50 \
    --tls --cacert "$WORK/skiff-tls/certs/ca.crt" -a "$(cat "$WORK/skiff-tls/requirepass")"
  stop_skiff
fi

for mode in always none; do
  echo "== redis-server, persistence: $mode" >&2
  dir="$WORK/redis-$mode"; mkdir -p "$dir"
  if [ "$mode" = always ]; then persist=(--appendonly yes --appendfsync always --save "");
  else persist=(--appendonly no --save ""); fi
  redis-server --port "$REDIS_PORT" --dir "$dir" "${persist[@]}" --daemonize no >"$dir/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  for setting in "${settings[@]}"; do
    # shellcheck disable=SC2086
    measure "redis-$mode" "$setting" "$REDIS_PORT" $setting
  done
  kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
done

etcd_note=""
if [ "$ETCD" = 1 ]; then
  echo "== etcd: 3 members (etcd-server), every commit fsynced" >&2
  initial=""
  for i in 1 2 3; do initial+="e$i=http://127.0.0.1:$((ETCD_PORT + 100 + i - 1)),"; done
  endpoints=""
  for i in 1 2 3; do
    client="http://127.0.0.1:$((ETCD_PORT + i - 1))" peer="http://127.0.0.1:$((ETCD_PORT + 100 + i - 1))"
    endpoints+="${client#http://},"
    etcd --name "e$i" --data-dir "$WORK/etcd/e$i" \
      --listen-client-urls "$client" --advertise-client-urls "$client" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --initial-cluster "${initial%,}" --initial-cluster-token skiff-bench \
      --initial-cluster-state new --logger zap --log-outputs "$WORK/etcd-e$i.log" \
      >/dev/null 2>&1 &
    etcd_pids+=($!)
  done
  # etcd_measure SETTING OP CLIENTS CONNS OPS: one etcd-bench run against the leader.
  etcd_measure() {
    "$ETCD_BENCH" --endpoints "${endpoints%,}" --wait 30 --op "$2" --clients "$3" --conns "$4" \
      --ops "$5" --value-bytes 256 --keys 100000 --json |
      python3 -c '
import csv, json, sys
r = json.load(sys.stdin)
csv.writer(sys.stdout).writerow(["etcd", sys.argv[1], r["op"].upper(), r["ops_per_s"], r["p50_ms"], r["p99_ms"]])
' "$1" >>"$RESULTS"
  }
  # The puts of each setting write (some of) the keys that its gets then read.
  etcd_measure "1 client" put 1 1 "$ETCD_ONE_CLIENT_OPS"
  etcd_measure "1 client" get 1 1 "$ETCD_ONE_CLIENT_OPS"
  etcd_measure "$ETCD_CLIENTS clients, 1 conn" put "$ETCD_CLIENTS" 1 "$ETCD_OPS"
  etcd_measure "$ETCD_CLIENTS clients, 1 conn" get "$ETCD_CLIENTS" 1 "$ETCD_OPS"
  etcd_measure "$ETCD_CLIENTS clients, $ETCD_CLIENTS conns" put "$ETCD_CLIENTS" "$ETCD_CLIENTS" "$ETCD_OPS"
  etcd_measure "$ETCD_CLIENTS clients, $ETCD_CLIENTS conns" get "$ETCD_CLIENTS" "$ETCD_CLIENTS" "$ETCD_OPS"
  for pid in "${etcd_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait "${etcd_pids[@]}" 2>/dev/null || true; etcd_pids=()
  client_version=$(awk '/^name = "etcd-client"$/ { getline; gsub(/version = |"/, ""); print }' \
    bench/peers/etcd-bench/Cargo.lock)
  etcd_note="etcd $(etcd --version | awk '/^etcd Version/ {print $3}') (Debian etcd-server), driven by bench/peers/etcd-bench: the Rust gRPC client etcd-client $client_version, closed-loop clients on the leader sharing the stated number of HTTP/2 connections; PUT is compared with Skiff's SET, 1 client with -c 1, $ETCD_CLIENTS clients with -c 50"
fi

python3 - "$RESULTS" "$rss" "$leader_changes" "$etcd_note" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
rss_kib, leader_lines, etcd_note = sys.argv[2], sys.argv[3], sys.argv[4]
table = {}
for system, setting, test, rps, p50, p99 in rows:
    table[(system, setting, test)] = (float(rps), float(p50), float(p99))
print(f"{'system':<14} {'setting':<22} {'test':<4} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8}  ratio skiff-leader / this")
for (system, setting, test), (rps, p50, p99) in table.items():
    base_setting = setting.replace("leader ", "").replace("follower ", "")
    skiff_test = test
    if system == "etcd":
        base_setting = "-c 1" if setting == "1 client" else "-c 50"
        skiff_test = "SET" if test == "PUT" else test
    skiff = table.get(("skiff", f"leader {base_setting}", skiff_test))
    ratio = f"{skiff[0] / rps:6.2f}x" if skiff and rps else ""
    print(f"{system:<14} {setting:<22} {test:<4} {rps:>10.0f} {p50:>8.3f} {p99:>8.3f}  {ratio}")
print()
for test in ("SET", "GET"):
    plain = table.get(("skiff", "leader -c 50", test))
    tls = table.get(("skiff-tls", "leader -c 50", test))
    if plain and tls and plain[0]:
        print(f"skiff over TLS, leader -c 50, {test}: {tls[0]:.0f} ops/s, "
              f"{100 * tls[0] / plain[0]:.0f}% of plaintext's {plain[0]:.0f} (target: at least 70%)")
if rss_kib:
    print(f"skiff: peak RSS of the largest node {int(rss_kib) / 1024:.1f} MiB")
print(f"skiff: leader announcements during the run: {leader_lines} (1 = no leader change)")
if etcd_note:
    print(etcd_note)
PY
