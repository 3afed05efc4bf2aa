//! [`Keyspace`]: the keys, each with its value, deadline and revision, stored once and
//! ordered by `(scan_hash(key), key)`, with the deadlines ordered so that expiry finds the
//! due keys without a scan. The keys are split into slices of the scan order by the top bits
//! of their hash, a few keys each (a sorted array, [`slice`]), so that a lookup indexes a
//! slice and searches a cache line or two of hashes, and `RANDOMKEY` can pick the k-th key by
//! adding up the counts of groups of slices, then the lengths of one group's.
//!
//! Ordering by [`scan_hash`] first does three things: a `SCAN` cursor is a position in the
//! store's own order, which concurrent writes do not move; a lookup compares a `u64` at each
//! step of its search and the key's bytes only on a hash tie (keys that share a long prefix,
//! as `key:000000012345` do, would otherwise be compared byte by byte at every step); and no
//! second index repeats every key. What it costs: key order is not the store's order, so
//! `KEYS`, whose answer is in key order, sorts (the snapshot is written in the store's own
//! order).
//!
//! The slices are persistent (each array is shared between clones until written), and the
//! slice table sits behind an [`Arc`], so [`Keyspace::clone`] is O(1): a clone is a
//! consistent picture of the store that another thread can serialize while writes go on here,
//! the first write after it copying the slice table (up to 16,384 slice pointers) and each
//! write the one array it changes, if the clone still shares it. Each key sits behind an
//! [`Arc`] (its slot: bytes and state) so that such a copy clones pointers, never the keys
//! or values of the slice's other keys.

use std::cmp::Ordering;
use std::sync::Arc;

use equivalent::{Comparable, Equivalent};
use imbl::OrdSet;
use smallvec::SmallVec;

use crate::command::SetCondition;
use crate::replaced::{Replaced, ReplacedSink};
use crate::scan::scan_hash;
use crate::value::Value;

mod slice;

use slice::{Prefetch, Slice, Slot};

/// One key's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    /// The value: a string or a hash.
    pub(crate) value: Value,
    /// When the key expires, in log time (Unix milliseconds); `None`: never.
    pub(crate) deadline_ms: Option<u64>,
    /// The log index of the key's last write (value or deadline): its fencing token.
    pub(crate) revision: u64,
}

/// The most slices of the scan order [`Keyspace`] splits the keys into: the top bits of a
/// key's scan hash name its slice. 16,384 (a table of 384 KiB) from 65,536 keys on: a
/// million keys are about 61 a slice, an array of 1 KiB.
const MAX_SLICE_BITS: u32 = 14;

/// A store is split into as many slices (a power of two) as leave at least this many keys
/// in each on average: a slice of a few keys is one cache line of hashes to search, and its
/// room beyond its keys is 24 bytes in the table and an array's two counts. A small
/// store (the simulator's) is one slice: it never walks thousands of empty ones.
const KEYS_PER_SLICE: usize = 4;

/// How many top bits of the scan hash name a slice in a store of `len` keys: the most that
/// leave [`KEYS_PER_SLICE`] keys a slice on average, up to [`MAX_SLICE_BITS`]. So the store
/// splits at each doubling up to 65,536 keys; a split rebuilds the slice table, moving each
/// key's pointer, not its key (`split_timings`: the last split takes longest). A function of
/// the count alone, so every replica splits at the same write (not that it shows: the order
/// and the bytes are the same either way).
fn slice_bits_for(len: usize) -> u32 {
    match len / KEYS_PER_SLICE {
        0 | 1 => 0,
        slices => slices.ilog2().min(MAX_SLICE_BITS),
    }
}

/// How many consecutive slices one count of [`Keyspace`]'s `group_lens` covers: at most 128
/// counts of groups and 128 of slices to add up for the k-th key of 16,384 slices.
const SLICES_PER_GROUP: usize = 128;

