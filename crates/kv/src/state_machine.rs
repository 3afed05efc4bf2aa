//! [`StateMachine`]: the key-value store the Raft log drives.

use crate::command::{Command, SetCondition};
use crate::config::KvConfig;
use crate::error::KvError;
use crate::events::EventRecorder;
use crate::keyspace::{Keyspace, Stored};
use crate::reply::{errors, Reply};
use crate::session::{
    Admission, ReplyBudgets, Session, SessionLimits, SessionRequest, SessionTable,
};
use crate::value::Value;

/// The replicated key-value store: byte-string keys and values, Redis-style commands, and
/// the client session table that makes retried writes apply once.
///
/// It is a deterministic function of the entries applied to it: the same commands at the
/// same indexes give the same replies, the same state and the same [`snapshot`] bytes on
/// every replica.
///
/// [`snapshot`]: StateMachine::snapshot
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMachine {
    pub(crate) config: KvConfig,
    /// The keys with their values, deadlines and revisions.
    pub(crate) data: Keyspace,
    /// Invariant: at most `config.max_sessions` sessions, none active after `applied_index`.
    pub(crate) sessions: SessionTable,
    /// The index of the last entry applied (0: none).
    pub(crate) applied_index: u64,
    /// The log time (Unix milliseconds) of the latest stamped entry applied; 0 before the
    /// first. Invariant: never decreases, and no key's deadline is at or before it.
    pub(crate) log_time_ms: u64,
    /// Keyspace events for notifications: a side channel, not state (see `events`).
    pub(crate) events: EventRecorder,
}

impl StateMachine {
    /// An empty store with the given limits.
    pub fn new(config: KvConfig) -> Result<StateMachine, KvError> {
        config.validate()?;
        Ok(StateMachine {
            config,
            data: Keyspace::default(),
            sessions: SessionTable::default(),
            applied_index: 0,
            log_time_ms: 0,
            events: EventRecorder::default(),
        })
    }

    /// The limits this store runs with.
    pub fn config(&self) -> &KvConfig {
        &self.config
    }

