//! Backup and restore, end to end: `skiff admin backup` taken from a follower while a client
//! writes, the old cluster gone, `skiff restore` into three new data directories with new
//! addresses, and the new cluster serving every write acknowledged before the backup began.
//! Then what is refused: damaged backups, a used directory, a restore onto the old cluster's
//! own membership, a backup without the admin token, key requests over HTTP on a node whose
//! clients need a password but that has no admin token, and a second backup while one runs.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, free_port, serial, skiff_bin, TestCluster};
use redis::Commands;

/// `skiff restore` with these arguments.
fn restore(from: &Path, dir: &Path, id: u64, initial_cluster: &str) -> Output {
    Command::new(skiff_bin())
        .arg("restore")
        .arg("--from")
        .arg(from)
        .arg("--data-dir")
        .arg(dir)
        .args(["--id", &id.to_string()])
        .args(["--initial-cluster", initial_cluster])
        .output()
        .expect("skiff restore runs")
}

/// A new cluster's nodes, started from restored data directories with nothing but their
/// directory and listen addresses; killed when dropped.
struct Restored {
    clients: Vec<SocketAddr>,
    https: Vec<SocketAddr>,
    children: Vec<Child>,
}

impl Restored {
    /// Restores `backup` for nodes 1..=3 under `root` on new ports, and starts them.
    fn start(backup: &Path, root: &Path) -> Restored {
        let port = || -> SocketAddr {
            format!("127.0.0.1:{}", free_port())
                .parse()
                .expect("an address")
        };
        let peers: Vec<SocketAddr> = (0..3).map(|_| port()).collect();
        let initial_cluster = peers
            .iter()
            .enumerate()
            .map(|(i, peer)| format!("{}={peer}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut restored = Restored {
            clients: (0..3).map(|_| port()).collect(),
            https: (0..3).map(|_| port()).collect(),
            children: Vec::new(),
        };
        for id in 1..=3u64 {
            let dir = root.join(format!("new{id}"));
            let output = restore(backup, &dir, id, &initial_cluster);
            assert!(output.status.success(), "skiff restore: {output:?}");
            let said = String::from_utf8_lossy(&output.stdout);
            assert!(said.contains(&format!("restored node {id}")), "{said}");
            let log = std::fs::File::create(root.join(format!("new{id}.log"))).expect("log");
            let i = id as usize - 1;
            let child = Command::new(skiff_bin())
                .arg("serve")
                .arg("--data-dir")
                .arg(&dir)
                .args(["--listen-client", &restored.clients[i].to_string()])
                .args(["--listen-http", &restored.https[i].to_string()])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("skiff serve starts");
            restored.children.push(child);
        }
        restored
    }

    /// The index (0-based) of the node all three agree leads.
    fn leader(&self) -> usize {
        eventually(
            Duration::from_secs(20),
            "a leader in the new cluster",
            || {
                let leaders: Vec<Option<u64>> = self
                    .https
                    .iter()
                    .map(|http| {
                        let body = common::http_get(*http, "/status").ok()?;
                        let status: serde_json::Value = serde_json::from_str(&body).ok()?;
                        status["leader"].as_u64()
                    })
                    .collect();
                let first = leaders[0]?;
                leaders
                    .iter()
                    .all(|l| *l == Some(first))
                    .then_some(first as usize - 1)
            },
        )
    }

    fn redis(&self, i: usize) -> redis::Connection {
        let client = redis::Client::open(format!("redis://{}/", self.clients[i])).expect("client");
        common::connect_redis(&client)
    }
}

impl Drop for Restored {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A client writing `key-i = value-i` for i = 0, 1, 2… one at a time, counting what was
/// attempted and what was acknowledged.
struct Writer {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<u64>>,
    attempted: Arc<Mutex<u64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(mut connection: redis::Connection) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(0));
        let attempted = Arc::new(Mutex::new(0));
        let (s, ack, att) = (stop.clone(), acknowledged.clone(), attempted.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: at most this many writes, whatever happens.
            for i in 0..200_000u64 {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                *att.lock().unwrap() = i + 1;
                let written: redis::RedisResult<()> =
                    connection.set(format!("key-{i}"), format!("value-{i}"));
                if written.is_err() {
                    // Unknown outcome: stop here, so acknowledged writes stay a prefix.
                    return;
                }
                *ack.lock().unwrap() = i + 1;
            }
        });
        Writer {
            stop,
            acknowledged,
            attempted,
            thread: Some(thread),
        }
    }

    fn acknowledged(&self) -> u64 {
        *self.acknowledged.lock().unwrap()
    }

    /// Stops the writer; returns how many writes were attempted.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the writer");
        }
        let attempted = *self.attempted.lock().unwrap();
        attempted
    }
}