/// The number of keys in each group of [`SLICES_PER_GROUP`] consecutive `slices`.
fn groups_of(slices: &[Slice]) -> Vec<usize> {
    slices
        .chunks(SLICES_PER_GROUP)
        .map(|group| group.iter().map(Slice::len).sum())
        .collect()
}

/// Fills a table of `2^bits` slices from keys given in `(hash, key)` order (a split's, from
/// the store's own order, or a snapshot's): a slice's keys come one after the other, so each
/// is filled already sorted, and only the slice being filled is held apart.
struct Slicer {
    slices: Vec<Slice>,
    bits: u32,
    /// The index of the slice being filled, and its keys so far.
    run: (usize, Vec<(u64, Arc<Slot>)>),
}

impl Slicer {
    fn new(bits: u32) -> Slicer {
        Slicer {
            slices: vec![Slice::default(); 1 << bits],
            bits,
            run: (0, Vec::new()),
        }
    }

    /// The last key given, with its hash.
    fn last(&self) -> Option<(u64, &[u8])> {
        let (hash, slot) = self.run.1.last()?;
        Some((*hash, slot.key.as_slice()))
    }

    /// Adds the next key in order.
    fn push(&mut self, hash: u64, slot: Arc<Slot>) {
        let index = slice_of(hash, self.bits);
        if index != self.run.0 {
            self.finish_run();
            self.run.0 = index;
        }
        self.run.1.push((hash, slot));
    }

    /// The slice being filled, into its place.
    fn finish_run(&mut self) {
        let keys = std::mem::take(&mut self.run.1);
        if !keys.is_empty() {
            self.slices[self.run.0] = Slice::from_sorted(keys);
        }
    }

    /// The table.
    fn finish(mut self) -> Vec<Slice> {
        self.finish_run();
        self.slices
    }
}

/// Keys [`Keyspace::prefetch`] hashes and asks for together: a node's apply window.
const PREFETCH_AT_ONCE: usize = 16;

/// The slice that holds keys of scan hash `hash` in a store split by its top `bits` bits.
fn slice_of(hash: u64, bits: u32) -> usize {
    match bits {
        0 => 0,
        // At most the top 14 bits of a u64: below the number of slices.
        bits => (hash >> (64 - bits)) as usize,
    }
}

/// A key's bytes as its slot holds them: a key of up to [`INLINE_KEY_BYTES`] bytes sits in the
/// slot itself, beside its state, so confirming a lookup reads no other memory, and copying
/// the slot (a write after a freeze) allocates nothing more for it.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct KeyBytes(SmallVec<[u8; INLINE_KEY_BYTES]>);

impl KeyBytes {
    fn from_slice(key: &[u8]) -> KeyBytes {
        KeyBytes(SmallVec::from_slice(key))
    }

    /// Inline by length (`SmallVec::from_vec` would go by the vector's capacity).
    fn from_vec(key: Vec<u8>) -> KeyBytes {
        if key.len() <= INLINE_KEY_BYTES {
            KeyBytes::from_slice(&key)
        } else {
            KeyBytes(SmallVec::from_vec(key))
        }
    }

    fn as_slice(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl std::ops::Deref for KeyBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Clone for KeyBytes {
    /// One copy of the bytes: `SmallVec`'s own `clone` goes element by element.
    fn clone(&self) -> KeyBytes {
        KeyBytes::from_slice(self.as_slice())
    }
}

/// The longest key kept inside its slot; longer keys are allocated on their own. 24: enough
/// for most keys people name (`key:000000012345` is 16), for 8 bytes more per key than a
/// heap key's pointer, length and capacity (32 against 24).
const INLINE_KEY_BYTES: usize = 24;

/// A key as the map orders it: `(scan_hash(key), key)`. Also the shape of a deadline
/// index entry: `(deadline_ms, key)`.
type Ranked = (u64, KeyBytes);

/// A borrowed [`Ranked`], to look a key up without copying it.
#[derive(Clone, Copy)]
struct Probe<'a>(u64, &'a [u8]);

impl<'a> Probe<'a> {
    /// Where `key` sits in the map.
    fn key(key: &'a [u8]) -> Probe<'a> {
        Probe(scan_hash(key), key)
    }
}

impl Equivalent<Ranked> for Probe<'_> {
    fn equivalent(&self, ranked: &Ranked) -> bool {
        self.0 == ranked.0 && self.1 == ranked.1.as_slice()
    }
}

impl Comparable<Ranked> for Probe<'_> {
    fn compare(&self, ranked: &Ranked) -> Ordering {
        // The hash decides almost every step; the bytes only break a tie.
        self.0
            .cmp(&ranked.0)
            .then_with(|| self.1.cmp(ranked.1.as_slice()))
    }
}