    /// The index of the last entry applied (0 before the first).
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// How many keys the store holds.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.data.len() == 0
    }

    /// The string value of `key`; `None` for a missing key or one holding a hash.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        match &self.data.get(key)?.value {
            Value::String(bytes) => Some(bytes),
            Value::Hash(_) => None,
        }
    }

    /// The value of `field` in the hash at `key`; `None` for a missing key or field, or a
    /// key holding a string.
    pub fn hash_get(&self, key: &[u8], field: &[u8]) -> Option<&[u8]> {
        match &self.data.get(key)?.value {
            Value::Hash(hash) => hash.get(field).map(Vec::as_slice),
            Value::String(_) => None,
        }
    }

    /// When `key` expires, in log time (Unix milliseconds); `None` for a key without a
    /// deadline or a missing key.
    pub fn deadline_ms(&self, key: &[u8]) -> Option<u64> {
        self.data.get(key).and_then(|stored| stored.deadline_ms)
    }

    /// The log index of `key`'s last write (`REVISION`).
    pub fn revision(&self, key: &[u8]) -> Option<u64> {
        self.data.get(key).map(|stored| stored.revision)
    }

    /// The log time of the state: the stamp of the latest stamped entry applied (Unix
    /// milliseconds; 0 before the first).
    pub fn log_time_ms(&self) -> u64 {
        self.log_time_ms
    }

    /// The earliest deadline of any key: once the leader's clock passes it, an entry
    /// carrying the time removes the key.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.data.next_deadline_ms()
    }

    /// Every key holding a string, with its value, in key order (hashes are left out).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.data
            .iter()
            .filter_map(|(k, stored)| match &stored.value {
                Value::String(bytes) => Some((k, bytes.as_slice())),
                Value::Hash(_) => None,
            })
    }

    /// The session of `client_id`, if the store remembers one.
    pub fn session(&self, client_id: u64) -> Option<&Session> {
        self.sessions.get(client_id)
    }

    /// Every remembered session, by client id.
    pub fn sessions(&self) -> impl Iterator<Item = (u64, &Session)> {
        self.sessions.recorded().iter()
    }

    /// How many client sessions are remembered.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The bytes every session's remembered replies are counted as ("applied, reply not
    /// kept" markers included), which [`KvConfig::session_table_reply_bytes`] bounds.
    pub fn session_reply_bytes(&self) -> usize {
        self.sessions.reply_bytes()
    }

    /// The highest log index at which a session the store forgot was last active (0 if it
    /// forgot none): a re-sent copy of a client it does not know, first sent after that
    /// index was committed, is applied as a first request.
    pub fn sessions_forgotten_through(&self) -> u64 {
        self.sessions.recorded().forgotten_through()
    }

    /// A hint before applying writes to `keys` (see [`Request::written_key`]): the processor
    /// starts loading where each key lives, every slice's array first, then every key's
    /// slot, then the start of the string it holds, so that the cache misses of a run of
    /// writes overlap rather than come one write after another (a store larger than the
    /// processor's caches misses at each for almost every write). The string's bytes are what
    /// its replacement frees, and the allocator reuses them for the next value decoded; they
    /// are left alone while a [replaced sink](Self::set_replaced_sink) takes them elsewhere.
    /// Nothing changes.
    ///
    /// [`Request::written_key`]: crate::Request::written_key
    pub fn prefetch<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) {
        self.data.prefetch(keys);
    }

    /// Applies the committed entry at `index` holding `command`, sent with `session` (if
    /// any), and returns the reply for the client.
    ///
    /// Before anything else, sessions idle for at least
    /// [`session_expiry_ms`](KvConfig::session_expiry_ms) of log time are forgotten. Then, with
    /// a session (thesis §6.3): a retry of a request whose reply is in the client's window
    /// returns the remembered reply and applies nothing; a request below the window is
    /// refused with [`STALE_REQUEST`](errors::STALE_REQUEST); one ahead of an earlier request
    /// not yet applied with [`OUT_OF_ORDER`](errors::OUT_OF_ORDER); a re-submitted request of
    /// an unknown client with [`SESSION_EXPIRED`](errors::SESSION_EXPIRED); the first request
    /// of a new client when the table is full of sessions not idle long enough to evict with
    /// [`TOO_MANY_SESSIONS`](errors::TOO_MANY_SESSIONS); otherwise the
    /// command is applied and its reply remembered — error replies too, so a retry gets the
    /// same answer (see [`session`](crate::session)).
    ///
    /// Indexes need not be consecutive (entries that are not key-value commands are not
    /// applied here), but they must increase.
    ///
    /// The command runs at the current [`log_time_ms`](Self::log_time_ms): this is
    /// [`apply_at`](Self::apply_at) for an entry without a stamp.
    ///
    /// # Panics
    /// If `index` is not greater than [`applied_index`](Self::applied_index): applying an
    /// entry twice or out of order is a bug in the caller.
    pub fn apply(
        &mut self,
        index: u64,
        command: Command,
        session: Option<SessionRequest>,
    ) -> Reply {
        self.apply_at(index, None, command, session)
    }

    /// [`apply`](Self::apply) for an entry the leader stamped with `log_time_ms`: first the
    /// log time moves to the stamp (it never moves back) and every key whose deadline is at
    /// or before it is removed, then the command runs at that time — a relative TTL counts
    /// from it. Every replica applies the same stamps, so keys expire at the same index
    /// everywhere.
    ///
    /// # Panics
    /// As [`apply`](Self::apply).
    pub fn apply_at(
        &mut self,
        index: u64,
        log_time_ms: Option<u64>,
        command: Command,
        session: Option<SessionRequest>,
    ) -> Reply {
        self.begin_entry(index, log_time_ms);
        let reply = match session {
            None => self.execute(command),
            Some(request) => {
                let limits = self.session_limits();
                let at = (index, self.log_time_ms);
                match self
                    .sessions
                    .admit(request, index, limits, self.log_time_ms)
                {
                    Admission::Replay(reply) => {
                        self.sessions.replayed(request, at, limits.window);
                        reply
                    }
                    Admission::Refuse(reply) => reply,
                    Admission::Apply => {
                        let reply = self.execute(command);
                        let budgets = ReplyBudgets {
                            session_bytes: self.config.session_reply_bytes,
                            table_bytes: self.config.session_table_reply_bytes,
                        };
                        self.sessions.record(request, at, &reply, (limits, budgets));
                        reply
                    }
                }
            }
        };
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        reply
    }

    /// Applies an entry that carries only the time (the leader proposes one when a deadline
    /// has passed and no write came): the log time moves to `log_time_ms` and the keys due
    /// by then are removed, so their memory is reclaimed on every replica.
    ///
    /// # Panics
    /// As [`apply`](Self::apply).
    pub fn pass_time(&mut self, index: u64, log_time_ms: u64) {
        self.begin_entry(index, Some(log_time_ms));
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// What every entry does first: the index and the log time advance, expired sessions
    /// and keys go.
    fn begin_entry(&mut self, index: u64, log_time_ms: Option<u64>) {
        assert!(
            index > self.applied_index,
            "apply of entry {index} after entry {} was applied: entries must be applied once, in order",
            self.applied_index
        );
        self.applied_index = index;
        if let Some(stamp) = log_time_ms {
            // Stamps never decrease along the log; `max` keeps the clock monotonic even
            // for a log written before they were stamped.
            self.log_time_ms = self.log_time_ms.max(stamp);
        }
        let events = &mut self.events;
        self.data
            .expire_due(self.log_time_ms, |key| events.record("expired", key));
        self.sessions
            .expire(self.log_time_ms, self.config.session_expiry_ms);
    }

    /// The session table's bounds, as the config sets them.
    fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            max_sessions: self.config.max_sessions,
            window: self.config.session_window_requests,
            evict_idle_ms: self.config.session_evict_idle_ms,
        }
    }

    /// Answers a read-only command (`GET`, `MGET`, `EXISTS`, `DBSIZE`) from the current state,
    /// without applying anything. A write command is answered with
    /// [`NOT_READ_ONLY`](errors::NOT_READ_ONLY).
    ///
    /// The caller decides whether the answer is linearizable: serve it only once the store has
    /// applied the read index the Raft core confirmed (thesis §6.4).
    pub fn read(&self, command: &Command) -> Reply {
        self.read_at(command, 0)
    }

    /// [`read`](StateMachine::read) on a node whose wall clock reads `wall_clock_ms` (Unix
    /// milliseconds): `TTL` and `PTTL` count down from the later of the log time and that
    /// clock, so they move on an idle cluster too. Whether a key exists stays judged by log
    /// time, and nothing changes: every replica keeps the same state.
    pub fn read_at(&self, command: &Command, wall_clock_ms: u64) -> Reply {
        self.query(command, wall_clock_ms)
            .unwrap_or_else(|| Reply::error(errors::NOT_READ_ONLY))
    }

    /// Panics with context if an invariant is broken.
    pub fn check_invariants(&self) {
        self.sessions.check_invariants(self.applied_index);
        self.data
            .check_invariants(self.log_time_ms, self.applied_index);
        assert!(
            self.sessions.len() <= self.config.max_sessions,
            "{} sessions at applied index {}, more than max_sessions = {}",
            self.sessions.len(),
            self.applied_index,
            self.config.max_sessions
        );
    }

    /// The reply to a read-only command; `None` for a write.
    /// `wall_clock_ms` is the serving node's clock (0 when applying: log time alone).
    fn query(&self, command: &Command, wall_clock_ms: u64) -> Option<Reply> {
        Some(match command {
            Command::Get { key } => self.get_reply(key),
            Command::Exists { keys } => {
                if keys.is_empty() {
                    return Some(Reply::error(errors::wrong_arity(command.name())));
                }
                let present = keys.iter().filter(|k| self.data.contains(k)).count();
                Reply::Integer(count(present))
            }
            Command::MGet { keys } => {
                if keys.is_empty() {
                    return Some(Reply::error(errors::wrong_arity(command.name())));
                }
                // Sized before anything is copied: a few bytes of request must not make the
                // node build a reply of many copies of its largest value.
                let reply_bytes = keys.iter().try_fold(0usize, |total, key| {
                    let value = self.get(key).map_or(0, <[u8]>::len);
                    total
                        .checked_add(value)
                        .filter(|&total| total <= self.config.max_reply_bytes)
                });
                if reply_bytes.is_none() {
                    return Some(Reply::error(errors::reply_too_large(
                        self.config.max_reply_bytes,
                    )));
                }
                // A key of another type is nil here, as in Redis.
                let value =
                    |k: &Vec<u8>| self.get(k).map_or(Reply::Nil, |v| Reply::Bulk(v.to_vec()));
                Reply::Array(keys.iter().map(value).collect())
            }
            Command::DbSize => Reply::Integer(count(self.data.len())),
            Command::Ttl { key, unit } => self.ttl_reply(key, *unit, wall_clock_ms),
            Command::ExpireTime { key, unit } => self.expire_time_reply(key, *unit),
            Command::Revision { key } => match self.data.get(key) {
                Some(stored) => Reply::Integer(i64::try_from(stored.revision).unwrap_or(i64::MAX)),
                None => Reply::Nil,
            },
            _ => return self.query_keyspace(command),
        })
    }

    /// `GET`: the string, nil, or `WRONGTYPE` for a hash.
    pub(crate) fn get_reply(&self, key: &[u8]) -> Reply {
        match self.data.get(key).map(|stored| stored.value.as_string()) {
            Some(Ok(bytes)) => Reply::Bulk(bytes.clone()),
            Some(Err(wrong_type)) => wrong_type,
            None => Reply::Nil,
        }
    }

    /// Runs `command` against the data (sessions already handled).
    pub(crate) fn execute(&mut self, command: Command) -> Reply {
        if let Some(reply) = self.query(&command, 0) {
            return reply;
        }
        let name = command.name();
        match command {
            Command::Set {
                key,
                value,
                condition,
            } => match self.write_without_deadline(key, value, condition) {
                Ok(true) => Reply::Ok,
                Ok(false) => Reply::Nil,
                Err(refusal) => refusal,
            },
            Command::Del { keys } => {
                if keys.is_empty() {
                    return Reply::error(errors::wrong_arity(name));
                }
                let mut removed = 0;
                for key in &keys {
                    if self.data.remove(key).is_some() {
                        removed += 1;
                        self.notify("del", key);
                    }
                }
                Reply::Integer(count(removed))
            }
            Command::Incr { key } => self.incr_by(&key, 1),
            Command::IncrBy { key, increment } => self.incr_by(&key, increment),
            Command::Decr { key } => self.incr_by(&key, -1),
            Command::MSet { pairs } => self.mset(pairs, false),
            Command::Cas { key, expected, new } => {
                if let Some(refusal) = self.check_size(&key, &new) {
                    return refusal;
                }
                let current = self.data.get(&key);
                let value = match current.map(|stored| stored.value.as_string()).transpose() {
                    Ok(value) => value,
                    Err(wrong_type) => return wrong_type,
                };
                if value != expected.as_ref() {
                    return Reply::Integer(0);
                }
                // Like INCR, a swap keeps the key's time to live.
                let deadline_ms = current.and_then(|stored| stored.deadline_ms);
                let stored = Stored {
                    value: Value::String(new),
                    deadline_ms,
                    revision: self.applied_index,
                };
                self.notify("set", &key);
                self.data.insert(key, stored);
                Reply::Integer(1)
            }
            Command::SetWith {
                key,
                value,
                options,
            } => self.set_with(key, value, options),
            Command::SetNx { key, value } => {
                match self.write_without_deadline(key, value, SetCondition::IfAbsent) {
                    Ok(written) => Reply::Integer(i64::from(written)),
                    Err(refusal) => refusal,
                }
            }
            Command::GetEx { key, expiry } => self.get_ex(&key, expiry),
            Command::GetDel { key } => {
                let reply = self.get_reply(&key);
                if let Reply::Bulk(_) = reply {
                    self.data.remove(&key);
                    self.notify("del", &key);
                }
                reply
            }
            Command::Expire {
                key,
                deadline,
                condition,
            } => self.expire(&key, deadline, condition),
            Command::Persist { key } => self.persist(&key),
            Command::Exec(transaction) => self.exec(transaction),
            Command::Get { .. }
            | Command::Exists { .. }
            | Command::MGet { .. }
            | Command::DbSize
            | Command::Ttl { .. }
            | Command::ExpireTime { .. }
            | Command::Revision { .. } => {
                unreachable!("read-only commands are answered by query")
            }
            other => self.execute_keyspace(other),
        }
    }

    /// Stores `value` at `key`, without a deadline, if `condition` holds (one search of the
    /// key's slice), reporting `set`: whether it did, or the refusal of a key or value beyond the
    /// limits. The key is copied only when someone listens for its event.
    fn write_without_deadline(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        condition: SetCondition,
    ) -> Result<bool, Reply> {
        if let Some(refusal) = self.check_size(&key, &value) {
            return Err(refusal);
        }
        let stored = Stored {
            value: Value::String(value),
            deadline_ms: None,
            revision: self.applied_index,
        };
        if !self.records_events() {
            return Ok(self.data.write(key, stored, condition).is_some());
        }
        let written = self.data.write(key.clone(), stored, condition).is_some();
        if written {
            self.notify("set", &key);
        }
        Ok(written)
    }

    /// The error reply for a key or value beyond the configured limits.
    pub(crate) fn check_size(&self, key: &[u8], value: &[u8]) -> Option<Reply> {
        if key.len() > self.config.max_key_bytes {
            return Some(Reply::error(errors::KEY_TOO_LARGE));
        }
        if value.len() > self.config.max_value_bytes {
            return Some(Reply::error(errors::VALUE_TOO_LARGE));
        }
        None
    }

    fn incr_by(&mut self, key: &[u8], delta: i64) -> Reply {
        let current = match self.data.get(key).map(|stored| stored.value.as_string()) {
            None => 0,
            Some(Err(wrong_type)) => return wrong_type,
            Some(Ok(value)) => match parse_integer(value) {
                Some(n) => n,
                None => return Reply::error(errors::NOT_AN_INTEGER),
            },
        };
        let Some(next) = current.checked_add(delta) else {
            return Reply::error(errors::OVERFLOW);
        };
        let value = next.to_string().into_bytes();
        if let Some(refusal) = self.check_size(key, &value) {
            return refusal;
        }
        // INCR and its kin keep the key's time to live, as in Redis.
        let stored = Stored {
            value: Value::String(value),
            deadline_ms: self.deadline_ms(key),
            revision: self.applied_index,
        };
        self.data.insert(key.to_vec(), stored);
        self.notify("incrby", key);
        Reply::Integer(next)
    }
}

/// A count as a reply integer (counts of keys in memory always fit).
pub(crate) fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Parses a value the way Redis does for `INCR`: an optional `-`, then decimal digits with
/// no leading zero (just `0` for zero), no sign `+`, no spaces, within 64 bits.
pub(crate) fn parse_integer(bytes: &[u8]) -> Option<i64> {
    if bytes == b"0" {
        return Some(0);
    }
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        // -(2^63) is the one magnitude that only fits negated.
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}
