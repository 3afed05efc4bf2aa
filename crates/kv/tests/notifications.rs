//! Keyspace events as Redis 7.0 publishes them, `new` included: the expected list is what
//! redis-server 7.0.15 published on `__keyevent@0__:*` (with `notify-keyspace-events EAn`)
//! for the same commands.

use skiff_kv::{Command, Deadline, Expiry, KvConfig, SetCondition, SetOptions, StateMachine};

fn w(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn set_with(key: &str, condition: SetCondition, expiry: Expiry, get: bool) -> Command {
    Command::SetWith {
        key: w(key),
        value: w("1"),
        options: SetOptions {
            condition,
            expiry,
            get,
        },
    }
}

fn set(key: &str) -> Command {
    set_with(key, SetCondition::Always, Expiry::Clear, false)
}

fn pairs(words: &[&str]) -> Vec<(Vec<u8>, Vec<u8>)> {
    words.chunks(2).map(|p| (w(p[0]), w(p[1]))).collect()
}

/// Every write that creates a key reports `new` before its own event, and one that
/// changes a key already there does not, as Redis 7.0 does: SET and its forms, SETNX,
/// GETSET, MSET, MSETNX, INCR and its kin, INCRBYFLOAT, APPEND, SETRANGE, HSET, HSETNX,
/// HINCRBY, HINCRBYFLOAT, HMSET, RENAME (for the destination, before `rename_from`),
/// RENAMENX, and SET with a deadline already past.
#[test]
fn writes_that_create_a_key_report_new_first_as_redis_7_0() {
    let mut kv = StateMachine::new(KvConfig::default()).unwrap();
    kv.record_events(true);
    let ex = |ms| Expiry::Until(Deadline::In(ms));
    let script = vec![
        set("a"),
        set("a"),
        Command::SetNx {
            key: w("b"),
            value: w("1"),
        },
        Command::SetNx {
            key: w("b"),
            value: w("1"),
        },
        set_with("c", SetCondition::Always, ex(100_000), false),
        set_with("d", SetCondition::Always, Expiry::Clear, true),
        Command::MSet {
            pairs: pairs(&["e", "1", "a", "3"]),
        },
        Command::MSetNx {
            pairs: pairs(&["f", "1", "g", "2"]),
        },
        Command::Incr { key: w("h") },
        Command::IncrBy {
            key: w("i"),
            increment: 2,
        },
        Command::Decr { key: w("j") },
        Command::IncrByFloat {
            key: w("k"),
            increment: w("1.5"),
        },
        Command::Append {
            key: w("l"),
            value: w("x"),
        },
        Command::Append {
            key: w("l"),
            value: w("y"),
        },
        Command::SetRange {
            key: w("m"),
            offset: 2,
            value: w("x"),
        },
        Command::SetRange {
            key: w("m0"),
            offset: 0,
            value: w(""),
        },
        Command::HSet {
            key: w("n"),
            pairs: pairs(&["f", "1"]),
        },
        Command::HSet {
            key: w("n"),
            pairs: pairs(&["g", "1"]),
        },
        Command::HSetNx {
            key: w("o"),
            field: w("f"),
            value: w("1"),
        },
        Command::HIncrBy {
            key: w("p"),
            field: w("f"),
            increment: 1,
        },
        Command::HIncrByFloat {
            key: w("q"),
            field: w("f"),
            increment: w("1.5"),
        },
        Command::HMSet {
            key: w("r"),
            pairs: pairs(&["f", "1"]),
        },
        Command::Rename {
            key: w("a"),
            new_key: w("s"),
        },
        Command::Rename {
            key: w("s"),
            new_key: w("b"),
        },
        Command::RenameNx {
            key: w("b"),
            new_key: w("t"),
        },
        set_with("u", SetCondition::Always, Expiry::Clear, true),
        set_with("v", SetCondition::Always, ex(10_000), false),
        set_with("w", SetCondition::Always, Expiry::Keep, false),
        set_with("x", SetCondition::IfAbsent, Expiry::Clear, false),
        set_with("x", SetCondition::IfPresent, Expiry::Clear, false),
        set_with(
            "y",
            SetCondition::Always,
            Expiry::Until(Deadline::At(1)),
            false,
        ),
    ];
    for (index, command) in script.into_iter().enumerate() {
        kv.apply_at(index as u64 + 1, Some(1_000_000), command, None);
    }
    let redis = "new a, set a, set a, new b, set b, new c, set c, expire c, new d, set d, \
        new e, set e, set a, new f, set f, new g, set g, new h, incrby h, new i, incrby i, \
        new j, incrby j, new k, incrbyfloat k, new l, append l, append l, new m, setrange m, \
        new n, hset n, hset n, new o, hset o, new p, hincrby p, new q, hincrbyfloat q, \
        new r, hset r, new s, rename_from a, rename_to s, new b, rename_from s, rename_to b, \
        new t, rename_from b, rename_to t, new u, set u, new v, set v, expire v, new w, \
        set w, new x, set x, set x, new y, set y, expire y, expired y";
    let heard: Vec<String> = kv
        .take_events()
        .events
        .iter()
        .map(|e| format!("{} {}", e.event, String::from_utf8_lossy(&e.key)))
        .collect();
    assert_eq!(heard.join(", "), redis);
}
