//! The storage contract: how the core reads the durable log, and an in-memory implementation.
//!
//! The log and the hard state are kept apart. The core reads the log through [`LogStorage`];
//! the hard state (term, vote, commit) is handed to the core once, at start-up, and comes back
//! in every [`Ready`](crate::Ready) that changes it, for the application to write as one record.

use crate::types::{Entry, LogIndex, NodeId, Term};

/// What a snapshot is a picture of: the state after applying every entry up to `index`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnapshotMeta {
    /// The last entry the snapshot covers (0: no snapshot).
    pub index: LogIndex,
    /// That entry's term.
    pub term: Term,
    /// The voting members at `index` (of C_new while joint).
    pub voters: Vec<NodeId>,
    /// The voters of C_old, when `index` falls in a joint configuration.
    pub voters_outgoing: Vec<NodeId>,
    /// The learners at `index`.
    pub learners: Vec<NodeId>,
}

/// Why a storage read or write failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The entry was discarded by log compaction.
    #[error("log index {index} is compacted (first available is {first_index})")]
    Compacted {
        /// The index asked for.
        index: LogIndex,
        /// The first index still available.
        first_index: LogIndex,
    },
    /// The entry is past the end of the log.
    #[error("log index {index} is past the last index {last_index}")]
    Unavailable {
        /// The index asked for.
        index: LogIndex,
        /// The last index in the log.
        last_index: LogIndex,
    },
    /// An append would leave a gap or go back before the compacted prefix.
    #[error(
        "append at {first} does not continue a log whose entries span {first_index}..={last_index}"
    )]
    NotContiguous {
        /// The first index of the rejected append.
        first: LogIndex,
        /// The first index available.
        first_index: LogIndex,
        /// The last index in the log.
        last_index: LogIndex,
    },
    /// The storage does not implement this feature.
    #[error("this storage does not support {0}")]
    Unsupported(&'static str),
    /// A snapshot operation was out of order (older snapshot, compaction past the snapshot,
    /// a chunk at the wrong offset).
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// The backend failed (an I/O error, a corrupt record).
    #[error("storage backend failed: {0}")]
    Backend(String),
}

/// The durable Raft log, as the core sees it.
///
/// Contract (checked by [`conformance::run_log_storage_suite`] for every implementation):
/// - indexes are contiguous from `first_index()` to `last_index()`; an empty log has
///   `last_index() == first_index() - 1`;
/// - `term(first_index() - 1)` is answered (the term of the entry before the first available
///   one, or term 0 for an empty log); earlier indexes are `Compacted`, later than
///   `last_index()` are `Unavailable`;
/// - `append` replaces every entry at or after `entries[0].index` with `entries`: it is how a
///   follower drops a conflicting suffix (§5.3), and it must be durable when it returns.
pub trait LogStorage {
    /// The first index still available in the log.
    fn first_index(&self) -> LogIndex;
    /// The index of the last entry (or `first_index() - 1` when the log is empty).
    fn last_index(&self) -> LogIndex;
    /// The term of the entry at `index`.
    fn term(&self, index: LogIndex) -> Result<Term, StorageError>;
    /// The entries in `[low, high)`, stopping before `max_bytes` (by
    /// [`Entry::size_bytes`]) is exceeded, but always at least one entry when `low < high`.
    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError>;
    /// Appends `entries`, first removing every entry at or after `entries[0].index`.
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError>;

    // ---- snapshots (§7). Storage without snapshot support answers `Unsupported`. ----

    /// The latest durable snapshot's metadata (index 0 when there is none).
    fn snapshot_meta(&self) -> SnapshotMeta {
        SnapshotMeta::default()
    }
    /// The latest snapshot's size in bytes.
    fn snapshot_len(&self) -> u64 {
        0
    }
    /// Up to `max_bytes` of the latest snapshot's data, from `offset`.
    fn snapshot_chunk(&self, _offset: u64, _max_bytes: u64) -> Result<Vec<u8>, StorageError> {
        Err(StorageError::Unsupported("snapshots"))
    }
    /// Durably keeps `data` as the snapshot described by `meta`, replacing an older one.
    fn save_snapshot(&mut self, _meta: SnapshotMeta, _data: Vec<u8>) -> Result<(), StorageError> {
        Err(StorageError::Unsupported("snapshots"))
    }
    /// Discards the entries up to `upto`, which the snapshot covers.
    fn compact(&mut self, _upto: LogIndex) -> Result<(), StorageError> {
        Err(StorageError::Unsupported("snapshots"))
    }
    /// Durably writes a chunk of an incoming snapshot at `offset` (offset 0 starts afresh).
    fn stage_snapshot_chunk(
        &mut self,
        _meta: &SnapshotMeta,
        _offset: u64,
        _data: &[u8],
    ) -> Result<(), StorageError> {
        Err(StorageError::Unsupported("snapshots"))
    }
    /// Makes the fully staged snapshot `meta` the current one. Figure 13: log entries after it
    /// are kept if the log holds `meta.index` with `meta.term`; otherwise the log is discarded.
    fn install_staged_snapshot(&mut self, _meta: &SnapshotMeta) -> Result<(), StorageError> {
        Err(StorageError::Unsupported("snapshots"))
    }
}

