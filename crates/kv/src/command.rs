//! [`Command`]: what a client asks of the store, and its binary form in a log entry.
//!
//! # Encoding (version 3)
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
//! | 12 | `SET` with options | key, value, condition, expiry, get (0 or 1) |
//! | 13 | `SETNX` | key, value |
//! | 14 | `GETEX` | key, expiry |
//! | 15 | `GETDEL` | key |
//! | 16 | `EXPIRE` and kin | key, deadline, expire condition (0-5) |
//! | 17 | `PERSIST` | key |
//! | 18 | `TTL`/`PTTL` | key, unit (0 s, 1 ms) |
//! | 19 | `EXPIRETIME`/`PEXPIRETIME` | key, unit |
//! | 20 | `REVISION` | key |
//! | 21–59 | the string, keyspace and hash commands | see [`keyspace`] |
//! | 60 | `EXEC` | watched keys and queued commands (see [`transaction`](crate::transaction)) |
//!
//! An expiry is a tag (0 clear, 1 keep, 2 a deadline follows); a deadline a tag (0 relative,
//! 1 absolute) and milliseconds (zigzag). Version 1 had opcodes 1 to 11 only, version 2
//! opcodes 1 to 20, encoded as here; both are still read.
//!
//! Every command has exactly one encoding in the current version: [`Command::decode`]
//! refuses overlong varints, unknown tags and trailing bytes, so `decode(b)` succeeding on
//! bytes of version 2 implies `encode() == b`.
//! The version byte comes first so that a later build can read entries written by this one.

mod keyspace;

use crate::codec::{put_bytes, put_i64, put_u64, Reader};
use crate::error::{Encoded, KvError};
use crate::expiry::{
    put_deadline, put_expire_condition, put_expiry, put_unit, read_deadline, read_expire_condition,
    read_expiry, read_unit, Deadline, ExpireCondition, Expiry, SetOptions, TimeUnit,
};
use crate::transaction::{Transaction, EXEC_OPCODE};

/// The format version written by [`Command::encode`].
pub const COMMAND_FORMAT_VERSION: u8 = 3;

/// The format versions this build reads: 1 (opcodes up to `DBSIZE`), 2 (up to `REVISION`)
/// and 3.
const COMMAND_FORMAT_VERSIONS: &[u16] = &[1, 2, COMMAND_FORMAT_VERSION as u16];

/// The last opcode of format version 1.
const LAST_VERSION_1_OPCODE: u8 = opcode::DBSIZE;

/// The last opcode of format version 2.
const LAST_VERSION_2_OPCODE: u8 = opcode::REVISION;

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

