//! The log-entry encoding of commands: round trips, one encoding per command, and typed
//! errors for garbage.

mod common;

use common::*;
use proptest::prelude::*;
use skiff_kv::{
    Command, Deadline, Encoded, ExpireCondition, Expiry, KvError, Request, SessionRequest,
    SetCondition, SetOptions, COMMAND_FORMAT_VERSION,
};

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..12)
}

fn condition() -> impl Strategy<Value = SetCondition> {
    prop_oneof![
        Just(SetCondition::Always),
        Just(SetCondition::IfAbsent),
        Just(SetCondition::IfPresent)
    ]
}

fn key_list() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(bytes(), 0..5)
}

/// Any command, with any keys and values.
pub fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        bytes().prop_map(|key| Command::Get { key }),
        (bytes(), bytes(), condition()).prop_map(|(key, value, condition)| Command::Set {
            key,
            value,
            condition
        }),
        key_list().prop_map(|keys| Command::Del { keys }),
        key_list().prop_map(|keys| Command::Exists { keys }),
        bytes().prop_map(|key| Command::Incr { key }),
        (bytes(), any::<i64>()).prop_map(|(key, increment)| Command::IncrBy { key, increment }),
        bytes().prop_map(|key| Command::Decr { key }),
        key_list().prop_map(|keys| Command::MGet { keys }),
        proptest::collection::vec((bytes(), bytes()), 0..4)
            .prop_map(|pairs| Command::MSet { pairs }),
        (bytes(), proptest::option::of(bytes()), bytes())
            .prop_map(|(key, expected, new)| Command::Cas { key, expected, new }),
        Just(Command::DbSize),
    ]
}

proptest! {
    /// Decoding arbitrary bytes never panics; when it succeeds, the bytes were the one
    /// encoding of the command.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(command) = Command::decode(&bytes) {
            prop_assert_eq!(command.encode(), bytes);
        }
    }

    /// The same, for bytes that start like a real command (version and an opcode, every one
    /// of version 3 and a few past them), so that the field decoders are exercised rather
    /// than the header check.
    #[test]
    fn decoding_arbitrary_command_bodies_never_panics(
        opcode in 1u8..=60,
        body in proptest::collection::vec(any::<u8>(), 0..48),
    ) {
        let mut bytes = vec![COMMAND_FORMAT_VERSION, opcode];
        bytes.extend_from_slice(&body);
        if let Ok(command) = Command::decode(&bytes) {
            prop_assert_eq!(command.encode(), bytes);
        }
    }

    /// encode then decode gives the command back.
    #[test]
    fn encode_decode_round_trip(command in command()) {
        prop_assert_eq!(Command::decode(&command.encode()), Ok(command));
    }

    /// Every proper prefix of an encoded command is refused, and so is any extra byte.
    #[test]
    fn truncated_or_extended_command_is_refused(command in command(), extra in any::<u8>()) {
        let bytes = command.encode();
        for len in 0..bytes.len() {
            prop_assert!(Command::decode(&bytes[..len]).is_err(), "prefix of {} accepted", len);
        }
        let mut longer = bytes.clone();
        longer.push(extra);
        prop_assert_eq!(
            Command::decode(&longer),
            Err(KvError::TrailingBytes { what: Encoded::Command, count: 1 })
        );
    }
}

/// The key [`Request::written_key`] reads from `command`'s request, as the command names it.
fn expected_written_key(command: &Command) -> Option<&[u8]> {
    match command {
        Command::Set { key, .. }
        | Command::Incr { key }
        | Command::IncrBy { key, .. }
        | Command::Decr { key }
        | Command::Cas { key, .. } => Some(key),
        _ => None,
    }
}

proptest! {
    /// The written key read in place from a request, with or without a session, is the key
    /// its command writes, for every command that names one first; reads and the writes to
    /// several keys give none.
    #[test]
    fn a_requests_written_key_is_its_commands_key(
        command in command(),
        session in proptest::option::of((1u64.., 1u64..)),
    ) {
        let request = Request {
            session: session.map(|(client, sequence)| SessionRequest::sequential(client, sequence)),
            command: command.clone(),
        };
        let bytes = request.encode();
        prop_assert_eq!(Request::written_key(&bytes), expected_written_key(&command));
    }

    /// Bytes that start like a request (a header, then any opcode) and go on arbitrarily
    /// never make it panic, and a key it does read lies within them.
    #[test]
    fn a_written_key_from_arbitrary_bytes_lies_within_them(
        opcode in 1u8..=60,
        body in proptest::collection::vec(any::<u8>(), 0..48),
    ) {
        let mut bytes = Request { session: None, command: Command::DbSize }.encode();
        *bytes.last_mut().expect("an opcode") = opcode;
        bytes.extend_from_slice(&body);
        if let Some(key) = Request::written_key(&bytes) {
            let within = bytes.as_ptr_range();
            prop_assert!(within.start <= key.as_ptr() && key.as_ptr_range().end <= within.end);
        }
    }
}

