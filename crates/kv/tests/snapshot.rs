//! Snapshots: byte-identical round trips, determinism, and typed errors for damaged bytes.

mod common;

use common::*;
use proptest::prelude::*;
use skiff_kv::{
    Command, Deadline, KvConfig, KvError, SessionRequest, StateMachine, SNAPSHOT_FORMAT_VERSION,
    SNAPSHOT_MAGIC,
};

fn populated() -> Kv {
    let mut kv = Kv::new();
    kv.apply(set("b", "2"));
    kv.apply(set("a", "1"));
    kv.apply_session(5, 1, incr("n"));
    kv.apply_session(
        6,
        1,
        Command::MGet {
            keys: keys(&["a", "zz"]),
        },
    );
    kv.apply_session(7, 1, incr("a"));
    kv.apply(Command::Set {
        key: vec![0, 255],
        value: vec![7; 300],
        condition: Default::default(),
    });
    kv.apply_session(8, 1, set("a", "text"));
    kv.apply_session(8, 2, incr("a"));
    kv
}

/// A snapshot restored and taken again gives the same bytes, and the restored store equals
/// the original: data, sessions (with their replies) and applied index.
#[test]
fn snapshot_round_trip_is_byte_identical() {
    let kv = populated();
    let bytes = kv.machine.snapshot();
    let restored = StateMachine::restore(KvConfig::default(), &bytes).expect("restore");
    assert_eq!(restored, kv.machine);
    assert_eq!(restored.snapshot(), bytes);
    assert_eq!(restored.applied_index(), 8);
    assert!(restored
        .session(8)
        .is_some_and(|s| s.replies.values().all(skiff_kv::Reply::is_error)));
}

/// The same state reached in a different order of inserts (in one entry, so every key has
/// the same revision) gives the same snapshot bytes.
#[test]
fn snapshot_is_deterministic() {
    let mut one = Kv::new();
    let mut two = Kv::new();
    let pairs = |keys: [&str; 3]| Command::MSet {
        pairs: keys
            .iter()
            .map(|k| (k.as_bytes().to_vec(), k.as_bytes().to_vec()))
            .collect(),
    };
    one.apply(pairs(["x", "y", "z"]));
    two.apply(pairs(["z", "y", "x"]));
    assert_eq!(one.machine.snapshot(), two.machine.snapshot());
}

/// A store large enough to be split by hash into the most slices (16,384, past 65,536 keys),
/// with keys on both sides of the length kept inside a key's slot (23 to 26 bytes, and one
/// empty key), written in
/// the reverse of the order a snapshot lists them: its snapshot restores to an equal store
/// that gives the same bytes, and a snapshot truncated inside the key list or with a key's
/// byte flipped is refused with a typed error.
#[test]
fn a_store_split_by_hash_round_trips_and_damage_inside_it_is_refused() {
    let mut kv = Kv::new();
    let keys: Vec<Vec<u8>> = (0..140_000usize)
        .map(|i| format!("{i:0width$}", width = 23 + i % 4).into_bytes())
        .chain([Vec::new()])
        .collect();
    for chunk in keys.rchunks(10_000) {
        kv.apply(Command::MSet {
            pairs: chunk.iter().map(|k| (k.clone(), k.clone())).collect(),
        });
    }
    assert_eq!(kv.machine.len(), keys.len());
    let bytes = kv.machine.snapshot();
    let restored = StateMachine::restore(KvConfig::default(), &bytes).expect("restore");
    assert_eq!(restored, kv.machine);
    assert_eq!(restored.snapshot(), bytes);
    assert_eq!(
        restored.get(b"00000000000000000000012"),
        Some(&b"00000000000000000000012"[..])
    );
    assert_eq!(restored.get(b""), Some(&b""[..]));

    let cut = StateMachine::restore(KvConfig::default(), &bytes[..bytes.len() / 2]);
    assert!(cut.is_err(), "a snapshot cut in half restored");
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    assert!(
        matches!(
            StateMachine::restore(KvConfig::default(), &flipped),
            Err(KvError::ChecksumMismatch { .. })
        ),
        "a flipped byte was not caught by the checksum"
    );
}

