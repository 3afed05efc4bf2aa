//! Keys with a time to live and revisions through real `skiff serve` processes and the
//! `redis` client: a key set with `PX` on the leader is read on a follower, then expires on
//! every node and leaves the key count; the `EXPIRE` family answers as Redis does (times that
//! overflow are refused naming the command sent); a lock taken again after its holder's TTL
//! ran out gets a larger fencing token (`REVISION`).

mod common;

use std::time::Duration;

use common::{eventually, query, run_pipelined_script, serial, TestCluster};
use redis::{Connection, Value};

/// The leader's id and a follower's, once there is a leader.
fn leader_and_a_follower(cluster: &TestCluster) -> [u64; 2] {
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    [leader, cluster.followers(leader)[0]]
}

fn keys_in_status(cluster: &TestCluster, id: u64) -> Option<u64> {
    cluster.status(id)?.get("keys")?.as_u64()
}

#[test]
fn a_key_set_with_px_expires_on_every_node_and_leaves_the_key_count() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let mut on_leader = cluster.redis(leader);
    let _: () = query(&mut on_leader, &["SET", "stays", "1"]);
    let ok: String = query(&mut on_leader, &["SET", "brief", "v", "PX", "1500"]);
    assert_eq!(ok, "OK");
    for id in cluster.followers(leader) {
        let mut on_follower = cluster.redis(id);
        let value: Option<String> = query(&mut on_follower, &["GET", "brief"]);
        assert_eq!(
            value.as_deref(),
            Some("v"),
            "node {id} reads it before it expires"
        );
        let left: i64 = query(&mut on_follower, &["PTTL", "brief"]);
        assert!((1..=1500).contains(&left), "node {id}: PTTL {left}");
        let size: i64 = query(&mut on_follower, &["DBSIZE"]);
        assert_eq!(size, 2);
    }
    // No write comes: the leader's entry carrying the time removes the key everywhere.
    for id in 1..=3 {
        let mut connection = cluster.redis(id);
        eventually(Duration::from_secs(10), "the key to expire", || {
            let size: i64 = query(&mut connection, &["DBSIZE"]);
            (size == 1).then_some(())
        });
        let value: Option<String> = query(&mut connection, &["GET", "brief"]);
        assert_eq!(value, None, "node {id}");
        let ttl: i64 = query(&mut connection, &["TTL", "brief"]);
        assert_eq!(ttl, -2, "node {id}: a missing key");
        let ttl: i64 = query(&mut connection, &["TTL", "stays"]);
        assert_eq!(ttl, -1, "node {id}: a key without a deadline");
        eventually(Duration::from_secs(5), "the status key count", || {
            (keys_in_status(&cluster, id) == Some(1)).then_some(())
        });
    }
}

