//! Skiff's durable Raft log: checksummed, append-only segment files behind a [`Disk`] trait.
//!
//! Take `skiff-wal` for a durable Raft log on disk with checksums and crash recovery;
//! [`skiff_raft`]'s first page says which Skiff crate to take for which job.
//!
//! The WAL is deterministic: no clock, no randomness, and no thread that could change what it
//! does (a caller may lend it one to read ahead: [`ReadAhead`]; recovery checks two large
//! segments at once, the second on a helper thread it joins before going on — a function of
//! the bytes alone). Every file operation goes
//! through [`Disk`], so the same code runs on the real file system ([`FsDisk`]) and on a
//! simulated disk that loses unsynced data when it crashes ([`MemDisk`]).
//!
//! [`Wal`] implements [`skiff_raft::LogStorage`], snapshots included, and passes its
//! conformance suites. A driver
//! persists each Raft `Ready` with one [`Wal::append_batch`] call — entries, then the hard
//! state, then a single sync — and calls [`Wal::compact_to`] once a snapshot covers a prefix.
//!
//! ```
//! use skiff_raft::{Entry, EntryKind, HardState, LogIndex, LogStorage, Term};
//! use skiff_wal::{MemDisk, Wal, WalOptions};
//!
//! let entry = |index| Entry { term: Term(1), index: LogIndex(index), kind: EntryKind::Normal, data: Default::default() };
//! let hard_state = HardState { term: Term(1), vote: None, commit: LogIndex(1) };
//!
//! let (mut wal, _report) = Wal::open(MemDisk::new(), "/wal", WalOptions::new(1)).unwrap();
//! wal.append_batch(&[entry(1), entry(2)], Some(hard_state)).unwrap(); // one sync
//! // The new log's incarnation file, its first header, then the batch.
//! assert_eq!(wal.disk().sync_count(), 3);
//!
//! // A crash loses only what was not synced; the log comes back as it was.
//! let mut disk = wal.into_disk();
//! disk.crash();
//! let (wal, report) = Wal::open(disk, "/wal", WalOptions::new(1)).unwrap();
//! assert_eq!(report.torn_tail, None);
//! assert_eq!(wal.last_index(), LogIndex(2));
//! assert_eq!(wal.hard_state(), hard_state);
//! ```
//!
//! # Layout
//! - [`disk`]: the [`Disk`] trait and [`DiskError`]; what is durable when.
//! - [`fs_disk`]: [`FsDisk`], the real file system (`fdatasync`, directory fsync).
//! - [`mem_disk`]: [`MemDisk`], an in-memory disk with crashes, torn writes and bit flips.
//! - [`record`]: the record frame (`len | crc32c | type | payload`) and its four record types.
//! - `segment`: segment file names and what the log knows of each file.
//! - `entry_index`: the in-memory index of live entries (where each record is, its term), 8
//!   bytes an entry: offsets and lengths per entry, segments and terms once a run.
//! - [`snapshot`]: the snapshot file format and names, and finding the current snapshot at
//!   start-up.
//! - `snapshot_write`: [`SnapshotWrite`], a snapshot file the caller writes itself.
//! - [`wal`]: [`Wal`] and [`WalOptions`]: group commit, rollover, suffix replacement,
//!   compaction, and the [`LogStorage`](skiff_raft::LogStorage) implementation.
//! - `read_back`: reading entries back through one reused buffer, checksums checked again;
//!   [`PlannedRead`], such a read planned now and carried out later.
//! - [`read_ahead`]: batches of committed entries read ahead of their use by a [`ReadAhead`]
//!   the caller lends (a thread of its own), checked against the index when taken.
//! - [`recovery`]: replaying segments, cutting a torn tail, refusing real corruption
//!   ([`RecoveryReport`]).
//! - [`error`]: [`WalError`] and [`Corruption`].
//!
//! # On disk
//! A directory of segment files `seg-{first_index:020}.wal`, where `first_index` is the index
//! the next entry had when the segment was created; names sort in creation order. Each segment
//! starts with a header record (magic, version, cluster id, first index, and the log start
//! and hard state of that moment), followed by write batches. A batch is a run of records
//! whose last one carries an end-of-batch mark, followed by one sync.
//!
//! - **Suffix replacement** is recorded by writing the new entries again: replay lets an entry
//!   record at index `i` supersede every earlier entry at `i` or after.
//! - **Compaction** ([`Wal::compact_to`]) writes a log start record (index, term, and whether
//!   the later entries are kept) to the active segment, syncs, and deletes the segments whose
//!   successor begins at or before `index + 1`. Because every header repeats the log start and
//!   hard state, recovery can begin at any remaining segment.
//! - **Recovery** ([`Wal::open`]) replays every segment in order. An incomplete final batch in
//!   the last segment — records without their end-of-batch mark, then at most a prefix of one
//!   record followed by zeros (in a recycled segment: by an earlier life's bytes, with no seal
//!   of a completed write after it) — is a crash's torn write: it is cut off and reported.
//!   Anything else that does not decode or does not fit (garbage that is not such a prefix,
//!   even at offset 0 of the only segment; a bad checksum or length with valid records after
//!   it; a missing segment; a snapshot without any segment; a header of another cluster)
//!   refuses to start with the file and offset, and leaves the files as they are. A lost
//!   *last* segment cannot be seen from the log alone, and a directory whose every segment is
//!   gone reads as a new log ([`RecoveryReport::created`]) unless the caller says the node has
//!   run before ([`WalOptions::expect_existing_log`]; see [`recovery`]).
//! - **Incarnation** ([`incarnation`]): a new log first writes the file `incarnation`, a
//!   random nonzero id the caller chose ([`WalOptions::new_incarnation`]), checksummed; an
//!   existing log reads it back ([`Wal::incarnation`]). A wiped disk, or a directory whose
//!   segments are gone, comes back with a new one, so the cluster can tell it forgot its votes.
//!
//! Next to the segments, the current snapshot is one file `snap-{index:020}.snap`: a
//! checksummed header (cluster id, index, term, voters, data length and CRC-32C) and the
//! data, written as a temp file that is synced, renamed into place and made durable by a
//! directory sync. An incoming snapshot is staged chunk by chunk in `snap-{index:020}.staging`
//! (synced per chunk), then copied into a snapshot file the same way when it is installed;
//! the log is compacted to it only after that file is durable. At start-up a damaged current
//! snapshot refuses to start naming the file; temp files, staged data and superseded
//! snapshots are removed. Details in [`snapshot`].
#![deny(missing_docs)]

pub mod disk;
mod entry_index;
pub mod error;
pub mod fs_disk;
pub mod incarnation;
pub mod mem_disk;
pub mod read_ahead;
mod read_back;
mod recent;
pub mod record;
pub mod recovery;
mod segment;
pub mod snapshot;
mod snapshot_write;
pub mod wal;

pub use disk::{Disk, DiskError, WholeFile};
pub use error::{Corruption, WalError};
pub use fs_disk::FsDisk;
pub use mem_disk::MemDisk;
pub use read_ahead::ReadAhead;
pub use read_back::PlannedRead;
pub use recovery::{RecoveryProgress, RecoveryReport, TornTail};
pub use wal::{
    SnapshotWrite, Wal, WalOptions, DEFAULT_MAX_SEGMENT_BYTES, DEFAULT_PREALLOCATE_BYTES,
    DEFAULT_SPARE_SEGMENTS,
};
