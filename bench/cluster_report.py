"""The table bench/cluster.sh prints: per system and setting, ops/s, p50 and p99, the CPU the
servers used per acknowledged request, that CPU as a share of etcd's at the same load, and
Skiff's throughput over the row's; then the lines the targets are read from.

    python3 bench/cluster_report.py RESULTS EXTRA CLK_TCK ETCD_CLIENTS RSS_KIB ETCD_NOTE

RESULTS: one CSV row per measurement: system, nodes, role, clients, conns, pipeline, value
bytes, test, requests answered, ops/s, p50 ms, p99 ms, CPU ticks of every server process over
the measurement.
EXTRA: CSV rows `idle,SYSTEM,NODES,TICKS,SECONDS`, `supervisor,SYSTEM,NODES,TICKS,0` and
`leaders,SYSTEM,NODES,ANNOUNCEMENTS,0`.
"""
import csv
import sys
from collections import namedtuple

Row = namedtuple(
    "Row",
    "system nodes role clients conns pipeline size test ops rps p50 p99 ticks",
)

DEFAULT_SIZE = 256


def load(path):
    rows = []
    with open(path) as f:
        for r in csv.reader(f):
            system, role, test = r[0], r[2], r[7]
            nodes, clients, conns, pipeline, size, ops, ticks = (
                int(r[i]) for i in (1, 3, 4, 5, 6, 8, 12)
            )
            rps, p50, p99 = (float(r[i]) for i in (9, 10, 11))
            rows.append(Row(system, nodes, role, clients, conns, pipeline, size, test, ops,
                            rps, p50, p99, ticks))
    return rows


class Report:
    def __init__(self, rows, clk_tck, etcd_clients):
        self.rows = rows
        self.clk_tck = clk_tck
        self.etcd_clients = etcd_clients
        self.index = {self.key(r): r for r in rows}

    @staticmethod
    def key(r):
        return (r.system, r.nodes, r.role, r.clients, r.conns, r.pipeline, r.size, r.test)

    def cpu_us(self, r):
        """CPU of all server processes per acknowledged request, in µs."""
        return r.ticks * 1e6 / self.clk_tck / r.ops if r.ops else None

    def etcd_peer(self, r):
        """etcd's row at the same load as `r`: as many members (3 for one redis-server), the
        same value size and operation; 1 client for -c 1, ETCD_CLIENTS on one connection for
        -c 50. None for pipelined rows (etcd-bench does not pipeline) and for etcd's own."""
        if r.system == "etcd" or r.pipeline != 1:
            return None
        clients = 1 if r.clients == 1 else self.etcd_clients
        test = "PUT" if r.test == "SET" else r.test
        members = r.nodes if r.system.startswith("skiff") else 3
        return self.index.get(("etcd", members, "leader", clients, 1, 1, r.size, test))

    def skiff_leader(self, r):
        """Skiff's plaintext leader with as many replicas (3 beside redis and TLS), at the
        setting and value size of `r`; None when that is `r` itself."""
        if r.system == "etcd":
            clients = 1 if r.clients == 1 else 50
            test = "SET" if r.test == "PUT" else r.test
        else:
            clients, test = r.clients, r.test
        nodes = r.nodes if r.system in ("skiff", "etcd") else 3
        leader = self.index.get(("skiff", nodes, "leader", clients, clients, r.pipeline,
                                 r.size, test))
        return None if leader is r else leader

    def cpu_ratio(self, r):
        peer = self.etcd_peer(r)
        mine, theirs = self.cpu_us(r), peer and self.cpu_us(peer)
        return mine / theirs if peer and mine is not None and theirs else None


def system_label(r):
    if r.system in ("skiff", "etcd") and r.nodes != 3:
        return f"{r.system}-{r.nodes}"
    return r.system


def setting_label(r):
    size = "" if r.size == DEFAULT_SIZE else r.size
    if r.system == "etcd":
        text = "1 client" if r.clients == 1 else (
            f"{r.clients} clients, {r.conns} conn{'s' if r.conns > 1 else ''}")
        return text + (f", {size} B" if size else "")
    text = f"{r.role} -c {r.clients}".strip()
    if r.pipeline > 1:
        text += f" -P {r.pipeline}"
    return text + (f" -d {size}" if size else "")


def fmt(value, spec, width):
    return f"{value:{width}{spec}}" if value is not None else " " * width


