//! Recycled segments: compacted files kept as spares and written over as later segments,
//! whose earlier lives' bytes recovery must tell from this life's records.

use std::path::{Path, PathBuf};

use skiff_raft::{LogIndex, LogStorage, Term};
use skiff_wal::record::{self, Record};
use skiff_wal::{Corruption, Disk, MemDisk, Wal, WalError, WalOptions, DEFAULT_SPARE_SEGMENTS};

mod common;
use common::*;

fn spares(wal: &Wal<MemDisk>) -> Vec<String> {
    let mut names: Vec<String> = wal
        .disk()
        .list(&dir())
        .unwrap()
        .into_iter()
        .filter(|name| name.starts_with("spare-"))
        .collect();
    names.sort();
    names
}

/// The life and mask in the header of `file`.
fn life_and_mask(disk: &MemDisk, file: &Path) -> (u32, u64) {
    match &records_of(disk, file)[0].1 {
        Record::SegmentHeader(header) => (header.life, header.mask),
        other => panic!("{} begins with {other:?}", file.display()),
    }
}

/// A log of small segments, 40 entries long, compacted to 23: two spares kept.
fn compacted() -> Wal<MemDisk> {
    compacted_with(small_segments())
}

fn compacted_with(options: WalOptions) -> Wal<MemDisk> {
    let (mut wal, _) = open(MemDisk::new(), options);
    for index in 1..=40 {
        wal.append_batch(&entries(index..=index, 2), None).unwrap();
    }
    wal.compact_to(LogIndex(23), Term(2)).unwrap();
    wal
}

/// Appends one entry a batch from `wal`'s last index + 1 to `last`.
fn append_up_to(wal: &mut Wal<MemDisk>, last: u64) {
    for index in wal.last_index().0 + 1..=last {
        wal.append_batch(&entries(index..=index, 2), None).unwrap();
    }
}

/// The segment a recycled spare became: the first segment whose header has a life.
fn recycled_segment(wal: &Wal<MemDisk>) -> PathBuf {
    wal.segment_paths()
        .into_iter()
        .find(|path| life_and_mask(wal.disk(), path).0 > 0)
        .expect("a recycled segment")
}

/// Appends one entry a batch until the log has moved on from a recycled segment; returns it.
fn moved_on_from_recycled(wal: &mut Wal<MemDisk>) -> PathBuf {
    loop {
        let last = wal.last_index().0;
        append_up_to(wal, last + 1);
        let paths = wal.segment_paths();
        if let Some(first) = paths[..paths.len() - 1]
            .iter()
            .find(|path| life_and_mask(wal.disk(), path).0 > 0)
        {
            return first.clone();
        }
    }
}

/// What opening the log was refused for: damage that must be in `file` at `offset`.
fn refusal<T>(opened: Result<T, WalError>, file: &Path, offset: u64, context: &str) -> Corruption {
    match opened {
        Err(WalError::Corrupt {
            file: damaged,
            offset: at,
            problem,
        }) => {
            assert_eq!((damaged.as_path(), at), (file, offset), "{context}");
            problem
        }
        Err(other) => panic!("{context}: refused for {other}"),
        Ok(_) => panic!("{context}: the damage was taken (cut, or read as it is)"),
    }
}

/// Flips a bit at `offset` in `file` (media damage) and opens the log again.
fn open_after_flip(
    wal: Wal<MemDisk>,
    file: &Path,
    offset: u64,
) -> Result<skiff_wal::RecoveryReport, WalError> {
    let options = *wal.options();
    let mut disk = wal.into_disk();
    disk.flip_bit(file, offset).unwrap();
    Wal::open(disk, dir(), options).map(|(_, report)| report)
}

