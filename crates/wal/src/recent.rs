//! The entries of the last batches written, kept in memory: the committed entries a node
//! applies next, and those a leader sends a follower that fell a little behind, are nearly
//! always among them, and are then handed over without reading them back from the disk. The
//! entries' data are shared, not copied, so keeping them costs no copy either.

use std::collections::VecDeque;

use skiff_raft::{Entry, LogIndex, Term};

/// At most this many bytes of entries (as [`Entry::size_bytes`] counts them) are kept...
const MAX_RECENT_BYTES: u64 = 4 * 1024 * 1024;
/// ... and at most this many entries.
const MAX_RECENT_ENTRIES: usize = 16 * 1024;

/// Consecutive entries ending at the last one written.
#[derive(Debug, Default)]
pub(crate) struct RecentEntries {
    entries: VecDeque<Entry>,
    bytes: u64,
}

impl RecentEntries {
    /// `batch`, consecutive entries, was written to the end of the log: it replaces every
    /// kept entry from its first index on, as it replaced them in the log (§5.3).
    pub(crate) fn written(&mut self, batch: &[Entry]) {
        let Some(first) = batch.first() else {
            return;
        };
        while self
            .entries
            .back()
            .is_some_and(|kept| kept.index >= first.index)
        {
            self.pop_back();
        }
        if self
            .entries
            .back()
            .is_some_and(|kept| kept.index.next() != first.index)
        {
            self.entries.clear();
            self.bytes = 0;
        }
        for entry in batch {
            self.bytes += entry.size_bytes();
            self.entries.push_back(entry.clone());
        }
        while self.bytes > MAX_RECENT_BYTES || self.entries.len() > MAX_RECENT_ENTRIES {
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= oldest.size_bytes();
        }
    }

    /// The entries `[low, low + count)` if all are kept and each still has the term the log's
    /// index gives for its place (`term_at`). A kept entry with the index and term of the log's
    /// is the log's entry (Log Matching, §5.3), whatever the log went through since.
    pub(crate) fn get(
        &self,
        low: LogIndex,
        count: u64,
        term_at: impl Fn(LogIndex) -> Option<Term>,
    ) -> Option<Vec<Entry>> {
        let oldest = self.entries.front()?.index;
        let start = usize::try_from(low.0.checked_sub(oldest.0)?).ok()?;
        let end = start.checked_add(usize::try_from(count).ok()?)?;
        if count == 0 || end > self.entries.len() {
            return None;
        }
        let kept = self.entries.range(start..end);
        kept.clone()
            .all(|entry| term_at(entry.index) == Some(entry.term))
            .then(|| kept.cloned().collect())
    }

    fn pop_back(&mut self) {
        if let Some(newest) = self.entries.pop_back() {
            self.bytes -= newest.size_bytes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use skiff_raft::EntryKind;

    fn entry(index: u64, term: u64, len: usize) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: Bytes::from(vec![index as u8; len]),
        }
    }

    fn batch(indexes: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        indexes.map(|index| entry(index, term, 10)).collect()
    }

    /// The terms a log holding `entries` gives.
    fn log_of(entries: &[Entry]) -> impl Fn(LogIndex) -> Option<Term> + '_ {
        |index| entries.iter().find(|e| e.index == index).map(|e| e.term)
    }

    #[test]
    fn entries_written_are_handed_back_in_order() {
        let mut recent = RecentEntries::default();
        let written = batch(1..=5, 1);
        recent.written(&written);
        assert_eq!(
            recent.get(LogIndex(2), 3, log_of(&written)),
            Some(written[1..4].to_vec())
        );
        assert_eq!(
            recent.get(LogIndex(5), 2, log_of(&written)),
            None,
            "6 was never written"
        );
        assert_eq!(recent.get(LogIndex(0), 1, log_of(&written)), None);
    }

    #[test]
    fn a_replaced_suffix_is_never_handed_back() {
        let mut recent = RecentEntries::default();
        recent.written(&batch(1..=5, 1));
        // A new leader's entries replace 3..=5 (§5.3).
        let replacing = batch(3..=4, 2);
        recent.written(&replacing);
        let mut log = batch(1..=2, 1);
        log.extend(replacing.iter().cloned());
        assert_eq!(recent.get(LogIndex(1), 4, log_of(&log)), Some(log.clone()));
        assert_eq!(recent.get(LogIndex(5), 1, log_of(&log)), None);
    }

    #[test]
    fn an_entry_the_log_no_longer_holds_is_not_handed_back() {
        let mut recent = RecentEntries::default();
        let written = batch(1..=3, 1);
        recent.written(&written);
        // The log was replaced (a snapshot installed): index 2 now holds another term.
        let other = [entry(1, 1, 10), entry(2, 3, 10), entry(3, 3, 10)];
        assert_eq!(
            recent.get(LogIndex(1), 1, log_of(&other)),
            Some(written[..1].to_vec())
        );
        assert_eq!(recent.get(LogIndex(1), 2, log_of(&other)), None);
    }

    #[test]
    fn a_batch_after_a_gap_starts_over() {
        let mut recent = RecentEntries::default();
        recent.written(&batch(1..=3, 1));
        let after_gap = batch(10..=11, 2);
        recent.written(&after_gap);
        let log: Vec<Entry> = batch(1..=3, 1)
            .into_iter()
            .chain(after_gap.clone())
            .collect();
        assert_eq!(recent.get(LogIndex(1), 1, log_of(&log)), None);
        assert_eq!(recent.get(LogIndex(10), 2, log_of(&log)), Some(after_gap));
    }

    #[test]
    fn only_the_newest_bytes_are_kept() {
        let mut recent = RecentEntries::default();
        let big = 1024 * 1024;
        let written: Vec<Entry> = (1..=6).map(|index| entry(index, 1, big)).collect();
        recent.written(&written);
        assert!(recent.bytes <= MAX_RECENT_BYTES);
        assert_eq!(recent.get(LogIndex(1), 1, log_of(&written)), None);
        assert_eq!(
            recent.get(LogIndex(6), 1, log_of(&written)),
            Some(written[5..].to_vec())
        );
        assert_eq!(recent.entries.len(), 3);
        assert_eq!(
            recent.bytes,
            recent.entries.iter().map(Entry::size_bytes).sum::<u64>()
        );
    }

    #[test]
    fn only_the_newest_entries_are_kept() {
        let mut recent = RecentEntries::default();
        let count = MAX_RECENT_ENTRIES as u64 + 10;
        let written: Vec<Entry> = (1..=count).map(|index| entry(index, 1, 0)).collect();
        recent.written(&written);
        assert_eq!(recent.entries.len(), MAX_RECENT_ENTRIES);
        assert_eq!(recent.get(LogIndex(10), 1, log_of(&written)), None);
        assert_eq!(
            recent.get(LogIndex(11), 1, log_of(&written)),
            Some(written[10..11].to_vec())
        );
        assert_eq!(recent.get(LogIndex(11), 0, log_of(&written)), None);
    }
}
