"""What the benchmark scripts share: a `skiff local` cluster on ports BASE.. (clients),
BASE+100.. (peers), BASE+200.. (HTTP) and BASE+199 (control API), and its HTTP calls.

A cluster started with `tls=True` (`skiff local --tls`) speaks HTTPS on its HTTP ports: the
calls to them take the `tls` that `Tls(data_dir)` makes (the CA and the client password that
`skiff local --tls` wrote); the control API stays plain HTTP on loopback."""
import json
import os
import ssl
import subprocess
import time
import urllib.request


class Tls:
    """What a client of a `skiff local --tls` cluster needs: an SSL context trusting the CA in
    DATA/certs/ca.crt, the CA file (for redis-benchmark) and the password in DATA/requirepass."""

    def __init__(self, data_dir):
        self.ca = os.path.join(data_dir, "certs", "ca.crt")
        self.context = ssl.create_default_context(cafile=self.ca)
        with open(os.path.join(data_dir, "requirepass")) as f:
            self.password = f.readline().strip()

    def redis_benchmark_flags(self):
        return ["--tls", "--cacert", self.ca, "-a", self.password]

    @staticmethod
    def when_written(data_dir, timeout=15):
        """The cluster's `Tls` once `skiff local --tls` has written its files (it does before
        it starts the nodes)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return Tls(data_dir)
            except (OSError, ssl.SSLError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def http(port, path, method="GET", tls=None):
    scheme = "https" if tls else "http"
    request = urllib.request.Request(f"{scheme}://127.0.0.1:{port}{path}", method=method)
    context = tls.context if tls else None
    with urllib.request.urlopen(request, timeout=2, context=context) as response:
        return response.read().decode()


def status(base, node, tls=None):
    """`GET /status` of node `node`."""
    return json.loads(http(base + 200 + node - 1, "/status", tls=tls))


def leader_of(base, nodes, tls=None):
    """The first of `nodes` whose status says it leads, and that status; (None, None) if none
    does. A node that does not answer is passed over."""
    for node in nodes:
        try:
            s = status(base, node, tls)
            if s["role"] == "leader":
                return node, s
        except OSError:
            pass
    return None, None


def wait_for_leader(base, nodes, timeout, tls=None):
    """Polls `nodes` every 0.1 s until one leads and returns it; None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        leader, _ = leader_of(base, nodes, tls)
        if leader is not None:
            return leader
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def control(base, action, node):
    """`skiff local`'s control API: `kill` (kill -9) or `restart` node `node`."""
    return http(base + 199, f"/control/{action}?id={node}", "POST")


def skiff_binary():
    """The `skiff` to run: SKIFF_BIN if set, else the release build in CARGO_TARGET_DIR (as
    bench/cluster.sh builds it), else in the workspace's `target`; an error if it is missing."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(root, "target")
    binary = os.environ.get("SKIFF_BIN") or os.path.join(target, "release", "skiff")
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"no skiff binary at {binary}: build it with "
                         "`cargo build --release -p skiff`, or name one in SKIFF_BIN")
    return binary


def start(base, data_dir, serve_args=(), stdout=subprocess.DEVNULL, tls=False):
    """Starts `skiff local` with its data in `data_dir` (`--tls` with `tls`)."""
    cmd = [skiff_binary(), "local", "--data-dir", data_dir, "--client-port", str(base),
           "--peer-port", str(base + 100), "--http-port", str(base + 200),
           "--control-port", str(base + 199)]
    if tls:
        cmd.append("--tls")
    if serve_args:
        cmd += ["--serve-args", *serve_args]
    return subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL,
                            text=stdout is subprocess.PIPE)


def stop(local, timeout=15):
    """Ctrl-C, as a user would: `skiff local` stops every node."""
    local.send_signal(2)
    try:
        local.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        local.kill()