/// The keys; iteration in either order (and so the snapshot) is the same everywhere.
/// Equality is by content: how the keys are split is not state.
#[derive(Clone)]
pub(crate) struct Keyspace {
    /// The keys, each once, under `(scan_hash(key), key)`: in one slice while the store is
    /// small, else split by the top bits of their scan hash ([`slice_of`]), slice `s` holding
    /// exactly the keys of slice `s`. Read in slice order, they are the one
    /// `(scan_hash, key)` order. Splitting keeps every slice a few keys long (a lookup
    /// searches a cache line or two) and makes counting keys by slice free. The slices sit
    /// behind one [`Arc`], so a clone stays O(1): the first write after it copies the slice
    /// table (its pointers, not the keys), then each write its slice's array and its key's
    /// slot, if the clone still shares them.
    /// Invariant: `2^bits` slices, `bits` being [`slice_bits_for`] of the most keys the store
    /// held since it was created or cleared (a store that shrinks stays split).
    slices: Arc<Vec<Slice>>,
    /// The number of keys in each group of [`SLICES_PER_GROUP`] slices, in slice order, so
    /// that the k-th key is found by adding up at most a few hundred counts, not one per
    /// slice. Invariant: `groups_of(&slices)`.
    group_lens: Arc<Vec<usize>>,
    /// Invariant: the number of keys in all slices.
    len: usize,
    /// Invariant: exactly the `(deadline, key)` of every key that has a deadline.
    deadlines: OrdSet<Ranked>,
    created: CreatedKey,
    /// Where replaced states go while a sink is set (a side channel, not state).
    replaced: Replaced,
}

/// The key the last insert created, kept only while keyspace events are recorded, so that
/// the write's own event can be preceded by Redis's `new`. A side channel like the event
/// recorder: not state, so two keyspaces are equal whatever it holds.
#[derive(Clone, Debug, Default)]
struct CreatedKey {
    tracking: bool,
    last: Option<KeyBytes>,
}

impl PartialEq for CreatedKey {
    fn eq(&self, _: &CreatedKey) -> bool {
        true
    }
}

impl Eq for CreatedKey {}

impl std::fmt::Debug for Keyspace {
    /// The keys and their states in the store's order, not the slices (mostly empty ones).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter_by_hash()).finish()
    }
}

impl PartialEq for Keyspace {
    fn eq(&self, other: &Keyspace) -> bool {
        self.len == other.len
            && self.deadlines == other.deadlines
            && self.iter_by_hash().eq(other.iter_by_hash())
    }
}

impl Eq for Keyspace {}

impl Default for Keyspace {
    fn default() -> Keyspace {
        Keyspace {
            slices: Arc::new(vec![Slice::default()]),
            group_lens: Arc::new(vec![0]),
            len: 0,
            deadlines: OrdSet::new(),
            created: CreatedKey::default(),
            replaced: Replaced::default(),
        }
    }
}

impl Keyspace {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Which of the store's slices holds keys of scan hash `hash`.
    fn slice_index(&self, hash: u64) -> usize {
        slice_of(hash, self.slice_bits())
    }

    /// How many top bits of the scan hash name a slice here.
    fn slice_bits(&self) -> u32 {
        self.slices.len().trailing_zeros()
    }

