//! [`Wal`]: the durable Raft log, as segment files over a [`Disk`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skiff_raft::types::ENTRY_HEADER_BYTES;
use skiff_raft::{Entry, HardState, LogIndex, LogStorage, StorageError, Term};

use crate::disk::Disk;
use crate::error::WalError;
use crate::record::{self, LogStart, Record, SegmentHeader};
use crate::recovery::{self, Recovered, RecoveryReport};
use crate::segment::{self, EntryIndex, Segment, Slot};

/// The segment size at which a new segment is started, unless configured otherwise.
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// How a [`Wal`] is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// The cluster the log belongs to: written into every segment header, and a segment of
    /// another cluster refuses to open.
    pub cluster_id: u64,
    /// A segment that holds at least this many bytes is closed, and the next write batch
    /// starts a new one. A batch is never split, so a segment may exceed this by one batch.
    pub max_segment_bytes: u64,
}

impl WalOptions {
    /// Options for `cluster_id`, with [`DEFAULT_MAX_SEGMENT_BYTES`].
    pub fn new(cluster_id: u64) -> WalOptions {
        WalOptions {
            cluster_id,
            max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES,
        }
    }
}

/// The durable Raft log: entries and hard state in append-only, checksummed segment files.
///
/// Every write is a *batch* that ends with one `sync`: [`Wal::append_batch`] writes the entries
/// and the hard state of one Raft `Ready` and syncs once (group commit), so a node pays one
/// fsync per Ready however many entries it carries. When a write returns, it is durable; a
/// crash during a write loses the whole batch or nothing (recovery drops an incomplete final
/// batch), so the hard state is never durable without the entries written before it.
///
/// Entries are read back from disk (the checksum is verified on every read); only their terms
/// and locations are kept in memory.
///
/// Invariant: the last segment in `segments` is the active one, and the segments' first
/// indexes strictly increase in creation order.
#[derive(Debug)]
pub struct Wal<D: Disk> {
    disk: D,
    dir: PathBuf,
    options: WalOptions,
    /// Every segment file, by first index; never empty once open.
    segments: BTreeMap<LogIndex, Segment>,
    /// Where each live entry is. Invariant: every slot's segment is in `segments`.
    index: EntryIndex,
    /// The last durable hard state.
    hard_state: HardState,
    /// Set when a write or sync failed: the disk's state is then unknown (a failed fsync may
    /// have dropped dirty pages), so the log takes no more writes until it is reopened.
    failed: Option<String>,
}

impl<D: Disk> Wal<D> {
    /// Opens the log in `dir` (creating it if there is none) and recovers it.
    ///
    /// A torn final batch in the last segment is cut off and reported; any other damage
    /// refuses to start with [`WalError::Corrupt`] or [`WalError::WrongCluster`], naming the
    /// file and the offset, and leaves the files untouched.
    pub fn open(
        mut disk: D,
        dir: impl Into<PathBuf>,
        options: WalOptions,
    ) -> Result<(Wal<D>, RecoveryReport), WalError> {
        let dir = dir.into();
        let Recovered {
            segments,
            index,
            hard_state,
            mut report,
        } = recovery::recover(&mut disk, &dir, options.cluster_id)?;
        let mut wal = Wal {
            disk,
            dir,
            options,
            segments,
            index,
            hard_state,
            failed: None,
        };
        if wal.segments.is_empty() {
            // Write the first header now, so that the cluster id is on disk from the start.
            wal.write(&[])?;
            report.created = true;
        }
        Ok((wal, report))
    }

    /// Writes the entries and then the hard state of one Raft `Ready` as one batch, and syncs
    /// once. Durable when it returns.
    ///
    /// `entries` must have consecutive indexes, the first one in
    /// `first_index()..=last_index() + 1`. If it is not past the last index, the entries from
    /// there on are replaced: the new records are simply appended, and recovery lets a later
    /// entry record at index `i` supersede every earlier one at `i` or after.
    pub fn append_batch(
        &mut self,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) -> Result<(), WalError> {
        self.check_usable()?;
        if let Some(first) = entries.first() {
            let last_index = self.index.last_index();
            if first.index < self.index.first_index() || first.index > last_index.next() {
                return Err(WalError::NotContiguous {
                    first: first.index,
                    first_index: self.index.first_index(),
                    last_index,
                });
            }
            for pair in entries.windows(2) {
                if pair[1].index != pair[0].index.next() {
                    return Err(WalError::NotConsecutive {
                        previous: pair[0].index,
                        next: pair[1].index,
                    });
                }
            }
        }
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }

