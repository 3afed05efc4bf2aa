//! [`Wal`]: the durable Raft log, as segment files over a [`Disk`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skiff_raft::{Entry, HardState, LogIndex, LogStorage, SnapshotMeta, StorageError, Term};

use crate::disk::{Disk, DiskError};
use crate::entry_index::{EntryIndex, Slot};
use crate::error::WalError;
use crate::incarnation;
use crate::read_ahead::{Ahead, ReadAhead, Taken};
use crate::read_back::{self, EntryReader};
use crate::recent::RecentEntries;
use crate::record::{self, encode_small, LogStart, Record};
use crate::recovery::{self, Recovered, RecoveryProgress, RecoveryReport};
use crate::segment::{self, Segment};
use crate::snapshot::{self, SnapshotFile, SnapshotHeader, Staging};
pub use crate::snapshot_write::SnapshotWrite;

mod log_storage;
mod new_segment;

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
    /// A recycled segment is filled to the size its header gives (this option's value when it
    /// was written) even if a later opening sets less: recovery holds it to that size.
    pub max_segment_bytes: u64,
    /// A segment file grows by zeros this many bytes at a time (up to `max_segment_bytes`),
    /// ahead of the batches written into it: a batch then leaves the file's size alone, and
    /// its sync writes only the data, not the file's inode as well. 0: grow batch by batch.
    pub preallocate_bytes: u64,
    /// The node has written this log before (its caller knows: the server from the identity
    /// file beside it, the simulator from its own records). Then a directory without any
    /// segment refuses to open
    /// ([`Corruption::SegmentsMissing`](crate::Corruption::SegmentsMissing)) instead of
    /// starting a new, empty log: term 0 and no vote would let the node vote a second time
    /// in a term it already voted in (thesis §3.8, §5.2).
    pub expect_existing_log: bool,
    /// The incarnation given to the directory if its log is new (nonzero; 0 is taken as 1):
    /// the caller's randomness (the server's OS randomness, the simulator's seeded
    /// generator), used only then. An existing log keeps the incarnation on its disk.
    pub new_incarnation: u64,
    /// How many compacted segment files are kept as spares, to be written over as later
    /// segments instead of new files zero-filled ahead of their batches (0: none; every
    /// compacted file is deleted). Each holds its disk space until it is reused.
    pub spare_segments: usize,
    /// The caller's randomness for the masks of recycled segments (the server's OS
    /// randomness, the simulator's seeded generator), best fresh on every open: a mask nobody
    /// can foresee keeps a value a client wrote from reading as a record of a later life.
    /// [`WalOptions::new`] leaves it 0, and the masks then follow from the directory's
    /// incarnation and the log's length, which a client may guess; set it where clients
    /// choose what the log holds.
    pub mask_seed: u64,
}

impl WalOptions {
    /// Options for `cluster_id`, with [`DEFAULT_MAX_SEGMENT_BYTES`] and
    /// [`DEFAULT_PREALLOCATE_BYTES`].
    pub fn new(cluster_id: u64) -> WalOptions {
        WalOptions {
            cluster_id,
            max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES,
            preallocate_bytes: DEFAULT_PREALLOCATE_BYTES,
            expect_existing_log: false,
            new_incarnation: 1,
            spare_segments: DEFAULT_SPARE_SEGMENTS,
            mask_seed: 0,
        }
    }
}

/// The largest batch buffer kept for the next batch.
const KEEP_ENCODED_BYTES: usize = 4 * 1024 * 1024;

/// How far ahead of its batches a segment file is zero-filled by default.
pub const DEFAULT_PREALLOCATE_BYTES: u64 = 1024 * 1024;

/// How many compacted segment files are kept to be written over, by default.
pub const DEFAULT_SPARE_SEGMENTS: usize = 2;

