//! The snapshot format: [`StateMachine::snapshot`] and [`StateMachine::restore`], and
//! [`FrozenStore`], the state a snapshot writes frozen at one index to serialize elsewhere.
//!
//! # Format (version 5)
//! ```text
//! magic "SKVS" | version(5) | applied_index | log_time_ms
//!   | key_count   | (key, value, revision, deadline_ms + 1 or 0)…      (scan_hash(key), key)
//!                                                                      strictly increasing
//!   | forgotten_through                                                 at most applied_index
//!   | session_count | (client_id, lowest_kept, last_active_index,     ids strictly increasing
//!                      last_active_ms, reply_count,
//!                      (sequence, reply)…)…                           sequences strictly increasing
//!   | crc32c (4 bytes, little-endian, over every byte before it)
//! ```
//! where a value is a type tag and its contents: 0 a string (a byte string), 1 a hash (a
//! field count, at least 1, then `(field, value)…`, fields strictly increasing), and
//! `forgotten_through` the highest log index at which a session the table forgot was last
//! active (0 if none). The keys come in the store's own order, by `scan_hash` of their
//! bytes and then the bytes (the order `SCAN` walks), so writing a snapshot never sorts the
//! store.
//!
//! Older versions are still read:
//! - version 4 listed the keys in strictly increasing byte order (each snapshot sorted them);
//! - version 3 kept one reply per session, `(client_id, last_sequence, last_active_index,
//!   reply)`, read as a window of that one reply whose floor is `last_sequence` (the same
//!   answers to every later request), last active at the snapshot's log time (so no session
//!   is evicted or expires sooner than it would have), and did not say which sessions it had
//!   forgotten: it reads as having forgotten one active at its applied index (so a re-sent
//!   copy of a client it does not know is never applied as a first request);
//! - version 2 also had only strings, written as a byte string without the tag;
//! - version 1 also had no log time, revisions or deadlines (`(key, value)…` only), each
//!   key taking the snapshot's applied index as its revision (no later write can
//!   have a smaller one) and no deadline.
//!
//! Integers are varints and byte strings length-prefixed, as in the command encoding;
//! a reply is a tag (0 `Ok`, 1 `Nil`, 2 `Bulk`, 3 `Integer`, 4 `Array`, 5 `Error`, 6 `Status`) and its
//! fields.
//!
//! The state is kept in ordered maps, so the same state always gives the same bytes, and a
//! snapshot restored and taken again is byte-identical. Restoring checks the magic, then the
//! checksum, then decodes, and refuses anything a snapshot written here could not contain
//! (keys out of order, a revision after the applied index, a deadline at or before the log
//! time, a hash with more fields than `max_hash_fields`, a session active after the applied
//! index, two sessions active at one index, trailing bytes) with a typed [`KvError`].

use std::convert::Infallible;
use std::io;

use crate::codec::{put_bytes, put_u32_le, put_u64, Reader};
use crate::config::KvConfig;
use crate::error::{Encoded, KvError};
use crate::keyspace::{Keyspace, OrderedBuild, Stored};
use crate::reply::{put_reply, read_reply, Reply, MAX_RESERVED_ITEMS};
use crate::session::{RecordedSessions, Replies, Session, SessionTable};
use crate::state_machine::StateMachine;
use crate::value::{Hash, Value};

/// The type tags of a value (from version 3).
mod value_tag {
    pub const STRING: u8 = 0;
    pub const HASH: u8 = 1;
}

/// The first four bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"SKVS";

/// The format version written by [`StateMachine::snapshot`].
pub const SNAPSHOT_FORMAT_VERSION: u8 = 5;

/// The format versions this build reads: 1 (no log time, revisions or deadlines), 2
/// (strings only), 3 (one reply per session), 4 (keys in byte order) and 5.
const SNAPSHOT_FORMAT_VERSIONS: &[u16] = &[1, 2, 3, 4, SNAPSHOT_FORMAT_VERSION as u16];

const CHECKSUM_BYTES: usize = 4;

