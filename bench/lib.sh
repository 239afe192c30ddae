# Shell functions the bench scripts share; sourced, not run. Expects a
# `log` function in the sourcing script.

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
