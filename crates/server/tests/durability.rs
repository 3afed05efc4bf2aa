//! What a node does with its files: a torn final write is cut off and the node serves; damage
//! before the tail, garbage anywhere and a wiped log stop it with an error naming the file and
//! offset; snapshots are taken, and a restart resumes from one.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, serial, TestCluster};
use redis::Commands;

fn segments(cluster: &TestCluster, id: u64) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cluster.wal_dir(id))
        .expect("wal dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

/// Where a segment's records end (zeros written ahead of new batches follow, or in a recycled
/// file an earlier life's bytes).
fn records_end(bytes: &[u8]) -> usize {
    skiff_wal::record::segment_records(bytes)
        .last()
        .map_or(0, |(at, decoded)| at + decoded.frame_bytes)
}

fn write_keys(cluster: &TestCluster, count: usize) {
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let mut connection = cluster.redis(leader);
    for i in 0..count {
        let _: () = connection
            .set(format!("key-{i}"), "x".repeat(100))
            .expect("write");
    }
}

#[test]
fn a_torn_final_write_is_cut_off_and_the_node_serves_again() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    write_keys(&cluster, 100);
    let victim = 2;
    cluster.kill(victim);
    let last = segments(&cluster, victim).pop().expect("a segment");
    // Half a record where the next batch would have gone (the file ends in zeros written
    // ahead): a length that promises more bytes than follow.
    let mut bytes = std::fs::read(&last).expect("read segment");
    let end = records_end(&bytes);
    let half = [0x00, 0x00, 0x10, 0x00, 0xAB, 0xCD];
    if bytes.len() < end + half.len() {
        bytes.resize(end + half.len(), 0);
    }
    // The kill may itself have torn a batch (a write cut short between pages): the torn write
    // forged here replaces whatever follows the last whole record.
    bytes[end..].fill(0);
    bytes[end..end + half.len()].copy_from_slice(&half);
    std::fs::write(&last, &bytes).expect("write segment");
    cluster.spawn(victim);
    let mut connection = cluster.redis(victim);
    let value: Option<String> = common::eventually(
        Duration::from_secs(10),
        "the recovered node to serve",
        || connection.get("key-99").ok(),
    );
    assert_eq!(value, Some("x".repeat(100)));
    let log = std::fs::read_to_string(cluster.nodes[&victim].dir.join("node.log")).unwrap();
    assert!(
        log.contains("torn"),
        "recovery reported the torn write:\n{log}"
    );
}

#[test]
fn a_flipped_byte_inside_a_segment_stops_the_node_with_a_clear_error() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    write_keys(&cluster, 200);
    let victim = 3;
    cluster.kill(victim);
    let segment = segments(&cluster, victim).remove(0);
    let mut bytes = std::fs::read(&segment).expect("read segment");
    // The middle of what was written (the file ends in zeros written ahead of new batches).
    let middle = records_end(&bytes) / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&segment, &bytes).expect("write segment");

    let output = cluster
        .spawn_command(victim)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("skiff runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the node refused to start");
    let file_name = segment.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        stderr.contains("refuses to start") && stderr.contains(&file_name),
        "the error names the damaged file:\n{stderr}"
    );
    assert!(stderr.contains("offset"), "and the offset:\n{stderr}");
    // The damaged file is left as it was, for the operator.
    assert_eq!(std::fs::read(&segment).unwrap(), bytes);
    // The other two keep serving.
    let leader = cluster.wait_for_leader_among(&[1, 2], Duration::from_secs(5));
    let _: () = cluster
        .redis(leader)
        .set("still", "serving")
        .expect("write");
}

