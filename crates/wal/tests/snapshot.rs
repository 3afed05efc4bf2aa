//! Snapshots: durable across restarts and crashes, checked at start-up, staged chunk by chunk.

use std::path::{Path, PathBuf};

use skiff_raft::{LogIndex, LogStorage, NodeId, SnapshotMeta, StorageError, Term};
use skiff_wal::snapshot::{file_name, staging_file_name, temp_file_name};
use skiff_wal::{Corruption, Disk, FsDisk, MemDisk, Wal, WalError, WalOptions};

mod common;
use common::*;

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(index),
        term: Term(term),
        voters: vec![NodeId(1), NodeId(2), NodeId(3)],
        voters_outgoing: vec![NodeId(4)],
        learners: vec![NodeId(5)],
    }
}

fn snapshot_data<S: LogStorage>(log: &S) -> Vec<u8> {
    log.snapshot_chunk(0, u64::MAX).expect("read the snapshot")
}

fn snapshot_files<D: Disk>(disk: &D, dir: &Path) -> Vec<String> {
    disk.list(dir)
        .expect("list")
        .into_iter()
        .filter(|name| name.starts_with("snap-"))
        .collect()
}

/// A saved snapshot and the compaction after it come back after a crash (simulated disk) and
/// after a restart (real file system), and a newer snapshot replaces the older file.
#[test]
fn snapshot_survives_restart() {
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    wal.append(&entries(1..=10, 2)).unwrap();
    wal.save_snapshot(meta(7, 2), b"state at 7".to_vec())
        .unwrap();
    wal.compact(LogIndex(5)).unwrap();

    let (mut wal, report) = crash_and_reopen(wal);
    let path = dir().join(file_name(LogIndex(7)));
    assert_eq!(report.snapshot_file, Some(path.clone()));
    assert!(!report.finished_snapshot_install);
    assert_eq!(wal.snapshot_meta(), meta(7, 2));
    assert_eq!(wal.snapshot_len(), 10);
    assert_eq!(snapshot_data(&wal), b"state at 7");
    assert_eq!(wal.snapshot_chunk(6, 2), Ok(b"at".to_vec()));
    assert_eq!(wal.first_index(), LogIndex(6), "compaction survives");
    assert_eq!(wal.term(LogIndex(5)), Ok(Term(2)));
    assert_eq!(all_entries(&wal), entries(6..=10, 2));
    assert!(
        wal.compact(LogIndex(8)).is_err(),
        "no compaction past the snapshot after a restart either"
    );

    wal.save_snapshot(meta(9, 2), b"state at 9".to_vec())
        .unwrap();
    assert_eq!(
        snapshot_files(wal.disk(), &dir()),
        vec![file_name(LogIndex(9))],
        "the older snapshot file is removed"
    );
    let (wal, _) = crash_and_reopen(wal);
    assert_eq!(wal.snapshot_meta(), meta(9, 2));
    assert_eq!(snapshot_data(&wal), b"state at 9");

    // The same on the real file system.
    let root = tempfile::tempdir().unwrap();
    let fs_dir = root.path().join("wal");
    let (mut wal, _) = Wal::open(FsDisk::new(), &fs_dir, WalOptions::new(CLUSTER)).unwrap();
    wal.append(&entries(1..=10, 2)).unwrap();
    wal.save_snapshot(meta(7, 2), b"state at 7".to_vec())
        .unwrap();
    wal.compact(LogIndex(7)).unwrap();
    drop(wal);
    let (wal, report) = Wal::open(FsDisk::new(), &fs_dir, WalOptions::new(CLUSTER)).unwrap();
    assert_eq!(
        report.snapshot_file,
        Some(fs_dir.join(file_name(LogIndex(7))))
    );
    assert_eq!(wal.snapshot_meta(), meta(7, 2));
    assert_eq!(snapshot_data(&wal), b"state at 7");
    assert_eq!(wal.first_index(), LogIndex(8));
    assert_eq!(all_entries(&wal), entries(8..=10, 2));
}

