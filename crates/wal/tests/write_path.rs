//! The write path: group commit, segment rollover, compaction and suffix replacement.

use skiff_raft::{LogIndex, LogStorage, MemStorage, StorageError, Term};
use skiff_wal::{Disk, MemDisk, WalOptions};

mod common;
use common::*;

/// Group commit: a batch is one sync, however many entries it carries.
#[test]
fn one_sync_per_batch() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(CLUSTER));
    let syncs = |wal: &skiff_wal::Wal<MemDisk>| wal.disk().sync_count();

    let before = syncs(&wal);
    wal.append_batch(&entries(1..=100, 1), Some(hard_state(1, Some(1), 0)))
        .unwrap();
    assert_eq!(syncs(&wal) - before, 1, "100 entries and a hard state");

    let before = syncs(&wal);
    wal.append_batch(&[], Some(hard_state(1, Some(1), 100)))
        .unwrap();
    assert_eq!(syncs(&wal) - before, 1, "a hard state alone");

    let before = syncs(&wal);
    wal.append_batch(&[], None).unwrap();
    assert_eq!(syncs(&wal) - before, 0, "an empty batch writes nothing");

    let before = syncs(&wal);
    wal.append(&entries(101..=110, 1)).unwrap();
    assert_eq!(syncs(&wal) - before, 1, "LogStorage::append");

    // Starting a new segment costs one directory sync, not another file sync.
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    for index in 1..=50 {
        let (files, dirs) = (wal.disk().sync_count(), wal.disk().dir_sync_count());
        let segments = wal.segment_paths().len();
        wal.append_batch(
            &entries(index..=index, 1),
            Some(hard_state(1, None, index - 1)),
        )
        .unwrap();
        assert_eq!(wal.disk().sync_count() - files, 1, "batch {index}");
        let rolled = wal.segment_paths().len() - segments;
        assert_eq!(
            wal.disk().dir_sync_count() - dirs,
            rolled as u64,
            "batch {index}"
        );
    }
    assert!(wal.segment_paths().len() > 5, "the segments rolled over");
}

/// The first index in each segment's file name, checking the name's shape.
fn first_indexes(segments: &[std::path::PathBuf]) -> Vec<u64> {
    segments
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            assert_eq!(name.len(), "seg-".len() + 20 + ".wal".len(), "{name}");
            assert!(name.starts_with("seg-") && name.ends_with(".wal"), "{name}");
            name["seg-".len()..][..20].parse().unwrap()
        })
        .collect()
}

#[test]
fn segments_roll_over_and_are_deleted_after_compaction() {
    // (With spares kept, compacted segments are written over instead: `recycling.rs`.)
    let options = WalOptions {
        spare_segments: 0,
        ..small_segments()
    };
    let (mut wal, _) = open(MemDisk::new(), options);
    for index in 1..=40 {
        wal.append_batch(&entries(index..=index, 2), None).unwrap();
    }
    let segments = wal.segment_paths();
    assert!(segments.len() >= 8, "{} segments", segments.len());
    let firsts = first_indexes(&segments);
    assert_eq!(firsts[0], 1);
    assert!(
        firsts.windows(2).all(|pair| pair[0] < pair[1]),
        "{firsts:?}"
    );

    // Compact to 23: every segment whose successor starts at or before 24 goes; the one that
    // holds entry 24 stays.
    wal.compact_to(LogIndex(23), Term(2)).unwrap();
    let kept = wal.segment_paths();
    let kept_firsts = first_indexes(&kept);
    assert!(
        kept_firsts[0] <= 24 && kept_firsts[1] > 24,
        "{kept_firsts:?}"
    );
    let on_disk = wal.disk().list(&dir()).unwrap();
    assert_eq!(
        on_disk.len(),
        kept.len() + 1,
        "the segments and the incarnation file"
    );
    for (path, first) in segments.iter().zip(&firsts) {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(on_disk.contains(&name), *first >= kept_firsts[0], "{name}");
    }
    let check = |wal: &skiff_wal::Wal<MemDisk>| {
        assert_eq!(wal.first_index(), LogIndex(24));
        assert_eq!(wal.last_index(), LogIndex(40));
        assert_eq!(wal.term(LogIndex(23)), Ok(Term(2)));
        assert!(matches!(
            wal.term(LogIndex(22)),
            Err(StorageError::Compacted { .. })
        ));
        assert_eq!(all_entries(wal), entries(24..=40, 2));
    };
    check(&wal);
    let (wal, report) = crash_and_reopen(wal);
    assert_eq!(report.torn_tail, None);
    assert_eq!(report.segments_read, kept);
    check(&wal);

    // A snapshot past the end of the log drops the whole log and all but the active segment.
    let mut wal = wal;
    wal.compact_to(LogIndex(100), Term(5)).unwrap();
    assert_eq!(wal.segment_paths().len(), 1);
    let (mut wal, _) = crash_and_reopen(wal);
    assert_eq!(wal.first_index(), LogIndex(101));
    assert_eq!(wal.last_index(), LogIndex(100));
    assert_eq!(wal.term(LogIndex(100)), Ok(Term(5)));
    wal.append(&entries(101..=120, 5)).unwrap();
    let (wal, _) = crash_and_reopen(wal);
    assert_eq!(all_entries(&wal), entries(101..=120, 5));
}

