//! The bytes the store writes — commands and requests in log entries, replies between nodes,
//! snapshots on disk — do not change with the code that writes them: each value here, encoded
//! by the format as it stood before the shared codec and kept as hex, must decode to the
//! same value and be written again byte for byte. Bytes of an older format version, kept as
//! hex too, must still read as the same value.

use skiff_kv::{
    Command, Deadline, Encoded, ExpireCondition, Expiry, KvConfig, KvError, Reply, Request,
    SessionRequest, SetCondition, SetOptions, StateMachine, TimeUnit,
};

fn set(key: &[u8], value: &[u8], condition: SetCondition) -> Command {
    Command::Set {
        key: key.to_vec(),
        value: value.to_vec(),
        condition,
    }
}

fn commands() -> Vec<Command> {
    vec![
        Command::Get { key: b"k".to_vec() },
        set(b"key", b"value", SetCondition::IfAbsent),
        Command::Del {
            keys: vec![b"a".to_vec(), b"".to_vec()],
        },
        Command::Exists {
            keys: vec![b"a".to_vec()],
        },
        Command::Incr { key: b"n".to_vec() },
        Command::IncrBy {
            key: b"n".to_vec(),
            increment: -300,
        },
        Command::Decr { key: b"n".to_vec() },
        Command::MGet {
            keys: vec![b"a".to_vec(), b"b".to_vec()],
        },
        Command::MSet {
            pairs: vec![(b"a".to_vec(), vec![7; 130])],
        },
        Command::Cas {
            key: b"c".to_vec(),
            expected: Some(b"old".to_vec()),
            new: b"new".to_vec(),
        },
        Command::Cas {
            key: b"c".to_vec(),
            expected: None,
            new: b"".to_vec(),
        },
        Command::DbSize,
    ]
}

