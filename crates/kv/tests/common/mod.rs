//! Helpers shared by the test files: a store that numbers its own entries, and short
//! command constructors.
#![allow(dead_code)]

use skiff_kv::{Command, KvConfig, Reply, SessionRequest, SetCondition, StateMachine};

/// A store plus the index of the next entry, so tests read like a list of commands.
pub struct Kv {
    pub machine: StateMachine,
    pub next_index: u64,
}

impl Kv {
    pub fn new() -> Kv {
        Kv::with_config(KvConfig::default())
    }

    pub fn with_config(config: KvConfig) -> Kv {
        Kv {
            machine: StateMachine::new(config).expect("valid config"),
            next_index: 1,
        }
    }

    /// Applies `command` without a session as the next entry.
    pub fn apply(&mut self, command: Command) -> Reply {
        self.apply_with(command, None)
    }

    /// Applies `command` from `client` with `sequence` as the next entry.
    pub fn apply_session(&mut self, client_id: u64, sequence: u64, command: Command) -> Reply {
        self.apply_with(
            command,
            Some(SessionRequest::sequential(client_id, sequence)),
        )
    }

    pub fn apply_with(&mut self, command: Command, session: Option<SessionRequest>) -> Reply {
        let index = self.next_index;
        self.next_index += 1;
        self.machine.apply(index, command, session)
    }

    pub fn read(&self, command: Command) -> Reply {
        self.machine.read(&command)
    }
}

pub fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

pub fn keys(names: &[&str]) -> Vec<Vec<u8>> {
    names.iter().map(|s| b(s)).collect()
}

pub fn get(key: &str) -> Command {
    Command::Get { key: b(key) }
}

pub fn set(key: &str, value: &str) -> Command {
    Command::Set {
        key: b(key),
        value: b(value),
        condition: SetCondition::Always,
    }
}

pub fn set_nx(key: &str, value: &str) -> Command {
    Command::Set {
        key: b(key),
        value: b(value),
        condition: SetCondition::IfAbsent,
    }
}

pub fn set_xx(key: &str, value: &str) -> Command {
    Command::Set {
        key: b(key),
        value: b(value),
        condition: SetCondition::IfPresent,
    }
}

pub fn incr(key: &str) -> Command {
    Command::Incr { key: b(key) }
}

pub fn bulk(s: &str) -> Reply {
    Reply::Bulk(b(s))
}
