#!/usr/bin/env python3
"""Captures real Kafka clients' requests as seed corpora for the fuzz targets.

For each COMMAND: starts `gregor start` on an ephemeral port with a proxy in
front of it, and makes the broker advertise the proxy, so every connection
the client opens (the bootstrap one and those it opens after Metadata) passes
through it. The command runs with BOOTSTRAP set to the proxy's address. The
proxy cuts the client-to-broker byte stream into frames (a 4-byte size, then
that many bytes) and keeps each frame's bytes after the size.

Then writes, under OUT_DIR:
  request_frame/ and dispatch/   the first PER_KIND distinct frames of each
                                 kind: api, version and client library
  record_batch/                  the records field of Produce partitions, the
                                 first PER_KIND of each client library,
                                 version, codec and producer kind (plain,
                                 idempotent, transactional), after one
                                 options byte (see record_batch.rs)
Names are <api>-v<version>-<client>-<hash>, so a rerun adds no duplicates.

Usage: fuzz/capture.py [--gregor PATH] [--per-kind N] OUT_DIR COMMAND...
Only the standard library; COMMANDs run through `bash -c` from the repo root.
"""

import argparse
import hashlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

API_NAMES = {
    0: "produce", 1: "fetch", 2: "list_offsets", 3: "metadata", 8: "offset_commit",
    9: "offset_fetch", 10: "find_coordinator", 11: "join_group", 12: "heartbeat",
    13: "leave_group", 14: "sync_group", 15: "describe_groups", 16: "list_groups",
    18: "api_versions", 19: "create_topics", 20: "delete_topics", 21: "delete_records",
    22: "init_producer_id", 24: "add_partitions_to_txn", 25: "add_offsets_to_txn",
    26: "end_txn", 28: "txn_offset_commit", 32: "describe_configs", 33: "alter_configs",
    35: "describe_log_dirs", 37: "create_partitions", 42: "delete_groups",
    44: "incremental_alter_configs", 47: "offset_delete", 60: "describe_cluster",
    61: "describe_producers", 65: "describe_transactions", 66: "list_transactions",
    68: "consumer_group_heartbeat", 69: "consumer_group_describe",
    75: "describe_topic_partitions",
}
PRODUCE = 0
# Produce is flexible (compact strings and arrays, tagged fields) from v9.
PRODUCE_FIRST_FLEXIBLE = 9
# Produce names topics by id instead of by name from v13 (KIP-516).
PRODUCE_FIRST_TOPIC_ID = 13
# record_batch.rs options: recompute CRCs, and take "now" from the batch, so
# mutated seeds stay past the CRC check and captured timestamps stay valid.
RECORD_BATCH_OPTIONS = bytes([0b11])
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
# In a v2 record batch: the attributes, and the producer id (-1: none).
ATTRIBUTES_OFFSET = 21
PRODUCER_ID_OFFSET = 43
TRANSACTIONAL = 0x10
STARTUP_TIMEOUT_S = 30
COMMAND_TIMEOUT_S = 300


