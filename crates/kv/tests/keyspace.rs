//! Value types, the string and keyspace commands, hashes and scans, as Redis 7 answers
//! them (each expected reply checked against redis-server 7.0 where Redis has the command).

mod common;

use std::collections::BTreeSet;

use common::{b, get, keys, set, Kv};
use skiff_kv::reply::errors;
use skiff_kv::{Command, Deadline, ExpireCondition, KvConfig, Reply, StateMachine, TimeUnit};

fn bulk(s: &str) -> Reply {
    Reply::Bulk(b(s))
}

fn hset(key: &str, pairs: &[(&str, &str)]) -> Command {
    Command::HSet {
        key: b(key),
        pairs: pairs.iter().map(|(f, v)| (b(f), b(v))).collect(),
    }
}

fn wrong_type() -> Reply {
    Reply::error(errors::WRONG_TYPE)
}

/// A hash is refused by every command that works on strings, exactly as Redis refuses it,
/// and keeps its fields; the commands that work on any key (DEL, EXISTS, TYPE, EXPIRE, TTL,
/// REVISION, RENAME) work on it; MGET answers nil for it; SET overwrites it.
#[test]
fn a_hash_answers_wrongtype_to_string_commands() {
    let mut kv = Kv::new();
    assert_eq!(kv.apply(hset("h", &[("f", "1")])), Reply::Integer(1));
    let string_commands = [
        get("h"),
        Command::Incr { key: b("h") },
        Command::IncrBy {
            key: b("h"),
            increment: 2,
        },
        Command::Decr { key: b("h") },
        Command::Append {
            key: b("h"),
            value: b("x"),
        },
        Command::StrLen { key: b("h") },
        Command::GetRange {
            key: b("h"),
            start: 0,
            end: -1,
        },
        Command::SetRange {
            key: b("h"),
            offset: 0,
            value: b("x"),
        },
        Command::IncrByFloat {
            key: b("h"),
            increment: b("1"),
        },
        Command::GetDel { key: b("h") },
        Command::GetEx {
            key: b("h"),
            expiry: skiff_kv::Expiry::Keep,
        },
        Command::SetWith {
            key: b("h"),
            value: b("v"),
            options: skiff_kv::SetOptions {
                get: true,
                ..Default::default()
            },
        },
        Command::Cas {
            key: b("h"),
            expected: None,
            new: b("v"),
        },
    ];
    for command in string_commands {
        assert_eq!(kv.apply(command.clone()), wrong_type(), "{command:?}");
    }
    assert_eq!(kv.machine.hash_get(b"h", b"f"), Some(&b"1"[..]));
    assert_eq!(
        kv.read(Command::MGet { keys: keys(&["h"]) }),
        Reply::Array(vec![Reply::Nil])
    );
    assert_eq!(
        kv.read(Command::Type { key: b("h") }),
        Reply::Simple("hash".into())
    );
    assert_eq!(
        kv.read(Command::Exists { keys: keys(&["h"]) }),
        Reply::Integer(1)
    );
    let expire = Command::Expire {
        key: b("h"),
        deadline: Deadline::In(10_000),
        condition: ExpireCondition::Always,
    };
    assert_eq!(kv.apply(expire), Reply::Integer(1));
    assert!(matches!(
        kv.read(Command::Ttl {
            key: b("h"),
            unit: TimeUnit::Milliseconds
        }),
        Reply::Integer(1..)
    ));
    assert!(matches!(
        kv.read(Command::Revision { key: b("h") }),
        Reply::Integer(_)
    ));
    // A string command on a string key answers as usual; hash commands refuse it.
    kv.apply(set("s", "1"));
    for command in [
        Command::HGet {
            key: b("s"),
            field: b("f"),
        },
        hset("s", &[("f", "1")]),
        Command::HLen { key: b("s") },
        Command::HGetAll { key: b("s") },
        Command::HScan {
            key: b("s"),
            cursor: 0,
            pattern: None,
            count: 10,
        },
    ] {
        assert_eq!(kv.apply(command.clone()), wrong_type(), "{command:?}");
    }
    assert_eq!(kv.apply(set("h", "now a string")), Reply::Ok);
    assert_eq!(kv.read(get("h")), bulk("now a string"));
    assert_eq!(
        kv.apply(Command::Del {
            keys: keys(&["h", "s"])
        }),
        Reply::Integer(2)
    );
}

