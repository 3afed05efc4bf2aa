//! Value types, the string and keyspace commands, hashes and scans through real `skiff
//! serve` processes and the `redis` client, on the leader and on followers (which forward
//! writes and serve reads by ReadIndex), pipelined too; and nonsense arguments, each
//! refused with Redis's error, in order.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::{command, query, run_pipelined_script, serial, TestCluster};
use redis::{Connection, RedisResult};

/// The string and keyspace commands written in one pipeline through a follower, then read
/// on every node: the same answers everywhere, as Redis gives them.
#[test]
fn string_and_key_commands_agree_on_every_node() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = cluster.followers(leader)[0];
    let mut writer = cluster.redis(follower);
    let mut pipe = redis::pipe();
    for words in [
        &["SET", "s", "hello"][..],
        &["APPEND", "s", " world"],
        &["SETRANGE", "s", "0", "H"],
        &["INCRBYFLOAT", "f", "10.5"],
        &["INCRBYFLOAT", "f", "0.1"],
        &["DECRBY", "n", "5"],
        &["MSETNX", "a", "1", "b", "2"],
        &["MSETNX", "b", "9", "c", "3"],
        &["RENAME", "a", "a2"],
        &["RENAMENX", "b", "a2"],
        &["UNLINK", "b", "nothing"],
    ] {
        pipe.add_command(command(words));
    }
    let replies: Vec<redis::Value> = pipe.query(&mut writer).expect("pipeline");
    use redis::Value::{BulkString, Int, Okay};
    assert_eq!(
        replies,
        vec![
            Okay,
            Int(11),
            Int(11),
            BulkString(b"10.5".to_vec()),
            BulkString(b"10.6".to_vec()),
            Int(-5),
            Int(1),
            Int(0),
            Okay,
            Int(0),
            Int(1),
        ]
    );
    for id in 1..=3 {
        let mut reader = cluster.redis(id);
        let get = |c: &mut Connection, key: &str| query::<Option<String>>(c, &["GET", key]);
        assert_eq!(
            get(&mut reader, "s").as_deref(),
            Some("Hello world"),
            "node {id}"
        );
        assert_eq!(query::<i64>(&mut reader, &["STRLEN", "s"]), 11);
        let tail: String = query(&mut reader, &["GETRANGE", "s", "-5", "-1"]);
        assert_eq!(tail, "world");
        let head: String = query(&mut reader, &["SUBSTR", "s", "0", "4"]);
        assert_eq!(head, "Hello");
        assert_eq!(get(&mut reader, "f").as_deref(), Some("10.6"));
        assert_eq!(get(&mut reader, "n").as_deref(), Some("-5"));
        assert_eq!(get(&mut reader, "a"), None);
        assert_eq!(get(&mut reader, "a2").as_deref(), Some("1"));
        assert_eq!(get(&mut reader, "c"), None);
        assert_eq!(query::<String>(&mut reader, &["TYPE", "s"]), "string");
        assert_eq!(query::<String>(&mut reader, &["TYPE", "b"]), "none");
        let keys: BTreeSet<String> = query(&mut reader, &["KEYS", "*"]);
        let expected: BTreeSet<String> = ["s", "f", "n", "a2"].map(String::from).into();
        assert_eq!(keys, expected, "node {id}");
        let some: Option<String> = query(&mut reader, &["RANDOMKEY"]);
        assert!(expected.contains(&some.expect("a key")));
    }
    let flushed: String = query(&mut writer, &["FLUSHDB", "ASYNC"]);
    assert_eq!(flushed, "OK");
    for id in 1..=3 {
        let mut reader = cluster.redis(id);
        assert_eq!(query::<i64>(&mut reader, &["DBSIZE"]), 0, "node {id}");
        assert_eq!(query::<Option<String>>(&mut reader, &["RANDOMKEY"]), None);
    }
}

