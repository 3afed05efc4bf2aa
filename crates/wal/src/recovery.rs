//! Recovery: rebuilding the log from its segments, and repairing a torn tail.
//!
//! Segments are replayed in file-name order, records in file order, as the history they are:
//! - an entry record at index `i` first drops every entry at `i` or after, then appends itself
//!   (this is how a replaced suffix is recorded: it is simply written again);
//! - a hard state record replaces the hard state;
//! - a log start record moves the start of the log forward (compaction);
//! - each segment header repeats the log start and hard state of the moment it was created,
//!   and must agree with what the segments before it replayed to.
//!
//! Only a crash's damage is repaired: the records after the last complete write batch of the
//! **last** segment, when they are what a crash can leave there — a prefix of the final
//! batch's bytes followed by zeros (in a recycled segment, by an earlier life's bytes, with
//! no seal of this life after them) — and a sealed segment's final batch whose seal a crash
//! tore (the batch whole: its seal is written again). Everything else that does not decode
//! or does not fit refuses to start, naming the file and the offset: garbage (even at offset
//! 0 of the only segment), a segment missing before the last, a snapshot with no segment at
//! all.
//!
//! What recovery cannot see: a **last** segment lost whole (or zeroed, or cut at a batch
//! boundary) leaves a log that looks like one written up to the segment before it, with that
//! segment's older hard state. Nothing on disk records that a later segment existed (its
//! header is the only record of its creation), so the log alone cannot tell; the same for a
//! data directory whose every segment is gone — it reads as a new log (`created`) unless a
//! snapshot file shows the node has run, or the caller, which knows whether the node has run
//! before, says so with `WalOptions::expect_existing_log`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skiff_codec::CodecError;
use skiff_raft::{HardState, LogIndex};

use crate::disk::{Disk, WholeFile};
use crate::entry_index::{EntryIndex, Slot};
use crate::error::{Corruption, WalError};
use crate::record::{self, Decoded, Record, SegmentHeader};
use crate::segment::{self, Segment};

/// What opening the log found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The segment files read, in order.
    pub segments_read: Vec<PathBuf>,
    /// How many of them were recycled files (written over an earlier segment's bytes).
    pub segments_recycled: usize,
    /// How many of them were checked on a helper thread, at the same time as the one before
    /// (segments of 4 MiB and more are checked two at a time).
    pub segments_checked_apart: usize,
    /// The torn tail cut off the last segment, if there was one.
    pub torn_tail: Option<TornTail>,
    /// The last segment, if a crash left its final batch whole but without its seal (a
    /// sealed recycled segment): the seal was written again, and synced.
    pub resealed: Option<PathBuf>,
    /// No segment was found (or the only one was torn away): a new, empty log was created.
    /// Normal on a node's first start; on a node that has run before it means its log was
    /// lost (its term and vote with it), and the node must not start.
    pub created: bool,
    /// The current snapshot file, if there is one.
    pub snapshot_file: Option<PathBuf>,
    /// Snapshot files removed: torn or unfinished temp files, staged data of an incoming
    /// snapshot, and snapshots superseded by a newer one.
    pub snapshot_files_removed: Vec<PathBuf>,
    /// The log did not hold the current snapshot's last entry (a crash interrupted the
    /// installation of a received snapshot): it was compacted to the snapshot, dropping the
    /// entries the snapshot replaces (Raft §7).
    pub finished_snapshot_install: bool,
    /// A new incarnation was written: the log is new, or it was written before directories
    /// had incarnations ([`crate::incarnation`]).
    pub incarnation_created: bool,
}

/// An incomplete write batch at the end of the last segment, left by a crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub file: PathBuf,
    /// Where the file was cut: the end of its last complete write batch.
    pub offset: u64,
    /// How many bytes were dropped.
    pub bytes_dropped: u64,
    /// Whether the file held no complete batch at all (not even its header) and was removed.
    pub file_removed: bool,
}

