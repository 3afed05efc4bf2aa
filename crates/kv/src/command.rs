//! [`Command`]: what a client asks of the store, and its binary form in a log entry.
//!
//! # Encoding (version 1)
//! ```text
//! version(1) | opcode | fields…
//! ```
//! where integers are LEB128 varints (shortest form only), signed ones zigzag-mapped first,
//! byte strings a varint length then the bytes, and tags one byte. The fields of each opcode:
//!
//! | opcode | command | fields |
//! |---|---|---|
//! | 1 | `GET` | key |
//! | 2 | `SET` | key, value, condition (0 always, 1 `NX`, 2 `XX`) |
//! | 3 | `DEL` | count, keys |
//! | 4 | `EXISTS` | count, keys |
//! | 5 | `INCR` | key |
//! | 6 | `INCRBY` | key, increment (zigzag) |
//! | 7 | `DECR` | key |
//! | 8 | `MGET` | count, keys |
//! | 9 | `MSET` | count, (key, value) pairs |
//! | 10 | `CAS` | key, expected (0 absent, or 1 then a byte string), new value |
//! | 11 | `DBSIZE` | — |
//!
//! Every command has exactly one encoding: [`Command::decode`] refuses overlong varints,
//! unknown tags and trailing bytes, so `decode(b)` succeeding implies `encode() == b`.
//! The version byte comes first so that a later build can read entries written by this one.

use crate::codec::{put_bytes, put_i64, put_u64, Reader};
use crate::error::{Encoded, KvError};

/// The format version written by [`Command::encode`].
pub const COMMAND_FORMAT_VERSION: u8 = 1;

/// The format versions this build reads.
const COMMAND_FORMAT_VERSIONS: &[u16] = &[COMMAND_FORMAT_VERSION as u16];

/// When a `SET` takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SetCondition {
    /// Always (plain `SET`).
    #[default]
    Always,
    /// Only when the key does not exist (`SET … NX`).
    IfAbsent,
    /// Only when the key exists (`SET … XX`).
    IfPresent,
}

