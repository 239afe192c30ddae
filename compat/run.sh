#!/usr/bin/env bash
# The compatibility suite: real non-Rust Kafka clients (kcat, confluent-kafka,
# kafka-python, kafkajs) against a real `gregor start` on an ephemeral port.
#
# Usage: compat/run.sh [SCENARIO...]   (default: every scenario)
# Each scenario gets its own broker and log directory, so one that crashes the
# broker cannot fail the next. Needs what ./test.sh installs: kcat, .venv,
# compat/js/node_modules. The last line is "N passed, M failed".
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scenario_timeout_s=${SCENARIO_TIMEOUT_S:-180}
startup_timeout_s=${STARTUP_TIMEOUT_S:-30}
gregor=${GREGOR:-${CARGO_TARGET_DIR:-$root/target}/debug/gregor}
python=$root/.venv/bin/python

# name|command (run from the repository root, with BOOTSTRAP set)
scenarios=(
  "kcat-metadata|compat/kcat/scenarios.sh metadata"
  "kcat-roundtrip|compat/kcat/scenarios.sh roundtrip"
  "kcat-compression|compat/kcat/scenarios.sh compression"
  "kcat-offsets|compat/kcat/scenarios.sh offsets"
)
for test in test_produce_consume_roundtrip test_compression_codecs test_consumer_group_commits test_topic_administration \
    test_transactions; do
  scenarios+=("confluent-kafka-${test#test_}|$python -m pytest -q -p no:cacheprovider compat/python/test_confluent_kafka.py::$test")
done
for test in test_produce_consume_roundtrip test_consumer_group test_topic_administration; do
  scenarios+=("kafka-python-${test#test_}|$python -m pytest -q -p no:cacheprovider compat/python/test_kafka_python.py::$test")
done
scenarios+=(
  "kafkajs-roundtrip|node compat/js/roundtrip.js"
  "kafkajs-admin|node compat/js/admin.js"
)

work=$(mktemp -d "${TMPDIR:-/tmp}/gregor-compat.XXXXXX")
broker_pid=

stop_broker() {
  [ -n "$broker_pid" ] || return 0
  kill -TERM "$broker_pid" 2>/dev/null
  # A clean shutdown flushes and exits; give it a bounded time, then kill.
  for _ in $(seq 1 100); do
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$broker_pid" 2>/dev/null
  wait "$broker_pid" 2>/dev/null
  broker_pid=
}
trap 'stop_broker; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# Starts a broker for one scenario; sets broker_pid and address.
start_broker() { # directory
  local dir=$1
  address=
  mkdir -p "$dir/logs"
  RUST_LOG=${RUST_LOG:-info} "$gregor" start \
    --set listeners=PLAINTEXT://127.0.0.1:0 --set "log.dirs=$dir/logs" 2>"$dir/broker.log" &
  broker_pid=$!
  for _ in $(seq 1 $((startup_timeout_s * 10))); do
    address=$(grep -o 'listening on [0-9.]*:[0-9]*' "$dir/broker.log" | head -n1 | cut -d' ' -f3)
    [ -n "$address" ] && break
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$address" ]
}

missing_prerequisite() { # command
  case "$1" in
    compat/kcat/*) command -v kcat >/dev/null || echo "kcat is not installed (./test.sh installs it)" ;;
    "$python"*) [ -x "$python" ] || echo ".venv is missing (./test.sh creates it)" ;;
    node*) [ -d compat/js/node_modules/kafkajs ] || echo "compat/js/node_modules is missing (./test.sh runs npm ci)" ;;
  esac
}

if [ -z "${GREGOR:-}" ]; then
  cargo build --quiet -p gregor-cli || { echo "cannot build gregor"; echo "0 passed, 1 failed"; exit 1; }
fi

passed=0
failed=0
failures=()
for entry in "${scenarios[@]}"; do
  name=${entry%%|*}
  command=${entry#*|}
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then
    continue
  fi
  dir=$work/$name
  mkdir -p "$dir"
  started=$(date +%s)
  verdict=PASS
  reason=$(missing_prerequisite "$command")
  if [ -n "$reason" ]; then
    verdict=FAIL
  elif ! start_broker "$dir"; then
    verdict=FAIL
    if kill -0 "$broker_pid" 2>/dev/null; then
      reason="the broker did not report 'listening on' within ${startup_timeout_s}s"
    else
      reason="the broker exited before listening"
    fi
  else
    BOOTSTRAP=$address timeout -k 5 "$scenario_timeout_s" bash -c "$command" >"$dir/output.log" 2>&1
    status=$?
    if [ "$status" -ne 0 ]; then
      verdict=FAIL
      reason="exit status $status"
      [ "$status" -eq 124 ] && reason="timed out after ${scenario_timeout_s}s"
    fi
    if ! kill -0 "$broker_pid" 2>/dev/null; then
      verdict=FAIL
      reason="${reason:+$reason; }the broker exited during the scenario"
    fi
  fi
  stop_broker
  echo "$verdict $name ($(($(date +%s) - started))s)${reason:+: $reason}"
  if [ "$verdict" = PASS ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
    for log in output broker; do
      if [ -s "$dir/$log.log" ]; then
        echo "  --- last lines of the $log log ---"
        tail -n 25 "$dir/$log.log" | sed 's/^/  /'
      fi
    done
  fi
done

[ "$failed" -eq 0 ] || echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
