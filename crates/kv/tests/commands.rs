//! The Redis semantics of every command, one scenario per rule: replies and resulting state
//! match what Redis answers for the same sequence of commands.

mod common;

use common::*;
use skiff_kv::reply::errors;
use skiff_kv::{Command, KvConfig, Reply};

/// GET answers the value of a present key and nil for a missing one.
#[test]
fn get_returns_value_or_nil() {
    let mut kv = Kv::new();
    assert_eq!(kv.apply(get("k")), Reply::Nil);
    assert_eq!(kv.apply(set("k", "v")), Reply::Ok);
    assert_eq!(kv.apply(get("k")), bulk("v"));
    assert_eq!(kv.read(get("k")), bulk("v"));
    assert_eq!(kv.read(get("other")), Reply::Nil);
}

/// A plain SET creates or overwrites, answering OK.
#[test]
fn set_overwrites_existing_value() {
    let mut kv = Kv::new();
    assert_eq!(kv.apply(set("k", "1")), Reply::Ok);
    assert_eq!(kv.apply(set("k", "2")), Reply::Ok);
    assert_eq!(kv.read(get("k")), bulk("2"));
}

/// SET NX sets only a missing key; otherwise it answers nil and changes nothing.
#[test]
fn set_nx_sets_only_absent_key() {
    let mut kv = Kv::new();
    assert_eq!(kv.apply(set_nx("k", "first")), Reply::Ok);
    assert_eq!(kv.apply(set_nx("k", "second")), Reply::Nil);
    assert_eq!(kv.read(get("k")), bulk("first"));
}

/// SET XX sets only an existing key; otherwise it answers nil and creates nothing.
#[test]
fn set_xx_sets_only_present_key() {
    let mut kv = Kv::new();
    assert_eq!(kv.apply(set_xx("k", "v")), Reply::Nil);
    assert_eq!(kv.read(get("k")), Reply::Nil);
    assert_eq!(kv.apply(set("k", "old")), Reply::Ok);
    assert_eq!(kv.apply(set_xx("k", "new")), Reply::Ok);
    assert_eq!(kv.read(get("k")), bulk("new"));
}

/// Empty keys and values, and arbitrary bytes, are ordinary byte strings.
#[test]
fn empty_and_binary_keys_and_values_are_stored() {
    let mut kv = Kv::new();
    let binary = vec![0u8, 255, 10, 13];
    kv.apply(Command::Set {
        key: vec![],
        value: vec![],
        condition: Default::default(),
    });
    kv.apply(Command::Set {
        key: binary.clone(),
        value: binary.clone(),
        condition: Default::default(),
    });
    assert_eq!(kv.read(Command::Get { key: vec![] }), Reply::Bulk(vec![]));
    assert_eq!(
        kv.read(Command::Get {
            key: binary.clone()
        }),
        Reply::Bulk(binary)
    );
    assert_eq!(kv.read(Command::DbSize), Reply::Integer(2));
}

/// DEL counts the keys it removed; a key named twice is removed (and counted) once.
#[test]
fn del_counts_removed_keys_once() {
    let mut kv = Kv::new();
    kv.apply(set("a", "1"));
    kv.apply(set("b", "2"));
    let del = Command::Del {
        keys: keys(&["a", "a", "b", "missing"]),
    };
    assert_eq!(kv.apply(del), Reply::Integer(2));
    assert_eq!(kv.read(Command::DbSize), Reply::Integer(0));
}

/// EXISTS counts present keys, a key named twice counted twice (as Redis does).
#[test]
fn exists_counts_repeated_keys_each_time() {
    let mut kv = Kv::new();
    kv.apply(set("a", "1"));
    let exists = Command::Exists {
        keys: keys(&["a", "a", "missing"]),
    };
    assert_eq!(kv.read(exists.clone()), Reply::Integer(2));
    assert_eq!(kv.apply(exists), Reply::Integer(2));
}

