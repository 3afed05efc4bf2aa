//! [`Keyspace`]: the keys, each with its value, deadline and revision, the deadlines
//! ordered so that expiry finds the due keys without a scan, and the keys ordered by their
//! [`scan_hash`] so that a `SCAN` cursor is a position that concurrent writes do not move,
//! with a count of keys per slice of that order so that `RANDOMKEY` can pick the k-th key
//! without walking them all.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use crate::command::SetCondition;
use crate::scan::scan_hash;
use crate::value::Value;

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

/// How many slices of the scan order [`Keyspace`] counts keys in: the top bits of a key's
/// scan hash name its slice.
const HASH_SLICES: usize = 1 << HASH_SLICE_BITS;
const HASH_SLICE_BITS: u32 = 12;

/// The slice of the scan order that holds keys of scan hash `hash`.
fn slice_of(hash: u64) -> usize {
    // The top 12 bits of a u64: below HASH_SLICES.
    (hash >> (64 - HASH_SLICE_BITS)) as usize
}

/// The keys, ordered so that iteration (and so the snapshot) is the same everywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Keyspace {
    keys: BTreeMap<Vec<u8>, Stored>,
    /// Invariant: exactly the `(deadline, key)` of every key that has a deadline.
    deadlines: BTreeSet<(u64, Vec<u8>)>,
    /// Invariant: exactly the `(scan_hash(key), key)` of every key.
    by_hash: BTreeSet<(u64, Vec<u8>)>,
    /// Invariant: `slice_len[s]` is how many entries of `by_hash` are in slice `s`
    /// ([`slice_of`]), and there are [`HASH_SLICES`] of them.
    slice_len: Vec<usize>,
    created: CreatedKey,
}

/// The key the last insert created, kept only while keyspace events are recorded, so that
/// the write's own event can be preceded by Redis's `new`. A side channel like the event
/// recorder: not state, so two keyspaces are equal whatever it holds.
#[derive(Clone, Debug, Default)]
struct CreatedKey {
    tracking: bool,
    last: Option<Vec<u8>>,
}

impl PartialEq for CreatedKey {
    fn eq(&self, _: &CreatedKey) -> bool {
        true
    }
}

impl Eq for CreatedKey {}

impl Default for Keyspace {
    fn default() -> Keyspace {
        Keyspace {
            keys: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            by_hash: BTreeSet::new(),
            slice_len: vec![0; HASH_SLICES],
            created: CreatedKey::default(),
        }
    }
}

