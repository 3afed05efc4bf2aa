# Sourced by bench scripts: starts a 3-node `skiff local` and finds its leader
# (`start_local`), or finds the leader of one started otherwise (`await_leader`).
#
#   start_local SKIFF DATA_DIR LOG [SERVE_ARGS]
#
# Starts SKIFF's `skiff local` in the background on ports from $BASE (clients $BASE.., peers
# +100, HTTP +200, control +199) with its output in LOG, and waits up to 10 s for a leader.
# Sets `pid` (the `skiff local` process) and `leader` and `follower` (node numbers); prints
# the log and exits if no leader appears. LOG is removed first: the shell truncates it only
# once the background job starts, and a leader read from an earlier cluster's log sent
# redis-benchmark to a node not listening yet, where it waited for ever.
start_local() {
  local bin=$1 data_dir=$2 log=$3 serve_args=${4:-}
  rm -f "$log"
  "$bin" local --data-dir "$data_dir" --client-port "$BASE" --peer-port $((BASE + 100)) \
    --http-port $((BASE + 200)) --control-port $((BASE + 199)) \
    ${serve_args:+--serve-args="$serve_args"} >"$log" 2>&1 &
  pid=$!
  await_leader "$log"
  follower=$(( leader % 3 + 1 ))
}

# await_leader LOG: waits up to 10 s for `skiff local`'s LOG to announce a leader and sets
# `leader` (its node number); prints the log and exits if none does.
await_leader() {
  local log=$1
  leader=""
  for _ in $(seq 100); do
    leader=$(grep -so 'leader: node [0-9]*' "$log" | tail -1 | awk '{print $3}' || true)
    [ -n "$leader" ] && break
    sleep 0.1
  done
  [ -n "$leader" ] || { cat "$log"; echo "no leader" >&2; exit 1; }
}
