//! Skiff through redis-py, the Python client most Redis users start with: one scenario script
//! per command group (`tests/py/<group>.py`), run against the leader and against each follower
//! of a three-node cluster (a scenario's second client on another node), and every script also
//! against redis-server 7 to prove the script itself right.
//!
//! redis-py comes from PyPI at the version pinned in `tests/py/requirements.txt`; `.ci/run`
//! installs it under `target/pyenv`. `SKIFF_PYTHON` names another interpreter.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{eventually, free_port, serial, TestCluster};

/// The scenarios, one per command group: each runs against the cluster and against
/// redis-server.
const READY: &[&str] = &[
    "strings",
    "ttl",
    "pipelines",
    "errors",
    "transactions",
    "connection",
    "keyspace",
    "hashes",
    "scan",
    "pubsub",
];

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py")
}

/// The interpreter: `SKIFF_PYTHON`, else the virtual environment `.ci/run` makes, else
/// `python3`.
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("SKIFF_PYTHON") {
        return path.into();
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory");
    let venv = target.join("pyenv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// Fails, saying how to install it, when the interpreter has no redis-py.
fn require_redis_py(python: &Path) {
    let found = Command::new(python)
        .args(["-c", "import redis; print(redis.__version__)"])
        .output();
    match found {
        Ok(output) if output.status.success() => eprintln!(
            "redis-py {} under {}",
            String::from_utf8_lossy(&output.stdout).trim(),
            python.display()
        ),
        other => panic!(
            "redis-py is needed by this test and {} cannot import it ({other:?}). Install it \
             with `python3 -m venv target/pyenv && target/pyenv/bin/pip install -r \
             crates/server/tests/py/requirements.txt` (what .ci/run does), or point \
             SKIFF_PYTHON at an interpreter that has it.",
            python.display()
        ),
    }
}

/// Runs `<group>.py` against `addr`, its second client on `other` if given.
fn run_script(python: &Path, group: &str, addr: &str, other: Option<&str>) -> Output {
    Command::new(python)
        .arg(scripts_dir().join(format!("{group}.py")))
        .args(["--addr", addr])
        .args(other.iter().flat_map(|other| ["--other", other]))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", python.display()))
}

/// Panics with the script's output when it failed.
fn assert_passed(output: &Output, group: &str, against: &str) {
    assert!(
        output.status.success(),
        "{group}.py against {against}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_ready_scenario_passes_through_the_leader_and_each_follower() {
    let _serial = serial();
    let python = python();
    require_redis_py(&python);
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let ids: Vec<u64> = cluster.nodes.keys().copied().collect();
    for group in READY {
        for (i, &id) in ids.iter().enumerate() {
            let role = if id == leader { "leader" } else { "follower" };
            let addr = cluster.nodes[&id].client.to_string();
            let other = cluster.nodes[&ids[(i + 1) % ids.len()]].client.to_string();
            let output = run_script(&python, group, &addr, Some(&other));
            if !output.status.success() {
                cluster.dump_logs();
            }
            assert_passed(&output, group, &format!("the {role}, node {id} ({addr})"));
        }
    }
}

/// A redis-server on a loopback port, with no persistence and its own directory; killed when
/// dropped.
struct RedisServer {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis_server() -> RedisServer {
    let port = free_port();
    let dir = tempfile::tempdir().expect("a directory for redis-server");
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "redis-server is needed to prove the scenarios right ({e}); install Debian's \
                 redis-server package (what .ci/run does)"
            )
        });
    let addr = format!("127.0.0.1:{port}");
    eventually(Duration::from_secs(10), "redis-server to listen", || {
        TcpStream::connect(&addr).ok()
    });
    RedisServer {
        child,
        addr,
        _dir: dir,
    }
}

#[test]
fn every_scenario_passes_against_redis_server_itself() {
    let _serial = serial();
    let python = python();
    require_redis_py(&python);
    let server = start_redis_server();
    for group in READY {
        let output = run_script(&python, group, &server.addr, None);
        assert_passed(&output, group, &format!("redis-server ({})", server.addr));
    }
}
