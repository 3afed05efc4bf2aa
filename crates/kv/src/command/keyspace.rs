//! The encoding of the string, keyspace and hash commands (format version 3, opcodes 21
//! to 48; 49 to 59 are kept for this group), in the layout of the [parent
//! module](super): a byte string is a varint length then the bytes, an optional one a tag
//! (0 absent, 1 present) then the bytes, pairs a count then `(a, b)…`.
//!
//! | opcode | command | fields |
//! |---|---|---|
//! | 21 | `TYPE` | key |
//! | 22 | `RENAME` | key, new key |
//! | 23 | `RENAMENX` | key, new key |
//! | 24 | `STRLEN` | key |
//! | 25 | `APPEND` | key, value |
//! | 26 | `GETRANGE` | key, start (zigzag), end (zigzag) |
//! | 27 | `SETRANGE` | key, offset, value |
//! | 28 | `INCRBYFLOAT` | key, increment text |
//! | 29 | `MSETNX` | count, (key, value) pairs |
//! | 30 | `FLUSHALL` | — |
//! | 31 | `RANDOMKEY` | seed |
//! | 32 | `KEYS` | pattern |
//! | 33 | `SCAN` | cursor, optional pattern, count, optional type |
//! | 34 | `HSET` | key, count, (field, value) pairs |
//! | 35 | `HSETNX` | key, field, value |
//! | 36 | `HMSET` | key, count, (field, value) pairs |
//! | 37 | `HGET` | key, field |
//! | 38 | `HMGET` | key, count, fields |
//! | 39 | `HDEL` | key, count, fields |
//! | 40 | `HGETALL` | key |
//! | 41 | `HKEYS` | key |
//! | 42 | `HVALS` | key |
//! | 43 | `HLEN` | key |
//! | 44 | `HEXISTS` | key, field |
//! | 45 | `HSTRLEN` | key, field |
//! | 46 | `HINCRBY` | key, field, increment (zigzag) |
//! | 47 | `HINCRBYFLOAT` | key, field, increment text |
//! | 48 | `HSCAN` | key, cursor, optional pattern, count |

use std::ops::RangeInclusive;

use super::{put_keys, read_keys, Command};
use crate::codec::{put_bytes, put_i64, put_u64, Reader};
use crate::error::KvError;

/// The opcodes of this group.
pub(super) const OPCODES: RangeInclusive<u8> = op::TYPE..=op::HSCAN;

mod op {
    pub const TYPE: u8 = 21;
    pub const RENAME: u8 = 22;
    pub const RENAMENX: u8 = 23;
    pub const STRLEN: u8 = 24;
    pub const APPEND: u8 = 25;
    pub const GETRANGE: u8 = 26;
    pub const SETRANGE: u8 = 27;
    pub const INCRBYFLOAT: u8 = 28;
    pub const MSETNX: u8 = 29;
    pub const FLUSHALL: u8 = 30;
    pub const RANDOMKEY: u8 = 31;
    pub const KEYS: u8 = 32;
    pub const SCAN: u8 = 33;
    pub const HSET: u8 = 34;
    pub const HSETNX: u8 = 35;
    pub const HMSET: u8 = 36;
    pub const HGET: u8 = 37;
    pub const HMGET: u8 = 38;
    pub const HDEL: u8 = 39;
    pub const HGETALL: u8 = 40;
    pub const HKEYS: u8 = 41;
    pub const HVALS: u8 = 42;
    pub const HLEN: u8 = 43;
    pub const HEXISTS: u8 = 44;
    pub const HSTRLEN: u8 = 45;
    pub const HINCRBY: u8 = 46;
    pub const HINCRBYFLOAT: u8 = 47;
    pub const HSCAN: u8 = 48;
}

/// The lower-case Redis name of a command of this group.
pub(super) fn name(command: &Command) -> &'static str {
    match command {
        Command::Type { .. } => "type",
        Command::Rename { .. } => "rename",
        Command::RenameNx { .. } => "renamenx",
        Command::StrLen { .. } => "strlen",
        Command::Append { .. } => "append",
        Command::GetRange { .. } => "getrange",
        Command::SetRange { .. } => "setrange",
        Command::IncrByFloat { .. } => "incrbyfloat",
        Command::MSetNx { .. } => "msetnx",
        Command::FlushAll => "flushall",
        Command::RandomKey { .. } => "randomkey",
        Command::Keys { .. } => "keys",
        Command::Scan { .. } => "scan",
        Command::HSet { .. } => "hset",
        Command::HSetNx { .. } => "hsetnx",
        Command::HMSet { .. } => "hmset",
        Command::HGet { .. } => "hget",
        Command::HMGet { .. } => "hmget",
        Command::HDel { .. } => "hdel",
        Command::HGetAll { .. } => "hgetall",
        Command::HKeys { .. } => "hkeys",
        Command::HVals { .. } => "hvals",
        Command::HLen { .. } => "hlen",
        Command::HExists { .. } => "hexists",
        Command::HStrLen { .. } => "hstrlen",
        Command::HIncrBy { .. } => "hincrby",
        Command::HIncrByFloat { .. } => "hincrbyfloat",
        Command::HScan { .. } => "hscan",
        _ => unreachable!("{command:?} is named by the parent module"),
    }
}