/// DEL, EXISTS, MGET and MSET with no key answer Redis's arity error and change nothing.
#[test]
fn multi_key_commands_without_keys_are_arity_errors() {
    let mut kv = Kv::new();
    kv.apply(set("a", "1"));
    let cases = [
        (Command::Del { keys: vec![] }, "del"),
        (Command::Exists { keys: vec![] }, "exists"),
        (Command::MGet { keys: vec![] }, "mget"),
        (Command::MSet { pairs: vec![] }, "mset"),
    ];
    for (command, name) in cases {
        assert_eq!(
            kv.apply(command),
            Reply::Error(format!(
                "ERR wrong number of arguments for '{name}' command"
            ))
        );
    }
    assert_eq!(kv.read(Command::DbSize), Reply::Integer(1));
}

/// INCR treats a missing key as 0 and stores the result as a decimal string.
#[test]
fn incr_on_missing_key_starts_at_zero() {
    let mut kv = Kv::new();
    assert_eq!(kv.apply(incr("n")), Reply::Integer(1));
    assert_eq!(kv.apply(incr("n")), Reply::Integer(2));
    assert_eq!(kv.read(get("n")), bulk("2"));
}

/// INCRBY adds any signed amount; DECR subtracts one, going negative.
#[test]
fn incrby_and_decr_add_signed_amounts() {
    let mut kv = Kv::new();
    kv.apply(set("n", "10"));
    let incrby = |n| Command::IncrBy {
        key: b("n"),
        increment: n,
    };
    assert_eq!(kv.apply(incrby(5)), Reply::Integer(15));
    assert_eq!(kv.apply(incrby(-20)), Reply::Integer(-5));
    assert_eq!(kv.apply(Command::Decr { key: b("n") }), Reply::Integer(-6));
    assert_eq!(kv.read(get("n")), bulk("-6"));
    assert_eq!(
        kv.apply(Command::Decr { key: b("fresh") }),
        Reply::Integer(-1)
    );
}

/// INCR refuses values Redis does not read as a 64-bit decimal integer, and leaves them be.
#[test]
fn incr_on_non_integer_is_refused() {
    let mut kv = Kv::new();
    for value in [
        "abc",
        "",
        " 1",
        "1 ",
        "+1",
        "01",
        "-0",
        "1.5",
        "9223372036854775808",
        "--1",
        "-9223372036854775809",
    ] {
        kv.apply(set("k", value));
        assert_eq!(
            kv.apply(incr("k")),
            Reply::error(errors::NOT_AN_INTEGER),
            "value {value:?}"
        );
        assert_eq!(kv.read(get("k")), bulk(value));
    }
    assert_eq!(
        errors::NOT_AN_INTEGER,
        "ERR value is not an integer or out of range"
    );
}

/// INCR accepts the extremes of i64 as stored values.
#[test]
fn incr_reads_extreme_integers() {
    let mut kv = Kv::new();
    kv.apply(set("k", "-9223372036854775808"));
    assert_eq!(kv.apply(incr("k")), Reply::Integer(i64::MIN + 1));
    kv.apply(set("k", "9223372036854775806"));
    assert_eq!(kv.apply(incr("k")), Reply::Integer(i64::MAX));
    kv.apply(set("k", "0"));
    assert_eq!(kv.apply(incr("k")), Reply::Integer(1));
}

/// An increment past i64::MAX or below i64::MIN is refused with Redis's overflow error and
/// leaves the value unchanged.
#[test]
fn incr_overflow_is_refused_and_changes_nothing() {
    let mut kv = Kv::new();
    kv.apply(set("k", &i64::MAX.to_string()));
    assert_eq!(kv.apply(incr("k")), Reply::error(errors::OVERFLOW));
    assert_eq!(kv.read(get("k")), bulk(&i64::MAX.to_string()));

    kv.apply(set("k", &i64::MIN.to_string()));
    assert_eq!(
        kv.apply(Command::Decr { key: b("k") }),
        Reply::error(errors::OVERFLOW)
    );
    let incrby = Command::IncrBy {
        key: b("k"),
        increment: i64::MIN,
    };
    assert_eq!(kv.apply(incrby), Reply::error(errors::OVERFLOW));
    assert_eq!(kv.read(get("k")), bulk(&i64::MIN.to_string()));
    assert_eq!(
        errors::OVERFLOW,
        "ERR increment or decrement would overflow"
    );
}

