#!/usr/bin/env python3
"""Prints the figures of one bench/scaling.sh run as Markdown: produce
throughput and latency as partitions and producer connections grow, each
beside the null broker's in the same run, then Gregor's footprint against
its targets.

Usage: report_scaling.py RESULTS_DIR
"""
import json
import os
import sys

results = sys.argv[1]


def load(name):
    path = os.path.join(results, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None


def value(name):
    path = os.path.join(results, name)
    return float(open(path).read().strip()) if os.path.exists(path) else None


def p99(summary):
    return f"{summary['latency_ms']['p99']:.1f}" if summary and summary.get("latency_ms") else "n/a"


def rate(summary):
    return f"{summary['records_per_sec']:,.0f}" if summary else "n/a"


def ratio(gregor, null):
    if not gregor or not null or not null["records_per_sec"]:
        return "n/a"
    return f"{gregor['records_per_sec'] / null['records_per_sec']:.2f}"


def cpu_per_million(summary):
    if not summary or not summary["records"]:
        return "n/a"
    return f"{summary['broker_cpu_secs'] / summary['records'] * 1e6:.2f}"


print(open(os.path.join(results, "machine.txt")).read().strip())
for what, counts in (("partitions", (1, 10, 100, 1000)), ("producers", (1, 10, 100))):
    print()
    print(f"| {what.capitalize()} | Gregor records/s | Null broker records/s | Ratio | "
          "Gregor delivery p99 ms | Null p99 ms | Gregor broker CPU s per million records |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for count in counts:
        gregor, null = load(f"gregor-{what}-{count}"), load(f"null-{what}-{count}")
        print(f"| {count} | {rate(gregor)} | {rate(null)} | {ratio(gregor, null)} | {p99(gregor)} | {p99(null)} | "
              f"{cpu_per_million(gregor)} |")


def row(figure, measured, unit, target, met):
    shown = "n/a" if measured is None else f"{measured:,.2f} {unit}"
    verdict = "n/a" if measured is None else ("yes" if met(measured) else "**no**")
    print(f"| {figure} | {shown} | {target} | {verdict} |")


data_bytes = value("data.bytes")
crash_read = value("crash-read.bytes")
print()
print("| Footprint | Measured | Target | Met? |")
print("| --- | --- | --- | --- |")
row("RSS idle after start", value("rss-idle.mib"), "MiB", "< 50 MB", lambda v: v * 1.048576 < 50)
row("RSS with 10,000 partitions (one record each)", value("rss-10k.mib"), "MiB", "< 500 MB",
    lambda v: v * 1.048576 < 500)
row("RSS after a clean restart with 10,000 partitions", value("rss-10k-restart.mib"), "MiB", "< 500 MB",
    lambda v: v * 1.048576 < 500)
row("Clean restart with 10,000 partitions, until listening", value("start-restart.secs"), "s", "< 2 s",
    lambda v: v < 2)
row("Restart after kill -9 with 10,000 partitions, until listening", value("start-crash.secs"), "s", "(none)",
    lambda v: True)
if data_bytes and crash_read is not None:
    print(f"| Bytes read from files while starting after kill -9 | {crash_read / 1e6:,.2f} MB of "
          f"{data_bytes / 1e6:,.1f} MB on disk | only what follows the recovery point | see notes |")
after = load("big-after-crash")
print()
print(f"After the kill -9 restart, 10,000 more records (acks=all): {rate(after)} records/s, "
      f"{after['records'] if after else 'n/a'} acknowledged.")
