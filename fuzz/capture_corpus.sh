#!/usr/bin/env bash
# Regenerates the committed seed corpora (fuzz/corpus/) from real client
# traffic: the compatibility suite's kcat, confluent-kafka, kafka-python and
# kafkajs scenarios, and a tour of the gregor CLI (librdkafka, and the
# kafka-protocol crate for txn and producers), each against a fresh broker
# behind fuzz/capture.py's recording proxy.
#
# Usage: fuzz/capture_corpus.sh   (needs what ./test.sh installs: kcat,
# .venv, compat/js/node_modules). Builds target/release/gregor unless GREGOR
# names a binary to use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -z "${GREGOR:-}" ]; then
  cargo build --quiet --release -p gregor-cli
fi
export GREGOR=${GREGOR:-target/release/gregor}
python=.venv/bin/python
pytest="$python -m pytest -q -p no:cacheprovider"

# The gregor CLI across its commands; one topic, a group and a transaction.
read -r -d '' cli_tour <<'EOF' || true
# the gregor CLI tour
set -eu
g() { "$GREGOR" "$@" --bootstrap-server "$BOOTSTRAP"; }
g topic create fuzz-cli --partitions 2 --config cleanup.policy=compact
g topic list >/dev/null
g topic describe fuzz-cli >/dev/null
g topic alter fuzz-cli --partitions 3
g config alter --topic fuzz-cli --set retention.ms=3600000 --delete cleanup.policy
g config describe --topic fuzz-cli --all >/dev/null
g config describe --broker 1 >/dev/null
printf 'k1:v1\nk2:v2\nk3:v3\n' | g produce --topic fuzz-cli --key-separator : --header source=cli --compression zstd
printf 'a\nb\n' | g produce --topic fuzz-cli --acks 1 --compression gzip
g consume --topic fuzz-cli --group fuzz-group --from-beginning --max-messages 5 --timeout-ms 10000 \
  --print-key --print-headers --print-timestamp >/dev/null
g consume --topic fuzz-cli --group fuzz-next --from-beginning --max-messages 5 --timeout-ms 10000 \
  -X group.protocol=consumer >/dev/null
g group list >/dev/null
g group describe fuzz-group >/dev/null
g group reset-offsets fuzz-group --topic fuzz-cli --to-earliest --execute >/dev/null
g perf produce --topic fuzz-perf --num-records 200 --record-size 50 --partitions 2 --idempotence \
  --compression lz4 --quiet >/dev/null
g perf produce --topic fuzz-perf --num-records 100 --record-size 20 --transactional-id fuzz-txn \
  --transaction-records 50 --compression snappy --quiet >/dev/null
g perf consume --topic fuzz-perf --num-records 300 --quiet >/dev/null
g txn list >/dev/null
g txn describe fuzz-txn >/dev/null
g producers describe --topic fuzz-perf >/dev/null
g group delete fuzz-group >/dev/null
g topic delete fuzz-cli
EOF

rm -rf fuzz/corpus
fuzz/capture.py --gregor "$GREGOR" fuzz/corpus \
  "compat/kcat/scenarios.sh metadata" \
  "compat/kcat/scenarios.sh roundtrip" \
  "compat/kcat/scenarios.sh compression" \
  "compat/kcat/scenarios.sh offsets" \
  "$pytest compat/python/test_confluent_kafka.py" \
  "$pytest compat/python/test_kafka_python.py" \
  "node compat/js/roundtrip.js" \
  "node compat/js/admin.js" \
  "$cli_tour"
