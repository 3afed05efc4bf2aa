//! Upgrades: the current `skiff serve` starts on a data directory written by the previous
//! release format (commit e29b295: node snapshot v1, big-endian and without incarnations, kv
//! snapshot v1, log entries without a log-time stamp, no `wal/incarnation` file; see
//! `fixtures/upgrade-e29b295/README.md`), starts from its snapshot, serves every key it held,
//! takes writes, restarts, and has given the directory an incarnation; a directory claiming a
//! format newer than this build reads is refused with one clear line and left as it was.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, free_port, http_get, serial, skiff_bin};
use redis::Commands;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/upgrade-e29b295/data"
);
const SEGMENT: &str = "wal/seg-00000000000000000001.wal";
const SNAPSHOT: &str = "wal/snap-00000000000000000033.snap";
/// The index of the fixture's snapshot (its segment still holds every entry up to 45 as well,
/// so only `/status` tells whether the snapshot was read).
const SNAPSHOT_INDEX: u64 = 33;
/// The segment's size as the earlier build left it (its records, then preallocated zeros).
const SEGMENT_BYTES: u64 = 1024 * 1024;

/// The fixture, copied into `dir` with its segment padded back to its size.
fn copy_fixture(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("wal")).expect("data dir");
    for file in ["identity.toml", SEGMENT, SNAPSHOT] {
        std::fs::copy(Path::new(FIXTURE).join(file), data.join(file)).expect("copy");
    }
    let segment = std::fs::OpenOptions::new()
        .write(true)
        .open(data.join(SEGMENT))
        .expect("segment");
    segment.set_len(SEGMENT_BYTES).expect("pad");
    data
}

/// A node serving `data` on fresh loopback ports.
struct Node {
    child: Child,
    client: SocketAddr,
    http: SocketAddr,
}

impl Node {
    fn command(data: &Path) -> (Command, SocketAddr, SocketAddr) {
        let [client, peer, http]: [SocketAddr; 3] =
            [(); 3].map(|()| SocketAddr::from(([127, 0, 0, 1], free_port())));
        let mut command = Command::new(skiff_bin());
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data)
            .args(["--listen-client", &client.to_string()])
            .args(["--listen-peer", &peer.to_string()])
            .args(["--listen-http", &http.to_string()]);
        (command, client, http)
    }

    fn start(data: &Path) -> Node {
        let (mut command, client, http) = Node::command(data);
        let log = std::fs::File::create(data.with_file_name("node.log")).expect("log");
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("skiff starts");
        let node = Node {
            child,
            client,
            http,
        };
        eventually(Duration::from_secs(10), "the node to lead", || {
            let body = http_get(node.http, "/status").ok()?;
            let status: serde_json::Value = serde_json::from_str(&body).ok()?;
            (status["role"] == "leader").then_some(())
        });
        node
    }

    fn redis(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://{}/", self.client)).expect("client");
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect");
        connection
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        connection
    }

    /// SIGTERM, as a service manager stops it.
    fn stop(mut self) {
        common::send_signal(self.child.id(), 15);
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "a clean stop: {status}");
    }
}

/// Every key the fixture holds, with its value as the earlier build left it.
fn assert_fixture_data(connection: &mut redis::Connection) {
    for i in 0..28 {
        let value: Option<String> = connection.get(format!("before-{i}")).expect("read");
        assert_eq!(
            value,
            Some(format!("value-{i}")),
            "before-{i}, in the snapshot"
        );
    }
    for i in 0..10 {
        let value: Option<String> = connection.get(format!("after-{i}")).expect("read");
        assert_eq!(
            value,
            Some(format!("tail-{i}")),
            "after-{i}, in the log's tail"
        );
    }
    let deleted: Option<String> = connection.get("before-29").expect("read");
    assert_eq!(deleted, None, "deleted before the snapshot");
    let deleted: Option<String> = connection.get("before-28").expect("read");
    assert_eq!(deleted, None, "deleted in the log's tail");
    let counter: i64 = connection.get("counter").expect("read");
    assert_eq!(counter, 7, "5 before the snapshot, 2 after");
    let keys: i64 = redis::cmd("DBSIZE").query(connection).expect("dbsize");
    assert_eq!(keys, 39);
}

