//! [`Slice`]: one slice of the store's scan order, its keys in one sorted array of
//! `(scan hash, key's slot)` pairs, 16 bytes each, shared between clones of the store.
//!
//! A lookup indexes the slice table, binary-searches the hashes (a slice of a few dozen keys
//! is a few cache lines, read in place, where a tree reads a node at each level) and reads
//! the one slot the hash names, which holds the key's bytes (for a hash tie and the final
//! check) and its state. A clone shares the array; the first write to the slice after it
//! copies the array (its pointers, not the keys or states), and a write to a key's slot
//! copies that slot alone. A slice is short by construction (the keyspace splits the store
//! into more slices as it grows), so a new key, which rebuilds the array one longer, moves a
//! few dozen pointers.
//!
//! Keys chosen to share their hash's top bits (the scan hash is public: every replica must
//! order keys alike) could pile into one slice, and a new key there would copy the whole pile.
//! So a slice longer than [`MAX_FLAT_KEYS`] is a persistent B+tree (`imbl`) instead, whose
//! writes stay O(log n) however the keys fall; an honest store's slices reach that length
//! near four million keys (256 a slice on average). A tree stays a tree when it shrinks, until
//! the store's next split (if any) rebuilds every slice.

use std::cmp::Ordering;
use std::sync::Arc;

use imbl::ordmap::RangedIter;
use imbl::shared_ptr::DefaultSharedPtr;
use imbl::OrdMap;

use super::{KeyBytes, Probe, Ranked, Stored};

/// The most keys a slice holds in one array (4 KiB of entries, copied whole by a new key);
/// a longer one is a tree.
pub(super) const MAX_FLAT_KEYS: usize = 256;

/// A key and its state: what a slice's entry points to.
#[derive(Clone, Debug)]
pub(super) struct Slot {
    pub(super) key: KeyBytes,
    pub(super) stored: Stored,
}

/// One key of a slice: its scan hash beside the pointer, so that a search reads the array
/// alone until the hash matches.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    hash: u64,
    /// Invariant: `Some` in every array a slice holds: only an unshared array on its way out
    /// has its slots taken ([`Entry::moved`], [`Slice::remove`], [`Slice::into_sorted`]), so
    /// that they move into its successor without touching their counts.
    slot: Option<Arc<Slot>>,
}

impl Entry {
    fn new(hash: u64, slot: Arc<Slot>) -> Entry {
        Entry {
            hash,
            slot: Some(slot),
        }
    }

    fn slot(&self) -> &Arc<Slot> {
        self.slot.as_ref().expect("a slice entry holds its slot")
    }

    fn slot_mut(&mut self) -> &mut Arc<Slot> {
        self.slot.as_mut().expect("a slice entry holds its slot")
    }

    /// This entry, moved out of an unshared array on its way out (its slot's count
    /// untouched), leaving the slot taken.
    fn moved(&mut self) -> Entry {
        Entry {
            hash: self.hash,
            slot: self.slot.take(),
        }
    }

    /// This entry's place against `probe`: by hash, then (on a tie) by the key's bytes.
    fn cmp_to(&self, probe: Probe<'_>) -> Ordering {
        self.hash
            .cmp(&probe.0)
            .then_with(|| self.slot().key.as_slice().cmp(probe.1))
    }
}

/// The keys of one slice in `(scan hash, key)` order.
#[derive(Clone, Debug)]
pub(super) enum Slice {
    /// Up to [`MAX_FLAT_KEYS`] keys in one array; `None` while it has none, so an empty slice
    /// allocates nothing.
    Flat(Option<Arc<[Entry]>>),
    /// More keys than that, under `(hash, key)`.
    Tree(OrdMap<Ranked, Arc<Slot>>),
}

impl Default for Slice {
    fn default() -> Slice {
        Slice::Flat(None)
    }
}

/// The entries of a flat slice (none for a tree).
fn flat(entries: &Option<Arc<[Entry]>>) -> &[Entry] {
    entries.as_deref().unwrap_or(&[])
}

