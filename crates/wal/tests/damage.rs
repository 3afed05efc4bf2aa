//! Damage versus a torn write: what a crash can leave is repaired, anything else refuses to
//! start naming the file and the offset, and no damage lets the log come back with a term or
//! vote older than the one it promised (thesis §3.8: a node that forgets its vote can vote
//! twice in a term, and a term with two votes can have two leaders, §5.2).

use std::path::{Path, PathBuf};

use skiff_raft::{HardState, LogIndex, LogStorage, NodeId, SnapshotMeta, Term};
use skiff_wal::{Corruption, Disk, MemDisk, Wal, WalError, WalOptions};

mod common;
use common::*;

/// Bytes that look like nothing: a seeded xorshift, never all zeros.
fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Options without zeros written ahead, so a file's length is what was written.
fn appending() -> WalOptions {
    WalOptions {
        preallocate_bytes: 0,
        ..WalOptions::new(CLUSTER)
    }
}

/// The refusal's file and offset, checked in the message too (an operator reads the message).
fn refusal(result: Result<Wal<MemDisk>, WalError>) -> (PathBuf, u64, Corruption) {
    match result {
        Err(error @ WalError::Corrupt { .. }) => {
            let message = error.to_string();
            let WalError::Corrupt {
                file,
                offset,
                problem,
            } = error
            else {
                unreachable!()
            };
            assert!(
                message.contains(file.to_str().unwrap())
                    && message.contains(&format!("offset {offset}")),
                "the message names the file and offset: {message}"
            );
            (file, offset, problem)
        }
        Err(other) => panic!("expected a refusal naming file and offset, got {other}"),
        Ok(wal) => panic!(
            "the damaged log opened, with hard state {:?} and entries up to {}",
            wal.hard_state(),
            wal.last_index()
        ),
    }
}

fn voted() -> HardState {
    hard_state(3, Some(2), 0)
}

/// A log of several segments whose last one holds the latest vote.
fn log_of_segments() -> (MemDisk, Vec<PathBuf>) {
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    for index in 1..=20 {
        wal.append_batch(
            &entries(index..=index, 1),
            Some(hard_state(1, Some(1), index)),
        )
        .unwrap();
    }
    wal.append_batch(&entries(21..=21, 3), Some(hard_state(3, Some(2), 20)))
        .unwrap();
    let segments = wal.segment_paths();
    assert!(segments.len() >= 4, "several segments: {segments:?}");
    (wal.into_disk(), segments)
}

/// The bug this guards against: the only segment, holding term 3 and a vote for node 2, is
/// overwritten by random bytes. It used to be taken for a torn write at offset 0 and removed,
/// and the node started at term 0 with no vote. Garbage is not what a crash leaves.
#[test]
fn a_garbage_only_segment_refuses_instead_of_starting_at_term_zero() {
    for options in [appending(), WalOptions::new(CLUSTER)] {
        let (mut wal, _) = open(MemDisk::new(), options);
        wal.append_batch(&entries(1..=3, 3), Some(voted())).unwrap();
        let segment = wal.segment_paths()[0].clone();
        let mut disk = wal.into_disk();
        let len = disk.len(&segment).unwrap() as usize;
        let damaged = garbage(len, 42);
        disk.replace_contents(&segment, &damaged).unwrap();

        let (file, offset, problem) = refusal(try_open(disk.clone(), options));
        assert_eq!((file, offset), (segment.clone(), 0));
        assert!(
            matches!(problem, Corruption::NotATornWrite { .. }),
            "{problem:?}"
        );
        assert_eq!(
            disk.read_all(&segment).unwrap(),
            damaged,
            "a refusal leaves the file for the operator"
        );
    }
}

/// Whole-file garbage in any segment but the last is damage, as is any damage there.
#[test]
fn a_garbage_middle_segment_refuses() {
    let (mut disk, segments) = log_of_segments();
    let middle = &segments[1];
    let len = disk.len(middle).unwrap() as usize;
    disk.replace_contents(middle, &garbage(len, 7)).unwrap();
    let (file, offset, _) = refusal(try_open(disk, small_segments()));
    assert_eq!((&file, offset), (middle, 0));
}

/// A last segment replaced by garbage — the segment that holds the latest term and vote —
/// refuses too: falling back to the segment before it would forget the vote for node 2.
#[test]
fn a_garbage_last_segment_refuses_rather_than_fall_back_to_an_older_vote() {
    let (mut disk, segments) = log_of_segments();
    let last = segments.last().unwrap();
    let len = disk.len(last).unwrap() as usize;
    disk.replace_contents(last, &garbage(len, 9)).unwrap();
    let (file, offset, _) = refusal(try_open(disk, small_segments()));
    assert_eq!((&file, offset), (last, 0));
}