#[test]
fn compaction_with_another_term_drops_the_log() {
    // Raft §7: a snapshot that disagrees with the log replaces all of it.
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    wal.append(&entries(1..=10, 1)).unwrap();
    wal.compact_to(LogIndex(5), Term(3)).unwrap();
    let (wal, _) = crash_and_reopen(wal);
    assert_eq!(wal.first_index(), LogIndex(6));
    assert_eq!(wal.last_index(), LogIndex(5));
    assert_eq!(wal.term(LogIndex(5)), Ok(Term(3)));
}

/// A replaced suffix (§5.3) is recorded by writing the new entries again; after a restart
/// the log is the new one, also when the replacement reaches back across segments.
#[test]
fn suffix_replacement_survives_restart() {
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    let mut model = MemStorage::new();
    let mut both = |wal: &mut skiff_wal::Wal<MemDisk>, batch: Vec<skiff_raft::Entry>| {
        wal.append(&batch).unwrap();
        model.append(&batch).unwrap();
        all_entries(&model)
    };

    both(&mut wal, entries(1..=10, 1));
    let expected = both(&mut wal, entries(4..=6, 2));
    let (mut wal, _) = crash_and_reopen(wal);
    assert_eq!(wal.last_index(), LogIndex(6));
    assert_eq!(all_entries(&wal), expected);

    // Grow across several segments, then replace from before the active segment's start.
    for index in 7..=30 {
        both(&mut wal, entries(index..=index, 2));
    }
    let segments = wal.segment_paths().len();
    assert!(segments > 3);
    let expected = both(&mut wal, entries(3..=3, 3));
    let (mut wal, _) = crash_and_reopen(wal);
    assert_eq!(wal.last_index(), LogIndex(3));
    assert_eq!(all_entries(&wal), expected);

    // The log grows again past the old segments, rolls over, and replays the same.
    let mut expected = Vec::new();
    for index in 4..=40 {
        expected = both(&mut wal, entries(index..=index, 3));
    }
    let (mut wal, _) = crash_and_reopen(wal);
    assert_eq!(all_entries(&wal), expected);
    assert!(wal.segment_paths().len() > segments);

    // Compaction after a replacement keeps exactly the new entries.
    wal.compact_to(LogIndex(20), Term(3)).unwrap();
    let (wal, _) = crash_and_reopen(wal);
    assert_eq!(all_entries(&wal), entries(21..=40, 3));
    assert_eq!(wal.term(LogIndex(20)), Ok(Term(3)));
}

#[test]
fn appends_that_do_not_continue_the_log_are_refused_and_change_nothing() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(CLUSTER));
    wal.append(&entries(1..=5, 1)).unwrap();
    wal.compact_to(LogIndex(2), Term(1)).unwrap();
    let syncs = wal.disk().sync_count();
    assert!(matches!(
        wal.append_batch(&entries(7..=8, 1), None),
        Err(skiff_wal::WalError::NotContiguous { .. })
    ));
    assert!(matches!(
        wal.append_batch(&entries(2..=3, 1), None),
        Err(skiff_wal::WalError::NotContiguous { .. })
    ));
    let mut gap = entries(6..=7, 1);
    gap[1].index = LogIndex(8);
    assert!(matches!(
        wal.append_batch(&gap, None),
        Err(skiff_wal::WalError::NotConsecutive { .. })
    ));
    assert_eq!(wal.disk().sync_count(), syncs);
    assert_eq!(wal.last_index(), LogIndex(5));
    wal.append(&entries(6..=6, 1)).unwrap();
}

