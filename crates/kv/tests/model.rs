//! The state machine against a dumb twin (STYLE.md rule 8): random sequences of commands,
//! with and without client sessions, reads, and snapshot/restore cycles, compared reply by
//! reply and state by state with a naive model — a `HashMap` for the data and a `Vec` of
//! sessions scanned linearly for expiry and eviction (thesis §6.3).

use std::collections::HashMap;

use proptest::prelude::*;
use skiff_kv::{Command, KvConfig, Reply, SessionRequest, SetCondition, StateMachine};

const MAX_KEY_BYTES: usize = 3;
const MAX_VALUE_BYTES: usize = 20;
const MAX_SESSIONS: usize = 3;
const SESSION_EXPIRY_ENTRIES: u64 = 12;

fn config() -> KvConfig {
    KvConfig {
        max_key_bytes: MAX_KEY_BYTES,
        max_value_bytes: MAX_VALUE_BYTES,
        max_sessions: MAX_SESSIONS,
        session_expiry_entries: SESSION_EXPIRY_ENTRIES,
        max_reply_bytes: usize::MAX,
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

fn command() -> impl Strategy<Value = Command> {
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
    /// Apply `command` as the entry `gap` indexes after the last, from `client` if any.
    Apply {
        command: Command,
        client: Option<(u64, Sequence)>,
        gap: u64,
    },
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
    prop_oneof![
        10 => (command(), proptest::option::of((0u64..5, sequence)), prop_oneof![4 => Just(1u64), 1 => 1u64..8])
            .prop_map(|(command, client, gap)| Op::Apply { command, client, gap }),
        3 => command().prop_map(Op::Read),
        1 => Just(Op::SnapshotRestore),
    ]
}

#[derive(Clone, Debug)]
struct ModelSession {
    client: u64,
    sequence: u64,
    reply: Reply,
    last_index: u64,
}

#[derive(Default)]
struct Model {
    data: HashMap<Vec<u8>, Vec<u8>>,
    sessions: Vec<ModelSession>,
    index: u64,
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
        let get = |k: &Vec<u8>| {
            self.data
                .get(k)
                .map_or(Reply::Nil, |v| Reply::Bulk(v.clone()))
        };
        Some(match command {
            Command::Get { key } => get(key),
            Command::Exists { keys } if keys.is_empty() => arity("exists"),
            Command::Exists { keys } => {
                Reply::Integer(keys.iter().filter(|k| self.data.contains_key(*k)).count() as i64)
            }
            Command::MGet { keys } if keys.is_empty() => arity("mget"),
            Command::MGet { keys } => Reply::Array(keys.iter().map(get).collect()),
            Command::DbSize => Reply::Integer(self.data.len() as i64),
            _ => return None,
        })
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
                    self.data.insert(key.clone(), value.clone());
                    Reply::Ok
                } else {
                    Reply::Nil
                }
            }
            Command::Del { keys } if keys.is_empty() => arity("del"),
            Command::Del { keys } => {
                let mut removed = 0;
                for k in keys {
                    if self.data.remove(k).is_some() {
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
                    self.data.insert(k.clone(), v.clone());
                }
                Reply::Ok
            }
            Command::Cas { key, expected, new } => {
                if let Some(e) = Self::too_big(key, new) {
                    return e;
                }
                if self.data.get(key).cloned() == *expected {
                    self.data.insert(key.clone(), new.clone());
                    Reply::Integer(1)
                } else {
                    Reply::Integer(0)
                }
            }
            _ => unreachable!("reads handled above"),
        }
    }

    fn add(&mut self, key: &[u8], delta: i64) -> Reply {
        if key.len() > MAX_KEY_BYTES {
            return err("ERR key is too large");
        }
        let current = match self.data.get(key) {
            None => 0,
            Some(v) => match as_integer(v) {
                Some(n) => n,
                None => return err("ERR value is not an integer or out of range"),
            },
        };
        match current.checked_add(delta) {
            None => err("ERR increment or decrement would overflow"),
            Some(n) => {
                self.data.insert(key.to_vec(), n.to_string().into_bytes());
                Reply::Integer(n)
            }
        }
    }

    fn apply(&mut self, index: u64, command: &Command, session: Option<SessionRequest>) -> Reply {
        self.index = index;
        self.sessions
            .retain(|s| index - s.last_index <= SESSION_EXPIRY_ENTRIES);
        let Some(request) = session else {
            return self.execute(command);
        };
        let position = self
            .sessions
            .iter()
            .position(|s| s.client == request.client_id);
        match position {
            Some(p) if request.sequence == self.sessions[p].sequence => {
                self.sessions[p].last_index = index;
                self.sessions[p].reply.clone()
            }
            Some(p) if request.sequence < self.sessions[p].sequence => err("ERR stale request"),
            Some(p) => {
                let reply = self.execute(command);
                let s = &mut self.sessions[p];
                s.sequence = request.sequence;
                s.reply = reply.clone();
                s.last_index = index;
                reply
            }
            None if request.sequence == 1 => {
                let reply = self.execute(command);
                if self.sessions.len() == MAX_SESSIONS {
                    let oldest = (0..self.sessions.len())
                        .min_by_key(|&i| self.sessions[i].last_index)
                        .expect("full table is not empty");
                    self.sessions.remove(oldest);
                }
                self.sessions.push(ModelSession {
                    client: request.client_id,
                    sequence: request.sequence,
                    reply: reply.clone(),
                    last_index: index,
                });
                reply
            }
            None => err("ERR unknown or expired client session"),
        }
    }

    fn last_sequence(&self, client: u64) -> u64 {
        self.sessions
            .iter()
            .find(|s| s.client == client)
            .map_or(0, |s| s.sequence)
    }
}

fn assert_same_state(machine: &StateMachine, model: &Model) -> Result<(), TestCaseError> {
    let mut data: Vec<(Vec<u8>, Vec<u8>)> = model
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    data.sort();
    let actual: Vec<(Vec<u8>, Vec<u8>)> = machine
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    prop_assert_eq!(actual, data);

    let mut sessions: Vec<(u64, u64, Reply, u64)> = model
        .sessions
        .iter()
        .map(|s| (s.client, s.sequence, s.reply.clone(), s.last_index))
        .collect();
    sessions.sort_by_key(|s| s.0);
    let actual: Vec<(u64, u64, Reply, u64)> = machine
        .sessions()
        .map(|(id, s)| {
            (
                id,
                s.last_sequence,
                s.last_reply.clone(),
                s.last_active_index,
            )
        })
        .collect();
    prop_assert_eq!(actual, sessions);
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
        for op in ops {
            match op {
                Op::Apply { command, client, gap } => {
                    index += gap;
                    let session = client.map(|(client_id, sequence)| {
                        let last = model.last_sequence(client_id);
                        let sequence = match sequence {
                            Sequence::Next => last + 1,
                            Sequence::Retry => last,
                            Sequence::Older => last.saturating_sub(1),
                            Sequence::First => 1,
                            Sequence::Any(n) => n,
                        };
                        SessionRequest { client_id, sequence }
                    });
                    let expected = model.apply(index, &command, session);
                    let actual = machine.apply(index, command.clone(), session);
                    prop_assert_eq!(actual, expected, "{:?} with {:?} at {}", command, session, index);
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
