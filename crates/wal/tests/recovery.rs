//! Recovery: what a crash may do is repaired, anything else refuses to start.

use skiff_raft::{LogIndex, LogStorage, StorageError};
use skiff_wal::{Corruption, Disk, FsDisk, MemDisk, TornTail, Wal, WalError, WalOptions};

mod common;
use common::*;

/// Options without zeros written ahead, so that a segment's length is what was written: the
/// tests below place damage by file length. (`a_zero_filled_tail_is_free_space_not_a_torn_write`
/// and `batches_are_written_into_zeros_written_ahead` cover preallocation; the model test, the
/// simulator and the process tests run with it.)
fn appending() -> WalOptions {
    WalOptions {
        preallocate_bytes: 0,
        ..WalOptions::new(CLUSTER)
    }
}

/// A crash while a batch was being written leaves part of it: recovery cuts it off at the end
/// of the last complete batch and says so.
#[test]
fn torn_tail_is_truncated_on_recovery() {
    let (mut wal, _) = open(MemDisk::new(), appending());
    wal.append_batch(&entries(1..=2, 1), Some(hard_state(1, Some(1), 0)))
        .unwrap();
    let segment = wal.segment_paths()[0].clone();
    let durable_len = wal.disk().len(&segment).unwrap();

    wal.disk_mut().set_syncs_fail(true);
    assert!(wal
        .append_batch(&entries(3..=4, 1), Some(hard_state(1, Some(1), 2)))
        .is_err());
    let mut disk = wal.into_disk();
    disk.set_syncs_fail(false);
    let mut written = 0;
    disk.crash_tearing(|_, unsynced| {
        written = unsynced;
        unsynced - 5 // all but the last few bytes of the batch reached the disk
    });
    assert_eq!(disk.len(&segment).unwrap(), durable_len + written - 5);

    let (wal, report) = open(disk, appending());
    assert_eq!(
        report.torn_tail,
        Some(TornTail {
            file: segment.clone(),
            offset: durable_len,
            bytes_dropped: written - 5,
            file_removed: false,
        })
    );
    assert_eq!(wal.disk().len(&segment).unwrap(), durable_len);
    assert_eq!(all_entries(&wal), entries(1..=2, 1));
    assert_eq!(wal.hard_state(), hard_state(1, Some(1), 0));

    // The cut is durable: the next start finds nothing to repair.
    let (mut wal, report) = crash_and_reopen(wal);
    assert_eq!(report.torn_tail, None);
    wal.append(&entries(3..=3, 1)).unwrap();
    let (wal, _) = crash_and_reopen(wal);
    assert_eq!(all_entries(&wal), entries(1..=3, 1));
}

/// Zeros after the last batch are space written ahead of the next batches, in any segment:
/// not a torn write, nothing is cut, and the next batch goes where they begin. Without
/// preallocation the same zeros (a file system may leave them after a crash) read the same.
#[test]
fn a_zero_filled_tail_is_free_space_not_a_torn_write() {
    for preallocate_bytes in [0, 4096] {
        let options = WalOptions {
            preallocate_bytes,
            ..WalOptions::new(CLUSTER)
        };
        let (mut wal, _) = open(MemDisk::new(), options);
        wal.append(&entries(1..=3, 1)).unwrap();
        let segment = wal.segment_paths()[0].clone();
        let mut disk = wal.into_disk();
        disk.append(&segment, &[0; 4096]).unwrap();
        disk.sync(&segment).unwrap();
        let len = disk.len(&segment).unwrap();
        let (mut wal, report) = open(disk, options);
        assert_eq!(report.torn_tail, None, "preallocate {preallocate_bytes}");
        assert_eq!(all_entries(&wal), entries(1..=3, 1));
        assert_eq!(wal.disk().len(&segment).unwrap(), len, "nothing was cut");
        wal.append(&entries(4..=4, 1)).unwrap();
        let (wal, _) = crash_and_reopen(wal);
        assert_eq!(all_entries(&wal), entries(1..=4, 1));
    }
}