/// Runs node `id` from its data directory until it exits, and returns its status and stderr;
/// panics if it is still running after 10 s (it started when it should have refused).
fn start_and_wait(cluster: &TestCluster, id: u64) -> (std::process::ExitStatus, String) {
    let mut child = cluster
        .spawn_command(id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("skiff runs");
    let exited = (0..200).find_map(|_| {
        std::thread::sleep(Duration::from_millis(50));
        child.try_wait().expect("wait")
    });
    let Some(status) = exited else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("node {id} started and served instead of refusing to start");
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    (status, stderr)
}

/// A node that voted must never come back without its vote (thesis §3.8, §5.2): a first
/// segment replaced by random bytes, or a log directory emptied, refuses to start rather than
/// begin again at term 0, and the other two keep serving.
#[test]
fn a_segment_of_garbage_or_a_wiped_log_refuses_to_start_instead_of_forgetting_the_vote() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    write_keys(&cluster, 50);
    let victim = 3;
    cluster.kill(victim);
    let segment = segments(&cluster, victim).remove(0);
    let original = std::fs::read(&segment).expect("read segment");
    let garbage: Vec<u8> = (0..original.len() as u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
        .collect();
    std::fs::write(&segment, &garbage).expect("write garbage");

    let (status, stderr) = start_and_wait(&cluster, victim);
    assert!(!status.success(), "a node with a garbage segment started");
    let file_name = segment.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        stderr.contains("refuses to start") && stderr.contains(&file_name),
        "the error names the damaged file:\n{stderr}"
    );
    assert!(stderr.contains("offset 0"), "and the offset:\n{stderr}");
    assert_eq!(std::fs::read(&segment).unwrap(), garbage, "left as found");

    // Every segment gone (a wiped or lost log directory): the identity says the node has run.
    for segment in segments(&cluster, victim) {
        std::fs::remove_file(segment).expect("remove segment");
    }
    let (status, stderr) = start_and_wait(&cluster, victim);
    assert!(!status.success(), "a node whose log was wiped started");
    assert!(stderr.contains("refuses to start"), "{stderr}");

    let leader = cluster.wait_for_leader_among(&[1, 2], Duration::from_secs(5));
    let mut connection = cluster.redis(leader);
    let _: () = connection.set("still", "serving").expect("write");
    let kept: String = connection.get("key-49").expect("read");
    assert_eq!(kept, "x".repeat(100));
}

/// Snapshots on real processes: the scheduled ones are written (on a thread of their own
/// while the node serves) and installed, an operator's `skiff admin snapshot` answers with the
/// index it covers while a writer goes on, and a node killed afterwards restarts from the
/// snapshot plus the log after it, with every acknowledged write.
#[test]
fn snapshots_are_taken_on_schedule_and_on_request_and_a_restart_resumes_from_one() {
    let _serial = serial();
    // The schedule by entries alone: with the expansion factor (4 by default) the second
    // snapshot would wait for a log four times the first one's bytes.
    let mut cluster = TestCluster::start_with(
        3,
        &[
            "--snapshot-every",
            "100",
            "--snapshot-expansion-factor",
            "0",
        ],
    );
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    write_keys(&cluster, 350);
    let snapshot_index = |cluster: &TestCluster| {
        cluster
            .status(follower)
            .and_then(|status| status["snapshot_index"].as_u64())
    };
    // Every 100 entries at the node's own phase: one within the last 150 of the 350 writes.
    let scheduled = eventually(Duration::from_secs(10), "a scheduled snapshot", || {
        snapshot_index(&cluster).filter(|&index| index > 200)
    });
    let files: Vec<String> = std::fs::read_dir(cluster.wal_dir(follower))
        .expect("wal dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with(".snap")),
        "a snapshot file in {files:?}"
    );

    write_keys(&cluster, 20);
    // A writer runs on while both snapshots are taken: the store is frozen and serialized
    // off the driver, and every write it had acknowledged comes back after the restart.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, mut connection) = (stop.clone(), cluster.redis(leader));
        std::thread::spawn(move || {
            let mut acknowledged = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let written: redis::RedisResult<()> =
                    connection.set(format!("during-{acknowledged}"), acknowledged);
                written.expect("the writer's SET");
                acknowledged += 1;
            }
            acknowledged
        })
    };
    let on_leader = cluster.admin(leader, &["snapshot"]);
    assert!(on_leader.status.success(), "{on_leader:?}");
    let output = cluster.admin(follower, &["snapshot"]);
    let reply = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "skiff admin snapshot: {reply}");
    let taken: u64 = reply
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|index| index.trim_start_matches('i').parse().ok())
        .unwrap_or_else(|| panic!("an index in {reply:?}"));
    assert!(
        taken > scheduled,
        "the operator's snapshot covers the new writes"
    );
    assert_eq!(snapshot_index(&cluster), Some(taken));
    stop.store(true, Ordering::Relaxed);
    let acknowledged = writer.join().expect("the writer");
    assert!(acknowledged > 0, "writes went on during the snapshots");

    cluster.kill(follower);
    cluster.spawn(follower);
    let mut connection = cluster.redis(follower);
    let value: Option<String> = eventually(Duration::from_secs(10), "the restarted node", || {
        redis::cmd("GET").arg("key-349").query(&mut connection).ok()
    });
    assert_eq!(value, Some("x".repeat(100)));
    let keys: Vec<String> = (0..acknowledged).map(|i| format!("during-{i}")).collect();
    let values: Vec<Option<usize>> = redis::cmd("MGET")
        .arg(&keys)
        .query(&mut connection)
        .expect("MGET");
    let expected: Vec<Option<usize>> = (0..acknowledged).map(Some).collect();
    assert!(
        values == expected,
        "every acknowledged write after the restart"
    );
    let restarted = cluster.status(follower).expect("status");
    assert!(restarted["snapshot_index"].as_u64() >= Some(taken));
}

