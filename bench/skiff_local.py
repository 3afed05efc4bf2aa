"""What the benchmark scripts share: a `skiff local` cluster on ports BASE.. (clients),
BASE+100.. (peers), BASE+200.. (HTTP) and BASE+199 (control API), and its HTTP calls."""
import json
import os
import subprocess
import time
import urllib.request


def http(port, path, method="GET"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with urllib.request.urlopen(request, timeout=2) as response:
        return response.read().decode()


def status(base, node):
    """`GET /status` of node `node`."""
    return json.loads(http(base + 200 + node - 1, "/status"))


def leader_of(base, nodes):
    """The first of `nodes` whose status says it leads, and that status; (None, None) if none
    does. A node that does not answer is passed over."""
    for node in nodes:
        try:
            s = status(base, node)
            if s["role"] == "leader":
                return node, s
        except OSError:
            pass
    return None, None


def wait_for_leader(base, nodes, timeout):
    """Polls `nodes` every 0.1 s until one leads and returns it; None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        leader, _ = leader_of(base, nodes)
        if leader is not None:
            return leader
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def control(base, action, node):
    """`skiff local`'s control API: `kill` (kill -9) or `restart` node `node`."""
    return http(base + 199, f"/control/{action}?id={node}", "POST")


def skiff_binary():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(root, "target", "release", "skiff")


def start(base, data_dir, serve_args=(), stdout=subprocess.DEVNULL):
    """Starts `skiff local` with its data in `data_dir`."""
    cmd = [skiff_binary(), "local", "--data-dir", data_dir, "--client-port", str(base),
           "--peer-port", str(base + 100), "--http-port", str(base + 200),
           "--control-port", str(base + 199)]
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