/// A large snapshot is read back in chunks, each within `max_bytes`.
#[test]
fn snapshot_is_read_back_in_chunks() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(CLUSTER));
    wal.append(&entries(1..=3, 1)).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    wal.save_snapshot(meta(3, 1), data.clone()).unwrap();
    let (wal, _) = crash_and_reopen(wal);
    let mut read = Vec::new();
    loop {
        let chunk = wal.snapshot_chunk(read.len() as u64, 65_536).unwrap();
        if chunk.is_empty() {
            break;
        }
        assert!(chunk.len() <= 65_536);
        read.extend_from_slice(&chunk);
    }
    assert_eq!(read, data);
}

/// A crash while a snapshot was being written leaves a temp file, torn or whole: it is
/// ignored and removed, and the previous snapshot stays the current one.
#[test]
fn torn_snapshot_temp_file_is_ignored_on_recovery() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(CLUSTER));
    wal.append(&entries(1..=9, 1)).unwrap();
    wal.save_snapshot(meta(5, 1), b"five".to_vec()).unwrap();

    // A second save whose temp file was synced, but which crashed before the rename.
    let mut disk = wal.into_disk();
    let temp = dir().join(temp_file_name(LogIndex(8)));
    disk.create(&temp).unwrap();
    disk.append(&temp, b"SKIFFSNP\x01\x00 a header cut sh")
        .unwrap();
    disk.sync(&temp).unwrap();
    disk.sync_dir(&dir()).unwrap();
    disk.append(&temp, b"ort by the crash").unwrap();
    disk.crash_tearing(|_, unsynced| unsynced / 2);
    assert!(disk.len(&temp).unwrap() > 0, "the torn temp file is there");

    let (wal, report) = open(disk, WalOptions::new(CLUSTER));
    assert_eq!(report.snapshot_files_removed, vec![temp.clone()]);
    assert_eq!(wal.snapshot_meta(), meta(5, 1));
    assert_eq!(snapshot_data(&wal), b"five");
    assert_eq!(all_entries(&wal), entries(1..=9, 1));
    assert_eq!(
        snapshot_files(wal.disk(), &dir()),
        vec![file_name(LogIndex(5))],
        "the temp file is removed"
    );
    let (_, report) = crash_and_reopen(wal);
    assert!(
        report.snapshot_files_removed.is_empty(),
        "the removal was durable"
    );
}

/// A save whose syncs fail leaves the old snapshot current, before and after a crash.
#[test]
fn failed_save_keeps_the_previous_snapshot() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(CLUSTER));
    wal.append(&entries(1..=9, 1)).unwrap();
    wal.save_snapshot(meta(5, 1), b"five".to_vec()).unwrap();
    wal.disk_mut().set_syncs_fail(true);
    assert!(wal.save_snapshot(meta(8, 1), b"eight".to_vec()).is_err());
    assert_eq!(wal.snapshot_meta(), meta(5, 1));
    assert_eq!(snapshot_data(&wal), b"five");
    wal.disk_mut().set_syncs_fail(false);
    let (wal, _) = crash_and_reopen(wal);
    assert_eq!(wal.snapshot_meta(), meta(5, 1));
    assert_eq!(snapshot_data(&wal), b"five");
}