/// The log as recovery rebuilt it.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Every segment that remains, by first index.
    pub segments: BTreeMap<LogIndex, Segment>,
    /// Where each live entry is.
    pub index: EntryIndex,
    /// The last durable hard state.
    pub hard_state: HardState,
    /// What recovery did.
    pub report: RecoveryReport,
}

/// How far recovery has read, reported after each segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryProgress {
    /// Segments read so far.
    pub segments_read: usize,
    /// Segments in the directory.
    pub segments_total: usize,
    /// Bytes read so far.
    pub bytes_read: u64,
}

/// Reads every segment in `dir`, checks it, cuts a torn tail, and rebuilds the index.
/// `snapshot`: the current snapshot file, if there is one (then a log must be there too);
/// `expect_existing_log`: the caller knows the node has written its log before.
pub(crate) fn recover<D: Disk>(
    disk: &mut D,
    dir: &Path,
    cluster_id: u64,
    snapshot: Option<&Path>,
    expect_existing_log: bool,
    progress: &mut dyn FnMut(RecoveryProgress),
) -> Result<Recovered, WalError> {
    disk.create_dir_all(dir)?;
    let names = segment_names(disk, dir)?;

    let mut report = RecoveryReport::default();
    let mut replay: Option<Replay> = None;
    let mut segments = BTreeMap::new();
    let mut bytes_read = 0;
    // Lists of decoded records, reused from segment to segment (at most two: one for a
    // helper's scan): a segment's list runs to megabytes, and one grown afresh for each would
    // be faulted in (and zeroed) page by page.
    let mut spare_lists = Vec::new();
    // The last segment, if a crash left its last complete batch without its seal: the file,
    // where the seal goes, and the mask.
    let mut reseal = None;
    // The next segment, read and being scanned on a helper thread while this one is.
    let mut ahead: Option<ScanAhead> = None;
    for (position, (first_index, name)) in names.iter().enumerate() {
        let file = dir.join(name);
        let is_last = position + 1 == names.len();
        let Scanned { file_len, scan } = match ahead.take() {
            Some(ahead) => {
                report.segments_checked_apart += 1;
                ahead.join()
            }
            None => {
                let whole = disk.read_whole(&file)?;
                // A large next segment is scanned at the same time, on a helper thread.
                if let Some((_, next_name)) = names.get(position + 1) {
                    let next = dir.join(next_name);
                    let next_is_last = position + 2 == names.len();
                    ahead = ScanAhead::start(disk, &next, next_is_last, &mut spare_lists);
                    let hint = if ahead.is_some() { 2 } else { 1 };
                    if let Some((_, after)) = names.get(position + hint) {
                        disk.read_whole_ahead(&dir.join(after));
                    }
                }
                let records = spare_lists.pop().unwrap_or_default();
                scanned(&file, whole, is_last, records)
            }
        };
        report.segments_read.push(file.clone());
        bytes_read += file_len;
        progress(RecoveryProgress {
            segments_read: position + 1,
            segments_total: names.len(),
            bytes_read,
        });
        let scan = scan?;
        if scan.records.is_empty() && !is_last {
            return Err(corrupt(&file, 0, Corruption::NoSegmentHeader));
        }
        if scan.torn || scan.records.is_empty() {
            report.torn_tail = Some(torn_tail(&file, file_len, &scan));
        }
        if scan.records.is_empty() {
            // The last segment held no complete batch, not even its header (a crash right
            // after it was created): it is removed below.
            continue;
        }
        if scan.mask != 0 {
            report.segments_recycled += 1;
        }
        if scan.unsealed {
            // Only the last segment can be (a segment the log moved on from that is not
            // sealed is refused); it is sealed again below.
            reseal = Some((file.clone(), scan.kept_bytes, scan.mask));
        }
        let segment = kept_segment(&file, file_len, &scan);
        let mut all_records = scan.records;
        let mut records = all_records.drain(..);
        let header = segment_header(&file, *first_index, cluster_id, records.next())?;
        let state = continue_replay(&mut replay, &header, &file)?;
        for (offset, decoded) in records {
            state
                .apply(*first_index, offset, decoded)
                .map_err(|problem| corrupt(&file, offset, problem))?;
        }
        spare_lists.push(all_records);
        segments.insert(*first_index, segment);
    }

    let (index, hard_state) = replayed_log(replay, dir, snapshot, expect_existing_log)?;

    // Repair only once everything else checked out, so a refusal changes nothing on disk.
    if let Some(torn) = &report.torn_tail {
        cut_torn_tail(disk, dir, torn)?;
    }
    if let Some((file, offset, mask)) = reseal {
        disk.write_at(&file, offset, &record::batch_seal(mask))?;
        disk.sync(&file)?;
        report.resealed = Some(file);
    }
    Ok(Recovered {
        segments,
        index,
        hard_state,
        report,
    })
}

