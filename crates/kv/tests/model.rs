//! The state machine against a dumb twin (STYLE.md rule 8): random sequences of commands,
//! with and without client sessions, reads, entries carrying only the time, and
//! snapshot/restore cycles, at a log time that moves forward by random steps, compared reply
//! by reply and state by state with a naive model — `HashMap`s for the data, deadlines and
//! revisions, every key scanned for expiry at each entry. Transactions (`EXEC`) watch keys
//! at the model's current revision or a stale one, and queue any other command.
//!
//! Client sessions (thesis §6.3) are not modelled as a policy — which sessions the table
//! keeps, how large a window is — but checked as properties, whatever the policy: every
//! `(client, sequence)` executes at most once (the model executes a session write only when
//! the store did, and the data must agree after every step); a copy of an executed write
//! is answered with its first reply or with an answer that says the outcome is unknown,
//! never "not applied"; a write is answered "not applied" only with a session refusal and
//! then changes nothing; a client's writes execute in sequence order, none while one it
//! still waits for below it has not; and a first copy that waits for nothing below it is
//! executed unless the table is full. The generator keeps the protocol's promise that a
//! copy sent again carries the re-sent flag.

use std::collections::{BTreeMap, HashMap};

#[path = "twin/mod.rs"]
mod twin;

use proptest::prelude::*;
use skiff_kv::{
    Command, Deadline, ExpireCondition, Expiry, KvConfig, Reply, SessionRequest, SetCondition,
    SetOptions, StateMachine, TimeUnit, Transaction, Watched,
};

/// The log time of the first entry.
const T0: u64 = 1_000_000;

const MAX_KEY_BYTES: usize = 3;
const MAX_VALUE_BYTES: usize = 20;
const MAX_SESSIONS: usize = 3;
const SESSION_EXPIRY_MS: u64 = 1_000;
const SESSION_EVICT_IDLE_MS: u64 = 300;
const MAX_HASH_FIELDS: usize = 3;
const SESSION_WINDOW_REQUESTS: usize = 3;

fn config() -> KvConfig {
    KvConfig {
        max_key_bytes: MAX_KEY_BYTES,
        max_value_bytes: MAX_VALUE_BYTES,
        max_sessions: MAX_SESSIONS,
        session_expiry_ms: SESSION_EXPIRY_MS,
        session_evict_idle_ms: SESSION_EVICT_IDLE_MS,
        session_window_requests: SESSION_WINDOW_REQUESTS,
        session_reply_bytes: usize::MAX,
        session_table_reply_bytes: usize::MAX,
        max_reply_bytes: usize::MAX,
        max_hash_fields: MAX_HASH_FIELDS,
    }
}

/// Few keys, so commands collide; "long" is over the key limit.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just("a"), Just("b"), Just("c"), Just("long")].prop_map(|k| k.as_bytes().to_vec())
}

/// Integers near the edges, non-integers, and one value over the limit.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just("".to_string()),
        Just("x".to_string()),
        Just("01".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("a value over the limit".to_string()),
        (-3i64..3).prop_map(|n| n.to_string()),
    ]
    .prop_map(String::into_bytes)
}

fn set_condition() -> impl Strategy<Value = SetCondition> {
    prop_oneof![
        Just(SetCondition::Always),
        Just(SetCondition::IfAbsent),
        Just(SetCondition::IfPresent)
    ]
}

/// Relative deadlines around the log time (some already passed), absolute ones around the
/// times a run reaches, and one that overflows — from small sets, on a grid of 100 ms like
/// the clock's steps, so that deadlines meet each other and the log time exactly.
fn deadline() -> impl Strategy<Value = Deadline> {
    prop_oneof![
        4 => prop::sample::select(vec![-100i64, -1, 0, 1, 100, 200, 300]).prop_map(Deadline::In),
        2 => (0i64..8).prop_map(|n| Deadline::At(T0 as i64 + n * 100)),
        1 => Just(Deadline::In(i64::MAX)),
    ]
}

fn expiry() -> impl Strategy<Value = Expiry> {
    prop_oneof![
        Just(Expiry::Clear),
        Just(Expiry::Keep),
        deadline().prop_map(Expiry::Until),
    ]
}

