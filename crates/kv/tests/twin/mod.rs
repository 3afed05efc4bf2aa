//! The model's string, keyspace and hash commands and scans (STYLE.md rule 8), written
//! naively: strings and hashes in plain maps, scans by sorting every key by its FNV-1a
//! hash, globs matched recursively.

use std::collections::BTreeMap;

use proptest::prelude::*;
use skiff_kv::reply::errors;
use skiff_kv::{Command, Reply};

use super::{
    arity, err, key, value, MValue, Model, MAX_HASH_FIELDS, MAX_KEY_BYTES, MAX_VALUE_BYTES,
};

/// A hash in the model.
type MHash = BTreeMap<Vec<u8>, Vec<u8>>;

pub fn wrong_type() -> Reply {
    err(errors::WRONG_TYPE)
}

/// Fields: two short ones and one over the name limit.
fn field() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just("f"), Just("g"), Just("h"), Just("long")].prop_map(|f| f.as_bytes().to_vec())
}

/// Whole increments, a non-number and infinity. No value the strategies make holds a
/// point, so APPEND and SETRANGE cannot turn a sum into a decimal the model cannot count in
/// quarters exactly; fractions are checked against redis-server in `float`'s unit tests.
fn float_text() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec!["3", "-1", "0", "-7", "x", "inf"]).prop_map(|t| t.as_bytes().to_vec())
}

fn pattern() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec!["*", "a*", "?", "[ab]", "[^a]*", "\\a", "l*g", "*o*"])
        .prop_map(|t| t.as_bytes().to_vec())
}

fn cursor() -> impl Strategy<Value = u64> {
    prop_oneof![3 => Just(0u64), 1 => any::<u64>(), 1 => Just(u64::MAX / 2)]
}

fn count() -> impl Strategy<Value = u64> {
    prop::sample::select(vec![0u64, 1, 2, 10])
}

pub fn string_command() -> impl Strategy<Value = Command> {
    let pairs = || proptest::collection::vec((key(), value()), 0..3);
    let value_type = proptest::option::of(
        prop::sample::select(vec!["string", "hash", "HASH", "list"])
            .prop_map(|t| t.as_bytes().to_vec()),
    );
    prop_oneof![
        key().prop_map(|key| Command::Type { key }),
        (key(), key()).prop_map(|(key, new_key)| Command::Rename { key, new_key }),
        (key(), key()).prop_map(|(key, new_key)| Command::RenameNx { key, new_key }),
        key().prop_map(|key| Command::StrLen { key }),
        (key(), value()).prop_map(|(key, value)| Command::Append { key, value }),
        (key(), -8i64..8, -8i64..8).prop_map(|(key, start, end)| Command::GetRange {
            key,
            start,
            end
        }),
        (key(), prop_oneof![0u64..25, Just(u64::MAX)], value())
            .prop_map(|(key, offset, value)| Command::SetRange { key, offset, value }),
        (key(), float_text()).prop_map(|(key, increment)| Command::IncrByFloat { key, increment }),
        pairs().prop_map(|pairs| Command::MSetNx { pairs }),
        Just(Command::FlushAll),
        any::<u64>().prop_map(|seed| Command::RandomKey { seed }),
        pattern().prop_map(|pattern| Command::Keys { pattern }),
        (
            cursor(),
            proptest::option::of(pattern()),
            count(),
            value_type
        )
            .prop_map(|(cursor, pattern, count, value_type)| Command::Scan {
                cursor,
                pattern,
                count,
                value_type
            }),
    ]
}