/// The durable Raft log: entries and hard state in append-only, checksummed segment files.
///
/// Every write is a *batch* that ends with one `sync`: [`Wal::append_batch`] writes the entries
/// and the hard state of one Raft `Ready` and syncs once (group commit), so a node pays one
/// fsync per Ready however many entries it carries ([`Wal::append_batch_unsynced`] leaves that
/// one sync to the caller, to overlap it with other work). When a write returns, it is durable; a
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
    /// The hard state last written (durable unless its batch is `unsynced`).
    hard_state: HardState,
    /// Set when a write or sync failed: the disk's state is then unknown (a failed fsync may
    /// have dropped dirty pages), so the log takes no more writes until it is reopened.
    failed: Option<String>,
    /// The active segment, when its last batch was written by
    /// [`Wal::append_batch_unsynced`] and not yet synced.
    unsynced: Option<PathBuf>,
    /// The current snapshot (its metadata; the data stays on disk).
    snapshot: Option<SnapshotFile>,
    /// An incoming snapshot being received chunk by chunk.
    staging: Option<Staging>,
    /// The directory's incarnation (see [`crate::incarnation`]); nonzero.
    incarnation: u64,
    /// Reads entries back through one reused buffer.
    reader: EntryReader,
    /// The entries last written, handed back without reading them from the disk.
    recent: RecentEntries,
    /// The last batch's records, its buffer kept for the next batch's: encoding into memory
    /// already mapped spares a fresh buffer's page faults (one over [`KEEP_ENCODED_BYTES`] goes).
    encoded: Vec<u8>,
    /// Zeros to write ahead of the batches, kept from one growth of a segment to the next: a
    /// fresh buffer each time would cost a page fault per page read, and its pages, freed to
    /// the allocator mapped to the kernel's zero page, another when next written.
    zeros: Vec<u8>,
    /// Batches of committed entries being read ahead, and why reading ahead ended early.
    ahead: RefCell<(Option<Ahead>, Option<String>)>,
    /// Compacted segment files kept to be written over as later segments, at most
    /// `options.spare_segments`.
    spares: Vec<PathBuf>,
    /// How many masks were drawn since the log was opened.
    masks_drawn: u64,
    /// How many segments were written over a spare since the log was opened.
    segments_recycled: u64,
}

impl<D: Disk> Wal<D> {
    /// Opens the log in `dir` (creating it if there is none) and recovers it.
    ///
    /// A torn final batch in the last segment is cut off and reported (and a torn seal after a
    /// whole final batch written again, [`RecoveryReport::resealed`]); any other damage
    /// refuses to start with [`WalError::Corrupt`] or [`WalError::WrongCluster`], naming the
    /// file and the offset, and leaves the files untouched.
    ///
    /// The newest complete snapshot file becomes the current snapshot; it must be whole, or
    /// the log refuses to start naming it. Temp and staging files and older snapshots are
    /// removed (see [`snapshot`]). If the log does not hold the snapshot's last entry (a
    /// crash came between writing a received snapshot and compacting the log to it), the log
    /// is compacted to the snapshot now.
    pub fn open(
        disk: D,
        dir: impl Into<PathBuf>,
        options: WalOptions,
    ) -> Result<(Wal<D>, RecoveryReport), WalError> {
        Wal::open_with_progress(disk, dir, options, &mut |_| {})
    }

