# What the bench scripts share; sourced, not run. Expects `repo` (the
# repository) and a `log` function in the sourcing script, and for
# `perf_run` a `results` directory (where figures go).

here="$repo/bench"
shared=${BENCH_SHARED:-$repo/../shared/bench}
nullbroker_target=${NULLBROKER_TARGET_DIR:-/tmp/nullbroker-target}
gregor="$repo/target/release/gregor"
nullbroker="$nullbroker_target/release/nullbroker"
ticks=$(getconf CLK_TCK)

# Processes this script started, stopped (by PID) when it exits.
started_pids=()

# stop_started_on_exit DIR: when the script exits, stops every process in
# started_pids and removes DIR.
stop_started_on_exit() {
  cleanup_dir=$1
  trap 'for pid in "${started_pids[@]}"; do stop_process "$pid"; done; rm -rf "$cleanup_dir"' EXIT
}

# Builds gregor and the null broker (release); nothing is written into the
# shared directory (--locked: its Cargo.lock is never rewritten).
build_brokers() {
  log "building gregor and the null broker (release)"
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p gregor-cli
  CARGO_TARGET_DIR="$nullbroker_target" cargo build --release --quiet --locked \
    --manifest-path "$shared/nullbroker/Cargo.toml"
}

# Sends SIGTERM to a process this script started and waits for it (at most
# 20 s, then SIGKILL).
stop_process() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Waits for "listening on HOST:PORT" in a log file; prints HOST:PORT.
listen_address() {
  local log_file=$1 pid=$2 i address
  for i in $(seq 300); do
    address=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' "$log_file" | head -n 1)
    if [ -n "$address" ]; then
      echo "$address"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { log "the process died:"; cat "$log_file" >&2; return 1; }
    sleep 0.1
  done
  log "no 'listening on' line within 30 s in $log_file"
  return 1
}

# CPU seconds (user + system) a process has used so far.
cpu_secs() {
  awk -v t="$ticks" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"
}

# perf_run NAME BROKER_PID ADDRESS PERF-ARGS...: one `gregor perf` run; its
# JSON summary, with the CPU seconds of client and broker added, goes to
# results/NAME.json.
perf_run() {
  local name=$1 broker_pid=$2 address=$3
  shift 3
  local broker_before broker_after
  log "$name: gregor perf $*"
  broker_before=$(cpu_secs "$broker_pid")
  python3 "$here/child_cpu.py" "$results/$name.client-cpu" \
    "$gregor" perf "$@" --bootstrap-server "$address" --json --quiet >"$results/$name.perf.json"
  broker_after=$(cpu_secs "$broker_pid")
  python3 - "$results/$name" "$broker_before" "$broker_after" <<'PY'
import json, sys
base, before, after = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
summary = json.load(open(base + ".perf.json"))
summary["client_cpu_secs"] = float(open(base + ".client-cpu").read())
summary["broker_cpu_secs"] = round(after - before, 2)
json.dump(summary, open(base + ".json", "w"))
PY
}
