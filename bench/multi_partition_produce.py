"""Produce with acks=all through kafka-python, whose requests carry every partition's batch at once.

Usage (with a broker running, e.g. `gregor start`):
    .venv/bin/python bench/multi_partition_produce.py [--bootstrap-server HOST:PORT] [--partitions 30] [--seconds 5]

librdkafka (and so `gregor perf`) sends one partition per Produce request;
kafka-python, like the Java client, gathers the batches ready for a broker
into one request. Each round sends 20 records of 100 bytes to every
partition and waits for all acknowledgements (a flush); prints records/s
and the p50/p99 of a round. The client is CPU-bound, so the figure moves
with the broker's time per request rather than measuring its ceiling.
"""

import argparse
import time

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

RECORDS_PER_PARTITION = 20
VALUE = b"x" * 100


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-server", default="127.0.0.1:9092")
    parser.add_argument("--partitions", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()

    topic = f"multi-partition-bench-{int(time.time())}"
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap_server)
    admin.create_topics([NewTopic(topic, args.partitions, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=args.bootstrap_server, acks="all", linger_ms=5)

    def round_trip():
        for i in range(args.partitions * RECORDS_PER_PARTITION):
            producer.send(topic, VALUE, partition=i % args.partitions)
        producer.flush()

    for _ in range(5):  # warm-up: metadata, connections
        round_trip()
    rounds = []
    started = time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        round_started = time.perf_counter()
        round_trip()
        rounds.append(time.perf_counter() - round_started)
    elapsed = time.perf_counter() - started
    producer.close()
    rounds.sort()
    records = len(rounds) * args.partitions * RECORDS_PER_PARTITION
    print(
        f"{records / elapsed:.0f} records/s; a round of {args.partitions * RECORDS_PER_PARTITION} records: "
        f"p50 {rounds[len(rounds) // 2] * 1000:.2f} ms, p99 {rounds[int(len(rounds) * 0.99)] * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