    /// [`Wal::open`], calling `progress` after each segment is read: a large log takes a
    /// while to check, and an operator wants to see it move.
    pub fn open_with_progress(
        mut disk: D,
        dir: impl Into<PathBuf>,
        options: WalOptions,
        progress: &mut dyn FnMut(RecoveryProgress),
    ) -> Result<(Wal<D>, RecoveryReport), WalError> {
        let dir = dir.into();
        disk.create_dir_all(&dir)?;
        let scanned = snapshot::scan(&disk, &dir, options.cluster_id)?;
        let Recovered {
            segments,
            index,
            hard_state,
            mut report,
        } = recovery::recover(
            &mut disk,
            &dir,
            options.cluster_id,
            scanned
                .current
                .as_ref()
                .map(|current| current.path.as_path()),
            options.expect_existing_log,
            progress,
        )?;
        let mut wal = Wal {
            disk,
            dir,
            options,
            segments,
            index,
            hard_state,
            failed: None,
            unsynced: None,
            snapshot: scanned.current,
            staging: None,
            incarnation: 0,
            reader: EntryReader::default(),
            recent: RecentEntries::default(),
            encoded: Vec::new(),
            zeros: Vec::new(),
            ahead: RefCell::default(),
            spares: Vec::new(),
            masks_drawn: 0,
            segments_recycled: 0,
        };
        wal.keep_spares()?;
        // Whatever the last run renamed (a segment made a spare, say) is durable before a
        // spare is written over: a run that failed before its directory sync left it unsure.
        wal.disk.sync_dir(&wal.dir)?;
        (wal.incarnation, report.incarnation_created) = incarnation::settle(
            &mut wal.disk,
            &wal.dir,
            wal.segments.is_empty(),
            options.new_incarnation,
        )?;
        if wal.segments.is_empty() {
            // Write the first header now, so that the cluster id is on disk from the start.
            wal.write(&mut Vec::new())?;
            report.created = true;
        }
        if !scanned.leftovers.is_empty() {
            for file in &scanned.leftovers {
                wal.disk.remove(file)?;
            }
            wal.disk.sync_dir(&wal.dir)?;
            report.snapshot_files_removed = scanned.leftovers;
        }
        if let Some(current) = &wal.snapshot {
            report.snapshot_file = Some(current.path.clone());
            let SnapshotMeta { index, term, .. } = current.meta;
            if index > wal.index.start.index && wal.index.term(index) != Some(term) {
                wal.compact_to(index, term)?;
                report.finished_snapshot_install = true;
            }
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
        self.append_batch_unsynced(entries, hard_state)?;
        self.sync_batch()
    }

    /// [`Wal::append_batch`] without its final sync, so that the caller can overlap the sync
    /// with other work (thesis §10.2.1): the batch is durable only once the returned segment
    /// file is synced — by [`Wal::sync_batch`], or by the caller's own `fdatasync` of that
    /// file followed by [`Wal::batch_synced`]. `None`: the batch promises nothing that must
    /// be durable first (it is empty, or only moves the commit index), so no sync is needed.
    ///
    /// A later write to another file (a new segment) syncs the batch first, and a later sync
    /// of the same file covers it, so the log never holds a durable record after one that is
    /// not.
    pub fn append_batch_unsynced(
        &mut self,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) -> Result<Option<PathBuf>, WalError> {
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
            return Ok(None);
        }
        // Entries, a term and a vote must be durable before anyone hears of them (§3.8); a
        // commit index need not: a restarted node learns it again from the leader.
        let promises = !entries.is_empty()
            || hard_state.is_some_and(|hs| {
                hs.term != self.hard_state.term || hs.vote != self.hard_state.vote
            });

        let mut records = std::mem::take(&mut self.encoded);
        records.clear();
        let record_bytes = entries
            .iter()
            .map(|e| record::entry_record_bytes(e.data.len()));
        // Room for the hard state and a seal too, so that neither moves the batch.
        let batch_bytes = record_bytes.sum::<u64>() + SMALL_RECORDS_ROOM;
        records.reserve(usize::try_from(batch_bytes).unwrap_or(0));
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

        let written = self.write_unsynced(&mut records);
        if records.capacity() <= KEEP_ENCODED_BYTES {
            self.encoded = records;
        }
        let (segment, base_offset) = written?;
        self.recent.written(entries);
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
        // A batch that promises nothing stays `unsynced` all the same: the next sync of the
        // file, or the roll to a new segment, makes it durable before anything after it.
        Ok(if promises {
            self.unsynced.clone()
        } else {
            None
        })
    }

    /// Syncs the batch left unsynced by [`Wal::append_batch_unsynced`], if there is one.
    pub fn sync_batch(&mut self) -> Result<(), WalError> {
        let Some(path) = self.unsynced.take() else {
            return Ok(());
        };
        if let Err(error) = self.disk.sync(&path) {
            self.failed = Some(error.to_string());
            return Err(error.into());
        }
        Ok(())
    }

    /// The segment file holding a batch not yet synced, if there is one.
    pub fn unsynced_path(&self) -> Option<&Path> {
        self.unsynced.as_deref()
    }