/// A complete snapshot file that does not check out is damage a crash cannot cause: the log
/// refuses to start, names the file, and leaves it where it is.
#[test]
fn corrupt_snapshot_refuses_to_start_naming_the_file() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(CLUSTER));
    wal.append(&entries(1..=9, 1)).unwrap();
    wal.save_snapshot(meta(5, 1), b"the state at five".to_vec())
        .unwrap();
    let path = wal.snapshot_path().unwrap().to_path_buf();
    assert_eq!(path, dir().join(file_name(LogIndex(5))));
    let len = wal.disk().len(&path).unwrap();
    let clean = wal.into_disk();

    // A bit flip in the data.
    let mut disk = clean.clone();
    disk.flip_bit(&path, len - 3).unwrap();
    let error = try_open(disk.clone(), WalOptions::new(CLUSTER)).unwrap_err();
    match &error {
        WalError::Corrupt {
            file,
            problem: Corruption::SnapshotChecksum { .. },
            ..
        } => assert_eq!(file, &path),
        other => panic!("expected a snapshot checksum error, got {other:?}"),
    }
    assert!(
        error.to_string().contains(&file_name(LogIndex(5))),
        "the message names the file: {error}"
    );
    assert!(disk.len(&path).is_ok(), "the file is left alone");

    // A bit flip in the header.
    let mut disk = clean.clone();
    disk.flip_bit(&path, 20).unwrap();
    assert!(matches!(
        try_open(disk, WalOptions::new(CLUSTER)),
        Err(WalError::Corrupt { file, problem: Corruption::BadSnapshotHeader { .. }, .. }) if file == path
    ));

    // A file cut short.
    let mut disk = clean.clone();
    disk.truncate(&path, len - 1).unwrap();
    assert!(matches!(
        try_open(disk, WalOptions::new(CLUSTER)),
        Err(WalError::Corrupt { file, problem: Corruption::SnapshotLength { .. }, .. }) if file == path
    ));

    // A snapshot of another cluster.
    assert!(matches!(
        try_open(clean.clone(), WalOptions::new(CLUSTER + 1)),
        Err(WalError::WrongCluster { file, .. }) if file == path
    ));

    // A damaged *older* snapshot next to a valid newer one is superseded and removed.
    let mut disk = clean;
    let older = dir().join(file_name(LogIndex(2)));
    disk.create(&older).unwrap();
    disk.append(&older, b"garbage").unwrap();
    disk.sync(&older).unwrap();
    disk.sync_dir(&dir()).unwrap();
    let (wal, report) = open(disk, WalOptions::new(CLUSTER));
    assert_eq!(report.snapshot_files_removed, vec![older]);
    assert_eq!(snapshot_data(&wal), b"the state at five");
}

/// Staged chunks are synced when `stage_snapshot_chunk` returns, so a crash keeps them; a
/// chunk whose sync failed is not kept. Staged data left at start-up is discarded.
#[test]
fn staged_chunks_survive_a_crash_only_when_synced() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(CLUSTER));
    wal.append(&entries(1..=3, 1)).unwrap();
    let staging: PathBuf = dir().join(staging_file_name(LogIndex(8)));
    wal.stage_snapshot_chunk(&meta(8, 2), 0, b"abc").unwrap();
    wal.stage_snapshot_chunk(&meta(8, 2), 3, b"def").unwrap();
    assert_eq!(wal.staging_path(), Some(staging.as_path()));
    assert_eq!(wal.disk().unsynced_bytes(&staging), 0);

    let mut crashed = wal.disk().clone();
    crashed.crash();
    assert_eq!(
        crashed.read_all(&staging).unwrap(),
        b"abcdef",
        "acknowledged chunks survive a crash"
    );

    wal.disk_mut().set_syncs_fail(true);
    assert!(wal.stage_snapshot_chunk(&meta(8, 2), 6, b"ghi").is_err());
    wal.disk_mut().set_syncs_fail(false);
    assert!(
        wal.install_staged_snapshot(&meta(8, 2)).is_err(),
        "a failed chunk drops the staged snapshot"
    );
    let mut crashed = wal.disk().clone();
    crashed.crash();
    assert_eq!(
        crashed.read_all(&staging).unwrap(),
        b"abcdef",
        "the unsynced chunk is lost"
    );

    // At start-up the staged data is discarded: the transfer starts again from offset 0.
    let (mut wal, report) = open(crashed, WalOptions::new(CLUSTER));
    assert_eq!(report.snapshot_files_removed, vec![staging.clone()]);
    assert!(snapshot_files(wal.disk(), &dir()).is_empty());
    assert!(matches!(
        wal.stage_snapshot_chunk(&meta(8, 2), 6, b"ghi"),
        Err(StorageError::Snapshot(_))
    ));
    assert!(wal.install_staged_snapshot(&meta(8, 2)).is_err());
    assert_eq!(wal.snapshot_meta(), SnapshotMeta::default());
    assert_eq!(all_entries(&wal), entries(1..=3, 1));

    wal.stage_snapshot_chunk(&meta(8, 2), 0, b"abc").unwrap();
    wal.stage_snapshot_chunk(&meta(8, 2), 3, b"defghi").unwrap();
    wal.install_staged_snapshot(&meta(8, 2)).unwrap();
    assert_eq!(snapshot_data(&wal), b"abcdefghi");
    assert_eq!(
        snapshot_files(wal.disk(), &dir()),
        vec![file_name(LogIndex(8))],
        "the staging file is gone once installed"
    );
}