/// With preallocation a batch writes over zeros and leaves the file's length alone; a segment
/// grows by whole steps.
#[test]
fn batches_are_written_into_zeros_written_ahead() {
    let options = WalOptions {
        preallocate_bytes: 4096,
        ..WalOptions::new(CLUSTER)
    };
    let (mut wal, _) = open(MemDisk::new(), options);
    let segment = wal.segment_paths()[0].clone();
    assert_eq!(
        wal.disk().len(&segment).unwrap(),
        4096,
        "the header and zeros"
    );
    wal.append(&entries(1..=3, 1)).unwrap();
    assert_eq!(
        wal.disk().len(&segment).unwrap(),
        4096,
        "written into the zeros"
    );
    let big = skiff_raft::Entry {
        data: vec![7; 5000].into(),
        ..entry(4, 1)
    };
    wal.append(std::slice::from_ref(&big)).unwrap();
    assert_eq!(
        wal.disk().len(&segment).unwrap(),
        2 * 4096,
        "grown by a whole step"
    );
    let (wal, report) = crash_and_reopen(wal);
    assert_eq!(report.torn_tail, None);
    let mut expected = entries(1..=3, 1);
    expected.push(big);
    assert_eq!(all_entries(&wal), expected);
}

/// A bad checksum with valid records after it cannot be a torn write: it is damage to data
/// that was durable (and maybe committed), so the log refuses to start and says where.
#[test]
fn flipped_bit_in_the_middle_refuses_to_start_with_file_and_offset() {
    let (mut wal, _) = open(MemDisk::new(), appending());
    for index in 1..=5 {
        wal.append_batch(&entries(index..=index, 1), Some(hard_state(1, None, index)))
            .unwrap();
    }
    let segment = wal.segment_paths()[0].clone();
    let offset = offset_of_entry(wal.disk(), &segment, 3);
    let mut disk = wal.into_disk();
    disk.flip_bit(&segment, offset + 20).unwrap(); // inside the payload
    let before = disk.read_all(&segment).unwrap();

    let error = try_open(disk.clone(), appending()).unwrap_err();
    match &error {
        WalError::Corrupt {
            file,
            offset: at,
            problem:
                Corruption::NotATornWrite {
                    record: skiff_wal::record::RecordError::BadChecksum { .. },
                    ..
                },
        } => {
            assert_eq!(file, &segment);
            assert_eq!(*at, offset);
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(segment.to_str().unwrap())
            && message.contains(&format!("offset {offset}")),
        "{message}"
    );
    assert_eq!(
        disk.read_all(&segment).unwrap(),
        before,
        "a refusal repairs nothing"
    );
}

/// A flipped bit in a length field can make a record reach past the end of the file, which
/// looks like a torn write; the valid records after it show that it is not.
#[test]
fn flipped_length_in_the_middle_of_the_last_segment_refuses_to_start() {
    let (mut wal, _) = open(MemDisk::new(), appending());
    wal.append(&entries(1..=6, 1)).unwrap();
    let segment = wal.segment_paths()[0].clone();
    let offset = offset_of_entry(wal.disk(), &segment, 2);
    let mut disk = wal.into_disk();
    // Bit 0 of byte 3 of the little-endian length: +16 MiB.
    disk.flip_bit(&segment, offset + 3).unwrap();
    match try_open(disk, appending()) {
        Err(WalError::Corrupt {
            file, offset: at, ..
        }) => {
            assert_eq!((file, at), (segment, offset));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn damage_in_an_older_segment_refuses_to_start() {
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    for index in 1..=20 {
        wal.append(&entries(index..=index, 1)).unwrap();
    }
    let first = wal.segment_paths()[0].clone();
    let offset = offset_of_entry(wal.disk(), &first, 2);
    let mut disk = wal.into_disk();
    // Even the very last byte of an older segment is not a torn tail.
    let end = disk.len(&first).unwrap() - 1;
    disk.flip_bit(&first, end).unwrap();
    assert!(matches!(
        try_open(disk.clone(), small_segments()),
        Err(WalError::Corrupt { file, .. }) if file == first
    ));
    disk.flip_bit(&first, end).unwrap();
    disk.flip_bit(&first, offset + 9).unwrap();
    assert!(matches!(
        try_open(disk, small_segments()),
        Err(WalError::Corrupt { file, offset: at, .. }) if file == first && at == offset
    ));
}

#[test]
fn a_missing_segment_refuses_to_start() {
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    for index in 1..=20 {
        wal.append(&entries(index..=index, 1)).unwrap();
    }
    let segments = wal.segment_paths();
    let disk = wal.into_disk();

    let mut middle_gone = disk.clone();
    middle_gone.remove(&segments[1]).unwrap();
    match try_open(middle_gone, small_segments()) {
        Err(WalError::Corrupt {
            file,
            offset: 0,
            problem: Corruption::MissingSegment { .. },
        }) => assert_eq!(file, segments[2]),
        other => panic!("expected a missing segment, got {other:?}"),
    }

    // The first segment gone without a compaction covering it: its entries are lost.
    let mut first_gone = disk;
    first_gone.remove(&segments[0]).unwrap();
    match try_open(first_gone, small_segments()) {
        Err(WalError::Corrupt {
            file,
            problem: Corruption::LostEntries { from, .. },
            ..
        }) => {
            assert_eq!(file, segments[1]);
            assert_eq!(from, LogIndex(1));
        }
        other => panic!("expected lost entries, got {other:?}"),
    }
}

/// What was synced survives a crash; what was written but not synced (file contents or a new
/// file's name) does not.
#[test]
fn unsynced_writes_are_lost_on_crash_synced_survive() {
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    wal.append_batch(&entries(1..=5, 1), Some(hard_state(1, Some(2), 1)))
        .unwrap();
    let segments = wal.segment_paths();
    assert_eq!(segments.len(), 1);

    wal.disk_mut().set_syncs_fail(true);
    let failed = wal.append_batch(&entries(6..=9, 1), Some(hard_state(1, Some(2), 3)));
    assert!(matches!(failed, Err(WalError::Disk(_))), "{failed:?}");
    assert_eq!(
        wal.disk().list(&dir()).unwrap().len(),
        3,
        "the batch started a new segment (beside the first and the incarnation file)"
    );
    // After a failed sync nothing on disk can be trusted: no more writes until reopened.
    wal.disk_mut().set_syncs_fail(false);
    assert!(matches!(
        wal.append(&entries(4..=4, 1)),
        Err(StorageError::Backend(_))
    ));
    assert!(matches!(
        wal.append_batch(&[], Some(hard_state(2, None, 3))),
        Err(WalError::Failed(_))
    ));

    let (wal, report) = crash_and_reopen(wal);
    assert_eq!(
        report.segments_read, segments,
        "the new segment's name was never synced"
    );
    assert_eq!(all_entries(&wal), entries(1..=5, 1));
    assert_eq!(wal.hard_state(), hard_state(1, Some(2), 1));
}

/// The hard state is written after its batch's entries and a crash keeps a batch whole or not
/// at all: whatever prefix of the batch reached the disk, the log comes back as it was before
/// the batch or as it is after it.
#[test]
fn hard_state_is_atomic_with_its_batch() {
    let (mut wal, _) = open(MemDisk::new(), appending());
    let before = hard_state(1, Some(1), 2);
    let after = hard_state(2, Some(3), 5);
    wal.append_batch(&entries(1..=3, 1), Some(before)).unwrap();
    wal.disk_mut().set_syncs_fail(true);
    // A follower's batch: a new term and vote, a replaced suffix, and a commit index.
    let batch = entries(3..=6, 2);
    assert!(wal.append_batch(&batch, Some(after)).is_err());
    let mut disk = wal.into_disk();
    disk.set_syncs_fail(false);
    let segment = dir().join("seg-00000000000000000001.wal");
    let unsynced = disk.unsynced_bytes(&segment);
    assert!(unsynced > 0);

    for kept in 0..=unsynced {
        let mut torn = disk.clone();
        torn.crash_tearing(|_, _| kept);
        let (wal, report) = open(torn, appending());
        if kept == unsynced {
            assert_eq!(report.torn_tail, None);
            assert_eq!(wal.hard_state(), after, "whole batch");
            assert_eq!(wal.last_index(), LogIndex(6));
            assert_eq!(all_entries(&wal)[2..].to_vec(), batch);
        } else {
            let dropped = report.torn_tail.map_or(0, |t| t.bytes_dropped);
            assert_eq!(dropped, kept, "the kept part of the batch is cut off");
            assert_eq!(wal.hard_state(), before, "{kept} bytes kept");
            assert_eq!(all_entries(&wal), entries(1..=3, 1), "{kept} bytes kept");
        }
    }
}

#[test]
fn another_cluster_id_is_refused() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(7));
    wal.append(&entries(1..=2, 1)).unwrap();
    let segment = wal.segment_paths()[0].clone();
    let disk = wal.into_disk();
    let error = try_open(disk.clone(), WalOptions::new(8)).unwrap_err();
    match &error {
        WalError::WrongCluster {
            file,
            expected,
            found,
        } => assert_eq!((file, *expected, *found), (&segment, 8, 7)),
        other => panic!("expected a cluster mismatch, got {other:?}"),
    }
    assert!(error.to_string().contains(segment.to_str().unwrap()));
    // Still fine for its own cluster.
    let wal = try_open(disk, WalOptions::new(7)).unwrap();
    assert_eq!(wal.last_index(), LogIndex(2));
}

/// A crash right after a new segment was created, before its header reached the disk,
/// leaves an empty file: it is removed and the log continues in the segment before it.
#[test]
fn an_empty_last_segment_is_removed() {
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    for index in 1..=4 {
        wal.append(&entries(index..=index, 1)).unwrap();
    }
    let segments = wal.segment_paths();
    let options = *wal.options();
    let mut disk = wal.into_disk();
    let stray = dir().join("seg-00000000000000000099.wal");
    disk.create(&stray).unwrap();
    disk.sync_dir(&dir()).unwrap();
    let (mut wal, report) = open(disk, options);
    let torn = report.torn_tail.expect("the empty segment is reported");
    assert_eq!((torn.file, torn.file_removed), (stray, true));
    assert_eq!(wal.segment_paths(), segments);
    wal.append(&entries(5..=30, 1)).unwrap();
    let (wal, _) = crash_and_reopen(wal);
    assert_eq!(all_entries(&wal), entries(1..=30, 1));
}

/// The same recovery on the real file system: a restart, then a torn tail.
#[test]
fn fs_disk_log_survives_restart_and_torn_tail() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("wal");
    let options = WalOptions {
        max_segment_bytes: 512,
        preallocate_bytes: 0,
        ..WalOptions::new(CLUSTER)
    };
    let (mut wal, report) = Wal::open(FsDisk::new(), &dir, options).unwrap();
    assert!(report.created);
    for index in 1..=30 {
        wal.append_batch(
            &entries(index..=index, 1),
            Some(hard_state(1, Some(1), index)),
        )
        .unwrap();
    }
    wal.compact_to(LogIndex(10), skiff_raft::Term(1)).unwrap();
    let last_segment = wal.segment_paths().pop().unwrap();
    drop(wal);

    let (wal, report) = Wal::open(FsDisk::new(), &dir, options).unwrap();
    assert_eq!(report.torn_tail, None);
    assert_eq!(all_entries(&wal), entries(11..=30, 1));
    assert_eq!(wal.hard_state(), hard_state(1, Some(1), 30));
    drop(wal);

    // Half a record at the end, as a crash in the middle of a write leaves it.
    let mut half = Vec::new();
    skiff_wal::record::encode_entry(&entry(31, 1), true, &mut half).unwrap();
    half.truncate(half.len() / 2);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&last_segment)
        .unwrap();
    std::io::Write::write_all(&mut file, &half).unwrap();
    drop(file);

    let (wal, report) = Wal::open(FsDisk::new(), &dir, options).unwrap();
    let torn = report.torn_tail.expect("a torn tail");
    assert_eq!(
        (torn.file, torn.bytes_dropped),
        (last_segment, half.len() as u64)
    );
    assert_eq!(all_entries(&wal), entries(11..=30, 1));
    assert_eq!(wal.first_index(), LogIndex(11));
}