    /// The caller synced `file`, which [`Wal::append_batch_unsynced`] returned.
    pub fn batch_synced(&mut self, file: &Path) {
        if self.unsynced.as_deref() == Some(file) {
            self.unsynced = None;
        }
    }

    /// The directory's incarnation: a random nonzero id given when the log was created.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The hard state last written ([`HardState::default`] for a new log); durable once its
    /// batch is synced.
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
        self.write(&mut records)?;
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
                .segments_in_use()
                .all(|segment| !covered.contains(&segment)),
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

    /// A snapshot file for `meta`, for a caller that writes it itself, away from the thread
    /// that owns the log: once it has the data, it [seals](SnapshotWrite::seal) the header
    /// over them, writes the header's bytes and then the data to
    /// [`SnapshotWrite::temp_path`] (a new file), syncs it, and hands it back to
    /// [`Wal::install_written_snapshot`]. The data need not exist yet: a caller may serialize
    /// them on its own thread. Refused like `save_snapshot`: when the log failed, or the
    /// snapshot is older than the current one.
    pub fn prepare_snapshot_write(
        &self,
        meta: SnapshotMeta,
    ) -> Result<SnapshotWrite, StorageError> {
        self.check_usable()?;
        self.check_not_older(meta.index)?;
        Ok(SnapshotWrite {
            temp: self.dir.join(snapshot::temp_file_name(meta.index)),
            header: SnapshotHeader {
                cluster_id: self.options.cluster_id,
                data_len: 0,
                data_crc: 0,
                meta,
            },
            sealed: false,
        })
    }

    /// Seals `write` over `data`, writes and syncs the file it names on this log's disk (for
    /// a caller without a thread of its own to do it). A failure removes what was written.
    pub fn write_snapshot_file(
        &mut self,
        write: &mut SnapshotWrite,
        data: &[u8],
    ) -> Result<(), WalError> {
        write.seal(data);
        self.write_snapshot_temp(&write.temp, &write.header, |disk, temp| {
            Ok(disk.append(temp, data)?)
        })
    }

    /// Makes the snapshot file written and synced by the caller the current snapshot (a
    /// rename and a directory sync). Returns `false`, and removes the file, if a newer
    /// snapshot became current meanwhile (one received from the leader). A write never
    /// sealed over its data is refused: its header would not describe the file.
    pub fn install_written_snapshot(&mut self, write: SnapshotWrite) -> Result<bool, WalError> {
        self.check_usable()?;
        if !write.sealed {
            let _ = self.remove_if_exists(&write.temp);
            return Err(WalError::SnapshotNotSealed(write.header.meta.index));
        }
        if self.check_not_older(write.header.meta.index).is_err() {
            let _ = self.remove_if_exists(&write.temp);
            return Ok(false);
        }
        self.publish_written_snapshot(write.header)?;
        Ok(true)
    }

    /// The current snapshot file, if there is one.
    pub fn snapshot_path(&self) -> Option<&Path> {
        self.snapshot.as_ref().map(|current| current.path.as_path())
    }

    /// The file the incoming snapshot is being staged in, if one is.
    pub fn staging_path(&self) -> Option<&Path> {
        self.staging.as_ref().map(|staging| staging.path.as_path())
    }

    /// How many segment files the log has, and how many spares it keeps to write over.
    pub fn segment_files(&self) -> (usize, usize) {
        (self.segments.len(), self.spares.len())
    }