impl StateMachine {
    /// The whole state — data, client sessions and applied index — as bytes, checksummed.
    /// The same state always gives the same bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.snapshot_into(&mut out);
        out
    }

    /// Appends the [`snapshot`](Self::snapshot) bytes to `out`, which may already hold a
    /// caller's header: the store is written once, into a buffer sized for it, and never
    /// copied whole again.
    pub fn snapshot_into(&self, out: &mut Vec<u8>) {
        let times = (self.applied_index, self.log_time_ms);
        put_snapshot_into(out, &self.data, &self.sessions.freeze(), times);
    }

    /// A frozen copy of the state a snapshot writes, taken in O(1) time without copying a
    /// key or a session: see [`FrozenStore`].
    pub fn freeze(&self) -> FrozenStore {
        FrozenStore {
            data: self.data.clone(),
            sessions: self.sessions.freeze(),
            applied_index: self.applied_index,
            log_time_ms: self.log_time_ms,
        }
    }

    /// Rebuilds a store from [`snapshot`](Self::snapshot) bytes, to run with `config`.
    ///
    /// Damaged or foreign bytes give a typed error and never a panic. If `config` allows
    /// fewer sessions than the snapshot holds, the least recently used are evicted, as
    /// [`apply`](Self::apply) would; if it allows fewer replies per session, the oldest go.
    pub fn restore(config: KvConfig, bytes: &[u8]) -> Result<StateMachine, KvError> {
        config.validate()?;
        let body = checked_body(bytes)?;
        let mut r = Reader::new(body, Encoded::Snapshot);
        r.take(SNAPSHOT_MAGIC.len())?;
        let version = r.version(SNAPSHOT_FORMAT_VERSIONS)?;
        let applied_index = r.u64()?;
        let log_time_ms = if version == 1 { 0 } else { r.u64()? };
        let data = read_data(&mut r, version, (applied_index, log_time_ms), &config)?;
        let mut sessions = read_sessions(&mut r, version, (applied_index, log_time_ms))?;
        r.finish()?;

        sessions.shrink_to(config.max_sessions);
        sessions.shrink_windows(config.session_window_requests);
        let machine = StateMachine {
            config,
            data,
            sessions,
            applied_index,
            log_time_ms,
            events: Default::default(),
        };
        machine.check_invariants();
        Ok(machine)
    }
}

/// The state a snapshot writes, frozen at one applied index, to serialize on another thread
/// while the store goes on applying: [`StateMachine::freeze`] then
/// [`FrozenStore::snapshot_into`] writes exactly the bytes [`StateMachine::snapshot_into`]
/// wrote at the freeze.
///
/// Memory: the keys are in persistent slices (sorted arrays of pointers, shared until written)
/// and the sessions in a persistent map (`imbl` B+trees of 16 entries a node), which the copy
/// shares with the live store, so freezing copies nothing. The first write after the freeze
/// copies the keyspace's table of slices (up to 16,384 in a large store); a write copies the
/// array of its key's slice if the copy still shares it (16 bytes a key of that slice, about
/// 4 to 8 keys a slice below a store of 65,536 keys), and the key's slot (its bytes when
/// longer than 24, never the old value); a session written to is copied once (its window of
/// replies). The sessions' eviction order is not in the copy (a snapshot does not record
/// it). So the store grows by the arrays, slots and sessions written while the copy lives,
/// not by its size: at worst (writes spread over every key) the arrays and slots (keys and
/// states) once more, never the values.
#[derive(Clone, Debug)]
pub struct FrozenStore {
    data: Keyspace,
    sessions: RecordedSessions,
    applied_index: u64,
    log_time_ms: u64,
}

impl FrozenStore {
    /// Appends the snapshot bytes of the frozen state to `out` (see
    /// [`StateMachine::snapshot_into`]).
    pub fn snapshot_into(&self, out: &mut Vec<u8>) {
        let times = (self.applied_index, self.log_time_ms);
        put_snapshot_into(out, &self.data, &self.sessions, times);
    }

    /// Writes the same bytes as [`snapshot_into`](Self::snapshot_into) to `out` a chunk at a
    /// time, never holding them whole: for a store larger than the memory a second copy of
    /// it would take.
    pub fn write_snapshot(&self, out: &mut dyn io::Write) -> io::Result<()> {
        let times = (self.applied_index, self.log_time_ms);
        put_snapshot(
            &mut |chunk| out.write_all(chunk),
            &self.data,
            &self.sessions,
            times,
        )
    }

