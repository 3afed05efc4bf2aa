//! The in-memory index of the live entries: where each entry's record is, and its term.
//!
//! A log holds every entry since its last compaction, so the index is what a node keeps in
//! memory per entry: with a snapshot every 100,000 entries and a slow snapshot, a few hundred
//! thousand of them; after a restart from a long log without snapshots, millions. It keeps 8
//! bytes an entry: what changes from one entry to the next (the record's offset and length)
//! in one deque, and what stays the same over long runs of entries (the segment that holds
//! them, their term) once a run.

use std::collections::VecDeque;

use skiff_raft::{LogIndex, Term};

use crate::record::{LogStart, ENTRY_RECORD_OVERHEAD_BYTES, MAX_RECORD_BYTES};

/// Where one live entry's record is, and the entry's term.
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

// Every record's frame fits the 32 bits an entry's length is kept in: records are refused
// past `MAX_RECORD_BYTES`, when written and when read.
const _: () = assert!(MAX_RECORD_BYTES as u64 + ENTRY_RECORD_OVERHEAD_BYTES <= u32::MAX as u64);

/// One entry's record, relative to its run's [`Placement`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packed {
    /// The record's offset past its placement's `base_offset`.
    offset: u32,
    /// The record's frame length.
    frame_bytes: u32,
}

/// The entries from `first` on (up to the next placement's) are in `segment`, each at its
/// packed offset past `base_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Placement {
    first: LogIndex,
    segment: LogIndex,
    base_offset: u64,
}

/// Terms by runs: the entries from `first` on (up to the next run's) have `term`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TermRun {
    first: LogIndex,
    term: Term,
}

/// Where each live entry is, by index.
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
    /// `packed[k]` is the entry at index `base + 1 + k`.
    packed: VecDeque<Packed>,
    /// Invariant: empty exactly when `packed` is; otherwise the first one's `first` is at most
    /// `base + 1`, the others' are in `(base + 1, last_index()]` and increase, and each covers at
    /// least one live entry.
    placements: VecDeque<Placement>,
    /// Invariant: as `placements`, for terms.
    terms: VecDeque<TermRun>,
    /// The most entries held since the last compaction.
    peak_len: usize,
}