    /// How many segments were written over a spare (recycled) since the log was opened.
    pub fn segments_recycled(&self) -> u64 {
        self.segments_recycled
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
    fn write(&mut self, records: &mut Vec<u8>) -> Result<(LogIndex, u64), WalError> {
        let written = self.write_unsynced(records)?;
        self.sync_batch()?;
        Ok(written)
    }

    /// Writes `records` and leaves a write to the active segment unsynced (`self.unsynced`).
    fn write_unsynced(&mut self, records: &mut Vec<u8>) -> Result<(LogIndex, u64), WalError> {
        let written = self.write_unchecked(records);
        if let Err(error) = &written {
            self.failed = Some(error.to_string());
        }
        written
    }

    /// `records` are encoded unmasked; they are masked here for the segment they go to, and
    /// in a recycled one followed by its seal (which `records` holds again on return).
    fn write_unchecked(&mut self, records: &mut Vec<u8>) -> Result<(LogIndex, u64), WalError> {
        let next = self.index.last_index().next();
        let max_segment_bytes = self.options.max_segment_bytes;
        // Only roll when the new name sorts after the active one: after a suffix replacement
        // that went back before the active segment's first index, the active segment is kept
        // until the log grows past it again.
        let active = match self.segments.iter_mut().next_back() {
            Some((first, active))
                if active.len_bytes < max_segment_bytes.max(active.max_segment_bytes)
                    || next <= *first =>
            {
                Some((*first, active))
            }
            _ => None,
        };
        if let Some((first, active)) = active {
            let offset = active.len_bytes;
            let written_end = write_sealed(
                &mut self.disk,
                &active.path,
                offset,
                records,
                active.mask,
                active.sealed,
            )?;
            if written_end > active.allocated_bytes {
                // Past the zeros written ahead: write more, synced with this batch.
                let allocated = allocation(written_end, active.allocated_bytes, &self.options);
                write_zeros(
                    &mut self.disk,
                    &mut self.zeros,
                    &active.path,
                    written_end,
                    allocated,
                )?;
                active.allocated_bytes = allocated;
            }
            active.len_bytes = written_end;
            self.unsynced = Some(active.path.clone());
            return Ok((first, offset));
        }

        // Start a new segment; its header is written and synced with the batch. What the
        // active one holds unsynced is synced first, so no durable record follows one that
        // is not. (In the same file, the next sync covers both.)
        self.sync_batch()?;
        let path = self.dir.join(segment::file_name(next));
        // A spare that is gone or unreadable (taken away by hand) is passed over.
        let spare = self.spares.pop().and_then(|spare| {
            let file_len = self.disk.len(&spare).ok()?;
            Some((spare, file_len))
        });
        let segment = match spare {
            Some((spare, file_len)) => {
                let segment = self.recycle(&spare, file_len, &path, next, records)?;
                self.segments_recycled += 1;
                segment
            }
            None => self.create_segment(&path, next, records)?,
        };
        let offset = segment.len_bytes - batch_bytes(records.len(), segment.sealed);
        self.segments.insert(next, segment);
        Ok((next, offset))
    }

    /// Refuses a snapshot older than the current one.
    fn check_not_older(&self, index: LogIndex) -> Result<(), StorageError> {
        match &self.snapshot {
            Some(current) if index < current.meta.index => Err(StorageError::Snapshot(format!(
                "snapshot at {index} is older than the one kept at {}",
                current.meta.index
            ))),
            _ => Ok(()),
        }
    }

    /// Makes the snapshot described by `header` the current one: the header and then the
    /// data that `write_data` appends go to a temp file, which is synced, renamed into place,
    /// and made durable by a directory sync. Older snapshot files are then removed.
    ///
    /// A failure before the rename leaves the current snapshot as it was (and the log
    /// usable). A failed directory sync after the rename leaves unknown which snapshot is
    /// durable: the log then takes no more writes until it is reopened.
    fn publish_snapshot(
        &mut self,
        header: SnapshotHeader,
        write_data: impl FnOnce(&mut D, &Path) -> Result<(), WalError>,
    ) -> Result<(), WalError> {
        let temp = self.dir.join(snapshot::temp_file_name(header.meta.index));
        self.write_snapshot_temp(&temp, &header, write_data)?;
        self.publish_written_snapshot(header)
    }

    /// The second half of [`Wal::publish_snapshot`]: the temp file is written and synced.
    fn publish_written_snapshot(&mut self, header: SnapshotHeader) -> Result<(), WalError> {
        let index = header.meta.index;
        let temp = self.dir.join(snapshot::temp_file_name(index));
        let path = self.dir.join(snapshot::file_name(index));
        if let Err(error) = self.disk.rename(&temp, &path) {
            // Best effort: start-up removes any temp file left behind.
            let _ = self.remove_if_exists(&temp);
            return Err(error.into());
        }
        let previous = self.snapshot.replace(SnapshotFile {
            path: path.clone(),
            data_offset: header.encoded_len(),
            data_len: header.data_len,
            meta: header.meta,
        });
        if let Err(error) = self.disk.sync_dir(&self.dir) {
            self.failed = Some(error.to_string());
            return Err(error.into());
        }
        if let Some(previous) = previous.filter(|previous| previous.path != path) {
            // Best effort: the new snapshot is durable already, and start-up removes a
            // superseded snapshot file left behind.
            if self.disk.remove(&previous.path).is_ok() {
                let _ = self.disk.sync_dir(&self.dir);
            }
        }
        Ok(())
    }

    fn write_snapshot_temp(
        &mut self,
        temp: &Path,
        header: &SnapshotHeader,
        write_data: impl FnOnce(&mut D, &Path) -> Result<(), WalError>,
    ) -> Result<(), WalError> {
        let write = || -> Result<(), WalError> {
            self.remove_if_exists(temp)?;
            self.disk.create(temp)?;
            self.disk.append(temp, &header.encode())?;
            write_data(&mut self.disk, temp)?;
            Ok(self.disk.sync(temp)?)
        };
        let written = write();
        if written.is_err() {
            // Best effort: start-up removes any temp file left behind.
            let _ = self.remove_if_exists(temp);
        }
        written
    }

    fn remove_if_exists(&mut self, file: &Path) -> Result<(), DiskError> {
        match self.disk.remove(file) {
            Err(DiskError::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// Appends a chunk to the staging file and syncs it (and, for a new file, its directory).
    fn append_staged(
        &mut self,
        staging: &Staging,
        data: &[u8],
        new_file: bool,
    ) -> Result<(), DiskError> {
        if new_file {
            self.remove_if_exists(&staging.path)?;
            self.disk.create(&staging.path)?;
        }
        self.disk.append(&staging.path, data)?;
        self.disk.sync(&staging.path)?;
        if new_file {
            self.disk.sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Removes the segments that begin at `firsts`, keeping them as spares while there is
    /// room for one.
    fn remove_segments(&mut self, firsts: &[LogIndex]) -> Result<(), WalError> {
        for first in firsts {
            if let Some(segment) = self.segments.remove(first) {
                if self.spares.len() < self.options.spare_segments {
                    let spare = self.dir.join(segment::spare_file_name(*first));
                    self.disk.rename(&segment.path, &spare)?;
                    self.spares.push(spare);
                } else {
                    self.disk.remove(&segment.path)?;
                }
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

    fn slot(&self, index: LogIndex) -> Result<Slot, StorageError> {
        self.check_readable(index)?;
        self.index
            .slot(index)
            .ok_or_else(|| missing_from_index(index))
    }

    /// Reads the entries in `[low, low + count)`, one disk read per segment touched.
    fn read_entries(&self, low: LogIndex, count: u64) -> Result<Vec<Entry>, StorageError> {
        self.reader
            .read(&self.disk, &self.segments, low, count, |index| {
                self.slot(index)
            })
    }
}

impl<D: Disk> Wal<D> {
    /// Reads the committed entries `[low, high)` ahead of the caller's asking for them, in
    /// batches of `max_bytes` (the caller's batch size: see [`crate::read_ahead`]), through
    /// `reader`, at most `depth` batches in flight. Ends at `high`, at the first batch asked
    /// for out of turn, or at [`stop_read_ahead`](Wal::stop_read_ahead).
    pub fn start_read_ahead(
        &mut self,
        reader: Box<dyn ReadAhead>,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
        depth: usize,
    ) {
        let mut ahead = Ahead::new(
            reader,
            low,
            high.min(self.last_index().next()),
            max_bytes,
            depth,
        );
        let filled = self.fill_read_ahead(&mut ahead);
        *self.ahead.get_mut() = match filled {
            Ok(()) => (Some(ahead), None),
            Err(reason) => (None, Some(reason)),
        };
    }

    /// Ends reading ahead; says why if it ended early for another reason than a batch asked
    /// for out of turn (the reader failed or stopped: every entry was still read, by the log).
    pub fn stop_read_ahead(&mut self) -> Result<(), String> {
        match std::mem::take(self.ahead.get_mut()) {
            (_, Some(reason)) => Err(reason),
            _ => Ok(()),
        }
    }

    fn fill_read_ahead(&self, ahead: &mut Ahead) -> Result<(), String> {
        ahead.fill(
            |index| self.index.slot(index),
            |low, count| read_back::plan_read(&self.segments, low, count, |index| self.slot(index)),
        )
    }

    /// The batch `[low, low + count)` if it was read ahead, starting the next ones.
    fn take_read_ahead(&self, low: LogIndex, count: u64) -> Option<Vec<Entry>> {
        let mut state = self.ahead.borrow_mut();
        let ahead = state.0.as_mut()?;
        let taken = ahead.take(low, count, |index| self.index.term(index));
        let filled = match taken {
            Taken::Entries(_) => self.fill_read_ahead(ahead),
            Taken::NotAhead => Ok(()),
            Taken::Ended(ref reason) => Err(reason.clone()),
        };
        if let Err(reason) = filled {
            *state = (None, Some(reason));
        } else if matches!(taken, Taken::NotAhead) || ahead.is_done() {
            state.0 = None;
        }
        match taken {
            Taken::Entries(entries) => Some(entries),
            _ => None,
        }
    }
}

/// How long a segment file holding `len_bytes` should be, zeros included: `allocated_bytes`
/// grown by `preallocate_bytes` steps up to `max_segment_bytes`, and never shorter than
/// `len_bytes`.
fn allocation(len_bytes: u64, allocated_bytes: u64, options: &WalOptions) -> u64 {
    let step = options.preallocate_bytes;
    if step == 0 {
        return len_bytes;
    }
    let missing = len_bytes.saturating_sub(allocated_bytes);
    let allocated = allocated_bytes + missing.div_ceil(step) * step;
    allocated.min(options.max_segment_bytes).max(len_bytes)
}

/// The bytes a batch of `records_len` bytes takes in a segment: in a sealed one its seal
/// follows it.
pub(crate) fn batch_bytes(records_len: usize, sealed: bool) -> u64 {
    let seal = if sealed && records_len > 0 {
        record::SEAL_BYTES
    } else {
        0
    };
    (records_len + seal) as u64
}

/// Writes the batch `records` at `offset` in `path`, masked with `mask`; in a sealed segment
/// followed by the life's seal in the same write, so that a torn write never carries it (the
/// next batch goes after the seal). Returns where the bytes written end; `records` holds the
/// masked batch again on return.
pub(crate) fn write_sealed<D: Disk>(
    disk: &mut D,
    path: &Path,
    offset: u64,
    records: &mut Vec<u8>,
    mask: u64,
    sealed: bool,
) -> Result<u64, WalError> {
    record::mask_frames(records, mask);
    let records_len = records.len();
    let written_end = offset + batch_bytes(records_len, sealed);
    if sealed && records_len > 0 {
        records.extend_from_slice(&record::batch_seal(mask));
    }
    let written = disk.write_at(path, offset, records);
    records.truncate(records_len);
    written?;
    Ok(written_end)
}

/// Room for the hard state record and the seal that may follow a batch's entries.
const SMALL_RECORDS_ROOM: u64 = record::HARD_STATE_RECORD_BYTES + record::SEAL_BYTES as u64;

/// Writes zeros into `file` from `from` up to `to`, out of `zeros`, the buffer the log keeps
/// for them (grown when too short).
fn write_zeros<D: Disk>(
    disk: &mut D,
    zeros: &mut Vec<u8>,
    file: &Path,
    from: u64,
    to: u64,
) -> Result<(), DiskError> {
    let len = (to - from) as usize;
    if zeros.len() < len {
        *zeros = vec![0; len];
    }
    disk.write_at(file, from, &zeros[..len])
}

/// A readable index the index does not know: the log's own bookkeeping is broken.
fn missing_from_index(index: LogIndex) -> StorageError {
    StorageError::Backend(format!("log index {index} is missing from the index"))
}
