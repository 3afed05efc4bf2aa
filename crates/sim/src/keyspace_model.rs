//! The timed checker's model of the store: each key a string with a deadline and a revision,
//! changed along the committed log at **log time** (docs/COORDINATION.md). It is written from
//! Redis's documented semantics and that page, not from `skiff-kv`: a key whose deadline is at
//! or before the log time of the entry being applied is gone from that entry on; a relative
//! TTL counts from its own entry's stamp; every write that changes a key sets its revision to
//! the entry's index. It models only the keys it is asked to (the timed keys); commands on
//! other keys pass by.

use std::collections::{BTreeMap, BTreeSet};

use skiff_kv::{Command, Deadline, ExpireCondition, Expiry, Reply, SetCondition, TimeUnit};

use crate::ledger::LedgerEntry;

/// A modelled key's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyState {
    /// Its value.
    pub value: Vec<u8>,
    /// When it expires, in log time (Unix milliseconds); `None`: never.
    pub deadline_ms: Option<u64>,
    /// The index of the entry that last wrote it.
    pub revision: u64,
}

/// Why the model could not follow the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A stamp earlier than one before it in the log.
    #[error("entry {index} is stamped {stamp_ms}, before the log time {log_time_ms} of an earlier entry")]
    LogTimeWentBack {
        /// The entry.
        index: u64,
        /// Its stamp.
        stamp_ms: u64,
        /// The log time before it.
        log_time_ms: u64,
    },
    /// A command on a modelled key that the model does not know.
    #[error("entry {index} applies {command}, which the model does not know, to a timed key")]
    Unmodelled {
        /// The entry.
        index: u64,
        /// The command.
        command: String,
    },
}

/// The model, replayed entry by entry.
#[derive(Clone, Debug, Default)]
pub struct KeyspaceModel {
    modelled: BTreeSet<Vec<u8>>,
    keys: BTreeMap<Vec<u8>, KeyState>,
    log_time_ms: u64,
    /// The last sequence applied per client session (§6.3: a request is applied once).
    sessions: BTreeMap<u64, u64>,
    /// Whether the last entry applied was a transaction whose watched key had changed.
    aborted: bool,
}

impl KeyspaceModel {
    /// A model of `keys`, all absent, at log time 0.
    pub fn new(keys: impl IntoIterator<Item = Vec<u8>>) -> KeyspaceModel {
        KeyspaceModel {
            modelled: keys.into_iter().collect(),
            ..KeyspaceModel::default()
        }
    }

    /// The log time after the last entry applied.
    pub fn log_time_ms(&self) -> u64 {
        self.log_time_ms
    }

    /// `key`'s state, `None` when absent.
    pub fn key(&self, key: &[u8]) -> Option<&KeyState> {
        self.keys.get(key)
    }

    /// Applies committed entry `index`: first the passing of log time (keys due expire), then
    /// each of its commands at that one point. Returns each command's answer, `None` where
    /// the model cannot tell (other keys, a session's repeat).
    pub fn apply(
        &mut self,
        index: u64,
        entry: &LedgerEntry,
    ) -> Result<Vec<Option<Reply>>, ModelError> {
        if entry.log_time_ms.is_none() && entry.commands.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(stamp_ms) = entry.log_time_ms {
            // docs/COORDINATION.md: stamps never decrease along the log, across leaders too.
            if stamp_ms < self.log_time_ms {
                return Err(ModelError::LogTimeWentBack {
                    index,
                    stamp_ms,
                    log_time_ms: self.log_time_ms,
                });
            }
            self.log_time_ms = stamp_ms;
        }
        let now = self.log_time_ms;
        self.keys
            .retain(|_, state| state.deadline_ms.is_none_or(|deadline| deadline > now));
        if entry.session_refused {
            return Ok(vec![None; entry.commands.len()]);
        }
        if let Some((client, sequence)) = entry.session {
            // §6.3: a sequence number seen before is answered from the session, not applied.
            let last = self.sessions.entry(client).or_insert(0);
            if sequence <= *last {
                return Ok(vec![None; entry.commands.len()]);
            }
            *last = sequence;
        }
        // WATCH: a transaction runs only if every watched key kept its revision.
        self.aborted = !self.watch_holds(index, entry)?;
        if self.aborted {
            return Ok(Vec::new());
        }
        entry
            .commands
            .iter()
            .map(|command| self.execute(index, command))
            .collect()
    }

    /// Whether the last entry applied was a transaction that aborted (`EXEC` answers nil).
    pub fn aborted(&self) -> bool {
        self.aborted
    }

