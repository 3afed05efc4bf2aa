#!/usr/bin/env python3
"""Restart time with a large log, on `skiff local` (3 durable nodes).

Fills the log with SETs of 1 KiB values until node 1's log holds --log-gib GiB (snapshots off, so
the whole log stays), then kills node 1 with kill -9, restarts it, and measures the time from the
restart to its first linearizable read served. Repeats with snapshots on (the default
--snapshot-every) to measure a restart from a snapshot plus its log tail.

    python3 bench/restart.py [--log-gib 1.0]

Needs redis-benchmark and a built target/release/skiff.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import skiff_local  # noqa: E402

BASE = int(os.environ.get("BASE", "18501"))


def status(node):
    return skiff_local.status(BASE, node)


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def get_once(node):
    try:
        with socket.create_connection(("127.0.0.1", BASE + node - 1), timeout=1) as s:
            s.settimeout(2)
            s.sendall(b"*2\r\n$3\r\nGET\r\n$5\r\nprobe\r\n")
            return s.recv(64).startswith((b"$", b"*"))
    except OSError:
        return False


def run(log_gib, serve_args, label, rounds=None):
    """Loads the cluster until node 1's log holds `log_gib` GiB (or for `rounds` rounds of
    200 000 SETs), restarts node 1 and times it. Returns the rounds it loaded."""
    work = tempfile.mkdtemp()
    local = skiff_local.start(BASE, work, serve_args)
    try:
        leader = skiff_local.wait_for_leader(BASE, (1, 2, 3), 15)
        if leader is None:
            sys.exit("no leader")
        wal = os.path.join(work, "node1", "wal")
        target = int(log_gib * (1 << 30))
        loaded = 0
        # 100 000 keys of 1 KiB: a store of about 100 MiB, however long the log grows.
        while (du(wal) < target) if rounds is None else (loaded < rounds):
            loaded += 1
            load = subprocess.run(["redis-benchmark", "-p", str(BASE + leader - 1), "-t", "set",
                                   "-d", "1024", "-r", "100000", "-n", "200000", "-c", "50",
                                   "-P", "16", "-q"], capture_output=True, text=True)
            if load.returncode != 0:
                sys.exit(f"redis-benchmark failed: {load.stdout[-500:]} {load.stderr[-500:]}")
        size = du(wal)
        s1 = status(1)
        if leader == 1:
            # Restart a follower's worth of work: hand leadership away first.
            skiff_local.http(BASE + 200, "/admin/transfer-leader?to=2", "POST")
            time.sleep(1)
        skiff_local.control(BASE, "kill", 1)
        time.sleep(0.5)
        started = time.monotonic()
        skiff_local.control(BASE, "restart", 1)
        while not get_once(1):
            if time.monotonic() - started > 120:
                sys.exit("node 1 did not serve within 120 s")
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        print(f"{label}: node 1's data {size / (1 << 30):.2f} GiB "
              f"(log {s1['first_index']}..{s1['last_index']}, snapshot at {s1['snapshot_index']}), "
              f"restart to first linearizable read served: {elapsed:.2f} s")
        return loaded
    finally:
        skiff_local.stop(local)
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--log-gib", type=float, default=1.0)
    args = parser.parse_args()
    rounds = run(args.log_gib, ["--snapshot-every", "0"], "whole log, no snapshot")
    # The same writes again, with snapshots on: the log is compacted behind each snapshot.
    run(args.log_gib, [], "snapshot plus tail (default --snapshot-every 100000)", rounds)


if __name__ == "__main__":
    main()