/// APPEND, STRLEN, GETRANGE (Redis's clamping), SETRANGE (zero padding, an empty value
/// changes nothing, the value limit), INCRBYFLOAT (Redis's text), MSETNX (all or nothing).
#[test]
fn string_commands_answer_as_redis() {
    let mut kv = Kv::with_config(KvConfig {
        max_value_bytes: 10,
        ..KvConfig::default()
    });
    let append = |key: &str, value: &str| Command::Append {
        key: b(key),
        value: b(value),
    };
    assert_eq!(kv.apply(append("s", "hel")), Reply::Integer(3));
    assert_eq!(kv.apply(append("s", "lo")), Reply::Integer(5));
    assert_eq!(kv.read(Command::StrLen { key: b("s") }), Reply::Integer(5));
    assert_eq!(
        kv.read(Command::StrLen { key: b("none") }),
        Reply::Integer(0)
    );
    assert_eq!(
        kv.apply(append("s", "123456")),
        Reply::error(errors::VALUE_TOO_LARGE)
    );
    let range = |start, end| Command::GetRange {
        key: b("s"),
        start,
        end,
    };
    for (start, end, expected) in [
        (0, -1, "hello"),
        (-3, -1, "llo"),
        (5, 3, ""),
        (-100, 100, "hello"),
        (3, -100, ""),
        (-1, -3, ""),
        (0, i64::MAX, "hello"),
        (i64::MIN, i64::MIN + 1, "h"),
    ] {
        assert_eq!(kv.read(range(start, end)), bulk(expected), "{start} {end}");
    }
    let set_range = |key: &str, offset, value: &str| Command::SetRange {
        key: b(key),
        offset,
        value: b(value),
    };
    assert_eq!(kv.apply(set_range("new", 3, "ab")), Reply::Integer(5));
    assert_eq!(kv.read(get("new")), Reply::Bulk(b"\0\0\0ab".to_vec()));
    assert_eq!(kv.apply(set_range("s", 1, "EL")), Reply::Integer(5));
    assert_eq!(kv.read(get("s")), bulk("hELlo"));
    assert_eq!(kv.apply(set_range("absent", 99, "")), Reply::Integer(0));
    assert_eq!(kv.read(get("absent")), Reply::Nil);
    assert_eq!(
        kv.apply(set_range("s", 9, "xy")),
        Reply::error(errors::VALUE_TOO_LARGE)
    );
    assert_eq!(
        kv.apply(set_range("s", u64::MAX, "x")),
        Reply::error(errors::VALUE_TOO_LARGE)
    );

    let incr = |key: &str, by: &str| Command::IncrByFloat {
        key: b(key),
        increment: b(by),
    };
    kv.apply(set("f", "10.50"));
    assert_eq!(kv.apply(incr("f", "0.1")), bulk("10.6"));
    assert_eq!(kv.apply(incr("f", "-0.6")), bulk("10"));
    assert_eq!(kv.apply(incr("f", "-5.0e3")), bulk("-4990"));
    assert_eq!(kv.apply(incr("z", "0.1")), bulk("0.1"));
    assert_eq!(kv.apply(incr("z", "0.2")), bulk("0.3"));
    assert_eq!(kv.apply(incr("z", "x")), Reply::error(errors::NOT_A_FLOAT));
    assert_eq!(kv.apply(incr("s", "1")), Reply::error(errors::NOT_A_FLOAT));
    assert_eq!(kv.apply(incr("z", "inf")), Reply::error(errors::NOT_FINITE));
    assert_eq!(kv.read(get("z")), bulk("0.3"));

    let msetnx = |pairs: &[(&str, &str)]| Command::MSetNx {
        pairs: pairs.iter().map(|(k, v)| (b(k), b(v))).collect(),
    };
    assert_eq!(
        kv.apply(msetnx(&[("a", "1"), ("b", "2")])),
        Reply::Integer(1)
    );
    assert_eq!(
        kv.apply(msetnx(&[("c", "3"), ("a", "9")])),
        Reply::Integer(0)
    );
    assert_eq!(kv.read(get("c")), Reply::Nil);
    assert_eq!(kv.read(get("a")), bulk("1"));
    assert_eq!(
        kv.apply(msetnx(&[])),
        Reply::error(errors::wrong_arity("msetnx"))
    );
}

