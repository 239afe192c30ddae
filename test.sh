#!/usr/bin/env bash
# The one command that runs every test: installs what is missing (Debian
# packages, the Python virtualenv at .venv, compat/js/node_modules), then runs
# formatting, lints, the Rust tests, the compatibility suite and a bounded
# fuzzing run.
# Idempotent; quick when everything is already installed.
# Every step runs even if an earlier one failed; the exit status is non-zero
# if any failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export DEBIAN_FRONTEND=noninteractive

failed_steps=()

step() { # name command...
  local name=$1 started
  shift
  echo "==> $name"
  started=$(date +%s)
  if "$@"; then
    echo "==> $name: ok ($(($(date +%s) - started))s)"
  else
    echo "==> $name: FAILED ($(($(date +%s) - started))s)"
    failed_steps+=("$name")
  fi
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages: kcat for the compatibility suite; a C toolchain, make and
# perl for librdkafka's own build (rdkafka-sys); Python's venv; Node and npm.
install_system_packages() {
  local missing=()
  command -v kcat >/dev/null || missing+=(kcat)
  command -v cc >/dev/null || missing+=(gcc libc6-dev)
  command -v make >/dev/null || missing+=(make)
  command -v perl >/dev/null || missing+=(perl)
  command -v python3 >/dev/null || missing+=(python3)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  if [ ${#missing[@]} -eq 0 ]; then
    echo "all present"
    return 0
  fi
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

check_rust_tools() {
  cargo --version && cargo fmt --version && cargo clippy --version
}

# .venv with the pinned Python clients, rebuilt only when the pins change.
install_python_clients() {
  local requirements=compat/python/requirements.txt stamp=.venv/.requirements.sha256 wanted
  wanted=$(sha256sum <"$requirements")
  if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ] &&
    .venv/bin/python -c 'import confluent_kafka, kafka, pytest' 2>/dev/null; then
    echo "up to date"
    return 0
  fi
  python3 -m venv --clear .venv &&
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements" &&
    echo "$wanted" >"$stamp"
}

# compat/js/node_modules from the lockfile, reinstalled only when it changes.
install_node_clients() {
  local stamp=compat/js/node_modules/.package-lock.sha256 wanted
  wanted=$(sha256sum <compat/js/package-lock.json)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ] && [ -f compat/js/node_modules/kafkajs/package.json ]; then
    echo "up to date"
    return 0
  fi
  (cd compat/js && npm ci --no-audit --no-fund --loglevel=error) && echo "$wanted" >"$stamp"
}

# cargo-fuzz for the fuzzing step, installed once into ~/.cargo/bin.
install_cargo_fuzz() {
  if cargo fuzz --version >/dev/null 2>&1; then
    echo "present"
    return 0
  fi
  cargo install --quiet --locked cargo-fuzz
}

step "system packages" install_system_packages
step "rust tools" check_rust_tools
step "cargo-fuzz" install_cargo_fuzz
step "python clients" install_python_clients
step "node clients" install_node_clients
# Test counts, summed from each runner's own summary lines.
tests_passed=0
tests_failed=0
output=$(mktemp)
trap 'rm -f "$output"' EXIT

cargo_tests() {
  # --no-fail-fast: one failing test binary must not hide the others' results.
  cargo test --workspace --no-fail-fast 2>&1 | tee "$output"
  local status=${PIPESTATUS[0]} line
  while read -r line; do
    [[ $line =~ ([0-9]+)\ passed\;\ ([0-9]+)\ failed ]] || continue
    tests_passed=$((tests_passed + BASH_REMATCH[1]))
    tests_failed=$((tests_failed + BASH_REMATCH[2]))
  done < <(grep -E '^test result: ' "$output")
  return "$status"
}

compat_tests() {
  compat/run.sh 2>&1 | tee "$output"
  local status=${PIPESTATUS[0]} last
  last=$(tail -n 1 "$output")
  if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    tests_passed=$((tests_passed + BASH_REMATCH[1]))
    tests_failed=$((tests_failed + BASH_REMATCH[2]))
  fi
  return "$status"
}

step "cargo fmt" cargo fmt --all --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
step "cargo test" cargo_tests
step "compatibility suite" compat_tests
# Each fuzz target for 30 s from its committed corpus (fuzz/README.md).
step "fuzzing" fuzz/run.sh 30

# The closing line counts tests. A failed step that ran no test (fmt, clippy,
# an install) counts as one failure, and so does a runner that failed without
# reporting a failed test (a build error): the line never reads as all-passed
# when something failed.
failures=$tests_failed
for name in "${failed_steps[@]}"; do
  case "$name" in
    "cargo test" | "compatibility suite") ;;
    *) failures=$((failures + 1)) ;;
  esac
done
if [ ${#failed_steps[@]} -gt 0 ]; then
  [ "$failures" -gt 0 ] || failures=1
  echo "test.sh: failed steps: ${failed_steps[*]}"
fi
echo "total: $tests_passed passed, $failures failed"
[ ${#failed_steps[@]} -eq 0 ]