/// Segments at least this large are scanned two at a time, the second on a helper thread: a
/// 64 MiB segment's checksums take about 20 ms, a thread's start tens of microseconds. A
/// scan is a function of the bytes alone, so where it runs changes nothing in what recovery
/// finds (the simulator's small segments are all scanned here).
const SCAN_AHEAD_MIN_BYTES: usize = 4 << 20;

/// A segment's length and its scan.
struct Scanned {
    file_len: u64,
    scan: Result<Scan, WalError>,
}

/// Scans the segment `file`, read whole, into `records` (emptied first), and lets its bytes
/// go: before any repair changes the file, and on the thread that scanned them.
fn scanned(file: &Path, whole: WholeFile, is_last: bool, records: Vec<(u64, Decoded)>) -> Scanned {
    Scanned {
        file_len: whole.len() as u64,
        scan: scan_segment(file, &whole, is_last, records),
    }
}

/// A segment being scanned on a helper thread. Dropped unjoined (recovery refused to start
/// at an earlier segment), it waits for the helper, which holds the segment's bytes (a
/// mapping of the file), so that no thread outlives the recovery that started it.
struct ScanAhead(Option<std::thread::JoinHandle<Scanned>>);

impl Drop for ScanAhead {
    fn drop(&mut self) {
        if let Some(helper) = self.0.take() {
            let _ = helper.join();
        }
    }
}

impl ScanAhead {
    /// Reads `file` and starts scanning it on a helper thread, with a list from
    /// `spare_lists`; `None` if it is too small to be worth a thread, or cannot be read or
    /// scanned apart now: it is then read and scanned in its turn, and any error found then,
    /// after those of the segments before it.
    fn start<D: Disk>(
        disk: &D,
        file: &Path,
        is_last: bool,
        spare_lists: &mut Vec<Vec<(u64, Decoded)>>,
    ) -> Option<ScanAhead> {
        if disk.len(file).ok()? < SCAN_AHEAD_MIN_BYTES as u64 {
            return None;
        }
        let whole = disk.read_whole(file).ok()?;
        let file = file.to_path_buf();
        let records = spare_lists.pop().unwrap_or_default();
        let spawned = std::thread::Builder::new()
            .name("skiff-scan-segment".to_owned())
            .spawn(move || scanned(&file, whole, is_last, records));
        spawned.ok().map(|helper| ScanAhead(Some(helper)))
    }

