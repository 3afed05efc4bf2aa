#!/usr/bin/env python3
"""Restart time with a large log, on `skiff local` (3 durable nodes).

Fills the log with SETs of 1 KiB values until node 1's log holds --log-gib GiB (snapshots off, so
the whole log stays), then kills node 1 with kill -9, restarts it, and measures the time from the
restart to its first linearizable read served. Repeats with snapshots on (the default
--snapshot-every) to measure a restart from a snapshot plus its log tail.

    python3 bench/restart.py [--log-gib 1.0]
    python3 bench/restart.py --compare old=PATH new=PATH [--rounds 3]

With --compare, the log is filled once (by the skiff named below), then node 1 is restarted with
each given binary in turn, round after round (each round in the other order from the last, since
a restart finds the log in the page cache the one before it filled), so that builds are compared
on the same data and under the same load: each restart reports the time to the first
linearizable read and the CPU time node 1 used until then (user plus system, from /proc; less
disturbed by other work on the machine than the wall time), and the medians come last.

Needs redis-benchmark and a built `skiff` (SKIFF_BIN, else the release build in CARGO_TARGET_DIR
or `target`).
"""
import argparse
import os
import shutil
import signal
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


def cpu_and_faults(pid):
    """User and system CPU seconds of process `pid` so far (all its threads), and the minor
    page faults it took: fields 14, 15 and 10 of /proc/PID/stat. Fresh pages cost this virtual
    machine's host a fault of its own at times, so a slow restart with many faults says why."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick, int(fields[7])


def node_pid(local, node):
    """The pid of the `skiff serve` of `node` that `skiff local` (`local`) started."""
    children = subprocess.run(["pgrep", "-P", str(local.pid)], capture_output=True, text=True)
    for pid in children.stdout.split():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and b"--id" in args \
                and args[args.index(b"--id") + 1:][:1] == [str(node).encode()]:
            return int(pid)
    return None


def get_once(node):
    try:
        with socket.create_connection(("127.0.0.1", BASE + node - 1), timeout=1) as s:
            s.settimeout(2)
            s.sendall(b"*2\r\n$3\r\nGET\r\n$5\r\nprobe\r\n")
            return s.recv(64).startswith((b"$", b"*"))
    except OSError:
        return False


def load(work, log_gib, rounds=None):
    """Loads the cluster until node 1's log holds `log_gib` GiB (or for `rounds` rounds of
    200 000 SETs) and leaves node 1 a follower. Returns the rounds loaded, the log's size and
    node 1's status."""
    leader = skiff_local.wait_for_leader(BASE, (1, 2, 3), 15)
    if leader is None:
        sys.exit("no leader")
    wal = os.path.join(work, "node1", "wal")
    target = int(log_gib * (1 << 30))
    loaded = 0
    # 100 000 keys of 1 KiB: a store of about 100 MiB, however long the log grows.
    while (du(wal) < target) if rounds is None else (loaded < rounds):
        loaded += 1
        bench = subprocess.run(["redis-benchmark", "-p", str(BASE + leader - 1), "-t", "set",
                                "-d", "1024", "-r", "100000", "-n", "200000", "-c", "50",
                                "-P", "16", "-q"], capture_output=True, text=True)
        if bench.returncode != 0:
            sys.exit(f"redis-benchmark failed: {bench.stdout[-500:]} {bench.stderr[-500:]}")
    s1 = status(1)
    if leader == 1:
        # Restart a follower's worth of work: hand leadership away first.
        skiff_local.http(BASE + 200, "/admin/transfer-leader?to=2", "POST")
        time.sleep(1)
    return loaded, du(wal), s1


def run(log_gib, serve_args, label, rounds=None):
    """Loads the cluster (see `load`), restarts node 1 and times it. Returns the rounds it
    loaded."""
    work = tempfile.mkdtemp()
    local = skiff_local.start(BASE, work, serve_args)
    try:
        loaded, size, s1 = load(work, log_gib, rounds)
        skiff_local.control(BASE, "kill", 1)
        time.sleep(0.5)
        started = time.monotonic()
        skiff_local.control(BASE, "restart", 1)
        while not get_once(1):
            if time.monotonic() - started > 120:
                sys.exit("node 1 did not serve within 120 s")
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        pid = node_pid(local, 1)
        spent = ""
        if pid is not None:
            user, system, faults = cpu_and_faults(pid)
            spent = f" (CPU until then: user {user:.2f} s, system {system:.2f} s; {faults} page faults)"
        print(f"{label}: node 1's data {size / (1 << 30):.2f} GiB "
              f"(log {s1['first_index']}..{s1['last_index']}, snapshot at {s1['snapshot_index']}), "
              f"restart to first linearizable read served: {elapsed:.2f} s{spent}")
        return loaded
    finally:
        skiff_local.stop(local)
        shutil.rmtree(work, ignore_errors=True)