#[test]
fn recovery_reports_its_progress_after_each_segment() {
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    for index in 1..=20 {
        wal.append(&entries(index..=index, 1)).unwrap();
    }
    let segments = wal.segment_paths();
    assert!(segments.len() >= 3, "several segments: {segments:?}");
    let total_bytes: u64 = segments.iter().map(|s| wal.disk().len(s).unwrap()).sum();
    let disk = wal.into_disk();
    let mut seen = Vec::new();
    Wal::open_with_progress(disk, dir(), small_segments(), &mut |p| seen.push(p)).unwrap();
    assert_eq!(seen.len(), segments.len(), "one report per segment");
    for (i, progress) in seen.iter().enumerate() {
        assert_eq!(progress.segments_read, i + 1);
        assert_eq!(progress.segments_total, segments.len());
    }
    assert!(seen.windows(2).all(|w| w[0].bytes_read < w[1].bytes_read));
    assert_eq!(seen.last().unwrap().bytes_read, total_bytes);
}

/// Segments of about 5 MiB: large enough to be checked two at a time.
fn large_segments() -> WalOptions {
    WalOptions {
        max_segment_bytes: 5 << 20,
        ..appending()
    }
}

/// An entry of 512 KiB: ten fill such a segment.
fn big_entry(index: u64) -> skiff_raft::Entry {
    skiff_raft::Entry {
        data: vec![index as u8; 512 << 10].into(),
        ..entry(index, 1)
    }
}