/// A [`LogStorage`] kept in memory: for tests, the simulator and embedded use without a disk.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    /// `entries[k]` has index `offset + 1 + k`.
    entries: Vec<Entry>,
    /// The index of the entry before the first one held (0 while nothing is compacted).
    offset: LogIndex,
    /// The term at `offset`.
    offset_term: Term,
    /// The latest snapshot and its data.
    snapshot: (SnapshotMeta, Vec<u8>),
    /// An incoming snapshot being received.
    staging: Option<(SnapshotMeta, Vec<u8>)>,
}

impl MemStorage {
    /// An empty log.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// All entries held, in order.
    pub fn all_entries(&self) -> &[Entry] {
        &self.entries
    }

    fn position(&self, index: LogIndex) -> usize {
        (index.0 - self.offset.0 - 1) as usize
    }

    fn check_readable(&self, index: LogIndex) -> Result<(), StorageError> {
        if index < self.first_index() {
            return Err(StorageError::Compacted {
                index,
                first_index: self.first_index(),
            });
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable {
                index,
                last_index: self.last_index(),
            });
        }
        Ok(())
    }
}

impl LogStorage for MemStorage {
    fn first_index(&self) -> LogIndex {
        self.offset.next()
    }

    fn last_index(&self) -> LogIndex {
        self.offset.plus(self.entries.len() as u64)
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        if index == self.offset {
            return Ok(self.offset_term);
        }
        self.check_readable(index)?;
        Ok(self.entries[self.position(index)].term)
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
        let slice = &self.entries[self.position(low)..=self.position(high.prev())];
        Ok(take_within_bytes(slice, max_bytes))
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index <= self.offset || first.index > self.last_index().next() {
            return Err(StorageError::NotContiguous {
                first: first.index,
                first_index: self.first_index(),
                last_index: self.last_index(),
            });
        }
        let keep = self.position(first.index);
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    fn snapshot_meta(&self) -> SnapshotMeta {
        self.snapshot.0.clone()
    }

    fn snapshot_len(&self) -> u64 {
        self.snapshot.1.len() as u64
    }

    fn snapshot_chunk(&self, offset: u64, max_bytes: u64) -> Result<Vec<u8>, StorageError> {
        let data = &self.snapshot.1;
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(max_bytes as usize).min(data.len());
        Ok(data[start..end].to_vec())
    }

    fn save_snapshot(&mut self, meta: SnapshotMeta, data: Vec<u8>) -> Result<(), StorageError> {
        if meta.index < self.snapshot.0.index {
            return Err(StorageError::Snapshot(format!(
                "snapshot at {} is older than the one kept at {}",
                meta.index, self.snapshot.0.index
            )));
        }
        self.snapshot = (meta, data);
        Ok(())
    }

    fn compact(&mut self, upto: LogIndex) -> Result<(), StorageError> {
        if upto <= self.offset {
            return Ok(());
        }
        if upto > self.snapshot.0.index || upto > self.last_index() {
            return Err(StorageError::Snapshot(format!(
                "cannot compact to {upto}: the snapshot covers {} and the log ends at {}",
                self.snapshot.0.index,
                self.last_index()
            )));
        }
        let term = self.term(upto)?;
        self.entries.drain(..=self.position(upto));
        self.offset = upto;
        self.offset_term = term;
        Ok(())
    }

    fn stage_snapshot_chunk(
        &mut self,
        meta: &SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> Result<(), StorageError> {
        if offset == 0
            || self
                .staging
                .as_ref()
                .is_none_or(|(staged, _)| staged != meta)
        {
            self.staging = Some((meta.clone(), Vec::new()));
        }
        let (_, staged) = self.staging.as_mut().expect("set above");
        if staged.len() as u64 != offset {
            return Err(StorageError::Snapshot(format!(
                "chunk at {offset}, but {} bytes are staged",
                staged.len()
            )));
        }
        staged.extend_from_slice(data);
        Ok(())
    }

    fn install_staged_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), StorageError> {
        let Some((staged, data)) = self.staging.take().filter(|(staged, _)| staged == meta) else {
            return Err(StorageError::Snapshot(format!(
                "no staged snapshot at {}",
                meta.index
            )));
        };
        let keeps_suffix = self.term(meta.index).ok() == Some(meta.term);
        if keeps_suffix && meta.index > self.offset {
            self.entries.drain(..=self.position(meta.index));
        } else if !keeps_suffix {
            self.entries.clear();
        }
        self.offset = meta.index;
        self.offset_term = meta.term;
        self.snapshot = (staged, data);
        Ok(())
    }
}

/// The longest prefix of `entries` within `max_bytes`, but at least one entry.
pub(crate) fn take_within_bytes(entries: &[Entry], max_bytes: u64) -> Vec<Entry> {
    let mut total = 0;
    let mut taken = Vec::new();
    for entry in entries {
        total += entry.size_bytes();
        if !taken.is_empty() && total > max_bytes {
            break;
        }
        taken.push(entry.clone());
    }
    taken
}

/// The shared test suite every [`LogStorage`] implementation must pass.
pub mod conformance {
    use super::{LogStorage, StorageError};
    use crate::types::{Entry, EntryKind, LogIndex, Term};

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: vec![index as u8; 10].into(),
        }
    }

    fn indexes_and_terms(entries: &[Entry]) -> Vec<(u64, u64)> {
        entries.iter().map(|e| (e.index.0, e.term.0)).collect()
    }

    /// Runs every check of the contract against fresh logs made by `new_log`.
    /// Panics with the name of the broken rule.
    pub fn run_log_storage_suite<S: LogStorage>(mut new_log: impl FnMut() -> S) {
        empty_log_has_no_entries(&mut new_log());
        appended_entries_read_back(&mut new_log());
        append_replaces_the_suffix(&mut new_log());
        append_leaving_a_gap_is_refused(&mut new_log());
        reads_outside_the_log_fail(&mut new_log());
        entries_respect_max_bytes_but_return_one(&mut new_log());
    }

    /// The snapshot part of the contract, for storage that supports snapshots.
    pub fn run_snapshot_suite<S: LogStorage>(mut new_log: impl FnMut() -> S) {
        snapshot_and_compaction(&mut new_log());
        installed_snapshot_keeps_a_matching_suffix(&mut new_log());
        installed_snapshot_replaces_a_conflicting_log(&mut new_log());
        staged_chunks_must_be_contiguous(&mut new_log());
    }

    fn meta(index: u64, term: u64) -> super::SnapshotMeta {
        super::SnapshotMeta {
            index: LogIndex(index),
            term: Term(term),
            voters: vec![crate::types::NodeId(1), crate::types::NodeId(2)],
            voters_outgoing: vec![crate::types::NodeId(1)],
            learners: vec![crate::types::NodeId(3)],
        }
    }

    fn snapshot_and_compaction<S: LogStorage>(log: &mut S) {
        log.append(&[entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)])
            .expect("append");
        assert!(
            log.compact(LogIndex(2)).is_err(),
            "no compaction past the snapshot"
        );
        log.save_snapshot(meta(3, 2), b"state@3".to_vec())
            .expect("save");
        log.compact(LogIndex(2))
            .expect("compact within the snapshot");
        assert_eq!(log.first_index(), LogIndex(3));
        assert_eq!(
            log.term(LogIndex(2)),
            Ok(Term(1)),
            "the compaction point keeps its term"
        );
        assert!(matches!(
            log.term(LogIndex(1)),
            Err(StorageError::Compacted { .. })
        ));
        assert_eq!(log.snapshot_meta(), meta(3, 2));
        assert_eq!(log.snapshot_len(), 7);
        assert_eq!(log.snapshot_chunk(2, 3), Ok(b"ate".to_vec()));
        assert_eq!(log.snapshot_chunk(6, 100), Ok(b"3".to_vec()));
        assert!(
            log.save_snapshot(meta(2, 1), vec![]).is_err(),
            "an older snapshot is refused"
        );
    }

    fn installed_snapshot_keeps_a_matching_suffix<S: LogStorage>(log: &mut S) {
        log.append(&[entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)])
            .expect("append");
        log.stage_snapshot_chunk(&meta(2, 1), 0, b"ab")
            .expect("chunk");
        log.stage_snapshot_chunk(&meta(2, 1), 2, b"cd")
            .expect("chunk");
        log.install_staged_snapshot(&meta(2, 1)).expect("install");
        assert_eq!(log.snapshot_chunk(0, 100), Ok(b"abcd".to_vec()));
        assert_eq!(
            log.first_index(),
            LogIndex(3),
            "Figure 13: a matching suffix is kept"
        );
        assert_eq!(log.last_index(), LogIndex(4));
    }

    fn installed_snapshot_replaces_a_conflicting_log<S: LogStorage>(log: &mut S) {
        log.append(&[entry(1, 1), entry(2, 1)]).expect("append");
        log.stage_snapshot_chunk(&meta(5, 3), 0, b"x")
            .expect("chunk");
        log.install_staged_snapshot(&meta(5, 3)).expect("install");
        assert_eq!(log.first_index(), LogIndex(6));
        assert_eq!(
            log.last_index(),
            LogIndex(5),
            "Figure 13: the whole log is discarded"
        );
        assert_eq!(log.term(LogIndex(5)), Ok(Term(3)));
        log.append(&[entry(6, 3)])
            .expect("the log continues after the snapshot");
    }

    fn staged_chunks_must_be_contiguous<S: LogStorage>(log: &mut S) {
        log.stage_snapshot_chunk(&meta(5, 3), 0, b"ab")
            .expect("chunk");
        assert!(
            log.stage_snapshot_chunk(&meta(5, 3), 5, b"cd").is_err(),
            "a gap is refused"
        );
        assert!(
            log.install_staged_snapshot(&meta(6, 3)).is_err(),
            "only the staged snapshot installs"
        );
    }

    fn empty_log_has_no_entries<S: LogStorage>(log: &mut S) {
        assert_eq!(log.first_index(), LogIndex(1), "empty log: first_index");
        assert_eq!(log.last_index(), LogIndex(0), "empty log: last_index");
        assert_eq!(log.term(LogIndex(0)), Ok(Term(0)), "empty log: term(0)");
        assert_eq!(
            log.entries(LogIndex(1), LogIndex(1), u64::MAX),
            Ok(vec![]),
            "empty range"
        );
    }

    fn appended_entries_read_back<S: LogStorage>(log: &mut S) {
        let written = vec![entry(1, 1), entry(2, 1), entry(3, 2)];
        log.append(&written).expect("append to an empty log");
        assert_eq!(log.last_index(), LogIndex(3), "last_index after append");
        assert_eq!(log.term(LogIndex(3)), Ok(Term(2)), "term of the last entry");
        assert_eq!(
            log.entries(LogIndex(1), LogIndex(4), u64::MAX),
            Ok(written.clone()),
            "read back"
        );
        assert_eq!(
            log.entries(LogIndex(2), LogIndex(3), u64::MAX),
            Ok(written[1..2].to_vec()),
            "sub-range"
        );
        log.append(&[entry(4, 2)]).expect("append at the end");
        assert_eq!(
            log.last_index(),
            LogIndex(4),
            "last_index after a second append"
        );
    }

    fn append_replaces_the_suffix<S: LogStorage>(log: &mut S) {
        log.append(&[entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)])
            .expect("append");
        log.append(&[entry(2, 3)]).expect("overwrite from index 2");
        assert_eq!(
            log.last_index(),
            LogIndex(2),
            "entries after the overwrite point are dropped"
        );
        let read = log
            .entries(LogIndex(1), LogIndex(3), u64::MAX)
            .expect("read");
        assert_eq!(
            indexes_and_terms(&read),
            vec![(1, 1), (2, 3)],
            "suffix replaced"
        );
    }

    fn append_leaving_a_gap_is_refused<S: LogStorage>(log: &mut S) {
        log.append(&[entry(1, 1)]).expect("append");
        let gap = log.append(&[entry(3, 1)]);
        assert!(
            matches!(gap, Err(StorageError::NotContiguous { .. })),
            "a gap must be refused, got {gap:?}"
        );
        assert_eq!(
            log.last_index(),
            LogIndex(1),
            "a refused append changes nothing"
        );
    }

    fn reads_outside_the_log_fail<S: LogStorage>(log: &mut S) {
        log.append(&[entry(1, 1), entry(2, 1)]).expect("append");
        assert!(
            matches!(log.term(LogIndex(3)), Err(StorageError::Unavailable { .. })),
            "term past the end must be Unavailable"
        );
        assert!(
            matches!(
                log.entries(LogIndex(2), LogIndex(4), u64::MAX),
                Err(StorageError::Unavailable { .. })
            ),
            "entries past the end must be Unavailable"
        );
    }

    fn entries_respect_max_bytes_but_return_one<S: LogStorage>(log: &mut S) {
        log.append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .expect("append");
        let one_size = entry(1, 1).size_bytes();
        let two = log
            .entries(LogIndex(1), LogIndex(4), 2 * one_size)
            .expect("read");
        assert_eq!(two.len(), 2, "max_bytes fits exactly two entries");
        let at_least_one = log.entries(LogIndex(1), LogIndex(4), 0).expect("read");
        assert_eq!(
            at_least_one.len(),
            1,
            "a tiny max_bytes still returns one entry"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_storage_passes_the_conformance_suite() {
        conformance::run_log_storage_suite(MemStorage::new);
        conformance::run_snapshot_suite(MemStorage::new);
    }
}