/// Whether a command of this group only reads.
pub(super) fn is_read_only(command: &Command) -> bool {
    matches!(
        command,
        Command::Type { .. }
            | Command::StrLen { .. }
            | Command::GetRange { .. }
            | Command::RandomKey { .. }
            | Command::Keys { .. }
            | Command::Scan { .. }
            | Command::HGet { .. }
            | Command::HMGet { .. }
            | Command::HGetAll { .. }
            | Command::HKeys { .. }
            | Command::HVals { .. }
            | Command::HLen { .. }
            | Command::HExists { .. }
            | Command::HStrLen { .. }
            | Command::HScan { .. }
    )
}

/// Appends the opcode and fields of a command of this group.
pub(super) fn encode(command: &Command, out: &mut Vec<u8>) {
    match command {
        Command::Type { key } => key_only(out, op::TYPE, key),
        Command::Rename { key, new_key } => two(out, op::RENAME, key, new_key),
        Command::RenameNx { key, new_key } => two(out, op::RENAMENX, key, new_key),
        Command::StrLen { key } => key_only(out, op::STRLEN, key),
        Command::Append { key, value } => two(out, op::APPEND, key, value),
        Command::GetRange { key, start, end } => {
            key_only(out, op::GETRANGE, key);
            put_i64(out, *start);
            put_i64(out, *end);
        }
        Command::SetRange { key, offset, value } => {
            key_only(out, op::SETRANGE, key);
            put_u64(out, *offset);
            put_bytes(out, value);
        }
        Command::IncrByFloat { key, increment } => two(out, op::INCRBYFLOAT, key, increment),
        Command::MSetNx { pairs } => {
            out.push(op::MSETNX);
            put_pairs(out, pairs);
        }
        Command::FlushAll => out.push(op::FLUSHALL),
        Command::RandomKey { seed } => {
            out.push(op::RANDOMKEY);
            put_u64(out, *seed);
        }
        Command::Keys { pattern } => key_only(out, op::KEYS, pattern),
        Command::Scan {
            cursor,
            pattern,
            count,
            value_type,
        } => {
            out.push(op::SCAN);
            put_u64(out, *cursor);
            put_optional(out, pattern.as_deref());
            put_u64(out, *count);
            put_optional(out, value_type.as_deref());
        }
        Command::HSet { key, pairs } => {
            key_only(out, op::HSET, key);
            put_pairs(out, pairs);
        }
        Command::HSetNx { key, field, value } => {
            two(out, op::HSETNX, key, field);
            put_bytes(out, value);
        }
        Command::HMSet { key, pairs } => {
            key_only(out, op::HMSET, key);
            put_pairs(out, pairs);
        }
        Command::HGet { key, field } => two(out, op::HGET, key, field),
        Command::HMGet { key, fields } => {
            key_only(out, op::HMGET, key);
            put_keys(out, fields);
        }
        Command::HDel { key, fields } => {
            key_only(out, op::HDEL, key);
            put_keys(out, fields);
        }
        Command::HGetAll { key } => key_only(out, op::HGETALL, key),
        Command::HKeys { key } => key_only(out, op::HKEYS, key),
        Command::HVals { key } => key_only(out, op::HVALS, key),
        Command::HLen { key } => key_only(out, op::HLEN, key),
        Command::HExists { key, field } => two(out, op::HEXISTS, key, field),
        Command::HStrLen { key, field } => two(out, op::HSTRLEN, key, field),
        Command::HIncrBy {
            key,
            field,
            increment,
        } => {
            two(out, op::HINCRBY, key, field);
            put_i64(out, *increment);
        }
        Command::HIncrByFloat {
            key,
            field,
            increment,
        } => {
            two(out, op::HINCRBYFLOAT, key, field);
            put_bytes(out, increment);
        }
        Command::HScan {
            key,
            cursor,
            pattern,
            count,
        } => {
            key_only(out, op::HSCAN, key);
            put_u64(out, *cursor);
            put_optional(out, pattern.as_deref());
            put_u64(out, *count);
        }
        _ => unreachable!("{command:?} is encoded by the parent module"),
    }
}