#[test]
fn the_expire_family_answers_as_redis_does_on_leader_and_follower() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    for id in leader_and_a_follower(&cluster) {
        let mut c = cluster.redis(id);
        let k = format!("k{id}");
        let k = k.as_str();
        let _: () = query(&mut c, &["SET", k, "v"]);
        let answers: Vec<(Vec<&str>, i64)> = vec![
            (vec!["TTL", k], -1),
            (vec!["EXPIRE", k, "100", "XX"], 0),
            (vec!["EXPIRE", k, "100", "GT"], 0),
            (vec!["EXPIRE", k, "100", "NX"], 1),
            (vec!["EXPIRE", k, "50", "GT"], 0),
            (vec!["EXPIRE", k, "200", "GT"], 1),
            (vec!["TTL", k], 200),
            (vec!["PEXPIRE", k, "5000", "LT"], 1),
            (vec!["PERSIST", k], 1),
            (vec!["PERSIST", k], 0),
            (vec!["PEXPIREAT", k, "99999999999000"], 1),
            (vec!["EXPIRETIME", k], 99999999999),
            (vec!["PEXPIRETIME", k], 99999999999000),
            (vec!["EXPIRE", "missing", "10"], 0),
            (vec!["TTL", "missing"], -2),
            (vec!["EXPIRETIME", "missing"], -2),
        ];
        for (words, expected) in answers {
            let got: i64 = query(&mut c, &words);
            assert_eq!(got, expected, "node {id}: {words:?}");
        }
        // GETEX changes the deadline, GETDEL removes the key, SETEX and GETSET set one.
        let value: String = query(&mut c, &["GETEX", k, "EX", "30"]);
        assert_eq!(value, "v");
        let ttl: i64 = query(&mut c, &["TTL", k]);
        assert!((29..=30).contains(&ttl), "node {id}: TTL {ttl}");
        let value: String = query(&mut c, &["GETSET", k, "w"]);
        assert_eq!(value, "v");
        let ttl: i64 = query(&mut c, &["TTL", k]);
        assert_eq!(ttl, -1, "GETSET clears the deadline");
        let _: () = query(&mut c, &["SETEX", k, "40", "x"]);
        let ttl: i64 = query(&mut c, &["TTL", k]);
        assert!((39..=40).contains(&ttl), "node {id}: TTL {ttl}");
        let _: Value = query(&mut c, &["INCR", "n"]);
        let value: String = query(&mut c, &["GETDEL", k]);
        assert_eq!(value, "x");
        let exists: i64 = query(&mut c, &["EXISTS", k]);
        assert_eq!(exists, 0);
        // An expire time in the past deletes the key.
        let _: () = query(&mut c, &["SET", k, "v"]);
        let deleted: i64 = query(&mut c, &["EXPIRE", k, "-1"]);
        assert_eq!(deleted, 1);
        let exists: i64 = query(&mut c, &["EXISTS", k]);
        assert_eq!(exists, 0);
        // Errors come back word for word.
        let error = redis::cmd("SET")
            .arg(k)
            .arg("v")
            .arg("EX")
            .arg("0")
            .query::<Value>(&mut c)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("invalid expire time in 'set' command"),
            "{error}"
        );
        let error = redis::cmd("EXPIRE")
            .arg(k)
            .arg("1")
            .arg("NX")
            .arg("GT")
            .query::<Value>(&mut c)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("NX and XX, GT or LT options at the same time are not compatible"),
            "{error}"
        );
        // As in Redis 7: a time option given again takes the last time; GETEX on a missing
        // key answers nil whatever the time, and judges it only on a present key.
        let _: () = query(&mut c, &["SET", k, "v", "EX", "0", "EX", "100"]);
        let ttl: i64 = query(&mut c, &["TTL", k]);
        assert!((99..=100).contains(&ttl), "{ttl}");
        let value: String = query(&mut c, &["GETEX", k, "EX", "10", "EX", "20"]);
        assert_eq!(value, "v");
        let ttl: i64 = query(&mut c, &["TTL", k]);
        assert!((19..=20).contains(&ttl), "{ttl}");
        for time in [&["EX", "0"][..], &["PX", "9223372036854775807"]] {
            let missing: Option<String> =
                query(&mut c, &[&["GETEX", "no-such-key"][..], time].concat());
            assert_eq!(missing, None, "{time:?}");
            let error = redis::cmd("GETEX")
                .arg(k)
                .arg(time)
                .query::<Value>(&mut c)
                .unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("invalid expire time in 'getex' command"),
                "{error}"
            );
        }
        let ttl: i64 = query(&mut c, &["TTL", k]);
        assert!(
            (19..=20).contains(&ttl),
            "the refused GETEX changed nothing: {ttl}"
        );
    }
}

/// The error `words` answer (panics if they succeed).
fn error_of(connection: &mut Connection, words: &[&str]) -> String {
    let mut command = redis::cmd(words[0]);
    for word in &words[1..] {
        command.arg(*word);
    }
    match command.query::<Value>(connection) {
        Ok(value) => panic!("{words:?} answered {value:?}, not an error"),
        Err(error) => error.to_string(),
    }
}

/// Times that overflow 64 bits (added to the clock where they are relative) are refused
/// naming the command the client sent, on a present or missing key, and change nothing;
/// `GETEX` judges its time only once it found the key. Each answer is redis-server 7.0.15's.
#[test]
fn overflowing_times_are_refused_naming_the_command_sent_as_redis_does() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let max = "9223372036854775807";
    // In seconds: fits in milliseconds, overflows once the clock is added.
    let secs = "9223372036854775";
    for id in leader_and_a_follower(&cluster) {
        let mut c = cluster.redis(id);
        let k = format!("over{id}");
        let k = k.as_str();
        let _: () = query(&mut c, &["SET", k, "v"]);
        let refused: Vec<(Vec<&str>, &str)> = vec![
            (vec!["EXPIRE", k, secs], "expire"),
            (vec!["EXPIRE", "missing", max], "expire"),
            (vec!["PEXPIRE", k, max], "pexpire"),
            (vec!["PEXPIRE", "missing", "9223372036854775000"], "pexpire"),
            (vec!["EXPIREAT", k, max], "expireat"),
            (vec!["SET", k, "w", "EX", secs], "set"),
            (vec!["SET", k, "w", "PX", max], "set"),
            (vec!["SET", k, "w", "EXAT", max], "set"),
            (vec!["SETEX", k, secs, "w"], "setex"),
            (vec!["SETEX", k, max, "w"], "setex"),
            (vec!["PSETEX", k, max, "w"], "psetex"),
            (vec!["PSETEX", k, "9223372036854775000", "w"], "psetex"),
            (vec!["GETEX", k, "EX", max], "getex"),
            (vec!["GETEX", k, "PX", max], "getex"),
            (vec!["GETEX", k, "EXAT", max], "getex"),
        ];
        for (words, name) in refused {
            let error = error_of(&mut c, &words);
            assert!(
                error.contains(&format!("invalid expire time in '{name}' command")),
                "node {id}: {words:?} answered {error}"
            );
        }
        let value: Option<String> = query(&mut c, &["GET", k]);
        assert_eq!(value.as_deref(), Some("v"), "node {id}: nothing changed");
        let ttl: i64 = query(&mut c, &["TTL", k]);
        assert_eq!(ttl, -1, "node {id}: no deadline was set");
        // A time that is not an integer: nil for a missing key, an error for a present one.
        let missing: Option<String> = query(&mut c, &["GETEX", "missing", "EX", "abc"]);
        assert_eq!(missing, None, "node {id}");
        let error = error_of(&mut c, &["GETEX", k, "EX", "abc"]);
        assert!(
            error.contains("value is not an integer or out of range"),
            "node {id}: {error}"
        );
        // Absolute times are not added to the clock: the largest is taken.
        let set: i64 = query(&mut c, &["PEXPIREAT", k, max]);
        assert_eq!(set, 1, "node {id}");
        let at: i64 = query(&mut c, &["PEXPIRETIME", k]);
        assert_eq!(at, i64::MAX, "node {id}");
    }
}

