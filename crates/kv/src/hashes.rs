//! The hash commands (`HSET` … `HSTRLEN`; `HSCAN` is in [`scan`](crate::scan)), with
//! Redis 7's replies. Field names are bounded by `max_key_bytes`, field values by
//! `max_value_bytes`, a hash's fields by `max_hash_fields`; a write beyond a limit changes
//! nothing. A hash whose last field goes is deleted.

use crate::float::{format_float, parse_float, LongDouble};
use crate::keyspace::Stored;
use crate::reply::{errors, Reply};
use crate::state_machine::{count, parse_integer, StateMachine};
use crate::value::{Hash, Value};

/// What a listing counts for each item besides its bytes (a RESP bulk string's `$`, length
/// and line ends), so that many empty items are bounded too.
pub(crate) const ITEM_HEADER_BYTES: usize = 16;

impl StateMachine {
    /// The hash at `key` (`None` when missing), or `WRONGTYPE`.
    fn hash_at(&self, key: &[u8]) -> Result<Option<&Hash>, Reply> {
        self.data
            .get(key)
            .map(|stored| stored.value.as_hash())
            .transpose()
    }

    /// The refusal of a write that would store `pairs` in `hash`: a name or value beyond
    /// the limits, or more fields than `max_hash_fields`.
    fn check_hash_write<'a>(
        &self,
        key: &[u8],
        hash: Option<&Hash>,
        pairs: impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)> + Clone,
    ) -> Option<Reply> {
        if key.len() > self.config.max_key_bytes {
            return Some(Reply::error(errors::KEY_TOO_LARGE));
        }
        for (field, value) in pairs.clone() {
            if let Some(refusal) = self.check_size(field, value) {
                return Some(refusal);
            }
        }
        let mut new_fields: Vec<&Vec<u8>> = pairs
            .map(|(field, _)| field)
            .filter(|field| hash.is_none_or(|hash| !hash.contains_key(field)))
            .collect();
        new_fields.sort_unstable();
        new_fields.dedup();
        let held = hash.map_or(0, |hash| hash.len());
        if held.saturating_add(new_fields.len()) > self.config.max_hash_fields {
            return Some(Reply::error(errors::HASH_TOO_LARGE));
        }
        None
    }

    /// Changes the hash at `key` in place (a missing key starts as an empty hash with no
    /// deadline), keeping its deadline; its revision becomes this entry's index.
    ///
    /// # Panics
    /// If `key` holds another type: callers check first.
    fn edit_hash<T>(&mut self, key: &[u8], edit: impl FnOnce(&mut Hash) -> T) -> T {
        let revision = self.applied_index;
        if let Some(stored) = self.data.get_mut(key) {
            let Value::Hash(hash) = &mut stored.value else {
                unreachable!("the caller checked that {key:?} holds a hash");
            };
            stored.revision = revision;
            return edit(hash);
        }
        let mut hash = Hash::new();
        let answer = edit(&mut hash);
        let stored = Stored {
            value: Value::Hash(Box::new(hash)),
            deadline_ms: None,
            revision,
        };
        self.data.insert(key.to_vec(), stored);
        answer
    }

    /// `HSET` (how many fields were added) and `HMSET` (`OK`).
    pub(crate) fn hset(&mut self, key: Vec<u8>, pairs: Vec<(Vec<u8>, Vec<u8>)>, ok: bool) -> Reply {
        if pairs.is_empty() {
            return Reply::error(errors::wrong_arity(if ok { "hmset" } else { "hset" }));
        }
        let hash = match self.hash_at(&key) {
            Ok(hash) => hash,
            Err(wrong_type) => return wrong_type,
        };
        let pairs_iter = pairs.iter().map(|(field, value)| (field, value));
        if let Some(refusal) = self.check_hash_write(&key, hash, pairs_iter) {
            return refusal;
        }
        let added = self.edit_hash(&key, |hash| {
            pairs
                .into_iter()
                .map(|(field, value)| hash.insert(field, value).is_none())
                .filter(|&added| added)
                .count()
        });
        self.notify("hset", &key);
        if ok {
            Reply::Ok
        } else {
            Reply::Integer(count(added))
        }
    }

    /// `HSETNX`: 1 when the field was absent and is now set, else 0.
    pub(crate) fn hset_nx(&mut self, key: Vec<u8>, field: Vec<u8>, value: Vec<u8>) -> Reply {
        let hash = match self.hash_at(&key) {
            Ok(hash) => hash,
            Err(wrong_type) => return wrong_type,
        };
        if hash.is_some_and(|hash| hash.contains_key(&field)) {
            return Reply::Integer(0);
        }
        if let Some(refusal) = self.check_hash_write(&key, hash, [(&field, &value)].into_iter()) {
            return refusal;
        }
        self.edit_hash(&key, |hash| hash.insert(field, value));
        self.notify("hset", &key);
        Reply::Integer(1)
    }

    /// `HGET`: the value or nil.
    pub(crate) fn hget(&self, key: &[u8], field: &[u8]) -> Reply {
        match self.hash_at(key) {
            Ok(hash) => match hash.and_then(|hash| hash.get(field)) {
                Some(value) => Reply::Bulk(value.clone()),
                None => Reply::Nil,
            },
            Err(wrong_type) => wrong_type,
        }
    }

    /// `HMGET`: each field's value or nil, within `max_reply_bytes`.
    pub(crate) fn hmget(&self, key: &[u8], fields: &[Vec<u8>]) -> Reply {
        if fields.is_empty() {
            return Reply::error(errors::wrong_arity("hmget"));
        }
        let hash = match self.hash_at(key) {
            Ok(hash) => hash,
            Err(wrong_type) => return wrong_type,
        };
        let value = |field: &Vec<u8>| hash.and_then(|hash| hash.get(field));
        let sizes = fields.iter().map(|field| value(field).map_or(0, Vec::len));
        if let Some(refusal) = self.check_reply_bytes(sizes) {
            return refusal;
        }
        let reply = |field: &Vec<u8>| value(field).map_or(Reply::Nil, |v| Reply::Bulk(v.clone()));
        Reply::Array(fields.iter().map(reply).collect())
    }

    /// `HGETALL` (fields and values), `HKEYS` (fields) or `HVALS` (values), in field order,
    /// within `max_reply_bytes`; an empty array for a missing key.
    pub(crate) fn hash_listing(&self, key: &[u8], fields: bool, values: bool) -> Reply {
        let hash = match self.hash_at(key) {
            Ok(Some(hash)) => hash,
            Ok(None) => return Reply::Array(Vec::new()),
            Err(wrong_type) => return wrong_type,
        };
        let sizes = hash.iter().flat_map(|(field, value)| {
            let field = fields.then_some(field.len());
            let value = values.then_some(value.len());
            field.into_iter().chain(value)
        });
        if let Some(refusal) = self.check_reply_bytes(sizes) {
            return refusal;
        }
        let mut items = Vec::new();
        for (field, value) in hash {
            if fields {
                items.push(Reply::Bulk(field.clone()));
            }
            if values {
                items.push(Reply::Bulk(value.clone()));
            }
        }
        Reply::Array(items)
    }

    /// The refusal of a reply whose items — each its bytes and [`ITEM_HEADER_BYTES`] —
    /// add up to more than `max_reply_bytes`, judged before anything is copied.
    pub(crate) fn check_reply_bytes(&self, sizes: impl Iterator<Item = usize>) -> Option<Reply> {
        let mut total = 0usize;
        for size in sizes {
            total = total.saturating_add(size).saturating_add(ITEM_HEADER_BYTES);
            if total > self.config.max_reply_bytes {
                return Some(Reply::error(errors::reply_too_large(
                    self.config.max_reply_bytes,
                )));
            }
        }
        None
    }

    /// `HLEN`: the number of fields, 0 for a missing key.
    pub(crate) fn hlen(&self, key: &[u8]) -> Reply {
        match self.hash_at(key) {
            Ok(hash) => Reply::Integer(count(hash.map_or(0, |hash| hash.len()))),
            Err(wrong_type) => wrong_type,
        }
    }

    /// `HEXISTS`: 1 or 0.
    pub(crate) fn hexists(&self, key: &[u8], field: &[u8]) -> Reply {
        match self.hash_at(key) {
            Ok(hash) => {
                Reply::Integer(i64::from(hash.is_some_and(|hash| hash.contains_key(field))))
            }
            Err(wrong_type) => wrong_type,
        }
    }

    /// `HSTRLEN`: the length of the field's value, 0 when missing.
    pub(crate) fn hstrlen(&self, key: &[u8], field: &[u8]) -> Reply {
        match self.hash_at(key) {
            Ok(hash) => Reply::Integer(count(
                hash.and_then(|hash| hash.get(field)).map_or(0, Vec::len),
            )),
            Err(wrong_type) => wrong_type,
        }
    }

    /// `HDEL`: how many of the fields were removed; the hash goes with its last field.
    pub(crate) fn hdel(&mut self, key: &[u8], fields: &[Vec<u8>]) -> Reply {
        if fields.is_empty() {
            return Reply::error(errors::wrong_arity("hdel"));
        }
        let hash = match self.hash_at(key) {
            Ok(Some(hash)) => hash,
            Ok(None) => return Reply::Integer(0),
            Err(wrong_type) => return wrong_type,
        };
        if !fields.iter().any(|field| hash.contains_key(field)) {
            return Reply::Integer(0);
        }
        let (removed, emptied) = self.edit_hash(key, |hash| {
            let removed = fields
                .iter()
                .filter(|field| hash.remove(field).is_some())
                .count();
            (removed, hash.is_empty())
        });
        self.notify("hdel", key);
        if emptied {
            self.data.remove(key);
            self.notify("del", key);
        }
        Reply::Integer(count(removed))
    }

    /// `HINCRBY`: the new integer; a missing field counts from 0.
    pub(crate) fn hincr_by(&mut self, key: Vec<u8>, field: Vec<u8>, increment: i64) -> Reply {
        let hash = match self.hash_at(&key) {
            Ok(hash) => hash,
            Err(wrong_type) => return wrong_type,
        };
        let current = match hash.and_then(|hash| hash.get(&field)) {
            None => 0,
            Some(value) => match parse_integer(value) {
                Some(n) => n,
                None => return Reply::error(errors::HASH_NOT_AN_INTEGER),
            },
        };
        let Some(next) = current.checked_add(increment) else {
            return Reply::error(errors::OVERFLOW);
        };
        let text = next.to_string().into_bytes();
        if let Some(refusal) = self.check_hash_write(&key, hash, [(&field, &text)].into_iter()) {
            return refusal;
        }
        self.edit_hash(&key, |hash| hash.insert(field, text));
        self.notify("hincrby", &key);
        Reply::Integer(next)
    }

    /// `HINCRBYFLOAT`: the new value as text (see [`float`](crate::float)).
    pub(crate) fn hincr_by_float(
        &mut self,
        key: Vec<u8>,
        field: Vec<u8>,
        increment: &[u8],
    ) -> Reply {
        let Some(increment) = parse_float(increment) else {
            return Reply::error(errors::NOT_A_FLOAT);
        };
        if !increment.is_finite() {
            return Reply::error(errors::NAN_OR_INFINITY);
        }
        let hash = match self.hash_at(&key) {
            Ok(hash) => hash,
            Err(wrong_type) => return wrong_type,
        };
        let current = match hash.and_then(|hash| hash.get(&field)) {
            None => LongDouble::ZERO,
            Some(value) => match parse_float(value) {
                Some(n) => n,
                None => return Reply::error(errors::HASH_NOT_A_FLOAT),
            },
        };
        let sum = current.add(&increment);
        if !sum.is_finite() {
            return Reply::error(errors::NOT_FINITE);
        }
        let text = format_float(&sum);
        if let Some(refusal) = self.check_hash_write(&key, hash, [(&field, &text)].into_iter()) {
            return refusal;
        }
        let reply = Reply::Bulk(text.clone());
        self.edit_hash(&key, |hash| hash.insert(field, text));
        self.notify("hincrbyfloat", &key);
        reply
    }
}