#[test]
fn compacted_segments_are_kept_as_spares_and_written_over() {
    let mut wal = compacted();
    assert_eq!(spares(&wal).len(), DEFAULT_SPARE_SEGMENTS);
    let spare = dir().join(&spares(&wal)[1]);
    let spare_len = wal.disk().len(&spare).unwrap();

    // The next segment is the spare, renamed: its length is the old file's, nothing added.
    let before = wal.segment_paths().len();
    let mut index = wal.last_index().0;
    while wal.segment_paths().len() == before {
        index += 1;
        append_up_to(&mut wal, index);
    }
    assert_eq!(spares(&wal).len(), DEFAULT_SPARE_SEGMENTS - 1);
    let recycled = wal.segment_paths().last().unwrap().clone();
    assert_eq!(wal.disk().len(&recycled).unwrap(), spare_len);
    let (life, mask) = life_and_mask(wal.disk(), &recycled);
    assert_eq!(life, 1);
    assert_ne!(mask, 0);

    // Use up both spares and go on into new files; everything reads back, before and after
    // a crash, with nothing reported torn although earlier lives' bytes follow the records.
    append_up_to(&mut wal, 120);
    assert!(spares(&wal).is_empty());
    assert_eq!(all_entries(&wal), entries(24..=120, 2));
    let (wal, report) = crash_and_reopen(wal);
    assert_eq!(report.torn_tail, None);
    assert_eq!(all_entries(&wal), entries(24..=120, 2));

    // Compactions that make spares of recycled files (every compacted file is kept): their
    // next life has the next number.
    let options = WalOptions {
        spare_segments: 64,
        ..small_segments()
    };
    let (mut wal, _) = open(wal.into_disk(), options);
    let mut lives = Vec::new();
    for last in (140..=400).step_by(20) {
        wal.compact_to(LogIndex(last - 25), Term(2)).unwrap();
        append_up_to(&mut wal, last);
        lives.extend(
            wal.segment_paths()
                .iter()
                .map(|path| life_and_mask(wal.disk(), path).0),
        );
    }
    assert!(lives.contains(&2), "{lives:?}");
    let (wal, report) = crash_and_reopen(wal);
    assert_eq!(report.torn_tail, None);
    assert_eq!(all_entries(&wal), entries(376..=400, 2));
}

#[test]
fn without_spares_compacted_segments_are_deleted() {
    let options = WalOptions {
        spare_segments: 0,
        ..small_segments()
    };
    let (mut wal, _) = open(MemDisk::new(), options);
    append_up_to(&mut wal, 40);
    wal.compact_to(LogIndex(23), Term(2)).unwrap();
    assert!(spares(&wal).is_empty());
    // Spares left from a run that kept them are removed when the log opens without.
    let (mut kept, _) = crash_and_reopen(compacted());
    assert_eq!(spares(&kept).len(), DEFAULT_SPARE_SEGMENTS);
    kept.append_batch(&[], None).unwrap();
    let disk = kept.into_disk();
    let (wal, _) = open(disk, options);
    assert!(spares(&wal).is_empty());
}

#[test]
fn a_crash_mid_batch_in_a_recycled_segment_keeps_every_synced_batch() {
    for keep_permille in [0, 1, 300, 500, 999] {
        let mut wal = compacted();
        append_up_to(&mut wal, 45);
        let recycled = recycled_segment(&wal);
        assert_eq!(wal.segment_paths().last(), Some(&recycled));

        // The final batch, two entries, is written but its sync fails; the crash keeps part.
        wal.disk_mut().set_syncs_fail(true);
        assert!(wal.append_batch(&entries(46..=47, 2), None).is_err());
        let options = *wal.options();
        let mut disk = wal.into_disk();
        disk.set_syncs_fail(false);
        // Of the batch, that is: its seal follows it in the same write.
        disk.crash_tearing(|_, unsynced| {
            unsynced.saturating_sub(record::SEAL_BYTES as u64) * keep_permille / 1000
        });
        let (mut wal, report) = open(disk, options);
        assert_eq!(
            all_entries(&wal),
            entries(24..=45, 2),
            "keep {keep_permille}‰"
        );
        if let Some(torn) = &report.torn_tail {
            assert_eq!(torn.file, recycled, "keep {keep_permille}‰");
        }
        if keep_permille == 999 {
            // The batch's first record reached the disk whole: this life's, so it is cut
            // (with the earlier life's bytes after it), not left to be found after damage.
            let torn = report.torn_tail.as_ref().expect("a torn tail is cut");
            assert_eq!(torn.file, recycled);
            // Cut right after the last synced batch's seal.
            assert_eq!(wal.disk().len(&recycled).unwrap(), torn.offset);
            let (_, mask) = life_and_mask(wal.disk(), &recycled);
            let bytes = wal.disk().read_all(&recycled).unwrap();
            let seal_at = torn.offset as usize - record::SEAL_BYTES;
            assert_eq!(bytes[seal_at..], record::batch_seal(mask)[..]);
        }

        // The log goes on over what the crash left, and reads back after another one.
        append_up_to(&mut wal, 60);
        let (wal, report) = crash_and_reopen(wal);
        assert_eq!(report.torn_tail, None, "keep {keep_permille}‰");
        assert_eq!(
            all_entries(&wal),
            entries(24..=60, 2),
            "keep {keep_permille}‰"
        );
    }
}