pub fn hash_command() -> impl Strategy<Value = Command> {
    let pairs = || proptest::collection::vec((field(), value()), 0..4);
    let fields = || proptest::collection::vec(field(), 0..3);
    prop_oneof![
        4 => (key(), pairs()).prop_map(|(key, pairs)| Command::HSet { key, pairs }),
        1 => (key(), pairs()).prop_map(|(key, pairs)| Command::HMSet { key, pairs }),
        1 => (key(), field(), value()).prop_map(|(key, field, value)| Command::HSetNx { key, field, value }),
        1 => (key(), field()).prop_map(|(key, field)| Command::HGet { key, field }),
        1 => (key(), fields()).prop_map(|(key, fields)| Command::HMGet { key, fields }),
        2 => (key(), fields()).prop_map(|(key, fields)| Command::HDel { key, fields }),
        1 => key().prop_map(|key| Command::HGetAll { key }),
        1 => key().prop_map(|key| Command::HKeys { key }),
        1 => key().prop_map(|key| Command::HVals { key }),
        1 => key().prop_map(|key| Command::HLen { key }),
        1 => (key(), field()).prop_map(|(key, field)| Command::HExists { key, field }),
        1 => (key(), field()).prop_map(|(key, field)| Command::HStrLen { key, field }),
        1 => (key(), field(), prop_oneof![Just(i64::MAX), -3i64..3])
            .prop_map(|(key, field, increment)| Command::HIncrBy { key, field, increment }),
        1 => (key(), field(), float_text())
            .prop_map(|(key, field, increment)| Command::HIncrByFloat { key, field, increment }),
        1 => (key(), cursor(), proptest::option::of(pattern()), count()).prop_map(
            |(key, cursor, pattern, count)| Command::HScan { key, cursor, pattern, count }
        ),
    ]
}

/// The scan order: SipHash-2-4 under the key `skiff scan order`, 0 taken as 1.
fn scan_order(bytes: &[u8]) -> u64 {
    siphasher::sip::SipHasher24::new_with_key(b"skiff scan order")
        .hash(bytes)
        .max(1)
}

/// Redis's glob, for the simple patterns the strategy makes.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => glob(rest, text) || (!text.is_empty() && glob(pattern, &text[1..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((b'[', rest)) => {
            let close = rest.iter().position(|&c| c == b']').expect("closed set");
            let (negated, set) = match &rest[..close] {
                [b'^', set @ ..] => (true, set),
                set => (false, set),
            };
            !text.is_empty()
                && set.contains(&text[0]) != negated
                && glob(&rest[close + 1..], &text[1..])
        }
        Some((b'\\', [escaped, rest @ ..])) => {
            text.first() == Some(escaped) && glob(rest, &text[1..])
        }
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

/// A number the model reads as a float: infinite, or a count of quarters (the values and
/// increments the strategies make are all whole quarters).
#[derive(Clone, Copy)]
enum Quarters {
    Finite(i128),
    Infinite,
}

/// A float as Redis reads one, for the texts the strategies make: `[-]digits[.digits]`
/// in whole quarters, or `inf`.
fn float(bytes: &[u8]) -> Option<Quarters> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text == "inf" {
        return Some(Quarters::Infinite);
    }
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|d| d.is_ascii_digit()) {
        return None;
    }
    let quarter = match fraction.trim_end_matches('0') {
        "" => 0,
        "25" => 1,
        "5" => 2,
        "75" => 3,
        _ => panic!("the strategies make only whole quarters: {text}"),
    };
    let n = whole.parse::<i128>().ok()? * 4 + quarter;
    Some(Quarters::Finite(if negative { -n } else { n }))
}