def node1_args(work):
    """The command line `skiff local` gives node 1, after the binary."""
    peers = ",".join(f"{n}=127.0.0.1:{BASE + 100 + n - 1}" for n in (1, 2, 3))
    return ["serve", "--data-dir", os.path.join(work, "node1"),
            "--listen-client", f"127.0.0.1:{BASE}", "--listen-peer", f"127.0.0.1:{BASE + 100}",
            "--listen-http", f"127.0.0.1:{BASE + 200}",
            "--local-control", f"http://127.0.0.1:{BASE + 199}", "--allow-fault-injection",
            "--id", "1", "--initial-cluster", peers, "--snapshot-every", "0"]


def restart_with(binary, work):
    """Starts node 1 with `binary`, waits for its first linearizable read and kills it (-9).
    Returns the wall time and node 1's CPU time (user + system) until that read, in seconds,
    and the page faults it took."""
    started = time.monotonic()
    node = subprocess.Popen([binary, *node1_args(work)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while not get_once(1):
            if time.monotonic() - started > 120 or node.poll() is not None:
                sys.exit(f"node 1 ({binary}) did not serve")
            time.sleep(0.005)
        wall = time.monotonic() - started
        user, system, faults = cpu_and_faults(node.pid)
    finally:
        node.send_signal(signal.SIGKILL)
        node.wait()
    return wall, user + system, faults


def compare(log_gib, builds, rounds):
    """Fills the log once, then restarts node 1 with each build in turn, `rounds` times."""
    work = tempfile.mkdtemp()
    local = skiff_local.start(BASE, work, ["--snapshot-every", "0"])
    results = {label: [] for label, _ in builds}
    try:
        _, size, s1 = load(work, log_gib)
        print(f"node 1's log: {size / (1 << 30):.2f} GiB "
              f"(entries {s1['first_index']}..{s1['last_index']}, no snapshot)")
        skiff_local.control(BASE, "kill", 1)
        for round_number in range(rounds):
            # Each round in the other order from the last: a restart reads the log through
            # the page cache the one before it filled, so the second of a round has it easier.
            order = builds if round_number % 2 == 0 else builds[::-1]
            for label, binary in order:
                time.sleep(1)
                wall, cpu, faults = restart_with(binary, work)
                results[label].append((wall, cpu, faults))
                print(f"round {round_number + 1} {label}: first linearizable read after "
                      f"{wall:.2f} s, CPU {cpu:.2f} s, {faults} page faults", flush=True)
    finally:
        skiff_local.stop(local)
        shutil.rmtree(work, ignore_errors=True)
    for label, runs in results.items():
        walls, cpus, faults = (sorted(column) for column in zip(*runs))
        middle = len(runs) // 2
        print(f"{label}: median {walls[middle]:.2f} s to the first read, "
              f"median CPU {cpus[middle]:.2f} s, median {faults[middle]} page faults "
              f"over {len(runs)} restarts")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--log-gib", type=float, default=1.0)
    parser.add_argument("--compare", nargs="+", metavar="LABEL=BINARY",
                        help="restart node 1 with each of these builds in turn instead")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.compare:
        builds = [spec.split("=", 1) for spec in args.compare]
        if any(len(build) != 2 or not os.access(build[1], os.X_OK) for build in builds):
            sys.exit("--compare takes LABEL=BINARY, each an executable skiff")
        compare(args.log_gib, builds, args.rounds)
        return
    rounds = run(args.log_gib, ["--snapshot-every", "0"], "whole log, no snapshot")
    # The same writes again, with snapshots on: the log is compacted behind each snapshot.
    run(args.log_gib, [], "snapshot plus tail (default --snapshot-every 100000)", rounds)


if __name__ == "__main__":
    main()