/// The node-snapshot version byte of the snapshot file at `path`: the first byte after `SKNS`,
/// which starts the data after the WAL's header (`magic: 8 | version: u16 | cluster id: u64 |
/// index: u64 | term: u64 | member count: u32 | members: u64 × count | data length: u64 |
/// data crc: u32 | header crc: u32`).
fn node_snapshot_version(path: &Path) -> u8 {
    let bytes = std::fs::read(path).expect("snapshot file");
    assert_eq!(&bytes[..8], b"SKIFFSNP");
    let count_at = 8 + 2 + 8 + 8 + 8;
    let count = u32::from_le_bytes(bytes[count_at..count_at + 4].try_into().unwrap()) as usize;
    let data_at = count_at + 4 + 8 * count + 8 + 4 + 4;
    assert_eq!(&bytes[data_at..data_at + 4], b"SKNS", "a node snapshot");
    bytes[data_at + 4]
}

#[test]
fn a_node_starts_on_data_of_the_previous_format_serves_it_and_takes_writes() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = copy_fixture(dir.path());
    assert!(!data.join("wal/incarnation").exists());
    assert_eq!(
        node_snapshot_version(&data.join(SNAPSHOT)),
        1,
        "the fixture's snapshot is of the oldest node-snapshot format this build reads"
    );

    let node = Node::start(&data);
    let body = http_get(node.http, "/status").expect("status");
    let status: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        status["snapshot_index"], SNAPSHOT_INDEX,
        "the node started from the old snapshot, not from the log alone: {body}"
    );
    let mut connection = node.redis();
    assert_fixture_data(&mut connection);
    let _: () = connection.set("upgraded", "yes").expect("a new write");
    let _: i64 = connection.incr("counter", 1).expect("a new write");
    drop(connection);
    node.stop();
    assert!(
        common::non_empty(&data.join("wal/incarnation")),
        "the first start gave the directory an incarnation"
    );

    let node = Node::start(&data);
    let mut connection = node.redis();
    let upgraded: Option<String> = connection.get("upgraded").expect("read");
    assert_eq!(upgraded.as_deref(), Some("yes"));
    let counter: i64 = connection.get("counter").expect("read");
    assert_eq!(counter, 8);
    let before: Option<String> = connection.get("before-0").expect("read");
    assert_eq!(before.as_deref(), Some("value-0"));
    drop(connection);
    node.stop();
}

/// The segment header record: `len: u32 | crc: u32 | type: u8 | magic: 8 bytes | version: u16`.
const VERSION_OFFSET: usize = 8 + 1 + 8;

#[test]
fn a_data_directory_of_a_newer_format_is_refused_with_one_clear_line_and_left_alone() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = copy_fixture(dir.path());
    // A newer build's segment: the version bumped, the checksum made right again.
    let path = data.join(SEGMENT);
    let mut bytes = std::fs::read(&path).expect("segment");
    let len = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
    assert_eq!(
        bytes[VERSION_OFFSET..VERSION_OFFSET + 2],
        [1, 0],
        "version 1"
    );
    bytes[VERSION_OFFSET] = 4;
    let crc = crc32c::crc32c(&bytes[8..8 + len]);
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).expect("write");

    let (mut command, _, _) = Node::command(&data);
    let output = command.output().expect("skiff runs");
    assert!(!output.status.success(), "refused");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("Error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("written in segment format version 4, which this build does not read")
            && errors[0].contains("seg-00000000000000000001.wal"),
        "{stderr}"
    );
    assert!(
        !errors[0].contains("corrupt"),
        "not called damage: {stderr}"
    );
    assert_eq!(std::fs::read(&path).expect("segment"), bytes, "left alone");
    assert!(!data.join("wal/incarnation").exists(), "nothing created");
}