class Reader:
    """Kafka's wire types over one frame."""

    def __init__(self, data, position=0):
        self.data = data
        self.position = position

    def take(self, count):
        if count < 0 or self.position + count > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.position:self.position + count]
        self.position += count
        return chunk

    def int(self, size):
        return int.from_bytes(self.take(size), "big", signed=True)

    def uvarint(self):
        value, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def string(self, flexible):
        length = self.uvarint() - 1 if flexible else self.int(2)
        return None if length < 0 else self.take(length)

    def bytes(self, flexible):
        length = self.uvarint() - 1 if flexible else self.int(4)
        return None if length < 0 else self.take(length)

    def array_length(self, flexible):
        return self.uvarint() - 1 if flexible else self.int(4)

    def skip_tagged_fields(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def header(frame):
    """(api key, api version, client id) of a request frame."""
    reader = Reader(frame)
    api_key, api_version = reader.int(2), reader.int(2)
    reader.int(4)  # correlation id
    client_id = reader.string(flexible=False)  # never compact, even in header v2
    return api_key, api_version, (client_id or b"").decode("utf-8", "replace"), reader


def produce_records(frame):
    """Every partition's records field of a Produce request frame."""
    _, version, _, reader = header(frame)
    flexible = version >= PRODUCE_FIRST_FLEXIBLE
    if flexible:
        reader.skip_tagged_fields()  # request header v2
    reader.string(flexible)  # transactional id
    reader.int(2)  # acks
    reader.int(4)  # timeout
    found = []
    for _ in range(reader.array_length(flexible)):
        if version >= PRODUCE_FIRST_TOPIC_ID:
            reader.take(16)
        else:
            reader.string(flexible)
        for _ in range(reader.array_length(flexible)):
            reader.int(4)  # partition index
            records = reader.bytes(flexible)
            if records:
                found.append(records)
            if flexible:
                reader.skip_tagged_fields()
        if flexible:
            reader.skip_tagged_fields()
    return found


class Proxy:
    """Relays connections to the broker, collecting client-to-broker frames."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.upstream = None
        self.frames = []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            client, _ = self.listener.accept()
            try:
                broker = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self.requests, args=(client, broker), daemon=True).start()
            threading.Thread(target=self.relay, args=(broker, client), daemon=True).start()

    def relay(self, source, target):
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def requests(self, client, broker):
        pending = b""
        try:
            while chunk := client.recv(65536):
                broker.sendall(chunk)
                pending += chunk
                while len(pending) >= 4:
                    size = int.from_bytes(pending[:4], "big")
                    if len(pending) < 4 + size:
                        break
                    with self.lock:
                        self.frames.append(pending[4:4 + size])
                    pending = pending[4 + size:]
        except OSError:
            pass
        for sock in (client, broker):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def take_frames(self):
        with self.lock:
            frames, self.frames = self.frames, []
        return frames


def run_against_broker(gregor, proxy, command):
    """Runs `command` through the proxy against a fresh broker."""
    with tempfile.TemporaryDirectory(prefix="gregor-capture.") as work:
        log_path = os.path.join(work, "broker.log")
        with open(log_path, "w") as log:
            broker = subprocess.Popen(
                [gregor, "start",
                 "--set", "listeners=PLAINTEXT://127.0.0.1:0",
                 "--set", f"advertised.listeners=PLAINTEXT://127.0.0.1:{proxy.port}",
                 "--set", f"log.dirs={work}/logs"],
                stderr=log, stdout=log, env={**os.environ, "RUST_LOG": "info"})
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            address = None
            while address is None and time.monotonic() < deadline and broker.poll() is None:
                with open(log_path) as log:
                    found = re.search(r"listening on ([0-9.]+):([0-9]+)", log.read())
                if found:
                    address = (found.group(1), int(found.group(2)))
                else:
                    time.sleep(0.1)
            if address is None:
                sys.exit(f"the broker did not start; see its log:\n{open(log_path).read()}")
            proxy.upstream = address
            env = {**os.environ, "BOOTSTRAP": f"127.0.0.1:{proxy.port}"}
            result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env,
                                    timeout=COMMAND_TIMEOUT_S, capture_output=True, text=True)
            status = "ok" if result.returncode == 0 else f"exit {result.returncode}"
            print(f"{command.splitlines()[0]}: {status}", file=sys.stderr)
            if result.returncode != 0:
                print(result.stdout[-2000:] + result.stderr[-2000:], file=sys.stderr)
        finally:
            broker.terminate()
            broker.wait(timeout=30)


def client_library(client_id):
    """The client id without a trailing version or instance number."""
    library = re.sub(r"[-_.]?[0-9][0-9.-]*$", "", client_id)
    return re.sub(r"[^A-Za-z0-9]+", "-", library).strip("-")[:24] or "none"


def batch_kind(records):
    """The codec and producer kind of the first batch in a records field."""
    if len(records) < PRODUCER_ID_OFFSET + 8:
        return "short"
    attributes = int.from_bytes(records[ATTRIBUTES_OFFSET:ATTRIBUTES_OFFSET + 2], "big")
    producer_id = int.from_bytes(records[PRODUCER_ID_OFFSET:PRODUCER_ID_OFFSET + 8], "big", signed=True)
    codec = CODECS[attributes & 7] if attributes & 7 < len(CODECS) else "codec"
    producer = "transactional" if attributes & TRANSACTIONAL else "idempotent" if producer_id >= 0 else "plain"
    return f"{codec}-{producer}"


def write(directory, name, data):
    os.makedirs(directory, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:10]
    with open(os.path.join(directory, f"{name}-{digest}"), "wb") as out:
        out.write(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gregor", default=os.path.join(ROOT, "target", "release", "gregor"))
    parser.add_argument("--per-kind", type=int, default=1)
    parser.add_argument("out_dir")
    parser.add_argument("commands", nargs="+")
    args = parser.parse_args()

    proxy = Proxy()
    frames = []
    for command in args.commands:
        run_against_broker(args.gregor, proxy, command)
        frames.extend(proxy.take_frames())

    kept, seen = {}, set()
    batches, seen_batches = {}, set()
    for frame in frames:
        try:
            api_key, version, client_id, _ = header(frame)
        except ValueError:
            continue
        name = f"{API_NAMES.get(api_key, f'api{api_key}')}-v{version}-{client_library(client_id)}"
        if frame not in seen and len(kept.setdefault(name, [])) < args.per_kind:
            seen.add(frame)
            kept[name].append(frame)
        if api_key == PRODUCE:
            try:
                for records in produce_records(frame):
                    kind = f"{name}-{batch_kind(records)}"
                    if records not in seen_batches and len(batches.setdefault(kind, [])) < args.per_kind:
                        seen_batches.add(records)
                        batches[kind].append(records)
            except ValueError:
                print(f"cannot parse a {name} request", file=sys.stderr)
    for name, chosen in kept.items():
        for frame in chosen:
            for target in ("request_frame", "dispatch"):
                write(os.path.join(args.out_dir, target), name, frame)
    for name, chosen in batches.items():
        for records in chosen:
            write(os.path.join(args.out_dir, "record_batch"), name, RECORD_BATCH_OPTIONS + records)
    total = sum(len(chosen) for chosen in kept.values())
    print(f"{len(frames)} frames captured; kept {total} frames of {len(kept)} kinds "
          f"and {sum(len(b) for b in batches.values())} record fields", file=sys.stderr)


if __name__ == "__main__":
    main()