    /// The applied index the state was frozen at.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }
}

/// How many bytes [`put_snapshot`] gathers before it hands them to its sink.
const SINK_CHUNK_BYTES: usize = 256 * 1024;

/// Hands a version-5 snapshot of the given state to `sink` in chunks of about
/// [`SINK_CHUNK_BYTES`], so that a caller writing it to a file never holds it whole; the
/// first error of `sink` stops it.
fn put_snapshot<E>(
    sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    data: &Keyspace,
    sessions: &RecordedSessions,
    (applied_index, log_time_ms): (u64, u64),
) -> Result<(), E> {
    let mut out = Vec::with_capacity(SINK_CHUNK_BYTES + 1024);
    let mut checksum = 0;
    let mut flush = |out: &mut Vec<u8>, at_least: usize| -> Result<(), E> {
        if out.len() >= at_least {
            checksum = crc32c::crc32c_append(checksum, out);
            sink(out)?;
            out.clear();
        }
        Ok(())
    };
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.push(SNAPSHOT_FORMAT_VERSION);
    put_u64(&mut out, applied_index);
    put_u64(&mut out, log_time_ms);
    put_u64(&mut out, data.len() as u64);
    for (key, stored) in data.iter_by_hash() {
        put_bytes(&mut out, key);
        put_value(&mut out, &stored.value);
        put_u64(&mut out, stored.revision);
        // 0: no deadline; a deadline is after the log time, so never 0 itself.
        put_u64(
            &mut out,
            stored.deadline_ms.map_or(0, |d| d.saturating_add(1)),
        );
        flush(&mut out, SINK_CHUNK_BYTES)?;
    }
    put_u64(&mut out, sessions.forgotten_through());
    put_u64(&mut out, sessions.len() as u64);
    for (client_id, session) in sessions.iter() {
        put_u64(&mut out, client_id);
        put_u64(&mut out, session.lowest_kept);
        put_u64(&mut out, session.last_active_index);
        put_u64(&mut out, session.last_active_ms);
        put_u64(&mut out, session.replies.len() as u64);
        for (sequence, reply) in session.replies.iter() {
            put_u64(&mut out, sequence);
            put_reply(&mut out, reply);
        }
        flush(&mut out, SINK_CHUNK_BYTES)?;
    }
    flush(&mut out, 0)?;
    put_u32_le(&mut out, checksum);
    sink(&out)
}

/// Appends the snapshot of the given state to `out`, in one allocation sized for it.
fn put_snapshot_into(
    out: &mut Vec<u8>,
    data: &Keyspace,
    sessions: &RecordedSessions,
    times: (u64, u64),
) {
    // Keys and values, their length prefixes, and room for the rest: one allocation
    // instead of a doubling buffer that briefly holds the store twice.
    let data_bytes: usize = data
        .iter_by_hash()
        .map(|(key, stored)| key.len() + stored.value.payload_bytes() + 24)
        .sum();
    out.reserve(data_bytes + 64 * (sessions.len() + 1));
    let mut append = |chunk: &[u8]| -> Result<(), Infallible> {
        out.extend_from_slice(chunk);
        Ok(())
    };
    match put_snapshot(&mut append, data, sessions, times) {
        Ok(()) => {}
        Err(never) => match never {},
    }
}

/// The snapshot's bytes before its checksum, once the magic and the checksum are checked.
fn checked_body(bytes: &[u8]) -> Result<&[u8], KvError> {
    let what = Encoded::Snapshot;
    if bytes.is_empty() {
        return Err(KvError::Empty { what });
    }
    if bytes.len() < SNAPSHOT_MAGIC.len() || bytes[..SNAPSHOT_MAGIC.len()] != SNAPSHOT_MAGIC {
        return Err(KvError::BadMagic);
    }
    let Some(body_len) = bytes.len().checked_sub(CHECKSUM_BYTES) else {
        return Err(KvError::Truncated {
            what,
            offset: bytes.len(),
        });
    };
    let (body, stored) = bytes.split_at(body_len);
    let stored = Reader::new(stored, what).u32_le()?;
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(KvError::ChecksumMismatch { stored, computed });
    }
    Ok(body)
}

