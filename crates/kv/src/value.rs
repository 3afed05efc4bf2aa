//! [`Value`]: what a key holds — a string or a hash — and the `WRONGTYPE` rule.

use std::collections::{BTreeMap, BTreeSet};

use crate::reply::{errors, Reply};
use crate::scan::scan_hash;

/// A hash: fields and their values, ordered so that iteration, scans and snapshots are the
/// same on every replica. Invariant: never empty in the keyspace (a hash whose last field
/// is deleted is deleted).
///
/// A hash of more than [`INDEXED_ABOVE_FIELDS`] fields also keeps its fields in scan order
/// (see [`scan`](crate::scan)), so that an `HSCAN` page costs about its `COUNT`; a smaller
/// one is sorted for each page, which its size bounds. Whether the index exists depends on
/// the field count alone, so it is the same on every replica and after a restore.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hash {
    fields: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Invariant: `Some` exactly when there are more than [`INDEXED_ABOVE_FIELDS`] fields,
    /// then holding the `(scan_hash(field), field)` of every field.
    by_hash: Option<BTreeSet<(u64, Vec<u8>)>>,
}

/// A field of a hash and its value.
pub(crate) type FieldValue<'a> = (&'a Vec<u8>, &'a Vec<u8>);

/// The field count above which a hash keeps its scan order (Redis too pages only hashes
/// past its 128-entry compact encoding; smaller ones it answers whole).
pub(crate) const INDEXED_ABOVE_FIELDS: usize = 128;

impl Hash {
    pub(crate) fn new() -> Hash {
        Hash::default()
    }

    pub(crate) fn len(&self) -> usize {
        self.fields.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub(crate) fn get(&self, field: &[u8]) -> Option<&Vec<u8>> {
        self.fields.get(field)
    }

    pub(crate) fn contains_key(&self, field: &[u8]) -> bool {
        self.fields.contains_key(field)
    }

    /// The fields and values in field order.
    pub(crate) fn iter(&self) -> std::collections::btree_map::Iter<'_, Vec<u8>, Vec<u8>> {
        self.fields.iter()
    }

    /// The fields in field order.
    pub(crate) fn keys(&self) -> std::collections::btree_map::Keys<'_, Vec<u8>, Vec<u8>> {
        self.fields.keys()
    }

    /// The values in field order.
    pub(crate) fn values(&self) -> std::collections::btree_map::Values<'_, Vec<u8>, Vec<u8>> {
        self.fields.values()
    }

    pub(crate) fn last_key_value(&self) -> Option<(&Vec<u8>, &Vec<u8>)> {
        self.fields.last_key_value()
    }

    /// Sets `field`; its old value comes back.
    pub(crate) fn insert(&mut self, field: Vec<u8>, value: Vec<u8>) -> Option<Vec<u8>> {
        let added = !self.fields.contains_key(&field);
        if added {
            if let Some(index) = &mut self.by_hash {
                index.insert((scan_hash(&field), field.clone()));
            }
        }
        let old = self.fields.insert(field, value);
        if added && self.by_hash.is_none() && self.fields.len() > INDEXED_ABOVE_FIELDS {
            let index = self.fields.keys().map(|f| (scan_hash(f), f.clone()));
            self.by_hash = Some(index.collect());
        }
        old
    }

    /// Removes `field`; its value comes back.
    pub(crate) fn remove(&mut self, field: &[u8]) -> Option<Vec<u8>> {
        let old = self.fields.remove(field)?;
        if self.fields.len() <= INDEXED_ABOVE_FIELDS {
            self.by_hash = None;
        } else if let Some(index) = &mut self.by_hash {
            index.remove(&(scan_hash(field), field.to_vec()));
        }
        Some(old)
    }

    /// The fields whose scan hash is `from` or more, in `(hash, field)` order, with their
    /// values; `None` for a hash too small to keep that order (sort it instead).
    pub(crate) fn by_hash_from(
        &self,
        from: u64,
    ) -> Option<impl Iterator<Item = (u64, FieldValue<'_>)>> {
        let index = self.by_hash.as_ref()?;
        Some(index.range((from, Vec::new())..).map(|(hash, field)| {
            let value = self.fields.get(field).expect("the index names held fields");
            (*hash, (field, value))
        }))
    }

    /// Panics unless the scan index is there exactly when the hash is large, and names
    /// exactly its fields.
    pub(crate) fn check_invariants(&self) {
        match &self.by_hash {
            None => assert!(
                self.fields.len() <= INDEXED_ABOVE_FIELDS,
                "a large hash without its index"
            ),
            Some(index) => {
                assert!(
                    self.fields.len() > INDEXED_ABOVE_FIELDS,
                    "a small hash with an index"
                );
                assert_eq!(index.len(), self.fields.len(), "hash index out of step");
                for (hash, field) in index {
                    assert_eq!(*hash, scan_hash(field), "hash index holds a wrong hash");
                    assert!(
                        self.fields.contains_key(field),
                        "hash index names a missing field"
                    );
                }
            }
        }
    }
}

