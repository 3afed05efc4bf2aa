//! Segment files and the in-memory index that says where each live entry is.

use std::collections::VecDeque;
use std::path::PathBuf;

use skiff_raft::{LogIndex, Term};

use crate::record::{LogStart, ENTRY_RECORD_OVERHEAD_BYTES};

/// The file name of the segment created when the next entry had index `first_index`.
pub fn file_name(first_index: LogIndex) -> String {
    format!("seg-{:020}.wal", first_index.0)
}

/// The first index in a segment file name, or `None` for any other file.
pub fn parse_file_name(name: &str) -> Option<LogIndex> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogIndex)
}

/// One segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The file.
    pub path: PathBuf,
    /// The bytes written to it (all durable, outside a failed write).
    pub len_bytes: u64,
    /// The file's length: `len_bytes`, then zeros written ahead of the next batches.
    pub allocated_bytes: u64,
}

/// Where one live entry's record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The first index of the segment that holds it (its key in the segment map).
    pub segment: LogIndex,
    /// The record's byte offset in that segment.
    pub offset: u64,
    /// The record's frame length.
    pub frame_bytes: u64,
    /// The entry's term, kept in memory because Raft asks for terms far more than for entries.
    pub term: Term,
}

impl Slot {
    /// The entry's payload length, from the size of its record.
    pub fn data_len(&self) -> u64 {
        self.frame_bytes.saturating_sub(ENTRY_RECORD_OVERHEAD_BYTES)
    }
}

/// The live entries of the log, by index.
///
/// During recovery the index may begin with entries known to exist but held by segments that
/// compaction deleted: those are `(start.index, base]`, and a later log start record must cover
/// them. Once open, `base == start.index`.
#[derive(Clone, Debug, Default)]
pub(crate) struct EntryIndex {
    /// Entries up to here are compacted.
    pub start: LogStart,
    /// Invariant: `base >= start.index`.
    base: LogIndex,
    /// `slots[k]` is the entry at index `base + 1 + k`.
    slots: VecDeque<Slot>,
}

impl EntryIndex {
    /// An index that starts at `start` and whose entries up to `last` are not known.
    pub fn resuming(start: LogStart, last: LogIndex) -> EntryIndex {
        assert!(
            last >= start.index,
            "log ends at {last} before its start {start:?}"
        );
        EntryIndex {
            start,
            base: last,
            slots: VecDeque::new(),
        }
    }

    /// The last index whose entry is unknown (`start.index` when none are).
    pub fn unknown_up_to(&self) -> LogIndex {
        self.base
    }

    pub fn first_index(&self) -> LogIndex {
        self.start.index.next()
    }

    pub fn last_index(&self) -> LogIndex {
        self.base.plus(self.slots.len() as u64)
    }

    pub fn slot(&self, index: LogIndex) -> Option<&Slot> {
        let position = index.0.checked_sub(self.base.0)?.checked_sub(1)?;
        self.slots.get(usize::try_from(position).ok()?)
    }

    /// The term at `index`: the start's term, or a known entry's.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.start.index {
            return Some(self.start.term);
        }
        self.slot(index).map(|slot| slot.term)
    }

    /// Drops every entry at `index` or after.
    pub fn truncate_from(&mut self, index: LogIndex) {
        debug_assert!(
            index > self.start.index,
            "truncating into the compacted prefix"
        );
        if index <= self.base {
            self.slots.clear();
            self.base = index.prev();
        } else {
            let keep = index.0 - self.base.0 - 1;
            self.slots
                .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        }
    }

    /// Appends the entry at `last_index() + 1`.
    pub fn push(&mut self, slot: Slot) {
        self.slots.push_back(slot);
    }

    /// Moves the start to `start`, keeping the entries after it or dropping every entry.
    pub fn compact(&mut self, start: LogStart, keeps_later_entries: bool) {
        if !keeps_later_entries || start.index >= self.last_index() {
            self.slots.clear();
            self.base = start.index;
        } else if start.index > self.base {
            let drop = start.index.0 - self.base.0;
            self.slots
                .drain(..usize::try_from(drop).unwrap_or(usize::MAX));
            self.base = start.index;
        }
        self.start = start;
    }

    /// The live entries held in segments, in index order.
    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_sort_by_index() {
        assert_eq!(file_name(LogIndex(42)), "seg-00000000000000000042.wal");
        assert_eq!(
            parse_file_name(&file_name(LogIndex(u64::MAX))),
            Some(LogIndex(u64::MAX))
        );
        assert!(file_name(LogIndex(9)) < file_name(LogIndex(10)));
        for other in [
            "seg-42.wal",
            "seg-0000000000000000004x.wal",
            "seg-00000000000000000042.wal.tmp",
            "x",
        ] {
            assert_eq!(parse_file_name(other), None, "{other}");
        }
    }

    fn slot(term: u64) -> Slot {
        Slot {
            segment: LogIndex(1),
            offset: 0,
            frame_bytes: 0,
            term: Term(term),
        }
    }

    #[test]
    fn truncation_into_the_unknown_prefix_shrinks_it() {
        let mut index = EntryIndex::resuming(LogStart::default(), LogIndex(10));
        index.push(slot(1));
        index.push(slot(1));
        assert_eq!(index.last_index(), LogIndex(12));
        index.truncate_from(LogIndex(8));
        assert_eq!(index.last_index(), LogIndex(7));
        assert_eq!(index.unknown_up_to(), LogIndex(7));
        index.push(slot(2));
        assert_eq!(index.term(LogIndex(8)), Some(Term(2)));
        index.compact(
            LogStart {
                index: LogIndex(7),
                term: Term(1),
            },
            true,
        );
        assert_eq!(index.unknown_up_to(), LogIndex(7));
        assert_eq!(index.first_index(), LogIndex(8));
        assert_eq!(index.term(LogIndex(7)), Some(Term(1)));
    }
}