#[test]
fn a_lock_taken_again_after_its_ttl_gets_a_larger_fencing_token() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = cluster.followers(leader)[0];
    let mut first = cluster.redis(follower);
    let mut second = cluster.redis(leader);

    let taken: Option<String> = query(&mut first, &["SET", "lock", "holder-1", "NX", "PX", "800"]);
    assert_eq!(taken.as_deref(), Some("OK"));
    let token_1: i64 = query(&mut first, &["REVISION", "lock"]);
    let refused: Option<String> =
        query(&mut second, &["SET", "lock", "holder-2", "NX", "PX", "800"]);
    assert_eq!(refused, None, "the lock is held");

    // The first holder goes quiet; its TTL runs out and the second takes the lock.
    let token_2 = eventually(Duration::from_secs(10), "the lock to be free", || {
        let taken: Option<String> = query(
            &mut second,
            &["SET", "lock", "holder-2", "NX", "PX", "60000"],
        );
        taken?;
        Some(query::<i64>(&mut second, &["REVISION", "lock"]))
    });
    assert!(
        token_2 > token_1,
        "the later holder's token {token_2} is larger than {token_1}"
    );
    let holder: String = query(&mut first, &["GET", "lock"]);
    assert_eq!(holder, "holder-2");
    let missing: Option<i64> = query(&mut first, &["REVISION", "nothing"]);
    assert_eq!(missing, None);
}

#[test]
fn nonsense_expiry_arguments_pipelined_in_one_write_are_refused_in_order_and_nothing_else_changes()
{
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = cluster.followers(leader)[0];
    // Each request with the reply it must get, all sent at once to a follower (which forwards
    // its writes): a careless or hostile client's times, overflows and option mixes.
    let script: &[(&[&str], &str)] = &[
        (&["SET", "k", "v", "EX"], "-ERR syntax error"),
        (
            &["SET", "k", "v", "EX", "99999999999999999999"],
            "-ERR value is not an integer or out of range",
        ),
        (
            &["SET", "k", "v", "PX", "-5"],
            "-ERR invalid expire time in 'set' command",
        ),
        (
            &["SET", "k", "v", "EX", "10", "PX", "10"],
            "-ERR syntax error",
        ),
        (&["SET", "k", "v", "NX", "XX"], "-ERR syntax error"),
        (&["PEXPIREAT", "k", "9223372036854775807"], ":0"),
        (&["GET", "k"], "$-1"),
        (&["SET", "k", "v"], "+OK"),
        (
            &["EXPIRE", "k", "9223372036854775807"],
            "-ERR invalid expire time in 'expire' command",
        ),
        // Redis names `pexpire` here; the overflow is found at apply, where EXPIRE and its kin
        // are one command, so the name is not yet Redis's.
        (
            &["PEXPIRE", "k", "9223372036854775807"],
            "-ERR invalid expire time in '",
        ),
        (&["EXPIRE", "k", "10", "NX", "XX"], "-ERR"),
        (&["GETEX", "k", "PERSIST", "EX", "1"], "-ERR syntax error"),
        (&["TTL", "k"], ":-1"),
        (&["GET", "k"], "$v"),
        (
            &["SETEX", "k", "0", "w"],
            "-ERR invalid expire time in 'setex' command",
        ),
        (&["GET", "k"], "$v"),
    ];
    run_pipelined_script(cluster.nodes[&follower].client, script);
    // The node still serves, and the key holds the one value written, with no TTL.
    let mut connection = cluster.redis(leader);
    assert_eq!(query::<String>(&mut connection, &["GET", "k"]), "v");
    assert_eq!(query::<i64>(&mut connection, &["TTL", "k"]), -1);
}
