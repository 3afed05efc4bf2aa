//! [`Transaction`]: `MULTI … EXEC` as one log entry — the keys the client watched, with the
//! revision each had when watched, and the queued commands — and its Redis semantics at
//! apply.
//!
//! # Encoding (opcode 60, format version 3)
//! ```text
//! count, (key, revision tag (0 absent, 1 then a varint revision))…,
//! count, (command: a byte string holding its whole encoding, version byte included)…
//! ```
//! Each queued command is written by [`Command::encode`] and read by [`Command::decode`], so
//! it is checked exactly as a command alone. Its version must be the transaction's own (so
//! decode then encode gives the same bytes), and it may not be a transaction: an `EXEC`
//! never nests.

use crate::codec::{put_bytes, put_u64, Reader};
use crate::command::Command;
use crate::error::KvError;
use crate::reply::{errors, Reply, MAX_RESERVED_ITEMS};
use crate::state_machine::StateMachine;

/// The opcode of [`Command::Exec`].
pub(crate) const EXEC_OPCODE: u8 = 60;

/// A key watched by `WATCH`, with the revision it had then (`None`: it did not exist).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Watched {
    /// The key.
    pub key: Vec<u8>,
    /// The log index of its last write when it was watched, or `None` for a missing key.
    pub revision: Option<u64>,
}

/// `MULTI … EXEC`: the queued commands, run in order as one entry unless a watched key
/// changed since it was watched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Transaction {
    /// The keys watched before `MULTI`, with their revisions then.
    pub watched: Vec<Watched>,
    /// The commands queued between `MULTI` and `EXEC`, in order. None is a transaction.
    pub commands: Vec<Command>,
}

impl Transaction {
    /// Appends the fields of the transaction (after the version byte and opcode).
    pub(crate) fn put(&self, out: &mut Vec<u8>) {
        put_u64(out, self.watched.len() as u64);
        for watched in &self.watched {
            put_bytes(out, &watched.key);
            match watched.revision {
                None => out.push(0),
                Some(revision) => {
                    out.push(1);
                    put_u64(out, revision);
                }
            }
        }
        put_u64(out, self.commands.len() as u64);
        for command in &self.commands {
            put_bytes(out, &command.encode());
        }
    }

    /// Reads the fields written by [`put`](Self::put), in an entry of format `version`.
    pub(crate) fn read(r: &mut Reader<'_>, version: u8) -> Result<Transaction, KvError> {
        // A watched key takes at least two bytes (its length and the revision tag).
        let count = r.count(2)?;
        let mut watched = Vec::with_capacity(count.min(MAX_RESERVED_ITEMS));
        for _ in 0..count {
            let key = r.bytes()?;
            let revision = match r.u8()? {
                0 => None,
                1 => Some(r.u64()?),
                tag => return Err(r.unknown_tag("watched revision", tag)),
            };
            watched.push(Watched { key, revision });
        }
        // A queued command takes at least three bytes (a length, a version, an opcode).
        let count = r.count(3)?;
        let mut commands = Vec::with_capacity(count.min(MAX_RESERVED_ITEMS));
        for _ in 0..count {
            let bytes = r.bytes()?;
            match bytes.as_slice() {
                [v, ..] if *v != version => return Err(r.unknown_tag("queued version", *v)),
                [_, EXEC_OPCODE, ..] => return Err(r.unknown_tag("queued opcode", EXEC_OPCODE)),
                _ => commands.push(Command::decode(&bytes)?),
            }
        }
        Ok(Transaction { watched, commands })
    }
}

impl StateMachine {
    /// `EXEC`: when every watched key still has the revision it had when watched (a key
    /// missing then must be missing now, and one present then must be present now), runs the
    /// queued commands in order, each through the same code as alone, and answers the array
    /// of their replies; otherwise runs nothing and answers [`Reply::NilArray`], as Redis's
    /// aborted `EXEC`. A run-time error answers for its own command only, as in Redis.
    ///
    /// The replies' values added up are held to `max_reply_bytes`, and no reply is built
    /// past it: before a command runs, the values its reply would carry are sized from the
    /// state (as `MGET` sizes itself), and a command whose reply would pass what is left does
    /// not run and answers the reply-too-large error. A few bytes of entry must not make
    /// every replica copy many times the limit at apply.
    pub(crate) fn exec(&mut self, transaction: Transaction) -> Reply {
        let unchanged = transaction
            .watched
            .iter()
            .all(|watched| self.revision(&watched.key) == watched.revision);
        if !unchanged {
            return Reply::NilArray;
        }
        let limit = self.config.max_reply_bytes;
        let mut reply_bytes = 0usize;
        let mut replies = Vec::with_capacity(transaction.commands.len());
        for command in transaction.commands {
            let left = limit.saturating_sub(reply_bytes);
            let reply = match command {
                // Built in process, never decoded: an EXEC never nests.
                Command::Exec(_) => Reply::error(errors::NESTED_EXEC),
                command if self.value_bytes(&command, left) > left => {
                    Reply::error(errors::reply_too_large(limit))
                }
                command => self.execute(command),
            };
            // Texts (errors, statuses) are not sized beforehand; they are short, and count too.
            match reply_bytes
                .checked_add(payload_bytes(&reply))
                .filter(|&total| total <= limit)
            {
                Some(total) => {
                    reply_bytes = total;
                    replies.push(reply);
                }
                None => replies.push(Reply::error(errors::reply_too_large(limit))),
            }
        }
        Reply::Array(replies)
    }
}