#[test]
fn damage_to_a_synced_batch_of_a_recycled_segment_is_refused() {
    let mut wal = compacted();
    append_up_to(&mut wal, 60);
    let recycled = recycled_segment(&wal);
    let records = records_of(wal.disk(), &recycled);
    assert!(records.len() >= 3, "a header and batches after it");
    // A bit flip in the first entry's record, with synced batches after it: what follows
    // the damage verifies under the file's mask, so it is not an earlier life's bytes.
    let damaged_at = records[1].0;
    let opened = open_after_flip(wal, &recycled, damaged_at + 12);
    let problem = refusal(opened, &recycled, damaged_at, "damage in a synced batch");
    assert!(matches!(problem, Corruption::Record(_)), "{problem:?}");
}

#[test]
fn a_spare_whose_header_a_crash_tore_starts_over_as_a_new_file() {
    let wal = compacted();
    let options = *wal.options();
    let mut disk = wal.into_disk();
    // Both spares' headers are garbage, as a crash while one was being written over leaves.
    for name in disk.list(&dir()).unwrap() {
        if name.starts_with("spare-") {
            let file = dir().join(&name);
            disk.write_at(&file, 0, &[0xA5; 20]).unwrap();
            disk.sync(&file).unwrap();
        }
    }
    let (mut wal, _) = open(disk, options);
    append_up_to(&mut wal, 120);
    for path in wal.segment_paths() {
        let (life, _) = life_and_mask(wal.disk(), &path);
        assert!(life <= 1, "{}: life {life}", path.display());
    }
    let (wal, report) = crash_and_reopen(wal);
    assert_eq!(report.torn_tail, None);
    assert_eq!(all_entries(&wal), entries(24..=120, 2));
}

#[test]
fn files_recycled_again_and_again_read_back_after_every_crash() {
    // Many lives of each file (every compacted file is kept): each crash and reopening reads
    // this life's records and none of the earlier lives' that follow them.
    let mut wal = compacted_with(WalOptions {
        spare_segments: 64,
        ..small_segments()
    });
    let mut masks = Vec::new();
    for round in 0..12 {
        let last = wal.last_index().0;
        append_up_to(&mut wal, last + 30);
        let last = wal.last_index().0;
        for path in wal.segment_paths() {
            let (life, mask) = life_and_mask(wal.disk(), &path);
            if life > 0 && !masks.contains(&(path.clone(), life, mask)) {
                masks.push((path, life, mask));
            }
        }
        wal.compact_to(LogIndex(last - 5), Term(2)).unwrap();
        let (reopened, report) = crash_and_reopen(wal);
        assert_eq!(report.torn_tail, None, "round {round}");
        assert_eq!(
            all_entries(&reopened),
            entries(last - 4..=last, 2),
            "round {round}"
        );
        wal = reopened;
    }
    assert!(masks.iter().any(|&(_, life, _)| life >= 3), "{masks:?}");
    let first = wal.first_index().0;
    let last = wal.last_index().0;
    assert_eq!(all_entries(&wal), entries(first..=last, 2));
}

#[test]
fn any_record_after_finds_this_lifes_record_among_an_earlier_lifes() {
    let mut earlier = Vec::new();
    for index in 1..=20 {
        record::encode_entry(&entry(index, 1), index % 3 == 0, &mut earlier).unwrap();
    }
    let (old_mask, new_mask) = (0x0bad_cafe_1234_5678, 0x0dec_afba_9abc_def0);
    record::mask_frames(&mut earlier, old_mask);
    assert!(!record::any_record_after(&earlier, 0, new_mask));
    assert!(record::any_record_after(&earlier, 0, old_mask));

    let mut with_one = earlier.clone();
    let mut this_life = Vec::new();
    record::encode_entry(&entry(21, 1), true, &mut this_life).unwrap();
    record::mask_frames(&mut this_life, new_mask);
    with_one.extend_from_slice(&this_life);
    assert!(record::any_record_after(&with_one, 0, new_mask));
    assert!(record::decode(&this_life, new_mask).is_ok());
    assert!(record::decode(&this_life, old_mask).is_err());
}

#[test]
fn damage_to_the_end_of_a_recycled_segment_the_log_moved_on_from_is_refused() {
    let mut wal = compacted();
    let recycled = moved_on_from_recycled(&mut wal);
    // Its final batch, flipped: nothing of this life verifies after it (it is the end of the
    // file's records), but the log moved on from the file only once it held its size.
    let (final_batch, _) = *records_of(wal.disk(), &recycled).last().unwrap();
    let options = *wal.options();
    let opened = open_after_flip(wal, &recycled, final_batch + 12);
    let problem = refusal(opened, &recycled, final_batch, "a lost final batch");
    assert_eq!(
        problem,
        Corruption::EndsBeforeItsSize {
            end: final_batch,
            size: options.max_segment_bytes
        }
    );
}

