//! The bytes the store writes — commands and requests in log entries, replies between nodes,
//! snapshots on disk — do not change with the code that writes them: each value here, encoded
//! by the format as it stood before the shared codec and kept as hex, must decode to the
//! same value and be written again byte for byte. Bytes of an older format version, kept as
//! hex too, must still read as the same value.

use skiff_kv::{
    Command, Deadline, Encoded, ExpireCondition, Expiry, KvConfig, KvError, Reply, Request,
    SessionRequest, SetCondition, SetOptions, StateMachine, TimeUnit, Transaction, Watched,
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

/// The transaction format version 3 added (opcode 60): a transaction with a key watched at revision 300
/// and one watched while absent, queuing a `SET` and an `INCR`.
fn commands_v3_exec() -> Vec<Command> {
    vec![Command::Exec(Transaction {
        watched: vec![
            Watched {
                key: b"k".to_vec(),
                revision: Some(300),
            },
            Watched {
                key: b"n".to_vec(),
                revision: None,
            },
        ],
        commands: vec![
            set(b"k", b"v", SetCondition::Always),
            Command::Incr { key: b"n".to_vec() },
        ],
    })]
}

/// The commands format version 3 added (opcodes 21 to 48).
fn commands_v3() -> Vec<Command> {
    let k = || b"k".to_vec();
    let f = || b"f".to_vec();
    let pairs = || {
        vec![
            (b"f".to_vec(), b"v".to_vec()),
            (b"g".to_vec(), b"".to_vec()),
        ]
    };
    vec![
        Command::Type { key: k() },
        Command::Rename {
            key: k(),
            new_key: b"n".to_vec(),
        },
        Command::RenameNx {
            key: k(),
            new_key: b"n".to_vec(),
        },
        Command::StrLen { key: k() },
        Command::Append {
            key: k(),
            value: b"v".to_vec(),
        },
        Command::GetRange {
            key: k(),
            start: -1,
            end: i64::MAX,
        },
        Command::SetRange {
            key: k(),
            offset: 300,
            value: b"v".to_vec(),
        },
        Command::IncrByFloat {
            key: k(),
            increment: b"0.5".to_vec(),
        },
        Command::MSetNx { pairs: pairs() },
        Command::FlushAll,
        Command::RandomKey { seed: u64::MAX },
        Command::Keys {
            pattern: b"*".to_vec(),
        },
        Command::Scan {
            cursor: 0,
            pattern: None,
            count: 10,
            value_type: None,
        },
        Command::Scan {
            cursor: 1 << 63,
            pattern: Some(b"a*".to_vec()),
            count: 1,
            value_type: Some(b"hash".to_vec()),
        },
        Command::HSet {
            key: k(),
            pairs: pairs(),
        },
        Command::HSetNx {
            key: k(),
            field: f(),
            value: b"v".to_vec(),
        },
        Command::HMSet {
            key: k(),
            pairs: pairs(),
        },
        Command::HGet {
            key: k(),
            field: f(),
        },
        Command::HMGet {
            key: k(),
            fields: vec![f(), b"g".to_vec()],
        },
        Command::HDel {
            key: k(),
            fields: vec![f()],
        },
        Command::HGetAll { key: k() },
        Command::HKeys { key: k() },
        Command::HVals { key: k() },
        Command::HLen { key: k() },
        Command::HExists {
            key: k(),
            field: f(),
        },
        Command::HStrLen {
            key: k(),
            field: f(),
        },
        Command::HIncrBy {
            key: k(),
            field: f(),
            increment: -2,
        },
        Command::HIncrByFloat {
            key: k(),
            field: f(),
            increment: b"1e3".to_vec(),
        },
        Command::HScan {
            key: k(),
            cursor: 7,
            pattern: Some(b"?".to_vec()),
            count: 2,
        },
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
        // A pipelining client's write 1000 while it still waits for write 1.
        Request {
            session: Some(SessionRequest {
                client_id: 5,
                sequence: 1000,
                lowest_unanswered: 1,
                resubmitted: false,
                proposed_after: 0,
            }),
            command: Command::Incr { key: b"n".to_vec() },
        },
        // The same client's write 1000 sent again by its node (flag 2), waiting for 990, first
        // sent when its node knew index 300 committed.
        Request {
            session: Some(SessionRequest {
                client_id: 5,
                sequence: 1000,
                lowest_unanswered: 990,
                resubmitted: true,
                proposed_after: 300,
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
        Reply::NilArray,
        Reply::Simple("PONG".into()),
    ]
}

/// [`store_v2`] and a hash of two fields, one of them empty.
fn store() -> StateMachine {
    let mut kv = store_v2();
    let hset = Command::HSet {
        key: b"h".to_vec(),
        pairs: vec![
            (b"g".to_vec(), b"".to_vec()),
            (b"f".to_vec(), b"v".to_vec()),
        ],
    };
    kv.apply_at(5, Some(1_001), hset, None);
    kv
}

/// A store with three keys, one with a deadline, at a log time, and a client session that
/// remembers an integer reply.
fn store_v2() -> StateMachine {
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

/// [`commands`] then [`commands_v2`], as version 2 wrote them.
const COMMANDS_V2_HEX: &[&str] = &[
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

/// [`commands`], [`commands_v2`] then [`commands_v3`], as version 3 writes them.
const COMMANDS_HEX: &[&str] = &[
    "0301016b",
    "0302036b65790576616c756501",
    "030302016100",
    "0304010161",
    "0305016e",
    "0306016ed704",
    "0307016e",
    "03080201610162",
    "0309010161820107070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707070707",
    "030a016301036f6c64036e6577",
    "030a01630000",
    "030b",
    "030c016b0176010200b81701",
    "030c016b0176000100",
    "030d016b0176",
    "030e016b020101",
    "030e016b00",
    "030f016b",
    "0310016b007f05",
    "0311016b",
    "0312016b00",
    "0313016b01",
    "0314016b",
    "033c02016b01ac02016e0002070302016b017600040305016e",
    "0315016b",
    "0316016b016e",
    "0317016b016e",
    "0318016b",
    "0319016b0176",
    "031a016b01feffffffffffffffff01",
    "031b016bac020176",
    "031c016b03302e35",
    "031d0201660176016700",
    "031e",
    "031fffffffffffffffffff01",
    "0320012a",
    "032100000a00",
    "0321808080808080808080010102612a01010468617368",
    "0322016b0201660176016700",
    "0323016b01660176",
    "0324016b0201660176016700",
    "0325016b0166",
    "0326016b0201660167",
    "0327016b010166",
    "0328016b",
    "0329016b",
    "032a016b",
    "032b016b",
    "032c016b0166",
    "032d016b0166",
    "032e016b016603",
    "032f016b016603316533",
    "0330016b0701013f02",
];

/// [`requests`] with commands of version 1.
const REQUESTS_V1_HEX: &[&str] = &["01000102016b017602", "0101ac02ffffffffffffffffff010105016e"];

/// [`requests`] as request version 1 wrote them, with commands of version 2.
const REQUESTS_V2_HEX: &[&str] = &["01000202016b017602", "0101ac02ffffffffffffffffff010205016e"];

/// [`requests`] as request version 1 wrote them (no lowest unanswered sequence), with
/// commands of version 3.
const REQUESTS_V1_V3_COMMANDS_HEX: &[&str] =
    &["01000302016b017602", "0101ac02ffffffffffffffffff010305016e"];

/// [`requests`] as request version 2 wrote them (no index proposed after), with commands of
/// version 3.
const REQUESTS_V2_V3_COMMANDS_HEX: &[&str] = &[
    "02000302016b017602",
    "0201ac02ffffffffffffffffff01000305016e",
    "020105e807e7070305016e",
    "020205e8070a0305016e",
];

/// [`requests`]: version, session flag (and the session as varints: client id, sequence,
/// how far below it the lowest unanswered sequence is, and the commit index it was proposed
/// after — 300 is `ac 02`), then the command.
const REQUESTS_HEX: &[&str] = &[
    "03000302016b017602",
    "0301ac02ffffffffffffffffff0100000305016e",
    "030105e807e707000305016e",
    "030205e8070aac020305016e",
];

/// [`replies`]: a tag, then the fields (zigzag varints for integers).
const REPLIES_HEX: &[&str] = &[
    "00",
    "01",
    "020462756c6b",
    "03ffffffffffffffffff01",
    "0403020178010301",
    "0506455252206e6f",
    "06",
    "0704504f4e47",
];

/// [`store_v1`]'s snapshot as version 1 wrote it: magic, version, applied index, the keys in
/// order, the session with its reply, then the CRC-32C (little-endian).
const SNAPSHOT_V1_HEX: &str = "534b565301030201610132016201320109010303043128e975";

/// [`store_v2`]'s snapshot as version 2 wrote it: magic, version, applied index, log time,
/// the keys in order with value, revision and deadline (plus one), the session with its
/// reply, then the CRC-32C.
const SNAPSHOT_V2_HEX: &str =
    "534b56530204e807030161013203000162013201000163013304dd0b010901030304d16b8cb9";

/// [`store`]'s snapshot as version 3 wrote it: as version 2, each value a type tag (0
/// string, 1 hash) then a byte string or the hash's field count and fields in order.
const SNAPSHOT_V3_HEX: &str =
    "534b56530305e907040161000132030001620001320100016300013304dd0b016801020166017601670005000109010303049cd1f672";

/// [`store`]'s snapshot as version 4 wrote it: as version 3, but the sessions open with the
/// index through which the table forgot sessions (`00`, none), and each session is its
/// window's floor, its last active index and log time, then a count and its replies by
/// sequence.
const SNAPSHOT_V4_HEX: &str =
    "534b56530405e907040161000132030001620001320100016300013304dd0b01680102016601760167000500000109010300010103049d61987e";

/// [`store`]'s snapshot: as version 4, but the keys in the store's own order, by scan hash
/// and then bytes (here `c`, `a`, `b`, `h`), where version 4 sorted them by their bytes.
const SNAPSHOT_HEX: &str =
    "534b56530505e90704016300013304dd0b01610001320300016200013201000168010201660176016700050000010901030001010304176753a1";

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
    let all = commands()
        .into_iter()
        .chain(commands_v2())
        .chain(commands_v3_exec())
        .chain(commands_v3())
        .collect();
    keep_their_bytes(all, COMMANDS_HEX, Command::encode, Command::decode);
}

/// Commands, requests and snapshots of version 2 read as they did; a version 2 command
/// names only opcodes 1 to 20.
#[test]
fn version_2_bytes_still_read() {
    let v2 = commands().into_iter().chain(commands_v2());
    for (command, hex) in v2.zip(COMMANDS_V2_HEX) {
        assert_eq!(Command::decode(&from_hex(hex)), Ok(command));
    }
    for (request, hex) in requests().into_iter().zip(REQUESTS_V2_HEX) {
        assert_eq!(Request::decode(&from_hex(hex)), Ok(request));
    }
    let restored =
        StateMachine::restore(KvConfig::default(), &from_hex(SNAPSHOT_V2_HEX)).expect("restores");
    assert_restored_as(&restored, &store_v2());
    let mut type_command = Command::Type { key: b"k".to_vec() }.encode();
    type_command[0] = 2;
    assert!(matches!(
        Command::decode(&type_command),
        Err(KvError::UnknownTag { tag: 21, .. })
    ));
    let mut exec = commands_v3_exec()[0].encode();
    exec[0] = 2;
    assert!(matches!(
        Command::decode(&exec),
        Err(KvError::UnknownTag { tag: 60, .. })
    ));
}

#[test]
fn requests_keep_their_bytes() {
    keep_their_bytes(requests(), REQUESTS_HEX, Request::encode, Request::decode);
}

/// Requests of version 2 read as the same requests proposed after index 0: a re-sent copy
/// of a client the store does not know then never starts a session, as in version 2.
#[test]
fn version_2_requests_read_as_proposed_after_nothing() {
    for (mut request, hex) in requests().into_iter().zip(REQUESTS_V2_V3_COMMANDS_HEX) {
        if let Some(session) = request.session.as_mut() {
            session.proposed_after = 0;
        }
        assert_eq!(Request::decode(&from_hex(hex)), Ok(request));
    }
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

/// Requests of version 1 with commands of version 3 and a version 3 snapshot read as the
/// same values: the snapshot's one reply per session becomes a window of one, whose floor
/// is that reply's sequence.
#[test]
fn version_3_bytes_still_read() {
    for (request, hex) in requests().into_iter().zip(REQUESTS_V1_V3_COMMANDS_HEX) {
        assert_eq!(Request::decode(&from_hex(hex)), Ok(request));
    }
    let restored =
        StateMachine::restore(KvConfig::default(), &from_hex(SNAPSHOT_V3_HEX)).expect("restores");
    assert_restored_as(&restored, &store());
}

/// A version 4 snapshot, its keys in byte order, reads as the same store; the same bytes
/// labelled version 5 are refused, since version 5 lists keys by scan hash (a snapshot whose
/// keys are out of its version's order could hold a key twice).
#[test]
fn version_4_bytes_still_read_and_only_as_version_4() {
    let v4 = from_hex(SNAPSHOT_V4_HEX);
    let restored = StateMachine::restore(KvConfig::default(), &v4).expect("restores");
    assert_eq!(restored, store());
    assert_eq!(
        restored.snapshot(),
        from_hex(SNAPSHOT_HEX),
        "written as version 5"
    );

    let mut relabelled = v4;
    relabelled[4] = 5;
    let body = relabelled.len() - 4;
    let checksum = crc32c::crc32c(&relabelled[..body]);
    relabelled[body..].copy_from_slice(&checksum.to_le_bytes());
    assert_eq!(
        StateMachine::restore(KvConfig::default(), &relabelled),
        Err(KvError::InvalidSnapshot("keys are not in increasing order"))
    );
}

/// A version 5 snapshot that lists one key twice, in place (the same scan hash and bytes
/// one after the other), is refused: a key is never in a store twice.
#[test]
fn a_key_listed_twice_is_refused() {
    // The golden snapshot's first key, `c` (`01 63`, a string `00 01 33`, revision `04`,
    // deadline `dd 0b`), written once more right after it, and the count raised to five.
    let golden = from_hex(SNAPSHOT_HEX);
    let first_key = from_hex("016300013304dd0b");
    let at = golden
        .windows(first_key.len())
        .position(|w| w == first_key.as_slice())
        .expect("the first key");
    assert_eq!(golden[at - 1], 4, "the key count");
    let mut twice = golden[..at - 1].to_vec();
    twice.push(5);
    twice.extend_from_slice(&first_key);
    twice.extend_from_slice(&golden[at..golden.len() - 4]);
    let checksum = crc32c::crc32c(&twice);
    twice.extend_from_slice(&checksum.to_le_bytes());
    assert_eq!(
        StateMachine::restore(KvConfig::default(), &twice),
        Err(KvError::InvalidSnapshot("keys are not in increasing order"))
    );
}

/// `restored`, from a snapshot older than version 4, holds `expected`'s keys, log time and
/// sessions, except that a session's last activity in log time, which those versions did
/// not keep, is the snapshot's log time (never sooner idle than it was).
fn assert_restored_as(restored: &StateMachine, expected: &StateMachine) {
    let keys = Command::Keys {
        pattern: b"*".to_vec(),
    };
    assert_eq!(restored.read(&keys), expected.read(&keys));
    let Reply::Array(keys) = expected.read(&keys) else {
        panic!("KEYS answers an array");
    };
    for key in keys {
        let Reply::Bulk(key) = key else {
            panic!("a key is a bulk string");
        };
        for read in [
            Command::Get { key: key.clone() },
            Command::HGetAll { key: key.clone() },
        ] {
            assert_eq!(restored.read(&read), expected.read(&read));
        }
        assert_eq!(restored.revision(&key), expected.revision(&key));
        assert_eq!(restored.deadline_ms(&key), expected.deadline_ms(&key));
    }
    assert_eq!(restored.applied_index(), expected.applied_index());
    assert_eq!(restored.log_time_ms(), expected.log_time_ms());
    let sessions: Vec<_> = expected.sessions().map(|(id, _)| id).collect();
    assert_eq!(
        restored.sessions().map(|(id, _)| id).collect::<Vec<_>>(),
        sessions
    );
    for id in sessions {
        let (mut got, want) = (restored.session(id).unwrap().clone(), expected.session(id));
        assert_eq!(got.last_active_ms, restored.log_time_ms());
        got.last_active_ms = want.unwrap().last_active_ms;
        assert_eq!(Some(&got), want);
    }
}

/// A format version this build does not read is refused the same way in a command, a request
/// and a snapshot: as unsupported, naming what was read and the version found, whatever
/// follows it.
#[test]
fn unknown_format_versions_are_refused_alike() {
    for version in [0u8, 6, 0x7f, 0x80, 0xff] {
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
