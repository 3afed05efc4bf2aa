//! [`Reply`]: what the state machine answers, mirroring the Redis reply types.

use crate::codec::{put_bytes, put_i64, put_u64, Reader};
use crate::error::KvError;

/// The answer to a [`Command`](crate::Command), mirroring Redis's reply types so a RESP
/// server can write it out directly.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reply {
    /// `+OK`.
    Ok,
    /// The nil bulk string (`$-1`): a missing key, or a `SET NX`/`XX` that did not apply.
    Nil,
    /// A bulk string.
    Bulk(Vec<u8>),
    /// An integer.
    Integer(i64),
    /// An array (`MGET`).
    Array(Vec<Reply>),
    /// An error, starting with its Redis error code (`"ERR …"`).
    Error(String),
    /// The nil array (`*-1`): an `EXEC` aborted because a watched key changed.
    NilArray,
    /// A simple string other than `OK` (`+PONG`, `+QUEUED`, a `COMMAND` flag).
    Simple(String),
}

/// Error replies the state machine gives, word for word as Redis gives them where Redis has
/// the same error.
pub mod errors {
    /// `INCR`/`INCRBY`/`DECR` on a value that is not a decimal 64-bit integer.
    pub const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
    /// `INCR`/`INCRBY`/`DECR` whose result would not fit in 64 bits.
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    /// A client session request at or below the client's highest applied sequence whose
    /// reply is no longer remembered: it is not applied now, and may have been before.
    pub const STALE_REQUEST: &str =
        "ERR stale request: its reply is no longer kept; it may or may not have been applied";
    /// A client session request that arrived before an earlier request of the same client
    /// was applied: not applied; the node sends it again once the earlier ones are resolved
    /// (a client never sees it).
    pub const OUT_OF_ORDER: &str =
        "TRYAGAIN an earlier write of the session is not applied yet; it was not applied";
    /// The remembered reply of a session request applied when its reply was too large for
    /// the session's reply budget ([`KvConfig::session_reply_bytes`]): a retry gets this.
    ///
    /// [`KvConfig::session_reply_bytes`]: crate::KvConfig::session_reply_bytes
    pub const REPLY_NOT_KEPT: &str =
        "ERR the write was applied, but its reply was too large to keep for a retry";
    /// A re-sent client session request for a client the state machine does not know
    /// (expired or evicted): an earlier copy may have been applied before the session was
    /// forgotten.
    pub const SESSION_EXPIRED: &str =
        "ERR unknown or expired client session; the write may or may not have been applied";
    /// The first write of a new client session when the session table is full and even its
    /// least recently active session has been idle less than
    /// [`KvConfig::session_evict_idle_ms`]: not applied, and the table is unchanged; the
    /// client may try again later.
    ///
    /// [`KvConfig::session_evict_idle_ms`]: crate::KvConfig::session_evict_idle_ms
    pub const TOO_MANY_SESSIONS: &str =
        "TRYAGAIN too many client sessions; the write was not applied";
    /// A write command sent to [`StateMachine::read`](crate::StateMachine::read).
    pub const NOT_READ_ONLY: &str = "ERR write command cannot be served as a read";
    /// A key longer than [`KvConfig::max_key_bytes`](crate::KvConfig::max_key_bytes).
    pub const KEY_TOO_LARGE: &str = "ERR key is too large";
    /// A value longer than [`KvConfig::max_value_bytes`](crate::KvConfig::max_value_bytes).
    pub const VALUE_TOO_LARGE: &str = "ERR value is too large";
    /// A transaction queued inside a transaction (never decoded; only built in process).
    pub const NESTED_EXEC: &str = "ERR EXEC inside a transaction is not allowed";
    /// A command for one type of value run against a key holding another.
    pub const WRONG_TYPE: &str =
        "WRONGTYPE Operation against a key holding the wrong kind of value";
    /// A hash write that would take a hash past
    /// [`KvConfig::max_hash_fields`](crate::KvConfig::max_hash_fields).
    pub const HASH_TOO_LARGE: &str = "ERR hash would have too many fields";

    /// `RENAME` of a missing key.
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    /// `INCRBYFLOAT` on a value or with an increment that is not a float.
    pub const NOT_A_FLOAT: &str = "ERR value is not a valid float";
    /// `INCRBYFLOAT`/`HINCRBYFLOAT` whose sum is not finite.
    pub const NOT_FINITE: &str = "ERR increment would produce NaN or Infinity";
    /// `HINCRBYFLOAT` with an increment that is infinite.
    pub const NAN_OR_INFINITY: &str = "ERR value is NaN or Infinity";
    /// `HINCRBY` on a field whose value is not a decimal 64-bit integer.
    pub const HASH_NOT_AN_INTEGER: &str = "ERR hash value is not an integer";
    /// `HINCRBYFLOAT` on a field whose value is not a float.
    pub const HASH_NOT_A_FLOAT: &str = "ERR hash value is not a float";
    /// `SETRANGE` with a negative offset.
    pub const OFFSET_OUT_OF_RANGE: &str = "ERR offset is out of range";
    /// `SCAN`/`HSCAN` with a cursor that is not an unsigned 64-bit integer.
    pub const INVALID_CURSOR: &str = "ERR invalid cursor";
    /// `KEYS`, `SCAN … MATCH` or `HSCAN … MATCH` whose pattern would take the matcher past
    /// its bound for one command (Skiff's own: Redis matches for as long as it takes).
    pub const PATTERN_TOO_COSTLY: &str =
        "ERR pattern too costly to match against this keyspace; use fewer '*' or a shorter pattern";
    /// A command whose options do not parse (`SCAN 0 COUNT 0`).
    pub const SYNTAX: &str = "ERR syntax error";

