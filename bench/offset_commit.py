"""OffsetCommit latency for one group committing many partitions at once.

Usage (with a broker running, e.g. `gregor start`):
    .venv/bin/python bench/offset_commit.py [--bootstrap-server HOST:PORT] [--partitions 1000] [--commits 200]

Prints p50/p99/max of a synchronous commit of every partition (the issue's
target: 1000 partitions under 5 ms at p99).
"""

import argparse
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-server", default="127.0.0.1:9092")
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--commits", type=int, default=200)
    args = parser.parse_args()

    topic = f"offset-commit-bench-{int(time.time())}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap_server})
    admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(30)
    consumer = Consumer({"bootstrap.servers": args.bootstrap_server, "group.id": topic, "enable.auto.commit": False})
    latencies = []
    for round_number in range(args.commits + 10):
        offsets = [TopicPartition(topic, p, round_number + 1) for p in range(args.partitions)]
        started = time.perf_counter()
        consumer.commit(offsets=offsets, asynchronous=False)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if round_number >= 10:  # the first commits create __consumer_offsets and warm up
            latencies.append(elapsed_ms)
    consumer.close()
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"OffsetCommit of {args.partitions} partitions, {len(latencies)} commits: "
          f"p50 {pick(0.5):.2f} ms, p99 {pick(0.99):.2f} ms, max {latencies[-1]:.2f} ms")


if __name__ == "__main__":
    main()