/// Which of a lookup's reads a prefetch starts ([`Slice::prefetch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prefetch {
    /// The slice's array of hashes.
    Array,
    /// The slot the key's hash names (its array should be loaded by then).
    Slot,
    /// The start of the string the slot holds (the slot should be loaded by then): a write
    /// that replaces it frees it (unless a frozen copy shares it), and the allocator hands
    /// those bytes to the next value decoded of the same size class, so the copy into them
    /// need not wait on memory.
    Value,
}

/// Lines of a string's bytes a [`Prefetch::Value`] loads at most: 1 KiB. A longer value's
/// copy streams, and the processor's own prefetcher follows it (in `skiff-bench apply`, 16
/// lines against 4 took 1 KiB writes from 1,088 to 929 ns and left 16 KiB writes level).
pub(super) const VALUE_LINES: usize = 16;

/// Entries of an array in one 64-byte cache line.
const ENTRIES_PER_LINE: usize = 64 / std::mem::size_of::<Entry>();

/// Arrays up to this many lines are loaded whole; a longer one by its first, middle and last
/// lines (where a binary search of it begins and the ends it narrows to).
const WHOLE_ARRAY_LINES: usize = 8;

/// A slot's allocation: the `Arc`'s two counts, then the slot (as the test
/// `a_state_is_48_bytes_and_a_slot_with_its_counts_96` checks).
#[cfg(target_pointer_width = "64")]
const SLOT_ALLOCATION_BYTES: usize = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<Slot>();
#[cfg(target_pointer_width = "64")]
const _: () = assert!(SLOT_ALLOCATION_BYTES == 96);

/// Asks the processor to start loading the cache line at `at` (a hint: nothing is read, and
/// any address is allowed).
#[inline]
fn prefetch_line<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// Starts loading the cache lines `bytes` spans, the first `at_most` of them.
fn prefetch_lines(bytes: &[u8], at_most: usize) {
    let (first_line, lines) = lines_spanned(bytes, at_most);
    for line in 0..lines {
        prefetch_line(first_line.wrapping_add(line * 64));
    }
}

/// The start of the cache line `bytes` begins in, and how many lines from there it spans, at
/// most `at_most`: a string that starts mid-line has its last line counted too.
pub(super) fn lines_spanned(bytes: &[u8], at_most: usize) -> (*const u8, usize) {
    let start = bytes.as_ptr();
    let into_line = start as usize % 64;
    let lines = if bytes.is_empty() {
        0
    } else {
        (into_line + bytes.len()).div_ceil(64)
    };
    (start.wrapping_sub(into_line), lines.min(at_most))
}

/// The first entry of a flat slice with `probe`'s hash, if any (a hint's guess at the
/// key's entry: keys whose hashes tie are rare, and a wrong guess only loads the wrong key).
fn first_with_hash<'e>(entries: &'e [Entry], probe: Probe<'_>) -> Option<&'e Entry> {
    let at = entries.partition_point(|entry| entry.hash < probe.0);
    entries.get(at).filter(|entry| entry.hash == probe.0)
}

/// The position of `probe`'s key in a flat slice, or where it would go.
fn search(entries: &[Entry], probe: Probe<'_>) -> Result<usize, usize> {
    entries.binary_search_by(|entry| entry.cmp_to(probe))
}

