#!/usr/bin/env bash
# Log cleaner throughput, and what cleaning costs produce on other topics.
# Not part of CI: run it by hand on a machine that is otherwise idle.
#
#   bench/cleaner.sh               # about a minute; 4 GB of dirty log
#   CLEANER_RECORDS=300000 bench/cleaner.sh
#
# Steps, on a fresh Gregor whose log directory is target/cleaner-bench:
#   1. fill topic `dirty` (cleanup.policy=delete for now, 64 MiB segments)
#      with CLEANER_RECORDS records of 1000 bytes over 10,000 keys;
#   2. produce to topic `other` for PRODUCE_SECS: the baseline;
#   3. switch `dirty` to cleanup.policy=compact and at once produce to
#      `other` again for PRODUCE_SECS while the cleaner works;
#   4. wait until the cleaner is done, and sum its log lines ("cleaned X MB
#      of log in Y s");
#   5. produce to `other` once more: a second baseline, since the page
#      cache's writeback of everything written so far slows later runs too.
# Prints the cleaner's MB/s, and produce MB/s while cleaning beside the mean
# of the two baselines.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="$repo/target/cleaner-bench"
records=${CLEANER_RECORDS:-4000000}
produce_secs=${PRODUCE_SECS:-3}

log() { echo "cleaner: $*" >&2; }
source "$repo/bench/lib.sh"
stop_started_on_exit "$dir/data"

(cd "$repo" && cargo build --release -q -p gregor-cli)
rm -rf "$dir"
mkdir -p "$dir/data"
"$gregor" start --set listeners=PLAINTEXT://127.0.0.1:0 --set "log.dirs=$dir/data" \
  --set log.cleaner.backoff.ms=500 >"$dir/broker.log" 2>&1 &
broker=$!
started_pids+=("$broker")
address=$(listen_address "$dir/broker.log" "$broker")

"$gregor" topic create --bootstrap-server "$address" --topic dirty --partitions 1 \
  --config cleanup.policy=delete --config segment.bytes=67108864 >/dev/null
log "filling 'dirty' with $records records over 10,000 keys"
"$gregor" perf produce --bootstrap-server "$address" --topic dirty --num-records "$records" \
  --record-size 1000 --key-distribution random:10000 --acks 1 --partitions 1 --quiet >/dev/null

produce_other() {
  "$gregor" perf produce --bootstrap-server "$address" --topic other --duration-secs "$produce_secs" \
    --record-size 1000 --acks 1 --partitions 3 --json --quiet |
    python3 -c 'import json, sys; print("%.1f" % json.load(sys.stdin)["mb_per_sec"])'
}
log "baseline: produce to 'other' for $produce_secs s"
baseline=$(produce_other)
"$gregor" config alter --bootstrap-server "$address" --topic dirty --set cleanup.policy=compact >/dev/null
log "cleaning 'dirty' while producing to 'other' for $produce_secs s"
during=$(produce_other)

# Done when a cleaning has been logged and none followed for 5 s (at most 5 minutes).
last_count=0 quiet=0
for _ in $(seq 300); do
  count=$(grep -c "cleaned .* MB of log" "$dir/broker.log" || true)
  if [ "$count" -gt 0 ] && [ "$count" -eq "$last_count" ]; then
    quiet=$((quiet + 1))
    [ "$quiet" -ge 5 ] && break
  else
    quiet=0
  fi
  last_count=$count
  sleep 1
done
[ "$last_count" -gt 0 ] || { log "the cleaner logged no cleaning"; exit 1; }
log "second baseline: produce to 'other' for $produce_secs s"
after=$(produce_other)

grep "cleaned .* MB of log" "$dir/broker.log" | python3 -c '
import re, sys
mb = secs = 0.0
for line in sys.stdin:
    m = re.search(r"cleaned ([0-9.]+) MB of log in ([0-9.]+) s", line)
    mb += float(m.group(1)); secs += float(m.group(2))
print(f"cleaner: {mb:.0f} MB of dirty log cleaned in {secs:.2f} s of cleaning: {mb / secs:.0f} MB/s")
'
python3 -c "
before, during, after = float('$baseline'), float('$during'), float('$after')
base = (before + after) / 2
print(f'produce to other topics: {before:.1f} and {after:.1f} MB/s without cleaning, '
      f'{during:.1f} MB/s while cleaning ({(during / base - 1) * 100:+.0f}% of their mean)')
"
