//! The last entries of the node's log as the live view draws them: (index, term, kind) of
//! each, with no payload. Terms come from the WAL's in-memory index (never the disk), so a
//! follower's overwritten suffix shows its new terms at once (§5.3); kinds come from
//! [`RecentKinds`], which the driver fills as batches become durable.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use skiff_raft::{EntryKind, LogIndex, LogStorage, Term};

/// How many of the last entries the view shows per node.
pub const LOG_TAIL_ENTRIES: u64 = 48;

/// One entry of a node's log, as the view draws it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCell {
    /// Its index.
    pub index: u64,
    /// The term of the leader that created it.
    pub term: u64,
    /// What it holds.
    pub kind: CellKind,
}

/// What an entry holds, as the view names it (`noop`, `config`, `command`, `unknown`): a
/// plain value, so the status the driver publishes every tick allocates nothing per cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellKind {
    /// A new leader's empty entry (§8).
    Noop,
    /// A configuration change.
    Config,
    /// A client's command.
    Command,
    /// Written before this process started, so its kind was not seen.
    Unknown,
}

/// The kind of each of the last durable entries, by index: contiguous, at most
/// [`LOG_TAIL_ENTRIES`] of them.
#[derive(Debug, Default)]
pub struct RecentKinds {
    /// `(index, term, kind)`, indexes consecutive. Invariant: `len <= LOG_TAIL_ENTRIES`.
    entries: VecDeque<(LogIndex, Term, EntryKind)>,
}

impl RecentKinds {
    /// Entries became durable: an entry at an index already held replaces it and every later
    /// one (a follower's log overwritten by the leader's, §5.3).
    pub fn persisted(&mut self, entries: &[skiff_raft::Entry]) {
        // Consecutive indexes: earlier ones than the last LOG_TAIL_ENTRIES would only be
        // pushed to be popped again.
        let skipped = entries.len().saturating_sub(LOG_TAIL_ENTRIES as usize);
        for entry in &entries[skipped..] {
            let first = self.entries.front().map(|e| e.0);
            let next = self.entries.back().map(|e| e.0.next());
            match (first, next) {
                (Some(first), Some(next)) if entry.index >= first && entry.index < next => {
                    let keep = usize::try_from(entry.index.0 - first.0).unwrap_or(usize::MAX);
                    self.entries.truncate(keep);
                }
                // A gap (a snapshot installed meanwhile): start again from this entry.
                (_, Some(next)) if entry.index != next => self.entries.clear(),
                _ => {}
            }
            self.entries
                .push_back((entry.index, entry.term, entry.kind));
            if self.entries.len() as u64 > LOG_TAIL_ENTRIES {
                self.entries.pop_front();
            }
        }
    }

    /// The kind of the entry at `index` with `term`, if it is one of the recent ones.
    fn kind(&self, index: LogIndex, term: Term) -> Option<EntryKind> {
        let first = self.entries.front()?.0;
        let position = usize::try_from(index.0.checked_sub(first.0)?).ok()?;
        let &(_, held_term, kind) = self.entries.get(position)?;
        // An index and a term name one entry (the Log Matching Property, §5.3).
        (held_term == term).then_some(kind)
    }
}

/// The last [`LOG_TAIL_ENTRIES`] entries of `log`, oldest first.
pub fn log_tail(log: &impl LogStorage, kinds: &RecentKinds) -> Vec<LogCell> {
    let (first, last) = (log.first_index(), log.last_index());
    let start = first.max(LogIndex(
        last.0.saturating_sub(LOG_TAIL_ENTRIES.saturating_sub(1)),
    ));
    (start.0..=last.0)
        .filter(|&index| index > 0)
        .filter_map(|index| {
            let term = log.term(LogIndex(index)).ok()?;
            let kind = match kinds.kind(LogIndex(index), term) {
                Some(EntryKind::Noop) => CellKind::Noop,
                Some(EntryKind::ConfChange) => CellKind::Config,
                Some(EntryKind::Normal) => CellKind::Command,
                None => CellKind::Unknown,
            };
            Some(LogCell {
                index,
                term: term.0,
                kind,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_raft::Entry;

    fn entry(index: u64, term: u64, kind: EntryKind) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            kind,
            data: vec![7; 10].into(),
        }
    }

    /// The view reads the kinds by these names.
    #[test]
    fn cells_name_their_kinds_as_the_view_reads_them() {
        let names: Vec<String> = [
            CellKind::Noop,
            CellKind::Config,
            CellKind::Command,
            CellKind::Unknown,
        ]
        .iter()
        .map(|kind| serde_json::to_string(kind).unwrap())
        .collect();
        assert_eq!(
            names,
            [r#""noop""#, r#""config""#, r#""command""#, r#""unknown""#]
        );
    }

    #[test]
    fn an_overwritten_suffix_takes_the_new_entries_kinds() {
        let mut kinds = RecentKinds::default();
        kinds.persisted(&[
            entry(1, 1, EntryKind::Noop),
            entry(2, 1, EntryKind::Normal),
            entry(3, 1, EntryKind::Normal),
        ]);
        // The leader of term 2 replaces entries 2 and 3 (§5.3).
        kinds.persisted(&[entry(2, 2, EntryKind::Noop)]);
        assert_eq!(kinds.kind(LogIndex(1), Term(1)), Some(EntryKind::Noop));
        assert_eq!(kinds.kind(LogIndex(2), Term(2)), Some(EntryKind::Noop));
        assert_eq!(
            kinds.kind(LogIndex(2), Term(1)),
            None,
            "the old entry 2 is gone"
        );
        assert_eq!(
            kinds.kind(LogIndex(3), Term(1)),
            None,
            "so is the old entry 3"
        );
    }

    #[test]
    fn only_the_last_entries_are_kept_and_a_gap_starts_again() {
        let mut kinds = RecentKinds::default();
        let many: Vec<Entry> = (1..=LOG_TAIL_ENTRIES + 10)
            .map(|i| entry(i, 1, EntryKind::Normal))
            .collect();
        kinds.persisted(&many);
        assert_eq!(kinds.entries.len() as u64, LOG_TAIL_ENTRIES);
        assert_eq!(kinds.kind(LogIndex(10), Term(1)), None);
        assert_eq!(
            kinds.kind(LogIndex(LOG_TAIL_ENTRIES + 10), Term(1)),
            Some(EntryKind::Normal)
        );
        // A snapshot moved the log past what was held: the next entry starts a new run.
        kinds.persisted(&[entry(500, 3, EntryKind::ConfChange)]);
        assert_eq!(kinds.entries.len(), 1);
        assert_eq!(
            kinds.kind(LogIndex(500), Term(3)),
            Some(EntryKind::ConfChange)
        );
    }
}