/// Reads the fields of the command with opcode `code` (one of [`OPCODES`]).
pub(super) fn decode(code: u8, r: &mut Reader<'_>) -> Result<Command, KvError> {
    Ok(match code {
        op::TYPE => Command::Type { key: r.bytes()? },
        op::RENAME => Command::Rename {
            key: r.bytes()?,
            new_key: r.bytes()?,
        },
        op::RENAMENX => Command::RenameNx {
            key: r.bytes()?,
            new_key: r.bytes()?,
        },
        op::STRLEN => Command::StrLen { key: r.bytes()? },
        op::APPEND => Command::Append {
            key: r.bytes()?,
            value: r.bytes()?,
        },
        op::GETRANGE => Command::GetRange {
            key: r.bytes()?,
            start: r.i64()?,
            end: r.i64()?,
        },
        op::SETRANGE => Command::SetRange {
            key: r.bytes()?,
            offset: r.u64()?,
            value: r.bytes()?,
        },
        op::INCRBYFLOAT => Command::IncrByFloat {
            key: r.bytes()?,
            increment: r.bytes()?,
        },
        op::MSETNX => Command::MSetNx {
            pairs: read_pairs(r)?,
        },
        op::FLUSHALL => Command::FlushAll,
        op::RANDOMKEY => Command::RandomKey { seed: r.u64()? },
        op::KEYS => Command::Keys {
            pattern: r.bytes()?,
        },
        op::SCAN => Command::Scan {
            cursor: r.u64()?,
            pattern: read_optional(r)?,
            count: r.u64()?,
            value_type: read_optional(r)?,
        },
        op::HSET => Command::HSet {
            key: r.bytes()?,
            pairs: read_pairs(r)?,
        },
        op::HSETNX => Command::HSetNx {
            key: r.bytes()?,
            field: r.bytes()?,
            value: r.bytes()?,
        },
        op::HMSET => Command::HMSet {
            key: r.bytes()?,
            pairs: read_pairs(r)?,
        },
        op::HGET => Command::HGet {
            key: r.bytes()?,
            field: r.bytes()?,
        },
        op::HMGET => Command::HMGet {
            key: r.bytes()?,
            fields: read_keys(r)?,
        },
        op::HDEL => Command::HDel {
            key: r.bytes()?,
            fields: read_keys(r)?,
        },
        op::HGETALL => Command::HGetAll { key: r.bytes()? },
        op::HKEYS => Command::HKeys { key: r.bytes()? },
        op::HVALS => Command::HVals { key: r.bytes()? },
        op::HLEN => Command::HLen { key: r.bytes()? },
        op::HEXISTS => Command::HExists {
            key: r.bytes()?,
            field: r.bytes()?,
        },
        op::HSTRLEN => Command::HStrLen {
            key: r.bytes()?,
            field: r.bytes()?,
        },
        op::HINCRBY => Command::HIncrBy {
            key: r.bytes()?,
            field: r.bytes()?,
            increment: r.i64()?,
        },
        op::HINCRBYFLOAT => Command::HIncrByFloat {
            key: r.bytes()?,
            field: r.bytes()?,
            increment: r.bytes()?,
        },
        op::HSCAN => Command::HScan {
            key: r.bytes()?,
            cursor: r.u64()?,
            pattern: read_optional(r)?,
            count: r.u64()?,
        },
        tag => return Err(r.unknown_tag("opcode", tag)),
    })
}

fn key_only(out: &mut Vec<u8>, code: u8, key: &[u8]) {
    out.push(code);
    put_bytes(out, key);
}

fn two(out: &mut Vec<u8>, code: u8, first: &[u8], second: &[u8]) {
    key_only(out, code, first);
    put_bytes(out, second);
}

/// Keys with values, or fields with values.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn put_pairs(out: &mut Vec<u8>, pairs: &[(Vec<u8>, Vec<u8>)]) {
    put_u64(out, pairs.len() as u64);
    for (a, b) in pairs {
        put_bytes(out, a);
        put_bytes(out, b);
    }
}

fn read_pairs(r: &mut Reader<'_>) -> Result<Pairs, KvError> {
    // Each pair takes at least two bytes (two empty strings).
    let count = r.count(2)?;
    let mut pairs = Vec::with_capacity(count);
    for _ in 0..count {
        pairs.push((r.bytes()?, r.bytes()?));
    }
    Ok(pairs)
}

fn put_optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.push(0),
        Some(bytes) => {
            out.push(1);
            put_bytes(out, bytes);
        }
    }
}

fn read_optional(r: &mut Reader<'_>) -> Result<Option<Vec<u8>>, KvError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(r.bytes()?)),
        tag => Err(r.unknown_tag("optional", tag)),
    }
}