    /// The scan, once the helper is done; a panic in it is this thread's.
    fn join(mut self) -> Scanned {
        let helper = self.0.take().expect("joined once");
        helper
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// The segment files in `dir` with the first index in each name, in log order.
fn segment_names<D: Disk>(disk: &D, dir: &Path) -> Result<Vec<(LogIndex, String)>, WalError> {
    let mut names: Vec<(LogIndex, String)> = disk
        .list(dir)?
        .into_iter()
        .filter_map(|name| Some((segment::parse_file_name(&name)?, name)))
        .collect();
    names.sort();
    Ok(names)
}

/// The corruption found in `file` at `offset`.
fn corrupt(file: &Path, offset: u64, problem: Corruption) -> WalError {
    WalError::Corrupt {
        file: file.to_path_buf(),
        offset,
        problem,
    }
}

/// The torn tail of the last segment, `file_len` bytes long, as its scan found it.
fn torn_tail(file: &Path, file_len: u64, scan: &Scan) -> TornTail {
    TornTail {
        file: file.to_path_buf(),
        offset: scan.kept_bytes,
        bytes_dropped: file_len - scan.kept_bytes,
        file_removed: scan.records.is_empty(),
    }
}

/// A segment as it stays after recovery: its complete batches, and the space written ahead
/// of the next ones unless a torn tail is cut (zeros written ahead go with it). A seal torn
/// off the last batch is written again ([`recover`]): the log goes on after it.
fn kept_segment(file: &Path, file_len: u64, scan: &Scan) -> Segment {
    let len_bytes = if scan.unsealed {
        scan.kept_bytes + record::SEAL_BYTES as u64
    } else {
        scan.kept_bytes
    };
    Segment {
        path: file.to_path_buf(),
        len_bytes,
        allocated_bytes: if scan.torn {
            scan.kept_bytes
        } else {
            file_len.max(len_bytes)
        },
        mask: scan.mask,
        max_segment_bytes: scan.size,
        sealed: scan.sealed,
    }
}

/// The header that opens a segment: the first record, of this cluster, for the first index
/// in the file's name.
fn segment_header(
    file: &Path,
    first_index: LogIndex,
    cluster_id: u64,
    first_record: Option<(u64, Decoded)>,
) -> Result<SegmentHeader, WalError> {
    let header = match first_record {
        Some((
            0,
            Decoded {
                record: Record::SegmentHeader(header),
                ..
            },
        )) => header,
        _ => return Err(corrupt(file, 0, Corruption::NoSegmentHeader)),
    };
    if header.cluster_id != cluster_id {
        return Err(WalError::WrongCluster {
            file: file.to_path_buf(),
            expected: cluster_id,
            found: header.cluster_id,
        });
    }
    if header.first_index != first_index {
        return Err(corrupt(
            file,
            0,
            Corruption::NameMismatch {
                in_name: first_index,
                in_header: header.first_index,
            },
        ));
    }
    Ok(header)
}

/// The replay a segment's records continue: started from the first segment's header, or
/// the one so far, which a later segment's header must follow on from and agree with.
fn continue_replay<'a>(
    replay: &'a mut Option<Replay>,
    header: &SegmentHeader,
    file: &Path,
) -> Result<&'a mut Replay, WalError> {
    match replay {
        None => {
            if header.first_index <= header.log_start.index {
                return Err(corrupt(
                    file,
                    0,
                    Corruption::HeaderDisagrees {
                        what: "first index",
                    },
                ));
            }
            Ok(replay.insert(Replay {
                index: EntryIndex::resuming(header.log_start, header.first_index.prev()),
                hard_state: header.hard_state,
                first_file: file.to_path_buf(),
            }))
        }
        Some(state) => {
            let expected = state.index.last_index().next();
            if header.first_index != expected {
                return Err(corrupt(
                    file,
                    0,
                    Corruption::MissingSegment {
                        expected,
                        found: header.first_index,
                    },
                ));
            }
            if header.log_start != state.index.start {
                return Err(corrupt(
                    file,
                    0,
                    Corruption::HeaderDisagrees { what: "log start" },
                ));
            }
            if header.hard_state != state.hard_state {
                return Err(corrupt(
                    file,
                    0,
                    Corruption::HeaderDisagrees { what: "hard state" },
                ));
            }
            Ok(state)
        }
    }
}