#[test]
fn a_crash_at_any_step_of_writing_over_a_spare_keeps_every_acknowledged_batch() {
    let mut recycled_seen = 0;
    // The syncs at which writing over a spare failed (its header's, its batch's, the rename's
    // directory sync): each must be among those tried.
    let mut failed_in_recycling = std::collections::BTreeSet::new();
    for fail_after in 0..16 {
        for keep_permille in [0, 500, 1000] {
            let mut wal = compacted();
            wal.disk_mut().fail_syncs_after(fail_after);
            // One entry a batch until a sync fails: the batches before were acknowledged.
            let mut acknowledged = wal.last_index().0;
            loop {
                let spares = wal.segment_files().1;
                let next = acknowledged + 1;
                if wal.append_batch(&entries(next..=next, 2), None).is_err() {
                    if wal.segment_files().1 < spares {
                        failed_in_recycling.insert(fail_after);
                    }
                    break;
                }
                acknowledged = next;
            }
            let options = *wal.options();
            let mut disk = wal.into_disk();
            disk.set_syncs_fail(false);
            disk.crash_tearing(|_, unsynced| unsynced * keep_permille / 1000);
            let (mut wal, report) = open(disk, options);
            let context = format!("sync {fail_after} fails, crash keeps {keep_permille}‰");
            let recovered = wal.last_index().0;
            // The failed batch may have reached the disk whole; nothing acknowledged is lost.
            assert!(
                recovered == acknowledged || recovered == acknowledged + 1,
                "{context}: {recovered} recovered, {acknowledged} acknowledged"
            );
            assert_eq!(all_entries(&wal), entries(24..=recovered, 2), "{context}");
            recycled_seen += report.segments_recycled;

            // The log goes on over whatever the crash left, and reads back after another.
            append_up_to(&mut wal, recovered + 30);
            let (wal, report) = crash_and_reopen(wal);
            assert_eq!(report.torn_tail, None, "{context}");
            assert_eq!(
                all_entries(&wal),
                entries(24..=recovered + 30, 2),
                "{context}"
            );
        }
    }
    assert!(
        recycled_seen > 0,
        "some crashes came after a spare was written over"
    );
    assert!(
        failed_in_recycling.len() >= 6,
        "every sync of writing over each of two spares failed once: {failed_in_recycling:?}"
    );
}

#[test]
fn a_compaction_whose_directory_sync_failed_is_made_durable_before_a_spare_is_written_over() {
    for fail_after in 0..8 {
        let (mut wal, _) = open(MemDisk::new(), small_segments());
        append_up_to(&mut wal, 40);
        // How many syncs the compaction makes, on a copy: the last is the directory sync
        // after the renames, and it is the one that fails.
        let syncs = |disk: &MemDisk| disk.sync_count() + disk.dir_sync_count();
        let (mut probe, _) = open(wal.disk().clone(), *wal.options());
        let before = syncs(probe.disk());
        probe.compact_to(LogIndex(23), Term(2)).unwrap();
        let compaction_syncs = syncs(probe.disk()) - before;
        wal.disk_mut().fail_syncs_after(compaction_syncs - 1);
        assert!(wal.compact_to(LogIndex(23), Term(2)).is_err());
        // Reopened without a crash: the renames are there, not yet durable.
        let options = *wal.options();
        let mut disk = wal.into_disk();
        disk.set_syncs_fail(false);
        let (mut wal, _) = open(disk, options);
        assert_eq!(spares(&wal).len(), DEFAULT_SPARE_SEGMENTS);
        // A crash at any step of what follows, spares written over included, opens again.
        wal.disk_mut().fail_syncs_after(fail_after);
        let mut acknowledged = wal.last_index().0;
        while wal
            .append_batch(&entries(acknowledged + 1..=acknowledged + 1, 2), None)
            .is_ok()
        {
            acknowledged += 1;
        }
        let mut disk = wal.into_disk();
        disk.set_syncs_fail(false);
        disk.crash();
        let (wal, _) = open(disk, options);
        let context = format!("sync {fail_after} fails");
        assert!(wal.last_index().0 >= acknowledged, "{context}");
        assert_eq!(
            all_entries(&wal),
            entries(24..=wal.last_index().0, 2),
            "{context}"
        );
    }
}

