//! What a node does with damaged files: a torn final write is cut off and the node serves;
//! damage before the tail stops it with an error naming the file and offset.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use common::{serial, TestCluster};
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
    // Half a record: a length that promises more bytes than follow.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .expect("open segment");
    file.write_all(&[0x00, 0x00, 0x10, 0x00, 0xAB, 0xCD])
        .expect("append");
    drop(file);
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
    let middle = bytes.len() / 2;
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