/// Segments of 4 MiB and more are scanned two at a time, every second one on a helper thread:
/// what recovery finds must not depend on it. A log of five such segments recovers whole; a
/// flipped bit in the second (scanned on the helper) or the third (scanned here) refuses to
/// start naming that file and offset, and one in both names the earlier; a torn write at the
/// end of the last segment, scanned on the helper when it is the second, is cut.
#[test]
fn large_segments_scanned_two_at_a_time_recover_and_refuse_as_one_at_a_time() {
    let (options, big) = (large_segments(), big_entry);
    let (mut wal, _) = open(MemDisk::new(), options);
    for index in 1..=50 {
        wal.append_batch(&[big(index)], Some(hard_state(1, Some(1), index)))
            .unwrap();
    }
    let segments = wal.segment_paths();
    assert_eq!(segments.len(), 5);
    let disk = wal.into_disk();
    let (wal, report) = open(disk.clone(), options);
    assert_eq!(report.segments_read, segments);
    // The second and the fourth went to the helper (the fifth is under 4 MiB).
    assert_eq!(report.segments_checked_apart, 2);
    assert_eq!(all_entries(&wal), (1..=50).map(big).collect::<Vec<_>>());
    assert_eq!(wal.hard_state(), hard_state(1, Some(1), 50));

    let damaged_at = |disk: &MemDisk, segment: usize| {
        let file = &segments[segment];
        let (offset, _) = records_of(disk, file)[2];
        (file.clone(), offset)
    };
    let refusal = |disk: MemDisk| match try_open(disk, options) {
        Err(WalError::Corrupt { file, offset, .. }) => (file, offset),
        other => panic!("expected corruption, got {other:?}"),
    };
    for damaged in [vec![1], vec![2], vec![1, 2], vec![2, 3]] {
        let mut damaged_disk = disk.clone();
        for &segment in &damaged {
            let (file, offset) = damaged_at(&disk, segment);
            damaged_disk.flip_bit(&file, offset + 20).unwrap();
        }
        assert_eq!(
            refusal(damaged_disk),
            damaged_at(&disk, damaged[0]),
            "damage in segments {damaged:?}"
        );
    }

    // Two segments: the last is the helper's, and its torn tail is cut.
    let (mut wal, _) = open(MemDisk::new(), options);
    for index in 1..=19 {
        wal.append_batch(&[big(index)], Some(hard_state(1, Some(1), index)))
            .unwrap();
    }
    let last = wal.segment_paths().pop().unwrap();
    assert_eq!(wal.segment_paths().len(), 2);
    let durable_len = wal.disk().len(&last).unwrap();
    assert!(durable_len >= 4 << 20, "large enough for the helper");
    wal.disk_mut().set_syncs_fail(true);
    assert!(wal.append_batch(&[big(20)], None).is_err());
    let mut disk = wal.into_disk();
    disk.set_syncs_fail(false);
    disk.crash_tearing(|_, unsynced| unsynced / 2);
    let (wal, report) = open(disk, options);
    assert_eq!(report.segments_checked_apart, 1);
    let torn = report.torn_tail.expect("a torn tail");
    assert_eq!((torn.file, torn.offset), (last.clone(), durable_len));
    assert_eq!(wal.disk().len(&last).unwrap(), durable_len);
    assert_eq!(all_entries(&wal), (1..=19).map(big).collect::<Vec<_>>());
}

