//! Log compaction on a real process: how many entries stay behind a snapshot
//! (`--snapshot-keep-entries`) decides whether `skiff admin snapshot` frees the segments it
//! covers at once, or only once that many more entries have been applied.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{eventually, serial, TestCluster};
use redis::Commands;

/// Segments are 64 MiB: a hundred values of a million bytes fill more than one.
const WRITES: usize = 100;
const VALUE_BYTES: usize = 1_000_000;

fn segment_files(wal: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(wal)
        .expect("wal dir")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("seg-") && name.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

/// A one-node cluster with `extra` flags, filled past one segment; its segment files.
fn filled(extra: &[&str]) -> (TestCluster, Vec<String>) {
    let cluster = TestCluster::start_with(1, extra);
    let mut connection = cluster.redis(1);
    let value = vec![b'v'; VALUE_BYTES];
    for i in 0..WRITES {
        let _: () = connection.set(format!("big-{i}"), &value).expect("write");
    }
    let segments = segment_files(&cluster.wal_dir(1));
    assert!(
        segments.len() >= 2,
        "filled more than one segment: {segments:?}"
    );
    (cluster, segments)
}

fn spare_files(wal: &Path) -> usize {
    std::fs::read_dir(wal)
        .expect("wal dir")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("spare-") && name.ends_with(".wal"))
        .count()
}

/// The value of the metric line that starts with `sample` (name and labels) on node 1.
fn metric(cluster: &TestCluster, sample: &str) -> u64 {
    let text = cluster.http_get(1, "/metrics").expect("metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("{sample} is exported:\n{text}"))
}

fn snapshot_now(cluster: &TestCluster) {
    let output = cluster.admin(1, &["snapshot"]);
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn with_no_entries_kept_a_snapshot_frees_the_segments_it_covers_at_once() {
    let _serial = serial();
    let (mut cluster, before) = filled(&["--snapshot-keep-entries", "0"]);
    snapshot_now(&cluster);
    let after = eventually(
        Duration::from_secs(10),
        "the covered segments to go",
        || {
            let after = segment_files(&cluster.wal_dir(1));
            (after.len() == 1).then_some(after)
        },
    );
    assert_eq!(
        after.last(),
        before.last(),
        "only the segment being written stays"
    );
    // The freed files are kept to be written over, up to two (--wal-spare-segments).
    let freed = before.len() - 1;
    let spares = freed.min(2);
    assert_eq!(spare_files(&cluster.wal_dir(1)), spares);
    eventually(Duration::from_secs(5), "the spares counted", || {
        (metric(&cluster, "skiff_wal_segment_files{kind=\"spare\"}") == spares as u64).then_some(())
    });

    // The next segment is a spare written over, not a new file.
    let mut connection = cluster.redis(1);
    let value = vec![b'w'; VALUE_BYTES];
    let mut i = 0;
    while segment_files(&cluster.wal_dir(1)).len() < 2 {
        let _: () = connection.set(format!("more-{i}"), &value).expect("write");
        i += 1;
        assert!(i < 200, "the log rolls to a new segment");
    }
    assert_eq!(spare_files(&cluster.wal_dir(1)), spares - 1);
    eventually(
        Duration::from_secs(5),
        "the recycled segment counted",
        || (metric(&cluster, "skiff_wal_segments_recycled_total") == 1).then_some(()),
    );

    // The snapshot holds what the deleted segments did; the recycled segment, what followed.
    cluster.kill(1);
    cluster.spawn(1);
    cluster.wait_for_leader(Duration::from_secs(10));
    let value: Vec<u8> = cluster.redis(1).get("big-0").expect("read");
    assert_eq!(value.len(), VALUE_BYTES);
    let last: Vec<u8> = cluster
        .redis(1)
        .get(format!("more-{}", i - 1))
        .expect("read");
    assert_eq!(last, vec![b'w'; VALUE_BYTES]);
    assert!(
        cluster.node_log(1).contains("recycled=1"),
        "recovery read the recycled segment:\n{}",
        cluster.node_log(1)
    );
}

#[test]
fn by_default_a_snapshot_keeps_the_segments_holding_the_last_1024_entries() {
    let _serial = serial();
    // Fewer than 1,024 entries were written: every segment holds one a slow follower may need.
    let (cluster, before) = filled(&[]);
    snapshot_now(&cluster);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(segment_files(&cluster.wal_dir(1)), before);
}