/// RENAME moves the value, its type and its deadline; the new key's revision is the
/// rename's index. RENAMENX does nothing onto an existing key; a missing key is an error.
#[test]
fn rename_moves_value_deadline_and_revision() {
    let mut kv = Kv::new();
    kv.apply(set("a", "1"));
    kv.apply(Command::Expire {
        key: b("a"),
        deadline: Deadline::In(60_000),
        condition: ExpireCondition::Always,
    });
    let deadline = kv.machine.deadline_ms(b"a");
    let rename = |key: &str, new_key: &str| Command::Rename {
        key: b(key),
        new_key: b(new_key),
    };
    kv.apply(set("b", "old"));
    assert_eq!(kv.apply(rename("a", "b")), Reply::Ok);
    let rename_index = kv.next_index - 1;
    assert_eq!(kv.read(get("a")), Reply::Nil);
    assert_eq!(kv.read(get("b")), bulk("1"));
    assert_eq!(kv.machine.deadline_ms(b"b"), deadline);
    assert_eq!(kv.machine.revision(b"b"), Some(rename_index));
    assert_eq!(
        kv.apply(rename("a", "c")),
        Reply::error(errors::NO_SUCH_KEY)
    );
    assert_eq!(kv.apply(rename("b", "b")), Reply::Ok);
    kv.apply(hset("h", &[("f", "v")]));
    let rename_nx = |key: &str, new_key: &str| Command::RenameNx {
        key: b(key),
        new_key: b(new_key),
    };
    assert_eq!(kv.apply(rename_nx("h", "b")), Reply::Integer(0));
    assert_eq!(kv.apply(rename_nx("b", "b")), Reply::Integer(0));
    assert_eq!(kv.apply(rename_nx("h", "h2")), Reply::Integer(1));
    assert_eq!(kv.machine.hash_get(b"h2", b"f"), Some(&b"v"[..]));
    kv.machine.check_invariants();
}

/// FLUSHALL empties the store; RANDOMKEY answers a live key, nil when empty.
#[test]
fn flushall_and_randomkey() {
    let mut kv = Kv::new();
    assert_eq!(kv.read(Command::RandomKey { seed: 7 }), Reply::Nil);
    kv.apply(set("a", "1"));
    kv.apply(set("m", "2"));
    for seed in [0, 1, 2, u64::MAX] {
        let key = kv.read(Command::RandomKey { seed });
        assert!(key == bulk("a") || key == bulk("m"), "{key:?}");
    }
    assert_ne!(
        kv.read(Command::RandomKey { seed: 0 }),
        kv.read(Command::RandomKey { seed: 1 }),
        "two keys, consecutive seeds: both keys"
    );
    assert_eq!(kv.apply(Command::FlushAll), Reply::Ok);
    assert_eq!(kv.read(Command::DbSize), Reply::Integer(0));
    assert_eq!(kv.read(Command::RandomKey { seed: 7 }), Reply::Nil);
    kv.machine.check_invariants();
}