/// The keys with their values (and from version 2 revisions and deadlines), which a
/// snapshot lists in strictly increasing order: of the key's bytes up to version 4, of
/// `(scan_hash(key), key)` from version 5.
fn read_data(
    r: &mut Reader<'_>,
    version: u8,
    (applied_index, log_time_ms): (u64, u64),
    config: &KvConfig,
) -> Result<Keyspace, KvError> {
    // Each key takes at least two bytes (two empty strings), four from version 2, five
    // from version 3 (the type tag).
    let key_count = r.count(match version {
        1 => 2,
        2 => 4,
        _ => 5,
    })?;
    let mut keys = KeyList::new(version, key_count);
    for _ in 0..key_count {
        let key = r.bytes()?;
        let value = if version < 3 {
            Value::String(r.bytes()?)
        } else {
            read_value(r, config.max_hash_fields)?
        };
        let (revision, deadline_ms) = if version == 1 {
            (applied_index, None)
        } else {
            (r.u64()?, r.u64()?.checked_sub(1))
        };
        // Strictly increasing keys are also distinct ones.
        let Some(hash) = keys.follows(&key) else {
            return Err(KvError::InvalidSnapshot("keys are not in increasing order"));
        };
        if revision > applied_index {
            return Err(KvError::InvalidSnapshot(
                "a key was written after the applied index",
            ));
        }
        if deadline_ms.is_some_and(|d| d <= log_time_ms) {
            return Err(KvError::InvalidSnapshot("a key is held past its deadline"));
        }
        let stored = Stored {
            value,
            deadline_ms,
            revision,
        };
        keys.push(hash, key, stored)?;
    }
    Ok(keys.build())
}

/// A snapshot's keys on their way into the store. Version 5 lists them in the store's own
/// order (scan hash first), so each goes straight into its slice; older versions order them
/// by their bytes alone, and they are inserted one by one.
enum KeyList {
    Ordered(OrderedBuild),
    ByBytes {
        data: Keyspace,
        previous: Option<Vec<u8>>,
    },
}

impl KeyList {
    fn new(version: u8, key_count: usize) -> KeyList {
        match version {
            5.. => KeyList::Ordered(OrderedBuild::new(key_count)),
            _ => KeyList::ByBytes {
                data: Keyspace::default(),
                previous: None,
            },
        }
    }

    /// What `push` needs of `key` if it comes after the last key in the version's order
    /// (its scan hash; 0 for the older versions), else `None`.
    fn follows(&self, key: &[u8]) -> Option<u64> {
        match self {
            KeyList::Ordered(build) => build.follows(key),
            KeyList::ByBytes { previous, .. } => previous
                .as_deref()
                .is_none_or(|previous| previous < key)
                .then_some(0),
        }
    }

    fn push(&mut self, hash: u64, key: Vec<u8>, stored: Stored) -> Result<(), KvError> {
        match self {
            KeyList::Ordered(build) => build.push(hash, key, stored),
            KeyList::ByBytes { data, previous } => {
                *previous = Some(key.clone());
                // The store says again that the key is new.
                if data.insert(key, stored) {
                    return Err(KvError::InvalidSnapshot("a key appears twice"));
                }
            }
        }
        Ok(())
    }

    fn build(self) -> Keyspace {
        match self {
            KeyList::Ordered(build) => build.build(),
            KeyList::ByBytes { data, .. } => data,
        }
    }
}

/// Appends a value: its type tag and contents.
fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(bytes) => {
            out.push(value_tag::STRING);
            put_bytes(out, bytes);
        }
        Value::Hash(hash) => {
            out.push(value_tag::HASH);
            put_u64(out, hash.len() as u64);
            for (field, value) in hash.as_ref() {
                put_bytes(out, field);
                put_bytes(out, value);
            }
        }
    }
}

