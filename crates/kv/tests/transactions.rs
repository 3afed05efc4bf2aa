//! `MULTI … EXEC` as one entry: `WATCH`'s check by revision (changed, unchanged, expired,
//! absent), run-time errors inside, the reply bound, and the decoding of hostile bytes
//! (nesting, counts, versions).

use skiff_kv::{
    Command, Deadline, Encoded, ExpireCondition, KvConfig, KvError, Reply, SetCondition,
    StateMachine, Transaction, Watched,
};

const T0: u64 = 1_000_000;

/// A store driven entry by entry, each stamped with a log time.
struct Store {
    kv: StateMachine,
    index: u64,
}

impl Store {
    fn with(config: KvConfig) -> Store {
        Store {
            kv: StateMachine::new(config).expect("valid config"),
            index: 0,
        }
    }

    fn new() -> Store {
        Store::with(KvConfig::default())
    }

    fn at(&mut self, at: u64, command: Command) -> Reply {
        self.index += 1;
        self.kv.apply_at(self.index, Some(at), command, None)
    }

    fn apply(&mut self, command: Command) -> Reply {
        self.at(T0, command)
    }

    /// What `WATCH key` would record now.
    fn watch(&self, key: &str) -> Watched {
        Watched {
            key: key.as_bytes().to_vec(),
            revision: self.kv.revision(key.as_bytes()),
        }
    }
}

fn set(key: &str, value: &str) -> Command {
    Command::Set {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        condition: SetCondition::Always,
    }
}

fn get(key: &str) -> Command {
    Command::Get {
        key: key.as_bytes().to_vec(),
    }
}

fn incr(key: &str) -> Command {
    Command::Incr {
        key: key.as_bytes().to_vec(),
    }
}

fn exec(watched: Vec<Watched>, commands: Vec<Command>) -> Command {
    Command::Exec(Transaction { watched, commands })
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(text.as_bytes().to_vec())
}

#[test]
fn an_unchanged_watched_key_lets_the_queued_commands_run_in_order_as_one_entry() {
    let mut store = Store::new();
    store.apply(set("n", "1"));
    let watched = vec![store.watch("n"), store.watch("missing")];
    // Writes to other keys do not matter.
    store.apply(set("other", "x"));
    let reply = store.apply(exec(
        watched,
        vec![incr("n"), get("n"), set("m", "v"), get("m")],
    ));
    assert_eq!(
        reply,
        Reply::Array(vec![Reply::Integer(2), bulk("2"), Reply::Ok, bulk("v")])
    );
    // Every write of the entry has the entry's index as its revision.
    assert_eq!(store.kv.revision(b"n"), Some(store.index));
    assert_eq!(store.kv.revision(b"m"), Some(store.index));
}

#[test]
fn a_watched_key_written_after_watch_aborts_and_nothing_runs() {
    let mut store = Store::new();
    store.apply(set("n", "1"));
    let watched = vec![store.watch("n")];
    // The same value again is still a write: Redis aborts too.
    store.apply(set("n", "1"));
    let reply = store.apply(exec(watched, vec![set("n", "100"), set("m", "v")]));
    assert_eq!(reply, Reply::NilArray);
    assert_eq!(store.kv.get(b"n"), Some(&b"1"[..]));
    assert_eq!(store.kv.get(b"m"), None);
}

#[test]
fn a_watched_key_created_or_deleted_since_watch_aborts() {
    let mut store = Store::new();
    store.apply(set("present", "1"));
    let watched = vec![store.watch("present")];
    store.apply(Command::Del {
        keys: vec![b"present".to_vec()],
    });
    assert_eq!(
        store.apply(exec(watched, vec![set("m", "v")])),
        Reply::NilArray
    );

    let watched = vec![store.watch("absent")];
    store.apply(set("absent", "now here"));
    assert_eq!(
        store.apply(exec(watched, vec![set("m", "v")])),
        Reply::NilArray
    );
    assert_eq!(store.kv.get(b"m"), None);
}