/// The commands format version 2 added.
fn commands_v2() -> Vec<Command> {
    vec![
        Command::SetWith {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            options: SetOptions {
                condition: SetCondition::IfAbsent,
                expiry: Expiry::Until(Deadline::In(1500)),
                get: true,
            },
        },
        Command::SetWith {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            options: SetOptions {
                condition: SetCondition::Always,
                expiry: Expiry::Keep,
                get: false,
            },
        },
        Command::SetNx {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
        Command::GetEx {
            key: b"k".to_vec(),
            expiry: Expiry::Until(Deadline::At(-1)),
        },
        Command::GetEx {
            key: b"k".to_vec(),
            expiry: Expiry::Clear,
        },
        Command::GetDel { key: b"k".to_vec() },
        Command::Expire {
            key: b"k".to_vec(),
            deadline: Deadline::In(-64),
            condition: ExpireCondition::IfSomeAndEarlier,
        },
        Command::Persist { key: b"k".to_vec() },
        Command::Ttl {
            key: b"k".to_vec(),
            unit: TimeUnit::Seconds,
        },
        Command::ExpireTime {
            key: b"k".to_vec(),
            unit: TimeUnit::Milliseconds,
        },
        Command::Revision { key: b"k".to_vec() },
    ]
}

fn requests() -> Vec<Request> {
    vec![
        Request {
            session: None,
            command: set(b"k", b"v", SetCondition::IfPresent),
        },
        Request {
            session: Some(SessionRequest::sequential(300, u64::MAX)),
            command: Command::Incr { key: b"n".to_vec() },
        },
    ]
}

fn replies() -> Vec<Reply> {
    vec![
        Reply::Ok,
        Reply::Nil,
        Reply::Bulk(b"bulk".to_vec()),
        Reply::Integer(i64::MIN),
        Reply::Array(vec![
            Reply::Bulk(b"x".to_vec()),
            Reply::Nil,
            Reply::Integer(-1),
        ]),
        Reply::Error("ERR no".into()),
    ]
}

/// A store with two keys, one with a deadline, at a log time, and a client session that
/// remembers an integer reply.
fn store() -> StateMachine {
    let mut kv = store_v1();
    let px = SetOptions {
        expiry: Expiry::Until(Deadline::In(500)),
        ..SetOptions::default()
    };
    let set_px = Command::SetWith {
        key: b"c".to_vec(),
        value: b"3".to_vec(),
        options: px,
    };
    kv.apply_at(4, Some(1_000), set_px, None);
    kv
}

/// The store [`SNAPSHOT_V1_HEX`] holds.
fn store_v1() -> StateMachine {
    let mut kv = StateMachine::new(KvConfig::default()).expect("default config");
    kv.apply(1, set(b"b", b"2", SetCondition::Always), None);
    kv.apply(2, set(b"a", b"1", SetCondition::Always), None);
    let session = Some(SessionRequest::sequential(9, 1));
    kv.apply(3, Command::Incr { key: b"a".to_vec() }, session);
    kv
}

/// [`commands`] as format version 1 wrote them: a version byte, an opcode, varint lengths
/// and integers.
const COMMANDS_V1_HEX: &[&str] = &[
    "0101016b",
    "0102036b65790576616c756501",
    "010302016100",
    "0104010161",
    "0105016e",
    "0106016ed704",
    "0107016e",
    "01080201610162",
    "0109010161820107070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707",
    "010a016301036f6c64036e6577",
    "010a01630000",
    "010b",
];

/// [`commands`] then [`commands_v2`], as version 2 writes them.
const COMMANDS_HEX: &[&str] = &[
    "0201016b",
    "0202036b65790576616c756501",
    "020302016100",
    "0204010161",
    "0205016e",
    "0206016ed704",
    "0207016e",
    "02080201610162",
    "0209010161820107070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707",
    "020a016301036f6c64036e6577",
    "020a01630000",
    "020b",
    "020c016b0176010200b81701",
    "020c016b0176000100",
    "020d016b0176",
    "020e016b020101",
    "020e016b00",
    "020f016b",
    "0210016b007f05",
    "0211016b",
    "0212016b00",
    "0213016b01",
    "0214016b",
];

/// [`requests`] with commands of version 1.
const REQUESTS_V1_HEX: &[&str] = &["01000102016b017602", "0101ac02ffffffffffffffffff010105016e"];

/// [`requests`] as request version 1 wrote them (no lowest unanswered sequence).
const REQUESTS_V1_V2_COMMANDS_HEX: &[&str] =
    &["01000202016b017602", "0101ac02ffffffffffffffffff010205016e"];

/// [`requests`]: version, session flag (and the session as varints: client id, sequence,
/// and how far below it the lowest unanswered sequence is), then the command.
const REQUESTS_HEX: &[&str] = &[
    "02000202016b017602",
    "0201ac02ffffffffffffffffff01000205016e",
];

/// [`replies`]: a tag, then the fields (zigzag varints for integers).
const REPLIES_HEX: &[&str] = &[
    "00",
    "01",
    "020462756c6b",
    "03ffffffffffffffffff01",
    "0403020178010301",
    "0506455252206e6f",
];

/// [`store_v1`]'s snapshot as version 1 wrote it: magic, version, applied index, the keys in
/// order, the session with its reply, then the CRC-32C (little-endian).
const SNAPSHOT_V1_HEX: &str = "534b565301030201610132016201320109010303043128e975";

/// [`store`]'s snapshot as version 2 wrote it: one reply per session.
const SNAPSHOT_V2_HEX: &str =
    "534b56530204e807030161013203000162013201000163013304dd0b010901030304d16b8cb9";

/// [`store`]'s snapshot: magic, version, applied index, log time, the keys in order with
/// revision and deadline (plus one), the session with its window's floor, last active
/// index and replies by sequence, then the CRC-32C.
const SNAPSHOT_HEX: &str =
    "534b56530304e807030161013203000162013201000163013304dd0b0109010301010304a459be6b";

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).expect("hex"))
        .collect()
}

/// Each value is written as its golden hex, and the hex reads back as the value.
fn keep_their_bytes<T: std::fmt::Debug + PartialEq>(
    values: Vec<T>,
    golden: &[&str],
    encode: impl Fn(&T) -> Vec<u8>,
    decode: impl Fn(&[u8]) -> Result<T, KvError>,
) {
    assert_eq!(values.len(), golden.len());
    for (value, hex) in values.into_iter().zip(golden) {
        let bytes = from_hex(hex);
        assert_eq!(encode(&value), bytes, "{value:?}");
        assert_eq!(decode(&bytes), Ok(value));
    }
}