/// The same on real files, which recovery maps instead of reading: two segments of 4 MiB and
/// more, the second checked on the helper. A bit flipped in either refuses to start naming
/// it; half a record written after the second's last batch is cut as a torn tail.
#[test]
fn large_mapped_segments_recover_and_refuse_on_real_files() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("wal");
    let (options, big) = (large_segments(), big_entry);
    let (mut wal, _) = Wal::open(FsDisk::new(), &dir, options).unwrap();
    for index in 1..=19 {
        wal.append_batch(&[big(index)], Some(hard_state(1, Some(1), index)))
            .unwrap();
    }
    let segments = wal.segment_paths();
    drop(wal);
    assert_eq!(segments.len(), 2);
    assert!(std::fs::metadata(&segments[1]).unwrap().len() >= 4 << 20);
    let (wal, report) = Wal::open(FsDisk::new(), &dir, options).unwrap();
    assert_eq!(report.segments_checked_apart, 1);
    assert_eq!(all_entries(&wal), (1..=19).map(big).collect::<Vec<_>>());
    drop(wal);

    let flip = |file: &std::path::Path, at: u64| {
        let mut bytes = std::fs::read(file).unwrap();
        bytes[at as usize] ^= 1;
        std::fs::write(file, bytes).unwrap();
    };
    for segment in &segments {
        let (offset, _) = records_of(&FsDisk::new(), segment)[2];
        flip(segment, offset + 20);
        match Wal::open(FsDisk::new(), &dir, options) {
            Err(WalError::Corrupt {
                file, offset: at, ..
            }) => {
                assert_eq!((&file, at), (segment, offset));
            }
            other => panic!("expected corruption in {segment:?}, got {other:?}"),
        }
        flip(segment, offset + 20);
    }

    let last = &segments[1];
    let durable_len = std::fs::metadata(last).unwrap().len();
    let mut half = Vec::new();
    skiff_wal::record::encode_entry(&big(20), true, &mut half).unwrap();
    half.truncate(half.len() / 2);
    let mut file = std::fs::OpenOptions::new().append(true).open(last).unwrap();
    std::io::Write::write_all(&mut file, &half).unwrap();
    drop(file);
    let (wal, report) = Wal::open(FsDisk::new(), &dir, options).unwrap();
    let torn = report.torn_tail.expect("a torn tail");
    assert_eq!((&torn.file, torn.offset), (last, durable_len));
    assert_eq!(std::fs::metadata(last).unwrap().len(), durable_len);
    assert_eq!(all_entries(&wal), (1..=19).map(big).collect::<Vec<_>>());
}

