//! [`Keyspace`]: the keys, each with its value, deadline and revision, the deadlines
//! ordered so that expiry finds the due keys without a scan, and the keys ordered by their
//! [`scan_hash`] so that a `SCAN` cursor is a position that concurrent writes do not move.

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

/// The keys, ordered so that iteration (and so the snapshot) is the same everywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Keyspace {
    keys: BTreeMap<Vec<u8>, Stored>,
    /// Invariant: exactly the `(deadline, key)` of every key that has a deadline.
    deadlines: BTreeSet<(u64, Vec<u8>)>,
    /// Invariant: exactly the `(scan_hash(key), key)` of every key.
    by_hash: BTreeSet<(u64, Vec<u8>)>,
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
                self.by_hash
                    .insert((scan_hash(vacant.key()), vacant.key().clone()));
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
        self.by_hash.remove(&(scan_hash(key), key.to_vec()));
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
            self.by_hash.remove(&(scan_hash(&key), key.clone()));
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

    /// The keys from `start` on, in key order.
    pub(crate) fn range_from(&self, start: &[u8]) -> impl Iterator<Item = (&Vec<u8>, &Stored)> {
        use std::ops::Bound;
        self.keys
            .range::<[u8], _>((Bound::Included(start), Bound::Unbounded))
    }

    /// Removes every key.
    pub(crate) fn clear(&mut self) {
        self.keys.clear();
        self.deadlines.clear();
        self.by_hash.clear();
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
        for (key, stored) in &self.keys {
            if let Value::Hash(hash) = &stored.value {
                assert!(
                    !hash.is_empty(),
                    "empty hash {key:?} held at applied index {applied_index}"
                );
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