/// Leftovers under snapshot names at start-up: a large `.staging` file is removed (its blocks
/// freed off the node's thread); a FIFO and a link to a large file outside the log, under
/// `.tmp` names, are removed as names only — the FIFO never opened (that would wait for a
/// writer for ever), the link never followed (its target stays whole). The node serves every
/// write it acknowledged before.
#[test]
fn leftover_snapshot_names_on_a_fifo_a_link_or_a_large_file_leave_the_node_serving() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    write_keys(&cluster, 100);
    let victim = 2;
    cluster.kill(victim);
    let wal = cluster.nodes[&victim].dir.join("wal");
    let outside = cluster.nodes[&victim].dir.join("not-the-log");
    std::fs::write(&outside, vec![7u8; 3 << 20]).expect("a large file outside the log");
    let fifo = wal.join("snap-00000000000000000005.snap.tmp");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", fifo.display());
    let link = wal.join("snap-00000000000000000006.snap.tmp");
    std::os::unix::fs::symlink(&outside, &link).expect("a link");
    let staging = wal.join("snap-00000000000000000007.staging");
    std::fs::write(&staging, vec![1u8; 2 << 20]).expect("a large staging file");

    cluster.spawn(victim);
    let mut connection = cluster.redis(victim);
    let value: Option<String> = eventually(
        Duration::from_secs(10),
        "the node to serve after removing its leftovers",
        || connection.get("key-99").ok(),
    );
    assert_eq!(value, Some("x".repeat(100)));
    assert!(
        std::fs::symlink_metadata(&staging).is_err(),
        "the staging file was left behind"
    );
    for name in [&fifo, &link] {
        assert!(
            std::fs::symlink_metadata(name).is_err(),
            "{} was left behind",
            name.display()
        );
    }
    assert_eq!(
        std::fs::metadata(&outside)
            .expect("the link's target")
            .len(),
        3 << 20
    );
    let log = std::fs::read_to_string(cluster.nodes[&victim].dir.join("node.log")).unwrap();
    assert!(
        log.contains("leftover snapshot file"),
        "recovery reported the leftovers:\n{log}"
    );
}