/// RANDOMKEY picks each live key about equally often: 20,000 draws with seeds from a fixed
/// generator over 20 keys named as people name them (`user:0`…) stay within a loose
/// chi-square bound (99.99th percentile for 19 degrees of freedom is about 50; a key that
/// takes most draws gives tens of thousands). Deleting keys and writing others keeps it so.
#[test]
fn randomkey_is_uniform_over_live_keys() {
    let mut kv = Kv::new();
    for i in 0..30 {
        kv.apply(set(&format!("user:{i}"), "x"));
    }
    for i in 20..30 {
        kv.apply(Command::Del {
            keys: vec![b(&format!("user:{i}"))],
        });
    }
    let mut state = 0x5eed_u64;
    let mut splitmix = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let draws = 20_000u32;
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..draws {
        let Reply::Bulk(key) = kv.read(Command::RandomKey { seed: splitmix() }) else {
            panic!("a live key");
        };
        *counts.entry(key).or_insert(0u32) += 1;
    }
    assert_eq!(
        counts.len(),
        20,
        "every live key, and only those: {counts:?}"
    );
    let expected = f64::from(draws) / 20.0;
    let chi_square: f64 = counts
        .values()
        .map(|&seen| (f64::from(seen) - expected).powi(2) / expected)
        .sum();
    assert!(chi_square < 50.0, "chi-square {chi_square}: {counts:?}");
    kv.machine.check_invariants();
}

/// HSET counts only new fields; HDEL of the last field deletes the key; HINCRBY and
/// HINCRBYFLOAT refuse what Redis refuses; a hash never grows past max_hash_fields.
#[test]
fn hash_commands_answer_as_redis() {
    let mut kv = Kv::with_config(KvConfig {
        max_hash_fields: 3,
        ..KvConfig::default()
    });
    assert_eq!(
        kv.apply(hset("h", &[("a", "1"), ("b", "2")])),
        Reply::Integer(2)
    );
    assert_eq!(
        kv.apply(hset("h", &[("a", "x"), ("c", "3")])),
        Reply::Integer(1)
    );
    assert_eq!(
        kv.apply(hset("h", &[("d", "4")])),
        Reply::error(errors::HASH_TOO_LARGE)
    );
    assert_eq!(
        kv.apply(Command::HMSet {
            key: b("h"),
            pairs: vec![(b("a"), b("1"))]
        }),
        Reply::Ok
    );
    let field = |command: fn(Vec<u8>, Vec<u8>) -> Command, f: &str| command(b("h"), b(f));
    let hget = |key, field| Command::HGet { key, field };
    assert_eq!(kv.read(field(hget, "a")), bulk("1"));
    assert_eq!(kv.read(field(hget, "zz")), Reply::Nil);
    assert_eq!(
        kv.read(Command::HMGet {
            key: b("h"),
            fields: keys(&["c", "zz"])
        }),
        Reply::Array(vec![bulk("3"), Reply::Nil])
    );
    assert_eq!(
        kv.read(Command::HGetAll { key: b("h") }),
        Reply::Array(["a", "1", "b", "2", "c", "3"].map(bulk).to_vec())
    );
    assert_eq!(
        kv.read(Command::HKeys { key: b("h") }),
        Reply::Array(["a", "b", "c"].map(bulk).to_vec())
    );
    assert_eq!(
        kv.read(Command::HVals { key: b("none") }),
        Reply::Array(Vec::new())
    );
    assert_eq!(kv.read(Command::HLen { key: b("h") }), Reply::Integer(3));
    let hexists = |key, field| Command::HExists { key, field };
    assert_eq!(kv.read(field(hexists, "b")), Reply::Integer(1));
    let hstrlen = |key, field| Command::HStrLen { key, field };
    assert_eq!(kv.read(field(hstrlen, "zz")), Reply::Integer(0));
    let hsetnx = |f: &str| Command::HSetNx {
        key: b("h"),
        field: b(f),
        value: b("new"),
    };
    assert_eq!(kv.apply(hsetnx("a")), Reply::Integer(0));
    assert_eq!(kv.apply(hsetnx("d")), Reply::error(errors::HASH_TOO_LARGE));

    let hincr = |f: &str, increment| Command::HIncrBy {
        key: b("h"),
        field: b(f),
        increment,
    };
    assert_eq!(kv.apply(hincr("a", 5)), Reply::Integer(6));
    assert_eq!(
        kv.apply(hincr("a", i64::MAX)),
        Reply::error(errors::OVERFLOW)
    );
    kv.apply(hset("h", &[("b", "x")]));
    assert_eq!(
        kv.apply(hincr("b", 1)),
        Reply::error(errors::HASH_NOT_AN_INTEGER)
    );
    let hincr_float = |f: &str, by: &str| Command::HIncrByFloat {
        key: b("h"),
        field: b(f),
        increment: b(by),
    };
    assert_eq!(kv.apply(hincr_float("c", "0.5")), bulk("3.5"));
    assert_eq!(
        kv.apply(hincr_float("b", "1")),
        Reply::error(errors::HASH_NOT_A_FLOAT)
    );
    assert_eq!(
        kv.apply(hincr_float("c", "inf")),
        Reply::error(errors::NAN_OR_INFINITY)
    );
    assert_eq!(
        kv.apply(hincr_float("c", "y")),
        Reply::error(errors::NOT_A_FLOAT)
    );

    let hdel = |fields: &[&str]| Command::HDel {
        key: b("h"),
        fields: keys(fields),
    };
    assert_eq!(kv.apply(hdel(&["a", "zz", "a"])), Reply::Integer(1));
    assert_eq!(kv.apply(hdel(&["zz"])), Reply::Integer(0));
    assert_eq!(kv.apply(hdel(&["b", "c"])), Reply::Integer(2));
    assert_eq!(
        kv.read(Command::Exists { keys: keys(&["h"]) }),
        Reply::Integer(0)
    );
    assert_eq!(
        kv.read(Command::Type { key: b("h") }),
        Reply::Simple("none".into())
    );
    kv.machine.check_invariants();
}

