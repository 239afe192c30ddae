"""Rebalance time of a 10-member consumer group as the last member joins.

Usage (with a broker running, e.g. `gregor start`):
    .venv/bin/python bench/rebalance.py [--bootstrap-server HOST:PORT] [--protocol classic|consumer]

Nine members (confluent-kafka, librdkafka) join a group on a 30-partition
topic and settle; then a tenth joins. Printed: the time from the tenth
member's subscribe until every member holds its final assignment (the
classic protocol's rebalance, or KIP-848's reconciliation), in ms and in
heartbeat intervals, and how many partitions the existing members had
revoked meanwhile (eager assignors revoke everything; cooperative and
KIP-848 only what moves).
"""

import argparse
import threading
import time

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 30
MEMBERS = 10
# Kafka's defaults: the client's heartbeat.interval.ms (classic), and the
# broker's group.consumer.heartbeat.interval.ms (KIP-848).
HEARTBEAT_MS = {"classic": 3000, "consumer": 5000}


class Member(threading.Thread):
    def __init__(self, config, topic):
        super().__init__(daemon=True)
        self.consumer = Consumer(config)
        self.topic = topic
        self.assigned = set()
        self.revoked = 0
        self.changed_at = time.monotonic()
        self.stop = threading.Event()

    def on_assign(self, consumer, partitions):
        self.assigned |= {p.partition for p in partitions}
        self.changed_at = time.monotonic()

    def on_revoke(self, consumer, partitions):
        self.revoked += len(partitions)
        self.assigned -= {p.partition for p in partitions}
        self.changed_at = time.monotonic()

    def run(self):
        self.consumer.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke)
        while not self.stop.is_set():
            self.consumer.poll(0.05)
        self.consumer.close()


def settled(members):
    """Every partition owned exactly once and every member holds some."""
    owned = [p for m in members for p in m.assigned]
    return sorted(owned) == list(range(PARTITIONS)) and all(m.assigned for m in members)


def wait_settled(members, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if settled(members):
            return True
        time.sleep(0.01)
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-server", default="127.0.0.1:9092")
    parser.add_argument("--protocol", choices=["classic", "consumer"], default="classic")
    parser.add_argument("--assignor", default="range", help="classic protocol only: range, roundrobin, cooperative-sticky")
    args = parser.parse_args()

    topic = f"rebalance-bench-{int(time.time() * 1000)}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap_server})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    config = {"bootstrap.servers": args.bootstrap_server, "group.id": topic, "enable.auto.commit": False}
    if args.protocol == "consumer":
        config["group.protocol"] = "consumer"
    else:
        config["partition.assignment.strategy"] = args.assignor
        config["heartbeat.interval.ms"] = HEARTBEAT_MS["classic"]

    members = [Member(config, topic) for _ in range(MEMBERS - 1)]
    for member in members:
        member.start()
    if not wait_settled(members, 120):
        raise SystemExit("the first nine members did not settle within 120 s")
    revoked_before = sum(m.revoked for m in members)

    last = Member(config, topic)
    started = time.monotonic()
    last.start()
    members.append(last)
    if not wait_settled(members, 120):
        raise SystemExit("the group did not settle within 120 s of the tenth member joining")
    finished = max(m.changed_at for m in members)
    revoked = sum(m.revoked for m in members[:-1]) - revoked_before
    for member in members:
        member.stop.set()
    for member in members:
        member.join(30)

    elapsed_ms = (finished - started) * 1000
    heartbeat_ms = HEARTBEAT_MS[args.protocol]
    name = "KIP-848 (group.protocol=consumer)" if args.protocol == "consumer" else f"classic, {args.assignor}"
    print(f"{name}: the tenth member's join settled in {elapsed_ms:.0f} ms "
          f"({elapsed_ms / heartbeat_ms:.2f} heartbeat intervals of {heartbeat_ms} ms); "
          f"existing members had {revoked} partitions revoked")


if __name__ == "__main__":
    main()