/// `n` quarters as an 80-bit long double holds them: 64 significant bits, ties to even (a
/// power of two apart from the value, so the same bits).
fn long_double(n: i128) -> i128 {
    let mut magnitude = n.unsigned_abs();
    let bits = 128 - magnitude.leading_zeros();
    if bits > 64 {
        let drop = bits - 64;
        let kept = magnitude >> drop;
        let rest = magnitude & ((1 << drop) - 1);
        let half = 1 << (drop - 1);
        let up = rest > half || (rest == half && kept & 1 == 1);
        magnitude = (kept + u128::from(up)) << drop;
    }
    let magnitude = i128::try_from(magnitude).expect("quarters of the strategies' values");
    if n < 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// `a + b` as Redis computes it in long doubles (each operand read into one, as `strtold`
/// does, then the sum rounded again) and prints it; `None` when infinite.
fn float_sum(a: Quarters, b: Quarters) -> Option<Vec<u8>> {
    let (Quarters::Finite(a), Quarters::Finite(b)) = (a, b) else {
        return None;
    };
    let sum = long_double(long_double(a) + long_double(b));
    let magnitude = sum.unsigned_abs();
    if magnitude == 0 {
        return Some(b"0".to_vec());
    }
    let fraction = ["", ".25", ".5", ".75"][(magnitude % 4) as usize];
    let sign = if sum < 0 { "-" } else { "" };
    Some(format!("{sign}{}{fraction}", magnitude / 4).into_bytes())
}

/// One page of a scan over `items` (each with its hash, any order) from `cursor`.
fn page<T: Ord + Clone>(items: Vec<(u64, T)>, cursor: u64, count: u64) -> (Vec<T>, u64) {
    let mut items: Vec<(u64, T)> = items.into_iter().filter(|(h, _)| *h >= cursor).collect();
    items.sort();
    let mut taken: Vec<T> = Vec::new();
    for (i, (hash, item)) in items.iter().enumerate() {
        if i as u64 >= count && items[i - 1].0 != *hash {
            return (taken, *hash);
        }
        taken.push(item.clone());
    }
    (taken, 0)
}

fn scan_reply(cursor: u64, items: Vec<Vec<u8>>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(cursor.to_string().into_bytes()),
        Reply::Array(items.into_iter().map(Reply::Bulk).collect()),
    ])
}

fn size(key: &[u8], value: &[u8]) -> Option<Reply> {
    Model::too_big(key, value)
}