/// An empty store's snapshot restores to an empty store.
#[test]
fn empty_snapshot_round_trips() {
    let machine = StateMachine::new(KvConfig::default()).expect("config");
    let restored =
        StateMachine::restore(KvConfig::default(), &machine.snapshot()).expect("restore");
    assert_eq!(restored, machine);
}

/// Every proper prefix of a snapshot is refused with a typed error.
#[test]
fn truncated_snapshot_is_refused() {
    let bytes = populated().machine.snapshot();
    for len in 0..bytes.len() {
        assert!(
            StateMachine::restore(KvConfig::default(), &bytes[..len]).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
    assert_eq!(
        StateMachine::restore(KvConfig::default(), &[]),
        Err(KvError::Empty {
            what: skiff_kv::Encoded::Snapshot
        })
    );
}

/// Every single flipped bit is caught: by the magic check or the checksum.
#[test]
fn flipped_bit_in_snapshot_is_refused() {
    let bytes = populated().machine.snapshot();
    for bit in 0..bytes.len() * 8 {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        let result = StateMachine::restore(KvConfig::default(), &damaged);
        assert!(
            matches!(
                result,
                Err(KvError::BadMagic | KvError::ChecksumMismatch { .. })
            ),
            "bit {bit}: {result:?}"
        );
    }
}

/// Bytes that are not a snapshot are refused as such.
#[test]
fn foreign_bytes_are_not_a_snapshot() {
    assert_eq!(
        StateMachine::restore(KvConfig::default(), b"*1\r\n$4\r\nPING\r\n"),
        Err(KvError::BadMagic)
    );
}

/// A well-checksummed snapshot that breaks the format's rules (keys out of order, trailing
/// bytes, another version) is refused with a typed error.
#[test]
fn checksummed_but_invalid_snapshot_is_refused() {
    let seal = |body: &[u8]| {
        let mut bytes = body.to_vec();
        bytes.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
        bytes
    };
    let header = |version: u8| {
        let mut h = SNAPSHOT_MAGIC.to_vec();
        h.push(version);
        h
    };
    let restore = |body: &[u8]| StateMachine::restore(KvConfig::default(), &seal(body));

    // applied 0, keys "b" then "a", no sessions.
    let mut out_of_order = header(1);
    out_of_order.extend_from_slice(&[0, 2, 1, b'b', 0, 1, b'a', 0, 0]);
    assert!(matches!(
        restore(&out_of_order),
        Err(KvError::InvalidSnapshot(_))
    ));

    let mut trailing = header(1);
    trailing.extend_from_slice(&[0, 0, 0, 99]);
    assert!(matches!(
        restore(&trailing),
        Err(KvError::TrailingBytes { .. })
    ));

    let mut future = header(6);
    future.extend_from_slice(&[0, 0, 0]);
    assert!(matches!(
        restore(&future),
        Err(KvError::UnsupportedVersion { version: 6, .. })
    ));

    // Version 3, applied 3, log time 10, key "h": a value type that does not exist, a hash
    // with no field, a hash whose fields are out of order.
    let hash_snapshot = |value: &[u8]| {
        let mut body = header(3);
        body.extend_from_slice(&[3, 10, 1, 1, b'h']);
        body.extend_from_slice(value);
        body.extend_from_slice(&[2, 0, 0]);
        body
    };
    assert!(matches!(
        restore(&hash_snapshot(&[7, 0])),
        Err(KvError::UnknownTag {
            field: "value type",
            tag: 7,
            ..
        })
    ));
    assert_eq!(
        restore(&hash_snapshot(&[1, 0])),
        Err(KvError::InvalidSnapshot("a hash has no field"))
    );
    assert_eq!(
        restore(&hash_snapshot(&[1, 2, 1, b'g', 0, 1, b'f', 0])),
        Err(KvError::InvalidSnapshot(
            "hash fields are not in increasing order"
        ))
    );
    // A hash of more fields than max_hash_fields (2 here), which no write could make: its
    // count is checked before any field is read, so a hostile count allocates nothing.
    let two_fields = StateMachine::restore(
        KvConfig {
            max_hash_fields: 2,
            ..KvConfig::default()
        },
        &seal(&hash_snapshot(&[1, 3, 1, b'f', 0, 1, b'g', 0, 1, b'h', 0])),
    );
    assert_eq!(
        two_fields,
        Err(KvError::InvalidSnapshot(
            "a hash has more fields than max_hash_fields"
        ))
    );
    let restored =
        restore(&hash_snapshot(&[1, 2, 1, b'f', 1, b'1', 1, b'g', 0])).expect("a well-formed hash");
    assert_eq!(restored.hash_get(b"h", b"f"), Some(&b"1"[..]));
    assert_eq!(restored.hash_get(b"h", b"g"), Some(&b""[..]));
    assert_eq!(restored.get(b"h"), None);

    // Version 4, applied 5, log time 0, no keys, no session forgotten, one session (client 7,
    // floor 2, active at 5, log time 0) whose window is empty, reaches below its floor, or is
    // out of order.
    for (window, error) in [
        (vec![0], "a session's replies are empty or below its window"),
        (
            vec![1, 1, 0],
            "a session's replies are empty or below its window",
        ),
        (
            vec![2, 3, 0, 2, 0],
            "a session's sequences are not in increasing order",
        ),
        // The same sequence twice, and an order broken only at the end of the window.
        (
            vec![2, 2, 0, 2, 0],
            "a session's sequences are not in increasing order",
        ),
        (
            vec![3, 2, 0, 4, 0, 3, 0],
            "a session's sequences are not in increasing order",
        ),
    ] {
        let mut session = header(4);
        session.extend_from_slice(&[5, 0, 0, 0, 1, 7, 2, 5, 0]);
        session.extend_from_slice(&window);
        assert_eq!(restore(&session), Err(KvError::InvalidSnapshot(error)));
    }
    // A window claiming billions of replies in a few bytes is refused, not reserved for.
    let mut claims = header(4);
    claims.extend_from_slice(&[
        5, 0, 0, 0, 1, 7, 2, 5, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 2, 0,
    ]);
    assert!(matches!(
        restore(&claims),
        Err(KvError::Truncated { .. }) | Err(KvError::InvalidSnapshot(_))
    ));
    // The same session with the replies of sequences 2 and 3 is restored.
    let mut session = header(4);
    session.extend_from_slice(&[5, 0, 0, 0, 1, 7, 2, 5, 0, 2, 2, 0, 3, 1]);
    let restored = restore(&session).expect("a well-formed window");
    // A session active after the snapshot's log time, or two whose activity goes back in
    // log time along the log, is refused.
    let mut ahead = header(4);
    ahead.extend_from_slice(&[5, 0, 0, 0, 1, 7, 2, 5, 1, 1, 2, 0]);
    assert_eq!(
        restore(&ahead),
        Err(KvError::InvalidSnapshot(
            "a session is active after the log time"
        ))
    );
    let mut back_in_time = header(4);
    back_in_time.extend_from_slice(&[5, 9, 0, 0, 2, 7, 2, 5, 1, 1, 2, 0, 8, 2, 4, 2, 1, 2, 0]);
    assert_eq!(
        restore(&back_in_time),
        Err(KvError::InvalidSnapshot(
            "sessions active later in the log are active earlier in log time"
        ))
    );
    let kept = restored.session(7).expect("the session");
    assert_eq!(kept.lowest_kept, 2);
    assert_eq!(kept.last_sequence(), 3);
    // A table that says it forgot a session active after the snapshot's applied index.
    let mut forgot_ahead = header(4);
    forgot_ahead.extend_from_slice(&[5, 0, 0, 6, 0]);
    assert_eq!(
        restore(&forgot_ahead),
        Err(KvError::InvalidSnapshot(
            "a session was forgotten after the applied index"
        ))
    );
    forgot_ahead[8] = 5;
    let forgot = restore(&forgot_ahead).expect("forgotten through the applied index");
    assert_eq!(forgot.sessions_forgotten_through(), 5);

    // Version 2, applied 3, log time 10: key "a" written at index 4 > 3.
    let mut written_ahead = header(2);
    written_ahead.extend_from_slice(&[3, 10, 1, 1, b'a', 0, 4, 0, 0]);
    assert_eq!(
        restore(&written_ahead),
        Err(KvError::InvalidSnapshot(
            "a key was written after the applied index"
        ))
    );

    // Version 2, applied 3, log time 10: key "a" due at 10 (stored as 11), still held.
    let mut held_past_deadline = header(2);
    held_past_deadline.extend_from_slice(&[3, 10, 1, 1, b'a', 0, 2, 11, 0]);
    assert_eq!(
        restore(&held_past_deadline),
        Err(KvError::InvalidSnapshot("a key is held past its deadline"))
    );
    // The same key due at 11 is held.
    held_past_deadline[12] = 12;
    let restored = restore(&held_past_deadline).expect("a deadline after the log time");
    assert_eq!(restored.deadline_ms(b"a"), Some(11));
    assert_eq!(restored.revision(b"a"), Some(2));

    // applied 3, no keys, one session active at index 9 > 3.
    let mut session_ahead = header(1);
    session_ahead.extend_from_slice(&[3, 0, 1, 1, 1, 9, 0]);
    assert!(matches!(
        restore(&session_ahead),
        Err(KvError::InvalidSnapshot(_))
    ));

    // applied 9, two sessions both active at index 4.
    let mut shared_index = header(1);
    shared_index.extend_from_slice(&[9, 0, 2, 1, 1, 4, 0, 2, 1, 4, 0]);
    assert!(matches!(
        restore(&shared_index),
        Err(KvError::InvalidSnapshot(_))
    ));

    // A key count far beyond the bytes present.
    let mut huge_count = header(1);
    huge_count.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(
        restore(&huge_count),
        Err(KvError::Truncated { .. })
    ));
}

proptest! {
    /// Restoring arbitrary bytes never panics, with or without a valid magic and checksum.
    #[test]
    fn restoring_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = StateMachine::restore(KvConfig::default(), &body);
        let mut sealed = SNAPSHOT_MAGIC.to_vec();
        sealed.push(1);
        sealed.extend_from_slice(&body);
        let crc = crc32c::crc32c(&sealed);
        sealed.extend_from_slice(&crc.to_le_bytes());
        if let Ok(machine) = StateMachine::restore(KvConfig::default(), &sealed) {
            // Whatever decodes is canonical: it snapshots back to the same bytes.
            prop_assert_eq!(machine.snapshot(), sealed);
        }
    }
}