/// A hash written through a follower in one pipeline reads the same on every node; string
/// commands refuse it with WRONGTYPE; deleting its last field deletes it.
#[test]
fn hashes_agree_on_every_node_and_refuse_string_commands() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = cluster.followers(leader)[0];
    let mut writer = cluster.redis(follower);
    let (added, not_set, counted, floated, ok): (i64, i64, i64, String, String) = redis::pipe()
        .add_command(command(&["HSET", "h", "f1", "v1", "f2", "v2"]))
        .add_command(command(&["HSETNX", "h", "f1", "x"]))
        .add_command(command(&["HINCRBY", "h", "n", "5"]))
        .add_command(command(&["HINCRBYFLOAT", "h", "fl", "1.5"]))
        .add_command(command(&["HMSET", "h", "f3", "v3"]))
        .query(&mut writer)
        .expect("pipeline");
    assert_eq!(
        (added, not_set, counted, floated.as_str(), ok.as_str()),
        (2, 0, 5, "1.5", "OK")
    );
    let expected: HashMap<String, String> = [
        ("f1", "v1"),
        ("f2", "v2"),
        ("f3", "v3"),
        ("n", "5"),
        ("fl", "1.5"),
    ]
    .map(|(f, v)| (f.to_string(), v.to_string()))
    .into();
    for id in 1..=3 {
        let mut reader = cluster.redis(id);
        let all: HashMap<String, String> = query(&mut reader, &["HGETALL", "h"]);
        assert_eq!(all, expected, "node {id}");
        assert_eq!(query::<i64>(&mut reader, &["HLEN", "h"]), 5);
        let fields: Vec<String> = query(&mut reader, &["HKEYS", "h"]);
        assert_eq!(fields, ["f1", "f2", "f3", "fl", "n"], "in field order");
        let values: Vec<String> = query(&mut reader, &["HVALS", "h"]);
        assert_eq!(values, ["v1", "v2", "v3", "1.5", "5"]);
        let some: Vec<Option<String>> = query(&mut reader, &["HMGET", "h", "f2", "zz"]);
        assert_eq!(some, [Some("v2".to_string()), None]);
        assert_eq!(query::<i64>(&mut reader, &["HEXISTS", "h", "f3"]), 1);
        assert_eq!(query::<i64>(&mut reader, &["HSTRLEN", "h", "f3"]), 2);
        assert_eq!(query::<String>(&mut reader, &["HGET", "h", "n"]), "5");
        assert_eq!(query::<String>(&mut reader, &["TYPE", "h"]), "hash");
        let refused: RedisResult<Option<String>> = command(&["GET", "h"]).query(&mut reader);
        let error = refused.expect_err("GET on a hash");
        assert_eq!(error.code(), Some("WRONGTYPE"), "node {id}: {error}");
    }
    let mut on_leader = cluster.redis(leader);
    let refused: RedisResult<i64> = command(&["INCR", "h"]).query(&mut on_leader);
    assert_eq!(
        refused.expect_err("INCR on a hash").code(),
        Some("WRONGTYPE")
    );
    let removed: i64 = query(&mut on_leader, &["HDEL", "h", "f1", "f2", "f3", "n", "fl"]);
    assert_eq!(removed, 5);
    for id in 1..=3 {
        let mut reader = cluster.redis(id);
        assert_eq!(query::<i64>(&mut reader, &["EXISTS", "h"]), 0, "node {id}");
    }
}

/// A full SCAN whose pages alternate between the leader and the followers — the cursor a
/// decimal integer a client parses, as redis-py does — returns every key; MATCH and TYPE
/// filter; HSCAN returns every field with its value.
#[test]
fn a_scan_served_by_every_node_in_turn_returns_every_key() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let mut on_leader = cluster.redis(leader);
    let names: Vec<String> = (0..300).map(|n| format!("key:{n}")).collect();
    let mut mset = redis::cmd("MSET");
    for name in &names {
        mset.arg(name).arg("v");
    }
    let _: () = mset.query(&mut on_leader).expect("MSET");
    let _: () = query(
        &mut on_leader,
        &["HSET", "hash:1", "a", "1", "b", "2", "c", "3"],
    );
    let mut connections: Vec<Connection> = (1..=3).map(|id| cluster.redis(id)).collect();
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut pages = 0;
    loop {
        let connection = &mut connections[pages % 3];
        let (next, keys): (String, Vec<String>) =
            query(connection, &["SCAN", &cursor, "COUNT", "25"]);
        seen.extend(keys);
        pages += 1;
        let parsed: u64 = next.parse().expect("a decimal cursor");
        if parsed == 0 {
            break;
        }
        cursor = next;
    }
    let mut expected: BTreeSet<String> = names.iter().cloned().collect();
    expected.insert("hash:1".to_string());
    assert_eq!(seen, expected);
    assert!(pages >= 301 / 25, "{pages} pages");
    let (_, hashes): (String, Vec<String>) = query(
        &mut connections[1],
        &["SCAN", "0", "COUNT", "1000", "TYPE", "hash"],
    );
    assert_eq!(hashes, ["hash:1"]);
    let (_, matched): (String, Vec<String>) = query(
        &mut connections[2],
        &["SCAN", "0", "MATCH", "key:1?", "COUNT", "1000"],
    );
    assert_eq!(matched.len(), 10, "{matched:?}");
    let (next, fields): (String, HashMap<String, String>) = query(
        &mut connections[0],
        &["HSCAN", "hash:1", "0", "COUNT", "100"],
    );
    assert_eq!(next, "0");
    assert_eq!(fields.len(), 3);
    assert_eq!(fields["b"], "2");
}