#[test]
fn entries_are_read_back_within_max_bytes() {
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    wal.append(&entries(1..=30, 1)).unwrap();
    let one = entry(1, 1).size_bytes();
    let read = wal.entries(LogIndex(5), LogIndex(31), 3 * one).unwrap();
    assert_eq!(read, entries(5..=7, 1));
    // A read spanning many segments.
    assert_eq!(
        wal.entries(LogIndex(2), LogIndex(29), u64::MAX).unwrap(),
        entries(2..=28, 1)
    );
}

/// `append_batch_unsynced` leaves the batch's one sync to the caller, names the file to sync
/// only when the batch promises something (entries, a term or a vote), and never lets a later
/// write become durable ahead of it.
#[test]
fn an_unsynced_batch_is_synced_by_the_caller_or_before_the_next_write() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(CLUSTER));
    let syncs = |wal: &skiff_wal::Wal<MemDisk>| wal.disk().sync_count();

    let before = syncs(&wal);
    let file = wal
        .append_batch_unsynced(&entries(1..=3, 1), Some(hard_state(1, Some(1), 0)))
        .unwrap()
        .expect("entries and a vote must be synced");
    assert_eq!(syncs(&wal), before, "the sync is left to the caller");
    assert_eq!(wal.unsynced_path(), Some(file.as_path()));
    wal.sync_batch().unwrap();
    assert_eq!(syncs(&wal) - before, 1);
    assert_eq!(wal.unsynced_path(), None);

    let before = syncs(&wal);
    let file = wal
        .append_batch_unsynced(&[], Some(hard_state(1, Some(1), 3)))
        .unwrap();
    assert_eq!(file, None, "a commit index alone need not be synced");
    assert!(
        wal.unsynced_path().is_some(),
        "but it is written, and synced before anything after it"
    );
    wal.append_batch(&entries(4..=4, 1), None).unwrap();
    assert_eq!(syncs(&wal) - before, 1, "one sync covers both");
    assert_eq!(wal.unsynced_path(), None);

    // A crash loses an unsynced batch whole; what was synced before it survives.
    wal.append_batch_unsynced(&entries(5..=6, 1), Some(hard_state(2, None, 4)))
        .unwrap();
    let (wal, _) = crash_and_reopen(wal);
    assert_eq!(all_entries(&wal), entries(1..=4, 1));
    assert_eq!(wal.hard_state(), hard_state(1, Some(1), 3));
}

/// A batch synced by the caller (a writer thread's `fdatasync`) is reported with
/// `batch_synced`; the log then does not sync it again.
#[test]
fn a_batch_synced_by_the_caller_is_not_synced_again() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(CLUSTER));
    let file = wal
        .append_batch_unsynced(&entries(1..=2, 1), Some(hard_state(1, Some(1), 0)))
        .unwrap()
        .expect("to sync");
    wal.disk_mut().sync(&file).unwrap();
    wal.batch_synced(&file);
    let before = wal.disk().sync_count();
    wal.sync_batch().unwrap();
    assert_eq!(wal.disk().sync_count(), before, "nothing left to sync");
    let (wal, _) = crash_and_reopen(wal);
    assert_eq!(all_entries(&wal), entries(1..=2, 1));
}

/// Reading back through a reused buffer: on the real file system and on the simulated disk, a
/// read into a buffer that held other bytes gives exactly the span asked for, and a span past
/// the end of the file is a short read, whatever the buffer held before.
#[test]
fn a_reused_read_buffer_holds_exactly_the_span_read() {
    fn check(disk: &mut impl Disk, dir: &std::path::Path) {
        disk.create_dir_all(dir).unwrap();
        let file = dir.join("data");
        disk.create(&file).unwrap();
        let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        disk.append(&file, &bytes).unwrap();

        let mut buffer = vec![0xAA; 50_000];
        disk.read_into(&file, 1_000, 3_000, &mut buffer).unwrap();
        assert_eq!(buffer, &bytes[1_000..4_000]);
        disk.read_into(&file, 9_990, 10, &mut buffer).unwrap();
        assert_eq!(buffer, &bytes[9_990..]);
        assert!(matches!(
            disk.read_into(&file, 9_990, 11, &mut buffer),
            Err(skiff_wal::DiskError::ShortRead { .. })
        ));
        assert!(matches!(
            disk.read_into(&file, u64::MAX, 1, &mut buffer),
            Err(skiff_wal::DiskError::ShortRead { .. })
        ));
        assert_eq!(disk.read(&file, 0, 10_000).unwrap(), bytes);
    }
    let root = tempfile::tempdir().unwrap();
    check(&mut skiff_wal::FsDisk::new(), &root.path().join("fs"));
    check(&mut MemDisk::new(), std::path::Path::new("/mem"));
}