    /// Whether every key `entry` watched still has the revision it had when watched (a key
    /// missing then must be missing now). A watched key the model does not follow, in a
    /// transaction that touches one it does, cannot be judged.
    fn watch_holds(&self, index: u64, entry: &LedgerEntry) -> Result<bool, ModelError> {
        let touches_modelled = entry
            .commands
            .iter()
            .any(|c| command_keys(c).iter().any(|k| self.models(k)));
        let mut holds = true;
        for watched in &entry.watched {
            if !self.models(&watched.key) {
                if touches_modelled {
                    return Err(ModelError::Unmodelled {
                        index,
                        command: format!("WATCH {}", String::from_utf8_lossy(&watched.key)),
                    });
                }
                continue;
            }
            holds &= self.keys.get(&watched.key).map(|s| s.revision) == watched.revision;
        }
        Ok(holds)
    }

    fn models(&self, key: &[u8]) -> bool {
        self.modelled.contains(key)
    }

    /// The absolute deadline of `deadline` at the current log time, and whether it has
    /// already passed.
    fn resolve(&self, deadline: Deadline) -> (i64, bool) {
        let now = i64::try_from(self.log_time_ms).unwrap_or(i64::MAX);
        let at = match deadline {
            Deadline::In(ms) => now.saturating_add(ms),
            Deadline::At(ms) => ms,
        };
        (at, at <= now)
    }

    fn store(&mut self, key: &[u8], value: Vec<u8>, deadline_ms: Option<u64>, index: u64) {
        let state = KeyState {
            value,
            deadline_ms,
            revision: index,
        };
        self.keys.insert(key.to_vec(), state);
    }

    /// One command at entry `index`.
    fn execute(&mut self, index: u64, command: &Command) -> Result<Option<Reply>, ModelError> {
        let unmodelled = || ModelError::Unmodelled {
            index,
            command: describe(command),
        };
        let Some(key) = single_key(command) else {
            return Ok(self.execute_on_many(index, command));
        };
        if !self.models(key) {
            return Ok(None);
        }
        let old = self.keys.get(key).cloned();
        let reply = match command {
            Command::Get { .. } | Command::Ttl { .. } | Command::Revision { .. } => {
                Some(self.read(key, command))
            }
            Command::Set {
                value, condition, ..
            } => Some(if holds(*condition, old.is_some()) {
                self.store(key, value.clone(), None, index);
                Reply::Ok
            } else {
                Reply::Nil
            }),
            Command::SetNx { value, .. } => {
                if old.is_none() {
                    self.store(key, value.clone(), None, index);
                }
                Some(Reply::Integer(i64::from(old.is_none())))
            }
            Command::SetWith { value, options, .. } => {
                Some(self.set_with(index, key, value, *options, old))
            }
            Command::Cas { expected, new, .. } => {
                let swapped = old.as_ref().map(|s| &s.value) == expected.as_ref();
                if swapped {
                    let deadline_ms = old.and_then(|s| s.deadline_ms);
                    self.store(key, new.clone(), deadline_ms, index);
                }
                Some(Reply::Integer(i64::from(swapped)))
            }
            Command::GetDel { .. } => Some(
                self.keys
                    .remove(key)
                    .map_or(Reply::Nil, |s| Reply::Bulk(s.value)),
            ),
            Command::GetEx { expiry, .. } => match old {
                None => Some(Reply::Nil),
                Some(old) => self.get_ex(index, key, *expiry, old),
            },
            Command::Expire {
                deadline,
                condition,
                ..
            } => Some(self.expire(index, key, *deadline, *condition, old)),
            Command::Persist { .. } => match old {
                Some(old) if old.deadline_ms.is_some() => {
                    self.store(key, old.value, None, index);
                    Some(Reply::Integer(1))
                }
                _ => Some(Reply::Integer(0)),
            },
            _ => return Err(unmodelled()),
        };
        Ok(reply)
    }