/// After the last complete batch of the last segment, three things can follow:
/// - zeros: space written ahead of the next batches, nothing to cut;
/// - a prefix of the next batch's bytes, then zeros: a crash's torn write, cut off;
/// - anything else (garbage): damage, refused at the end of the last batch.
#[test]
fn after_the_last_batch_zeros_are_space_a_prefix_is_torn_and_garbage_is_damage() {
    let (mut wal, _) = open(MemDisk::new(), appending());
    wal.append_batch(&entries(1..=3, 3), Some(voted())).unwrap();
    let segment = wal.segment_paths()[0].clone();
    let disk = wal.into_disk();
    let durable = disk.read_all(&segment).unwrap();
    let end = durable.len();
    let mut next_batch = Vec::new();
    skiff_wal::record::encode_entry(&entry(4, 3), false, &mut next_batch).unwrap();
    skiff_wal::record::encode(
        &skiff_wal::record::Record::HardState(hard_state(3, Some(2), 4)),
        true,
        &mut next_batch,
    )
    .unwrap();

    let with_tail = |tail: &[u8]| {
        let mut disk = disk.clone();
        let mut bytes = durable.clone();
        bytes.extend_from_slice(tail);
        disk.replace_contents(&segment, &bytes).unwrap();
        disk
    };

    let (wal, report) = open(with_tail(&[0; 300]), appending());
    assert_eq!(report.torn_tail, None, "zeros are not a torn write");
    assert_eq!(wal.hard_state(), voted());

    // Every prefix of the next batch short of the whole, with zeros after it or not.
    for cut in 1..next_batch.len() {
        for zeros in [0, 100] {
            let mut tail = next_batch[..cut].to_vec();
            tail.resize(cut + zeros, 0);
            let (wal, report) = open(with_tail(&tail), appending());
            // Bytes missing from the end that were zeros anyway: the batch is all there.
            let complete =
                next_batch[cut..].iter().all(|&b| b == 0) && zeros >= next_batch.len() - cut;
            if complete {
                assert_eq!(report.torn_tail, None, "cut at {cut}");
                assert_eq!(wal.last_index(), LogIndex(4), "cut at {cut}");
                continue;
            }
            let torn = report.torn_tail.expect("a torn write");
            assert_eq!(
                (torn.offset, torn.bytes_dropped),
                (end as u64, tail.len() as u64)
            );
            assert_eq!(wal.hard_state(), voted(), "cut at {cut}");
            assert_eq!(wal.last_index(), LogIndex(3), "cut at {cut}");
        }
    }

    for seed in 1..=20 {
        let (file, offset, _) = refusal(try_open(with_tail(&garbage(300, seed)), appending()));
        assert_eq!(
            (&file, offset),
            (&segment, end as u64),
            "garbage seed {seed}"
        );
    }
}

/// A segment lost between two others leaves a gap in the indexes: the one after it names it.
/// The first segment lost, with entries no compaction covers, is seen too.
#[test]
fn a_lost_middle_or_first_segment_refuses() {
    let (disk, segments) = log_of_segments();
    let mut middle_gone = disk.clone();
    middle_gone.lose_file(&segments[2]).unwrap();
    let (file, offset, problem) = refusal(try_open(middle_gone, small_segments()));
    assert_eq!((&file, offset), (&segments[3], 0));
    assert!(matches!(problem, Corruption::MissingSegment { .. }));

    let mut first_gone = disk;
    first_gone.lose_file(&segments[0]).unwrap();
    let (file, offset, problem) = refusal(try_open(first_gone, small_segments()));
    assert_eq!((&file, offset), (&segments[1], 0));
    assert!(matches!(problem, Corruption::LostEntries { .. }));
}

/// The limit of what the log can see on its own: the last segment lost whole looks like a log
/// that was never written past the segment before it — its header is the only record that it
/// ever existed — so the log opens with that segment's older hard state. The same for every
/// segment lost: it reads as a new log (`created`), unless the caller, which knows whether
/// the node has run before (the server keeps its identity beside the log; the simulator knows
/// its nodes), opens it with `expect_existing_log`.
#[test]
fn a_lost_last_segment_is_invisible_to_the_log_alone_and_a_lost_log_reads_as_created() {
    let (disk, segments) = log_of_segments();
    let mut last_gone = disk.clone();
    last_gone.lose_file(segments.last().unwrap()).unwrap();
    let (wal, report) = open(last_gone, small_segments());
    assert!(!report.created);
    assert_eq!(
        wal.hard_state().term,
        Term(1),
        "the older term, which only the caller can notice is stale"
    );

    let mut all_gone = disk;
    for segment in &segments {
        all_gone.lose_file(segment).unwrap();
    }
    let (wal, report) = open(all_gone.clone(), small_segments());
    assert!(report.created, "the caller is told the log is new");
    assert_eq!(wal.hard_state(), HardState::default());

    // A caller that knows the node has run says so, and the log refuses instead.
    let has_run = WalOptions {
        expect_existing_log: true,
        ..small_segments()
    };
    let (file, offset, problem) = refusal(try_open(all_gone.clone(), has_run));
    assert_eq!((file, offset), (dir(), 0));
    assert_eq!(problem, Corruption::SegmentsMissing);
    assert_eq!(
        all_gone.list(&dir()).unwrap(),
        ["incarnation"],
        "the refusal created nothing"
    );
}

