//! The bytes the store writes — commands and requests in log entries, replies between nodes,
//! snapshots on disk — do not change with the code that writes them: each value here, encoded
//! by the format as it stood before the shared codec and kept as hex, must decode to the
//! same value and be written again byte for byte.

use skiff_kv::{
    Command, Encoded, KvConfig, KvError, Reply, Request, SessionRequest, SetCondition, StateMachine,
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

fn requests() -> Vec<Request> {
    vec![
        Request {
            session: None,
            command: set(b"k", b"v", SetCondition::IfPresent),
        },
        Request {
            session: Some(SessionRequest {
                client_id: 300,
                sequence: u64::MAX,
            }),
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

/// A store with two keys and a client session that remembers an integer reply.
fn store() -> StateMachine {
    let mut kv = StateMachine::new(KvConfig::default()).expect("default config");
    kv.apply(1, set(b"b", b"2", SetCondition::Always), None);
    kv.apply(2, set(b"a", b"1", SetCondition::Always), None);
    let session = Some(SessionRequest {
        client_id: 9,
        sequence: 1,
    });
    kv.apply(3, Command::Incr { key: b"a".to_vec() }, session);
    kv
}

/// [`commands`], in order: a version byte, an opcode, varint lengths and integers.
const COMMANDS_HEX: &[&str] = &[
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

/// [`requests`]: version, session flag (and the session as varints), then the command.
const REQUESTS_HEX: &[&str] = &["01000102016b017602", "0101ac02ffffffffffffffffff010105016e"];

/// [`replies`]: a tag, then the fields (zigzag varints for integers).
const REPLIES_HEX: &[&str] = &[
    "00",
    "01",
    "020462756c6b",
    "03ffffffffffffffffff01",
    "0403020178010301",
    "0506455252206e6f",
];

/// [`store`]'s snapshot: magic, version, applied index, the keys in order, the session with
/// its reply, then the CRC-32C (little-endian).
const SNAPSHOT_HEX: &str = "534b565301030201610132016201320109010303043128e975";

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
    keep_their_bytes(commands(), COMMANDS_HEX, Command::encode, Command::decode);
}

#[test]
fn requests_keep_their_bytes() {
    keep_their_bytes(requests(), REQUESTS_HEX, Request::encode, Request::decode);
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

/// A format version this build does not read is refused the same way in a command, a request
/// and a snapshot: as unsupported, naming what was read and the version found, whatever
/// follows it.
#[test]
fn unknown_format_versions_are_refused_alike() {
    for version in [0u8, 2, 0x7f, 0x80, 0xff] {
        let refused = |what| KvError::UnsupportedVersion { what, version };

        let mut command = from_hex(COMMANDS_HEX[1]);
        command[0] = version;
        assert_eq!(Command::decode(&command), Err(refused(Encoded::Command)));

        let mut request = from_hex(REQUESTS_HEX[1]);
        request[0] = version;
        assert_eq!(Request::decode(&request), Err(refused(Encoded::Request)));

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
