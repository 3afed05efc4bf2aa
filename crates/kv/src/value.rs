//! [`Value`]: what a key holds — a string or a hash — and the `WRONGTYPE` rule.

use std::collections::BTreeMap;

use crate::reply::{errors, Reply};

/// A hash: fields and their values, ordered so that iteration, scans and snapshots are the
/// same on every replica. Invariant: never empty in the keyspace (a hash whose last field
/// is deleted is deleted).
pub(crate) type Hash = BTreeMap<Vec<u8>, Vec<u8>>;

/// What a key holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// A byte string (`SET`, `INCR`, `APPEND`…).
    String(Vec<u8>),
    /// A hash of fields (`HSET`…).
    Hash(Hash),
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