    /// The slice that holds (or would hold) the key `probe` names.
    fn slice(&self, probe: Probe<'_>) -> &Slice {
        &self.slices[self.slice_index(probe.0)]
    }

    /// The slice that holds (or would hold) the key `probe` names, to change it (the slice
    /// table is copied first if a clone of the store still shares it).
    fn slice_mut(&mut self, probe: Probe<'_>) -> &mut Slice {
        let index = self.slice_index(probe.0);
        &mut Arc::make_mut(&mut self.slices)[index]
    }

    /// The count of keys of the group that holds slice `index`, to change it (copied first
    /// if a clone of the store still shares the counts).
    fn group_len_mut(&mut self, index: usize) -> &mut usize {
        &mut Arc::make_mut(&mut self.group_lens)[index / SLICES_PER_GROUP]
    }

    /// Puts `slices` in place, with their group counts.
    fn set_slices(&mut self, slices: Vec<Slice>) {
        self.group_lens = Arc::new(groups_of(&slices));
        self.slices = Arc::new(slices);
    }

    /// Takes `probe`'s key out of its slice, counted out of the store; its slot comes back.
    fn take_out(&mut self, probe: Probe<'_>) -> Option<Arc<Slot>> {
        let index = self.slice_index(probe.0);
        let old = Arc::make_mut(&mut self.slices)[index].remove(probe)?;
        self.len -= 1;
        *self.group_len_mut(index) -= 1;
        Some(old)
    }

    /// Moves the keys into `2^bits` slices (when the store has doubled: at most
    /// [`MAX_SLICE_BITS`] times in its life, each O(keys)). The store's order is each new
    /// slice's order, so each is filled already sorted.
    fn split(&mut self, bits: u32) {
        // The insert that calls this copied a shared table already; a slice's array that a
        // clone still shares is copied, any other moved (its slots' counts untouched).
        let mut slicer = Slicer::new(bits);
        for slice in Arc::make_mut(&mut self.slices).iter_mut() {
            for (hash, slot) in std::mem::take(slice).into_sorted() {
                slicer.push(hash, slot);
            }
        }
        self.set_slices(slicer.finish());
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&Stored> {
        let probe = Probe::key(key);
        self.slice(probe).get(probe)
    }

    /// Starts loading what writes to `keys` will read: every key's slice array first, then,
    /// with the arrays on their way, every key's slot, then the start of the string each
    /// slot holds (the memory the next value decoded will be copied into), so that their
    /// cache misses overlap. Each key is hashed once, [`PREFETCH_AT_ONCE`] keys at a time. A
    /// hint for the processor; nothing changes.
    pub(crate) fn prefetch<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) {
        let stages = self.prefetch_stages();
        let mut probes = [Probe(0, &[]); PREFETCH_AT_ONCE];
        let mut keys = keys.peekable();
        while keys.peek().is_some() {
            let mut count = 0;
            for (probe, key) in probes.iter_mut().zip(keys.by_ref()) {
                *probe = Probe::key(key);
                count += 1;
            }
            for &stage in stages {
                for &probe in &probes[..count] {
                    self.slice(probe).prefetch(probe, stage);
                }
            }
        }
    }