/// HGETALL and KEYS are refused before anything is copied when their reply would pass
/// max_reply_bytes.
#[test]
fn listings_are_bounded_by_max_reply_bytes() {
    // Each item counts its bytes and 16 for its header.
    let mut kv = Kv::with_config(KvConfig {
        max_value_bytes: 8,
        max_reply_bytes: 30,
        ..KvConfig::default()
    });
    kv.apply(hset("h", &[("f", "12345678")]));
    let too_large = Reply::error(errors::reply_too_large(30));
    assert_eq!(kv.read(Command::HGetAll { key: b("h") }), too_large);
    assert_eq!(
        kv.read(Command::HVals { key: b("h") }),
        Reply::Array(vec![bulk("12345678")])
    );
    for key in ["key1", "key2", "key3"] {
        kv.apply(set(key, "v"));
    }
    assert_eq!(kv.read(Command::Keys { pattern: b("key*") }), too_large);
    assert_eq!(
        kv.read(Command::Keys {
            pattern: b("key[2]")
        }),
        Reply::Array(vec![bulk("key2")])
    );
}

/// The cursor and keys of a SCAN reply.
fn scan_page(reply: Reply) -> (u64, Vec<Vec<u8>>) {
    let Reply::Array(mut parts) = reply else {
        panic!("not a scan reply: {reply:?}");
    };
    let Some(Reply::Array(items)) = parts.pop() else {
        panic!("no items");
    };
    let Some(Reply::Bulk(cursor)) = parts.pop() else {
        panic!("no cursor");
    };
    let cursor = String::from_utf8(cursor).unwrap().parse().unwrap();
    let items = items
        .into_iter()
        .map(|item| match item {
            Reply::Bulk(bytes) => bytes,
            other => panic!("not a key: {other:?}"),
        })
        .collect();
    (cursor, items)
}

fn scan(cursor: u64, count: u64) -> Command {
    Command::Scan {
        cursor,
        pattern: None,
        count,
        value_type: None,
    }
}