impl Keyspace {
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&Stored> {
        self.keys.get(key)
    }

    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.keys.contains_key(key)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Stored)> {
        self.keys.iter()
    }

    /// Stores `stored` under `key`, replacing what was there; the old state comes back.
    pub(crate) fn insert(&mut self, key: Vec<u8>, stored: Stored) -> Option<Stored> {
        if let Some(deadline) = stored.deadline_ms {
            self.deadlines.insert((deadline, key.clone()));
        }
        let new_deadline = stored.deadline_ms;
        // One walk down the tree for the common case of a key without a deadline.
        match self.keys.entry(key) {
            Entry::Vacant(vacant) => {
                let hash = scan_hash(vacant.key());
                self.slice_len[slice_of(hash)] += 1;
                self.by_hash.insert((hash, vacant.key().clone()));
                if self.created.tracking {
                    self.created.last = Some(vacant.key().clone());
                }
                vacant.insert(stored);
                None
            }
            Entry::Occupied(mut occupied) => {
                let old = occupied.insert(stored);
                if let Some(old_deadline) = old.deadline_ms.filter(|d| Some(*d) != new_deadline) {
                    self.deadlines
                        .remove(&(old_deadline, occupied.key().clone()));
                }
                Some(old)
            }
        }
    }

    /// Stores `stored` under `key` if `condition` holds (one walk down the tree): `None`
    /// when it does not, else the state replaced.
    pub(crate) fn write(
        &mut self,
        key: Vec<u8>,
        stored: Stored,
        condition: SetCondition,
    ) -> Option<Option<Stored>> {
        // A plain SET needs no lookup before its insert.
        if condition != SetCondition::Always && !condition.holds(self.keys.contains_key(&key)) {
            return None;
        }
        Some(self.insert(key, stored))
    }

    /// Removes `key`; its state comes back.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Stored> {
        let old = self.keys.remove(key)?;
        if let Some(deadline) = old.deadline_ms {
            self.deadlines.remove(&(deadline, key.to_vec()));
        }
        self.forget_hash(key);
        Some(old)
    }

    /// Sets the deadline of an existing key and its revision; false if the key is missing.
    pub(crate) fn set_deadline(
        &mut self,
        key: &[u8],
        deadline_ms: Option<u64>,
        revision: u64,
    ) -> bool {
        let Some(stored) = self.keys.get_mut(key) else {
            return false;
        };
        if let Some(old) = stored.deadline_ms {
            self.deadlines.remove(&(old, key.to_vec()));
        }
        if let Some(new) = deadline_ms {
            self.deadlines.insert((new, key.to_vec()));
        }
        stored.deadline_ms = deadline_ms;
        stored.revision = revision;
        true
    }

    /// Removes every key whose deadline is at or before `now_ms`, each passed to
    /// `on_expired` as it goes; how many went.
    pub(crate) fn expire_due(&mut self, now_ms: u64, mut on_expired: impl FnMut(&[u8])) -> usize {
        let mut expired = 0;
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline > now_ms {
                break;
            }
            let (_, key) = self.deadlines.pop_first().expect("checked non-empty");
            self.keys.remove(&key);
            self.forget_hash(&key);
            on_expired(&key);
            expired += 1;
        }
        expired
    }

    /// Mutable access to a key's state. The caller must not change its deadline (use
    /// [`set_deadline`](Self::set_deadline)), so the deadline index stays right.
    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Stored> {
        self.keys.get_mut(key)
    }

    /// Removes a key gone from `keys` from the scan order.
    fn forget_hash(&mut self, key: &[u8]) {
        let hash = scan_hash(key);
        if self.by_hash.remove(&(hash, key.to_vec())) {
            self.slice_len[slice_of(hash)] -= 1;
        }
    }

    /// Removes every key.
    pub(crate) fn clear(&mut self) {
        let tracking = self.created.tracking;
        *self = Keyspace::default();
        self.created.tracking = tracking;
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
            .is_some_and(|created| created == key)
    }

    /// The key at position `position` of the scan order (0 is the first), `None` past the
    /// last: found by adding up the slices' counts, then walking one slice.
    pub(crate) fn nth_by_hash(&self, position: usize) -> Option<&[u8]> {
        let mut before = 0usize;
        for (slice, &len) in self.slice_len.iter().enumerate() {
            if position < before + len {
                // slice < HASH_SLICES = 2^12, so the shift stays within a u64.
                let from = (slice as u64) << (64 - HASH_SLICE_BITS);
                let (_, key) = self.by_hash_from(from).nth(position - before)?;
                return Some(key);
            }
            before += len;
        }
        None
    }

    /// The keys whose scan hash is `from` or more, in `(hash, key)` order.
    pub(crate) fn by_hash_from(&self, from: u64) -> impl Iterator<Item = &(u64, Vec<u8>)> {
        self.by_hash.range((from, Vec::new())..)
    }

    /// The earliest deadline of any key.
    pub(crate) fn next_deadline_ms(&self) -> Option<u64> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// Panics with context if the deadline index does not match the keys, or a key is
    /// still held at or after its deadline at log time `now_ms`.
    pub(crate) fn check_invariants(&self, now_ms: u64, applied_index: u64) {
        let with_deadline = self
            .keys
            .values()
            .filter(|s| s.deadline_ms.is_some())
            .count();
        assert_eq!(
            with_deadline,
            self.deadlines.len(),
            "deadline index out of step with the keys at applied index {applied_index}"
        );
        assert_eq!(
            self.by_hash.len(),
            self.keys.len(),
            "scan index out of step with the keys at applied index {applied_index}"
        );
        let mut slice_len = vec![0; HASH_SLICES];
        for (hash, _) in &self.by_hash {
            slice_len[slice_of(*hash)] += 1;
        }
        assert!(
            slice_len == self.slice_len,
            "scan slice counts out of step with the keys at applied index {applied_index}"
        );
        for (key, stored) in &self.keys {
            if let Value::Hash(hash) = &stored.value {
                assert!(
                    !hash.is_empty(),
                    "empty hash {key:?} held at applied index {applied_index}"
                );
                hash.check_invariants();
            }
        }
        for (deadline, key) in &self.deadlines {
            let stored = self.keys.get(key);
            assert_eq!(
                stored.and_then(|s| s.deadline_ms),
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
