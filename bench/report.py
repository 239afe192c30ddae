#!/usr/bin/env python3
"""Prints the figures of one bench/run.sh run as Markdown: each Gregor figure
beside its baseline from the same run, the ratio, and the target.

Usage: report.py RESULTS_DIR
RESULTS_DIR holds NAME.json (one `gregor perf --json` summary each, plus
client_cpu_secs and broker_cpu_secs), disk.txt and loopback.txt (the limits
scripts' output) and machine.txt.
"""
import json
import os
import re
import sys

results = sys.argv[1]


def load(name):
    path = os.path.join(results, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None


def read(name):
    path = os.path.join(results, name)
    return open(path).read() if os.path.exists(path) else ""


def disk_limits():
    """{test name: (MB/s, fsyncs/s)} from disk.sh's lines."""
    limits = {}
    pattern = r"^(\S+)\s+(\d+) MB/s \(fio's own\s+(\d+)\)\s+(\d+) fsyncs/s"
    for match in re.finditer(pattern, read("disk.txt"), re.M):
        limits[match.group(1)] = (float(match.group(2)), float(match.group(4)))
    return limits


def loopback_limits():
    text = read("loopback.txt")
    streams = {int(m.group(1)): float(m.group(2))
               for m in re.finditer(r"^iperf3 -P (\d+) .*= +(\d+) MB/s", text, re.M)}
    rtt = {int(m.group(1)): (float(m.group(2)), float(m.group(3)), float(m.group(4)))
           for m in re.finditer(r"^sockperf tcp (\d+)B run \d+: RTT p50 ([\d.]+) us p99 ([\d.]+) us p99.9 ([\d.]+) us",
                                text, re.M)}
    return streams, rtt


def number(value, digits=0):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def ratio(value, baseline):
    if value is None or not baseline:
        return None
    return value / baseline


def latency(summary):
    if not summary or not summary.get("latency_ms"):
        return "n/a"
    lat = summary["latency_ms"]
    return f"{lat['p50']:.1f} / {lat['p99']:.1f} / {lat['p99_9']:.1f} / {lat['max']:.1f}"


def field(summary, key):
    return summary[key] if summary else None


disk = disk_limits()
streams, rtt = loopback_limits()
fsync_1mib_mb, fsync_1mib_rate = disk.get("fdatasync-every-1MiB", (None, None))
buffered_mb = disk.get("buffered-1GiB", (None, None))[0]

rows = []  # figure, gregor, baseline, ratio, target


def produce_row(size, acks, unit, target):
    gregor = load(f"gregor-produce-{size}-acks{acks}")
    null = load(f"null-produce-{size}-acks{acks}")
    key = "records_per_sec" if unit == "records/s" else "mb_per_sec"
    digits = 0 if unit == "records/s" else 1
    value, baseline = field(gregor, key), field(null, key)
    rows.append((f"Produce {size} B, acks={acks}, {unit}", f"{number(value, digits)}",
                 f"null broker: {number(baseline, digits)}", ratio(value, baseline), target))


produce_row(100, "1", "records/s", 0.80)
produce_row(1000, "1", "MB/s", 0.80)
produce_row(100, "all", "records/s", 0.50)

acks_all_1000 = load("gregor-produce-1000-acksall")
value = field(acks_all_1000, "mb_per_sec")
rows.append(("Produce 1000 B, acks=all, MB/s", number(value, 1),
             f"disk, fdatasync every 1 MiB: {number(fsync_1mib_mb)} MB/s ({number(fsync_1mib_rate)} fsyncs/s)",
             ratio(value, fsync_1mib_mb), 0.70))
null_all_1000 = load("null-produce-1000-acksall")
rows.append(("Produce 1000 B, acks=all, MB/s (vs null broker)", number(value, 1),
             f"null broker: {number(field(null_all_1000, 'mb_per_sec'), 1)}",
             ratio(value, field(null_all_1000, "mb_per_sec")), None))

for size in (100, 1000):
    consumed = load(f"gregor-consume-{size}")
    value = field(consumed, "mb_per_sec")
    rows.append((f"Consume {size} B (from page cache), MB/s "
                 f"({number(field(consumed, 'records_per_sec'))} records/s)",
                 number(value, 1), f"loopback TCP, 1 stream: {number(streams.get(1))} MB/s",
                 ratio(value, streams.get(1)), None))

e2e = load("gregor-e2e-100")
if e2e and e2e.get("latency_ms"):
    lat = e2e["latency_ms"]
    base = rtt.get(64)
    rows.append(("End-to-end latency, 100 B at 5000 records/s, linger 0, acks=1: p50 / p99 / p99.9 ms",
                 f"{lat['p50']:.2f} / {lat['p99']:.2f} / {lat['p99_9']:.2f}",
                 f"TCP round trip 64 B: {base[0] / 1000:.3f} / {base[1] / 1000:.3f} / {base[2] / 1000:.3f}" if base
                 else "n/a", ratio(lat["p50"], base[0] / 1000 if base else None), None))

print("Machine and load:")
print()
for line in read("machine.txt").splitlines():
    print(f"    {line}")
print()
print("| Figure | Gregor | Baseline (same run) | Ratio | Target | Met? |")
print("| --- | --- | --- | --- | --- | --- |")
for figure, value, baseline, r, target in rows:
    ratio_text = f"{r:.2f}" if r is not None else "n/a"
    target_text = f"≥ {target:.2f}" if target is not None else "(none)"
    met = "—" if target is None or r is None else ("yes" if r >= target else "**no**")
    print(f"| {figure} | {value} | {baseline} | {ratio_text} | {target_text} | {met} |")

print()
print("Every run (latency: delivery for produce, end-to-end for e2e; ms):")
print()
print("| Run | Records | Records/s | MB/s | Latency p50 / p99 / p99.9 / max | Client CPU s | Broker CPU s | Wall s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
names = sorted(f[:-5] for f in os.listdir(results) if f.endswith(".json") and not f.endswith(".perf.json"))
for name in names:
    s = load(name)
    print(f"| {name} | {s['records']:,} | {number(s['records_per_sec'])} | {number(s['mb_per_sec'], 1)} | "
          f"{latency(s)} | {s['client_cpu_secs']:.1f} | {s['broker_cpu_secs']:.1f} | {s['elapsed_secs']:.1f} |")

print()
print("Limits (same run):")
print()
for line in (read("disk.txt") + read("loopback.txt")).splitlines():
    if not line.startswith("#"):
        print(f"    {line}")
if buffered_mb is not None:
    print()
    print(f"Buffered write (1 GiB, 1 MiB blocks): {number(buffered_mb)} MB/s.")