#[test]
fn commands_keep_their_bytes() {
    let all = commands().into_iter().chain(commands_v2()).collect();
    keep_their_bytes(all, COMMANDS_HEX, Command::encode, Command::decode);
}

#[test]
fn requests_keep_their_bytes() {
    keep_their_bytes(requests(), REQUESTS_HEX, Request::encode, Request::decode);
}

/// Commands, requests and snapshots of version 1 read as they did, a snapshot's keys with
/// its applied index as their revision and no deadline.
#[test]
fn version_1_bytes_still_read() {
    for (command, hex) in commands().into_iter().zip(COMMANDS_V1_HEX) {
        assert_eq!(Command::decode(&from_hex(hex)), Ok(command));
    }
    for (request, hex) in requests().into_iter().zip(REQUESTS_V1_HEX) {
        assert_eq!(Request::decode(&from_hex(hex)), Ok(request));
    }
    for (request, hex) in requests().into_iter().zip(REQUESTS_V1_V2_COMMANDS_HEX) {
        assert_eq!(Request::decode(&from_hex(hex)), Ok(request));
    }
    let restored =
        StateMachine::restore(KvConfig::default(), &from_hex(SNAPSHOT_V1_HEX)).expect("restores");
    let expected = store_v1();
    assert_eq!(
        restored.iter().collect::<Vec<_>>(),
        expected.iter().collect::<Vec<_>>()
    );
    assert_eq!(restored.applied_index(), 3);
    assert_eq!(restored.revision(b"a"), Some(3));
    assert_eq!(restored.revision(b"b"), Some(3));
    assert_eq!(restored.deadline_ms(b"a"), None);
    assert_eq!(restored.log_time_ms(), 0);
    assert_eq!(restored.session(9), expected.session(9));
    // A version 1 command names only opcodes 1 to 11.
    let mut revision = Command::Revision { key: b"k".to_vec() }.encode();
    revision[0] = 1;
    assert!(matches!(
        Command::decode(&revision),
        Err(KvError::UnknownTag { tag: 20, .. })
    ));
}

#[test]
fn replies_keep_their_bytes() {
    keep_their_bytes(replies(), REPLIES_HEX, Reply::encode, Reply::decode);
}

#[test]
fn snapshots_keep_their_bytes() {
    let bytes = from_hex(SNAPSHOT_HEX);
    assert_eq!(store().snapshot(), bytes);
    let restored = StateMachine::restore(KvConfig::default(), &bytes).expect("restores");
    assert_eq!(restored, store());
}

/// A version 2 snapshot reads as the same store: its one reply per session becomes a window
/// of one, whose floor is that reply's sequence.
#[test]
fn version_2_snapshot_still_reads() {
    let restored =
        StateMachine::restore(KvConfig::default(), &from_hex(SNAPSHOT_V2_HEX)).expect("restores");
    assert_eq!(restored, store());
    assert_eq!(restored.snapshot(), from_hex(SNAPSHOT_HEX));
}

/// A format version this build does not read is refused the same way in a command, a request
/// and a snapshot: as unsupported, naming what was read and the version found, whatever
/// follows it.
#[test]
fn unknown_format_versions_are_refused_alike() {
    for version in [0u8, 4, 0x7f, 0x80, 0xff] {
        let refused = |what| KvError::UnsupportedVersion { what, version };

        let mut command = from_hex(COMMANDS_HEX[1]);
        command[0] = version;
        assert_eq!(Command::decode(&command), Err(refused(Encoded::Command)));

        {
            let mut request = from_hex(REQUESTS_HEX[1]);
            request[0] = version;
            assert_eq!(Request::decode(&request), Err(refused(Encoded::Request)));
        }

        // The version follows the magic, under a checksum made again so that it passes.
        let mut snapshot = from_hex(SNAPSHOT_HEX);
        snapshot[4] = version;
        let body = snapshot.len() - 4;
        let checksum = crc32c::crc32c(&snapshot[..body]);
        snapshot[body..].copy_from_slice(&checksum.to_le_bytes());
        let error = StateMachine::restore(KvConfig::default(), &snapshot).unwrap_err();
        assert_eq!(error, refused(Encoded::Snapshot));
        assert_eq!(
            error.to_string(),
            format!("snapshot: unsupported format version {version}")
        );
    }
}