    /// The passes of [`prefetch`](Self::prefetch). A replaced string is worth loading only
    /// where it is freed, its memory then the next value's: not while a sink takes replaced
    /// strings to another thread (a restart's replay hands them back to the thread that
    /// decodes ahead).
    pub(super) fn prefetch_stages(&self) -> &'static [Prefetch] {
        if self.replaced.frees_here() {
            &[Prefetch::Array, Prefetch::Slot, Prefetch::Value]
        } else {
            &[Prefetch::Array, Prefetch::Slot]
        }
    }

    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        let probe = Probe::key(key);
        self.slice(probe).contains(probe)
    }

    /// Every key in key order: the keys are sorted on each call (O(n log n)), for the readers
    /// whose answer or bytes are in key order. Others use [`iter_by_hash`](Self::iter_by_hash).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &Stored)> {
        let mut sorted: Vec<(&[u8], &Stored)> = self.iter_by_hash().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        sorted.into_iter()
    }

    /// Every key in the map's own `(scan_hash, key)` order, without sorting.
    pub(crate) fn iter_by_hash(&self) -> impl Iterator<Item = (&[u8], &Stored)> {
        self.slices
            .iter()
            .filter(|slice| !slice.is_empty())
            .flat_map(|slice| slice.iter())
            .map(|(_, slot)| (slot.key.as_slice(), &slot.stored))
    }

    /// Stores `stored` under `key`, replacing what was there; whether the key was there.
    pub(crate) fn insert(&mut self, key: Vec<u8>, stored: Stored) -> bool {
        let probe = Probe::key(&key);
        let hash = probe.0;
        let new_deadline = stored.deadline_ms;
        let index = self.slice_index(hash);
        let slice = &mut Arc::make_mut(&mut self.slices)[index];
        // One search of the slice when the key is there (the common case of a SET); a new
        // key rebuilds the slice's array one longer.
        let Some(slot) = slice.slot_mut(probe) else {
            let key = KeyBytes::from_vec(key);
            if let Some(new) = new_deadline {
                self.deadlines.insert((new, key.clone()));
            }
            if self.created.tracking {
                self.created.last = Some(key.clone());
            }
            slice.insert_new(hash, Arc::new(Slot { key, stored }));
            self.len += 1;
            *self.group_len_mut(index) += 1;
            let bits = slice_bits_for(self.len);
            if bits > self.slice_bits() {
                self.split(bits);
            }
            return false;
        };
        let old_deadline = slot.stored.deadline_ms;
        match Arc::get_mut(slot) {
            // Not shared with a frozen copy: the slot's allocation is reused.
            Some(unshared) => self
                .replaced
                .keep(std::mem::replace(&mut unshared.stored, stored)),
            None => {
                let key = slot.key.clone();
                *slot = Arc::new(Slot { key, stored });
            }
        }
        if old_deadline != new_deadline {
            if let Some(old) = old_deadline {
                self.deadlines.remove(&Probe(old, &key));
            }
            if let Some(new) = new_deadline {
                self.deadlines.insert((new, KeyBytes::from_vec(key)));
            }
        }
        true
    }

    /// Stores `stored` under `key` if `condition` holds: `None` when it does not, else
    /// whether the key was there.
    pub(crate) fn write(
        &mut self,
        key: Vec<u8>,
        stored: Stored,
        condition: SetCondition,
    ) -> Option<bool> {
        // A plain SET needs no lookup before its insert.
        if condition != SetCondition::Always && !condition.holds(self.contains(&key)) {
            return None;
        }
        Some(self.insert(key, stored))
    }

    /// Removes `key`; its state comes back (copied only if a clone of the store still
    /// shares it).
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Stored> {
        let probe = Probe::key(key);
        // A missing key changes nothing: while a frozen copy shares the slice table, look
        // before copying it (unshared, the removal's own walk finds out).
        if Arc::strong_count(&self.slices) > 1 && !self.slice(probe).contains(probe) {
            return None;
        }
        let old = self.take_out(probe)?;
        if let Some(deadline) = old.stored.deadline_ms {
            self.deadlines.remove(&Probe(deadline, key));
        }
        // A slot a clone still shares gives a copy of its state, not of its key.
        Some(Arc::try_unwrap(old).map_or_else(|shared| shared.stored.clone(), |slot| slot.stored))
    }

    /// Sets the deadline of an existing key and its revision; false if the key is missing.
    pub(crate) fn set_deadline(
        &mut self,
        key: &[u8],
        deadline_ms: Option<u64>,
        revision: u64,
    ) -> bool {
        let Some(stored) = self.get_mut(key) else {
            return false;
        };
        let old = stored.deadline_ms;
        stored.deadline_ms = deadline_ms;
        stored.revision = revision;
        if let Some(old) = old {
            self.deadlines.remove(&Probe(old, key));
        }
        if let Some(new) = deadline_ms {
            self.deadlines.insert((new, KeyBytes::from_slice(key)));
        }
        true
    }

    /// Removes every key whose deadline is at or before `now_ms`, each passed to
    /// `on_expired` as it goes; how many went.
    pub(crate) fn expire_due(&mut self, now_ms: u64, mut on_expired: impl FnMut(&[u8])) -> usize {
        let mut expired = 0;
        while let Some((deadline, _)) = self.deadlines.get_min() {
            if *deadline > now_ms {
                break;
            }
            let (_, key) = self.deadlines.remove_min().expect("checked non-empty");
            let probe = Probe::key(&key);
            self.take_out(probe);
            on_expired(&key);
            expired += 1;
        }
        expired
    }

    /// Mutable access to a key's state (copied first if a clone of the store still shares
    /// it). The caller must not change its deadline (use [`set_deadline`](Self::set_deadline)),
    /// so the deadline index stays right.
    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Stored> {
        let probe = Probe::key(key);
        self.slice_mut(probe)
            .slot_mut(probe)
            .map(|slot| &mut Arc::make_mut(slot).stored)
    }

    /// Removes every key.
    pub(crate) fn clear(&mut self) {
        let tracking = self.created.tracking;
        let replaced = std::mem::take(&mut self.replaced);
        *self = Keyspace::default();
        self.created.tracking = tracking;
        self.replaced = replaced;
    }

    /// Hands the states writes replace to `sink` in batches from now on, or with `None`
    /// frees them here ([`crate::replaced`]).
    pub(crate) fn set_replaced_sink(&mut self, sink: Option<ReplacedSink>) {
        self.replaced.set_sink(sink);
    }

    /// Starts or stops remembering the key each insert creates (for [`take_created`]).
    ///
    /// [`take_created`]: Self::take_created
    pub(crate) fn track_created(&mut self, tracking: bool) {
        self.created = CreatedKey {
            tracking,
            last: None,
        };
    }

    /// Whether the last key an insert created, since the last call, is `key`; forgets it
    /// either way.
    pub(crate) fn take_created(&mut self, key: &[u8]) -> bool {
        self.created
            .last
            .take()
            .is_some_and(|created| created.as_slice() == key)
    }

    /// The key at position `position` of the scan order (0 is the first), `None` past the
    /// last: found by adding up the groups' counts, then the lengths of the slices of one
    /// group, then indexing one slice.
    pub(crate) fn nth_by_hash(&self, position: usize) -> Option<&[u8]> {
        let mut before = 0usize;
        for (group, len) in self.group_lens.iter().enumerate() {
            if position >= before + len {
                before += len;
                continue;
            }
            for slice in self.slices.chunks(SLICES_PER_GROUP).nth(group)? {
                if position < before + slice.len() {
                    return slice.nth(position - before).map(|slot| slot.key.as_slice());
                }
                before += slice.len();
            }
        }
        None
    }

    /// The keys whose scan hash is `from` or more, with their hashes, in `(hash, key)` order:
    /// the map's own.
    pub(crate) fn by_hash_from(&self, from: u64) -> impl Iterator<Item = (u64, &[u8])> {
        let first = self.slice_index(from);
        self.slices[first]
            .iter_from(from)
            .chain(
                self.slices[first + 1..]
                    .iter()
                    .filter(|slice| !slice.is_empty())
                    .flat_map(|slice| slice.iter()),
            )
            .map(|(hash, slot)| (hash, slot.key.as_slice()))
    }

    /// The earliest deadline of any key.
    pub(crate) fn next_deadline_ms(&self) -> Option<u64> {
        self.deadlines.get_min().map(|(deadline, _)| *deadline)
    }

    /// Panics with context if a key is not where its hash puts it, the deadline index does
    /// not match the keys, or a key is still held at or after its deadline at log time
    /// `now_ms`.
    pub(crate) fn check_invariants(&self, now_ms: u64, applied_index: u64) {
        let mut with_deadline = 0;
        let mut len = 0;
        for (slice, keys) in self.slices.iter().enumerate() {
            keys.check_invariants(slice);
            len += keys.len();
            for (hash, slot) in keys.iter() {
                let (key, stored) = (&slot.key, &slot.stored);
                assert_eq!(
                    hash,
                    scan_hash(key),
                    "key {key:?} stored under another key's hash at applied index {applied_index}"
                );
                assert_eq!(
                    self.slice_index(hash),
                    slice,
                    "key {key:?} in another hash's slice at applied index {applied_index}"
                );
                with_deadline += usize::from(stored.deadline_ms.is_some());
                if let Value::Hash(hash) = &stored.value {
                    assert!(
                        !hash.is_empty(),
                        "empty hash {key:?} held at applied index {applied_index}"
                    );
                    hash.check_invariants();
                }
            }
        }
        assert!(
            self.slices.len().is_power_of_two()
                && slice_bits_for(self.len) <= self.slice_bits()
                && self.slice_bits() <= MAX_SLICE_BITS,
            "a table of {} slices for {} keys at applied index {applied_index}",
            self.slices.len(),
            self.len
        );
        assert_eq!(
            len, self.len,
            "key count out of step with the slices at applied index {applied_index}"
        );
        assert_eq!(
            *self.group_lens,
            groups_of(&self.slices),
            "group counts out of step with the slices at applied index {applied_index}"
        );
        assert_eq!(
            with_deadline,
            self.deadlines.len(),
            "deadline index out of step with the keys at applied index {applied_index}"
        );
        for (deadline, key) in &self.deadlines {
            assert_eq!(
                self.get(key).and_then(|s| s.deadline_ms),
                Some(*deadline),
                "deadline index names a key that does not have that deadline, at applied index {applied_index}"
            );
            assert!(
                *deadline > now_ms,
                "a key past its deadline {deadline} is still held at log time {now_ms}, applied index {applied_index}"
            );
        }
    }
}

