//! The node's view of the replicated log: durable entries read through [`LogStorage`], plus the
//! unstable tail that has not been handed to storage yet, and the commit and apply marks.

use crate::storage::{take_within_bytes, LogStorage, StorageError};
use crate::types::{Entry, LogIndex, Term};

/// Why entries from a leader cannot go into the log. An honest leader never sends either:
/// the log refuses rather than be damaged by a forged or buggy message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The entries do not follow `prev_index` one index at a time.
    #[error("entry at index {found} where index {expected} was due")]
    Gap {
        /// The index that should have come next.
        expected: LogIndex,
        /// The index found.
        found: LogIndex,
    },
    /// Leader Completeness (§5.4): no leader holds an entry that conflicts with a committed one.
    #[error("entry {index} conflicts with the committed prefix (committed {committed})")]
    ConflictsWithCommitted {
        /// The conflicting entry's index.
        index: LogIndex,
        /// This log's commit index.
        committed: LogIndex,
    },
}

/// The replicated log of one node.
#[derive(Debug)]
pub struct RaftLog<S> {
    storage: S,
    /// Entries not yet durable; `unstable[k]` has index `unstable_offset + k`.
    /// Invariant: `unstable_offset <= storage.last_index() + 1`.
    unstable: Vec<Entry>,
    unstable_offset: LogIndex,
    /// The highest index known to be committed.
    /// Invariant: `applied <= committed <= last_index()`.
    committed: LogIndex,
    /// The highest index handed to the application to apply.
    applied: LogIndex,
    /// A snapshot received from the leader and not yet installed in storage: its index and
    /// term. Until then, entries up to its index count as compacted.
    pending_snapshot: Option<(LogIndex, Term)>,
}

impl<S: LogStorage> RaftLog<S> {
    /// The log over `storage`, with the durable commit mark and what the application applied.
    pub fn new(storage: S, committed: LogIndex, applied: LogIndex) -> RaftLog<S> {
        let unstable_offset = storage.last_index().next();
        let floor = storage.first_index().prev();
        RaftLog {
            storage,
            unstable: Vec::new(),
            unstable_offset,
            committed,
            applied: applied.max(floor),
            pending_snapshot: None,
        }
    }

    /// The durable part of the log.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The durable part of the log, for the application to append a [`Ready`](crate::Ready)'s entries.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Gives the storage back.
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// The first index still held.
    pub fn first_index(&self) -> LogIndex {
        match self.pending_snapshot {
            Some((index, _)) => index.next(),
            None => self.storage.first_index(),
        }
    }

    /// The index of the last entry, durable or not.
    pub fn last_index(&self) -> LogIndex {
        // Invariant: with an empty tail, `unstable_offset` is one past the last durable entry
        // (or past a snapshot received but not yet installed).
        self.unstable_offset.plus(self.unstable.len() as u64).prev()
    }

    /// The last index known to be durable in storage (and not superseded by the unstable tail).
    pub fn persisted_index(&self) -> LogIndex {
        self.unstable_offset.prev()
    }

    /// The term of the last entry.
    pub fn last_term(&self) -> Term {
        self.term(self.last_index()).unwrap_or_default()
    }

    /// The highest committed index.
    pub fn committed(&self) -> LogIndex {
        self.committed
    }

