//! The string and keyspace commands beyond `GET`/`SET`: `TYPE`, `RENAME`, `RENAMENX`,
//! `STRLEN`, `APPEND`, `GETRANGE`, `SETRANGE`, `INCRBYFLOAT`, `MSET`/`MSETNX`, `RANDOMKEY`, with
//! Redis 7's replies (`FLUSHALL` is one line in [`dispatch`](crate::dispatch)).

use crate::float::{format_float, parse_float, LongDouble};
use crate::keyspace::Stored;
use crate::reply::{errors, Reply};
use crate::state_machine::{count, StateMachine};
use crate::value::Value;

impl StateMachine {
    /// `TYPE`: `string`, `hash`, or `none`.
    pub(crate) fn type_reply(&self, key: &[u8]) -> Reply {
        let name = self
            .data
            .get(key)
            .map_or("none", |stored| stored.value.value_type().name());
        Reply::Simple(name.to_string())
    }

    /// The string at `key` (`None` when missing), or `WRONGTYPE`.
    fn string_at(&self, key: &[u8]) -> Result<Option<&Vec<u8>>, Reply> {
        self.data
            .get(key)
            .map(|stored| stored.value.as_string())
            .transpose()
    }

    /// `STRLEN`: the length, 0 for a missing key.
    pub(crate) fn strlen(&self, key: &[u8]) -> Reply {
        match self.string_at(key) {
            Ok(value) => Reply::Integer(count(value.map_or(0, Vec::len))),
            Err(wrong_type) => wrong_type,
        }
    }

    /// `GETRANGE`: Redis's clamping — negative offsets count from the end, the end is
    /// inclusive and capped at the last byte, an empty range is the empty string.
    pub(crate) fn get_range(&self, key: &[u8], start: i64, end: i64) -> Reply {
        let value = match self.string_at(key) {
            Ok(value) => value.map_or(&[][..], Vec::as_slice),
            Err(wrong_type) => return wrong_type,
        };
        let len = count(value.len());
        if (start < 0 && end < 0 && start > end) || len == 0 {
            return Reply::Bulk(Vec::new());
        }
        let from_end = |offset: i64| {
            if offset < 0 {
                len.saturating_add(offset)
            } else {
                offset
            }
        };
        let start = from_end(start).max(0);
        let end = from_end(end).max(0).min(len - 1);
        if start > end {
            return Reply::Bulk(Vec::new());
        }
        // 0 <= start <= end < len, so both are indexes of `value`.
        let (start, end) = (start as usize, end as usize);
        Reply::Bulk(value[start..=end].to_vec())
    }

    /// `RENAME`/`RENAMENX`: the value and deadline move to `new_key`, whose revision is this
    /// entry's index; anything at `new_key` is overwritten (`RENAME`) or stops the rename
    /// (`RENAMENX`, answering 0).
    pub(crate) fn rename(&mut self, key: &[u8], new_key: Vec<u8>, nx: bool) -> Reply {
        if !self.data.contains(key) {
            return Reply::error(errors::NO_SUCH_KEY);
        }
        let done = if nx { Reply::Integer(1) } else { Reply::Ok };
        if key == new_key.as_slice() {
            return if nx { Reply::Integer(0) } else { done };
        }
        if new_key.len() > self.config.max_key_bytes {
            return Reply::error(errors::KEY_TOO_LARGE);
        }
        if nx && self.data.contains(&new_key) {
            return Reply::Integer(0);
        }
        let Some(old) = self.data.remove(key) else {
            return Reply::error(errors::NO_SUCH_KEY);
        };
        let moved = Stored {
            revision: self.applied_index,
            ..old
        };
        self.data.insert(new_key.clone(), moved);
        self.notify("rename_from", key);
        self.notify("rename_to", &new_key);
        done
    }

    /// `APPEND`: the new length; a missing key starts empty, the deadline stays.
    pub(crate) fn append(&mut self, key: &[u8], suffix: &[u8]) -> Reply {
        let old_len = match self.string_at(key) {
            Ok(value) => value.map_or(0, Vec::len),
            Err(wrong_type) => return wrong_type,
        };
        let new_len = old_len.saturating_add(suffix.len());
        if let Some(refusal) = self.check_key_and_length(key, new_len) {
            return refusal;
        }
        self.edit_string(key, |value| value.extend_from_slice(suffix));
        self.notify("append", key);
        Reply::Integer(count(new_len))
    }