/// A log of small segments in `root/wal` on real files: twenty batches of one entry each
/// (term 1), each with a vote for node 2; the log's directory and its segments.
fn twenty_batches_on_real_files(
    root: &std::path::Path,
) -> (std::path::PathBuf, Vec<std::path::PathBuf>) {
    let dir = root.join("wal");
    let (mut wal, _) = Wal::open(FsDisk::new(), &dir, small_segments()).unwrap();
    for index in 1..=20 {
        let vote = hard_state(1, Some(2), index);
        wal.append_batch(&entries(index..=index, 1), Some(vote))
            .unwrap();
    }
    (dir, wal.segment_paths())
}

/// Damage the mapping must meet as the copy did, on real files: a segment cut to nothing
/// before the last refuses to start naming it (a mapping of nothing is no mapping at all); a
/// last segment stretched by a huge sparse hole after its batches (a file system that
/// extended it, 256 MiB here) reads as zeros written ahead, recovers, and keeps its length,
/// where the copy would have held the whole hole in memory.
#[test]
fn a_segment_cut_to_nothing_refuses_and_a_huge_sparse_tail_is_zeros_written_ahead() {
    let root = tempfile::tempdir().unwrap();
    let (dir, segments) = twenty_batches_on_real_files(root.path());
    let last = segments.last().unwrap().clone();
    let stretched = 256 << 20;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(stretched)
        .unwrap();
    let (wal, report) = Wal::open(FsDisk::new(), &dir, small_segments()).unwrap();
    assert_eq!(report.torn_tail, None);
    assert_eq!(all_entries(&wal), entries(1..=20, 1));
    drop(wal);
    assert_eq!(std::fs::metadata(&last).unwrap().len(), stretched);

    let cut = &segments[segments.len() - 2];
    std::fs::OpenOptions::new()
        .write(true)
        .open(cut)
        .unwrap()
        .set_len(0)
        .unwrap();
    match Wal::open(FsDisk::new(), &dir, small_segments()) {
        Err(WalError::Corrupt {
            file,
            offset: 0,
            problem: Corruption::NoSegmentHeader,
        }) => assert_eq!(&file, cut),
        other => panic!("expected the empty segment refused, got {other:?}"),
    }
}