    /// The highest index handed to the application.
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// The term of the entry at `index`, or `None` when the log does not hold it.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if let Some((snapshot_index, snapshot_term)) = self.pending_snapshot {
            if index == snapshot_index {
                return Some(snapshot_term);
            }
            if index < snapshot_index {
                return None;
            }
        }
        if index >= self.unstable_offset {
            let position = (index.0 - self.unstable_offset.0) as usize;
            return self.unstable.get(position).map(|entry| entry.term);
        }
        self.storage.term(index).ok()
    }

    /// Whether the log holds an entry at `index` with `term` (index 0 always matches term 0).
    pub fn matches(&self, index: LogIndex, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// §5.4.1: a candidate's log is at least as up-to-date as ours when its last term is later,
    /// or the same with an index at least as high.
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        let my_last_term = self.last_term();
        last_term > my_last_term || (last_term == my_last_term && last_index >= self.last_index())
    }

    /// The entries in `[low, high)`, at most `max_bytes` (but at least one).
    pub fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        let high = high.min(self.last_index().next());
        if low >= high {
            return Ok(Vec::new());
        }
        if low < self.first_index() {
            return Err(StorageError::Compacted {
                index: low,
                first_index: self.first_index(),
            });
        }
        let mut taken = Vec::new();
        if low < self.unstable_offset {
            taken = self
                .storage
                .entries(low, high.min(self.unstable_offset), max_bytes)?;
            let reached = low.plus(taken.len() as u64);
            if reached < self.unstable_offset || reached >= high {
                return Ok(taken);
            }
        }
        let used: u64 = taken.iter().map(Entry::size_bytes).sum();
        let from = low.max(self.unstable_offset);
        let start = (from.0 - self.unstable_offset.0) as usize;
        let end = (high.0 - self.unstable_offset.0) as usize;
        let rest = &self.unstable[start..end];
        if taken.is_empty() {
            return Ok(take_within_bytes(rest, max_bytes));
        }
        let mut total = used;
        for entry in rest {
            total += entry.size_bytes();
            if total > max_bytes {
                break;
            }
            taken.push(entry.clone());
        }
        Ok(taken)
    }

    /// §5.3: if the log has an entry at `prev_index` whose term is `prev_term`, stores
    /// `entries` after it — removing an existing suffix only where it really conflicts — and
    /// moves the commit mark to `min(leader_commit, last index this request verified)`.
    /// Returns that last verified index, or `None` when the consistency check fails; entries
    /// that leave a gap or would replace a committed entry are refused and change nothing.
    pub fn maybe_append(
        &mut self,
        prev_index: LogIndex,
        prev_term: Term,
        leader_commit: LogIndex,
        entries: &[Entry],
    ) -> Result<Option<LogIndex>, AppendError> {
        let mut expected = prev_index.next();
        for entry in entries {
            if entry.index != expected {
                return Err(AppendError::Gap {
                    expected,
                    found: entry.index,
                });
            }
            expected = expected.next();
        }
        if !self.matches(prev_index, prev_term) {
            return Ok(None);
        }
        let last_verified = prev_index.plus(entries.len() as u64);
        // §5.3: a stale request that carries fewer entries must never truncate matching ones.
        if let Some(first_conflict) = entries.iter().position(|e| !self.matches(e.index, e.term)) {
            let conflict_index = entries[first_conflict].index;
            // §5.4 Leader Completeness: a real leader's log holds every committed entry.
            if conflict_index <= self.committed {
                return Err(AppendError::ConflictsWithCommitted {
                    index: conflict_index,
                    committed: self.committed,
                });
            }
            self.append(&entries[first_conflict..]);
        }
        self.commit_to(leader_commit.min(last_verified));
        Ok(Some(last_verified))
    }

    /// Appends entries to the unstable tail, replacing whatever was at or after the first one.
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        assert!(
            first.index > self.committed,
            "append at {} would overwrite the committed prefix (committed {})",
            first.index,
            self.committed
        );
        let tail_end = self.unstable_offset.plus(self.unstable.len() as u64);
        if first.index <= self.unstable_offset {
            self.unstable_offset = first.index;
            self.unstable.clear();
        } else if first.index < tail_end {
            self.unstable
                .truncate((first.index.0 - self.unstable_offset.0) as usize);
        } else {
            assert_eq!(
                first.index, tail_end,
                "appended entries must continue the log"
            );
        }
        self.unstable.extend_from_slice(entries);
    }

    /// Figure 13: a snapshot from the leader replaces the log up to its index. Entries after
    /// it are kept when the log holds its last entry (same index and term); otherwise the whole
    /// log goes. The state machine jumps to the snapshot.
    pub fn restore(&mut self, index: LogIndex, term: Term) {
        let keeps_suffix = self.matches(index, term);
        if !keeps_suffix {
            self.unstable.clear();
            self.unstable_offset = index.next();
        } else if self.unstable_offset <= index {
            let covered = (index.0 - self.unstable_offset.0 + 1) as usize;
            self.unstable.drain(..covered.min(self.unstable.len()));
            self.unstable_offset = index.next();
        }
        self.pending_snapshot = Some((index, term));
        self.committed = self.committed.max(index);
        self.applied = self.applied.max(index);
    }

    /// Storage now holds the snapshot received from the leader with last index `index`. A
    /// later snapshot restored while that one was being written stays pending: storage does
    /// not hold it yet.
    pub fn snapshot_installed(&mut self, index: LogIndex) {
        if self
            .pending_snapshot
            .is_some_and(|(pending, _)| pending == index)
        {
            self.pending_snapshot = None;
        }
    }

    /// The entries not yet durable.
    pub fn unstable_entries(&self) -> &[Entry] {
        &self.unstable
    }

    /// Storage now durably holds everything up to `index` at `term`: drop it from the tail.
    /// Ignored when the tail was rewritten since (the entry at `index` has another term).
    pub fn stable_to(&mut self, index: LogIndex, term: Term) {
        if index < self.unstable_offset || !self.matches(index, term) {
            return;
        }
        let count = (index.0 - self.unstable_offset.0 + 1) as usize;
        self.unstable.drain(..count);
        self.unstable_offset = index.next();
    }

    /// Moves the commit mark forward (never back).
    pub fn commit_to(&mut self, index: LogIndex) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit {index} is past the last index {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// Committed entries not yet handed to the application, at most `max_bytes` (at least one).
    pub fn next_committed_entries(&self, max_bytes: u64) -> Vec<Entry> {
        if self.applied >= self.committed {
            return Vec::new();
        }
        self.entries(self.applied.next(), self.committed.next(), max_bytes)
            .unwrap_or_else(|err| {
                panic!(
                    "committed entries after {} are unreadable: {err}",
                    self.applied
                )
            })
    }

    /// The application has been handed everything up to `index`.
    pub fn applied_to(&mut self, index: LogIndex) {
        assert!(
            index <= self.committed,
            "applied {index} past committed {}",
            self.committed
        );
        self.applied = self.applied.max(index);
    }

    /// Conflict search (§5.3's optimisation): the largest index at or below `index` whose term
    /// is at most `term`, with its term. Both sides of a rejected append use it, so one round
    /// trip skips a whole term of divergent entries.
    pub fn find_conflict_by_term(&self, index: LogIndex, term: Term) -> (LogIndex, Term) {
        let mut at = index.min(self.last_index());
        loop {
            match self.term(at) {
                Some(found) if found <= term => return (at, found),
                Some(_) if at.0 > 0 => at = at.prev(),
                _ => return (at, Term(0)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;
    use crate::types::EntryKind;
    use bytes::Bytes;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: Bytes::new(),
        }
    }

    fn log_with_terms(terms: &[u64]) -> RaftLog<MemStorage> {
        let mut storage = MemStorage::new();
        let entries: Vec<Entry> = terms
            .iter()
            .enumerate()
            .map(|(k, &t)| entry(k as u64 + 1, t))
            .collect();
        storage.append(&entries).unwrap();
        RaftLog::new(storage, LogIndex(0), LogIndex(0))
    }

    fn terms(log: &RaftLog<MemStorage>) -> Vec<u64> {
        (1..=log.last_index().0)
            .map(|i| log.term(LogIndex(i)).unwrap().0)
            .collect()
    }

    #[test]
    fn up_to_date_compares_last_term_then_length() {
        let log = log_with_terms(&[1, 1, 2]);
        // (candidate last index, candidate last term, expected)
        let table = [
            (3, 2, true),
            (4, 2, true),
            (2, 2, false),
            (1, 3, true),
            (9, 1, false),
        ];
        for (index, term, expected) in table {
            assert_eq!(
                log.is_up_to_date(LogIndex(index), Term(term)),
                expected,
                "candidate {index}/{term}"
            );
        }
    }

    #[test]
    fn append_with_mismatched_prev_is_refused() {
        let mut log = log_with_terms(&[1, 1]);
        assert_eq!(
            log.maybe_append(LogIndex(2), Term(2), LogIndex(0), &[entry(3, 2)]),
            Ok(None)
        );
        assert_eq!(
            log.maybe_append(LogIndex(3), Term(1), LogIndex(0), &[]),
            Ok(None),
            "prev past the end"
        );
        assert_eq!(terms(&log), vec![1, 1]);
    }

    #[test]
    fn append_truncates_only_a_real_conflict() {
        let mut log = log_with_terms(&[1, 1, 1, 1]);
        let last = log.maybe_append(
            LogIndex(1),
            Term(1),
            LogIndex(0),
            &[entry(2, 1), entry(3, 3)],
        );
        assert_eq!(last, Ok(Some(LogIndex(3))));
        assert_eq!(
            terms(&log),
            vec![1, 1, 3],
            "index 3 conflicted: it and what follows are replaced"
        );
    }

    #[test]
    fn stale_append_with_fewer_entries_keeps_the_suffix() {
        let mut log = log_with_terms(&[1, 1, 1, 1]);
        let last = log.maybe_append(LogIndex(1), Term(1), LogIndex(9), &[entry(2, 1)]);
        assert_eq!(last, Ok(Some(LogIndex(2))));
        assert_eq!(
            terms(&log),
            vec![1, 1, 1, 1],
            "matching entries survive a stale request"
        );
        assert_eq!(
            log.committed(),
            LogIndex(2),
            "commit is bounded by what the request verified"
        );
    }

    #[test]
    fn entries_with_a_gap_are_refused_and_change_nothing() {
        let mut log = log_with_terms(&[1, 1]);
        assert_eq!(
            log.maybe_append(
                LogIndex(2),
                Term(1),
                LogIndex(0),
                &[entry(3, 1), entry(5, 1)]
            ),
            Err(AppendError::Gap {
                expected: LogIndex(4),
                found: LogIndex(5)
            })
        );
        assert_eq!(
            log.maybe_append(LogIndex(2), Term(1), LogIndex(0), &[entry(4, 1)]),
            Err(AppendError::Gap {
                expected: LogIndex(3),
                found: LogIndex(4)
            })
        );
        assert_eq!(terms(&log), vec![1, 1]);
    }

    #[test]
    fn entries_conflicting_with_the_committed_prefix_are_refused() {
        let mut log = log_with_terms(&[1, 1, 1]);
        log.commit_to(LogIndex(2));
        assert_eq!(
            log.maybe_append(LogIndex(1), Term(1), LogIndex(0), &[entry(2, 2)]),
            Err(AppendError::ConflictsWithCommitted {
                index: LogIndex(2),
                committed: LogIndex(2)
            })
        );
        assert_eq!(
            terms(&log),
            vec![1, 1, 1],
            "Reference: §5.4 Leader Completeness"
        );
    }

    #[test]
    fn commit_never_moves_back() {
        let mut log = log_with_terms(&[1, 1, 1]);
        log.commit_to(LogIndex(3));
        log.commit_to(LogIndex(1));
        assert_eq!(log.committed(), LogIndex(3));
    }

    #[test]
    fn entries_span_storage_and_the_unstable_tail() {
        let mut log = log_with_terms(&[1, 1]);
        log.append(&[entry(3, 2), entry(4, 2)]);
        let read = log.entries(LogIndex(1), LogIndex(5), u64::MAX).unwrap();
        assert_eq!(
            read.iter().map(|e| e.index.0).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        let capped = log
            .entries(LogIndex(2), LogIndex(5), 2 * entry(1, 1).size_bytes())
            .unwrap();
        assert_eq!(
            capped.len(),
            2,
            "max_bytes caps across the storage/unstable boundary"
        );
        let tail_only = log.entries(LogIndex(4), LogIndex(9), u64::MAX).unwrap();
        assert_eq!(tail_only.len(), 1, "high is clamped to the end of the log");
    }

    #[test]
    fn stable_to_ignores_a_rewritten_tail() {
        let mut log = log_with_terms(&[1]);
        log.append(&[entry(2, 1), entry(3, 1)]);
        log.append(&[entry(3, 2)]);
        log.stable_to(LogIndex(3), Term(1));
        assert_eq!(
            log.unstable_entries().len(),
            2,
            "entry 3 was rewritten at term 2: nothing is stable"
        );
        log.stable_to(LogIndex(3), Term(2));
        assert!(log.unstable_entries().is_empty());
        assert_eq!(log.persisted_index(), LogIndex(3));
    }

    #[test]
    fn conflict_by_term_skips_a_whole_term() {
        let log = log_with_terms(&[1, 1, 4, 4, 4, 5, 5]);
        assert_eq!(
            log.find_conflict_by_term(LogIndex(7), Term(3)),
            (LogIndex(2), Term(1))
        );
        assert_eq!(
            log.find_conflict_by_term(LogIndex(7), Term(5)),
            (LogIndex(7), Term(5))
        );
        assert_eq!(
            log.find_conflict_by_term(LogIndex(20), Term(4)),
            (LogIndex(5), Term(4))
        );
        assert_eq!(
            log.find_conflict_by_term(LogIndex(5), Term(0)),
            (LogIndex(0), Term(0))
        );
    }

    #[test]
    fn restored_snapshot_hides_the_prefix_until_installed() {
        // Figure 13: a snapshot that does not match the log replaces all of it.
        let mut log = log_with_terms(&[1, 1, 2]);
        log.restore(LogIndex(5), Term(3));
        assert_eq!(
            log.term(LogIndex(5)),
            Some(Term(3)),
            "the snapshot's last entry"
        );
        assert_eq!(log.term(LogIndex(4)), None, "covered by the snapshot");
        assert_eq!(log.term(LogIndex(2)), None, "old entries are gone");
        assert_eq!(log.term(LogIndex(6)), None, "nothing after it yet");
        assert_eq!(
            (log.first_index(), log.last_index()),
            (LogIndex(6), LogIndex(5))
        );
        assert_eq!((log.committed(), log.applied()), (LogIndex(5), LogIndex(5)));
        assert!(matches!(
            log.entries(LogIndex(3), LogIndex(6), u64::MAX),
            Err(StorageError::Compacted { .. })
        ));
        log.snapshot_installed(LogIndex(5));
        assert_eq!(
            log.term(LogIndex(2)),
            Some(Term(1)),
            "storage answers again (it is installed by now)"
        );
    }

    #[test]
    fn a_second_snapshot_stays_pending_when_the_first_is_installed() {
        let mut log = log_with_terms(&[1, 1, 2]);
        log.restore(LogIndex(5), Term(3));
        // A second, newer snapshot arrives while the first is being written.
        log.restore(LogIndex(9), Term(4));
        log.snapshot_installed(LogIndex(5));
        assert_eq!(
            log.first_index(),
            LogIndex(10),
            "storage does not hold the second snapshot yet: the log starts after it"
        );
        assert_eq!(
            log.term(LogIndex(7)),
            None,
            "covered by the pending snapshot"
        );
        log.snapshot_installed(LogIndex(9));
        assert_eq!(
            log.term(LogIndex(2)),
            Some(Term(1)),
            "storage answers again"
        );
    }

    #[test]
    fn restored_snapshot_keeps_a_matching_suffix() {
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        log.restore(LogIndex(2), Term(1));
        assert_eq!(log.term(LogIndex(2)), Some(Term(1)));
        assert_eq!(log.term(LogIndex(1)), None);
        assert_eq!(
            log.term(LogIndex(3)),
            Some(Term(2)),
            "entries after a matching snapshot stay"
        );
        assert_eq!(log.last_index(), LogIndex(4));
        assert_eq!(log.committed(), LogIndex(2));
    }

    #[test]
    fn restored_snapshot_trims_a_matching_unstable_tail() {
        let mut log = log_with_terms(&[1]);
        log.append(&[
            entry(2, 1),
            entry(3, 2),
            entry(4, 2),
            entry(5, 2),
            entry(6, 2),
        ]);
        log.restore(LogIndex(5), Term(2));
        let tail: Vec<u64> = log.unstable_entries().iter().map(|e| e.index.0).collect();
        assert_eq!(
            tail,
            vec![6],
            "only the entry after the snapshot is left to persist"
        );
        assert_eq!(log.persisted_index(), LogIndex(5));
        assert_eq!(log.last_index(), LogIndex(6));
        assert_eq!(log.term(LogIndex(6)), Some(Term(2)));
    }

    #[test]
    fn committed_entries_come_out_once() {
        let mut log = log_with_terms(&[1, 1, 1]);
        log.commit_to(LogIndex(2));
        assert_eq!(log.next_committed_entries(u64::MAX).len(), 2);
        log.applied_to(LogIndex(2));
        assert!(log.next_committed_entries(u64::MAX).is_empty());
    }
}