/// MGET answers an array with each key's value or nil, in the order asked.
#[test]
fn mget_returns_values_and_nils_in_order() {
    let mut kv = Kv::new();
    kv.apply(set("a", "1"));
    kv.apply(set("c", "3"));
    let mget = Command::MGet {
        keys: keys(&["c", "b", "a", "c"]),
    };
    assert_eq!(
        kv.read(mget),
        Reply::Array(vec![bulk("3"), Reply::Nil, bulk("1"), bulk("3")])
    );
}

/// MSET sets every pair in one entry; a key named twice ends with its last value.
#[test]
fn mset_sets_every_pair_last_wins() {
    let mut kv = Kv::new();
    let mset = Command::MSet {
        pairs: vec![(b("a"), b("1")), (b("b"), b("2")), (b("a"), b("3"))],
    };
    assert_eq!(kv.apply(mset), Reply::Ok);
    assert_eq!(kv.read(get("a")), bulk("3"));
    assert_eq!(kv.read(get("b")), bulk("2"));
    assert_eq!(kv.machine.applied_index(), 1);
}

/// MSET is atomic: one pair over the size limits refuses the whole command, and no pair
/// before it is set.
#[test]
fn mset_is_all_or_nothing() {
    let mut kv = Kv::with_config(KvConfig {
        max_value_bytes: 4,
        ..KvConfig::default()
    });
    kv.apply(set("a", "old"));
    let mset = Command::MSet {
        pairs: vec![
            (b("a"), b("new")),
            (b("b"), b("2")),
            (b("c"), b("too long")),
        ],
    };
    assert_eq!(kv.apply(mset), Reply::error(errors::VALUE_TOO_LARGE));
    assert_eq!(kv.read(get("a")), bulk("old"));
    assert_eq!(kv.read(get("b")), Reply::Nil);
    assert_eq!(kv.read(Command::DbSize), Reply::Integer(1));
}

/// CAS swaps when the current value equals the expected one (1), and changes nothing
/// otherwise (0).
#[test]
fn cas_swaps_only_on_match() {
    let mut kv = Kv::new();
    kv.apply(set("k", "a"));
    let cas = |expected: &str, new: &str| Command::Cas {
        key: b("k"),
        expected: Some(b(expected)),
        new: b(new),
    };
    assert_eq!(kv.apply(cas("x", "b")), Reply::Integer(0));
    assert_eq!(kv.read(get("k")), bulk("a"));
    assert_eq!(kv.apply(cas("a", "b")), Reply::Integer(1));
    assert_eq!(kv.read(get("k")), bulk("b"));
}

/// CAS with expected "absent" creates a missing key, and fails when the key exists — even
/// holding an empty value, which is not absence.
#[test]
fn cas_with_absent_expected_creates_only_missing_key() {
    let mut kv = Kv::new();
    let cas_absent = |new: &str| Command::Cas {
        key: b("k"),
        expected: None,
        new: b(new),
    };
    assert_eq!(kv.apply(cas_absent("first")), Reply::Integer(1));
    assert_eq!(kv.apply(cas_absent("second")), Reply::Integer(0));
    assert_eq!(kv.read(get("k")), bulk("first"));

    kv.apply(set("e", ""));
    let cas_empty = Command::Cas {
        key: b("e"),
        expected: None,
        new: b("x"),
    };
    assert_eq!(kv.apply(cas_empty), Reply::Integer(0));
    let cas_missing_expected_value = Command::Cas {
        key: b("missing"),
        expected: Some(vec![]),
        new: b("x"),
    };
    assert_eq!(kv.apply(cas_missing_expected_value), Reply::Integer(0));
    assert_eq!(kv.read(get("missing")), Reply::Nil);
}

/// DBSIZE counts keys.
#[test]
fn dbsize_counts_keys() {
    let mut kv = Kv::new();
    assert_eq!(kv.read(Command::DbSize), Reply::Integer(0));
    kv.apply(set("a", "1"));
    kv.apply(set("b", "1"));
    kv.apply(set("a", "2"));
    assert_eq!(kv.apply(Command::DbSize), Reply::Integer(2));
}

