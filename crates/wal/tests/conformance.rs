//! Every `LogStorage` runs the shared suites (the log, and snapshots): the WAL on the simulated
//! disk, on the real file system, and with segments so small that nearly every append starts a
//! new one.

use skiff_raft::storage::conformance::{run_log_storage_suite, run_snapshot_suite};
use skiff_wal::{FsDisk, MemDisk, Wal, WalOptions};

mod common;

/// Runs both shared suites against logs made by `new_log`.
fn run_both_suites<D: skiff_wal::Disk>(mut new_log: impl FnMut() -> Wal<D>) {
    run_log_storage_suite(&mut new_log);
    run_snapshot_suite(&mut new_log);
}

#[test]
fn mem_disk_wal_passes_the_conformance_suites() {
    run_both_suites(|| {
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
fn wal_with_tiny_segments_passes_the_conformance_suites() {
    let options = WalOptions {
        max_segment_bytes: 1,
        ..WalOptions::new(common::CLUSTER)
    };
    run_both_suites(|| {
        Wal::open(MemDisk::new(), common::dir(), options)
            .expect("open")
            .0
    });
}

#[test]
fn fs_disk_wal_passes_the_conformance_suites() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut logs = 0;
    run_both_suites(|| {
        logs += 1;
        let dir = root.path().join(format!("log-{logs}"));
        Wal::open(FsDisk::new(), dir, WalOptions::new(common::CLUSTER))
            .expect("open")
            .0
    });
}