impl SetCondition {
    /// Whether a `SET` with this condition takes effect on a key that `exists` or not.
    pub fn holds(self, exists: bool) -> bool {
        match self {
            SetCondition::Always => true,
            SetCondition::IfAbsent => !exists,
            SetCondition::IfPresent => exists,
        }
    }
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
    /// `SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT|KEEPTTL]` (also `SETEX`, `PSETEX`,
    /// `GETSET`): `OK`, nil when the condition does not hold, or with `GET` the old value.
    SetWith {
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
        /// The condition, time to live and `GET`.
        options: SetOptions,
    },
    /// `SETNX key value`: 1 when the key was absent and is now set, else 0.
    SetNx {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// `GETEX key [EX|PX|EXAT|PXAT|PERSIST]`: the value, and the time to live changed
    /// ([`Expiry::Keep`]: unchanged, [`Expiry::Clear`]: `PERSIST`).
    GetEx {
        /// The key.
        key: Vec<u8>,
        /// What happens to its time to live.
        expiry: Expiry,
    },
    /// `GETDEL key`: the value (or nil), and the key deleted.
    GetDel {
        /// The key.
        key: Vec<u8>,
    },
    /// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT` with `NX|XX|GT|LT`: 1 when the deadline
    /// was set (a deadline already passed deletes the key), 0 when the key is missing or
    /// the condition does not hold.
    Expire {
        /// The key.
        key: Vec<u8>,
        /// The new deadline.
        deadline: Deadline,
        /// When it applies.
        condition: ExpireCondition,
    },
    /// `PERSIST key`: 1 when a deadline was removed, else 0.
    Persist {
        /// The key.
        key: Vec<u8>,
    },
    /// `TTL key` / `PTTL key`: the time left at the log time of the applied index; -1 for a
    /// key without deadline, -2 for a missing key.
    Ttl {
        /// The key.
        key: Vec<u8>,
        /// Seconds (rounded) or milliseconds.
        unit: TimeUnit,
    },
    /// `EXPIRETIME key` / `PEXPIRETIME key`: the deadline as Unix time; -1, -2 as for `TTL`.
    ExpireTime {
        /// The key.
        key: Vec<u8>,
        /// Seconds (rounded to the nearest) or milliseconds.
        unit: TimeUnit,
    },
    /// `REVISION key` (Skiff's own): the log index of the key's last write, or nil. A lock
    /// taken with `SET … NX` has a revision larger than every earlier holder's: a fencing
    /// token.
    Revision {
        /// The key.
        key: Vec<u8>,
    },
    /// `MULTI … EXEC`: the queued commands run in order in one entry, or none of them when a
    /// watched key changed since it was watched (see [`Transaction`]): the array of their
    /// replies, or the nil array.
    Exec(Transaction),
    /// `TYPE key`: `string`, `hash`, or `none` for a missing key.
    Type {
        /// The key.
        key: Vec<u8>,
    },
    /// `RENAME key newkey`: `OK`; the value, deadline and type move, the revision becomes
    /// the index of the rename. `ERR no such key` when `key` is missing.
    Rename {
        /// The key renamed.
        key: Vec<u8>,
        /// Its new name (anything there is overwritten).
        new_key: Vec<u8>,
    },
    /// `RENAMENX key newkey`: as `RENAME` when `newkey` does not exist (1), else 0.
    RenameNx {
        /// The key renamed.
        key: Vec<u8>,
        /// Its new name.
        new_key: Vec<u8>,
    },
    /// `STRLEN key`: the length of the string (0 for a missing key).
    StrLen {
        /// The key.
        key: Vec<u8>,
    },
    /// `APPEND key value`: the length after appending (a missing key starts empty).
    Append {
        /// The key.
        key: Vec<u8>,
        /// What to append.
        value: Vec<u8>,
    },
    /// `GETRANGE key start end` (and `SUBSTR`): the bytes between two inclusive offsets,
    /// negative ones counting from the end.
    GetRange {
        /// The key.
        key: Vec<u8>,
        /// The first offset.
        start: i64,
        /// The last offset (inclusive).
        end: i64,
    },
    /// `SETRANGE key offset value`: overwrite from `offset` (zero-padded), answer the length.
    SetRange {
        /// The key.
        key: Vec<u8>,
        /// Where the value starts (the parser refuses a negative one).
        offset: u64,
        /// The bytes to write.
        value: Vec<u8>,
    },
    /// `INCRBYFLOAT key increment`: the new value, formatted as Redis formats it.
    IncrByFloat {
        /// The key.
        key: Vec<u8>,
        /// The increment as the client wrote it (a decimal float).
        increment: Vec<u8>,
    },
    /// `MSETNX key value …`: set every pair if none of the keys exists (1), else nothing (0).
    MSetNx {
        /// The pairs.
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// `FLUSHDB` / `FLUSHALL`: remove every key.
    FlushAll,
    /// `RANDOMKEY`: a live key, nil when there is none. Reads are pure, so the caller
    /// passes the randomness: the answer is the first key at or after `seed` (big-endian
    /// bytes) in key order, else the first key.
    RandomKey {
        /// Where in key order to look.
        seed: u64,
    },
    /// `KEYS pattern`: every key matching a Redis glob, in key order.
    Keys {
        /// The glob.
        pattern: Vec<u8>,
    },
    /// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`: `[next cursor, keys]`.
    Scan {
        /// Where the iteration is (0 to start).
        cursor: u64,
        /// Only keys matching this glob are returned.
        pattern: Option<Vec<u8>>,
        /// About how many keys to visit (at least 1).
        count: u64,
        /// Only keys of this type (`string`, `hash`, …) are returned.
        value_type: Option<Vec<u8>>,
    },
    /// `HSET key field value …`: how many fields were added (not updated).
    HSet {
        /// The key.
        key: Vec<u8>,
        /// The fields and their values, applied in order.
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// `HSETNX key field value`: 1 when the field was absent and is now set, else 0.
    HSetNx {
        /// The key.
        key: Vec<u8>,
        /// The field.
        field: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// `HMSET key field value …`: as `HSET`, answering `OK`.
    HMSet {
        /// The key.
        key: Vec<u8>,
        /// The fields and their values.
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// `HGET key field`: the value, or nil.
    HGet {
        /// The key.
        key: Vec<u8>,
        /// The field.
        field: Vec<u8>,
    },
    /// `HMGET key field…`: each field's value or nil.
    HMGet {
        /// The key.
        key: Vec<u8>,
        /// The fields.
        fields: Vec<Vec<u8>>,
    },
    /// `HDEL key field…`: how many fields were removed; the hash goes with its last field.
    HDel {
        /// The key.
        key: Vec<u8>,
        /// The fields.
        fields: Vec<Vec<u8>>,
    },
    /// `HGETALL key`: fields and values, alternating, in field order.
    HGetAll {
        /// The key.
        key: Vec<u8>,
    },
    /// `HKEYS key`: the fields, in order.
    HKeys {
        /// The key.
        key: Vec<u8>,
    },
    /// `HVALS key`: the values, in field order.
    HVals {
        /// The key.
        key: Vec<u8>,
    },
    /// `HLEN key`: the number of fields.
    HLen {
        /// The key.
        key: Vec<u8>,
    },
    /// `HEXISTS key field`: 1 or 0.
    HExists {
        /// The key.
        key: Vec<u8>,
        /// The field.
        field: Vec<u8>,
    },
    /// `HSTRLEN key field`: the length of the field's value (0 when missing).
    HStrLen {
        /// The key.
        key: Vec<u8>,
        /// The field.
        field: Vec<u8>,
    },
    /// `HINCRBY key field increment`: the new integer.
    HIncrBy {
        /// The key.
        key: Vec<u8>,
        /// The field.
        field: Vec<u8>,
        /// What to add.
        increment: i64,
    },
    /// `HINCRBYFLOAT key field increment`: the new value, formatted as `INCRBYFLOAT` does.
    HIncrByFloat {
        /// The key.
        key: Vec<u8>,
        /// The field.
        field: Vec<u8>,
        /// The increment as the client wrote it.
        increment: Vec<u8>,
    },
    /// `HSCAN key cursor [MATCH pattern] [COUNT count]`: `[next cursor, [field, value…]]`.
    HScan {
        /// The key.
        key: Vec<u8>,
        /// Where the iteration is (0 to start).
        cursor: u64,
        /// Only fields matching this glob are returned.
        pattern: Option<Vec<u8>>,
        /// About how many fields to visit (at least 1).
        count: u64,
    },
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
    pub const SET_WITH: u8 = 12;
    pub const SETNX: u8 = 13;
    pub const GETEX: u8 = 14;
    pub const GETDEL: u8 = 15;
    pub const EXPIRE: u8 = 16;
    pub const PERSIST: u8 = 17;
    pub const TTL: u8 = 18;
    pub const EXPIRETIME: u8 = 19;
    pub const REVISION: u8 = 20;
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
            Command::SetWith { .. } => "set",
            Command::SetNx { .. } => "setnx",
            Command::GetEx { .. } => "getex",
            Command::GetDel { .. } => "getdel",
            Command::Expire { .. } => "expire",
            Command::Persist { .. } => "persist",
            Command::Ttl { .. } => "ttl",
            Command::ExpireTime { .. } => "expiretime",
            Command::Revision { .. } => "revision",
            Command::Exec(_) => "exec",
            other => keyspace::name(other),
        }
    }

    /// Whether the command only reads (`GET`, `MGET`, `EXISTS`, `DBSIZE`, `TTL`, `PTTL`,
    /// `EXPIRETIME`, `PEXPIRETIME`, `REVISION`): such a command
    /// may be served by [`StateMachine::read`](crate::StateMachine::read) without going
    /// through the log.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            Command::Get { .. }
                | Command::MGet { .. }
                | Command::Exists { .. }
                | Command::DbSize
                | Command::Ttl { .. }
                | Command::ExpireTime { .. }
                | Command::Revision { .. }
        ) || keyspace::is_read_only(self)
    }

    /// The binary form for a log entry (see the [module documentation](self)).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        self.encode_into(&mut out);
        out
    }