        let mut records = Vec::new();
        let mut placed = Vec::with_capacity(entries.len());
        for (position, entry) in entries.iter().enumerate() {
            let ends_batch = hard_state.is_none() && position + 1 == entries.len();
            let offset = records.len() as u64;
            let frame_bytes =
                record::encode_entry(entry, ends_batch, &mut records).map_err(|source| {
                    WalError::EntryTooLarge {
                        index: entry.index,
                        source,
                    }
                })?;
            placed.push((offset, frame_bytes as u64, entry.term));
        }
        if let Some(hard_state) = hard_state {
            encode_small(&Record::HardState(hard_state), &mut records);
        }

        let (segment, base_offset) = self.write(&records)?;
        if let Some(first) = entries.first() {
            self.index.truncate_from(first.index);
        }
        for (offset, frame_bytes, term) in placed {
            self.index.push(Slot {
                segment,
                offset: base_offset + offset,
                frame_bytes,
                term,
            });
        }
        if let Some(hard_state) = hard_state {
            self.hard_state = hard_state;
        }
        Ok(())
    }

    /// The last durable hard state ([`HardState::default`] for a new log).
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Records durably that a snapshot covers every entry up to `index`, whose term is `term`:
    /// from now on (and after a restart) `first_index()` is `index + 1` and `term(index)` is
    /// `term`. Segments whose entries are all covered are then deleted.
    ///
    /// If the log holds `index` with `term`, the entries after it are kept; otherwise (the
    /// snapshot is past the end of the log, or disagrees with it) the whole log is dropped
    /// (Raft §7). An `index` at or before the current start changes nothing.
    pub fn compact_to(&mut self, index: LogIndex, term: Term) -> Result<(), WalError> {
        self.check_usable()?;
        if index <= self.index.start.index {
            return Ok(());
        }
        let start = LogStart { index, term };
        let keeps_later_entries = self.index.term(index) == Some(term);
        let mut records = Vec::new();
        encode_small(
            &Record::LogStart {
                start,
                keeps_later_entries,
            },
            &mut records,
        );
        self.write(&records)?;
        self.index.compact(start, keeps_later_entries);

        // A segment is covered when the one after it began at or before index + 1: every live
        // entry it holds was written before that, so its index is at most `index`. The log
        // start record just written is in the last segment, which is never deleted.
        let firsts: Vec<LogIndex> = self.segments.keys().copied().collect();
        let covered: Vec<LogIndex> = firsts
            .windows(2)
            .take_while(|pair| pair[1] <= index.next())
            .map(|pair| pair[0])
            .collect();
        debug_assert!(
            self.index
                .slots()
                .all(|slot| !covered.contains(&slot.segment)),
            "compaction to {index} would delete a live entry"
        );
        if covered.is_empty() {
            return Ok(());
        }
        let removed = self.remove_segments(&covered);
        if let Err(error) = &removed {
            self.failed = Some(error.to_string());
        }
        removed
    }

    /// The segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.values().map(|s| s.path.clone()).collect()
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &WalOptions {
        &self.options
    }

    /// The disk.
    pub fn disk(&self) -> &D {
        &self.disk
    }

    /// The disk, for fault injection in tests and simulation.
    pub fn disk_mut(&mut self) -> &mut D {
        &mut self.disk
    }

    /// Closes the log and hands back the disk (to crash it and reopen, for instance).
    pub fn into_disk(self) -> D {
        self.disk
    }

    fn check_usable(&self) -> Result<(), WalError> {
        match &self.failed {
            Some(reason) => Err(WalError::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Writes `records` (whole frames, the last one ending the batch) and syncs once. Returns
    /// the segment written to and the offset at which `records` begin there.
    fn write(&mut self, records: &[u8]) -> Result<(LogIndex, u64), WalError> {
        let written = self.write_unchecked(records);
        if let Err(error) = &written {
            self.failed = Some(error.to_string());
        }
        written
    }

    fn write_unchecked(&mut self, records: &[u8]) -> Result<(LogIndex, u64), WalError> {
        let next = self.index.last_index().next();
        let max_segment_bytes = self.options.max_segment_bytes;
        // Only roll when the new name sorts after the active one: after a suffix replacement
        // that went back before the active segment's first index, the active segment is kept
        // until the log grows past it again.
        let active = match self.segments.iter_mut().next_back() {
            Some((first, active)) if active.len_bytes < max_segment_bytes || next <= *first => {
                Some((*first, active))
            }
            _ => None,
        };
        if let Some((first, active)) = active {
            let offset = active.len_bytes;
            self.disk.append(&active.path, records)?;
            self.disk.sync(&active.path)?;
            active.len_bytes += records.len() as u64;
            return Ok((first, offset));
        }

        // Start a new segment; its header is written and synced with the batch.
        let path = self.dir.join(segment::file_name(next));
        let mut bytes = Vec::with_capacity(records.len() + 128);
        encode_small(
            &Record::SegmentHeader(SegmentHeader {
                cluster_id: self.options.cluster_id,
                first_index: next,
                log_start: self.index.start,
                hard_state: self.hard_state,
            }),
            &mut bytes,
        );
        let offset = bytes.len() as u64;
        bytes.extend_from_slice(records);
        self.disk.create(&path)?;
        self.disk.append(&path, &bytes)?;
        self.disk.sync(&path)?;
        self.disk.sync_dir(&self.dir)?;
        self.segments.insert(
            next,
            Segment {
                path,
                len_bytes: bytes.len() as u64,
            },
        );
        Ok((next, offset))
    }

    fn remove_segments(&mut self, firsts: &[LogIndex]) -> Result<(), WalError> {
        for first in firsts {
            if let Some(segment) = self.segments.remove(first) {
                self.disk.remove(&segment.path)?;
            }
        }
        self.disk.sync_dir(&self.dir)?;
        Ok(())
    }

    fn check_readable(&self, index: LogIndex) -> Result<(), StorageError> {
        if index < self.index.first_index() {
            return Err(StorageError::Compacted {
                index,
                first_index: self.index.first_index(),
            });
        }
        if index > self.index.last_index() {
            return Err(StorageError::Unavailable {
                index,
                last_index: self.index.last_index(),
            });
        }
        Ok(())
    }

    fn slot(&self, index: LogIndex) -> Result<&Slot, StorageError> {
        self.check_readable(index)?;
        self.index.slot(index).ok_or_else(|| {
            StorageError::Backend(format!("log index {index} is missing from the index"))
        })
    }

    /// Reads the entries in `[low, low + count)`, one disk read per segment touched.
    fn read_entries(&self, low: LogIndex, count: u64) -> Result<Vec<Entry>, StorageError> {
        let end = low.plus(count);
        let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        let mut next = low;
        while next < end {
            let first = *self.slot(next)?;
            let mut run_end = next.next();
            while run_end < end && self.slot(run_end)?.segment == first.segment {
                run_end = run_end.next();
            }
            let last = *self.slot(run_end.prev())?;
            let segment = self.segments.get(&first.segment).ok_or_else(|| {
                StorageError::Backend(format!("segment {} is not open", first.segment))
            })?;
            let span = last.offset + last.frame_bytes - first.offset;
            let bytes = self
                .disk
                .read(&segment.path, first.offset, span)
                .map_err(|e| StorageError::Backend(e.to_string()))?;
            while next < run_end {
                let slot = self.slot(next)?;
                entries.push(decode_entry_at(&segment.path, &bytes, &first, slot, next)?);
                next = next.next();
            }
        }
        Ok(entries)
    }
}

/// Decodes the entry record of `slot` from `bytes`, which were read starting at `first`'s
/// offset, and checks that it is the entry the index expects.
fn decode_entry_at(
    path: &Path,
    bytes: &[u8],
    first: &Slot,
    slot: &Slot,
    index: LogIndex,
) -> Result<Entry, StorageError> {
    let corrupt = |what: String| {
        StorageError::Backend(format!(
            "{}: corrupt at offset {}: {what}",
            path.display(),
            slot.offset
        ))
    };
    let at = usize::try_from(slot.offset - first.offset)
        .map_err(|_| corrupt("offset out of range".to_owned()))?;
    let decoded = record::decode(bytes.get(at..).unwrap_or_default())
        .map_err(|error| corrupt(error.to_string()))?;
    match decoded.record {
        Record::Entry(entry) if entry.index == index && entry.term == slot.term => Ok(entry),
        other => Err(corrupt(format!(
            "expected entry {index} with term {}, found {other:?}",
            slot.term
        ))),
    }
}

/// Encodes a fixed-size record, which is always far below the record size limit.
fn encode_small(record: &Record, out: &mut Vec<u8>) {
    if let Err(error) = record::encode(record, true, out) {
        unreachable!("a fixed-size record cannot be too large: {error}");
    }
}

impl<D: Disk> LogStorage for Wal<D> {
    fn first_index(&self) -> LogIndex {
        self.index.first_index()
    }

    fn last_index(&self) -> LogIndex {
        self.index.last_index()
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        if index == self.index.start.index {
            return Ok(self.index.start.term);
        }
        Ok(self.slot(index)?.term)
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low >= high {
            return Ok(Vec::new());
        }
        self.check_readable(low)?;
        self.check_readable(high.prev())?;
        // Decide how many entries fit from the sizes kept in memory, then read only those.
        let mut total_bytes = 0;
        let mut count = 0;
        let mut index = low;
        while index < high {
            total_bytes += ENTRY_HEADER_BYTES + self.slot(index)?.data_len();
            if count > 0 && total_bytes > max_bytes {
                break;
            }
            count += 1;
            index = index.next();
        }
        self.read_entries(low, count)
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        Ok(self.append_batch(entries, None)?)
    }
}