#[test]
fn a_lost_final_batch_that_replaced_an_entry_of_a_recycled_segment_is_refused() {
    // The final batch of a recycled segment replaces its last entry (same index, a newer
    // term), then the log moves on. Lost to damage, it would leave the older entry in its
    // place, and the next segment's header (the next index, the same hard state) agrees with
    // that: only the segment ending before its size shows that something is missing.
    let mut wal = compacted();
    let mut term = 2;
    // Each step appends an entry, then writes it again with a newer term, one batch each.
    let mut steps = 0;
    let (recycled, final_batch) = loop {
        steps += 1;
        assert!(
            steps < 1000,
            "a recycled segment ended with a replacing batch"
        );
        let segments = wal.segment_paths().len();
        let next = wal.last_index().0 + 1;
        for _ in 0..2 {
            term += 1;
            wal.append_batch(&entries(next..=next, term), None).unwrap();
        }
        if wal.segment_paths().len() == segments {
            continue;
        }
        let paths = wal.segment_paths();
        let before = paths[paths.len() - 2].clone();
        let records = records_of(wal.disk(), &before);
        let [.., (_, Record::Entry(written)), (at, Record::Entry(again))] = records.as_slice()
        else {
            continue;
        };
        if again.index == written.index && life_and_mask(wal.disk(), &before).0 > 0 {
            break (before, *at);
        }
    };
    let opened = open_after_flip(wal, &recycled, final_batch + 12);
    let problem = refusal(opened, &recycled, final_batch, "a lost batch");
    assert!(
        matches!(problem, Corruption::EndsBeforeItsSize { end, .. } if end == final_batch),
        "{problem:?}"
    );
}

#[test]
fn a_smaller_segment_size_on_a_later_run_leaves_a_recycled_segment_to_fill_to_its_own() {
    let wal = compacted();
    let options = *wal.options();
    let (mut wal, _) = open(wal.into_disk(), options);
    append_up_to(&mut wal, 45);
    assert!(life_and_mask(wal.disk(), wal.segment_paths().last().unwrap()).0 > 0);
    // Opened with segments a quarter the size, the recycled one still fills to its header's
    // size before the log moves on, so it never reads as one that lost its end.
    let smaller = WalOptions {
        max_segment_bytes: options.max_segment_bytes / 4,
        ..options
    };
    let mut disk = wal.into_disk();
    disk.crash();
    let (mut wal, _) = open(disk, smaller);
    append_up_to(&mut wal, 120);
    let (wal, report) = crash_and_reopen(wal);
    assert_eq!(report.torn_tail, None);
    assert_eq!(all_entries(&wal), entries(24..=120, 2));
}

#[test]
fn a_record_of_the_life_that_verifies_but_does_not_read_is_refused() {
    // A frame of an unknown type, its length and checksum right under the life's mask, after
    // the last batch's seal or in its place: what a writer bug or a newer build could leave,
    // never a torn write.
    for in_place_of_the_seal in [false, true] {
        let mut wal = compacted();
        append_up_to(&mut wal, 45);
        let recycled = recycled_segment(&wal);
        assert_eq!(wal.segment_paths().last(), Some(&recycled));
        let (_, mask) = life_and_mask(wal.disk(), &recycled);
        let records = records_of(wal.disk(), &recycled);
        assert!(records.len() >= 2, "a header and a batch");
        let bytes = wal.disk().read_all(&recycled).unwrap();
        let seal_at = records_end(wal.disk(), &recycled) as usize;
        assert_eq!(
            bytes[seal_at..seal_at + record::SEAL_BYTES],
            record::batch_seal(mask)
        );
        let at = if in_place_of_the_seal {
            seal_at
        } else {
            seal_at + record::SEAL_BYTES
        };
        let mut frame = Vec::new();
        record::encode(&Record::HardState(hard_state(2, None, 0)), true, &mut frame).unwrap();
        frame[8] = 0x80 | 9;
        let crc = crc32c::crc32c(&frame[8..]);
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        record::mask_frames(&mut frame, mask);
        let options = *wal.options();
        let mut disk = wal.into_disk();
        disk.write_at(&recycled, at as u64, &frame).unwrap();
        disk.sync(&recycled).unwrap();
        let context = format!("in place of the seal: {in_place_of_the_seal}");
        let problem = refusal(
            Wal::open(disk, dir(), options),
            &recycled,
            at as u64,
            &context,
        );
        if in_place_of_the_seal {
            assert_eq!(problem, Corruption::MissingSeal);
        } else {
            assert!(
                matches!(
                    problem,
                    Corruption::Record(record::RecordError::UnknownType { .. })
                ),
                "{problem:?}"
            );
        }
    }
}