/// Written after a caller's header, the snapshot is the same bytes, checksum included.
#[test]
fn a_snapshot_written_after_a_header_is_the_same_bytes() {
    let kv = populated();
    let mut out = b"HEADER".to_vec();
    kv.machine.snapshot_into(&mut out);
    assert_eq!(&out[..6], b"HEADER");
    assert_eq!(&out[6..], &kv.machine.snapshot()[..]);
    let restored = StateMachine::restore(KvConfig::default(), &out[6..]).expect("restore");
    assert_eq!(restored, kv.machine);
}

/// A store frozen for a snapshot keeps the state of its applied index while the live store
/// goes on: keys overwritten, deleted and added, hash fields changed, deadlines set, moved
/// and passed, sessions advanced and opened. Serialized afterwards, the frozen copy gives
/// exactly the bytes an in-line snapshot gave at the freeze (checksum included),
/// and restores to the store as it was.
#[test]
fn a_frozen_store_serializes_to_the_bytes_of_its_index_whatever_is_applied_after() {
    const T0: u64 = 1_700_000_000_000;
    let mut kv = populated();
    let at = |kv: &mut Kv, ms: u64, command: Command, session: Option<SessionRequest>| {
        let index = kv.next_index;
        kv.next_index += 1;
        kv.machine.apply_at(index, Some(T0 + ms), command, session)
    };
    let expire_in = |key: &str, ms: i64| Command::Expire {
        key: b(key),
        deadline: Deadline::In(ms),
        condition: Default::default(),
    };
    let hset = |key: &str, pairs: &[(&str, &str)]| Command::HSet {
        key: b(key),
        pairs: pairs.iter().map(|(f, v)| (b(f), b(v))).collect(),
    };
    at(&mut kv, 0, hset("h", &[("f1", "v1"), ("f2", "v2")]), None);
    at(&mut kv, 1, set("soon", "x"), None);
    at(&mut kv, 2, expire_in("soon", 1_000), None);
    at(&mut kv, 3, set("later", "y"), None);
    at(&mut kv, 4, expire_in("later", 60_000), None);
    let pipelined = |sequence| {
        Some(SessionRequest {
            lowest_unanswered: 1,
            ..SessionRequest::sequential(9, sequence)
        })
    };
    for sequence in 1..=3 {
        at(&mut kv, 5, incr("counter"), pipelined(sequence));
    }
    let inline = kv.machine.snapshot();
    let before = kv.machine.clone();
    assert!(before.session(9).is_some_and(|s| s.replies.len() == 3));
    assert!(before.deadline_ms(b"soon").is_some());

    let frozen = kv.machine.freeze();
    assert_eq!(frozen.applied_index(), before.applied_index());
    at(&mut kv, 10, set("a", "overwritten"), None);
    at(&mut kv, 11, Command::Del { keys: keys(&["b"]) }, None);
    at(
        &mut kv,
        12,
        hset("h", &[("f1", "changed"), ("f3", "new")]),
        None,
    );
    at(&mut kv, 13, expire_in("later", 5), None);
    at(&mut kv, 2_000, set("fresh", "z"), None); // "soon" expires at this log time
    for sequence in 4..=6 {
        at(&mut kv, 2_001, incr("counter"), pipelined(sequence));
    }
    at(
        &mut kv,
        2_002,
        incr("counter"),
        Some(SessionRequest::sequential(10, 1)),
    );
    assert_ne!(kv.machine, before, "the live store moved on");
    assert_eq!(kv.machine.get(b"soon"), None);

    let mut off_thread = Vec::new();
    frozen.snapshot_into(&mut off_thread);
    assert_eq!(off_thread, inline, "the bytes of the freeze's index");
    assert_eq!(off_thread[SNAPSHOT_MAGIC.len()], SNAPSHOT_FORMAT_VERSION);
    let restored = StateMachine::restore(KvConfig::default(), &off_thread).expect("restore");
    assert_eq!(restored, before);
}

/// Streamed a chunk at a time (to a file, never held whole), a frozen store writes the same
/// bytes as in one buffer, for a store many chunks long; a sink that fails stops it with
/// that error.
#[test]
fn a_frozen_store_streams_the_bytes_it_would_append() {
    let mut kv = populated();
    for i in 0..2_000 {
        kv.apply(set(&format!("key:{i:05}"), &"v".repeat(500)));
    }
    kv.apply_session(5, 2, incr("n"));
    let frozen = kv.machine.freeze();
    let mut streamed = Vec::new();
    frozen.write_snapshot(&mut streamed).expect("into memory");
    assert!(streamed.len() > 1_000_000, "several chunks");
    assert_eq!(streamed, kv.machine.snapshot());

    struct Full(usize);
    impl std::io::Write for Full {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.0 < bytes.len() {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let error = frozen
        .write_snapshot(&mut Full(300_000))
        .expect_err("the sink fills up");
    assert_eq!(error.to_string(), "disk full");
}