/// A deque of at least this many entries' capacity is shrunk at a compaction when the whole
/// stretch since the one before used under a quarter of it, so that one long stretch without
/// compaction (a slow snapshot) does not keep its memory for the node's life, and stretches
/// of the usual length never shrink and regrow it.
const SHRINK_ABOVE_ENTRIES: usize = 64 * 1024;

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
            ..EntryIndex::default()
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
        self.base.plus(self.packed.len() as u64)
    }

    /// Where the entry at `index` is, if it is a known live entry.
    pub fn slot(&self, index: LogIndex) -> Option<Slot> {
        let packed = self.packed.get(self.position(index)?)?;
        let placement = self.placements[run_of(&self.placements, index, |p| p.first)];
        Some(Slot {
            segment: placement.segment,
            offset: placement.base_offset + u64::from(packed.offset),
            frame_bytes: u64::from(packed.frame_bytes),
            term: self.terms[run_of(&self.terms, index, |run| run.first)].term,
        })
    }

    /// The term at `index`: the start's term, or a known entry's.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.start.index {
            return Some(self.start.term);
        }
        if self.position(index)? >= self.packed.len() {
            return None;
        }
        Some(self.terms[run_of(&self.terms, index, |run| run.first)].term)
    }

    /// The place of `index`'s entry in `packed`, if it is past `base`.
    fn position(&self, index: LogIndex) -> Option<usize> {
        let position = index.0.checked_sub(self.base.0)?.checked_sub(1)?;
        usize::try_from(position).ok()
    }

    /// Drops every entry at `index` or after.
    pub fn truncate_from(&mut self, index: LogIndex) {
        debug_assert!(
            index > self.start.index,
            "truncating into the compacted prefix"
        );
        if index <= self.base {
            self.base = index.prev();
            self.clear();
            return;
        }
        let keep = index.0 - self.base.0 - 1;
        self.packed
            .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        if self.packed.is_empty() {
            self.clear();
            return;
        }
        while self.placements.back().is_some_and(|p| p.first >= index) {
            self.placements.pop_back();
        }
        while self.terms.back().is_some_and(|run| run.first >= index) {
            self.terms.pop_back();
        }
    }

    /// Appends the entry at `last_index() + 1`.
    pub fn push(&mut self, slot: Slot) {
        self.peak_len = self.peak_len.max(self.packed.len() + 1);
        let index = self.last_index().next();
        let frame_bytes = u32::try_from(slot.frame_bytes)
            .expect("a record's frame is at most MAX_RECORD_BYTES plus its overhead");
        let relative = match self.placements.back() {
            Some(p) if p.segment == slot.segment => slot
                .offset
                .checked_sub(p.base_offset)
                .and_then(|past| u32::try_from(past).ok()),
            _ => None,
        };
        let offset = relative.unwrap_or_else(|| {
            self.placements.push_back(Placement {
                first: index,
                segment: slot.segment,
                base_offset: slot.offset,
            });
            0
        });
        if self.terms.back().map(|run| run.term) != Some(slot.term) {
            self.terms.push_back(TermRun {
                first: index,
                term: slot.term,
            });
        }
        self.packed.push_back(Packed {
            offset,
            frame_bytes,
        });
    }

    /// Moves the start to `start`, keeping the entries after it or dropping every entry.
    pub fn compact(&mut self, start: LogStart, keeps_later_entries: bool) {
        if !keeps_later_entries || start.index >= self.last_index() {
            self.base = start.index;
            self.clear();
        } else if start.index > self.base {
            let drop = start.index.0 - self.base.0;
            self.packed
                .drain(..usize::try_from(drop).unwrap_or(usize::MAX));
            self.base = start.index;
            let first_live = start.index.next();
            while self
                .placements
                .get(1)
                .is_some_and(|p| p.first <= first_live)
            {
                self.placements.pop_front();
            }
            while self.terms.get(1).is_some_and(|run| run.first <= first_live) {
                self.terms.pop_front();
            }
            let capacity = self.packed.capacity();
            if capacity >= SHRINK_ABOVE_ENTRIES && self.peak_len < capacity / 4 {
                self.packed.shrink_to(self.peak_len.saturating_mul(2));
            }
            self.peak_len = self.packed.len();
        }
        self.start = start;
    }

    /// Forgets every entry (not the start or the base), and the memory they took.
    fn clear(&mut self) {
        self.packed = VecDeque::new();
        self.placements = VecDeque::new();
        self.terms = VecDeque::new();
        self.peak_len = 0;
    }

    /// The segments that hold live entries, in index order.
    pub fn segments_in_use(&self) -> impl Iterator<Item = LogIndex> + '_ {
        self.placements.iter().map(|p| p.segment)
    }
}