    /// `SETRANGE`: overwrite from `offset`, zero-padding a shorter string; the new length.
    /// An empty `bytes` changes nothing (and creates no key), as in Redis.
    pub(crate) fn set_range(&mut self, key: &[u8], offset: u64, bytes: &[u8]) -> Reply {
        let old_len = match self.string_at(key) {
            Ok(value) => value.map_or(0, Vec::len),
            Err(wrong_type) => return wrong_type,
        };
        if bytes.is_empty() {
            return Reply::Integer(count(old_len));
        }
        let end = usize::try_from(offset)
            .ok()
            .and_then(|offset| offset.checked_add(bytes.len()));
        let Some(end) = end.filter(|&end| end <= self.config.max_value_bytes) else {
            return Reply::error(errors::VALUE_TOO_LARGE);
        };
        if let Some(refusal) = self.check_key_and_length(key, end) {
            return refusal;
        }
        let start = end - bytes.len();
        self.edit_string(key, |value| {
            if value.len() < end {
                value.resize(end, 0);
            }
            value[start..end].copy_from_slice(bytes);
        });
        self.notify("setrange", key);
        Reply::Integer(count(old_len.max(end)))
    }

    /// `INCRBYFLOAT`: the sum as text (see [`float`](crate::float)); the deadline stays.
    pub(crate) fn incr_by_float(&mut self, key: &[u8], increment: &[u8]) -> Reply {
        let current = match self.string_at(key) {
            Ok(None) => Some(LongDouble::ZERO),
            Ok(Some(value)) => parse_float(value),
            Err(wrong_type) => return wrong_type,
        };
        let (Some(current), Some(increment)) = (current, parse_float(increment)) else {
            return Reply::error(errors::NOT_A_FLOAT);
        };
        let sum = current.add(&increment);
        if !sum.is_finite() {
            return Reply::error(errors::NOT_FINITE);
        }
        let text = format_float(&sum);
        if let Some(refusal) = self.check_size(key, &text) {
            return refusal;
        }
        let reply = Reply::Bulk(text.clone());
        self.edit_string(key, |value| *value = text);
        self.notify("incrbyfloat", key);
        reply
    }

    /// `MSET` (`OK`) and `MSETNX` (`nx`: every pair when none of the keys exists, 1, else
    /// nothing, 0); all or nothing, every pair checked before anything changes.
    pub(crate) fn mset(&mut self, pairs: Vec<(Vec<u8>, Vec<u8>)>, nx: bool) -> Reply {
        if pairs.is_empty() {
            return Reply::error(errors::wrong_arity(if nx { "msetnx" } else { "mset" }));
        }
        for (key, value) in &pairs {
            if let Some(refusal) = self.check_size(key, value) {
                return refusal;
            }
        }
        if nx && pairs.iter().any(|(key, _)| self.data.contains(key)) {
            return Reply::Integer(0);
        }
        for (key, value) in pairs {
            let stored = Stored {
                value: Value::String(value),
                deadline_ms: None,
                revision: self.applied_index,
            };
            self.notify("set", &key);
            self.data.insert(key, stored);
        }
        if nx {
            Reply::Integer(1)
        } else {
            Reply::Ok
        }
    }

    /// `RANDOMKEY`: the first key at or after `seed`'s big-endian bytes in key order, else
    /// the first key; nil when the store is empty. The caller draws the seed, so the read
    /// stays a pure function of the state.
    pub(crate) fn random_key(&self, seed: u64) -> Reply {
        let probe = seed.to_be_bytes();
        let found = self
            .data
            .first_from(&probe)
            .or_else(|| self.data.first_from(&[]));
        match found {
            Some((key, _)) => Reply::Bulk(key.clone()),
            None => Reply::Nil,
        }
    }

    /// The refusal of a key or a string of `len` bytes beyond the limits.
    fn check_key_and_length(&self, key: &[u8], len: usize) -> Option<Reply> {
        if key.len() > self.config.max_key_bytes {
            return Some(Reply::error(errors::KEY_TOO_LARGE));
        }
        if len > self.config.max_value_bytes {
            return Some(Reply::error(errors::VALUE_TOO_LARGE));
        }
        None
    }

    /// Changes the string at `key` in place (a missing key starts as an empty string with
    /// no deadline), keeping its deadline; its revision becomes this entry's index.
    ///
    /// # Panics
    /// If `key` holds another type: callers check first.
    fn edit_string(&mut self, key: &[u8], edit: impl FnOnce(&mut Vec<u8>)) {
        let revision = self.applied_index;
        if let Some(stored) = self.data.get_mut(key) {
            let Value::String(value) = &mut stored.value else {
                unreachable!("the caller checked that {key:?} holds a string");
            };
            edit(value);
            stored.revision = revision;
            return;
        }
        let mut value = Vec::new();
        edit(&mut value);
        let stored = Stored {
            value: Value::String(value),
            deadline_ms: None,
            revision,
        };
        self.data.insert(key.to_vec(), stored);
    }
}
