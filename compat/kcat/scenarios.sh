#!/usr/bin/env bash
# kcat (librdkafka as packaged by Debian, an older release than the Rust
# tests use) against Gregor. Usage: scenarios.sh NAME, with BOOTSTRAP set.
# Topics are auto-created by kcat's producer, as a user's first try would.
set -euo pipefail

: "${BOOTSTRAP:?BOOTSTRAP is not set: run this through compat/run.sh}"
topic="compat-kcat-$1-$RANDOM$RANDOM"
# Every kcat call is bounded; -e and -c make the consumers exit by themselves.
kcat() { timeout 60 kcat -b "$BOOTSTRAP" -X socket.timeout.ms=10000 "$@"; }

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Compares two texts, showing the difference on failure.
expect_equal() { # what expected actual
  if [ "$2" != "$3" ]; then
    diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") >&2 || true
    fail "$1 differs (expected < > actual)"
  fi
}

case "$1" in
  metadata)
    echo hello | kcat -P -t "$topic"
    listing=$(kcat -L -t "$topic")
    echo "$listing"
    grep -Eq '^ *1 brokers:' <<<"$listing" || fail "expected exactly one broker"
    grep -Eq "broker [0-9]+ at $BOOTSTRAP" <<<"$listing" || fail "the broker does not advertise $BOOTSTRAP"
    grep -q "topic \"$topic\" with 1 partitions" <<<"$listing" || fail "topic $topic is not listed with 1 partition"
    grep -Eq 'partition 0, leader [0-9]+, replicas: [0-9]+, isrs: [0-9]+' <<<"$listing" || fail "partition 0 lacks leader/replicas/isr"
    json=$(kcat -L -J -t "$topic")
    grep -q "\"topic\":\"$topic\"" <<<"$json" || fail "JSON metadata lacks the topic"
    ;;
  roundtrip)
    input=$(printf 'key-%d:value-%d\n' $(seq 1 20 | sed 's/.*/& &/'))
    kcat -P -t "$topic" -K: -H source=kcat -H run=1 <<<"$input"
    # An empty value with -Z is a null value (a tombstone).
    printf 'tombstone:\n' | kcat -P -t "$topic" -K: -Z
    output=$(kcat -C -t "$topic" -o beginning -e -q -Z -f '%k:%s|%h\n')
    expected=$(sed 's/$/|source=kcat,run=1/' <<<"$input"; echo 'tombstone:NULL|')
    expect_equal "consumed records" "$expected" "$output"
    ;;
  compression)
    for codec in gzip snappy lz4 zstd; do
      seq 1 200 | sed "s/^/$codec-/" | kcat -P -t "$topic" -z "$codec" -X linger.ms=100
    done
    output=$(kcat -C -t "$topic" -o beginning -e -q)
    expected=$(for codec in gzip snappy lz4 zstd; do seq 1 200 | sed "s/^/$codec-/"; done)
    expect_equal "records of every codec" "$expected" "$output"
    ;;
  offsets)
    seq 0 99 | kcat -P -t "$topic"
    expect_equal "records from offset 40" "$(seq 40 44)" "$(kcat -C -t "$topic" -o 40 -c 5 -q)"
    expect_equal "the last 3 records" "$(seq 97 99)" "$(kcat -C -t "$topic" -o -3 -e -q)"
    expect_equal "offsets printed" "$(printf '%s\n' 10:10 11:11)" "$(kcat -C -t "$topic" -o 10 -c 2 -q -f '%o:%s\n')"
    ;;
  *)
    fail "unknown kcat scenario '$1'"
    ;;
esac