/// A store built from keys given in its own `(scan_hash, key)` order (a snapshot's), each put
/// in its slice as it comes ([`Slicer`]): no search and no split.
pub(crate) struct OrderedBuild {
    store: Keyspace,
    slicer: Slicer,
}

impl OrderedBuild {
    /// A build of a store of `keys` keys (slices are made for that many; fewer may come).
    pub(crate) fn new(keys: usize) -> OrderedBuild {
        OrderedBuild {
            store: Keyspace::default(),
            slicer: Slicer::new(slice_bits_for(keys)),
        }
    }

    /// `key`'s scan hash if it comes after the last key given in the store's order, else
    /// `None` (out of order, or given twice).
    pub(crate) fn follows(&self, key: &[u8]) -> Option<u64> {
        let hash = scan_hash(key);
        let after = self.slicer.last().is_none_or(|last| last < (hash, key));
        after.then_some(hash)
    }

    /// Adds `key`, whose scan hash `follows` gave as `hash`.
    pub(crate) fn push(&mut self, hash: u64, key: Vec<u8>, stored: Stored) {
        debug_assert_eq!(self.follows(&key), Some(hash));
        let key = KeyBytes::from_vec(key);
        if let Some(deadline) = stored.deadline_ms {
            self.store.deadlines.insert((deadline, key.clone()));
        }
        self.slicer.push(hash, Arc::new(Slot { key, stored }));
        self.store.len += 1;
    }