#[test]
fn a_watched_key_that_expires_before_exec_aborts() {
    let mut store = Store::new();
    store.at(T0, set("lease", "me"));
    store.at(
        T0,
        Command::Expire {
            key: b"lease".to_vec(),
            deadline: Deadline::In(1000),
            condition: ExpireCondition::Always,
        },
    );
    let watched = vec![store.watch("lease")];
    // An EXEC stamped before the deadline runs...
    assert_eq!(
        store.at(T0 + 999, exec(watched.clone(), vec![get("lease")])),
        Reply::Array(vec![bulk("me")])
    );
    // ...one stamped at it finds the key gone: changed.
    assert_eq!(
        store.at(T0 + 1000, exec(watched, vec![set("lease", "mine")])),
        Reply::NilArray
    );
    assert_eq!(store.kv.get(b"lease"), None);
}

/// The one difference from Redis that revisions cannot see: a key absent at WATCH, created and
/// deleted again before EXEC, is absent both times.
#[test]
fn a_key_absent_at_watch_and_absent_at_exec_does_not_abort() {
    let mut store = Store::new();
    let watched = vec![store.watch("k")];
    store.apply(set("k", "brief"));
    store.apply(Command::Del {
        keys: vec![b"k".to_vec()],
    });
    assert_eq!(
        store.apply(exec(watched, vec![set("m", "v")])),
        Reply::Array(vec![Reply::Ok])
    );
}

#[test]
fn run_time_errors_answer_for_their_own_command_and_the_others_still_apply() {
    let mut store = Store::new();
    store.apply(set("text", "not a number"));
    let reply = store.apply(exec(
        vec![],
        vec![
            set("a", "1"),
            incr("text"),
            Command::Del { keys: vec![] },
            incr("a"),
        ],
    ));
    assert_eq!(
        reply,
        Reply::Array(vec![
            Reply::Ok,
            Reply::error("ERR value is not an integer or out of range"),
            Reply::error("ERR wrong number of arguments for 'del' command"),
            Reply::Integer(2),
        ])
    );
    assert_eq!(store.kv.get(b"a"), Some(&b"2"[..]));
}

#[test]
fn an_empty_transaction_answers_an_empty_array() {
    let mut store = Store::new();
    assert_eq!(store.apply(exec(vec![], vec![])), Reply::Array(vec![]));
}

#[test]
fn a_transaction_built_with_a_transaction_inside_runs_the_rest_but_not_the_inner_one() {
    let mut store = Store::new();
    let inner = exec(vec![], vec![set("inner", "1")]);
    let reply = store.apply(exec(vec![], vec![inner, set("outer", "1")]));
    let Reply::Array(replies) = reply else {
        panic!("an array")
    };
    assert!(replies[0].is_error(), "{replies:?}");
    assert_eq!(replies[1], Reply::Ok);
    assert_eq!(store.kv.get(b"inner"), None);
}

#[test]
fn the_values_a_transaction_reads_are_held_to_the_reply_limit() {
    let mut store = Store::with(KvConfig {
        max_value_bytes: 100,
        max_reply_bytes: 250,
        ..KvConfig::default()
    });
    store.apply(set("big", &"x".repeat(100)));
    let reply = store.apply(exec(
        vec![],
        vec![
            get("big"),
            get("big"),
            get("big"),
            set("after", "1"),
            get("big"),
        ],
    ));
    let Reply::Array(replies) = reply else {
        panic!("an array")
    };
    assert_eq!(replies[0], bulk(&"x".repeat(100)));
    assert_eq!(replies[1], bulk(&"x".repeat(100)));
    assert_eq!(
        replies[2],
        Reply::error("ERR reply larger than the limit of 250 bytes; read fewer keys at once")
    );
    // The write past the limit still ran: only replies carrying values are refused.
    assert_eq!(replies[3], Reply::Ok);
    assert!(replies[4].is_error());
    assert_eq!(store.kv.get(b"after"), Some(&b"1"[..]));
}

#[test]
fn a_command_whose_reply_would_pass_the_limit_does_not_run() {
    let mut store = Store::with(KvConfig {
        max_value_bytes: 100,
        max_reply_bytes: 150,
        ..KvConfig::default()
    });
    store.apply(set("a", &"x".repeat(100)));
    store.apply(set("b", &"y".repeat(100)));
    let getdel = |key: &str| Command::GetDel {
        key: key.as_bytes().to_vec(),
    };
    let reply = store.apply(exec(vec![], vec![getdel("a"), getdel("b"), get("missing")]));
    let too_large =
        Reply::error("ERR reply larger than the limit of 150 bytes; read fewer keys at once");
    assert_eq!(
        reply,
        Reply::Array(vec![bulk(&"x".repeat(100)), too_large, Reply::Nil])
    );
    // Sized before it ran, the second GETDEL was refused whole: its key is still there.
    assert_eq!(store.kv.get(b"a"), None);
    assert_eq!(store.kv.get(b"b"), Some(&b"y".repeat(100)[..]));
}