impl Model {
    fn string(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Reply> {
        match self.data.get(key) {
            None => Ok(None),
            Some(MValue::Str(v)) => Ok(Some(v.clone())),
            Some(MValue::Hash(_)) => Err(wrong_type()),
        }
    }

    fn hash(&self, key: &[u8]) -> Result<Option<MHash>, Reply> {
        match self.data.get(key) {
            None => Ok(None),
            Some(MValue::Hash(h)) => Ok(Some(h.clone())),
            Some(MValue::Str(_)) => Err(wrong_type()),
        }
    }

    /// Writes a string or hash keeping the key's deadline.
    fn keep_deadline(&mut self, key: &[u8], value: MValue) {
        let kept = self.deadlines.get(key).copied();
        self.write_value(key, value, kept);
    }

    pub(super) fn read_keyspace(&self, command: &Command) -> Option<Reply> {
        Some(match command {
            Command::Type { key } => Reply::Simple(
                match self.data.get(key) {
                    None => "none",
                    Some(MValue::Str(_)) => "string",
                    Some(MValue::Hash(_)) => "hash",
                }
                .to_string(),
            ),
            Command::StrLen { key } => match self.string(key) {
                Ok(v) => Reply::Integer(v.map_or(0, |v| v.len() as i64)),
                Err(e) => e,
            },
            Command::GetRange { key, start, end } => {
                let v = match self.string(key) {
                    Ok(v) => v.unwrap_or_default(),
                    Err(e) => return Some(e),
                };
                let n = v.len() as i64;
                if (*start < 0 && *end < 0 && start > end) || n == 0 {
                    return Some(Reply::Bulk(Vec::new()));
                }
                let s = if *start < 0 { n + start } else { *start }.max(0);
                let e = if *end < 0 { n + end } else { *end }.max(0).min(n - 1);
                Reply::Bulk(if s > e {
                    Vec::new()
                } else {
                    v[s as usize..=e as usize].to_vec()
                })
            }
            Command::RandomKey { seed } => {
                // The key at position seed mod len of the scan order.
                let mut keys: Vec<(u64, &Vec<u8>)> =
                    self.data.keys().map(|k| (scan_order(k), k)).collect();
                keys.sort();
                let len = keys.len() as u64;
                let found = (len > 0).then(|| keys[(seed % len) as usize].1);
                found.map_or(Reply::Nil, |k| Reply::Bulk(k.clone()))
            }
            Command::Keys { pattern } => {
                let mut keys: Vec<Vec<u8>> = self
                    .data
                    .keys()
                    .filter(|k| glob(pattern, k))
                    .cloned()
                    .collect();
                keys.sort();
                Reply::Array(keys.into_iter().map(Reply::Bulk).collect())
            }
            Command::Scan { count: 0, .. } => err(errors::SYNTAX),
            Command::Scan {
                cursor,
                pattern,
                count,
                value_type,
            } => {
                let items = self
                    .data
                    .keys()
                    .map(|k| (scan_order(k), k.clone()))
                    .collect();
                let (keys, next) = page(items, *cursor, *count);
                let keys = keys
                    .into_iter()
                    .filter(|k| pattern.as_ref().is_none_or(|p| glob(p, k)))
                    .filter(|k| {
                        value_type.as_ref().is_none_or(|t| {
                            let name = match self.data[k] {
                                MValue::Str(_) => "string",
                                MValue::Hash(_) => "hash",
                            };
                            t.eq_ignore_ascii_case(name.as_bytes())
                        })
                    })
                    .collect();
                scan_reply(next, keys)
            }
            Command::HScan {
                key,
                cursor,
                pattern,
                count,
            } => match self.hash(key) {
                Err(e) => e,
                Ok(None) => scan_reply(0, Vec::new()),
                // Options the parser refused, judged after the key as Redis does.
                Ok(Some(_)) if *count == 0 => match pattern {
                    None => err(errors::SYNTAX),
                    Some(_) => err(errors::NOT_AN_INTEGER),
                },
                Ok(Some(hash)) => {
                    let items = hash
                        .into_iter()
                        .map(|(f, v)| (scan_order(&f), (f, v)))
                        .collect();
                    let (fields, next) = page(items, *cursor, *count);
                    let items = fields
                        .into_iter()
                        .filter(|(f, _)| pattern.as_ref().is_none_or(|p| glob(p, f)))
                        .flat_map(|(f, v)| [f, v])
                        .collect();
                    scan_reply(next, items)
                }
            },
            Command::HMGet { fields, .. } if fields.is_empty() => arity("hmget"),
            Command::HGet { key, .. }
            | Command::HMGet { key, .. }
            | Command::HGetAll { key }
            | Command::HKeys { key }
            | Command::HVals { key }
            | Command::HLen { key }
            | Command::HExists { key, .. }
            | Command::HStrLen { key, .. } => {
                let hash = match self.hash(key) {
                    Ok(h) => h.unwrap_or_default(),
                    Err(e) => return Some(e),
                };
                let bulk = |v: &Vec<u8>| Reply::Bulk(v.clone());
                match command {
                    Command::HGet { field, .. } => hash.get(field).map_or(Reply::Nil, bulk),
                    Command::HMGet { fields, .. } => Reply::Array(
                        fields
                            .iter()
                            .map(|f| hash.get(f).map_or(Reply::Nil, bulk))
                            .collect(),
                    ),
                    Command::HGetAll { .. } => {
                        Reply::Array(hash.iter().flat_map(|(f, v)| [bulk(f), bulk(v)]).collect())
                    }
                    Command::HKeys { .. } => Reply::Array(hash.keys().map(bulk).collect()),
                    Command::HVals { .. } => Reply::Array(hash.values().map(bulk).collect()),
                    Command::HLen { .. } => Reply::Integer(hash.len() as i64),
                    Command::HExists { field, .. } => {
                        Reply::Integer(hash.contains_key(field) as i64)
                    }
                    Command::HStrLen { field, .. } => {
                        Reply::Integer(hash.get(field).map_or(0, |v| v.len() as i64))
                    }
                    _ => unreachable!(),
                }
            }
            _ => return None,
        })
    }

    pub(super) fn execute_keyspace(&mut self, command: &Command) -> Reply {
        match command {
            Command::Rename { key, new_key } | Command::RenameNx { key, new_key } => {
                let nx = matches!(command, Command::RenameNx { .. });
                if !self.data.contains_key(key) {
                    return err(errors::NO_SUCH_KEY);
                }
                if key == new_key {
                    return if nx { Reply::Integer(0) } else { Reply::Ok };
                }
                if new_key.len() > MAX_KEY_BYTES {
                    return err(errors::KEY_TOO_LARGE);
                }
                if nx && self.data.contains_key(new_key) {
                    return Reply::Integer(0);
                }
                let deadline = self.deadlines.get(key).copied();
                let value = self.remove(key).unwrap();
                self.write_value(new_key, value, deadline);
                if nx {
                    Reply::Integer(1)
                } else {
                    Reply::Ok
                }
            }
            Command::Append { key, value } => {
                let mut v = match self.string(key) {
                    Ok(v) => v.unwrap_or_default(),
                    Err(e) => return e,
                };
                v.extend_from_slice(value);
                if let Some(e) = size(key, &v) {
                    return e;
                }
                let len = v.len() as i64;
                self.keep_deadline(key, MValue::Str(v));
                Reply::Integer(len)
            }
            Command::SetRange { key, offset, value } => {
                let mut v = match self.string(key) {
                    Ok(v) => v.unwrap_or_default(),
                    Err(e) => return e,
                };
                if value.is_empty() {
                    return Reply::Integer(v.len() as i64);
                }
                if u128::from(*offset) + value.len() as u128 > MAX_VALUE_BYTES as u128 {
                    return err(errors::VALUE_TOO_LARGE);
                }
                if key.len() > MAX_KEY_BYTES {
                    return err(errors::KEY_TOO_LARGE);
                }
                let offset = *offset as usize;
                while v.len() < offset + value.len() {
                    v.push(0);
                }
                v[offset..offset + value.len()].copy_from_slice(value);
                let len = v.len() as i64;
                self.keep_deadline(key, MValue::Str(v));
                Reply::Integer(len)
            }
            Command::IncrByFloat { key, increment } => {
                let current = match self.string(key) {
                    Ok(None) => Some(Quarters::Finite(0)),
                    Ok(Some(v)) => float(&v),
                    Err(e) => return e,
                };
                let (Some(current), Some(increment)) = (current, float(increment)) else {
                    return err(errors::NOT_A_FLOAT);
                };
                let Some(text) = float_sum(current, increment) else {
                    return err(errors::NOT_FINITE);
                };
                if let Some(e) = size(key, &text) {
                    return e;
                }
                self.keep_deadline(key, MValue::Str(text.clone()));
                Reply::Bulk(text)
            }
            Command::MSetNx { pairs } if pairs.is_empty() => arity("msetnx"),
            Command::MSetNx { pairs } => {
                if let Some(e) = pairs.iter().find_map(|(k, v)| size(k, v)) {
                    return e;
                }
                if pairs.iter().any(|(k, _)| self.data.contains_key(k)) {
                    return Reply::Integer(0);
                }
                for (k, v) in pairs {
                    self.write(k, v.clone(), None);
                }
                Reply::Integer(1)
            }
            Command::FlushAll => {
                self.data.clear();
                self.deadlines.clear();
                self.revisions.clear();
                Reply::Ok
            }
            Command::HSet { pairs, .. } if pairs.is_empty() => arity("hset"),
            Command::HMSet { pairs, .. } if pairs.is_empty() => arity("hmset"),
            Command::HSet { key, pairs } | Command::HMSet { key, pairs } => {
                let mut hash = match self.hash(key) {
                    Ok(h) => h.unwrap_or_default(),
                    Err(e) => return e,
                };
                if let Some(e) = self.check_hash(key, &hash, pairs) {
                    return e;
                }
                let mut added = 0;
                for (f, v) in pairs {
                    if hash.insert(f.clone(), v.clone()).is_none() {
                        added += 1;
                    }
                }
                self.keep_deadline(key, MValue::Hash(hash));
                if matches!(command, Command::HMSet { .. }) {
                    Reply::Ok
                } else {
                    Reply::Integer(added)
                }
            }
            Command::HSetNx { key, field, value } => {
                let mut hash = match self.hash(key) {
                    Ok(h) => h.unwrap_or_default(),
                    Err(e) => return e,
                };
                if hash.contains_key(field) {
                    return Reply::Integer(0);
                }
                if let Some(e) = self.check_hash(key, &hash, &[(field.clone(), value.clone())]) {
                    return e;
                }
                hash.insert(field.clone(), value.clone());
                self.keep_deadline(key, MValue::Hash(hash));
                Reply::Integer(1)
            }
            Command::HDel { fields, .. } if fields.is_empty() => arity("hdel"),
            Command::HDel { key, fields } => {
                let mut hash = match self.hash(key) {
                    Ok(Some(h)) => h,
                    Ok(None) => return Reply::Integer(0),
                    Err(e) => return e,
                };
                let removed = fields.iter().filter(|f| hash.remove(*f).is_some()).count();
                if removed == 0 {
                    return Reply::Integer(0);
                }
                if hash.is_empty() {
                    self.remove(key);
                } else {
                    self.keep_deadline(key, MValue::Hash(hash));
                }
                Reply::Integer(removed as i64)
            }
            Command::HIncrBy {
                key,
                field,
                increment,
            } => {
                let mut hash = match self.hash(key) {
                    Ok(h) => h.unwrap_or_default(),
                    Err(e) => return e,
                };
                let current = match hash.get(field) {
                    None => 0,
                    Some(v) => match super::as_integer(v) {
                        Some(n) => n,
                        None => return err(errors::HASH_NOT_AN_INTEGER),
                    },
                };
                let Some(next) = current.checked_add(*increment) else {
                    return err(errors::OVERFLOW);
                };
                let text = next.to_string().into_bytes();
                if let Some(e) = self.check_hash(key, &hash, &[(field.clone(), text.clone())]) {
                    return e;
                }
                hash.insert(field.clone(), text);
                self.keep_deadline(key, MValue::Hash(hash));
                Reply::Integer(next)
            }
            Command::HIncrByFloat {
                key,
                field,
                increment,
            } => {
                let Some(increment) = float(increment) else {
                    return err(errors::NOT_A_FLOAT);
                };
                if let Quarters::Infinite = increment {
                    return err(errors::NAN_OR_INFINITY);
                }
                let mut hash = match self.hash(key) {
                    Ok(h) => h.unwrap_or_default(),
                    Err(e) => return e,
                };
                let current = match hash.get(field) {
                    None => Quarters::Finite(0),
                    Some(v) => match float(v) {
                        Some(n) => n,
                        None => return err(errors::HASH_NOT_A_FLOAT),
                    },
                };
                let Some(text) = float_sum(current, increment) else {
                    return err(errors::NOT_FINITE);
                };
                if let Some(e) = self.check_hash(key, &hash, &[(field.clone(), text.clone())]) {
                    return e;
                }
                hash.insert(field.clone(), text.clone());
                self.keep_deadline(key, MValue::Hash(hash));
                Reply::Bulk(text)
            }
            other => unreachable!("not a keyspace write: {other:?}"),
        }
    }

    /// The refusal of storing `pairs` in `hash` at `key`: a name or value too large, or
    /// more fields than the limit.
    fn check_hash(&self, key: &[u8], hash: &MHash, pairs: &[(Vec<u8>, Vec<u8>)]) -> Option<Reply> {
        if key.len() > MAX_KEY_BYTES {
            return Some(err(errors::KEY_TOO_LARGE));
        }
        if let Some(e) = pairs.iter().find_map(|(f, v)| size(f, v)) {
            return Some(e);
        }
        let mut fields: Vec<&Vec<u8>> = hash.keys().collect();
        fields.extend(pairs.iter().map(|(f, _)| f));
        fields.sort();
        fields.dedup();
        (fields.len() > MAX_HASH_FIELDS).then(|| err(errors::HASH_TOO_LARGE))
    }
}