/// Opens the log in `dir` on a thread of its own and waits at most a minute for it: a
/// recovery that waits on a pipe fails the test instead of hanging it.
fn open_or_fail_in_time(dir: &std::path::Path) -> Result<(), WalError> {
    let (done, outcome) = std::sync::mpsc::channel();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let opened = Wal::open(FsDisk::new(), &dir, small_segments()).map(drop);
        let _ = done.send(opened);
    });
    outcome
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("recovery waited on a name that is not a file")
}

/// The last segment holds the newest term and vote. A pipe, a directory or a link under its
/// name is refused, naming it; it is neither taken for a segment lost (the node would come
/// back with an older vote, §5.2) nor waited on. A pipe under the first segment's name or a
/// snapshot's, and a directory under a leftover snapshot name, likewise.
#[test]
fn a_log_name_taken_by_a_pipe_a_directory_or_a_link_refuses_to_start() {
    use skiff_wal::DiskError;
    let root = tempfile::tempdir().unwrap();
    let (dir, segments) = twenty_batches_on_real_files(root.path());
    let last = segments.last().unwrap().clone();
    assert!(segments.len() > 2);
    let saved = root.path().join("saved");
    std::fs::rename(&last, &saved).unwrap();
    let make_pipe = |path: &std::path::Path| {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    };
    for kind in ["a pipe", "a directory", "a symbolic link"] {
        match kind {
            "a pipe" => make_pipe(&last),
            "a directory" => std::fs::create_dir(&last).unwrap(),
            _ => std::os::unix::fs::symlink(&saved, &last).unwrap(),
        }
        match open_or_fail_in_time(&dir) {
            Err(WalError::Disk(DiskError::NotAFile { path, kind: said })) => {
                assert_eq!((&path, said), (&last, kind));
            }
            other => panic!("{kind} as the last segment: expected a refusal, got {other:?}"),
        }
        if kind == "a directory" {
            std::fs::remove_dir(&last).unwrap();
        } else {
            std::fs::remove_file(&last).unwrap();
        }
    }
    std::fs::rename(&saved, &last).unwrap();

    // The first segment is opened to be read, not looked at first: a pipe there is refused
    // by the open itself, which must not wait for a writer.
    let first = segments[0].clone();
    let first_saved = root.path().join("first");
    std::fs::rename(&first, &first_saved).unwrap();
    make_pipe(&first);
    match open_or_fail_in_time(&dir) {
        Err(WalError::Disk(DiskError::NotAFile { path, kind })) => {
            assert_eq!((path, kind), (first.clone(), "a pipe"));
        }
        other => panic!("a pipe as the first segment: expected a refusal, got {other:?}"),
    }
    std::fs::remove_file(&first).unwrap();
    std::fs::rename(&first_saved, &first).unwrap();

    // A directory under a leftover snapshot name cannot be removed as the leftovers are:
    // the start is refused, naming it.
    let leftover = dir.join(skiff_wal::snapshot::temp_file_name(LogIndex(3)));
    std::fs::create_dir(&leftover).unwrap();
    match open_or_fail_in_time(&dir) {
        Err(WalError::Disk(DiskError::NotAFile { path, kind })) => {
            assert_eq!((path, kind), (leftover.clone(), "a directory"));
        }
        other => panic!("a directory as a leftover: expected a refusal, got {other:?}"),
    }
    std::fs::remove_dir(&leftover).unwrap();

    let snapshot = dir.join(skiff_wal::snapshot::file_name(LogIndex(5)));
    make_pipe(&snapshot);
    match open_or_fail_in_time(&dir) {
        Err(WalError::Disk(DiskError::NotAFile { path, .. })) => assert_eq!(path, snapshot),
        other => panic!("a pipe as the snapshot: expected a refusal, got {other:?}"),
    }
    std::fs::remove_file(&snapshot).unwrap();
    let (wal, _) = Wal::open(FsDisk::new(), &dir, small_segments()).unwrap();
    assert_eq!(all_entries(&wal), entries(1..=20, 1));
    assert_eq!(wal.hard_state().vote, Some(skiff_raft::NodeId(2)));
}