/// Writes beyond max_key_bytes or max_value_bytes are refused with an error reply and
/// store nothing; lengths at the limit are accepted.
#[test]
fn oversized_key_or_value_is_refused() {
    let mut kv = Kv::with_config(KvConfig {
        max_key_bytes: 3,
        max_value_bytes: 5,
        ..KvConfig::default()
    });
    assert_eq!(kv.apply(set("abc", "12345")), Reply::Ok);
    assert_eq!(
        kv.apply(set("abcd", "1")),
        Reply::error(errors::KEY_TOO_LARGE)
    );
    assert_eq!(
        kv.apply(set("abc", "123456")),
        Reply::error(errors::VALUE_TOO_LARGE)
    );
    assert_eq!(
        kv.apply(set_nx("xyz1", "1")),
        Reply::error(errors::KEY_TOO_LARGE)
    );
    let cas = Command::Cas {
        key: b("abc"),
        expected: Some(b("12345")),
        new: b("123456"),
    };
    assert_eq!(kv.apply(cas), Reply::error(errors::VALUE_TOO_LARGE));
    assert_eq!(kv.apply(incr("long")), Reply::error(errors::KEY_TOO_LARGE));
    assert_eq!(kv.read(get("abc")), bulk("12345"));
    assert_eq!(kv.read(Command::DbSize), Reply::Integer(1));
}

/// `read` serves only read-only commands; a write sent there is refused and not applied.
#[test]
fn read_refuses_write_commands() {
    let kv = Kv::new();
    assert_eq!(kv.read(set("k", "v")), Reply::error(errors::NOT_READ_ONLY));
    assert_eq!(kv.read(get("k")), Reply::Nil);
    for command in [get("k"), Command::DbSize] {
        assert!(command.is_read_only());
    }
    assert!(!incr("k").is_read_only());
}

/// Applying an entry at an index already applied is a bug in the driver: it panics.
#[test]
#[should_panic(expected = "entries must be applied once, in order")]
fn apply_at_old_index_panics() {
    let mut kv = Kv::new();
    kv.machine.apply(5, set("k", "v"), None);
    kv.machine.apply(5, set("k", "v"), None);
}

/// A configuration with a zero limit is refused.
#[test]
fn zero_limits_are_invalid_config() {
    for config in [
        KvConfig {
            max_key_bytes: 0,
            ..KvConfig::default()
        },
        KvConfig {
            max_value_bytes: 0,
            ..KvConfig::default()
        },
        KvConfig {
            max_sessions: 0,
            ..KvConfig::default()
        },
        KvConfig {
            session_expiry_ms: 0,
            ..KvConfig::default()
        },
        KvConfig {
            session_evict_idle_ms: 2,
            session_expiry_ms: 1,
            ..KvConfig::default()
        },
    ] {
        assert!(matches!(
            skiff_kv::StateMachine::new(config),
            Err(skiff_kv::KvError::InvalidConfig(_))
        ));
    }
}

#[test]
fn an_mget_whose_reply_would_exceed_the_limit_is_refused_before_copying() {
    let mut kv = Kv::with_config(KvConfig {
        max_value_bytes: 8,
        max_reply_bytes: 16,
        ..KvConfig::default()
    });
    kv.apply(set("big", "12345678"));
    let mget = |n: usize| Command::MGet {
        keys: vec![b("big"); n],
    };
    // Two copies fit exactly; a third would pass the limit.
    assert_eq!(
        kv.machine.read(&mget(2)),
        Reply::Array(vec![Reply::Bulk(b("12345678")); 2])
    );
    assert_eq!(
        kv.machine.read(&mget(3)),
        Reply::error(errors::reply_too_large(16))
    );
    // Missing keys cost nothing.
    let mut keys = vec![b("missing"); 1000];
    keys.push(b("big"));
    assert!(matches!(
        kv.machine.read(&Command::MGet { keys }),
        Reply::Array(items) if items.len() == 1001
    ));
}