    /// Bytes to reserve for the binary form: at least its size for the commands that carry
    /// values (a value may be large, and a buffer grown to fit it would copy it on the way), a
    /// guess for any other command.
    pub(crate) fn encoded_len_hint(&self) -> usize {
        /// Each pair's bytes and their two lengths (at most 10 bytes each).
        fn pairs_len(pairs: &[(Vec<u8>, Vec<u8>)]) -> usize {
            pairs.iter().map(|(a, b)| 20 + a.len() + b.len()).sum()
        }
        match self {
            // Version, opcode, two lengths of at most 10 bytes each, the condition.
            Command::Set { key, value, .. } => 23 + key.len() + value.len(),
            // The same, and the options or offset (at most 32 bytes).
            Command::SetWith { key, value, .. }
            | Command::SetNx { key, value }
            | Command::Append { key, value }
            | Command::SetRange { key, value, .. } => 54 + key.len() + value.len(),
            Command::HSetNx { key, field, value } => 32 + key.len() + field.len() + value.len(),
            // Version, opcode, the key's length and the pairs' count.
            Command::MSet { pairs } | Command::MSetNx { pairs } => 12 + pairs_len(pairs),
            Command::HSet { key, pairs } | Command::HMSet { key, pairs } => {
                22 + key.len() + pairs_len(pairs)
            }
            _ => 64,
        }
    }