/// Redis's promise: a full SCAN returns every key present from start to end at least once,
/// though keys are added and deleted between pages and each page is served by another
/// replica (a store restored from a snapshot of the first, then kept in step).
#[test]
fn a_full_scan_returns_every_key_present_throughout() {
    let mut leader = Kv::new();
    for n in 0..200 {
        leader.apply(set(&format!("stay{n}"), "v"));
        leader.apply(set(&format!("go{n}"), "v"));
    }
    let mut follower =
        StateMachine::restore(KvConfig::default(), &leader.machine.snapshot()).unwrap();
    let mut seen = BTreeSet::new();
    let mut cursor = 0;
    let mut page = 0u64;
    loop {
        // Pages alternate between the two replicas.
        let server = if page % 2 == 0 {
            &leader.machine
        } else {
            &follower
        };
        let (next, keys) = scan_page(server.read(&scan(cursor, 7)));
        seen.extend(keys);
        // Churn between pages, applied to both replicas at the same index.
        for command in [
            Command::Del {
                keys: vec![b(&format!("go{page}"))],
            },
            set(&format!("new{page}"), "v"),
        ] {
            let index = leader.next_index;
            leader.apply(command.clone());
            follower.apply(index, command, None);
        }
        page += 1;
        if next == 0 {
            break;
        }
        cursor = next;
    }
    for n in 0..200 {
        assert!(seen.contains(&b(&format!("stay{n}"))), "stay{n} missed");
    }
    assert!(page > 200 / 7, "COUNT bounds the pages: {page}");
    assert_eq!(leader.machine, follower);
}