    /// The store.
    pub(crate) fn build(self) -> Keyspace {
        let mut store = self.store;
        store.set_slices(self.slicer.finish());
        store
    }
}

#[cfg(test)]
mod tests;

/// Timings of the key store against the layouts it was chosen over, run by hand:
/// `cargo test --release -p skiff-kv --lib -- --ignored --nocapture store_timings`
/// (docs/benchmarks/rounds-1-to-6.md and rounds-7-to-11.md have the numbers).
#[cfg(test)]
mod timings {
    use std::collections::btree_map::Entry;
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::{Duration, Instant};

    use super::*;

    /// Which of `keys` keys each of `sets` SETs writes, drawn by a fixed xorshift.
    fn workload(sets: usize, keys: u64) -> Vec<u64> {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        (0..sets)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state % keys
            })
            .collect()
    }

    /// A SET as applying builds it: the key named as `redis-benchmark -r` names it, and a
    /// fresh 1 KiB value.
    fn set(key: u64, revision: usize) -> (Vec<u8>, Stored) {
        let key = format!("key:{key:012}").into_bytes();
        let value = Value::String(vec![b'x'; 1024]);
        let revision = revision as u64;
        (
            key,
            Stored {
                value,
                deadline_ms: None,
                revision,
            },
        )
    }

    fn timed(run: impl FnOnce()) -> Duration {
        let started = Instant::now();
        run();
        started.elapsed()
    }

    /// The write that splits a store into more slices rebuilds it: how long that write takes.
    #[test]
    #[ignore = "timings, run by hand"]
    fn split_timings() {
        for split_at in [KEYS_PER_SLICE << 12, KEYS_PER_SLICE << MAX_SLICE_BITS] {
            let mut keyspace = Keyspace::default();
            for i in 0..split_at - 1 {
                let (key, stored) = set(i as u64, i);
                keyspace.insert(key, stored);
            }
            let (key, stored) = set(split_at as u64, split_at);
            let split = timed(|| {
                keyspace.insert(key, stored);
            });
            assert_eq!(keyspace.slice_bits(), slice_bits_for(split_at));
            println!("the write that splits a store of {split_at} keys: {split:?}");
        }
    }

    #[test]
    #[ignore = "timings, run by hand"]
    fn store_timings() {
        let sets = workload(1_000_000, 100_000);
        for round in 1..=3 {
            let making = timed(|| {
                for (i, &key) in sets.iter().enumerate() {
                    std::hint::black_box(set(key, i));
                }
            });

            let mut keyspace = Keyspace::default();
            let this = timed(|| {
                for (i, &key) in sets.iter().enumerate() {
                    let (key, stored) = set(key, i);
                    keyspace.insert(key, stored);
                }
            });
            let mut picture = None;
            let clone_then_writes = timed(|| {
                picture = Some(keyspace.clone());
                for (i, &key) in sets[..100_000].iter().enumerate() {
                    let (key, stored) = set(key, i);
                    keyspace.insert(key, stored);
                }
            });
            drop((keyspace, picture));

            // The same order in std's B-tree: not persistent, so a clone copies everything.
            let mut std_map: BTreeMap<(u64, Vec<u8>), Stored> = BTreeMap::new();
            let std_ordered = timed(|| {
                for (i, &key) in sets.iter().enumerate() {
                    let (key, stored) = set(key, i);
                    std_map.insert((scan_hash(&key), key), stored);
                }
            });
            let std_clone = timed(|| drop(std_map.clone()));
            drop(std_map);

            // The layout before: a map in key order and a second index of every key by hash.
            let mut by_key: BTreeMap<Vec<u8>, Stored> = BTreeMap::new();
            let mut by_hash: BTreeSet<(u64, Vec<u8>)> = BTreeSet::new();
            let two_indexes = timed(|| {
                for (i, &key) in sets.iter().enumerate() {
                    let (key, stored) = set(key, i);
                    match by_key.entry(key) {
                        Entry::Vacant(vacant) => {
                            by_hash.insert((scan_hash(vacant.key()), vacant.key().clone()));
                            vacant.insert(stored);
                        }
                        Entry::Occupied(mut occupied) => drop(occupied.insert(stored)),
                    }
                }
            });
            println!(
                "round {round}: 1,000,000 SETs over 100,000 keys (making the SETs alone \
                 {making:?}): this store {this:?}, std BTreeMap by (hash, key) {std_ordered:?}, \
                 map by key and hash index {two_indexes:?}; clone then 100,000 SETs \
                 {clone_then_writes:?}, a std clone alone {std_clone:?}"
            );
        }
    }
}
