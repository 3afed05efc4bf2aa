//! The simulator's state machine: a small key-value store whose commands travel in log
//! entries, plus plain numbered values for the lab scenarios.

use std::collections::BTreeMap;

/// A command carried by a log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A bare client value (lab scenarios): nothing to apply.
    Value(u64),
    /// Write `value` at `key`.
    Put {
        /// The operation id, to match the reply to the client.
        op: u64,
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Remove `key`.
    Delete {
        /// The operation id.
        op: u64,
        /// The key.
        key: String,
    },
    /// If `key` holds `expected` (`None`: absent), write `value`.
    Cas {
        /// The operation id.
        op: u64,
        /// The key.
        key: String,
        /// The value expected.
        expected: Option<String>,
        /// The new value.
        value: String,
    },
}

/// What applying a command answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A bare value was applied.
    Value,
    /// The write was done.
    Done,
    /// A delete: whether the key existed.
    Deleted {
        /// Whether the key existed.
        existed: bool,
    },
    /// A compare-and-set: whether it swapped.
    Swapped(bool),
}

/// The key where the last bare value applied is kept.
pub const LAST_VALUE_KEY: &str = "last-value";

const TAG_VALUE: u8 = 1;
const TAG_PUT: u8 = 2;
const TAG_DELETE: u8 = 3;
const TAG_CAS: u8 = 4;

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        self.bytes(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
    fn string(&mut self) -> Option<String> {
        let len = self
            .bytes(2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_le_bytes)?;
        let bytes = self.bytes(len as usize)?;
        String::from_utf8(bytes.to_vec()).ok()
    }
}

impl Command {
    /// The command as entry data; `padding` zero bytes are appended (to make entries larger).
    pub fn encode(&self, padding: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + padding);
        match self {
            Command::Value(value) => {
                out.push(TAG_VALUE);
                out.extend_from_slice(&value.to_le_bytes());
            }
            Command::Put { op, key, value } => {
                out.push(TAG_PUT);
                out.extend_from_slice(&op.to_le_bytes());
                put_str(&mut out, key);
                put_str(&mut out, value);
            }
            Command::Delete { op, key } => {
                out.push(TAG_DELETE);
                out.extend_from_slice(&op.to_le_bytes());
                put_str(&mut out, key);
            }
            Command::Cas {
                op,
                key,
                expected,
                value,
            } => {
                out.push(TAG_CAS);
                out.extend_from_slice(&op.to_le_bytes());
                put_str(&mut out, key);
                match expected {
                    Some(expected) => {
                        out.push(1);
                        put_str(&mut out, expected);
                    }
                    None => out.push(0),
                }
                put_str(&mut out, value);
            }
        }
        out.resize(out.len() + padding, 0);
        out
    }

    /// Decodes entry data written by [`encode`](Command::encode); `None` for anything else.
    pub fn decode(data: &[u8]) -> Option<Command> {
        let mut r = Reader(data);
        match r.u8()? {
            TAG_VALUE => Some(Command::Value(r.u64()?)),
            TAG_PUT => Some(Command::Put {
                op: r.u64()?,
                key: r.string()?,
                value: r.string()?,
            }),
            TAG_DELETE => Some(Command::Delete {
                op: r.u64()?,
                key: r.string()?,
            }),
            TAG_CAS => {
                let op = r.u64()?;
                let key = r.string()?;
                let expected = match r.u8()? {
                    0 => None,
                    _ => Some(r.string()?),
                };
                Some(Command::Cas {
                    op,
                    key,
                    expected,
                    value: r.string()?,
                })
            }
            _ => None,
        }
    }

    /// The client operation id, for key-value commands.
    pub fn op_id(&self) -> Option<u64> {
        match self {
            Command::Value(_) => None,
            Command::Put { op, .. } | Command::Delete { op, .. } | Command::Cas { op, .. } => {
                Some(*op)
            }
        }
    }
}

/// A node's key-value state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    map: BTreeMap<String, String>,
}