/// The run (of `runs`, sorted by first index, the first at or below `index`) that `index` is in.
fn run_of<T>(runs: &VecDeque<T>, index: LogIndex, first: impl Fn(&T) -> LogIndex) -> usize {
    // Raft asks mostly about the newest entries: the last run, at once.
    let last = runs.len().saturating_sub(1);
    if runs.back().is_some_and(|run| first(run) <= index) {
        return last;
    }
    runs.partition_point(|run| first(run) <= index)
        .saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn slot(segment: u64, offset: u64, frame_bytes: u64, term: u64) -> Slot {
        Slot {
            segment: LogIndex(segment),
            offset,
            frame_bytes,
            term: Term(term),
        }
    }

    #[test]
    fn truncation_into_the_unknown_prefix_shrinks_it() {
        let mut index = EntryIndex::resuming(LogStart::default(), LogIndex(10));
        index.push(slot(1, 0, 0, 1));
        index.push(slot(1, 0, 0, 1));
        assert_eq!(index.last_index(), LogIndex(12));
        index.truncate_from(LogIndex(8));
        assert_eq!(index.last_index(), LogIndex(7));
        assert_eq!(index.unknown_up_to(), LogIndex(7));
        index.push(slot(1, 0, 0, 2));
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

    #[test]
    fn an_entry_past_four_gib_of_its_segment_or_in_the_next_segment_is_found_where_it_was_put() {
        let mut index = EntryIndex::resuming(LogStart::default(), LogIndex(0));
        let far = u64::from(u32::MAX) + 100;
        let slots = [
            slot(1, 0, 40, 1),
            slot(1, 40, 50, 1),
            slot(1, far, 60, 2),
            slot(1, far + 60, 70, 2),
            slot(5, 0, 80, 2),
            slot(
                5,
                80,
                u64::from(MAX_RECORD_BYTES) + ENTRY_RECORD_OVERHEAD_BYTES,
                3,
            ),
        ];
        for s in slots {
            index.push(s);
        }
        for (k, s) in slots.iter().enumerate() {
            let at = LogIndex(k as u64 + 1);
            assert_eq!(index.slot(at), Some(*s), "entry {at}");
            assert_eq!(index.term(at), Some(s.term), "entry {at}");
        }
        assert_eq!(index.slot(LogIndex(7)), None);
        assert_eq!(index.term(LogIndex(7)), None);
        assert_eq!(
            index.segments_in_use().collect::<Vec<_>>(),
            [LogIndex(1), LogIndex(1), LogIndex(5)]
        );
    }

    /// One step of the index's life.
    #[derive(Clone, Debug)]
    enum Op {
        /// An entry appended: in the last one's segment or a new one, with the last one's
        /// term or a higher one, its record past the last one's, across 4 GiB, or (a record
        /// rewritten after a crash, say) before it.
        Push {
            new_segment: bool,
            new_term: bool,
            offset: Offset,
            frame_bytes: u32,
        },
        /// A suffix from this many entries before the end is replaced (§5.3); past the known
        /// entries, into the unknown prefix.
        TruncateBack(u64),
        /// The log is compacted this many entries in, keeping the later entries or not.
        Compact(u64, bool),
    }

    #[derive(Clone, Copy, Debug)]
    enum Offset {
        Next,
        Far,
        Back,
    }

    fn op() -> impl Strategy<Value = Op> {
        let offset =
            prop_oneof![4 => Just(Offset::Next), 1 => Just(Offset::Far), 1 => Just(Offset::Back)];
        prop_oneof![
            8 => (any::<bool>(), any::<bool>(), offset, 1u32..5000).prop_map(
                |(new_segment, new_term, offset, frame_bytes)| Op::Push {
                    new_segment,
                    new_term,
                    offset,
                    frame_bytes
                }
            ),
            1 => (0u64..8).prop_map(Op::TruncateBack),
            1 => (0u64..8, prop::bool::weighted(0.8)).prop_map(|(into, keep)| Op::Compact(into, keep)),
        ]
    }

    impl EntryIndex {
        /// Checks the invariants the fields document.
        fn check_invariants(&self) {
            assert!(self.base >= self.start.index);
            let empty = self.packed.is_empty();
            assert_eq!(self.placements.is_empty(), empty, "{self:?}");
            assert_eq!(self.terms.is_empty(), empty, "{self:?}");
            assert!(self.peak_len >= self.packed.len());
            let (first_live, last) = (self.base.next(), self.last_index());
            for firsts in [
                self.placements.iter().map(|p| p.first).collect::<Vec<_>>(),
                self.terms.iter().map(|run| run.first).collect(),
            ] {
                let Some((head, rest)) = firsts.split_first() else {
                    continue;
                };
                assert!(*head <= first_live, "{self:?}");
                // Strictly increasing, each after the first live entry (so every run covers
                // one at least) and at most the last.
                let mut before = first_live;
                for &first in rest {
                    assert!(first > before && first <= last, "{self:?}");
                    before = first;
                }
            }
        }
    }

    proptest! {
        /// The packed index answers every lookup as a plain list of the same slots would,
        /// and keeps its invariants, through appends, truncations and compactions in any
        /// order, from a log whose first entries are not known yet (as in recovery).
        #[test]
        fn the_index_answers_as_a_list_of_its_slots_would(
            start_at in 0u64..5,
            unknown in 0u64..4,
            ops in prop::collection::vec(op(), 1..200),
        ) {
            let mut start = LogStart { index: LogIndex(start_at), term: Term(1) };
            let mut index = EntryIndex::resuming(start, LogIndex(start_at + unknown));
            // The model: the entries after `base`, and `base`.
            let mut base = start_at + unknown;
            let mut model: Vec<Slot> = Vec::new();
            let (mut segment, mut term, mut offset) = (1u64, 1u64, 1u64 << 20);
            for op in ops {
                match op {
                    Op::Push { new_segment, new_term, offset: how, frame_bytes } => {
                        let at = base + model.len() as u64 + 1;
                        if new_segment {
                            segment = at.max(segment + 1);
                            offset = 1 << 20;
                        }
                        if new_term {
                            term += 1;
                        }
                        match how {
                            Offset::Next => {}
                            Offset::Far => offset += u64::from(u32::MAX),
                            Offset::Back => offset = offset.saturating_sub(300_000),
                        }
                        let s = slot(segment, offset, u64::from(frame_bytes), term);
                        offset += u64::from(frame_bytes);
                        index.push(s);
                        model.push(s);
                    }
                    Op::TruncateBack(back) => {
                        // From an index after the start, into the unknown prefix if `back`
                        // reaches past the known entries.
                        let from = (base + model.len() as u64 + 1).saturating_sub(back).max(start.index.0 + 1);
                        if from <= base {
                            base = from - 1;
                            model.clear();
                        } else {
                            model.truncate((from - base - 1) as usize);
                        }
                        index.truncate_from(LogIndex(from));
                    }
                    Op::Compact(into, keep) => {
                        let to = start.index.0 + into;
                        let last = base + model.len() as u64;
                        let term_at = |i: u64| if i == start.index.0 {
                            Some(start.term)
                        } else if i > base && i <= last {
                            Some(model[(i - base - 1) as usize].term)
                        } else {
                            None
                        };
                        // A start the log knows the term of, or a later one (from a snapshot).
                        let new_start = LogStart {
                            index: LogIndex(to),
                            term: term_at(to).unwrap_or(Term(term)),
                        };
                        let keeps = keep && term_at(to).is_some();
                        index.compact(new_start, keeps);
                        if !keeps || to >= last {
                            base = to;
                            model.clear();
                        } else if to > base {
                            model.drain(..(to - base) as usize);
                            base = to;
                        }
                        start = new_start;
                    }
                }
                index.check_invariants();
                prop_assert_eq!(index.first_index(), start.index.next());
                prop_assert_eq!(index.unknown_up_to(), LogIndex(base));
                prop_assert_eq!(index.last_index(), LogIndex(base + model.len() as u64));
                prop_assert_eq!(index.term(start.index), Some(start.term));
                for (k, s) in model.iter().enumerate() {
                    let at = LogIndex(base + k as u64 + 1);
                    prop_assert_eq!(index.slot(at), Some(*s));
                    prop_assert_eq!(index.term(at), Some(s.term));
                }
                for unknown in (start.index.0 + 1)..=base {
                    prop_assert_eq!(index.slot(LogIndex(unknown)), None);
                    prop_assert_eq!(index.term(LogIndex(unknown)), None);
                }
                let past = index.last_index().next();
                prop_assert_eq!(index.slot(past), None);
                prop_assert_eq!(index.term(past), None);
                let mut in_use: Vec<LogIndex> = model.iter().map(|s| s.segment).collect();
                in_use.dedup();
                let mut listed: Vec<LogIndex> = index.segments_in_use().collect();
                listed.dedup();
                prop_assert_eq!(listed, in_use);
            }
        }
    }

    #[test]
    fn a_long_stretch_without_compaction_gives_its_memory_back_after_the_next_usual_one() {
        let mut index = EntryIndex::resuming(LogStart::default(), LogIndex(0));
        let mut next = 1u64;
        let mut stretch = |index: &mut EntryIndex, entries: u64, keep: u64| {
            for _ in 0..entries {
                index.push(slot(1, next * 100, 100, 1));
                next += 1;
            }
            let to = LogIndex(next - 1 - keep);
            index.compact(
                LogStart {
                    index: to,
                    term: Term(1),
                },
                true,
            );
            index.packed.capacity()
        };
        let usual = 20_000;
        let first = stretch(&mut index, usual, 1000);
        // The usual stretch again neither shrinks the deque nor grows it.
        assert_eq!(stretch(&mut index, usual, 1000), first);
        // A long one (a slow snapshot) grows it; its own compaction keeps it, since it was used.
        let long = stretch(&mut index, SHRINK_ABOVE_ENTRIES as u64 * 16, 1000);
        assert!(long >= SHRINK_ABOVE_ENTRIES * 16);
        // After the next usual stretch it is given back, and it stays as small after that.
        let after = stretch(&mut index, usual, 1000);
        assert!(
            after < long / 4,
            "capacity {after} after, {long} during the long stretch"
        );
        assert_eq!(stretch(&mut index, usual, 1000), after);
        let last = LogIndex(next - 1);
        assert_eq!(index.slot(last), Some(slot(1, last.0 * 100, 100, 1)));
    }
}
