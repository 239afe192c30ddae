#!/usr/bin/env bash
# How Gregor's cost grows with partitions and producer connections, and its
# footprint, measured in one run and printed as Markdown. Not part of CI: run
# it by hand on a machine that is otherwise idle.
#
#   bench/scaling.sh                  # about 5 minutes with the defaults
#
# What it measures, in this order:
#   1. produce of 100 B records (acks=1, linger 5 ms, one producer) to topics
#      of 1, 10, 100 and 1000 partitions, the null broker
#      (../shared/bench/nullbroker) and then Gregor, back to back;
#   2. the same to 3 partitions from 1, 10 and 100 producers, each with its
#      own connection;
#   3. Gregor's footprint: resident memory (RSS) idle after start; after a
#      topic of 10,000 partitions is created and a record written to each;
#      the seconds a clean restart takes until the listener is up (the
#      partitions are opened before it); the same after a kill -9, with the
#      bytes the broker read from files while starting beside the bytes of
#      log on disk (recovery should read only what follows the recovery
#      point, here nothing: every record was produced with acks=all).
#
# Environment:
#   BENCH_SECS=5          seconds of each produce run
#   BENCH_DIR=DIR         log directories (default: target/bench-scaling in the
#                         repository); its data is deleted at the end
#   BENCH_SHARED=DIR      the shared bench tools (default: ../shared/bench)
#   NULLBROKER_TARGET_DIR cargo target dir for the null broker
#                         (default: /tmp/nullbroker-target)
#
# Brokers listen on ephemeral loopback ports; only processes this script
# started are stopped, by PID.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
secs=${BENCH_SECS:-5}
bench_dir=${BENCH_DIR:-$repo/target/bench-scaling}
results="$bench_dir/results"
data="$bench_dir/data"

log() { echo "bench: $*" >&2; }
source "$repo/bench/lib.sh"
stop_started_on_exit "$data"

rss_mib() {
  awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# Bytes a process has read through read(2) and friends so far (page cache included).
read_bytes() {
  awk '/^rchar/ { print $2 }' "/proc/$1/io"
}

# start_null PARTITIONS: a null broker answering with that many partitions
# per topic; sets null_pid and null_address.
start_null() {
  "$nullbroker" --listen 127.0.0.1:0 --partitions "$1" 2>"$results/nullbroker-$1.log" &
  null_pid=$!
  started_pids+=("$null_pid")
  null_address=$(listen_address "$results/nullbroker-$1.log" "$null_pid")
}

# start_gregor NAME: Gregor on data/gregor (kept across restarts); sets
# gregor_pid and gregor_address, and prints the seconds until it listens.
start_gregor() {
  local started
  started=$(date +%s.%N)
  RUST_LOG=info "$gregor" start --set listeners=PLAINTEXT://127.0.0.1:0 --set "log.dirs=$data/gregor" \
    2>"$results/gregor-$1.log" &
  gregor_pid=$!
  started_pids+=("$gregor_pid")
  gregor_address=$(listen_address "$results/gregor-$1.log" "$gregor_pid")
  python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.2f}')" "$started" >"$results/start-$1.secs"
}

# Each partition holds three files open (its active segment's log and two
# indexes), so 10,000 partitions need more than a common 20,000 limit;
# Kafka's documentation asks for 100,000 as well.
ulimit -n 100000 2>/dev/null || log "cannot raise the open files limit above $(ulimit -n)"

mkdir -p "$bench_dir"
rm -rf "$results" "$data"
mkdir -p "$results" "$data/gregor"

build_brokers
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ), gregor $(git -C "$repo" rev-parse --short HEAD)," \
  "open files limit: $(ulimit -n), load before: $(cut -d ' ' -f 1-3 /proc/loadavg)" >"$results/machine.txt"

start_gregor fresh
sleep 2 # let start-up settle before reading the idle footprint
echo "$(rss_mib "$gregor_pid")" >"$results/rss-idle.mib"

produce=(--record-size 100 --acks 1 --linger-ms 5 --duration-secs "$secs")
for partitions in 1 10 100 1000; do
  start_null "$partitions"
  perf_run "null-partitions-$partitions" "$null_pid" "$null_address" produce --topic "p$partitions" \
    --partitions "$partitions" "${produce[@]}"
  stop_process "$null_pid"
  sync
  perf_run "gregor-partitions-$partitions" "$gregor_pid" "$gregor_address" produce --topic "p$partitions" \
    --partitions "$partitions" "${produce[@]}"
done
start_null 3
for producers in 1 10 100; do
  perf_run "null-producers-$producers" "$null_pid" "$null_address" produce --topic "c$producers" \
    --producers "$producers" "${produce[@]}"
  sync
  perf_run "gregor-producers-$producers" "$gregor_pid" "$gregor_address" produce --topic "c$producers" \
    --producers "$producers" "${produce[@]}"
done
stop_process "$null_pid"

# Footprint with 10,000 partitions: the earlier topics go first, so only
# these count.
for topic in p1 p10 p100 p1000 c1 c10 c100; do
  "$gregor" topic delete "$topic" --bootstrap-server "$gregor_address" >/dev/null
done
log "a topic of 10,000 partitions, one record (acks=all) to each"
"$gregor" topic create big --partitions 10000 --bootstrap-server "$gregor_address" >/dev/null
"$gregor" perf produce --topic big --num-records 10000 --record-size 100 --acks all \
  --bootstrap-server "$gregor_address" --quiet --json >"$results/big-produce.json"
sleep 2
echo "$(rss_mib "$gregor_pid")" >"$results/rss-10k.mib"

log "clean restart with 10,000 partitions"
stop_process "$gregor_pid"
start_gregor restart
echo "$(rss_mib "$gregor_pid")" >"$results/rss-10k-restart.mib"

log "kill -9 and restart with 10,000 partitions"
kill -KILL "$gregor_pid"
wait "$gregor_pid" 2>/dev/null || true
du -sb "$data/gregor" | cut -f 1 >"$results/data.bytes"
start_gregor crash
read_bytes "$gregor_pid" >"$results/crash-read.bytes"
"$gregor" perf produce --topic big --num-records 10000 --record-size 100 --acks all \
  --bootstrap-server "$gregor_address" --quiet --json >"$results/big-after-crash.json"

echo "load after: $(cut -d ' ' -f 1-3 /proc/loadavg)" >>"$results/machine.txt"
python3 "$here/report_scaling.py" "$results"
log "raw results in $results"