impl Slice {
    pub(super) fn len(&self) -> usize {
        match self {
            Slice::Flat(entries) => flat(entries).len(),
            Slice::Tree(tree) => tree.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn get(&self, probe: Probe<'_>) -> Option<&Stored> {
        match self {
            Slice::Flat(entries) => {
                let entries = flat(entries);
                let at = search(entries, probe).ok()?;
                Some(&entries[at].slot().stored)
            }
            Slice::Tree(tree) => tree.get(&probe).map(|slot| &slot.stored),
        }
    }

    pub(super) fn contains(&self, probe: Probe<'_>) -> bool {
        match self {
            Slice::Flat(entries) => search(flat(entries), probe).is_ok(),
            Slice::Tree(tree) => tree.contains_key(&probe),
        }
    }

    /// Starts loading what a write to `probe`'s key reads: the array (whole if short); or,
    /// once that is at hand, the slot of the first entry with `probe`'s hash, counts
    /// included; or, once the slot is at hand too (this stage reads it), the first
    /// [`VALUE_LINES`] lines of the string it holds, unless a frozen copy shares the slot
    /// (the write then frees nothing). A hint: nothing changes; a tree is left alone.
    pub(super) fn prefetch(&self, probe: Probe<'_>, stage: Prefetch) {
        let Slice::Flat(Some(entries)) = self else {
            return;
        };
        match stage {
            Prefetch::Array if entries.len() <= WHOLE_ARRAY_LINES * ENTRIES_PER_LINE => {
                // A line's worth of entries starts in each line but the last, which the
                // counts before the array can push the last entry into.
                for line in entries.chunks(ENTRIES_PER_LINE) {
                    prefetch_line(line.as_ptr());
                }
                if let Some(last) = entries.last() {
                    prefetch_line(last);
                }
            }
            Prefetch::Array => {
                for at in [0, entries.len() / 2, entries.len() - 1] {
                    prefetch_line(&entries[at]);
                }
            }
            Prefetch::Slot => {
                if let Some(entry) = first_with_hash(entries, probe) {
                    // The counts (two words) sit before the slot; 96 bytes in all, two lines
                    // when the allocator places it on a 32-byte boundary (jemalloc's class
                    // for 96 bytes does; a 16-byte boundary leaves a quarter on three).
                    let counts = Arc::as_ptr(entry.slot())
                        .cast::<u8>()
                        .wrapping_sub(2 * std::mem::size_of::<usize>());
                    prefetch_line(counts);
                    prefetch_line(counts.wrapping_add(64));
                }
            }
            Prefetch::Value => {
                let Some(slot) = first_with_hash(entries, probe).map(Entry::slot) else {
                    return;
                };
                // Shared with a frozen copy, the string outlives the write.
                if Arc::strong_count(slot) > 1 {
                    return;
                }
                if let Some(bytes) = slot.stored.value.string_bytes() {
                    prefetch_lines(bytes, VALUE_LINES);
                }
            }
        }
    }

    /// The slot of `probe`'s key, to change it: the array (or the tree's path) is copied
    /// first if a clone of the store still shares it; the slot itself is the caller's to copy
    /// or reuse.
    pub(super) fn slot_mut(&mut self, probe: Probe<'_>) -> Option<&mut Arc<Slot>> {
        match self {
            Slice::Flat(entries) => {
                let at = search(flat(entries), probe).ok()?;
                let entries = Arc::make_mut(entries.as_mut()?);
                Some(entries[at].slot_mut())
            }
            Slice::Tree(tree) => tree.get_mut(&probe),
        }
    }

    /// Adds `slot` under `hash`; the key must not be here yet.
    pub(super) fn insert_new(&mut self, hash: u64, slot: Arc<Slot>) {
        match self {
            Slice::Tree(tree) => {
                tree.insert((hash, slot.key.clone()), slot);
            }
            Slice::Flat(entries) => {
                let probe = Probe(hash, slot.key.as_slice());
                let at =
                    search(flat(entries), probe).expect_err("insert_new of a key the slice holds");
                let new = Entry::new(hash, slot);
                *self = Slice::from_entries(spliced(entries, at, Some(new)));
            }
        }
    }

    /// Takes `probe`'s key out; its slot comes back. A tree stays a tree (until a split
    /// rebuilds the slices).
    pub(super) fn remove(&mut self, probe: Probe<'_>) -> Option<Arc<Slot>> {
        match self {
            Slice::Tree(tree) => tree.remove(&probe),
            Slice::Flat(entries) => {
                let at = search(flat(entries), probe).ok()?;
                let removed = entries
                    .as_mut()
                    .and_then(|shared| match Arc::get_mut(shared) {
                        Some(unshared) => unshared[at].slot.take(),
                        None => shared[at].slot.clone(),
                    });
                *self = Slice::from_entries(spliced(entries, at, None));
                removed
            }
        }
    }

    /// A slice of `entries`, which must be in `(hash, key)` order (a split's, from the
    /// store's own order).
    pub(super) fn from_sorted(entries: Vec<(u64, Arc<Slot>)>) -> Slice {
        debug_assert!(entries.windows(2).all(|pair| {
            (pair[0].0, pair[0].1.key.as_slice()) < (pair[1].0, pair[1].1.key.as_slice())
        }));
        Slice::from_entries(
            entries
                .into_iter()
                .map(|(hash, slot)| Entry::new(hash, slot))
                .collect(),
        )
    }

    /// A flat slice of sorted `entries`, or a tree if they are more than a flat one holds.
    fn from_entries(entries: Vec<Entry>) -> Slice {
        if entries.len() > MAX_FLAT_KEYS {
            let tree = entries
                .into_iter()
                .filter_map(|entry| {
                    entry
                        .slot
                        .map(|slot| ((entry.hash, slot.key.clone()), slot))
                })
                .collect();
            return Slice::Tree(tree);
        }
        Slice::Flat((!entries.is_empty()).then(|| Arc::from(entries)))
    }

    /// Panics with context if the keys are not in strictly increasing `(hash, key)` order,
    /// an array holds none or more than [`MAX_FLAT_KEYS`], or an entry lost its slot.
    pub(super) fn check_invariants(&self, index: usize) {
        if let Slice::Flat(Some(entries)) = self {
            assert!(
                (1..=MAX_FLAT_KEYS).contains(&entries.len()),
                "slice {index} is an array of {} keys",
                entries.len()
            );
            assert!(
                entries.iter().all(|entry| entry.slot.is_some()),
                "slice {index} has an entry without its slot"
            );
        }
        let order = || self.iter().map(|(hash, slot)| (hash, slot.key.as_slice()));
        assert!(
            order().zip(order().skip(1)).all(|(a, b)| a < b),
            "slice {index}'s keys are out of (hash, key) order"
        );
    }

    /// Every key's hash and slot in order, moved out of the slice.
    pub(super) fn into_sorted(self) -> Vec<(u64, Arc<Slot>)> {
        match self {
            Slice::Flat(None) => Vec::new(),
            Slice::Flat(Some(mut shared)) => match Arc::get_mut(&mut shared) {
                Some(unshared) => unshared
                    .iter_mut()
                    .filter_map(|entry| entry.slot.take().map(|slot| (entry.hash, slot)))
                    .collect(),
                None => shared
                    .iter()
                    .map(|entry| (entry.hash, Arc::clone(entry.slot())))
                    .collect(),
            },
            Slice::Tree(tree) => tree
                .into_iter()
                .map(|((hash, _), slot)| (hash, slot))
                .collect(),
        }
    }

    /// The keys in order, with their hashes and slots.
    pub(super) fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// The keys whose hash is `from` or more, in order.
    pub(super) fn iter_from(&self, from: u64) -> Iter<'_> {
        match self {
            Slice::Flat(entries) => {
                let entries = flat(entries);
                let first = entries.partition_point(|entry| entry.hash < from);
                Iter::Flat(entries[first..].iter())
            }
            Slice::Tree(tree) => Iter::Tree(tree.range(Probe(from, &[])..)),
        }
    }

    /// The key at `position` in the slice's order.
    pub(super) fn nth(&self, position: usize) -> Option<&Arc<Slot>> {
        match self {
            Slice::Flat(entries) => flat(entries).get(position).map(Entry::slot),
            Slice::Tree(_) => self.iter().nth(position).map(|(_, slot)| slot),
        }
    }
}

/// A flat slice's entries, to build its successor from: with `new` put in at `at`, or (with
/// `None`) without the entry at `at`; in one allocation of the new length. The entries are
/// moved out if no clone shares the array (their slots' counts untouched), else cloned.
fn spliced(entries: &mut Option<Arc<[Entry]>>, at: usize, new: Option<Entry>) -> Vec<Entry> {
    let Some(shared) = entries.as_mut() else {
        return new.into_iter().collect();
    };
    let (kept_before, kept_after) = match new {
        Some(_) => (at, at),
        None => (at, at + 1),
    };
    // A flat slice's array is never empty, so one taken out leaves `len - 1`.
    let length = match new {
        Some(_) => shared.len() + 1,
        None => shared.len() - 1,
    };
    let mut spliced = Vec::with_capacity(length);
    match Arc::get_mut(shared) {
        Some(unshared) => {
            spliced.extend(unshared[..kept_before].iter_mut().map(Entry::moved));
            spliced.extend(new);
            spliced.extend(unshared[kept_after..].iter_mut().map(Entry::moved));
        }
        None => {
            spliced.extend_from_slice(&shared[..kept_before]);
            spliced.extend(new);
            spliced.extend_from_slice(&shared[kept_after..]);
        }
    }
    spliced
}

/// A slice's keys in order: `(hash, slot)`.
pub(super) enum Iter<'a> {
    Flat(std::slice::Iter<'a, Entry>),
    Tree(RangedIter<'a, Ranked, Arc<Slot>, DefaultSharedPtr>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (u64, &'a Arc<Slot>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Flat(entries) => entries.next().map(|entry| (entry.hash, entry.slot())),
            Iter::Tree(tree) => tree.next().map(|((hash, _), slot)| (*hash, slot)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn slot(key: &str, revision: u64) -> Arc<Slot> {
        Arc::new(Slot {
            key: KeyBytes::from_slice(key.as_bytes()),
            stored: Stored {
                value: Value::String(key.as_bytes().to_vec()),
                deadline_ms: None,
                revision,
            },
        })
    }

    fn keys(slice: &Slice) -> Vec<(u64, String)> {
        slice
            .iter()
            .map(|(hash, slot)| (hash, String::from_utf8(slot.key.to_vec()).unwrap()))
            .collect()
    }

    /// A slice takes 24 bytes of the slice table, a key 16 bytes of its slice's array.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_slice_and_an_entry_are_small() {
        assert_eq!(std::mem::size_of::<Slice>(), 24);
        assert_eq!(std::mem::size_of::<Entry>(), 16);
    }

    /// Keys go in `(hash, key)` order whatever order they come in; a hash tie is broken by
    /// the key's bytes, and a lookup with the right hash but other bytes finds nothing.
    #[test]
    fn keys_are_ordered_by_hash_then_bytes_and_found_by_both() {
        let mut slice = Slice::default();
        assert!(slice.is_empty() && matches!(slice, Slice::Flat(None)));
        for (hash, key) in [(7, "b"), (3, "z"), (7, "a"), (9, "c"), (1, "y")] {
            slice.insert_new(hash, slot(key, hash));
        }
        assert_eq!(
            keys(&slice),
            [(1, "y"), (3, "z"), (7, "a"), (7, "b"), (9, "c")].map(|(h, k)| (h, k.to_string()))
        );
        assert_eq!(slice.get(Probe(7, b"b")).map(|s| s.revision), Some(7));
        assert!(slice.contains(Probe(7, b"a")));
        assert!(!slice.contains(Probe(7, b"c")), "same hash, other bytes");
        assert!(!slice.contains(Probe(8, b"b")), "same bytes, other hash");
        assert_eq!(slice.nth(2).map(|s| s.key.to_vec()), Some(b"a".to_vec()));
        assert!(slice.nth(5).is_none());
        let from_seven: Vec<u64> = slice.iter_from(7).map(|(hash, _)| hash).collect();
        assert_eq!(from_seven, [7, 7, 9]);
        assert_eq!(slice.iter_from(10).count(), 0);
    }

    /// A clone is a picture: removing, adding and changing keys afterwards leaves it as it
    /// was, and the slots it shares are not copied until written.
    #[test]
    fn a_clone_keeps_its_keys_while_the_original_changes() {
        let mut slice = Slice::default();
        for (hash, key) in [(1, "a"), (2, "b"), (3, "c")] {
            slice.insert_new(hash, slot(key, hash));
        }
        let picture = slice.clone();
        let b = slice.remove(Probe(2, b"b")).expect("b is there");
        assert_eq!(Arc::strong_count(&b), 2, "the picture still holds b's slot");
        slice.insert_new(4, slot("d", 4));
        let c = slice.slot_mut(Probe(3, b"c")).expect("c is there");
        Arc::make_mut(c).stored.revision = 30;
        assert_eq!(
            keys(&picture),
            [(1, "a"), (2, "b"), (3, "c")].map(|(h, k)| (h, k.to_string()))
        );
        assert_eq!(picture.get(Probe(3, b"c")).map(|s| s.revision), Some(3));
        assert_eq!(slice.get(Probe(3, b"c")).map(|s| s.revision), Some(30));
        assert_eq!(
            keys(&slice),
            [(1, "a"), (3, "c"), (4, "d")].map(|(h, k)| (h, k.to_string()))
        );
    }

    /// An unshared slice moves its slots into the rebuilt array (no count moves), and the
    /// last key out leaves no allocation behind.
    #[test]
    fn an_unshared_rebuild_moves_its_slots_and_an_emptied_slice_frees_its_array() {
        let mut slice = Slice::default();
        let a = slot("a", 1);
        slice.insert_new(1, Arc::clone(&a));
        slice.insert_new(2, slot("b", 2));
        assert_eq!(Arc::strong_count(&a), 2, "the slice's and this test's");
        assert!(slice.remove(Probe(2, b"b")).is_some());
        assert!(slice.remove(Probe(9, b"b")).is_none());
        assert_eq!(Arc::strong_count(&a), 2, "moved, not cloned");
        assert!(slice.remove(Probe(1, b"a")).is_some());
        assert!(slice.is_empty() && matches!(slice, Slice::Flat(None)));
        assert_eq!(Arc::strong_count(&a), 1);
    }

    /// A slice grows into a tree past [`MAX_FLAT_KEYS`] keys (not at it), and as a tree it
    /// orders, finds, changes, removes and shares its keys as the array did.
    #[test]
    fn a_slice_past_its_flat_length_is_a_tree_that_behaves_alike() {
        let mut slice = Slice::default();
        let n = MAX_FLAT_KEYS as u64 + 10;
        // Hashes coming down, in pairs: each key lands at the front, ties broken by bytes.
        for i in (0..n).rev() {
            slice.insert_new(i / 2, slot(&format!("k{i:04}"), i));
            let flat_now = matches!(slice, Slice::Flat(_));
            assert_eq!(
                flat_now,
                slice.len() <= MAX_FLAT_KEYS,
                "at {} keys",
                slice.len()
            );
        }
        assert_eq!(slice.len() as u64, n);
        let order: Vec<(u64, Vec<u8>)> = slice.iter().map(|(h, s)| (h, s.key.to_vec())).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
        assert_eq!(order[0], (0, b"k0000".to_vec()));
        assert_eq!(
            slice.nth(3).map(|s| s.key.to_vec()),
            Some(b"k0003".to_vec())
        );
        assert_eq!(slice.iter_from(100).next().map(|(h, _)| h), Some(100));
        assert_eq!(slice.get(Probe(7, b"k0015")).map(|s| s.revision), Some(15));
        assert!(!slice.contains(Probe(7, b"k0016")), "k0016's hash is 8");

        let picture = slice.clone();
        let changed = slice.slot_mut(Probe(7, b"k0015")).expect("k0015 is there");
        Arc::make_mut(changed).stored.revision = 1_500;
        assert!(slice.remove(Probe(8, b"k0016")).is_some());
        assert!(slice.remove(Probe(8, b"k0016")).is_none());
        assert_eq!(
            slice.get(Probe(7, b"k0015")).map(|s| s.revision),
            Some(1_500)
        );
        assert_eq!(
            picture.get(Probe(7, b"k0015")).map(|s| s.revision),
            Some(15)
        );
        assert!(picture.contains(Probe(8, b"k0016")));
        assert_eq!((slice.len() as u64, picture.len() as u64), (n - 1, n));
    }
}