#[test]
fn a_spare_whose_header_claims_its_last_lives_starts_over_as_a_new_file() {
    // A header that verifies but says the file has no lives left (a damaged or hostile disk):
    // the life count cannot overflow; the spare is emptied and starts again at life 1.
    let wal = compacted();
    let options = *wal.options();
    let mut disk = wal.into_disk();
    for name in disk.list(&dir()).unwrap() {
        if name.starts_with("spare-") {
            let mut header = Vec::new();
            record::encode(
                &Record::SegmentHeader(record::SegmentHeader {
                    cluster_id: CLUSTER,
                    first_index: LogIndex(1),
                    log_start: record::LogStart::default(),
                    hard_state: hard_state(0, None, 0),
                    life: u32::MAX,
                    mask: 0xffff_ffff_ffff_ffff,
                    max_segment_bytes: u64::MAX,
                    sealed: true,
                }),
                true,
                &mut header,
            )
            .unwrap();
            let file = dir().join(&name);
            disk.write_at(&file, 0, &header).unwrap();
            disk.sync(&file).unwrap();
        }
    }
    let (mut wal, _) = open(disk, options);
    append_up_to(&mut wal, 120);
    let lives: Vec<u32> = wal
        .segment_paths()
        .iter()
        .map(|path| life_and_mask(wal.disk(), path).0)
        .collect();
    assert!(lives.contains(&1), "{lives:?}");
    assert!(lives.iter().all(|&life| life <= 1), "{lives:?}");
    let (wal, report) = crash_and_reopen(wal);
    assert_eq!(report.torn_tail, None);
    assert_eq!(all_entries(&wal), entries(24..=120, 2));
}

/// Where the records of `file` end: after its last record, an entry.
fn records_end(disk: &MemDisk, file: &Path) -> u64 {
    match records_of(disk, file).last() {
        Some((at, Record::Entry(entry))) => at + record::entry_record_bytes(entry.data.len()),
        other => panic!("{} ends with {other:?}", file.display()),
    }
}

/// Appends one entry a batch until the last segment is a recycled one; returns it and where
/// its final batch (one entry record) begins.
fn last_segment_recycled() -> (Wal<MemDisk>, PathBuf, u64) {
    let mut wal = compacted();
    loop {
        let last = wal.last_index().0;
        append_up_to(&mut wal, last + 1);
        let recycled = wal.segment_paths().last().unwrap().clone();
        let records = records_of(wal.disk(), &recycled);
        if life_and_mask(wal.disk(), &recycled).0 > 0 && records.len() > 2 {
            let (final_batch, _) = *records.last().unwrap();
            return (wal, recycled, final_batch);
        }
    }
}

#[test]
fn a_flip_in_the_final_batch_of_the_last_recycled_segment_is_refused_by_its_seal() {
    // The final batch was synced whole, then a bit of its only record flipped. Nothing of
    // this life verifies after it, so without the seal it would read as a torn write and be
    // cut; the seal after it shows the write completed, so the damage is refused.
    let (wal, recycled, final_batch) = last_segment_recycled();
    let end = records_end(wal.disk(), &recycled);
    let opened = open_after_flip(wal, &recycled, final_batch + 12);
    let problem = refusal(opened, &recycled, final_batch, "a synced batch");
    assert_eq!(problem, Corruption::SealAfterDamage { seal_at: end });
}

#[test]
fn a_crash_that_tears_only_the_seal_keeps_the_batch_and_seals_it_again() {
    let (mut wal, recycled, _) = last_segment_recycled();
    let size = wal.options().max_segment_bytes;
    // Up to the batch that brings the segment to its size: the log moves on after it.
    let next = loop {
        let next = wal.last_index().0 + 1;
        let written = records_end(wal.disk(), &recycled) + record::SEAL_BYTES as u64;
        let batch = record::entry_record_bytes(entries(next..=next, 2)[0].data.len());
        if written + batch + record::SEAL_BYTES as u64 >= size {
            break next;
        }
        append_up_to(&mut wal, next);
        assert_eq!(wal.segment_paths().last(), Some(&recycled));
    };
    // That batch is written whole; of its seal, the crash keeps five bytes of eight.
    wal.disk_mut().set_syncs_fail(true);
    assert!(wal.append_batch(&entries(next..=next, 2), None).is_err());
    let options = *wal.options();
    let mut disk = wal.into_disk();
    disk.set_syncs_fail(false);
    disk.crash_tearing(|_, unsynced| unsynced.saturating_sub(3));
    let (wal, report) = open(disk, options);
    assert_eq!(report.torn_tail, None);
    assert_eq!(report.resealed.as_ref(), Some(&recycled));
    assert_eq!(wal.last_index(), LogIndex(next), "the whole batch is kept");

    // Sealed again, durably: it is there after another crash.
    let (mut wal, _) = crash_and_reopen(wal);
    let end = records_end(wal.disk(), &recycled) as usize;
    let bytes = wal.disk().read_all(&recycled).unwrap();
    let (_, mask) = life_and_mask(wal.disk(), &recycled);
    assert_eq!(
        bytes[end..end + record::SEAL_BYTES],
        record::batch_seal(mask)
    );

    // The next batch starts a new segment: the log moved on from this one without writing to
    // it again, and it opens as such (refused with `MissingSeal` had it not been sealed).
    let segments = wal.segment_paths().len();
    append_up_to(&mut wal, next + 1);
    assert_eq!(wal.segment_paths().len(), segments + 1);
    let (wal, report) = crash_and_reopen(wal);
    assert_eq!(report.torn_tail, None);
    assert_eq!(all_entries(&wal), entries(24..=next + 1, 2));
}

