#!/usr/bin/env bash
# Memory soak: a fresh Gregor under mixed load for SOAK_MINUTES, its resident
# memory (RSS) sampled every 10 s. Prints the samples, then the RSS after the
# first quarter of the run (warm-up), the peak, the last sample and the
# growth from warm-up to the end. Not part of CI: run it by hand.
#
#   bench/soak.sh                 # 10 minutes
#   SOAK_MINUTES=2 bench/soak.sh  # a quick look
#
# The load, all at once for the whole run (`gregor perf`, librdkafka):
#   - produce and consume: `perf e2e` at 20,000 records/s of 1 KB (acks=1);
#   - idempotent acks=all producers: 4 of them at 10,000 records/s in all;
#   - transactions: 2 producers committing every 100 records, 2,000 records/s;
#   - a reader that reads the produce topic from its start once a minute.
# Topics keep 256 MiB per partition (retention.bytes), so the disk use stays
# bounded while retention deletes segments throughout.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
minutes=${SOAK_MINUTES:-10}
dir="$repo/target/soak"
secs=$((minutes * 60))

log() { echo "soak: $*" >&2; }
source "$repo/bench/lib.sh"
stop_started_on_exit "$dir/data"

(cd "$repo" && cargo build --release -q -p gregor-cli)
rm -rf "$dir/data"
mkdir -p "$dir/data"
"$gregor" start --set listeners=PLAINTEXT://127.0.0.1:0 --set "log.dirs=$dir/data" \
  --set log.retention.check.interval.ms=10000 >"$dir/broker.log" 2>&1 &
broker=$!
started_pids+=("$broker")
address=$(listen_address "$dir/broker.log" "$broker")
log "broker pid $broker on $address; load for $minutes minutes"

for topic in soak-e2e soak-idempotent soak-txn; do
  "$gregor" topic create --bootstrap-server "$address" --topic "$topic" --partitions 3 \
    --config retention.bytes=268435456 --config segment.bytes=67108864 >/dev/null
done
perf() { "$gregor" perf "$@" --bootstrap-server "$address" --quiet --json >>"$dir/perf.jsonl"; }
: >"$dir/perf.jsonl"
perf e2e --topic soak-e2e --duration-secs "$secs" --throughput 20000 --record-size 1000 --acks 1 &
started_pids+=($!)
perf produce --topic soak-idempotent --duration-secs "$secs" --throughput 10000 --record-size 1000 \
  --idempotence --producers 4 &
started_pids+=($!)
perf produce --topic soak-txn --duration-secs "$secs" --throughput 2000 --record-size 1000 \
  --transactional-id soak --transaction-records 100 --producers 2 &
started_pids+=($!)

# The reader: the idempotent topic from its start, 20 s a minute.
for ((at = 60; at < secs; at += 60)); do
  sleep 60
  perf consume --topic soak-idempotent --duration-secs 20 || log "the reader failed"
done &
started_pids+=($!)

rss_mib() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$broker/status"; }
echo "seconds rss_mib"
samples=()
for ((elapsed = 0; elapsed <= secs; elapsed += 10)); do
  rss=$(rss_mib)
  samples+=("$rss")
  echo "$elapsed $rss"
  ((elapsed < secs)) && sleep 10
done
for pid in "${started_pids[@]:1}"; do
  wait "$pid" || log "a load process failed (pid $pid)"
done
python3 - "${samples[@]}" <<'PY'
import sys
samples = [float(s) for s in sys.argv[1:]]
# Warm-up: the first quarter of the run (at least a minute), while the
# topics fill their first segments and the page cache settles.
warm = samples[min(max(6, len(samples) // 4), len(samples) - 1)]
print(f"rss after warm-up {warm:.1f} MiB, peak {max(samples):.1f} MiB, "
      f"last {samples[-1]:.1f} MiB, growth from warm-up {samples[-1] - warm:+.1f} MiB")
PY
log "load summaries (one JSON object per run): $dir/perf.jsonl"