/// The index and hard state the replay ended with, or a new log's when there was no
/// segment at all — unless the node has run before, as a snapshot or the caller shows.
fn replayed_log(
    replay: Option<Replay>,
    dir: &Path,
    snapshot: Option<&Path>,
    expect_existing_log: bool,
) -> Result<(EntryIndex, HardState), WalError> {
    match replay {
        Some(state) => {
            let unknown = state.index.unknown_up_to();
            if unknown > state.index.start.index {
                return Err(WalError::Corrupt {
                    file: state.first_file,
                    offset: 0,
                    problem: Corruption::LostEntries {
                        from: state.index.first_index(),
                        to: unknown,
                    },
                });
            }
            Ok((state.index, state.hard_state))
        }
        None => {
            // Thesis §3.8: a node that has run may have voted; with no segment left its term
            // and vote are gone, and starting at term 0 with no vote could grant a second vote
            // in a term. A snapshot file shows that it has run, and so may its caller
            // (`WalOptions::expect_existing_log`).
            let evidence = snapshot.or(expect_existing_log.then_some(dir));
            if let Some(evidence) = evidence {
                return Err(WalError::Corrupt {
                    file: evidence.to_path_buf(),
                    offset: 0,
                    problem: Corruption::SegmentsMissing,
                });
            }
            Ok((EntryIndex::default(), HardState::default()))
        }
    }
}

/// Cuts a torn tail off the last segment, or removes the segment if it held no complete
/// batch, and makes the repair durable.
fn cut_torn_tail<D: Disk>(disk: &mut D, dir: &Path, torn: &TornTail) -> Result<(), WalError> {
    if torn.file_removed {
        disk.remove(&torn.file)?;
        disk.sync_dir(dir)?;
    } else {
        disk.truncate(&torn.file, torn.offset)?;
        disk.sync(&torn.file)?;
    }
    Ok(())
}

/// The state of the log part-way through the replay.
struct Replay {
    index: EntryIndex,
    hard_state: HardState,
    /// The first segment read, named if entries before it turn out to be missing.
    first_file: PathBuf,
}

impl Replay {
    fn apply(
        &mut self,
        segment: LogIndex,
        offset: u64,
        decoded: Decoded,
    ) -> Result<(), Corruption> {
        match decoded.record {
            Record::SegmentHeader(_) => return Err(Corruption::HeaderInTheMiddle),
            Record::Entry(entry) => {
                let last_index = self.index.last_index();
                if entry.index <= self.index.start.index || entry.index > last_index.next() {
                    return Err(Corruption::EntryOutOfPlace {
                        index: entry.index,
                        first_index: self.index.first_index(),
                        last_index,
                    });
                }
                // A later record at index i supersedes every earlier one at i or after.
                self.index.truncate_from(entry.index);
                self.index.push(Slot {
                    segment,
                    offset,
                    frame_bytes: decoded.frame_bytes as u64,
                    term: entry.term,
                });
            }
            Record::HardState(hard_state) => self.hard_state = hard_state,
            Record::LogStart {
                start,
                keeps_later_entries,
            } => {
                let backwards = start.index < self.index.start.index;
                let keeps_what_is_not_there = keeps_later_entries
                    && (start.index > self.index.last_index()
                        || self
                            .index
                            .term(start.index)
                            .is_some_and(|term| term != start.term));
                if backwards || keeps_what_is_not_there {
                    return Err(Corruption::ImpossibleLogStart { index: start.index });
                }
                self.index.compact(start, keeps_later_entries);
            }
        }
        Ok(())
    }
}

/// Whether `error` is bytes that do not verify as a record under the mask (a length or a
/// checksum that fails), not a record that verifies but does not read.
fn unverified(error: &record::RecordError) -> bool {
    matches!(
        error,
        record::RecordError::Truncated { .. }
            | record::RecordError::BadLength { .. }
            | record::RecordError::BadChecksum { .. }
    )
}