impl StateMachine {
    /// The bytes of stored values `command`'s reply would carry if it ran now, found without
    /// copying any; the sum stops once it passes `limit`. Every command is named, so a new
    /// one that answers values must say here how large its reply can be.
    fn value_bytes(&self, command: &Command, limit: usize) -> usize {
        // A string's length; another type answers a short WRONGTYPE.
        let value = |key: &[u8]| {
            self.data
                .get(key)
                .and_then(|stored| stored.value.as_string().ok())
                .map_or(0, Vec::len)
        };
        let hash = |key: &[u8]| {
            self.data
                .get(key)
                .and_then(|stored| stored.value.as_hash().ok())
        };
        let field = |key: &[u8], field: &[u8]| {
            hash(key)
                .and_then(|fields| fields.get(field))
                .map_or(0, Vec::len)
        };
        let sum = |lengths: &mut dyn Iterator<Item = usize>| {
            let mut total = 0usize;
            for length in lengths {
                total = total.saturating_add(length);
                if total > limit {
                    break;
                }
            }
            total
        };
        // A page of a scan holds about `count` names, each at most a key's length.
        let page = |count: u64| {
            usize::try_from(count)
                .unwrap_or(usize::MAX)
                .saturating_mul(self.config.max_key_bytes)
        };
        match command {
            Command::Get { key } | Command::GetEx { key, .. } | Command::GetDel { key } => {
                value(key)
            }
            Command::SetWith { key, options, .. } if options.get => value(key),
            Command::MGet { keys } => {
                let mut total = 0usize;
                for key in keys {
                    total = total.saturating_add(value(key));
                    if total > limit {
                        break;
                    }
                }
                total
            }
            Command::GetRange { key, .. } => value(key),
            Command::HGet { key, field: name } => field(key, name),
            Command::HMGet { key, fields } => sum(&mut fields.iter().map(|name| field(key, name))),
            Command::HGetAll { key } => hash(key).map_or(0, |fields| {
                sum(&mut fields
                    .iter()
                    .map(|(name, value)| name.len().saturating_add(value.len())))
            }),
            Command::HKeys { key } => {
                hash(key).map_or(0, |fields| sum(&mut fields.keys().map(Vec::len)))
            }
            Command::HVals { key } => {
                hash(key).map_or(0, |fields| sum(&mut fields.values().map(Vec::len)))
            }
            Command::Keys { .. } => sum(&mut self.data.iter_by_hash().map(|(key, _)| key.len())),
            Command::Scan { count, .. } | Command::HScan { count, .. } => page(*count),
            Command::SetWith { .. }
            | Command::Set { .. }
            | Command::Del { .. }
            | Command::Exists { .. }
            | Command::Incr { .. }
            | Command::IncrBy { .. }
            | Command::Decr { .. }
            | Command::MSet { .. }
            | Command::Cas { .. }
            | Command::DbSize
            | Command::SetNx { .. }
            | Command::Expire { .. }
            | Command::Persist { .. }
            | Command::Ttl { .. }
            | Command::ExpireTime { .. }
            | Command::Revision { .. }
            | Command::Exec(_)
            | Command::Type { .. }
            | Command::Rename { .. }
            | Command::RenameNx { .. }
            | Command::StrLen { .. }
            | Command::Append { .. }
            | Command::SetRange { .. }
            | Command::IncrByFloat { .. }
            | Command::MSetNx { .. }
            | Command::FlushAll
            | Command::RandomKey { .. }
            | Command::HSet { .. }
            | Command::HSetNx { .. }
            | Command::HMSet { .. }
            | Command::HDel { .. }
            | Command::HLen { .. }
            | Command::HExists { .. }
            | Command::HStrLen { .. }
            | Command::HIncrBy { .. }
            | Command::HIncrByFloat { .. } => 0,
        }
    }
}

/// The bytes of values and texts a reply holds (what grows with the data, not its framing).
fn payload_bytes(reply: &Reply) -> usize {
    match reply {
        Reply::Bulk(bytes) => bytes.len(),
        Reply::Error(text) | Reply::Simple(text) => text.len(),
        Reply::Array(items) => items.iter().map(payload_bytes).sum(),
        Reply::Ok | Reply::Nil | Reply::Integer(_) | Reply::NilArray => 0,
    }
}