    /// A command on several keys: `DEL` (answered when every key is modelled), `MSET`.
    fn execute_on_many(&mut self, index: u64, command: &Command) -> Option<Reply> {
        match command {
            Command::Del { keys } if keys.iter().any(|k| self.models(k)) => {
                let mut removed = 0;
                for key in keys {
                    removed += i64::from(self.keys.remove(key.as_slice()).is_some());
                }
                keys.iter()
                    .all(|k| self.models(k))
                    .then_some(Reply::Integer(removed))
            }
            Command::MSet { pairs } => {
                for (key, value) in pairs {
                    if self.models(key) {
                        self.store(key, value.clone(), None, index);
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// `SET` with options: the condition decides; `GET` answers the old value; the key takes
    /// the new deadline (gone at once if it has passed), keeps its own, or loses it.
    fn set_with(
        &mut self,
        index: u64,
        key: &[u8],
        value: &[u8],
        options: skiff_kv::SetOptions,
        old: Option<KeyState>,
    ) -> Reply {
        let answer = if options.get {
            old.as_ref()
                .map_or(Reply::Nil, |s| Reply::Bulk(s.value.clone()))
        } else {
            Reply::Ok
        };
        if !holds(options.condition, old.is_some()) {
            return if options.get { answer } else { Reply::Nil };
        }
        let deadline_ms = match options.expiry {
            Expiry::Keep => old.and_then(|s| s.deadline_ms),
            Expiry::Clear => None,
            Expiry::Until(deadline) => match self.resolve(deadline) {
                (_, true) => {
                    self.keys.remove(key);
                    return answer;
                }
                (at, false) => u64::try_from(at).ok(),
            },
        };
        self.store(key, value.to_vec(), deadline_ms, index);
        answer
    }

    /// `GETEX` on a key that exists: its value; the deadline set, removed or kept. A time
    /// that is not positive is refused (the model cannot tell the error's text: `None`).
    fn get_ex(&mut self, index: u64, key: &[u8], expiry: Expiry, old: KeyState) -> Option<Reply> {
        match expiry {
            Expiry::Until(Deadline::In(ms) | Deadline::At(ms)) if ms <= 0 => return None,
            Expiry::Keep => {}
            Expiry::Clear => {
                if old.deadline_ms.is_some() {
                    self.store(key, old.value.clone(), None, index);
                }
            }
            Expiry::Until(deadline) => match self.resolve(deadline) {
                (_, true) => {
                    self.keys.remove(key);
                }
                (at, false) => self.store(key, old.value.clone(), u64::try_from(at).ok(), index),
            },
        }
        Some(Reply::Bulk(old.value))
    }

    /// `PEXPIRE` and its kin: 0 for a missing key or a condition that does not hold; else 1,
    /// the key taking the deadline, or gone if it has passed.
    fn expire(
        &mut self,
        index: u64,
        key: &[u8],
        deadline: Deadline,
        condition: ExpireCondition,
        old: Option<KeyState>,
    ) -> Reply {
        let (at, passed) = self.resolve(deadline);
        let Some(old) = old else {
            return Reply::Integer(0);
        };
        if !expire_allows(condition, old.deadline_ms, at) {
            return Reply::Integer(0);
        }
        if passed {
            self.keys.remove(key);
        } else {
            self.store(key, old.value, u64::try_from(at).ok(), index);
        }
        Reply::Integer(1)
    }

    /// The answer to a read of `key` applied in the log (inside a transaction): `TTL`/`PTTL`
    /// count from log time alone there, as no node's clock is involved.
    fn read(&self, key: &[u8], command: &Command) -> Reply {
        let state = self.keys.get(key);
        match command {
            Command::Revision { .. } => state.map_or(Reply::Nil, |s| {
                Reply::Integer(i64::try_from(s.revision).unwrap_or(i64::MAX))
            }),
            Command::Ttl { unit, .. } => Reply::Integer(match state.map(|s| s.deadline_ms) {
                None => -2,
                Some(None) => -1,
                Some(Some(deadline)) => {
                    let left_ms = deadline.saturating_sub(self.log_time_ms).max(1);
                    let left = match unit {
                        TimeUnit::Milliseconds => left_ms,
                        TimeUnit::Seconds => left_ms.saturating_add(500) / 1000,
                    };
                    i64::try_from(left).unwrap_or(i64::MAX)
                }
            }),
            _ => state.map_or(Reply::Nil, |s| Reply::Bulk(s.value.clone())),
        }
    }
}

/// Whether `reply` is a possible answer to read `command` when the key is `state` at log
/// time `log_time_ms`. `TTL`/`PTTL` count down from the later of log time and the serving
/// node's clock (docs/COORDINATION.md), at least 1 ms while the key exists. With `clock_ms`,
/// what that clock read when the read was sent and when its answer came back, the answer is
/// pinned between the two; without it, anything from 1 ms up to what log time leaves.
pub fn read_allows(
    command: &Command,
    state: Option<&KeyState>,
    log_time_ms: u64,
    clock_ms: Option<(u64, u64)>,
    reply: &Reply,
) -> bool {
    match command {
        Command::Get { .. } => *reply == state.map_or(Reply::Nil, |s| Reply::Bulk(s.value.clone())),
        Command::Revision { .. } => {
            *reply
                == state.map_or(Reply::Nil, |s| {
                    Reply::Integer(i64::try_from(s.revision).unwrap_or(i64::MAX))
                })
        }
        Command::Ttl { unit, .. } => ttl_allows(*unit, state, log_time_ms, clock_ms, reply),
        _ => false,
    }
}

fn ttl_allows(
    unit: TimeUnit,
    state: Option<&KeyState>,
    log_time_ms: u64,
    clock_ms: Option<(u64, u64)>,
    reply: &Reply,
) -> bool {
    let Reply::Integer(answer) = *reply else {
        return false;
    };
    match state.map(|s| s.deadline_ms) {
        None => answer == -2,
        Some(None) => answer == -1,
        Some(Some(deadline)) => {
            let left_at = |now_ms: u64| deadline.saturating_sub(now_ms).max(1);
            // The node's clock moved from `sent` to `back` while the read was in flight.
            let (most, least) = match clock_ms {
                Some((sent, back)) => (
                    left_at(log_time_ms.max(sent)),
                    left_at(log_time_ms.max(back)),
                ),
                None => (left_at(log_time_ms), 1),
            };
            let (low, high) = match unit {
                TimeUnit::Milliseconds => (least, most),
                TimeUnit::Seconds => (
                    least.saturating_add(500) / 1000,
                    most.saturating_add(500) / 1000,
                ),
            };
            u64::try_from(answer).is_ok_and(|answer| (low..=high).contains(&answer))
        }
    }
}

/// Redis's `NX`/`XX` for `SET`.
fn holds(condition: SetCondition, exists: bool) -> bool {
    match condition {
        SetCondition::Always => true,
        SetCondition::IfAbsent => !exists,
        SetCondition::IfPresent => exists,
    }
}

/// Redis's `NX`/`XX`/`GT`/`LT` for `EXPIRE`: no deadline counts as an infinite one.
fn expire_allows(condition: ExpireCondition, current: Option<u64>, new: i64) -> bool {
    let current = current.map(i128::from);
    let new = i128::from(new);
    match condition {
        ExpireCondition::Always => true,
        ExpireCondition::IfNone => current.is_none(),
        ExpireCondition::IfSome => current.is_some(),
        ExpireCondition::IfLater => current.is_some_and(|c| new > c),
        ExpireCondition::IfEarlier => current.is_none_or(|c| new < c),
        ExpireCondition::IfSomeAndEarlier => current.is_some_and(|c| new < c),
    }
}

/// Every key a command names, as far as the model knows (one key, `DEL`'s and `MSET`'s).
fn command_keys(command: &Command) -> Vec<&[u8]> {
    match command {
        Command::Del { keys } => keys.iter().map(Vec::as_slice).collect(),
        Command::MSet { pairs } => pairs.iter().map(|(k, _)| k.as_slice()).collect(),
        other => single_key(other).into_iter().collect(),
    }
}

/// The one key a command is about, if it has exactly one.
pub fn single_key(command: &Command) -> Option<&[u8]> {
    match command {
        Command::Get { key }
        | Command::Set { key, .. }
        | Command::SetNx { key, .. }
        | Command::SetWith { key, .. }
        | Command::Cas { key, .. }
        | Command::GetDel { key }
        | Command::GetEx { key, .. }
        | Command::Expire { key, .. }
        | Command::Persist { key }
        | Command::Ttl { key, .. }
        | Command::ExpireTime { key, .. }
        | Command::Revision { key }
        | Command::Incr { key }
        | Command::IncrBy { key, .. }
        | Command::Decr { key } => Some(key),
        Command::Del { keys } if keys.len() == 1 => Some(&keys[0]),
        _ => None,
    }
}

/// A command as a client would type it, for traces.
pub fn describe(command: &Command) -> String {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let deadline = |d: &Deadline| match d {
        Deadline::In(ms) => format!("PX {ms}"),
        Deadline::At(ms) => format!("PXAT {ms}"),
    };
    match command {
        Command::Get { key } => format!("GET {}", text(key)),
        Command::Set {
            key,
            value,
            condition,
        } => {
            format!(
                "SET {} {}{}",
                text(key),
                text(value),
                condition_text(*condition)
            )
        }
        Command::SetWith {
            key,
            value,
            options,
        } => {
            let expiry = match &options.expiry {
                Expiry::Until(d) => format!(" {}", deadline(d)),
                Expiry::Keep => " KEEPTTL".to_string(),
                Expiry::Clear => String::new(),
            };
            let get = if options.get { " GET" } else { "" };
            let condition = condition_text(options.condition);
            format!("SET {} {}{condition}{get}{expiry}", text(key), text(value))
        }
        Command::Del { keys } => format!(
            "DEL {}",
            keys.iter().map(|k| text(k)).collect::<Vec<_>>().join(" ")
        ),
        Command::Expire {
            key,
            deadline: d,
            condition,
        } => {
            let (name, ms) = match d {
                Deadline::In(ms) => ("PEXPIRE", ms),
                Deadline::At(ms) => ("PEXPIREAT", ms),
            };
            let condition = match condition {
                ExpireCondition::Always => "",
                ExpireCondition::IfNone => " NX",
                ExpireCondition::IfSome => " XX",
                ExpireCondition::IfLater => " GT",
                ExpireCondition::IfEarlier => " LT",
                ExpireCondition::IfSomeAndEarlier => " XX LT",
            };
            format!("{name} {} {ms}{condition}", text(key))
        }
        Command::GetEx { key, expiry } => match expiry {
            Expiry::Until(d) => format!("GETEX {} {}", text(key), deadline(d)),
            Expiry::Keep => format!("GETEX {}", text(key)),
            Expiry::Clear => format!("GETEX {} PERSIST", text(key)),
        },
        Command::Persist { key } => format!("PERSIST {}", text(key)),
        Command::Ttl { key, unit } => match unit {
            TimeUnit::Milliseconds => format!("PTTL {}", text(key)),
            TimeUnit::Seconds => format!("TTL {}", text(key)),
        },
        Command::Revision { key } => format!("REVISION {}", text(key)),
        other => format!("{other:?}"),
    }
}

fn condition_text(condition: SetCondition) -> &'static str {
    match condition {
        SetCondition::Always => "",
        SetCondition::IfAbsent => " NX",
        SetCondition::IfPresent => " XX",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_raft::Term;

    fn entry(stamp_ms: u64, commands: Vec<Command>) -> LedgerEntry {
        LedgerEntry {
            watched: Vec::new(),
            term: Term(1),
            log_time_ms: Some(stamp_ms),
            commands,
            session: None,
            session_refused: false,
        }
    }

    #[test]
    fn commands_of_one_entry_apply_at_one_log_time_in_order() {
        let key = b"t".to_vec();
        let mut model = KeyspaceModel::new([key.clone()]);
        let set = Command::SetWith {
            key: key.clone(),
            value: b"a".to_vec(),
            options: skiff_kv::SetOptions {
                expiry: Expiry::Until(Deadline::In(100)),
                ..Default::default()
            },
        };
        let ttl = Command::Ttl {
            key: key.clone(),
            unit: TimeUnit::Milliseconds,
        };
        let revision = Command::Revision { key: key.clone() };
        assert_eq!(
            model.apply(1, &entry(1000, vec![set])).unwrap(),
            vec![Some(Reply::Ok)]
        );
        // A group at 1040: the TTL counts from that entry's log time, the revision is 1's.
        assert_eq!(
            model
                .apply(2, &entry(1040, vec![ttl.clone(), revision.clone()]))
                .unwrap(),
            vec![Some(Reply::Integer(60)), Some(Reply::Integer(1))]
        );
        // At 1100 the key is gone before the entry's commands run.
        assert_eq!(
            model.apply(3, &entry(1100, vec![ttl, revision])).unwrap(),
            vec![Some(Reply::Integer(-2)), Some(Reply::Nil)]
        );
    }

    #[test]
    fn a_repeated_session_sequence_is_not_applied_again() {
        let key = b"t".to_vec();
        let mut model = KeyspaceModel::new([key.clone()]);
        let set = Command::Set {
            key,
            value: b"a".to_vec(),
            condition: SetCondition::Always,
        };
        let mut first = entry(1000, vec![set.clone()]);
        first.session = Some((7, 1));
        model.apply(1, &first).unwrap();
        let mut again = entry(1000, vec![set]);
        again.session = Some((7, 1));
        assert_eq!(model.apply(2, &again).unwrap(), vec![None]);
        assert_eq!(
            model.key(b"t").map(|s| s.revision),
            Some(1),
            "not rewritten at 2"
        );
    }
}