/// A snapshot file shows the node has run: with no segment beside it, the term and vote are
/// gone, and the log refuses (naming the snapshot) instead of starting at term 0.
#[test]
fn a_snapshot_without_any_segment_refuses() {
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    for index in 1..=10 {
        wal.append_batch(
            &entries(index..=index, 2),
            Some(hard_state(2, Some(3), index)),
        )
        .unwrap();
    }
    let meta = SnapshotMeta {
        index: LogIndex(8),
        term: Term(2),
        voters: vec![NodeId(1), NodeId(2), NodeId(3)],
        voters_outgoing: vec![],
        learners: vec![],
    };
    wal.save_snapshot(meta, b"state at 8".to_vec()).unwrap();
    wal.compact(LogIndex(8)).unwrap();
    let snapshot = wal.snapshot_path().unwrap().to_path_buf();
    let segments = wal.segment_paths();
    let mut disk = wal.into_disk();
    for segment in &segments {
        disk.lose_file(segment).unwrap();
    }
    let (file, offset, problem) = refusal(try_open(disk, small_segments()));
    assert_eq!((file, offset), (snapshot, 0));
    assert_eq!(problem, Corruption::SegmentsMissing);
}

/// A file cut short: in an older segment, in the middle of a record or at a batch boundary,
/// it is damage; in the last segment a cut inside a record is exactly what a torn write
/// leaves, and is repaired as one (the log cannot tell them apart, and what it cuts was the
/// final batch, whose promises were not yet all made if the write was torn).
#[test]
fn a_truncated_file_refuses_unless_it_is_the_last_segment_cut_inside_a_record() {
    let (disk, segments) = log_of_segments();
    let older = &segments[1];
    let len = disk.len(older).unwrap();

    let mut cut_in_a_record = disk.clone();
    cut_in_a_record.truncate(older, len - 3).unwrap();
    cut_in_a_record.sync(older).unwrap();
    let (file, _, _) = refusal(try_open(cut_in_a_record, small_segments()));
    assert_eq!(&file, older);

    // Its final batch (an entry and a hard state record) cut off exactly.
    let batch_start = offset_of_entry(&disk, older, last_entry_in(&disk, older));
    let mut cut_at_a_batch = disk.clone();
    cut_at_a_batch.truncate(older, batch_start).unwrap();
    cut_at_a_batch.sync(older).unwrap();
    let (file, offset, problem) = refusal(try_open(cut_at_a_batch, small_segments()));
    assert_eq!((&file, offset), (&segments[2], 0), "{problem:?}");

    let last = segments.last().unwrap();
    let mut last_cut = disk;
    let last_len = last_cut.len(last).unwrap();
    last_cut.truncate(last, last_len - 3).unwrap();
    last_cut.sync(last).unwrap();
    let (_, report) = open(last_cut, small_segments());
    assert!(report.torn_tail.is_some(), "repaired as a torn write");
}

/// A data directory that never held a log starts empty, and so does one whose very first
/// header write was torn by a crash (nothing was promised yet).
#[test]
fn a_new_log_starts_empty_even_after_a_crash_tore_its_first_header() {
    let (wal, report) = open(MemDisk::new(), appending());
    assert!(report.created);
    assert_eq!(wal.hard_state(), HardState::default());

    // The first header as written, and a crash that kept any prefix of it.
    let segment = dir().join("seg-00000000000000000001.wal");
    let header = wal.disk().read_all(&segment).unwrap();
    let header_len = header.len() as u64;
    for kept in 0..header_len {
        // Then the end of the file, or the zeros written ahead of the batches.
        for zeros in [0, 4096] {
            let mut crashed = MemDisk::new();
            crashed.create(&segment).unwrap();
            crashed.append(&segment, &header[..kept as usize]).unwrap();
            crashed.append(&segment, &vec![0; zeros]).unwrap();
            crashed.sync(&segment).unwrap();
            crashed.sync_dir(&dir()).unwrap();
            let (wal, report) = open(crashed, appending());
            // Bytes missing from the end that were zeros anyway: the header is all there.
            let complete = header[kept as usize..].iter().all(|&b| b == 0) && zeros > 0;
            assert_eq!(report.created, !complete, "kept {kept} bytes of the header");
            assert_eq!(wal.hard_state(), HardState::default());
        }
    }
}

/// The index of the last entry record in `file`.
fn last_entry_in(disk: &MemDisk, file: &Path) -> u64 {
    records_of(disk, file)
        .into_iter()
        .rev()
        .find_map(|(_, record)| match record {
            skiff_wal::record::Record::Entry(e) => Some(e.index.0),
            _ => None,
        })
        .expect("an entry in the segment")
}
