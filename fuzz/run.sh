#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 30), seeded with
# its committed corpus (fuzz/corpus/<target>, only read: new inputs go to a
# temporary directory). Prints each target's executions; exits non-zero if a
# target crashed, panicked, hung or ran out of memory, naming the input that
# did it (kept under fuzz/artifacts/<target>/).
#
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
#   fuzz/run.sh 30     the bounded run of the test command
#   fuzz/run.sh 600    a longer run, for changes to decoding or validation
# Needs cargo-fuzz (cargo install cargo-fuzz). Works on a stable toolchain:
# no sanitizer (-s none), which nightly would add; debug assertions are on, so
# integer overflows panic.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

seconds=${1:-30}
shift $(($# > 0 ? 1 : 0))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request_frame dispatch record_batch)
# One input taking longer than this is a hang (the dispatch target's waits
# run on a paused clock, so none should come near it).
input_timeout_s=20
# Room for a Produce request with a few batches; libFuzzer would otherwise
# cap inputs at the largest seed.
max_input_bytes=65536

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked"
  exit 1
fi
cargo fuzz build -s none || exit 1

# New corpus entries and the dispatch target's log directory live here; a
# memory-backed directory keeps the broker's fsyncs off the disk.
scratch_parent=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && scratch_parent=/dev/shm
work=$(mktemp -d "$scratch_parent/gregor-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# A number from libFuzzer's closing statistics (-print_final_stats=1).
final_stat() { # name log
  sed -n "s/^stat::$1: *\([0-9]*\).*/\1/p" "$2" | tail -n 1
}

failed=()
for target in "${targets[@]}"; do
  mkdir -p "$work/$target/corpus" "$work/$target/tmp" "artifacts/$target"
  log=$work/$target/log
  before=$(find "artifacts/$target" -type f | sort)
  TMPDIR=$work/$target/tmp cargo fuzz run -s none "$target" "$work/$target/corpus" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout="$input_timeout_s" -max_len="$max_input_bytes" -print_final_stats=1 >"$log" 2>&1
  status=$?
  runs=$(final_stat number_of_executed_units "$log")
  per_second=$(final_stat average_exec_per_sec "$log")
  rss_mb=$(final_stat peak_rss_mb "$log")
  new_inputs=$(find "$work/$target/corpus" -type f | wc -l)
  echo "$target: ${runs:-?} executions in ${seconds}s (${per_second:-?}/s, peak RSS ${rss_mb:-?} MB)," \
    "$new_inputs new corpus inputs"
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    echo "$target: FAILED (exit $status); last lines of its log:"
    grep -v -e '^#' -e '^INFO' -e '^WARNING' "$log" | tail -n 40 | sed 's/^/  /'
    comm -13 <(echo "$before") <(find "artifacts/$target" -type f | sort) | while read -r input; do
      echo "$target: crashing input: fuzz/$input (reproduce: cd fuzz && cargo fuzz run -s none $target $input)"
    done
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found failures in: ${failed[*]}"
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, no failures"