    /// Appends the binary form to `out`: a [`Request`](crate::Request) writes its command
    /// after its own fields, into one buffer.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(COMMAND_FORMAT_VERSION);
        match self {
            Command::Get { key } => {
                out.push(opcode::GET);
                put_bytes(out, key);
            }
            Command::Set {
                key,
                value,
                condition,
            } => {
                out.push(opcode::SET);
                put_bytes(out, key);
                put_bytes(out, value);
                put_condition(out, *condition);
            }
            Command::Del { keys } => {
                out.push(opcode::DEL);
                put_keys(out, keys);
            }
            Command::Exists { keys } => {
                out.push(opcode::EXISTS);
                put_keys(out, keys);
            }
            Command::Incr { key } => {
                out.push(opcode::INCR);
                put_bytes(out, key);
            }
            Command::IncrBy { key, increment } => {
                out.push(opcode::INCRBY);
                put_bytes(out, key);
                put_i64(out, *increment);
            }
            Command::Decr { key } => {
                out.push(opcode::DECR);
                put_bytes(out, key);
            }
            Command::MGet { keys } => {
                out.push(opcode::MGET);
                put_keys(out, keys);
            }
            Command::MSet { pairs } => {
                out.push(opcode::MSET);
                put_u64(out, pairs.len() as u64);
                for (key, value) in pairs {
                    put_bytes(out, key);
                    put_bytes(out, value);
                }
            }
            Command::Cas { key, expected, new } => {
                out.push(opcode::CAS);
                put_bytes(out, key);
                match expected {
                    None => out.push(0),
                    Some(expected) => {
                        out.push(1);
                        put_bytes(out, expected);
                    }
                }
                put_bytes(out, new);
            }
            Command::DbSize => out.push(opcode::DBSIZE),
            Command::SetWith {
                key,
                value,
                options,
            } => {
                out.push(opcode::SET_WITH);
                put_bytes(out, key);
                put_bytes(out, value);
                put_condition(out, options.condition);
                put_expiry(out, options.expiry);
                out.push(u8::from(options.get));
            }
            Command::SetNx { key, value } => {
                out.push(opcode::SETNX);
                put_bytes(out, key);
                put_bytes(out, value);
            }
            Command::GetEx { key, expiry } => {
                out.push(opcode::GETEX);
                put_bytes(out, key);
                put_expiry(out, *expiry);
            }
            Command::GetDel { key } => {
                out.push(opcode::GETDEL);
                put_bytes(out, key);
            }
            Command::Expire {
                key,
                deadline,
                condition,
            } => {
                out.push(opcode::EXPIRE);
                put_bytes(out, key);
                put_deadline(out, *deadline);
                put_expire_condition(out, *condition);
            }
            Command::Persist { key } => {
                out.push(opcode::PERSIST);
                put_bytes(out, key);
            }
            Command::Ttl { key, unit } => {
                out.push(opcode::TTL);
                put_bytes(out, key);
                put_unit(out, *unit);
            }
            Command::ExpireTime { key, unit } => {
                out.push(opcode::EXPIRETIME);
                put_bytes(out, key);
                put_unit(out, *unit);
            }
            Command::Revision { key } => {
                out.push(opcode::REVISION);
                put_bytes(out, key);
            }
            Command::Exec(transaction) => {
                out.push(EXEC_OPCODE);
                transaction.put(out);
            }
            other => keyspace::encode(other, out),
        }
    }

    /// The key the command encoded in `bytes` writes, read in place, for the writes to one
    /// key that name it first (`SET` in all its forms, `INCR`, `INCRBY`, `DECR`, `CAS`,
    /// `GETEX`, `GETDEL`, `EXPIRE`, `PERSIST`); `None` for any other command and for bytes
    /// that do not say. A hint of what applying it will touch, never a decode: the bytes
    /// after the key are not checked.
    pub(crate) fn written_key(bytes: &[u8]) -> Option<&[u8]> {
        let mut r = Reader::new(bytes, Encoded::Command);
        r.version(COMMAND_FORMAT_VERSIONS).ok()?;
        match r.u8().ok()? {
            opcode::SET
            | opcode::SET_WITH
            | opcode::SETNX
            | opcode::INCR
            | opcode::INCRBY
            | opcode::DECR
            | opcode::CAS
            | opcode::GETEX
            | opcode::GETDEL
            | opcode::EXPIRE
            | opcode::PERSIST => r.bytes_in_place().ok(),
            _ => None,
        }
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
        let version = r.version(COMMAND_FORMAT_VERSIONS)?;
        let op = r.u8()?;
        if (version == 1 && op > LAST_VERSION_1_OPCODE)
            || (version == 2 && op > LAST_VERSION_2_OPCODE)
        {
            return Err(r.unknown_tag("opcode", op));
        }
        let command = match op {
            opcode::GET => Command::Get { key: r.bytes()? },
            opcode::SET => {
                let key = r.bytes()?;
                let value = r.bytes()?;
                let condition = read_condition(&mut r)?;
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
            opcode::SET_WITH => {
                let key = r.bytes()?;
                let value = r.bytes()?;
                let condition = read_condition(&mut r)?;
                let expiry = read_expiry(&mut r)?;
                let get = match r.u8()? {
                    0 => false,
                    1 => true,
                    tag => return Err(r.unknown_tag("set get", tag)),
                };
                Command::SetWith {
                    key,
                    value,
                    options: SetOptions {
                        condition,
                        expiry,
                        get,
                    },
                }
            }
            opcode::SETNX => Command::SetNx {
                key: r.bytes()?,
                value: r.bytes()?,
            },
            opcode::GETEX => Command::GetEx {
                key: r.bytes()?,
                expiry: read_expiry(&mut r)?,
            },
            opcode::GETDEL => Command::GetDel { key: r.bytes()? },
            opcode::EXPIRE => Command::Expire {
                key: r.bytes()?,
                deadline: read_deadline(&mut r)?,
                condition: read_expire_condition(&mut r)?,
            },
            opcode::PERSIST => Command::Persist { key: r.bytes()? },
            opcode::TTL => Command::Ttl {
                key: r.bytes()?,
                unit: read_unit(&mut r)?,
            },
            opcode::EXPIRETIME => Command::ExpireTime {
                key: r.bytes()?,
                unit: read_unit(&mut r)?,
            },
            opcode::REVISION => Command::Revision { key: r.bytes()? },
            EXEC_OPCODE => Command::Exec(Transaction::read(&mut r, version)?),
            op if keyspace::OPCODES.contains(&op) => keyspace::decode(op, &mut r)?,
            tag => return Err(r.unknown_tag("opcode", tag)),
        };
        r.finish()?;
        Ok(command)
    }
}

fn put_condition(out: &mut Vec<u8>, condition: SetCondition) {
    out.push(match condition {
        SetCondition::Always => 0,
        SetCondition::IfAbsent => 1,
        SetCondition::IfPresent => 2,
    });
}

fn read_condition(r: &mut Reader<'_>) -> Result<SetCondition, KvError> {
    Ok(match r.u8()? {
        0 => SetCondition::Always,
        1 => SetCondition::IfAbsent,
        2 => SetCondition::IfPresent,
        tag => return Err(r.unknown_tag("set condition", tag)),
    })
}

pub(crate) fn put_keys(out: &mut Vec<u8>, keys: &[Vec<u8>]) {
    put_u64(out, keys.len() as u64);
    for key in keys {
        put_bytes(out, key);
    }
}

pub(crate) fn read_keys(r: &mut Reader<'_>) -> Result<Vec<Vec<u8>>, KvError> {
    // Each key takes at least one byte (its length).
    let count = r.count(1)?;
    let mut keys = Vec::with_capacity(count);
    for _ in 0..count {
        keys.push(r.bytes()?);
    }
    Ok(keys)
}