#[test]
fn a_backup_taken_under_load_restores_every_acknowledged_write_into_a_new_cluster() {
    let _serial = serial();
    // Frequent snapshots, so the backup meets snapshots of the node's own along the way (by
    // entries alone: the expansion factor would space them by the store's growing size).
    let mut cluster = TestCluster::start_with(
        3,
        &[
            "--snapshot-every-entries",
            "300",
            "--snapshot-expansion-factor",
            "0",
        ],
    );
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = *cluster.nodes.keys().find(|&&id| id != leader).unwrap();
    let writer = Writer::start(cluster.redis(leader));
    eventually(Duration::from_secs(10), "writes under way", || {
        (writer.acknowledged() >= 500).then_some(())
    });

    // Every write acknowledged before the backup began must be in it.
    let acknowledged_before = writer.acknowledged();
    let backup = cluster.root.path().join("cluster.backup");
    let out = backup.display().to_string();
    let output = cluster.admin(follower, &["backup", "--out", &out]);
    let after_backup = writer.acknowledged();
    let attempted = writer.stop();
    if !output.status.success() {
        cluster.dump_logs();
    }
    assert!(output.status.success(), "skiff admin backup: {output:?}");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("index") && said.contains("term"), "{said}");
    assert!(!PathBuf::from(format!("{out}.tmp")).exists());
    assert!(
        after_backup > acknowledged_before,
        "the load ran while the backup was taken"
    );
    let root = tempfile::tempdir().expect("temp dir");
    let kept = root.path().join("kept.backup");
    std::fs::copy(&backup, &kept).expect("copy the backup");

    // The whole old cluster is lost.
    for id in [1, 2, 3] {
        cluster.kill(id);
    }
    drop(cluster);

    let restored = Restored::start(&kept, root.path());
    let leader = restored.leader();
    let mut connection = restored.redis((leader + 1) % 3);
    // The backup holds a prefix key-0..key-(k-1) of what was written: writes are sequential.
    let keys: u64 = redis::cmd("DBSIZE").query(&mut connection).expect("DBSIZE");
    assert!(
        keys >= acknowledged_before,
        "{keys} keys restored, but {acknowledged_before} writes were acknowledged before the backup began"
    );
    eprintln!("acknowledged before the backup: {acknowledged_before}, after it: {after_backup}, attempted: {attempted}, restored: {keys}");
    assert!(keys <= attempted, "{keys} keys, {attempted} ever written");
    for i in 0..keys {
        let value: Option<String> = connection.get(format!("key-{i}")).expect("GET");
        assert_eq!(value, Some(format!("value-{i}")), "key-{i}");
    }
    // Nothing past the prefix: with DBSIZE keys all accounted for, there is no other key.
    let next: Option<String> = connection.get(format!("key-{keys}")).expect("GET");
    assert_eq!(next, None);

    // The new cluster takes writes, and every node serves them.
    let mut on_leader = restored.redis(leader);
    let _: () = on_leader.set("after-restore", "yes").expect("a write");
    for i in 0..3 {
        let mut connection = restored.redis(i);
        let value: Option<String> = connection.get("after-restore").expect("GET");
        assert_eq!(value.as_deref(), Some("yes"), "node {}", i + 1);
    }
}

/// The one-line error `skiff restore` printed, checked to be one line and to say `says`.
fn refused(output: &Output, says: &str) {
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(says), "{stderr}");
}

#[test]
fn damaged_backups_a_used_directory_and_a_backup_without_the_token_are_refused() {
    let _serial = serial();
    let cluster = TestCluster::start_secure(1, &[]);
    let mut connection = cluster.redis(1);
    for i in 0..50 {
        let _: () = connection.set(format!("k{i}"), "v").expect("write");
    }
    let secure = cluster.secure.as_ref().expect("secure");

    // The backup exposes every key: without the admin token it is refused.
    let (code, body) = common::https_request(
        cluster.nodes[&1].http,
        &secure.client_config,
        "GET",
        "/admin/backup",
        None,
    )
    .expect("an answer");
    assert_eq!(code, 401, "{body}");
    let (code, _) = common::https_request(
        cluster.nodes[&1].http,
        &secure.client_config,
        "GET",
        "/admin/backup",
        Some("wrong-token"),
    )
    .expect("an answer");
    assert_eq!(code, 401);

    let backup = cluster.root.path().join("good.backup");
    let out = backup.display().to_string();
    assert!(cluster.admin_ok(1, &["backup", "--out", &out]));
    let good = std::fs::read(&backup).expect("the backup");
    let new_cluster = "1=127.0.0.1:17101";
    let dir = |name: &str| cluster.root.path().join(name);

    let mut cases = vec![
        ("truncated", good[..good.len() - 100].to_vec(), "cut short"),
        (
            "magic",
            {
                let mut bad = good.clone();
                bad[..8].copy_from_slice(b"SKIFFSNP");
                bad
            },
            "not a Skiff backup",
        ),
        (
            "newer",
            {
                let mut bad = good.clone();
                bad[8] = 9;
                bad
            },
            "unsupported format version 9",
        ),
    ];
    // A flipped bit in the data: the store's bytes, past the header.
    let mut flipped = good.clone();
    let at = good.len() - 20;
    flipped[at] ^= 0x04;
    cases.push(("flipped", flipped, "checksum mismatch"));
    for (name, bytes, says) in cases {
        let from = dir(&format!("{name}.backup"));
        std::fs::write(&from, bytes).expect("write");
        let target = dir(&format!("restore-{name}"));
        refused(&restore(&from, &target, 1, new_cluster), says);
        assert!(!target.exists(), "{name}: nothing is written");
    }

    // A directory that holds anything is never restored into.
    let used = dir("used");
    std::fs::create_dir(&used).expect("dir");
    std::fs::write(used.join("keep-me"), b"data").expect("file");
    refused(&restore(&backup, &used, 1, new_cluster), "is not empty");
    assert_eq!(std::fs::read(used.join("keep-me")).unwrap(), b"data");

    // Onto the membership it was taken from, the restored cluster would have the old one's
    // id, and a surviving old node would be let in.
    let same = format!("1={}", cluster.nodes[&1].peer_proxy);
    let target = dir("restore-same");
    refused(
        &restore(&backup, &target, 1, &same),
        "gives the id of the cluster the backup was taken from",
    );
    assert!(!target.exists());

    // The good file restores.
    let output = restore(&backup, &dir("fresh"), 1, new_cluster);
    assert!(output.status.success(), "{output:?}");
}