impl<'a> IntoIterator for &'a Hash {
    type Item = (&'a Vec<u8>, &'a Vec<u8>);
    type IntoIter = std::collections::btree_map::Iter<'a, Vec<u8>, Vec<u8>>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

/// What a key holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// A byte string (`SET`, `INCR`, `APPEND`…).
    String(Vec<u8>),
    /// A hash of fields (`HSET`…), boxed: a string is what most keys hold, and the state
    /// every key has (`Stored`) is then 48 bytes, one 64-byte allocation with its counts,
    /// where an inline hash made it 80.
    Hash(Box<Hash>),
}

/// The types `TYPE` and `SCAN … TYPE` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueType {
    String,
    Hash,
}

impl ValueType {
    /// Redis's name of the type (`TYPE`'s answer).
    pub(crate) fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Hash => "hash",
        }
    }
}

impl Value {
    /// The type of the value.
    pub(crate) fn value_type(&self) -> ValueType {
        match self {
            Value::String(_) => ValueType::String,
            Value::Hash(_) => ValueType::Hash,
        }
    }

    /// The bytes of a string; `None` for a hash.
    pub(crate) fn string_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::String(bytes) => Some(bytes),
            Value::Hash(_) => None,
        }
    }

    /// The string, or `WRONGTYPE` for any other type (Redis's rule for string commands).
    pub(crate) fn as_string(&self) -> Result<&Vec<u8>, Reply> {
        match self {
            Value::String(bytes) => Ok(bytes),
            Value::Hash(_) => Err(wrong_type()),
        }
    }

    /// The hash, or `WRONGTYPE` for any other type.
    pub(crate) fn as_hash(&self) -> Result<&Hash, Reply> {
        match self {
            Value::Hash(hash) => Ok(hash),
            Value::String(_) => Err(wrong_type()),
        }
    }

    /// The bytes the value holds (fields and values added up), for sizing buffers.
    pub(crate) fn payload_bytes(&self) -> usize {
        match self {
            Value::String(bytes) => bytes.len(),
            Value::Hash(hash) => hash
                .iter()
                .map(|(field, value)| field.len().saturating_add(value.len()))
                .fold(0usize, usize::saturating_add),
        }
    }
}

/// Redis's reply to a command run against a key of another type.
pub(crate) fn wrong_type() -> Reply {
    Reply::error(errors::WRONG_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash keeps its fields in scan order once past 128 fields and drops that order at
    /// 128 again, so the index depends on the field count alone (the same on a replica
    /// restored from a snapshot); the order lists every field once, by scan hash.
    #[test]
    fn a_large_hash_keeps_its_fields_in_scan_order() {
        let mut hash = Hash::new();
        let field = |n: usize| format!("field{n}").into_bytes();
        for n in 0..INDEXED_ABOVE_FIELDS {
            hash.insert(field(n), b"v".to_vec());
        }
        assert!(
            hash.by_hash_from(0).is_none(),
            "128 fields are sorted per page"
        );
        hash.insert(field(0), b"again".to_vec());
        assert!(hash.by_hash_from(0).is_none(), "overwriting adds no field");
        hash.insert(field(INDEXED_ABOVE_FIELDS), b"v".to_vec());
        hash.check_invariants();
        let ordered: Vec<u64> = hash
            .by_hash_from(0)
            .expect("129 fields")
            .map(|(h, _)| h)
            .collect();
        assert_eq!(ordered.len(), INDEXED_ABOVE_FIELDS + 1);
        assert!(ordered.windows(2).all(|pair| pair[0] <= pair[1]));
        let middle = ordered[64];
        let from_middle = hash.by_hash_from(middle).expect("indexed").count();
        assert_eq!(
            from_middle,
            ordered.iter().filter(|&&h| h >= middle).count()
        );
        assert_eq!(hash.remove(&field(3)), Some(b"v".to_vec()));
        assert!(hash.by_hash_from(0).is_none(), "back to 128 fields");
        hash.check_invariants();
        let mut rebuilt = Hash::new();
        for (f, v) in &hash {
            rebuilt.insert(f.clone(), v.clone());
        }
        assert_eq!(rebuilt, hash);
    }
}