def print_table(report):
    print("cpu us/op: CPU time (utime + stime from /proc/PID/stat) of every server process - all "
          "replicas or members, never redis-benchmark or etcd-bench - over the row, divided by "
          "the requests it acknowledged.")
    print(f"cpu/etcd: the row's cpu us/op over etcd's with as many members (3 beside redis), the "
          f"same value size and operation (PUT for SET): 1 client for -c 1, "
          f"{report.etcd_clients} clients on 1 connection for -c 50.")
    print("skiff/this: ops/s of Skiff's plaintext leader with as many replicas (3 beside redis "
          "and TLS), same setting and value size, over the row's.")
    print(f"{'system':<13} {'setting':<28} {'test':<4} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'cpu us/op':>9} {'cpu/etcd':>8} {'skiff/this':>10}")
    for r in report.rows:
        leader = report.skiff_leader(r)
        ratio = leader.rps / r.rps if leader and r.rps else None
        print(f"{system_label(r):<13} {setting_label(r):<28} {r.test:<4} {r.rps:>9.0f} "
              f"{r.p50:>8.3f} {r.p99:>8.3f} {fmt(report.cpu_us(r), '.1f', 9)} "
              f"{fmt(report.cpu_ratio(r), '.2f', 8)} {fmt(ratio, '.2f', 10)}")


def print_cpu_targets(report):
    lines = []
    for r in report.rows:
        if r.system != "skiff" or r.role != "leader" or r.test != "SET":
            continue
        parts = []
        for test in ("SET", "GET"):
            mine = report.index.get(Report.key(r._replace(test=test)))
            peer = mine and report.etcd_peer(mine)
            if mine and peer:
                parts.append(f"{test} {report.cpu_us(mine):.1f} / {peer.test} "
                             f"{report.cpu_us(peer):.1f} us = {report.cpu_ratio(mine):.2f}")
        peer = report.etcd_peer(r)
        if parts and peer:
            lines.append(f"  {r.nodes} nodes, {r.size} B, -c {r.clients} against "
                         f"{setting_label(peer._replace(size=DEFAULT_SIZE))}: "
                         + "; ".join(parts))
    if lines:
        print("CPU per acknowledged request over all replicas, Skiff's leader / etcd's at the "
              "same load (target: at most 0.33):")
        print("\n".join(lines))


def print_shares(report, system, nodes, name, base_name, target):
    # base_name is possessive: "plaintext's", "3 nodes'".
    """Each row of `system` with `nodes` as a share of the 3-node plaintext leader's."""
    for r in report.rows:
        if r.system != system or r.nodes != nodes or r.role != "leader":
            continue
        base = report.index.get(("skiff", 3, "leader", r.clients, r.conns, r.pipeline, r.size,
                                 r.test))
        if not base or not base.rps:
            continue
        mine, theirs = report.cpu_us(r), report.cpu_us(base)
        goal = f" (target: at least {target}%)" if target and r.clients == 50 else ""
        cpu = f"; CPU {mine:.1f} us/op, {mine / theirs:.2f}x {base_name} {theirs:.1f}" \
            if theirs else ""
        print(f"{name}, {setting_label(r)}, {r.test}: {r.rps:.0f} ops/s, "
              f"{100 * r.rps / base.rps:.0f}% of {base_name} {base.rps:.0f}{goal}{cpu}")


def print_extra(report, extra, rss_kib, etcd_note):
    names = {"skiff": "skiff", "skiff-tls": "skiff over TLS", "etcd": "etcd"}
    idle = [f"{names.get(s, s)} {n} {'members' if s == 'etcd' else 'nodes'} "
            f"{ticks * 1000 / report.clk_tck / secs:.0f} ms/s"
            for kind, s, n, ticks, secs in extra if kind == "idle" and secs]
    if idle:
        print("CPU of all replicas at rest (timers, heartbeats; no client), included in every "
              "row: " + ", ".join(idle))
    for kind, s, n, ticks, _ in extra:
        if kind == "supervisor":
            ops = sum(r.ops for r in report.rows if r.system == s and r.nodes == n)
            per_op = f" ({ticks * 1e6 / report.clk_tck / ops:.1f} us per request)" if ops else ""
            print(f"{names.get(s, s)} {n} nodes: the `skiff local` supervisor itself used "
                  f"{ticks * 1000 / report.clk_tck:.0f} ms of CPU{per_op}; not a replica, "
                  f"not counted")
    if rss_kib:
        print(f"skiff: peak RSS of the largest node (3 nodes, after the 256-byte rows) "
              f"{int(rss_kib) / 1024:.1f} MiB")
    leaders = [f"{names.get(s, s)} {n} nodes {count}" for kind, s, n, count, _ in extra
               if kind == "leaders"]
    if leaders:
        print("skiff: leader announcements during the run (1 = no leader change): "
              + ", ".join(leaders))
    if etcd_note:
        print(etcd_note)


def main():
    results, extra_path, clk_tck, etcd_clients, rss_kib, etcd_note = sys.argv[1:7]
    report = Report(load(results), int(clk_tck), int(etcd_clients))
    with open(extra_path) as f:
        extra = [(k, s, int(n), int(t), float(v)) for k, s, n, t, v in csv.reader(f)]
    print_table(report)
    print()
    print_cpu_targets(report)
    print_shares(report, "skiff-tls", 3, "skiff over TLS", "plaintext's", 70)
    print_shares(report, "skiff", 5, "skiff 5 nodes", "3 nodes'", None)
    print_extra(report, extra, rss_kib, etcd_note)


if __name__ == "__main__":
    main()