#[test]
fn a_transaction_keeps_its_bytes_through_encode_and_decode() {
    let command = exec(
        vec![
            Watched {
                key: b"k".to_vec(),
                revision: Some(300),
            },
            Watched {
                key: vec![],
                revision: None,
            },
        ],
        vec![set("a", "1"), get("a"), Command::DbSize],
    );
    let bytes = command.encode();
    assert_eq!(Command::decode(&bytes), Ok(command.clone()));
    assert_eq!(Command::decode(&bytes).unwrap().encode(), bytes);
    // version 3, opcode 60, two watched keys, "k" at 300 (varint ac 02), "" absent, three
    // commands each a byte string of its own encoding.
    assert_eq!(&bytes[..10], &[3, 60, 2, 1, b'k', 1, 0xac, 0x02, 0, 0]);
    assert_eq!(bytes[10], 3);
}

fn decode_error(bytes: &[u8]) -> KvError {
    Command::decode(bytes).expect_err("hostile bytes are refused")
}

#[test]
fn nesting_is_refused_when_decoding() {
    let inner = exec(vec![], vec![set("a", "1")]).encode();
    let mut bytes = vec![3, 60, 0, 1];
    bytes.push(inner.len() as u8);
    bytes.extend_from_slice(&inner);
    assert!(matches!(
        decode_error(&bytes),
        KvError::UnknownTag {
            field: "queued opcode",
            tag: 60,
            ..
        }
    ));
}

#[test]
fn hostile_transaction_bytes_give_typed_errors() {
    let good = exec(
        vec![Watched {
            key: b"k".to_vec(),
            revision: Some(7),
        }],
        vec![set("a", "1"), incr("a")],
    )
    .encode();
    // Every truncation is refused, never a panic.
    for end in 0..good.len() {
        assert!(
            Command::decode(&good[..end]).is_err(),
            "prefix of {end} bytes"
        );
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        decode_error(&trailing),
        KvError::TrailingBytes { .. }
    ));
    // Counts far beyond the bytes present: refused before anything is reserved.
    let huge_watch = [3, 60, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(matches!(
        decode_error(&huge_watch),
        KvError::Truncated { .. }
    ));
    let huge_queue = [
        3, 60, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ];
    assert!(matches!(
        decode_error(&huge_queue),
        KvError::Truncated { .. }
    ));
    // A revision tag that means nothing.
    assert!(matches!(
        decode_error(&[3, 60, 1, 1, b'k', 2, 0]),
        KvError::UnknownTag {
            field: "watched revision",
            ..
        }
    ));
    // A queued command of another version than the transaction's.
    let v2 = {
        let mut inner = set("a", "1").encode();
        inner[0] = 2;
        inner
    };
    let mut bytes = vec![3, 60, 0, 1, v2.len() as u8];
    bytes.extend_from_slice(&v2);
    assert!(matches!(
        decode_error(&bytes),
        KvError::UnknownTag {
            field: "queued version",
            tag: 2,
            ..
        }
    ));
    // A queued command that is itself malformed names it as a command.
    assert!(matches!(
        decode_error(&[3, 60, 0, 1, 2, 3, 99]),
        KvError::UnknownTag {
            what: Encoded::Command,
            field: "opcode",
            tag: 99,
            ..
        }
    ));
    // Versions 1 and 2 had no transactions.
    for version in [1, 2] {
        assert!(matches!(
            decode_error(&[version, 60, 0, 0]),
            KvError::UnknownTag {
                field: "opcode",
                tag: 60,
                ..
            }
        ));
    }
}

#[test]
fn the_aborted_exec_reply_keeps_its_own_tag() {
    assert_eq!(Reply::NilArray.encode(), vec![6]);
    assert_eq!(Reply::decode(&[6]), Ok(Reply::NilArray));
    assert_eq!(Reply::decode(&[1]), Ok(Reply::Nil));
}
