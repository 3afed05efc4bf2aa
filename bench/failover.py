#!/usr/bin/env python3
"""Failover and stability under load, on `skiff local` (3 durable nodes).

1. Under a steady write load, kill -9 the leader ROUNDS times (default 10); for each, the time
   from the kill to the first write acknowledged by the new leader. Each killed node is
   restarted and caught up before the next round.
2. A loaded run without faults (default 60 s): the number of leader changes (must be 0).

With --tls the cluster is `skiff local --tls` (TLS on every port, mutual TLS between the
nodes, the client password): the writer and redis-benchmark connect over TLS and authenticate,
and the status calls go over HTTPS, trusting the CA `skiff local` wrote.

    python3 bench/failover.py [--rounds 10] [--quiet-seconds 60] [--tls]

Needs only the Python standard library and a built `skiff` (SKIFF_BIN, else the release build
in CARGO_TARGET_DIR or `target`).
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import skiff_local  # noqa: E402

BASE = int(os.environ.get("BASE", "18001"))
# The cluster's CA and password with --tls (a skiff_local.Tls), None without.
TLS = None


def status(node):
    return skiff_local.status(BASE, node, TLS)


def leader_of(nodes):
    return skiff_local.leader_of(BASE, nodes, TLS)


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def connect(node):
    """A client connection to node `node`: plain TCP, or with --tls a TLS connection that has
    given the password."""
    s = socket.create_connection(("127.0.0.1", BASE + node - 1), timeout=1)
    if TLS is None:
        return s
    try:
        s = TLS.context.wrap_socket(s, server_hostname="127.0.0.1")
        s.sendall(resp("AUTH", TLS.password))
        reply = s.recv(64)
        if not reply.startswith(b"+OK"):
            raise OSError(f"AUTH answered {reply!r}")
        return s
    except BaseException:
        s.close()
        raise


class Writer(threading.Thread):
    """Sends SETs one at a time to every live node in turn; records, for each acknowledged
    write, when it was sent, when it was acknowledged, and the node that answered."""

    def __init__(self, nodes):
        super().__init__(daemon=True)
        self.nodes = nodes
        self.acks = []  # (sent, acknowledged, node), monotonic seconds
        self.stop = False
        self.lock = threading.Lock()

    def run(self):
        n = 0
        while not self.stop:
            for node in list(self.nodes):
                if self.stop:
                    return
                try:
                    with connect(node) as s:
                        s.settimeout(6)
                        while not self.stop:
                            n += 1
                            sent = time.monotonic()
                            s.sendall(resp("SET", f"failover-{n % 1000}", "x" * 256))
                            reply = s.recv(4096)
                            if reply.startswith(b"+OK"):
                                acknowledged = time.monotonic()
                                with self.lock:
                                    self.acks.append((sent, acknowledged, node))
                            elif not reply:
                                break
                            else:
                                time.sleep(0.005)
                except OSError:
                    time.sleep(0.01)

    def first_ack_after(self, t, exclude):
        """When the first write sent after `t`, to a node other than `exclude`, was
        acknowledged (`t`: when the old leader was gone, so that no write it committed
        counts, also one a follower forwarded to it)."""
        with self.lock:
            for sent, acknowledged, node in self.acks:
                if sent > t and node != exclude:
                    return acknowledged
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--quiet-seconds", type=int, default=60)
    parser.add_argument("--serve-args", default="",
                        help="extra `skiff serve` flags, e.g. \"--election-ticks 15\"")
    parser.add_argument("--tls", action="store_true",
                        help="run the cluster with `skiff local --tls` and talk TLS to it")
    args = parser.parse_args()
    global TLS
    work = tempfile.mkdtemp()
    local = skiff_local.start(BASE, work, args.serve_args.split(), stdout=subprocess.PIPE,
                              tls=args.tls)
    lines = []
    threading.Thread(target=lambda: [lines.append(l) for l in local.stdout], daemon=True).start()
    try:
        nodes = [1, 2, 3]
        if args.tls:
            TLS = skiff_local.Tls.when_written(work)
        if skiff_local.wait_for_leader(BASE, nodes, 15, TLS) is None:
            sys.exit("no leader")
        writer = Writer(nodes)
        writer.start()
        time.sleep(1)
        failovers = []
        for round_ in range(args.rounds):
            leader, _ = leader_of(nodes)
            killed_at = time.monotonic()
            skiff_local.control(BASE, "kill", leader)
            # The control call returns once the process is gone. A write sent before then may
            # have been forwarded by a follower to the old leader and committed by it: only
            # writes sent after it count, timed from the kill's start.
            dead_at = time.monotonic()
            deadline = killed_at + 10
            while (at := writer.first_ack_after(dead_at, leader)) is None:
                if time.monotonic() > deadline:
                    sys.exit(f"round {round_ + 1}: no write acknowledged within 10 s")
                time.sleep(0.005)
            failovers.append((at - killed_at) * 1000)
            print(f"round {round_ + 1}: killed leader node {leader}; first write acknowledged "
                  f"after {failovers[-1]:.0f} ms", file=sys.stderr)
            skiff_local.control(BASE, "restart", leader)
            # Wait until the restarted node has caught up with the new leader.
            deadline = time.time() + 20
            while True:
                try:
                    new_leader, ls = leader_of(nodes)
                    rs = status(leader)
                    if new_leader and rs["applied"] + 100 >= ls["commit"] and rs["leader"] == new_leader:
                        break
                except OSError:
                    pass
                if time.time() > deadline:
                    sys.exit(f"round {round_ + 1}: node {leader} did not catch up")
                time.sleep(0.1)
        # A loaded run without faults.
        before = {n: status(n)["term"] for n in nodes}
        leader_before, _ = leader_of(nodes)
        acks_before = len(writer.acks)
        bench = subprocess.Popen(
            ["redis-benchmark", "-p", str(BASE + leader_before - 1), "-t", "set", "-d", "256",
             "-r", "100000", "-c", "50", "-n", "100000000", "-q",
             *(TLS.redis_benchmark_flags() if TLS else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(args.quiet_seconds)
        bench.terminate()
        bench.wait()
        after = {n: status(n)["term"] for n in nodes}
        leader_after, _ = leader_of(nodes)
        writer.stop = True
        changes = sum(1 for n in nodes if after[n] != before[n])
        mode = "over TLS (skiff local --tls), " if TLS else ""
        print(f"failover {mode}over {args.rounds} leader kills: median {statistics.median(failovers):.0f} ms, "
              f"max {max(failovers):.0f} ms (all: {', '.join(f'{f:.0f}' for f in failovers)})")
        print(f"{mode}{args.quiet_seconds} s under load without faults: leader node {leader_before} -> "
              f"{leader_after}, nodes whose term changed: {changes}, "
              f"writes acknowledged by the side writer: {len(writer.acks) - acks_before}")
    finally:
        skiff_local.stop(local)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
