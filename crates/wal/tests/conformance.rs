//! Every `LogStorage` runs the shared suite: the WAL on the simulated disk, on the real file
//! system, and with segments so small that nearly every append starts a new one.

use skiff_raft::storage::conformance::{run_log_storage_suite, run_snapshot_suite};
use skiff_wal::{FsDisk, MemDisk, Wal, WalOptions};

mod common;

#[test]
fn mem_disk_wal_passes_the_conformance_suite() {
    run_log_storage_suite(|| {
        Wal::open(
            MemDisk::new(),
            common::dir(),
            WalOptions::new(common::CLUSTER),
        )
        .expect("open")
        .0
    });
}

#[test]
fn wal_with_tiny_segments_passes_the_conformance_suite() {
    let options = WalOptions {
        max_segment_bytes: 1,
        ..WalOptions::new(common::CLUSTER)
    };
    run_log_storage_suite(|| {
        Wal::open(MemDisk::new(), common::dir(), options)
            .expect("open")
            .0
    });
}

#[test]
fn fs_disk_wal_passes_the_conformance_suite() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut logs = 0;
    run_log_storage_suite(|| {
        logs += 1;
        let dir = root.path().join(format!("log-{logs}"));
        Wal::open(FsDisk::new(), dir, WalOptions::new(common::CLUSTER))
            .expect("open")
            .0
    });
}

#[test]
fn mem_disk_wal_passes_the_snapshot_suite() {
    run_snapshot_suite(|| {
        Wal::open(
            MemDisk::new(),
            common::dir(),
            WalOptions::new(common::CLUSTER),
        )
        .expect("open")
        .0
    });
}

#[test]
fn wal_with_tiny_segments_passes_the_snapshot_suite() {
    let options = WalOptions {
        max_segment_bytes: 1,
        ..WalOptions::new(common::CLUSTER)
    };
    run_snapshot_suite(|| {
        Wal::open(MemDisk::new(), common::dir(), options)
            .expect("open")
            .0
    });
}

#[test]
fn fs_disk_wal_passes_the_snapshot_suite() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut logs = 0;
    run_snapshot_suite(|| {
        logs += 1;
        let dir = root.path().join(format!("log-{logs}"));
        Wal::open(FsDisk::new(), dir, WalOptions::new(common::CLUSTER))
            .expect("open")
            .0
    });
}