/// A connection that has sent a raw HTTP/1.1 request with no body.
fn send_request(addr: SocketAddr, method: &str, path: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    stream
}

/// A raw HTTP/1.1 request with no body; returns the status code and the body.
fn http_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    use std::io::Read;
    let mut stream = send_request(addr, method, path);
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (code, body.unwrap_or_default())
}

/// `skiff admin backup` from node 1 fails, says `says`, and leaves no file.
fn backup_refused(cluster: &TestCluster, says: &str) {
    let out = cluster.root.path().join("refused.backup");
    let output = cluster.admin(1, &["backup", "--out", &out.display().to_string()]);
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(says), "{stderr}");
    assert!(!out.exists() && !cluster.root.path().join("refused.backup.tmp").exists());
}

#[test]
fn with_a_client_password_and_no_admin_token_http_never_reads_or_writes_keys() {
    let _serial = serial();
    let secrets = tempfile::tempdir().expect("temp dir");
    let password = secrets.path().join("requirepass");
    std::fs::write(&password, "client-password-1\n").expect("password file");
    let password = password.display().to_string();
    // Loopback only, so protected mode lets the node run without the admin token.
    let cluster = TestCluster::start_with(1, &["--requirepass-file", &password]);
    let http = cluster.nodes[&1].http;

    // Both would go around the client password.
    let (code, body) = http_request(http, "GET", "/admin/backup");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("configure --admin-token-file"), "{body}");
    assert_eq!(body.trim().lines().count(), 1, "{body}");
    let (code, body) = http_request(http, "POST", "/kv/set?key=a&value=1");
    assert_eq!(code, 403, "{body}");
    // The CLI says why, and writes nothing.
    backup_refused(&cluster, "--admin-token-file");
    // What holds no key is still served; and nothing was written.
    let (code, _) = http_request(http, "GET", "/status");
    assert_eq!(code, 200);
    let client = redis::Client::open(format!(
        "redis://:client-password-1@{}/",
        cluster.nodes[&1].client
    ))
    .expect("client");
    let mut connection = client.get_connection().expect("a connection");
    let value: Option<String> = connection.get("a").expect("GET");
    assert_eq!(value, None);
}

#[test]
fn a_second_backup_while_one_is_sent_is_refused_and_the_first_completes() {
    use std::io::Read;
    let _serial = serial();
    let cluster = TestCluster::start(1);
    // A store far larger than the loopback socket buffers, so a client that pauses holds up
    // the node's sending.
    let mut connection = cluster.redis(1);
    let value = vec![b'v'; 200 << 10];
    for i in 0..200 {
        let _: () = connection.set(format!("big-{i}"), &value).expect("write");
    }

    let http = cluster.nodes[&1].http;
    let mut first = send_request(http, "GET", "/admin/backup");
    // Read the head, and then nothing for a while.
    let mut received = Vec::new();
    let mut piece = [0; 4096];
    let head_end = loop {
        let read = first.read(&mut piece).expect("the head");
        assert!(read > 0, "the connection closed before the head");
        received.extend_from_slice(&piece[..read]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let total: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|len| len.trim().parse().ok())
        .expect("a Content-Length");
    assert!(total > 38 << 20, "{total}");

    backup_refused(&cluster, "already being taken");

    // The first goes on, whole and checked.
    first
        .read_to_end(&mut received)
        .expect("the rest of the body");
    let body = &received[head_end..];
    assert_eq!(body.len(), total);
    let (header, data) = skiff_node::backup::decode(body).expect("a whole backup");
    assert!(data.len() > 38 << 20);
    assert!(header.meta.index.0 >= 200);
    // And the node takes the next backup.
    let next = cluster.root.path().join("next.backup");
    assert!(cluster.admin_ok(1, &["backup", "--out", &next.display().to_string()]));
}