/// Figure 13 with a conflicting log: the log is replaced by the snapshot, durably.
#[test]
fn install_replaces_a_conflicting_log() {
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    wal.append(&entries(1..=6, 1)).unwrap();
    wal.stage_snapshot_chunk(&meta(5, 3), 0, b"snap").unwrap();
    wal.stage_snapshot_chunk(&meta(5, 3), 4, b"shot").unwrap();
    wal.install_staged_snapshot(&meta(5, 3)).unwrap();
    assert_eq!(wal.first_index(), LogIndex(6));
    assert_eq!(wal.last_index(), LogIndex(5), "the conflicting log is gone");

    let (mut wal, report) = crash_and_reopen(wal);
    assert!(!report.finished_snapshot_install);
    assert_eq!(wal.snapshot_meta(), meta(5, 3));
    assert_eq!(snapshot_data(&wal), b"snapshot");
    assert_eq!(wal.first_index(), LogIndex(6));
    assert_eq!(wal.last_index(), LogIndex(5));
    assert_eq!(wal.term(LogIndex(5)), Ok(Term(3)));
    wal.append(&entries(6..=7, 3)).unwrap();
    let (wal, _) = crash_and_reopen(wal);
    assert_eq!(all_entries(&wal), entries(6..=7, 3));
}

/// Figure 13 with a matching entry: the entries after the snapshot are kept, durably.
#[test]
fn install_keeps_a_matching_suffix_across_restart() {
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    wal.append(&entries(1..=6, 1)).unwrap();
    wal.stage_snapshot_chunk(&meta(4, 1), 0, b"four").unwrap();
    wal.install_staged_snapshot(&meta(4, 1)).unwrap();
    let (wal, _) = crash_and_reopen(wal);
    assert_eq!(wal.snapshot_meta(), meta(4, 1));
    assert_eq!(wal.first_index(), LogIndex(5));
    assert_eq!(all_entries(&wal), entries(5..=6, 1));
}

/// A crash after a received snapshot was made durable but before the log was compacted to
/// it: start-up finishes the install.
#[test]
fn interrupted_install_is_finished_on_recovery() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(CLUSTER));
    wal.append(&entries(1..=6, 1)).unwrap();
    // The snapshot file, as an install writes it before compacting.
    wal.save_snapshot(meta(5, 3), b"five".to_vec()).unwrap();
    let (wal, report) = crash_and_reopen(wal);
    assert!(report.finished_snapshot_install);
    assert_eq!(wal.first_index(), LogIndex(6));
    assert_eq!(wal.last_index(), LogIndex(5));
    assert_eq!(wal.term(LogIndex(5)), Ok(Term(3)));
    let (_, report) = crash_and_reopen(wal);
    assert!(!report.finished_snapshot_install, "done once, durably");
}

/// An older snapshot is refused whether saved or installed.
#[test]
fn older_snapshots_are_refused() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(CLUSTER));
    wal.append(&entries(1..=6, 1)).unwrap();
    wal.save_snapshot(meta(5, 1), b"five".to_vec()).unwrap();
    wal.stage_snapshot_chunk(&meta(3, 1), 0, b"three").unwrap();
    assert!(matches!(
        wal.install_staged_snapshot(&meta(3, 1)),
        Err(StorageError::Snapshot(_))
    ));
    assert!(matches!(
        wal.save_snapshot(meta(4, 1), vec![]),
        Err(StorageError::Snapshot(_))
    ));
    assert_eq!(snapshot_data(&wal), b"five");
}