#[test]
fn a_recycled_segment_the_log_moved_on_from_must_end_with_its_seal() {
    // Every record verifies; after the last one, the seal is damaged, or the file was cut
    // right there.
    for cut in [false, true] {
        let mut wal = compacted();
        let recycled = moved_on_from_recycled(&mut wal);
        let end = records_end(wal.disk(), &recycled);
        let options = *wal.options();
        let mut disk = wal.into_disk();
        if cut {
            disk.truncate(&recycled, end).unwrap();
            disk.sync(&recycled).unwrap();
        } else {
            disk.flip_bit(&recycled, end + 2).unwrap();
        }
        let opened = Wal::open(disk, dir(), options);
        let context = format!("a damaged end (cut: {cut})");
        let problem = refusal(opened, &recycled, end, &context);
        assert_eq!(problem, Corruption::MissingSeal);
    }
}

#[test]
fn a_recycled_segment_of_version_2_is_read_and_continued_without_seals() {
    // A build before seals wrote version 2: no seal after its batches. The last segment is
    // rewritten so (its records again, one batch each as they were written, then an earlier
    // life's bytes); this build reads it, continues it without seals and moves on from it.
    let (wal, recycled, _) = last_segment_recycled();
    let last = wal.last_index().0;
    let options = *wal.options();
    let file_len = wal.disk().len(&recycled).unwrap();
    let records = records_of(wal.disk(), &recycled);
    let mut bytes = Vec::new();
    let mut mask = 0;
    for (_, record) in &records {
        let mut frame = Vec::new();
        let record = match record {
            Record::SegmentHeader(header) => {
                assert!(header.sealed);
                mask = header.mask;
                Record::SegmentHeader(record::SegmentHeader {
                    sealed: false,
                    ..*header
                })
            }
            other => other.clone(),
        };
        record::encode(&record, true, &mut frame).unwrap();
        if !bytes.is_empty() {
            record::mask_frames(&mut frame, mask);
        }
        bytes.extend_from_slice(&frame);
    }
    bytes.resize(file_len as usize, 0xa5);
    let mut disk = wal.into_disk();
    disk.write_at(&recycled, 0, &bytes).unwrap();
    disk.sync(&recycled).unwrap();

    let (mut wal, report) = open(disk, options);
    assert_eq!(report.torn_tail, None);
    assert_eq!(all_entries(&wal), entries(24..=last, 2));
    let segments = wal.segment_paths().len();
    while wal.segment_paths().len() < segments + 2 {
        let next = wal.last_index().0 + 1;
        append_up_to(&mut wal, next);
    }
    let last = wal.last_index().0;
    let (wal, report) = crash_and_reopen(wal);
    assert_eq!(report.torn_tail, None);
    assert_eq!(all_entries(&wal), entries(24..=last, 2));
    let Record::SegmentHeader(header) = records_of(wal.disk(), &recycled)[0].1 else {
        panic!("a header");
    };
    assert!(!header.sealed, "still version 2");
}

#[test]
fn a_flip_in_the_last_synced_batch_under_a_torn_next_write_is_refused() {
    // The last synced batch keeps its seal when the next write is torn (that write goes after
    // the seal, never over it): a flip in the synced batch is still told from a torn write.
    let mut sealed_after_seen = 0;
    for keep in [1, 8, 20, 40] {
        let (mut wal, recycled, final_batch) = last_segment_recycled();
        let end = records_end(wal.disk(), &recycled);
        let next = wal.last_index().0 + 1;
        wal.disk_mut().set_syncs_fail(true);
        assert!(wal.append_batch(&entries(next..=next, 2), None).is_err());
        let options = *wal.options();
        let mut disk = wal.into_disk();
        disk.set_syncs_fail(false);
        disk.crash_tearing(|_, _| keep);
        disk.flip_bit(&recycled, final_batch + 12).unwrap();
        // Refused: by the seal after it, or (when the crash kept the next record whole) by
        // that record.
        let opened = Wal::open(disk, dir(), options);
        match refusal(opened, &recycled, final_batch, &format!("keep {keep}")) {
            Corruption::SealAfterDamage { seal_at } => {
                assert_eq!(seal_at, end, "keep {keep}");
                sealed_after_seen += 1;
            }
            Corruption::Record(_) => {}
            other => panic!("keep {keep}: {other:?}"),
        }
    }
    assert!(
        sealed_after_seen >= 3,
        "the seal told {sealed_after_seen} of 4"
    );
}