/// One key-value command. Keys and values are arbitrary byte strings.
///
/// A command holding no keys where Redis requires at least one (`DEL`, `EXISTS`, `MGET`,
/// `MSET`) is representable and encodable; applying it answers Redis's "wrong number of
/// arguments" error.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// `GET key`: the value, or nil.
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// `SET key value [NX|XX]`: `OK`, or nil when the condition does not hold.
    Set {
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
        /// `NX`, `XX` or neither.
        condition: SetCondition,
    },
    /// `DEL key…`: how many of the keys existed (each removed key counted once).
    Del {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// `EXISTS key…`: how many of the keys exist (a key named twice is counted twice).
    Exists {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// `INCR key`: add one to the decimal integer stored at `key` (0 if absent).
    Incr {
        /// The key.
        key: Vec<u8>,
    },
    /// `INCRBY key increment`.
    IncrBy {
        /// The key.
        key: Vec<u8>,
        /// What to add (may be negative).
        increment: i64,
    },
    /// `DECR key`: subtract one.
    Decr {
        /// The key.
        key: Vec<u8>,
    },
    /// `MGET key…`: an array with each key's value or nil.
    MGet {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// `MSET key value …`: set every pair, all in one step (no reader sees a part of it).
    MSet {
        /// The pairs, applied in order (a key named twice ends with its last value).
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// `CAS key expected new` (Skiff's own): when the current value of `key` equals
    /// `expected` (`None`: the key is absent), set it to `new` and answer 1; otherwise change
    /// nothing and answer 0.
    Cas {
        /// The key.
        key: Vec<u8>,
        /// The value the key must hold, or `None` for "absent".
        expected: Option<Vec<u8>>,
        /// The value to store.
        new: Vec<u8>,
    },
    /// `DBSIZE`: the number of keys.
    DbSize,
}

mod opcode {
    pub const GET: u8 = 1;
    pub const SET: u8 = 2;
    pub const DEL: u8 = 3;
    pub const EXISTS: u8 = 4;
    pub const INCR: u8 = 5;
    pub const INCRBY: u8 = 6;
    pub const DECR: u8 = 7;
    pub const MGET: u8 = 8;
    pub const MSET: u8 = 9;
    pub const CAS: u8 = 10;
    pub const DBSIZE: u8 = 11;
}

impl Command {
    /// The lower-case Redis name, as used in error replies (`"incrby"`).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Get { .. } => "get",
            Command::Set { .. } => "set",
            Command::Del { .. } => "del",
            Command::Exists { .. } => "exists",
            Command::Incr { .. } => "incr",
            Command::IncrBy { .. } => "incrby",
            Command::Decr { .. } => "decr",
            Command::MGet { .. } => "mget",
            Command::MSet { .. } => "mset",
            Command::Cas { .. } => "cas",
            Command::DbSize => "dbsize",
        }
    }

    /// Whether the command only reads (`GET`, `MGET`, `EXISTS`, `DBSIZE`): such a command
    /// may be served by [`StateMachine::read`](crate::StateMachine::read) without going
    /// through the log.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            Command::Get { .. } | Command::MGet { .. } | Command::Exists { .. } | Command::DbSize
        )
    }

    /// The binary form for a log entry (see the [module documentation](self)).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.push(COMMAND_FORMAT_VERSION);
        match self {
            Command::Get { key } => {
                out.push(opcode::GET);
                put_bytes(&mut out, key);
            }
            Command::Set {
                key,
                value,
                condition,
            } => {
                out.push(opcode::SET);
                put_bytes(&mut out, key);
                put_bytes(&mut out, value);
                out.push(match condition {
                    SetCondition::Always => 0,
                    SetCondition::IfAbsent => 1,
                    SetCondition::IfPresent => 2,
                });
            }
            Command::Del { keys } => {
                out.push(opcode::DEL);
                put_keys(&mut out, keys);
            }
            Command::Exists { keys } => {
                out.push(opcode::EXISTS);
                put_keys(&mut out, keys);
            }
            Command::Incr { key } => {
                out.push(opcode::INCR);
                put_bytes(&mut out, key);
            }
            Command::IncrBy { key, increment } => {
                out.push(opcode::INCRBY);
                put_bytes(&mut out, key);
                put_i64(&mut out, *increment);
            }
            Command::Decr { key } => {
                out.push(opcode::DECR);
                put_bytes(&mut out, key);
            }
            Command::MGet { keys } => {
                out.push(opcode::MGET);
                put_keys(&mut out, keys);
            }
            Command::MSet { pairs } => {
                out.push(opcode::MSET);
                put_u64(&mut out, pairs.len() as u64);
                for (key, value) in pairs {
                    put_bytes(&mut out, key);
                    put_bytes(&mut out, value);
                }
            }
            Command::Cas { key, expected, new } => {
                out.push(opcode::CAS);
                put_bytes(&mut out, key);
                match expected {
                    None => out.push(0),
                    Some(expected) => {
                        out.push(1);
                        put_bytes(&mut out, expected);
                    }
                }
                put_bytes(&mut out, new);
            }
            Command::DbSize => out.push(opcode::DBSIZE),
        }
        out
    }

    /// Decodes bytes written by [`Command::encode`]. Malformed bytes — empty, truncated, an
    /// unknown version or tag, an overlong varint, trailing bytes — give a typed error; this
    /// never panics and never allocates more than the input could fill.
    pub fn decode(bytes: &[u8]) -> Result<Command, KvError> {
        let what = Encoded::Command;
        if bytes.is_empty() {
            return Err(KvError::Empty { what });
        }
        let mut r = Reader::new(bytes, what);
        r.version(COMMAND_FORMAT_VERSIONS)?;
        let command = match r.u8()? {
            opcode::GET => Command::Get { key: r.bytes()? },
            opcode::SET => {
                let key = r.bytes()?;
                let value = r.bytes()?;
                let condition = match r.u8()? {
                    0 => SetCondition::Always,
                    1 => SetCondition::IfAbsent,
                    2 => SetCondition::IfPresent,
                    tag => return Err(r.unknown_tag("set condition", tag)),
                };
                Command::Set {
                    key,
                    value,
                    condition,
                }
            }
            opcode::DEL => Command::Del {
                keys: read_keys(&mut r)?,
            },
            opcode::EXISTS => Command::Exists {
                keys: read_keys(&mut r)?,
            },
            opcode::INCR => Command::Incr { key: r.bytes()? },
            opcode::INCRBY => Command::IncrBy {
                key: r.bytes()?,
                increment: r.i64()?,
            },
            opcode::DECR => Command::Decr { key: r.bytes()? },
            opcode::MGET => Command::MGet {
                keys: read_keys(&mut r)?,
            },
            opcode::MSET => {
                // Each pair takes at least two bytes (two empty strings).
                let count = r.count(2)?;
                let mut pairs = Vec::with_capacity(count);
                for _ in 0..count {
                    pairs.push((r.bytes()?, r.bytes()?));
                }
                Command::MSet { pairs }
            }
            opcode::CAS => {
                let key = r.bytes()?;
                let expected = match r.u8()? {
                    0 => None,
                    1 => Some(r.bytes()?),
                    tag => return Err(r.unknown_tag("cas expected", tag)),
                };
                Command::Cas {
                    key,
                    expected,
                    new: r.bytes()?,
                }
            }
            opcode::DBSIZE => Command::DbSize,
            tag => return Err(r.unknown_tag("opcode", tag)),
        };
        r.finish()?;
        Ok(command)
    }
}

fn put_keys(out: &mut Vec<u8>, keys: &[Vec<u8>]) {
    put_u64(out, keys.len() as u64);
    for key in keys {
        put_bytes(out, key);
    }
}

fn read_keys(r: &mut Reader<'_>) -> Result<Vec<Vec<u8>>, KvError> {
    // Each key takes at least one byte (its length).
    let count = r.count(1)?;
    let mut keys = Vec::with_capacity(count);
    for _ in 0..count {
        keys.push(r.bytes()?);
    }
    Ok(keys)
}
