#!/usr/bin/env bash
# Log cleaner throughput, and what cleaning costs produce on other topics.
# Not part of CI: run it by hand on a machine that is otherwise idle.
#
#   bench/cleaner.sh                         # about 2 minutes
#   CLEANER_MB_PER_SEC=0 bench/cleaner.sh    # the cleaner unthrottled
#
# On a fresh Gregor whose log directory is target/cleaner-bench, started
# with log.cleaner.io.max.bytes.per.second at CLEANER_MB_PER_SEC (default
# 300, above the 100 MB/s target, so that one cleaning outlasts a produce
# run; 0 leaves the cleaner unthrottled), CLEANER_ROUNDS rounds (default 3)
# of:
#   1. fill a new topic `dirty-N` (cleanup.policy=delete for now, 64 MiB
#      segments) with CLEANER_RECORDS records (default 1,500,000) of 1000
#      bytes over 10,000 keys;
#   2. produce to topic `other` for PRODUCE_SECS (default 3): the baseline;
#   3. switch `dirty-N` to cleanup.policy=compact and at once produce to
#      `other` again for PRODUCE_SECS while the cleaner works;
#   4. wait until the cleaner is done with `dirty-N`.
# Every produce run starts after a `sync`, so none pays for the writeback
# of the one before. Prints, per round, produce MB/s without and while
# cleaning, and the cleaner's MB/s from its log lines ("cleaned X MB of log
# in Y s").
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="$repo/target/cleaner-bench"
records=${CLEANER_RECORDS:-1500000}
rounds=${CLEANER_ROUNDS:-3}
throttle_mb=${CLEANER_MB_PER_SEC:-300}
produce_secs=${PRODUCE_SECS:-3}

log() { echo "cleaner: $*" >&2; }
source "$repo/bench/lib.sh"
stop_started_on_exit "$dir/data"

(cd "$repo" && cargo build --release -q -p gregor-cli)
rm -rf "$dir"
mkdir -p "$dir/data"
throttle=()
[ "$throttle_mb" = 0 ] || throttle=(--set "log.cleaner.io.max.bytes.per.second=${throttle_mb}000000")
"$gregor" start --set listeners=PLAINTEXT://127.0.0.1:0 --set "log.dirs=$dir/data" \
  --set log.cleaner.backoff.ms=500 "${throttle[@]}" >"$dir/broker.log" 2>&1 &
broker=$!
started_pids+=("$broker")
address=$(listen_address "$dir/broker.log" "$broker")

produce_other() {
  sync
  "$gregor" perf produce --bootstrap-server "$address" --topic other --duration-secs "$produce_secs" \
    --record-size 1000 --acks 1 --partitions 3 --json --quiet |
    python3 -c 'import json, sys; print("%.1f" % json.load(sys.stdin)["mb_per_sec"])'
}

# The cleanings of topic $1 logged so far.
cleanings() { grep "cleaned .* MB of log" "$dir/broker.log" | grep -c "$1-0" || true; }

for round in $(seq "$rounds"); do
  topic="dirty-$round"
  "$gregor" topic create --bootstrap-server "$address" --topic "$topic" --partitions 1 \
    --config cleanup.policy=delete --config segment.bytes=67108864 >/dev/null
  log "round $round: filling '$topic' with $records records over 10,000 keys"
  "$gregor" perf produce --bootstrap-server "$address" --topic "$topic" --num-records "$records" \
    --record-size 1000 --key-distribution random:10000 --acks 1 --partitions 1 --quiet >/dev/null
  log "round $round: baseline, produce to 'other' for $produce_secs s"
  baseline=$(produce_other)
  sync
  "$gregor" config alter --bootstrap-server "$address" --topic "$topic" --set cleanup.policy=compact >/dev/null
  log "round $round: cleaning '$topic' while producing to 'other' for $produce_secs s"
  during=$(produce_other)
  # Done when a cleaning of this topic was logged and none followed for 3 s (at most 5 minutes).
  last_count=0 quiet=0
  for _ in $(seq 300); do
    count=$(cleanings "$topic")
    if [ "$count" -gt 0 ] && [ "$count" -eq "$last_count" ]; then
      quiet=$((quiet + 1))
      [ "$quiet" -ge 3 ] && break
    else
      quiet=0
    fi
    last_count=$count
    sleep 1
  done
  [ "$last_count" -gt 0 ] || { log "the cleaner logged no cleaning of $topic"; exit 1; }
  grep "cleaned .* MB of log" "$dir/broker.log" | grep "$topic-0" | python3 -c "
import re, sys
mb = secs = 0.0
for line in sys.stdin:
    m = re.search(r'cleaned ([0-9.]+) MB of log in ([0-9.]+) s', line)
    mb += float(m.group(1)); secs += float(m.group(2))
base, during = float('$baseline'), float('$during')
print(f'round $round: produce to other {base:.1f} MB/s, {during:.1f} MB/s while cleaning '
      f'({(during / base - 1) * 100:+.0f}%); cleaner {mb:.0f} MB in {secs:.2f} s: {mb / secs:.0f} MB/s')
"
done