#[test]
fn a_burst_across_a_seal_into_the_final_batch_is_refused() {
    // Two synced batches at the end of the last segment; damage flips the last byte of the
    // first one's seal and the length of the final one's record. The first batch reads whole
    // without its seal, and nothing after it verifies, as after a torn seal; but the final
    // batch's seal is there, so a write completed after it: refused, not sealed over.
    let (mut wal, recycled, _) = last_segment_recycled();
    let first_seal = records_end(wal.disk(), &recycled);
    let next = wal.last_index().0 + 1;
    append_up_to(&mut wal, next);
    assert_eq!(
        wal.segment_paths().last(),
        Some(&recycled),
        "the same segment"
    );
    let final_batch = first_seal + record::SEAL_BYTES as u64;
    let final_seal = records_end(wal.disk(), &recycled);
    let options = *wal.options();
    let mut disk = wal.into_disk();
    disk.flip_bit(&recycled, first_seal + 7).unwrap();
    disk.flip_bit(&recycled, final_batch).unwrap();
    let problem = refusal(
        Wal::open(disk, dir(), options),
        &recycled,
        first_seal,
        "a burst",
    );
    assert_eq!(
        problem,
        Corruption::SealAfterDamage {
            seal_at: final_seal
        }
    );
}

#[test]
fn a_hostile_tail_after_the_last_seal_is_refused_or_passed_over_and_never_read_as_records() {
    // A damaged or hostile disk writes after the last sealed batch of a recycled last segment.
    // 4 MiB of noise is an earlier life's bytes to recovery (every entry kept, nothing cut, in
    // one pass), and so is noise holding another life's seal, or this life's seal cut short
    // at the end of the file. Noise holding this life's seal whole, anywhere from the first
    // byte after the last seal to the last bytes of the file, is a refusal naming it.
    #[derive(Clone, Copy, Debug)]
    enum Planted {
        Nothing,
        ThisLifesSeal { at: usize },
        EarlierLifesSeal,
        LaterLifesSeal,
        ThisLifesSealCutAtTheEnd,
    }
    const NOISE_BYTES: usize = 4 << 20;
    for planted in [
        Planted::Nothing,
        Planted::ThisLifesSeal { at: 0 },
        Planted::ThisLifesSeal { at: 1000 },
        Planted::ThisLifesSeal {
            at: NOISE_BYTES - record::SEAL_BYTES,
        },
        Planted::EarlierLifesSeal,
        Planted::LaterLifesSeal,
        Planted::ThisLifesSealCutAtTheEnd,
    ] {
        let (wal, recycled, _) = last_segment_recycled();
        let last = wal.last_index().0;
        let end = records_end(wal.disk(), &recycled) + record::SEAL_BYTES as u64;
        let (life, mask) = life_and_mask(wal.disk(), &recycled);
        let secret = record::mask_secret(life, mask);
        let seal_of = |life| record::batch_seal(record::life_mask(secret, life));
        let options = *wal.options();
        let mut disk = wal.into_disk();
        let mut noise: Vec<u8> = (0..NOISE_BYTES as u32)
            .map(|k| (k.wrapping_mul(0x9e37_79b9) >> 13) as u8)
            .collect();
        let cut = record::SEAL_BYTES - 1;
        let (at, bytes): (usize, &[u8]) = match planted {
            Planted::Nothing => (0, &[]),
            Planted::ThisLifesSeal { at } => (at, &seal_of(life)),
            Planted::EarlierLifesSeal => (1000, &seal_of(life - 1)),
            Planted::LaterLifesSeal => (1000, &seal_of(life + 1)),
            Planted::ThisLifesSealCutAtTheEnd => (NOISE_BYTES - cut, &seal_of(life)[..cut]),
        };
        noise[at..at + bytes.len()].copy_from_slice(bytes);
        disk.write_at(&recycled, end, &noise).unwrap();
        disk.sync(&recycled).unwrap();
        let context = format!("planted: {planted:?}");
        if let Planted::ThisLifesSeal { at } = planted {
            let opened = Wal::open(disk, dir(), options);
            let problem = refusal(opened, &recycled, end, &context);
            assert_eq!(
                problem,
                Corruption::SealAfterDamage {
                    seal_at: end + at as u64
                },
                "{context}"
            );
        } else {
            let (wal, report) = open(disk, options);
            assert_eq!(report.torn_tail, None, "{context}");
            assert_eq!(report.resealed, None, "{context}");
            assert_eq!(all_entries(&wal), entries(24..=last, 2), "{context}");
        }
    }
}