/// MATCH and TYPE filter a page's keys; COUNT 0 is a syntax error; HSCAN pages a hash's
/// fields with their values and returns every field of a full iteration.
#[test]
fn scan_filters_and_hscan_pages_fields() {
    let mut kv = Kv::new();
    kv.apply(set("user:1", "a"));
    kv.apply(set("user:2", "b"));
    kv.apply(set("other", "c"));
    let fields: Vec<(String, String)> = (0..50).map(|n| (format!("f{n}"), n.to_string())).collect();
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(f, v)| (f.as_str(), v.as_str()))
        .collect();
    kv.apply(hset("user:h", &pairs));
    let filtered = |pattern: Option<&str>, value_type: Option<&str>| {
        let reply = kv.read(Command::Scan {
            cursor: 0,
            pattern: pattern.map(b),
            count: 1000,
            value_type: value_type.map(b),
        });
        let (cursor, keys) = scan_page(reply);
        assert_eq!(cursor, 0);
        keys.into_iter().collect::<BTreeSet<_>>()
    };
    assert_eq!(
        filtered(Some("user:[0-9]"), None),
        BTreeSet::from([b("user:1"), b("user:2")])
    );
    assert_eq!(
        filtered(Some("user:*"), Some("hash")),
        BTreeSet::from([b("user:h")])
    );
    assert_eq!(filtered(None, Some("list")), BTreeSet::new());
    assert_eq!(kv.read(scan(0, 0)), Reply::error(errors::SYNTAX));

    let mut seen = BTreeSet::new();
    let mut cursor = 0;
    loop {
        let reply = kv.read(Command::HScan {
            key: b("user:h"),
            cursor,
            pattern: None,
            count: 4,
        });
        let (next, items) = scan_page(reply);
        assert!(items.len() % 2 == 0);
        for pair in items.chunks(2) {
            seen.insert((pair[0].clone(), pair[1].clone()));
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let expected: BTreeSet<_> = fields.iter().map(|(f, v)| (b(f), b(v))).collect();
    assert_eq!(seen, expected);
    assert_eq!(
        kv.read(Command::HScan {
            key: b("none"),
            cursor: 0,
            pattern: None,
            count: 10
        }),
        Reply::Array(vec![bulk("0"), Reply::Array(Vec::new())])
    );
}

/// HSCAN judges its key before its options, as Redis 7.0 does (each answer checked against
/// redis-server 7.0.15): options the parser refused reach the store as COUNT 0 and answer
/// an empty scan for a missing key, WRONGTYPE for a string, and their own error for a hash.
#[test]
fn hscan_judges_the_key_before_its_options() {
    let mut kv = Kv::new();
    kv.apply(set("s", "x"));
    kv.apply(hset("h", &[("f", "1")]));
    let refused = |key: &str, pattern: Option<&[u8]>| Command::HScan {
        key: b(key),
        cursor: 0,
        pattern: pattern.map(<[u8]>::to_vec),
        count: 0,
    };
    let not_an_integer = Some(skiff_kv::HSCAN_COUNT_NOT_AN_INTEGER);
    let empty = Reply::Array(vec![bulk("0"), Reply::Array(Vec::new())]);
    for pattern in [None, not_an_integer] {
        assert_eq!(kv.read(refused("missing", pattern)), empty);
        assert_eq!(kv.read(refused("s", pattern)), wrong_type());
    }
    assert_eq!(kv.read(refused("h", None)), Reply::error(errors::SYNTAX));
    assert_eq!(
        kv.read(refused("h", not_an_integer)),
        Reply::error(errors::NOT_AN_INTEGER)
    );
}

/// Redis's promise for HSCAN of a large hash (one that keeps its fields in scan order): a
/// full iteration returns every field present from start to end at least once, though
/// fields are added and deleted between pages, the hash shrinks below and grows past the
/// size that keeps that order, and each page is served by another replica; each page holds
/// COUNT fields.
#[test]
fn a_full_hscan_of_a_large_hash_returns_every_field_present_throughout() {
    let mut leader = Kv::new();
    let stay: Vec<String> = (0..100).map(|n| format!("stay{n}")).collect();
    let go: Vec<String> = (0..100).map(|n| format!("go{n}")).collect();
    let pairs: Vec<(&str, &str)> = stay.iter().chain(&go).map(|f| (f.as_str(), "v")).collect();
    leader.apply(hset("h", &pairs));
    let mut follower =
        StateMachine::restore(KvConfig::default(), &leader.machine.snapshot()).unwrap();
    let mut seen = BTreeSet::new();
    let (mut cursor, mut page) = (0, 0usize);
    let mut sizes = Vec::new();
    loop {
        let server = if page % 2 == 0 {
            &leader.machine
        } else {
            &follower
        };
        sizes.push(server.read(&Command::HLen { key: b("h") }));
        let reply = server.read(&Command::HScan {
            key: b("h"),
            cursor,
            pattern: None,
            count: 2,
        });
        let (next, items) = scan_page(reply);
        if next != 0 {
            assert_eq!(items.len(), 4, "two fields and their values");
        }
        seen.extend(items.chunks(2).map(|pair| pair[0].clone()));
        // Churn: the hash shrinks from 200 fields to 100 (below 128), then grows.
        let churn = if page < 50 {
            Command::HDel {
                key: b("h"),
                fields: vec![b(&go[2 * page]), b(&go[2 * page + 1])],
            }
        } else {
            hset("h", &[(&format!("new{page}"), "v")])
        };
        let index = leader.next_index;
        leader.apply(churn.clone());
        follower.apply(index, churn, None);
        page += 1;
        if next == 0 {
            break;
        }
        cursor = next;
    }
    for field in &stay {
        assert!(seen.contains(&b(field)), "{field} missed");
    }
    let (largest, smallest) = (Reply::Integer(200), Reply::Integer(100));
    assert!(
        sizes.contains(&largest) && sizes.contains(&smallest),
        "{sizes:?}"
    );
    assert_eq!(leader.machine, follower);
    leader.machine.check_invariants();
}

/// FNV-1a 64 of `bytes`, the scan order before SipHash.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash: u64, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// Two keys with one FNV-1a hash (found by a cycle search over 8-byte texts; any common
/// suffix keeps them equal, and chaining such pairs gives as many equal keys as wanted)
/// once made a run the 64-bit cursor could not split: with a reply limit below the two
/// keys together, every SCAN page from the run's cursor was refused, and no iteration
/// could finish. The scan order no longer collides on them: SCAN and HSCAN with COUNT 1
/// return one key (field) a page and finish.
#[test]
fn keys_with_one_fnv_hash_do_not_stall_a_scan() {
    let suffix = [b'x'; 40];
    let colliding: Vec<Vec<u8>> = [0x513f_ccd2_145d_1199u64, 0xd4f8_e5b5_01e1_e019]
        .iter()
        .map(|prefix| [&prefix.to_le_bytes()[..], &suffix].concat())
        .collect();
    assert_eq!(fnv1a(&colliding[0]), fnv1a(&colliding[1]));
    assert_ne!(colliding[0], colliding[1]);
    // Each key (or field and its empty value) with reply headers fits the limit; the two
    // together do not.
    let config = KvConfig {
        max_value_bytes: 64,
        max_reply_bytes: 96,
        ..KvConfig::default()
    };
    let mut kv = Kv::with_config(config);
    for key in &colliding {
        kv.apply(Command::Set {
            key: key.clone(),
            value: b("v"),
            condition: skiff_kv::SetCondition::Always,
        });
    }
    kv.apply(Command::HSet {
        key: b("h"),
        pairs: colliding
            .iter()
            .map(|field| (field.clone(), b("")))
            .collect(),
    });
    for scan_hash_of in ["keys", "fields"] {
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        for _ in 0..10 {
            let command = if scan_hash_of == "keys" {
                Command::Scan {
                    cursor,
                    pattern: None,
                    count: 1,
                    value_type: Some(b("string")),
                }
            } else {
                Command::HScan {
                    key: b("h"),
                    cursor,
                    pattern: None,
                    count: 1,
                }
            };
            let (next, items) = scan_page(kv.read(command));
            seen.extend(items.into_iter().filter(|item| !item.is_empty()));
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(cursor, 0, "the scan of {scan_hash_of} finished");
        assert_eq!(seen, colliding.iter().cloned().collect(), "{scan_hash_of}");
    }
}

/// A pattern whose star is retried at every byte of long keys (`*aaa…ab` against keys made
/// of `a`) makes `KEYS`, `SCAN … MATCH` and `HSCAN … MATCH` answer an error once matching
/// passes its bound, instead of holding the node (and, inside a `MULTI`, every replica) for
/// as long as it takes; a plain pattern over the same keys still answers.
#[test]
fn a_pattern_too_costly_to_match_is_refused_and_plain_ones_still_answer() {
    let mut kv = Kv::new();
    let long = "a".repeat(16 * 1024 - 8);
    for i in 0..8 {
        kv.apply(set(&format!("{long}{i}"), "v"));
    }
    let fields: Vec<String> = (0..8).map(|i| format!("{long}{i}")).collect();
    let pairs: Vec<(&str, &str)> = fields.iter().map(|f| (f.as_str(), "v")).collect();
    kv.apply(hset("h", &pairs));
    let costly = format!("*{}b", "a".repeat(8_000));
    let too_costly = Reply::error(errors::PATTERN_TOO_COSTLY);
    assert_eq!(
        kv.read(Command::Keys {
            pattern: b(&costly)
        }),
        too_costly
    );
    let scan = Command::Scan {
        cursor: 0,
        pattern: Some(b(&costly)),
        count: 100,
        value_type: None,
    };
    assert_eq!(kv.read(scan), too_costly);
    let hscan = Command::HScan {
        key: b("h"),
        cursor: 0,
        pattern: Some(b(&costly)),
        count: 100,
    };
    assert_eq!(kv.read(hscan), too_costly);
    match kv.read(Command::Keys { pattern: b("*7") }) {
        Reply::Array(found) => assert_eq!(found, vec![Reply::Bulk(b(&format!("{long}7")))]),
        other => panic!("KEYS *7 answered {other:?}"),
    }
}