/// Refuses a sealed segment whose records stop verifying at `position` before the seal of a
/// write that completed: a torn write never carries its seal, and this life's seals before
/// `position` are all behind it, so one after it shows that what stops verifying is damage
/// to records that may be durable (thesis §3.8), not a crash's torn write.
fn check_no_seal_after(
    file: &Path,
    bytes: &[u8],
    position: usize,
    mask: u64,
) -> Result<(), WalError> {
    let rest = bytes.get(position..).unwrap_or_default();
    match memchr::memmem::find(rest, &record::batch_seal(mask)) {
        Some(at) => Err(WalError::Corrupt {
            file: file.to_path_buf(),
            offset: position as u64,
            problem: Corruption::SealAfterDamage {
                seal_at: (position + at) as u64,
            },
        }),
        None => Ok(()),
    }
}

/// The complete write batches of one segment file.
struct Scan {
    /// Each record with its offset, up to the end of the last complete batch.
    records: Vec<(u64, Decoded)>,
    /// The end of the last complete batch.
    kept_bytes: u64,
    /// Whether what follows `kept_bytes` is a torn write to cut off (rather than nothing,
    /// zeros written ahead of the next batches, or a recycled file's earlier life).
    torn: bool,
    /// The mask in the segment's header (0 unless the file was recycled).
    mask: u64,
    /// The size in the segment's header (0 unless the file was recycled).
    size: u64,
    /// A sealed segment whose last complete batch is not followed by its seal (a crash tore
    /// it): the seal is written again at `kept_bytes` before the log goes on, so that the
    /// segment ends sealed if the log moves on from it.
    unsealed: bool,
    /// Whether its header says each batch is followed by its seal.
    sealed: bool,
}