/// A snapshot file of a newer format — its version bumped, its header checksum made right —
/// is refused as such, naming the file and the versions read, not as damage; the file stays.
#[test]
fn a_snapshot_file_of_a_newer_format_is_refused_by_its_version() {
    let tmp = tempfile::tempdir().unwrap();
    let fs_dir = tmp.path().join("wal");
    let (mut wal, _) = Wal::open(FsDisk::new(), &fs_dir, WalOptions::new(CLUSTER)).unwrap();
    wal.append(&entries(1..=10, 2)).unwrap();
    wal.save_snapshot(meta(7, 2), b"state at 7".to_vec())
        .unwrap();
    drop(wal);

    let path = fs_dir.join(file_name(LogIndex(7)));
    let mut bytes = std::fs::read(&path).unwrap();
    // magic 8 | version 2 | cluster 8 | index 8 | term 8 | member count 4, members, then
    // data length 8 | data crc 4 | header crc 4.
    let count = u32::from_le_bytes(bytes[34..38].try_into().unwrap()) as usize;
    let header_len = 38 + 8 * count + 16;
    assert_eq!(bytes[8..10], [1, 0], "version 1");
    bytes[8] = 2;
    let crc = crc32c::crc32c(&bytes[..header_len - 4]);
    bytes[header_len - 4..header_len].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();

    let error = Wal::open(FsDisk::new(), &fs_dir, WalOptions::new(CLUSTER)).unwrap_err();
    match &error {
        WalError::UnsupportedVersion {
            file,
            what: "snapshot file",
            found: 2,
            supported: &[1],
        } => assert_eq!(file, &path),
        other => panic!("expected the version refused, got {other:?}"),
    }
    assert!(
        error.to_string().contains("which this build does not read"),
        "{error}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file is left alone"
    );
}

/// A snapshot file written by the caller is prepared before its data exist (they are
/// serialized elsewhere) and sealed over the bytes written: its header then carries their
/// length and checksum, and it restarts with them. A write handed back unsealed is refused
/// and its file removed; the current snapshot stays.
#[test]
fn a_snapshot_written_by_the_caller_is_sealed_over_its_data() {
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    wal.append(&entries(1..=10, 2)).unwrap();
    wal.save_snapshot(meta(4, 2), b"state at 4".to_vec())
        .unwrap();

    let unsealed = wal.prepare_snapshot_write(meta(6, 2)).unwrap();
    let temp = unsealed.temp_path().to_path_buf();
    wal.disk_mut().create(&temp).unwrap();
    wal.disk_mut().append(&temp, b"state at 6").unwrap();
    assert!(matches!(
        wal.install_written_snapshot(unsealed),
        Err(WalError::SnapshotNotSealed(LogIndex(6)))
    ));
    let name = temp.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        !wal.disk().list(&dir()).unwrap().contains(&name),
        "its file is removed"
    );
    assert_eq!(wal.snapshot_meta(), meta(4, 2));

    let mut write = wal.prepare_snapshot_write(meta(7, 2)).unwrap();
    let data = b"state at 7, serialized after the prepare".to_vec();
    let header = write.seal(&data);
    let temp = write.temp_path().to_path_buf();
    wal.disk_mut().create(&temp).unwrap();
    wal.disk_mut().append(&temp, &header).unwrap();
    wal.disk_mut().append(&temp, &data).unwrap();
    wal.disk_mut().sync(&temp).unwrap();
    assert!(wal.install_written_snapshot(write).unwrap());
    let (wal, _) = crash_and_reopen(wal);
    assert_eq!(wal.snapshot_meta(), meta(7, 2));
    assert_eq!(snapshot_data(&wal), data);
}
