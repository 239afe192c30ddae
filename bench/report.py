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


def fsync_p99_ms(test):
    """The fsync p99 of one disk.sh test, in ms (the last run's)."""
    pattern = rf"^{re.escape(test)}\s.*fsync p50\s+\d+ us p99\s+(\d+) us"
    found = re.findall(pattern, read("disk.txt"), re.M)
    return float(found[-1]) / 1000 if found else None


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

rows = []  # figure, gregor, baseline, ratio, target: ≥ target, or ("≤", target)


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

def p99(summary):
    return summary["latency_ms"]["p99"] if summary and summary.get("latency_ms") else None


null_delivery_p99 = p99(load("null-latency-acks1"))
e2e_acks1_p99 = p99(load("gregor-e2e-acks1"))
rows.append(("End-to-end p99, 100 B at 50,000 records/s, linger 0, acks=1, ms", number(e2e_acks1_p99, 2),
             f"null broker, produce delivery p99: {number(null_delivery_p99, 2)}",
             ratio(e2e_acks1_p99, null_delivery_p99), ("≤", 1.5)))
fsync_p99 = fsync_p99_ms("fdatasync-every-16KiB")
e2e_all_p99 = p99(load("gregor-e2e-acksall"))
rows.append(("End-to-end p99, 100 B at 50,000 records/s, linger 0, acks=all, ms", number(e2e_all_p99, 2),
             f"disk fsync p99 (16 KiB) + 2 ms: {number(fsync_p99, 2)} + 2",
             ratio(e2e_all_p99, fsync_p99 + 2 if fsync_p99 is not None else None), ("≤", 1.0)))


def cpu_per_mb(summary):
    if not summary or not summary.get("mb_per_sec"):
        return None
    return summary["broker_cpu_secs"] / (summary["mb_per_sec"] * summary["elapsed_secs"])


for size, acks in ((100, "1"), (1000, "1"), (100, "all"), (1000, "all")):
    gregor_cpu = cpu_per_mb(load(f"gregor-produce-{size}-acks{acks}"))
    null_cpu = cpu_per_mb(load(f"null-produce-{size}-acks{acks}"))
    rows.append((f"Broker CPU ms per MB produced, {size} B, acks={acks}", number(gregor_cpu and gregor_cpu * 1000, 2),
                 f"null broker: {number(null_cpu and null_cpu * 1000, 2)}", ratio(gregor_cpu, null_cpu), ("≤", 3.0)))

print("Machine and load:")
print()
for line in read("machine.txt").splitlines():
    print(f"    {line}")
print()
print("| Figure | Gregor | Baseline (same run) | Ratio | Target | Met? |")
print("| --- | --- | --- | --- | --- | --- |")
for figure, value, baseline, r, target in rows:
    ratio_text = f"{r:.2f}" if r is not None else "n/a"
    at_most = isinstance(target, tuple)
    bound = target[1] if at_most else target
    target_text = "(none)" if bound is None else f"{'≤' if at_most else '≥'} {bound:.2f}"
    if bound is None or r is None:
        met = "—"
    else:
        met = "yes" if (r <= bound if at_most else r >= bound) else "**no**"
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