fn unit() -> impl Strategy<Value = TimeUnit> {
    prop_oneof![Just(TimeUnit::Seconds), Just(TimeUnit::Milliseconds)]
}

/// The commands that set, change or read a key's time to live, and `REVISION`.
fn ttl_command() -> impl Strategy<Value = Command> {
    let expire_condition = prop_oneof![
        Just(ExpireCondition::Always),
        Just(ExpireCondition::IfNone),
        Just(ExpireCondition::IfSome),
        Just(ExpireCondition::IfLater),
        Just(ExpireCondition::IfEarlier),
        Just(ExpireCondition::IfSomeAndEarlier),
    ];
    prop_oneof![
        3 => (key(), value(), set_condition(), expiry(), any::<bool>()).prop_map(
            |(key, value, condition, expiry, get)| Command::SetWith {
                key,
                value,
                options: SetOptions { condition, expiry, get },
            }
        ),
        1 => (key(), value()).prop_map(|(key, value)| Command::SetNx { key, value }),
        1 => (key(), expiry()).prop_map(|(key, expiry)| Command::GetEx { key, expiry }),
        1 => key().prop_map(|key| Command::GetDel { key }),
        4 => (key(), deadline(), expire_condition).prop_map(|(key, deadline, condition)| {
            Command::Expire { key, deadline, condition }
        }),
        1 => key().prop_map(|key| Command::Persist { key }),
        1 => (key(), unit()).prop_map(|(key, unit)| Command::Ttl { key, unit }),
        1 => (key(), unit()).prop_map(|(key, unit)| Command::ExpireTime { key, unit }),
        1 => key().prop_map(|key| Command::Revision { key }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        2 => classic_command(),
        2 => ttl_command(),
        2 => twin::string_command(),
        2 => twin::hash_command(),
    ]
}

fn classic_command() -> impl Strategy<Value = Command> {
    let keys = || proptest::collection::vec(key(), 0..4);
    prop_oneof![
        key().prop_map(|key| Command::Get { key }),
        (key(), value(), 0..3u8).prop_map(|(key, value, c)| Command::Set {
            key,
            value,
            condition: [
                SetCondition::Always,
                SetCondition::IfAbsent,
                SetCondition::IfPresent
            ][c as usize],
        }),
        keys().prop_map(|keys| Command::Del { keys }),
        keys().prop_map(|keys| Command::Exists { keys }),
        key().prop_map(|key| Command::Incr { key }),
        (key(), prop_oneof![Just(i64::MAX), Just(i64::MIN), -5i64..5])
            .prop_map(|(key, increment)| Command::IncrBy { key, increment }),
        key().prop_map(|key| Command::Decr { key }),
        keys().prop_map(|keys| Command::MGet { keys }),
        proptest::collection::vec((key(), value()), 0..3).prop_map(|pairs| Command::MSet { pairs }),
        (key(), proptest::option::of(value()), value())
            .prop_map(|(key, expected, new)| Command::Cas { key, expected, new }),
        Just(Command::DbSize),
    ]
}

/// How a request's sequence relates to the client's last one in the model.
#[derive(Clone, Debug)]
enum Sequence {
    Next,
    Retry,
    Older,
    First,
    Any(u64),
}

#[derive(Clone, Debug)]
enum Op {
    /// Apply `command` as the entry `gap` indexes after the last, stamped `advance_ms` after
    /// the last stamp, from `client` if any (its id, sequence, and how far below the
    /// sequence the lowest unanswered one is, whether its node sent it again).
    Apply {
        command: Command,
        client: Option<(u64, Sequence, u64, bool)>,
        gap: u64,
        advance_ms: u64,
    },
    /// Apply `commands` as one `EXEC` entry, `advance_ms` after the last stamp, watching each
    /// key at its revision now (or, when `stale`, at one it never had).
    Exec {
        watched: Vec<(Vec<u8>, bool)>,
        commands: Vec<Command>,
        advance_ms: u64,
    },
    /// Apply the next entry, carrying only a log time `advance_ms` after the last stamp.
    PassTime { advance_ms: u64 },
    /// Serve `command` through `read`.
    Read(Command),
    /// Snapshot the store and continue with the restored copy.
    SnapshotRestore,
}

fn op() -> impl Strategy<Value = Op> {
    let sequence = prop_oneof![
        4 => Just(Sequence::Next),
        2 => Just(Sequence::Retry),
        1 => Just(Sequence::Older),
        1 => Just(Sequence::First),
        1 => (0u64..6).prop_map(Sequence::Any),
    ];
    let advance = || prop_oneof![3 => Just(0u64), 2 => prop::sample::select(vec![1u64, 100, 200])];
    prop_oneof![
        10 => (command(), proptest::option::of((0u64..5, sequence, prop_oneof![3 => Just(0u64), 1 => 0u64..5], proptest::bool::weighted(0.2))), prop_oneof![4 => Just(1u64), 1 => 1u64..8], advance())
            .prop_map(|(command, client, gap, advance_ms)| Op::Apply { command, client, gap, advance_ms }),
        3 => command().prop_map(Op::Read),
        2 => (
            proptest::collection::vec((key(), prop_oneof![3 => Just(false), 1 => Just(true)]), 0..3),
            proptest::collection::vec(command(), 0..4),
            advance(),
        )
            .prop_map(|(watched, commands, advance_ms)| Op::Exec { watched, commands, advance_ms }),
        1 => advance().prop_map(|advance_ms| Op::PassTime { advance_ms }),
        1 => Just(Op::SnapshotRestore),
    ]
}

const STALE: &str =
    "ERR stale request: its reply is no longer kept; it may or may not have been applied";
const OUT_OF_ORDER: &str =
    "TRYAGAIN an earlier write of the session is not applied yet; it was not applied";
const EXPIRED: &str =
    "ERR unknown or expired client session; the write may or may not have been applied";
const TOO_MANY_SESSIONS: &str = "TRYAGAIN too many client sessions; the write was not applied";
const REPLY_NOT_KEPT: &str =
    "ERR the write was applied, but its reply was too large to keep for a retry";

/// What the model knows of one client: never forgotten, whatever the store forgets.
#[derive(Clone, Debug, Default)]
struct ClientHistory {
    /// Every sequence sent, with its command (a copy carries the same).
    sent: BTreeMap<u64, Command>,
    /// Every sequence executed, with its first reply.
    executed: BTreeMap<u64, Reply>,
    /// The highest lowest-unanswered sequence the store took from it (with a write it ran or
    /// answered again): the client waits for nothing below, and the store knows it.
    floor: u64,
}

/// The store's session refusals, which apply nothing: `true` for those that say the write
/// was not applied (so a client may send it again as new).
fn session_refusal(reply: &Reply) -> Option<bool> {
    let Reply::Error(text) = reply else {
        return None;
    };
    match text.as_str() {
        OUT_OF_ORDER | TOO_MANY_SESSIONS => Some(true),
        STALE | EXPIRED => Some(false),
        _ => None,
    }
}

/// What a key holds in the model.
#[derive(Clone, Debug, PartialEq)]
enum MValue {
    Str(Vec<u8>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
}

#[derive(Default)]
struct Model {
    data: HashMap<Vec<u8>, MValue>,
    /// Each key's deadline, for the keys that have one.
    deadlines: HashMap<Vec<u8>, i64>,
    /// Each key's last write.
    revisions: HashMap<Vec<u8>, u64>,
    clients: BTreeMap<u64, ClientHistory>,
    index: u64,
    /// The last stamp applied.
    now: u64,
}

fn err(text: &str) -> Reply {
    Reply::Error(text.to_string())
}

fn arity(name: &str) -> Reply {
    Reply::Error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// An integer as Redis reads it: what Rust parses and prints back identically.
fn as_integer(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let n: i64 = text.parse().ok()?;
    (n.to_string() == text).then_some(n)
}

impl Model {
    fn too_big(key: &[u8], value: &[u8]) -> Option<Reply> {
        if key.len() > MAX_KEY_BYTES {
            Some(err("ERR key is too large"))
        } else if value.len() > MAX_VALUE_BYTES {
            Some(err("ERR value is too large"))
        } else {
            None
        }
    }

    fn read(&self, command: &Command) -> Option<Reply> {
        let get = |k: &Vec<u8>| match self.data.get(k) {
            Some(MValue::Str(v)) => Reply::Bulk(v.clone()),
            _ => Reply::Nil,
        };
        Some(match command {
            Command::Get { key } => match self.data.get(key) {
                Some(MValue::Hash(_)) => twin::wrong_type(),
                _ => get(key),
            },
            Command::Exists { keys } if keys.is_empty() => arity("exists"),
            Command::Exists { keys } => {
                Reply::Integer(keys.iter().filter(|k| self.data.contains_key(*k)).count() as i64)
            }
            Command::MGet { keys } if keys.is_empty() => arity("mget"),
            Command::MGet { keys } => Reply::Array(keys.iter().map(get).collect()),
            Command::DbSize => Reply::Integer(self.data.len() as i64),
            Command::Ttl { key, unit } => {
                match (self.data.contains_key(key), self.deadlines.get(key)) {
                    (false, _) => Reply::Integer(-2),
                    (true, None) => Reply::Integer(-1),
                    (true, Some(&deadline)) => {
                        let left = deadline - self.now as i64;
                        Reply::Integer(match unit {
                            TimeUnit::Milliseconds => left,
                            TimeUnit::Seconds => (left + 500) / 1000,
                        })
                    }
                }
            }
            Command::ExpireTime { key, unit } => {
                match (self.data.contains_key(key), self.deadlines.get(key)) {
                    (false, _) => Reply::Integer(-2),
                    (true, None) => Reply::Integer(-1),
                    (true, Some(&deadline)) => Reply::Integer(match unit {
                        TimeUnit::Milliseconds => deadline,
                        TimeUnit::Seconds => (deadline + 500) / 1000,
                    }),
                }
            }
            Command::Revision { key } => self
                .revisions
                .get(key)
                .map_or(Reply::Nil, |&r| Reply::Integer(r as i64)),
            _ => return self.read_keyspace(command),
        })
    }

    /// Stores the string `value` at `key` with `deadline`, written at the current index.
    fn write(&mut self, key: &[u8], value: Vec<u8>, deadline: Option<i64>) {
        self.write_value(key, MValue::Str(value), deadline);
    }

    /// Stores `value` at `key` with `deadline`, written at the current index.
    fn write_value(&mut self, key: &[u8], value: MValue, deadline: Option<i64>) {
        self.data.insert(key.to_vec(), value);
        self.revisions.insert(key.to_vec(), self.index);
        match deadline {
            Some(deadline) => self.deadlines.insert(key.to_vec(), deadline),
            None => self.deadlines.remove(key),
        };
    }

    fn remove(&mut self, key: &[u8]) -> Option<MValue> {
        self.deadlines.remove(key);
        self.revisions.remove(key);
        self.data.remove(key)
    }

    /// A deadline at the current log time; `None` when it overflows.
    fn resolve(&self, deadline: Deadline) -> Option<i64> {
        match deadline {
            Deadline::In(ms) => (self.now as i64).checked_add(ms),
            Deadline::At(ms) => Some(ms),
        }
    }

    /// The commands of the `ttl` module, written out naively.
    fn execute_ttl(&mut self, command: &Command) -> Reply {
        let now = self.now as i64;
        let invalid = |name: &str| err(&format!("ERR invalid expire time in '{name}' command"));
        match command {
            Command::SetWith {
                key,
                value,
                options,
            } => {
                let deadline = match options.expiry {
                    Expiry::Until(d) => match self.resolve(d) {
                        None => return invalid("set"),
                        some => some,
                    },
                    _ => None,
                };
                if let Some(e) = Self::too_big(key, value) {
                    return e;
                }
                let exists = self.data.contains_key(key);
                let old = match self.data.get(key) {
                    Some(MValue::Hash(_)) if options.get => return twin::wrong_type(),
                    Some(MValue::Str(v)) => Some(v.clone()),
                    _ => None,
                };
                let answer = if options.get {
                    old.clone().map_or(Reply::Nil, Reply::Bulk)
                } else {
                    Reply::Ok
                };
                let holds = match options.condition {
                    SetCondition::Always => true,
                    SetCondition::IfAbsent => !exists,
                    SetCondition::IfPresent => exists,
                };
                if !holds {
                    return if options.get { answer } else { Reply::Nil };
                }
                match (options.expiry, deadline) {
                    (Expiry::Keep, _) => {
                        let kept = self.deadlines.get(key).copied();
                        self.write(key, value.clone(), kept);
                    }
                    (_, Some(d)) if d <= now => {
                        self.remove(key);
                    }
                    (_, d) => self.write(key, value.clone(), d),
                }
                answer
            }
            Command::SetNx { key, value } => {
                if let Some(e) = Self::too_big(key, value) {
                    return e;
                }
                if self.data.contains_key(key) {
                    return Reply::Integer(0);
                }
                self.write(key, value.clone(), None);
                Reply::Integer(1)
            }
            Command::GetEx { key, expiry } => {
                // Redis: a missing key answers nil before the time is judged; a time that is
                // not positive is invalid.
                let value = match self.data.get(key) {
                    None => return Reply::Nil,
                    Some(MValue::Hash(_)) => return twin::wrong_type(),
                    Some(MValue::Str(v)) => v.clone(),
                };
                let deadline = match expiry {
                    Expiry::Until(Deadline::In(ms) | Deadline::At(ms)) if *ms <= 0 => {
                        return invalid("getex")
                    }
                    Expiry::Until(d) => match self.resolve(*d) {
                        None => return invalid("getex"),
                        some => some,
                    },
                    _ => None,
                };
                match (expiry, deadline) {
                    (Expiry::Keep, _) => {}
                    (Expiry::Clear, _) => {
                        if self.deadlines.contains_key(key) {
                            self.write(key, value.clone(), None);
                        }
                    }
                    (_, Some(d)) if d <= now => {
                        self.remove(key);
                    }
                    (_, d) => self.write(key, value.clone(), d),
                }
                Reply::Bulk(value)
            }
            Command::GetDel { key } => match self.data.get(key) {
                Some(MValue::Hash(_)) => twin::wrong_type(),
                Some(MValue::Str(v)) => {
                    let v = v.clone();
                    self.remove(key);
                    Reply::Bulk(v)
                }
                None => Reply::Nil,
            },
            Command::Expire {
                key,
                deadline,
                condition,
            } => {
                let Some(at) = self.resolve(*deadline) else {
                    return invalid("expire");
                };
                let Some(value) = self.data.get(key).cloned() else {
                    return Reply::Integer(0);
                };
                let current = self.deadlines.get(key).copied();
                let allowed = match condition {
                    ExpireCondition::Always => true,
                    ExpireCondition::IfNone => current.is_none(),
                    ExpireCondition::IfSome => current.is_some(),
                    ExpireCondition::IfLater => current.is_some_and(|c| at > c),
                    ExpireCondition::IfEarlier => current.is_none_or(|c| at < c),
                    ExpireCondition::IfSomeAndEarlier => current.is_some_and(|c| at < c),
                };
                if !allowed {
                    return Reply::Integer(0);
                }
                if at <= now {
                    self.remove(key);
                } else {
                    self.write_value(key, value, Some(at));
                }
                Reply::Integer(1)
            }
            Command::Persist { key } => {
                if !self.deadlines.contains_key(key) {
                    return Reply::Integer(0);
                }
                let value = self.data[key].clone();
                self.write_value(key, value, None);
                Reply::Integer(1)
            }
            _ => unreachable!("not a TTL write"),
        }
    }

    /// The log time moves to `stamp`; the keys due by then go.
    fn pass_time(&mut self, stamp: u64) {
        self.now = self.now.max(stamp);
        let now = self.now as i64;
        let due: Vec<Vec<u8>> = self
            .deadlines
            .iter()
            .filter(|(_, &d)| d <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.remove(&key);
        }
    }

    fn execute(&mut self, command: &Command) -> Reply {
        if let Some(reply) = self.read(command) {
            return reply;
        }
        match command {
            Command::Set {
                key,
                value,
                condition,
            } => {
                if let Some(e) = Self::too_big(key, value) {
                    return e;
                }
                let present = self.data.contains_key(key);
                let go = match condition {
                    SetCondition::Always => true,
                    SetCondition::IfAbsent => !present,
                    SetCondition::IfPresent => present,
                };
                if go {
                    self.write(key, value.clone(), None);
                    Reply::Ok
                } else {
                    Reply::Nil
                }
            }
            Command::Del { keys } if keys.is_empty() => arity("del"),
            Command::Del { keys } => {
                let mut removed = 0;
                for k in keys {
                    if self.remove(k).is_some() {
                        removed += 1;
                    }
                }
                Reply::Integer(removed)
            }
            Command::Incr { key } => self.add(key, 1),
            Command::Decr { key } => self.add(key, -1),
            Command::IncrBy { key, increment } => self.add(key, *increment),
            Command::MSet { pairs } if pairs.is_empty() => arity("mset"),
            Command::MSet { pairs } => {
                if let Some(e) = pairs.iter().find_map(|(k, v)| Self::too_big(k, v)) {
                    return e;
                }
                for (k, v) in pairs {
                    self.write(k, v.clone(), None);
                }
                Reply::Ok
            }
            Command::Cas { key, expected, new } => {
                if let Some(e) = Self::too_big(key, new) {
                    return e;
                }
                let current = match self.data.get(key) {
                    Some(MValue::Hash(_)) => return twin::wrong_type(),
                    Some(MValue::Str(v)) => Some(v.clone()),
                    None => None,
                };
                if current == *expected {
                    let kept = self.deadlines.get(key).copied();
                    self.write(key, new.clone(), kept);
                    Reply::Integer(1)
                } else {
                    Reply::Integer(0)
                }
            }
            Command::SetWith { .. }
            | Command::SetNx { .. }
            | Command::GetEx { .. }
            | Command::GetDel { .. }
            | Command::Expire { .. }
            | Command::Persist { .. } => self.execute_ttl(command),
            _ => self.execute_keyspace(command),
        }
    }

    fn add(&mut self, key: &[u8], delta: i64) -> Reply {
        if key.len() > MAX_KEY_BYTES {
            return err("ERR key is too large");
        }
        let current = match self.data.get(key) {
            None => 0,
            Some(MValue::Hash(_)) => return twin::wrong_type(),
            Some(MValue::Str(v)) => match as_integer(v) {
                Some(n) => n,
                None => return err("ERR value is not an integer or out of range"),
            },
        };
        match current.checked_add(delta) {
            None => err("ERR increment or decrement would overflow"),
            Some(n) => {
                let kept = self.deadlines.get(key).copied();
                self.write(key, n.to_string().into_bytes(), kept);
                Reply::Integer(n)
            }
        }
    }

    /// An entry carrying only the time.
    fn apply_time(&mut self, index: u64, stamp: u64) {
        self.index = index;
        self.pass_time(stamp);
    }

    /// Applies a write without a session, as the next entry.
    fn apply(&mut self, index: u64, stamp: u64, command: &Command) -> Reply {
        self.index = index;
        self.pass_time(stamp);
        self.execute(command)
    }

    /// Judges the store's `reply` to session write `request` (§6.3), applied as the next
    /// entry, and executes it here only if the store did. `Err` names the broken property.
    fn apply_session(
        &mut self,
        (index, stamp): (u64, u64),
        command: &Command,
        request: SessionRequest,
        (reply, known): (&Reply, bool),
    ) -> Result<(), String> {
        self.index = index;
        self.pass_time(stamp);
        let client = self.clients.entry(request.client_id).or_default();
        let first_copy = client
            .sent
            .insert(request.sequence, command.clone())
            .is_none();
        let floor = request.lowest_unanswered.min(request.sequence);
        let given_up = request.sequence < client.floor;
        if let Some(first) = client.executed.get(&request.sequence) {
            // Executed before: never again, and never answered "not applied".
            if reply == first {
                client.floor = client.floor.max(floor);
            }
            // The window always holds the last write a remembered session ran.
            let last = client.executed.last_key_value().map(|(&s, _)| s);
            if known && last == Some(request.sequence) && reply != first {
                return Err(format!(
                    "a copy of its session's last write got {reply:?}, not its first reply {first:?}"
                ));
            }
            return if reply == first
                || *reply == err(REPLY_NOT_KEPT)
                || session_refusal(reply) == Some(false)
            {
                Ok(())
            } else {
                Err(format!("a copy of an executed write got {reply:?}, not its first reply {first:?} or an unknown outcome"))
            };
        }
        if session_refusal(reply).is_some() {
            // Refused: nothing changes (the data comparison after the step checks it). A
            // first copy that waits for nothing below it and is above every executed one
            // is refused only when the table is full.
            let above = client.executed.keys().all(|&s| s < request.sequence);
            let must_run = request.sequence > 0
                && first_copy
                && !request.resubmitted
                && floor == request.sequence
                && above;
            if must_run && *reply != err(TOO_MANY_SESSIONS) {
                return Err(format!(
                    "a first copy waiting for nothing below it was refused: {reply:?}"
                ));
            }
            return Ok(());
        }
        // Executed: in sequence order — above every executed one, and none it still waits
        // for below it left out. A write its client gave up on (a later one said it waits for
        // nothing below) is never executed while the store remembers the session; once the
        // session is forgotten, a copy delayed that long cannot be told from a first write.
        if given_up && known {
            return Err("executed a write its client gave up on, its session remembered".into());
        }
        client.floor = client.floor.max(floor);
        let floor = client.floor.max(1);
        if let Some(&later) = client
            .executed
            .keys()
            .find(|&&s| s > request.sequence)
            .filter(|_| !given_up)
        {
            return Err(format!("executed after sequence {later} of its client"));
        }
        if let Some(missing) = (floor..request.sequence).find(|s| !client.executed.contains_key(s))
        {
            return Err(format!(
                "executed while sequence {missing}, still awaited, was not"
            ));
        }
        let expected = self.execute(command);
        if expected != *reply {
            return Err(format!(
                "answered {reply:?}, the model executes it as {expected:?}"
            ));
        }
        self.clients
            .entry(request.client_id)
            .or_default()
            .executed
            .insert(request.sequence, expected);
        Ok(())
    }

    /// The revision `WATCH key` would record now.
    fn watch(&self, key: &[u8]) -> Option<u64> {
        self.revisions.get(key).copied()
    }

    /// `EXEC` at `index`: nothing runs when a watched key's revision moved, else every
    /// command in order.
    fn exec(&mut self, index: u64, stamp: u64, watched: &[Watched], commands: &[Command]) -> Reply {
        self.index = index;
        self.pass_time(stamp);
        if watched.iter().any(|w| self.watch(&w.key) != w.revision) {
            return Reply::NilArray;
        }
        Reply::Array(commands.iter().map(|c| self.execute(c)).collect())
    }

    /// The highest sequence `client` sent.
    fn last_sequence(&self, client: u64) -> u64 {
        self.clients
            .get(&client)
            .and_then(|c| c.sent.last_key_value().map(|(&s, _)| s))
            .unwrap_or(0)
    }

    /// Whether the store executed a write of `client`.
    fn executed_any(&self, client: u64) -> bool {
        self.clients
            .get(&client)
            .is_some_and(|c| !c.executed.is_empty())
    }

    /// The command `client` sent as `sequence` before, if it did.
    fn sent(&self, client: u64, sequence: u64) -> Option<&Command> {
        self.clients.get(&client)?.sent.get(&sequence)
    }
}

fn assert_same_state(machine: &StateMachine, model: &Model) -> Result<(), TestCaseError> {
    let mut data: Vec<(Vec<u8>, Vec<u8>)> = model
        .data
        .iter()
        .filter_map(|(k, v)| match v {
            MValue::Str(v) => Some((k.clone(), v.clone())),
            MValue::Hash(_) => None,
        })
        .collect();
    for (key, value) in &model.data {
        if let MValue::Hash(hash) = value {
            let all = hash
                .iter()
                .flat_map(|(f, v)| [Reply::Bulk(f.clone()), Reply::Bulk(v.clone())]);
            prop_assert_eq!(
                machine.read(&Command::HGetAll { key: key.clone() }),
                Reply::Array(all.collect())
            );
        }
    }
    data.sort();
    let actual: Vec<(Vec<u8>, Vec<u8>)> = machine
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    prop_assert_eq!(actual, data);
    for key in model.data.keys() {
        let deadline = model.deadlines.get(key).map(|&d| d as u64);
        prop_assert_eq!(machine.deadline_ms(key), deadline, "deadline of {:?}", key);
        prop_assert_eq!(machine.revision(key), model.revisions.get(key).copied());
    }
    prop_assert_eq!(machine.log_time_ms(), model.now);

    prop_assert!(machine.session_count() <= MAX_SESSIONS);
    prop_assert_eq!(machine.applied_index(), model.index);
    machine.check_invariants();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The store and the naive model give the same reply to every command and hold the same
    /// data and sessions after every step.
    #[test]
    fn state_machine_matches_naive_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut machine = StateMachine::new(config()).expect("config");
        let mut model = Model::default();
        let mut index = 0;
        let mut clock = T0;
        for op in ops {
            match op {
                Op::PassTime { advance_ms } => {
                    index += 1;
                    clock += advance_ms;
                    model.apply_time(index, clock);
                    machine.pass_time(index, clock);
                }
                Op::Apply { command, client, gap, advance_ms } => {
                    index += gap;
                    clock += advance_ms;
                    // Whether the store still knows a client's session at this entry, once it
                    // forgot those idle session_expiry_ms.
                    let knows = |client: u64| {
                        machine
                            .session(client)
                            .is_some_and(|s| clock - s.last_active_ms < SESSION_EXPIRY_MS)
                    };
                    let session = client.map(|(client_id, sequence, lag, resubmitted)| {
                        let last = model.last_sequence(client_id);
                        let sequence = match sequence {
                            Sequence::Next => last + 1,
                            Sequence::Retry => last,
                            Sequence::Older => last.saturating_sub(1),
                            Sequence::First => 1,
                            Sequence::Any(n) => n,
                        };
                        // A first copy comes only while its client waits (the node's request
                        // timeout), far sooner than a session is forgotten: once the store
                        // forgot a session that ran writes, its client starts afresh or its
                        // node sends an earlier write again (which must never run twice).
                        let forgotten = model.executed_any(client_id) && !knows(client_id);
                        if forgotten && model.sent(client_id, sequence).is_none() {
                            return SessionRequest::sequential(client_id, last + 1);
                        }
                        // A copy sent again says so (the node's promise the store relies on).
                        let resubmitted = resubmitted || model.sent(client_id, sequence).is_some();
                        // A copy says no index it was first sent after: the store never applies it
                        // as a session's first request.
                        SessionRequest { client_id, sequence, lowest_unanswered: sequence.saturating_sub(lag), resubmitted, proposed_after: 0 }
                    });
                    // A copy carries the command first sent.
                    let command = session
                        .and_then(|r| model.sent(r.client_id, r.sequence).cloned())
                        .unwrap_or(command);
                    let machine_before_known = session.is_some_and(|r| knows(r.client_id));
                    let actual = machine.apply_at(index, Some(clock), command.clone(), session);
                    match session {
                        None => {
                            let expected = model.apply(index, clock, &command);
                            prop_assert_eq!(actual, expected, "{:?} at {}", command, index);
                        }
                        Some(request) => {
                            let known = machine_before_known;
                            let judged = model.apply_session((index, clock), &command, request, (&actual, known));
                            if let Err(broken) = judged {
                                return Err(TestCaseError::fail(format!("{command:?} with {request:?} at {index}: {broken}")));
                            }
                        }
                    }
                }
                Op::Exec { watched, commands, advance_ms } => {
                    index += 1;
                    clock += advance_ms;
                    let watched: Vec<Watched> = watched
                        .into_iter()
                        .map(|(key, stale)| {
                            // Revision 0 is no write's: a stale WATCH.
                            let revision = if stale { Some(0) } else { model.watch(&key) };
                            Watched { key, revision }
                        })
                        .collect();
                    let expected = model.exec(index, clock, &watched, &commands);
                    let transaction = Command::Exec(Transaction { watched, commands });
                    let actual = machine.apply_at(index, Some(clock), transaction.clone(), None);
                    prop_assert_eq!(actual, expected, "{:?} at {}", transaction, index);
                }
                Op::Read(command) => {
                    let expected = model
                        .read(&command)
                        .unwrap_or_else(|| err("ERR write command cannot be served as a read"));
                    prop_assert_eq!(machine.read(&command), expected);
                }
                Op::SnapshotRestore => {
                    let bytes = machine.snapshot();
                    let restored = StateMachine::restore(config(), &bytes).expect("restore");
                    prop_assert_eq!(&restored, &machine);
                    prop_assert_eq!(restored.snapshot(), bytes);
                    machine = restored;
                }
            }
            assert_same_state(&machine, &model)?;
        }
    }
}