/// Nonsense sent all at once to a follower — huge offsets, negative and zero counts, a
/// MATCH of 10 KB of `*`, non-numbers, a float that overflows — each answered with Redis's
/// error in order, and the node serves on.
#[test]
fn nonsense_keyspace_arguments_pipelined_are_refused_in_order() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = cluster.followers(leader)[0];
    let stars = "*".repeat(10 * 1024);
    let script: &[(&[&str], &str)] = &[
        (&["SET", "k", "v"], "+OK"),
        (&["HSET", "h", "f", "1"], ":1"),
        (
            &["GETRANGE", "k", "0", "99999999999999999999"],
            "-ERR value is not an integer or out of range",
        ),
        (
            &[
                "GETRANGE",
                "k",
                "-9223372036854775808",
                "9223372036854775807",
            ],
            "$v",
        ),
        (&["SETRANGE", "k", "-1", "x"], "-ERR offset is out of range"),
        (
            &["SETRANGE", "k", "9223372036854775807", "x"],
            "-ERR value is too large",
        ),
        (&["SETRANGE", "k", "9223372036854775807", ""], ":1"),
        (&["SCAN", "0", "COUNT", "0"], "-ERR syntax error"),
        (&["SCAN", "0", "COUNT", "-5"], "-ERR syntax error"),
        (
            &["SCAN", "0", "COUNT", "x"],
            "-ERR value is not an integer or out of range",
        ),
        (&["SCAN", "abc"], "-ERR invalid cursor"),
        (&["SCAN", "0", "MATCH"], "-ERR syntax error"),
        (&["SCAN", "0", "MATCH", &stars, "COUNT", "1000"], "*2"),
        (&["KEYS", &stars], "*2"),
        (&["HSCAN", "h", "0", "COUNT", "0"], "-ERR syntax error"),
        (&["HSCAN", "k", "0"], "-WRONGTYPE"),
        // The key is judged before the options, as Redis 7.0 does.
        (&["HSCAN", "missing", "0", "foo", "bar"], "*2"),
        (&["HSCAN", "k", "0", "COUNT", "x"], "-WRONGTYPE"),
        (
            &["HSCAN", "h", "0", "COUNT", "x"],
            "-ERR value is not an integer or out of range",
        ),
        (
            &["INCRBYFLOAT", "k", "1"],
            "-ERR value is not a valid float",
        ),
        (
            &["INCRBYFLOAT", "f", "nan"],
            "-ERR value is not a valid float",
        ),
        (
            &["INCRBYFLOAT", "f", "1e308"],
            "$999999999999999999966858796558",
        ),
        (
            &["INCRBYFLOAT", "f", "inf"],
            "-ERR increment would produce NaN or Infinity",
        ),
        (
            &["INCRBYFLOAT", "f", "1e5000"],
            "-ERR value is not a valid float",
        ),
        (
            &["HINCRBY", "h", "f", "x"],
            "-ERR value is not an integer or out of range",
        ),
        (
            &["HINCRBY", "h", "f", "9223372036854775807"],
            "-ERR increment or decrement would overflow",
        ),
        (
            &["HINCRBYFLOAT", "h", "f", "inf"],
            "-ERR value is NaN or Infinity",
        ),
        (
            &["DECRBY", "k", "-9223372036854775808"],
            "-ERR decrement would overflow",
        ),
        (
            &["HSET", "h", "f"],
            "-ERR wrong number of arguments for 'hset' command",
        ),
        (
            &["GET", "h"],
            "-WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (&["APPEND", "h", "x"], "-WRONGTYPE"),
        (&["RENAME", "missing", "x"], "-ERR no such key"),
        (&["FLUSHALL", "NOW"], "-ERR syntax error"),
        (&["HGET", "h", "f"], "$1"),
        (&["GET", "k"], "$v"),
    ];
    run_pipelined_script(cluster.nodes[&follower].client, script);
    let mut connection = cluster.redis(leader);
    assert_eq!(query::<i64>(&mut connection, &["DBSIZE"]), 3);
}

/// A hostile pattern — a long run after a `*` against keys that are long runs of the same
/// byte — pipelined to a follower between ordinary commands: `KEYS` and `SCAN … MATCH` are
/// refused in order with Skiff's error once matching passes its bound, the commands around
/// them are answered, and the node goes on serving.
#[test]
fn a_pattern_too_costly_to_match_pipelined_to_a_follower_is_refused_in_order() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = cluster.followers(leader)[0];
    let long = "a".repeat(16 * 1024 - 8);
    let keys: Vec<String> = (0..8).map(|i| format!("{long}{i}")).collect();
    let sets: Vec<[&str; 3]> = keys.iter().map(|key| ["SET", key.as_str(), "v"]).collect();
    let costly = format!("*{}b", "a".repeat(8_000));
    let keys_costly = ["KEYS", costly.as_str()];
    let scan_costly = ["SCAN", "0", "MATCH", costly.as_str(), "COUNT", "100"];
    let get_last = ["GET", keys[7].as_str()];
    let mut script: Vec<(&[&str], &str)> = sets.iter().map(|set| (&set[..], "+OK")).collect();
    script.push((&keys_costly, "-ERR pattern too costly"));
    script.push((&get_last, "$v"));
    script.push((&scan_costly, "-ERR pattern too costly"));
    script.push((&["KEYS", "*7"], "*1"));
    script.push((&["DBSIZE"], ":8"));
    run_pipelined_script(cluster.nodes[&follower].client, &script);
    let mut connection = cluster.redis(leader);
    assert_eq!(query::<i64>(&mut connection, &["DBSIZE"]), 8);
}