/// Decodes a segment's records. Zeros from the end of a batch to the end of the file are space
/// written ahead of the next batches. In the last segment, an incomplete final batch is a torn
/// write and is left out: records without their batch's end mark, then at most a prefix of one
/// record followed by zeros, and no valid record after it ([`record::check_torn_prefix`]).
/// In a recycled segment, an earlier life's bytes follow this life's last record instead of
/// zeros: whatever does not verify under the segment's mask ends it, as long as no record of
/// this life verifies after it ([`record::any_record_after`]) and, in a sealed one, no seal of
/// this life does either ([`check_no_seal_after`]); there each batch must be followed by its
/// seal, but for the last segment's final batch (`Scan::unsealed`). Anything else — garbage
/// that is not such a prefix, or any damage in an earlier segment — is corruption. `records`
/// is a list to fill (emptied first), kept from the segment before.
fn scan_segment(
    file: &Path,
    bytes: &[u8],
    is_last: bool,
    mut records: Vec<(u64, Decoded)>,
) -> Result<Scan, WalError> {
    records.clear();
    // `records[..complete]` are the records of complete batches; those after it await their
    // batch's end mark.
    let mut complete = 0;
    let mut position = 0;
    let mut batch_end = 0;
    // The header's mask, size and sealing, once it is read (the header itself is never
    // masked).
    let (mut mask, mut size, mut sealed) = (0, 0, false);
    // A complete batch of a sealed segment that its seal does not follow: the end.
    let mut unsealed = false;
    while position < bytes.len() {
        match record::decode_without_data(&bytes[position..], mask) {
            Err(_)
                if mask == 0
                    && records.len() == complete
                    && bytes[position..].iter().all(|&b| b == 0) =>
            {
                // Nothing was written past the last batch but the zeros written ahead.
                break;
            }
            // Its checksum held: a newer build's record, not a torn or damaged one.
            Err(record::RecordError::Payload {
                source:
                    CodecError::UnsupportedVersion {
                        what,
                        found,
                        supported,
                    },
                ..
            }) => {
                return Err(WalError::UnsupportedVersion {
                    file: file.to_path_buf(),
                    what,
                    found,
                    supported,
                })
            }
            Ok(decoded) => {
                if let (0, Record::SegmentHeader(header)) = (position, &decoded.record) {
                    (mask, size, sealed) = (header.mask, header.max_segment_bytes, header.sealed);
                }
                let ends_batch = decoded.ends_batch;
                let frame_bytes = decoded.frame_bytes;
                records.push((position as u64, decoded));
                position += frame_bytes;
                if ends_batch {
                    complete = records.len();
                    batch_end = position;
                    if sealed {
                        // In a sealed segment the batch's seal follows, in the same write.
                        if !bytes[position..].starts_with(&record::batch_seal(mask)) {
                            unsealed = true;
                            break;
                        }
                        position += record::SEAL_BYTES;
                        batch_end = position;
                    }
                }
            }
            Err(error) if mask != 0 => {
                // A recycled segment: what follows this life's records was written in an
                // earlier one and never verifies under this mask. A record of this life
                // after here would be a durable one behind damage (thesis §3.8): refuse. So
                // would one that verifies here but does not read: it is this life's too.
                if !unverified(&error) || record::any_record_after(bytes, position, mask) {
                    return Err(WalError::Corrupt {
                        file: file.to_path_buf(),
                        offset: position as u64,
                        problem: Corruption::Record(error),
                    });
                }
                // The log moves on from a segment only once it holds its size: one that ends
                // before lost records at its end (the last one's end may be a torn write).
                if !is_last && (position as u64) < size {
                    return Err(WalError::Corrupt {
                        file: file.to_path_buf(),
                        offset: position as u64,
                        problem: Corruption::EndsBeforeItsSize {
                            end: position as u64,
                            size,
                        },
                    });
                }
                if sealed {
                    check_no_seal_after(file, bytes, position, mask)?;
                }
                break;
            }
            Err(error) if is_last => {
                // Thesis §3.8: a term, vote or entry promised to anyone was synced, so a crash
                // can only leave a prefix of the unsynced final batch followed by zeros.
                // Anything else is damage to what may be durable: refuse rather than forget.
                let offset = position as u64;
                if let Err(reason) = record::check_torn_prefix(&bytes[position..], position == 0) {
                    return Err(WalError::Corrupt {
                        file: file.to_path_buf(),
                        offset,
                        problem: Corruption::NotATornWrite {
                            record: error,
                            reason,
                        },
                    });
                }
                if record::any_record_after(bytes, position, 0) {
                    // A valid record after it: damage in the middle (for instance a length
                    // field hit by a bit flip), not a torn tail.
                    return Err(WalError::Corrupt {
                        file: file.to_path_buf(),
                        offset,
                        problem: Corruption::Record(error),
                    });
                }
                break;
            }
            Err(error) => {
                return Err(WalError::Corrupt {
                    file: file.to_path_buf(),
                    offset: position as u64,
                    problem: Corruption::Record(error),
                })
            }
        }
    }
    if unsealed {
        // A crash can tear a batch's seal only in the last segment's final write: nothing of
        // this life follows it. (The seal is written again at recovery.)
        let verifies = record::decode_without_data(&bytes[position..], mask)
            .map_or_else(|error| !unverified(&error), |_| true);
        if !is_last || verifies || record::any_record_after(bytes, position, mask) {
            return Err(WalError::Corrupt {
                file: file.to_path_buf(),
                offset: position as u64,
                problem: Corruption::MissingSeal,
            });
        }
        check_no_seal_after(file, bytes, position, mask)?;
    }
    if let Some((offset, _)) = records.get(complete) {
        if !is_last {
            return Err(WalError::Corrupt {
                file: file.to_path_buf(),
                offset: *offset,
                problem: Corruption::UnfinishedBatch,
            });
        }
    }
    // A torn final batch's records are left out. In a recycled segment, only its records
    // that verify need cutting: the next batch is written over a prefix of a record left,
    // and an earlier life's bytes never verify.
    let torn = if mask == 0 {
        bytes[batch_end..].iter().any(|&b| b != 0)
    } else {
        records.len() > complete
    };
    records.truncate(complete);
    Ok(Scan {
        records,
        kept_bytes: batch_end as u64,
        torn,
        mask,
        size,
        unsealed,
        sealed,
    })
}
