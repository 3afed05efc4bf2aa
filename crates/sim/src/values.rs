//! The lab scenarios' numbered client values, carried as real key-value writes: value `v` is
//! `SET last-value v` (an `MSET` that also writes a `padding` key when the scenario wants a
//! larger entry), so every entry the simulator proposes is a `skiff_kv` request that the real
//! state machine applies.

use skiff_kv::{Command, Request, SetCondition};
use skiff_raft::{Entry, EntryKind};

/// The key each numbered value is written to.
pub const LAST_VALUE_KEY: &str = "last-value";

/// The key that holds a padded value's padding.
pub const PADDING_KEY: &str = "padding";

/// The write that carries `value`, with `padding` more bytes of payload.
pub fn value_command(value: u64, padding: usize) -> Command {
    let key = LAST_VALUE_KEY.as_bytes().to_vec();
    let text = value.to_string().into_bytes();
    if padding == 0 {
        Command::Set {
            key,
            value: text,
            condition: SetCondition::Always,
        }
    } else {
        Command::MSet {
            pairs: vec![
                (key, text),
                (PADDING_KEY.as_bytes().to_vec(), vec![0; padding]),
            ],
        }
    }
}

/// The entry data a node writes for `value`: the request [`skiff_node::Node::submit`] encodes.
pub fn encode_value(value: u64, padding: usize) -> Vec<u8> {
    Request {
        session: None,
        command: value_command(value, padding),
    }
    .encode()
}

/// The numbered value an entry carries, if it is one.
pub fn decode_value(entry: &Entry) -> Option<u64> {
    if entry.kind != EntryKind::Normal {
        return None;
    }
    // The leader stamps each request with its log time.
    let request = match skiff_node::payload::Stamped::split(&entry.data) {
        Some(stamped) => Request::decode(stamped.ok()?.request).ok()?,
        None => Request::decode(&entry.data).ok()?,
    };
    let text = match &request.command {
        Command::Set { key, value, .. } if key == LAST_VALUE_KEY.as_bytes() => value,
        Command::MSet { pairs } => match pairs.first() {
            Some((key, value)) if key == LAST_VALUE_KEY.as_bytes() => value,
            _ => return None,
        },
        _ => return None,
    };
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_raft::{LogIndex, Term};

    fn entry(data: Vec<u8>) -> Entry {
        Entry {
            term: Term(1),
            index: LogIndex(1),
            kind: EntryKind::Normal,
            data: data.into(),
        }
    }

    #[test]
    fn values_round_trip_through_entry_data() {
        for (value, padding) in [(0, 0), (7, 0), (u64::MAX, 0), (42, 5000)] {
            let data = encode_value(value, padding);
            assert!(data.len() >= padding);
            assert_eq!(decode_value(&entry(data)), Some(value));
        }
    }

    #[test]
    fn other_writes_carry_no_value() {
        let other = Request {
            session: None,
            command: Command::Set {
                key: b"k0".to_vec(),
                value: b"7".to_vec(),
                condition: SetCondition::Always,
            },
        };
        assert_eq!(decode_value(&entry(other.encode())), None);
        assert_eq!(decode_value(&entry(vec![1, 2, 3])), None);
        let mut noop = entry(encode_value(3, 0));
        noop.kind = EntryKind::Noop;
        assert_eq!(decode_value(&noop), None);
    }
}
