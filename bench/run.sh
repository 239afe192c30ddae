#!/usr/bin/env bash
# Gregor's produce and consume figures beside this machine's limits, all
# measured in one run, printed as a Markdown table (figure, baseline, ratio,
# target). Not part of CI: run it by hand on a machine that is otherwise idle.
#
#   bench/run.sh                      # about 4 minutes with the defaults
#
# What it measures, in this order:
#   1. the disk (fio: buffered write MB/s, fdatasync rate and MB/s at 1 MiB
#      writes) in BENCH_DIR, and loopback TCP bandwidth and round trip
#      (iperf3, sockperf), with the scripts in ../shared/bench/limits;
#   2. for each produce case, the null broker (../shared/bench/nullbroker:
#      decodes, CRC-checks and acknowledges, stores nothing) and then a fresh
#      Gregor whose log directory is in BENCH_DIR, both driven by the same
#      `gregor perf produce`;
#   3. Gregor's consume throughput (the records just produced, from the page
#      cache);
#   4. latency at 50,000 records/s of 100 B, one record per send (linger 0):
#      the null broker's produce delivery latency, and Gregor's end-to-end
#      latency (produce to receipt by a consumer) with acks=1 and acks=all.
#
# Environment:
#   BENCH_SECS=8          seconds of each produce and consume run
#   BENCH_DIR=DIR         scratch and log directory (default: target/bench in
#                         the repository, so on the repository's disk); its
#                         data is deleted at the end, results/ is kept
#   BENCH_SHARED=DIR      the shared bench tools (default: ../shared/bench)
#   BENCH_SKIP_LIMITS=1   skip fio/iperf3/sockperf (no disk or loopback ratios)
#   NULLBROKER_TARGET_DIR cargo target dir for the null broker
#                         (default: /tmp/nullbroker-target; nothing is written
#                         into the shared directory)
#
# Needs cargo, python3, and Debian's fio, iperf3 and sockperf (installed with
# apt-get when missing and run as root). Brokers listen on ephemeral
# loopback ports; only processes this script started are stopped, by PID.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
secs=${BENCH_SECS:-8}
bench_dir=${BENCH_DIR:-$repo/target/bench}
results="$bench_dir/results"
data="$bench_dir/data"

log() { echo "bench: $*" >&2; }
source "$repo/bench/lib.sh"
stop_started_on_exit "$data"

install_tools() {
  local missing=()
  command -v fio >/dev/null || missing+=(fio)
  command -v iperf3 >/dev/null || missing+=(iperf3)
  command -v sockperf >/dev/null || missing+=(sockperf)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing ${missing[*]}: apt-get install -y ${missing[*]} (or BENCH_SKIP_LIMITS=1)"
    exit 1
  fi
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

machine() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpus: $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
  echo "memory: $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "disk: $(df -P "$bench_dir" | awk 'NR == 2 { print $1 }') ($(df -PT "$bench_dir" | awk 'NR == 2 { print $2 }'))"
  echo "kernel: $(uname -r)"
  echo "gregor: $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- crates || echo ' (with local changes)')"
  echo "seconds per run: $secs"
}

mkdir -p "$bench_dir"
rm -rf "$results" "$data"
mkdir -p "$results" "$data"
[ "${BENCH_SKIP_LIMITS:-0}" = 1 ] || install_tools

build_brokers

machine >"$results/machine.txt"
echo "load before: $(cut -d ' ' -f 1-3 /proc/loadavg)" >>"$results/machine.txt"

if [ "${BENCH_SKIP_LIMITS:-0}" != 1 ]; then
  log "disk limits (fio, up to 4 GiB in $data)"
  bash "$shared/limits/disk.sh" "$data" 1 >"$results/disk.txt"
  log "loopback limits (iperf3, sockperf)"
  bash "$shared/limits/loopback.sh" 1 3 >"$results/loopback.txt"
fi

log "starting the null broker and a fresh gregor"
"$nullbroker" --listen 127.0.0.1:0 --partitions 3 2>"$results/nullbroker.log" &
null_pid=$!
started_pids+=("$null_pid")
null_address=$(listen_address "$results/nullbroker.log" "$null_pid")
mkdir -p "$data/gregor"
RUST_LOG=info "$gregor" start --set listeners=PLAINTEXT://127.0.0.1:0 --set "log.dirs=$data/gregor" \
  2>"$results/gregor.log" &
gregor_pid=$!
started_pids+=("$gregor_pid")
gregor_address=$(listen_address "$results/gregor.log" "$gregor_pid")

# The null broker and Gregor run each case back to back, so both see the
# same background load. Each case starts with the earlier cases' data on
# disk (sync): like fio's runs, none pays for another's write-back.
common=(--duration-secs "$secs" --partitions 3 --linger-ms 5)
for acks in 1 all; do
  for size in 100 1000; do
    case_args=(--record-size "$size" --acks "$acks" "${common[@]}")
    sync
    perf_run "null-produce-$size-acks$acks" "$null_pid" "$null_address" produce --topic "bench-$size-$acks" "${case_args[@]}"
    perf_run "gregor-produce-$size-acks$acks" "$gregor_pid" "$gregor_address" produce --topic "bench-$size-$acks" "${case_args[@]}"
  done
done

# Consume what the acks=1 runs wrote (still in the page cache).
for size in 100 1000; do
  perf_run "gregor-consume-$size" "$gregor_pid" "$gregor_address" consume --topic "bench-$size-1" --duration-secs "$secs"
done
# Latency at a fixed rate, one record per send (linger 0).
latency=(--record-size 100 --partitions 3 --linger-ms 0 --throughput 50000 --duration-secs "$secs")
perf_run "null-latency-acks1" "$null_pid" "$null_address" produce --topic bench-latency --acks 1 "${latency[@]}"
for acks in 1 all; do
  perf_run "gregor-e2e-acks$acks" "$gregor_pid" "$gregor_address" e2e --topic "bench-e2e-$acks" --acks "$acks" \
    "${latency[@]}"
done

echo "load after: $(cut -d ' ' -f 1-3 /proc/loadavg)" >>"$results/machine.txt"
du -sh "$data/gregor" | awk '{ print "gregor data: " $1 }' >>"$results/machine.txt"
python3 "$here/report.py" "$results"
log "raw results in $results"