impl KvStore {
    /// Applies `command` and returns its reply.
    pub fn apply(&mut self, command: &Command) -> Reply {
        match command {
            Command::Value(value) => {
                // Bare values leave a trace in the state, so that snapshots carry something.
                self.map
                    .insert(LAST_VALUE_KEY.to_string(), value.to_string());
                Reply::Value
            }
            Command::Put { key, value, .. } => {
                self.map.insert(key.clone(), value.clone());
                Reply::Done
            }
            Command::Delete { key, .. } => Reply::Deleted {
                existed: self.map.remove(key).is_some(),
            },
            Command::Cas {
                key,
                expected,
                value,
                ..
            } => {
                let swapped = self.map.get(key) == expected.as_ref();
                if swapped {
                    self.map.insert(key.clone(), value.clone());
                }
                Reply::Swapped(swapped)
            }
        }
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.map.get(key)
    }

    /// The whole state as snapshot data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = (self.map.len() as u32).to_le_bytes().to_vec();
        for (key, value) in &self.map {
            put_str(&mut out, key);
            put_str(&mut out, value);
        }
        out
    }

    /// The state from snapshot data written by [`encode`](KvStore::encode); `None` if the data
    /// is malformed.
    pub fn decode(data: &[u8]) -> Option<KvStore> {
        if data.is_empty() {
            return Some(KvStore::default());
        }
        let mut r = Reader(data);
        let count = u32::from_le_bytes(r.bytes(4)?.try_into().ok()?);
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let key = r.string()?;
            map.insert(key, r.string()?);
        }
        r.0.is_empty().then_some(KvStore { map })
    }

    /// A digest of the whole state, to compare state machines across nodes.
    pub fn digest(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.encode() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_through_entry_data() {
        let commands = [
            Command::Value(7),
            Command::Put {
                op: 1,
                key: "k".into(),
                value: "v".into(),
            },
            Command::Delete {
                op: 2,
                key: "k".into(),
            },
            Command::Cas {
                op: 3,
                key: "k".into(),
                expected: None,
                value: "w".into(),
            },
            Command::Cas {
                op: 4,
                key: "k".into(),
                expected: Some("v".into()),
                value: "w".into(),
            },
        ];
        for command in commands {
            assert_eq!(Command::decode(&command.encode(5)), Some(command.clone()));
        }
        assert_eq!(Command::decode(&[]), None);
        assert_eq!(
            Command::decode(&[TAG_PUT, 1, 2]),
            None,
            "truncated data is refused"
        );
    }

    #[test]
    fn store_applies_put_delete_and_cas() {
        let mut store = KvStore::default();
        let cas = |expected: Option<&str>, value: &str| Command::Cas {
            op: 0,
            key: "k".into(),
            expected: expected.map(str::to_string),
            value: value.into(),
        };
        assert_eq!(store.apply(&cas(None, "a")), Reply::Swapped(true));
        assert_eq!(store.apply(&cas(None, "b")), Reply::Swapped(false));
        assert_eq!(store.apply(&cas(Some("a"), "b")), Reply::Swapped(true));
        assert_eq!(store.get("k"), Some(&"b".to_string()));
        assert_eq!(
            store.apply(&Command::Delete {
                op: 0,
                key: "k".into()
            }),
            Reply::Deleted { existed: true }
        );
        assert_eq!(
            store.apply(&Command::Delete {
                op: 0,
                key: "k".into()
            }),
            Reply::Deleted { existed: false }
        );
        assert_eq!(
            store.apply(&Command::Put {
                op: 0,
                key: "k".into(),
                value: "c".into()
            }),
            Reply::Done
        );
        assert_eq!(store.get("k"), Some(&"c".to_string()));
        assert_eq!(
            KvStore::decode(&store.encode()),
            Some(store.clone()),
            "snapshots round-trip"
        );
        assert_eq!(
            KvStore::decode(&[9, 0, 0, 0]),
            None,
            "truncated snapshot data is refused"
        );
    }
}