/// Reads a value written by [`put_value`]: a known tag, and a hash's fields non-empty,
/// strictly increasing and at most `max_hash_fields` (a write could never have made more).
fn read_value(r: &mut Reader<'_>, max_hash_fields: usize) -> Result<Value, KvError> {
    Ok(match r.u8()? {
        value_tag::STRING => Value::String(r.bytes()?),
        value_tag::HASH => {
            // Each field takes at least two bytes (two empty strings).
            let field_count = r.count(2)?;
            if field_count == 0 {
                return Err(KvError::InvalidSnapshot("a hash has no field"));
            }
            if field_count > max_hash_fields {
                return Err(KvError::InvalidSnapshot(
                    "a hash has more fields than max_hash_fields",
                ));
            }
            let mut hash = Hash::new();
            for _ in 0..field_count {
                let field = r.bytes()?;
                let value = r.bytes()?;
                if hash
                    .last_key_value()
                    .is_some_and(|(last, _)| *last >= field)
                {
                    return Err(KvError::InvalidSnapshot(
                        "hash fields are not in increasing order",
                    ));
                }
                hash.insert(field, value);
            }
            Value::Hash(Box::new(hash))
        }
        tag => return Err(r.unknown_tag("value type", tag)),
    })
}

/// The client sessions, in strictly increasing client id order, each with a window of
/// replies in strictly increasing sequence order (from version 4; one reply before), none
/// active after `applied_index` and no two active at one index, after the index through
/// which the table forgot sessions (from version 4).
fn read_sessions(
    r: &mut Reader<'_>,
    version: u8,
    (applied_index, log_time_ms): (u64, u64),
) -> Result<SessionTable, KvError> {
    let forgotten_through = if version < 4 { applied_index } else { r.u64()? };
    if forgotten_through > applied_index {
        return Err(KvError::InvalidSnapshot(
            "a session was forgotten after the applied index",
        ));
    }
    // Each session takes at least four bytes (three varints and a reply tag).
    let session_count = r.count(4)?;
    let mut sessions = SessionTable::default();
    sessions.forgot_through(forgotten_through);
    let mut previous_id: Option<u64> = None;
    for _ in 0..session_count {
        let client_id = r.u64()?;
        let (lowest_kept, (last_active_index, last_active_ms), replies) = if version < 4 {
            let last_sequence = r.u64()?;
            let last_active_index = r.u64()?;
            let reply = read_reply(r)?;
            (
                last_sequence,
                (last_active_index, log_time_ms),
                Replies::one(last_sequence, reply),
            )
        } else {
            let lowest_kept = r.u64()?;
            let active = (r.u64()?, r.u64()?);
            (lowest_kept, active, read_window(r)?)
        };
        if previous_id.is_some_and(|p| p >= client_id) {
            return Err(KvError::InvalidSnapshot(
                "client ids are not in increasing order",
            ));
        }
        previous_id = Some(client_id);
        if lowest_kept == 0 {
            return Err(KvError::InvalidSnapshot("a session has sequence 0"));
        }
        if replies
            .first_sequence()
            .is_none_or(|lowest| lowest < lowest_kept)
        {
            return Err(KvError::InvalidSnapshot(
                "a session's replies are empty or below its window",
            ));
        }
        if last_active_index > applied_index {
            return Err(KvError::InvalidSnapshot(
                "a session is active after the applied index",
            ));
        }
        if last_active_ms > log_time_ms {
            return Err(KvError::InvalidSnapshot(
                "a session is active after the log time",
            ));
        }
        if sessions.is_active_at(last_active_index) {
            return Err(KvError::InvalidSnapshot(
                "two sessions are active at the same index",
            ));
        }
        sessions.insert(
            client_id,
            Session {
                replies,
                lowest_kept,
                last_active_index,
                last_active_ms,
            },
        );
    }
    if !sessions.activity_in_time_order() {
        return Err(KvError::InvalidSnapshot(
            "sessions active later in the log are active earlier in log time",
        ));
    }
    Ok(sessions)
}

/// A session's remembered replies: a count, then `(sequence, reply)` in strictly increasing
/// sequence order.
fn read_window(r: &mut Reader<'_>) -> Result<Replies, KvError> {
    // Each reply takes at least two bytes (a varint and a tag).
    let count = r.count(2)?;
    // The count is only claimed: reserve little and grow as replies are read.
    let mut replies: Vec<(u64, Reply)> = Vec::with_capacity(count.min(MAX_RESERVED_ITEMS));
    for _ in 0..count {
        let sequence = r.u64()?;
        replies.push((sequence, read_reply(r)?));
    }
    Replies::in_order(replies).ok_or(KvError::InvalidSnapshot(
        "a session's sequences are not in increasing order",
    ))
}