/// Each write that names its key first gives it, the forms the generator above does not
/// make included; writes to a key that is not first, or to several, give none.
#[test]
fn every_write_that_names_its_key_first_gives_it() {
    let key = b("k");
    let named = [
        Command::SetWith {
            key: key.clone(),
            value: b("v"),
            options: SetOptions {
                expiry: Expiry::Until(Deadline::In(5_000)),
                get: true,
                ..SetOptions::default()
            },
        },
        Command::SetNx {
            key: key.clone(),
            value: b("v"),
        },
        Command::GetEx {
            key: key.clone(),
            expiry: Expiry::Keep,
        },
        Command::GetDel { key: key.clone() },
        Command::Expire {
            key: key.clone(),
            deadline: Deadline::At(1_700_000_000_000),
            condition: ExpireCondition::IfLater,
        },
        Command::Persist { key: key.clone() },
    ];
    for command in named {
        let name = command.name();
        let bytes = Request {
            session: Some(SessionRequest::sequential(3, 9)),
            command,
        }
        .encode();
        assert_eq!(Request::written_key(&bytes), Some(&key[..]), "{name}");
    }
    let unnamed = [
        Command::HSet {
            key: key.clone(),
            pairs: vec![(b("f"), b("v"))],
        },
        Command::Append {
            key: key.clone(),
            value: b("v"),
        },
        Command::MSetNx {
            pairs: vec![(key.clone(), b("v"))],
        },
    ];
    for command in unnamed {
        let name = command.name();
        let bytes = Request {
            session: None,
            command,
        }
        .encode();
        assert_eq!(Request::written_key(&bytes), None, "{name}");
    }
}

/// A log entry whose SET claims a key longer than its bytes (a damaged disk, a hostile
/// leader) gives no key, not a read past the end; a 1 MiB key is read in place, whole.
#[test]
fn a_written_key_is_never_read_past_its_bytes_and_a_huge_one_in_place() {
    let huge = vec![b'k'; 1 << 20];
    let bytes = Request {
        session: Some(SessionRequest::sequential(1, 1)),
        command: set_bytes(&huge, b"v"),
    }
    .encode();
    let key = Request::written_key(&bytes).expect("a SET names its key");
    assert_eq!(key, &huge[..]);
    assert!(
        bytes.as_ptr_range().contains(&key.as_ptr()),
        "read in place"
    );
    let mut forged = Request {
        session: None,
        command: Command::DbSize,
    }
    .encode();
    *forged.last_mut().expect("an opcode") = 2;
    // A key length of 2^40 - 1 as a varint, then three bytes.
    forged.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, b'k', b'e', b'y']);
    assert_eq!(Request::written_key(&forged), None);
    for cut in 0..bytes.len().min(64) {
        assert_eq!(Request::written_key(&bytes[..cut]), None, "cut at {cut}");
    }
}

fn set_bytes(key: &[u8], value: &[u8]) -> Command {
    Command::Set {
        key: key.to_vec(),
        value: value.to_vec(),
        condition: SetCondition::Always,
    }
}

/// The encoding is compact: a short SET takes two header bytes, one length byte per string
/// and one condition byte.
#[test]
fn small_set_encodes_compactly() {
    assert_eq!(
        set("k", "v").encode(),
        vec![COMMAND_FORMAT_VERSION, 2, 1, b'k', 1, b'v', 0]
    );
    assert_eq!(Command::DbSize.encode(), vec![COMMAND_FORMAT_VERSION, 11]);
    let decr = Command::IncrBy {
        key: b("k"),
        increment: -1,
    };
    assert_eq!(decr.encode(), vec![COMMAND_FORMAT_VERSION, 6, 1, b'k', 1]);
}

/// Each kind of garbage gives its own typed error.
#[test]
fn garbage_command_bytes_give_typed_errors() {
    let what = Encoded::Command;
    assert_eq!(Command::decode(&[]), Err(KvError::Empty { what }));
    assert_eq!(
        Command::decode(&[9, 1]),
        Err(KvError::UnsupportedVersion { what, version: 9 })
    );
    assert_eq!(
        Command::decode(&[1, 200]),
        Err(KvError::UnknownTag {
            what,
            field: "opcode",
            tag: 200,
            offset: 1
        })
    );
    assert_eq!(
        Command::decode(&[1, 2, 1, b'k', 1, b'v', 3]),
        Err(KvError::UnknownTag {
            what,
            field: "set condition",
            tag: 3,
            offset: 6
        })
    );
    assert_eq!(
        Command::decode(&[1, 1, 5, b'k']),
        Err(KvError::Truncated { what, offset: 3 })
    );
    // An overlong varint (1 written in two bytes) and one wider than 64 bits.
    assert_eq!(
        Command::decode(&[1, 1, 0x81, 0x00, b'k']),
        Err(KvError::BadVarint { what, offset: 2 })
    );
    let mut wide = vec![1, 6, 0];
    wide.extend_from_slice(&[0xff; 9]);
    wide.push(0x02);
    assert_eq!(
        Command::decode(&wide),
        Err(KvError::BadVarint { what, offset: 3 })
    );
    // A key count far beyond the bytes present is refused before anything is allocated.
    assert_eq!(
        Command::decode(&[1, 3, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        Err(KvError::Truncated { what, offset: 7 })
    );
}

/// The extreme increments round trip (zigzag covers all of i64).
#[test]
fn extreme_increments_round_trip() {
    for increment in [i64::MIN, i64::MAX, 0, -1, 1] {
        let command = Command::IncrBy {
            key: b("k"),
            increment,
        };
        assert_eq!(Command::decode(&command.encode()), Ok(command));
    }
}