    /// A read whose reply would exceed `max_reply_bytes`.
    pub fn reply_too_large(max_reply_bytes: usize) -> String {
        format!(
            "ERR reply larger than the limit of {max_reply_bytes} bytes; read fewer keys at once"
        )
    }

    /// Redis's error for a deadline that does not fit in 64 bits of milliseconds (or, when
    /// a command is parsed, one that is not positive).
    pub fn invalid_expire_time(command: &str) -> String {
        format!("ERR invalid expire time in '{command}' command")
    }

    /// Redis's error for a command given too few arguments (`DEL` with no key).
    pub fn wrong_arity(command: &str) -> String {
        format!("ERR wrong number of arguments for '{command}' command")
    }
}

impl Reply {
    /// An error reply with the given text.
    pub fn error(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// The binary form, for sending a reply to the node that forwarded its command.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8);
        put_reply(&mut out, self);
        out
    }

    /// Decodes bytes written by [`Reply::encode`]; malformed bytes give a typed error.
    pub fn decode(bytes: &[u8]) -> Result<Reply, KvError> {
        let mut r = Reader::new(bytes, crate::error::Encoded::Reply);
        let reply = read_reply(&mut r)?;
        r.finish()?;
        Ok(reply)
    }
}

mod tag {
    pub const OK: u8 = 0;
    pub const NIL: u8 = 1;
    pub const BULK: u8 = 2;
    pub const INTEGER: u8 = 3;
    pub const ARRAY: u8 = 4;
    pub const ERROR: u8 = 5;
    pub const NIL_ARRAY: u8 = 6;
    pub const SIMPLE: u8 = 7;
}

/// How deeply arrays may nest in a decoded reply. The state machine never makes nested
/// arrays; the bound keeps forged input from exhausting the stack.
const MAX_REPLY_DEPTH: usize = 4;

/// How many items decoding reserves room for before reading them: a count is only what the
/// input claims, so past this the vector grows as items are actually read.
pub(crate) const MAX_RESERVED_ITEMS: usize = 64;

/// Appends a reply (for the session table in snapshots): a tag, then its fields.
pub(crate) fn put_reply(out: &mut Vec<u8>, reply: &Reply) {
    match reply {
        Reply::Ok => out.push(tag::OK),
        Reply::Nil => out.push(tag::NIL),
        Reply::Bulk(bytes) => {
            out.push(tag::BULK);
            put_bytes(out, bytes);
        }
        Reply::Integer(n) => {
            out.push(tag::INTEGER);
            put_i64(out, *n);
        }
        Reply::Array(items) => {
            out.push(tag::ARRAY);
            put_u64(out, items.len() as u64);
            for item in items {
                put_reply(out, item);
            }
        }
        Reply::Error(text) => {
            out.push(tag::ERROR);
            put_bytes(out, text.as_bytes());
        }
        Reply::NilArray => out.push(tag::NIL_ARRAY),
        Reply::Simple(text) => {
            out.push(tag::SIMPLE);
            put_bytes(out, text.as_bytes());
        }
    }
}

/// Reads a reply written by [`put_reply`].
pub(crate) fn read_reply(r: &mut Reader<'_>) -> Result<Reply, KvError> {
    read_reply_at(r, 0)
}

fn read_reply_at(r: &mut Reader<'_>, depth: usize) -> Result<Reply, KvError> {
    Ok(match r.u8()? {
        tag::OK => Reply::Ok,
        tag::NIL => Reply::Nil,
        tag::BULK => Reply::Bulk(r.bytes()?),
        tag::INTEGER => Reply::Integer(r.i64()?),
        tag::ARRAY => {
            if depth >= MAX_REPLY_DEPTH {
                return Err(KvError::InvalidSnapshot("reply arrays nested too deeply"));
            }
            // Each item takes at least its tag byte.
            let count = r.count(1)?;
            let mut items = Vec::with_capacity(count.min(MAX_RESERVED_ITEMS));
            for _ in 0..count {
                items.push(read_reply_at(r, depth + 1)?);
            }
            Reply::Array(items)
        }
        tag::ERROR => Reply::Error(
            String::from_utf8(r.bytes()?)
                .map_err(|_| KvError::InvalidSnapshot("error reply is not UTF-8"))?,
        ),
        tag::NIL_ARRAY => Reply::NilArray,
        tag::SIMPLE => Reply::Simple(
            String::from_utf8(r.bytes()?)
                .map_err(|_| KvError::InvalidSnapshot("simple string reply is not UTF-8"))?,
        ),
        other => return Err(r.unknown_tag("reply", other)),
    })
}
