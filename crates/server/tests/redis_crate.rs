//! Skiff through the Rust `redis` crate's typed API, as a Rust user writes it: strings, keys
//! with a time to live and revisions, pipelines, and errors, each group through the leader and
//! through each follower of a three-node cluster. (The Python side is tests/redis_py.rs.)

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{serial, TestCluster};
use redis::{
    Commands, Connection, ErrorKind, ExistenceCheck, Expiry, RedisResult, SetExpiry, SetOptions,
};

/// One command group: a scenario over a connection, its keys under `p`.
type Group = fn(&mut Connection, &str);

const GROUPS: &[(&str, Group)] = &[
    ("strings", strings),
    ("ttl and revisions", ttl_and_revisions),
    ("pipelines", pipelines),
    ("errors", errors),
];

#[test]
fn every_group_answers_through_the_leader_and_each_follower() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    for &id in cluster.nodes.keys() {
        let role = if id == leader { "leader" } else { "follower" };
        let mut connection = cluster.redis(id);
        for (name, group) in GROUPS {
            eprintln!("redis crate: {name} through the {role}, node {id}");
            group(&mut connection, &format!("node{id}:{name}:"));
        }
    }
}

fn key(p: &str, name: &str) -> String {
    format!("{p}{name}")
}

fn strings(c: &mut Connection, p: &str) {
    let (k, n) = (key(p, "k"), key(p, "n"));
    let () = c.set(&k, "v").expect("SET");
    assert_eq!(c.get::<_, Option<String>>(&k).unwrap(), Some("v".into()));
    assert_eq!(c.get::<_, Option<String>>(key(p, "none")).unwrap(), None);
    let blob: Vec<u8> = (0..=255u8).chain(*b"\r\n\0").collect();
    let () = c.set(key(p, "blob"), &blob).expect("SET of bytes");
    assert_eq!(c.get::<_, Vec<u8>>(key(p, "blob")).unwrap(), blob);

    let nx = SetOptions::default().conditional_set(ExistenceCheck::NX);
    let xx = SetOptions::default().conditional_set(ExistenceCheck::XX);
    let set: Option<String> = c.set_options(&k, "w", nx).unwrap();
    assert_eq!(set, None, "NX on a present key");
    let set: Option<String> = c.set_options(key(p, "none"), "w", xx).unwrap();
    assert_eq!(set, None, "XX on a missing key");
    let old: Option<String> = c.set_options(&k, "w", xx.get(true)).unwrap();
    assert_eq!(
        old.as_deref(),
        Some("v"),
        "SET XX GET returns the old value"
    );
    assert!(!c.set_nx::<_, _, bool>(&k, "x").unwrap());
    assert!(c.set_nx::<_, _, bool>(key(p, "setnx"), "x").unwrap());

    let () = c.mset(&[(key(p, "a"), "1"), (key(p, "b"), "2")]).unwrap();
    let got: Vec<Option<String>> = c.mget(&[key(p, "a"), key(p, "none"), key(p, "b")]).unwrap();
    assert_eq!(got, [Some("1".into()), None, Some("2".into())]);
    assert_eq!(
        c.exists::<_, i64>(&[key(p, "a"), key(p, "b"), key(p, "none")])
            .unwrap(),
        2
    );
    assert_eq!(c.del::<_, i64>(&[key(p, "a"), key(p, "none")]).unwrap(), 1);

    assert_eq!(c.incr::<_, _, i64>(&n, 1).unwrap(), 1);
    assert_eq!(c.incr::<_, _, i64>(&n, 41).unwrap(), 42);
    // The crate's `decr` sends DECRBY (a keyspace command still to come); DECR itself:
    assert_eq!(redis::cmd("DECR").arg(&n).query::<i64>(c).unwrap(), 41);
    assert_eq!(c.getset::<_, _, String>(&k, "z").unwrap(), "w");
    assert_eq!(
        c.get_del::<_, Option<String>>(&k).unwrap().as_deref(),
        Some("z")
    );
    assert_eq!(c.get_del::<_, Option<String>>(&k).unwrap(), None);
    let size: i64 = redis::cmd("DBSIZE").query(c).unwrap();
    assert!(size >= 4, "DBSIZE counts this group's keys: {size}");
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn ttl_and_revisions(c: &mut Connection, p: &str) {
    let lock = key(p, "lock");
    let acquire = SetOptions::default()
        .conditional_set(ExistenceCheck::NX)
        .with_expiration(SetExpiry::PX(1500));
    let taken: Option<String> = c.set_options(&lock, "t1", acquire).unwrap();
    assert_eq!(
        taken.as_deref(),
        Some("OK"),
        "the first holder takes the lock"
    );
    let taken: Option<String> = c.set_options(&lock, "t2", acquire).unwrap();
    assert_eq!(taken, None, "the second finds it held");
    let left: i64 = c.pttl(&lock).unwrap();
    assert!((1..=1500).contains(&left), "PTTL {left}");
    let first: Option<u64> = redis::cmd("REVISION").arg(&lock).query(c).unwrap();
    let first = first.expect("a present key has a revision");
    let renewed: bool = redis::cmd("PEXPIRE")
        .arg(&lock)
        .arg(1500)
        .arg("XX")
        .query(c)
        .unwrap();
    assert!(renewed);
    let after_renewal: Option<u64> = redis::cmd("REVISION").arg(&lock).query(c).unwrap();
    assert!(after_renewal > Some(first), "a renewal raises the revision");

    // The lease runs out with no write to the key; the next holder's token is larger.
    common::eventually(Duration::from_secs(10), "the lease to run out", || {
        (c.ttl::<_, i64>(&lock).unwrap() == -2).then_some(())
    });
    let none: Option<u64> = redis::cmd("REVISION").arg(&lock).query(c).unwrap();
    assert_eq!(none, None, "REVISION of a missing key is nil");
    let taken: Option<String> = c.set_options(&lock, "t2", acquire).unwrap();
    assert_eq!(taken.as_deref(), Some("OK"), "taken again after the lease");
    let second: Option<u64> = redis::cmd("REVISION").arg(&lock).query(c).unwrap();
    assert!(second > after_renewal, "the next holder's token is larger");

    let k = key(p, "k");
    let ex = SetOptions::default().with_expiration(SetExpiry::EX(100));
    let () = c.set_options(&k, "v", ex).unwrap();
    assert_eq!(c.ttl::<_, i64>(&k).unwrap(), 100);
    let keep = SetOptions::default().with_expiration(SetExpiry::KEEPTTL);
    let () = c.set_options(&k, "w", keep).unwrap();
    assert!(
        c.ttl::<_, i64>(&k).unwrap() > 90,
        "KEEPTTL kept the deadline"
    );
    let at = unix_seconds() + 1000;
    let () = c
        .set_options(
            &k,
            "v",
            SetOptions::default().with_expiration(SetExpiry::EXAT(at)),
        )
        .unwrap();
    assert_eq!(c.expire_time::<_, u64>(&k).unwrap(), at);
    assert_eq!(c.pexpire_time::<_, u64>(&k).unwrap(), at * 1000);
    assert!(c.persist::<_, bool>(&k).unwrap());
    assert_eq!(c.ttl::<_, i64>(&k).unwrap(), -1);
    assert!(c.expire::<_, bool>(&k, 50).unwrap());
    let gt: bool = redis::cmd("EXPIRE")
        .arg(&k)
        .arg(40)
        .arg("GT")
        .query(c)
        .unwrap();
    assert!(!gt, "GT refuses a shorter deadline");
    assert_eq!(c.ttl::<_, i64>(&k).unwrap(), 50);
    assert!(c.expire_at::<_, bool>(&k, at as i64).unwrap());
    assert_eq!(c.expire_time::<_, u64>(&k).unwrap(), at);

    let value: Option<String> = c.get_ex(&k, Expiry::PX(20_000)).unwrap();
    assert_eq!(value.as_deref(), Some("v"));
    let left: i64 = c.pttl(&k).unwrap();
    assert!((19_000..=20_000).contains(&left), "GETEX PX: {left}");
    let value: Option<String> = c.get_ex(&k, Expiry::PERSIST).unwrap();
    assert_eq!(value.as_deref(), Some("v"));
    assert_eq!(c.ttl::<_, i64>(&k).unwrap(), -1);
    let () = c.set_ex(&k, "v", 30).unwrap();
    assert_eq!(c.ttl::<_, i64>(&k).unwrap(), 30);
    let () = c.pset_ex(&k, "v", 30_000).unwrap();
    assert!(c.pttl::<_, i64>(&k).unwrap() > 29_000);
    assert_eq!(c.ttl::<_, i64>(key(p, "none")).unwrap(), -2);
}

fn pipelines(c: &mut Connection, p: &str) {
    let (a, n) = (key(p, "a"), key(p, "n"));
    let (set, got, one, six, both): (String, String, i64, i64, Vec<Option<String>>) = redis::pipe()
        .set(&a, "1")
        .get(&a)
        .incr(&n, 1)
        .incr(&n, 5)
        .mget(&[&a, &n])
        .query(c)
        .unwrap();
    assert_eq!((set.as_str(), got.as_str(), one, six), ("OK", "1", 1, 6));
    assert_eq!(both, [Some("1".into()), Some("6".into())]);

    let mut many = redis::pipe();
    for _ in 0..500 {
        many.incr(key(p, "many"), 1);
    }
    let counts: Vec<i64> = many.query(c).unwrap();
    assert_eq!(counts, (1..=500).collect::<Vec<i64>>(), "answers in order");

    // A failing command in the middle: the pipeline reports it, and the rest still ran.
    let failed: RedisResult<Vec<redis::Value>> = redis::pipe()
        .set(&a, "text")
        .incr(&a, 1)
        .set(key(p, "after"), "ran")
        .query(c);
    let error = failed.expect_err("INCR of text fails the pipeline");
    assert_eq!(error.kind(), ErrorKind::ResponseError);
    assert_eq!(
        error.detail(),
        Some("value is not an integer or out of range")
    );
    assert_eq!(c.get::<_, String>(key(p, "after")).unwrap(), "ran");
    assert_eq!(c.get::<_, String>(&a).unwrap(), "text");
}

fn errors(c: &mut Connection, p: &str) {
    let k = key(p, "k");
    let () = c.set(&k, "v").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["GET"], "wrong number of arguments for 'get' command"),
        (&["SET", "k"], "wrong number of arguments for 'set' command"),
        (
            &["EXPIRE", "k"],
            "wrong number of arguments for 'expire' command",
        ),
        (&["INCR", &k], "value is not an integer or out of range"),
        (
            &["EXPIRE", &k, "soon"],
            "value is not an integer or out of range",
        ),
        (&["SET", &k, "v", "NX", "XX"], "syntax error"),
        (
            &["SET", &k, "v", "EX", "0"],
            "invalid expire time in 'set' command",
        ),
        (&["SELECT", "16"], "DB index is out of range"),
    ];
    for (words, detail) in cases {
        let mut command = redis::cmd(words[0]);
        for word in &words[1..] {
            command.arg(*word);
        }
        let error = command
            .query::<redis::Value>(c)
            .expect_err("a refused command");
        assert_eq!(error.code(), Some("ERR"), "{words:?}: {error}");
        assert_eq!(error.detail(), Some(*detail), "{words:?}");
    }
    let unknown = redis::cmd("NOSUCHCOMMAND")
        .query::<redis::Value>(c)
        .expect_err("an unknown command");
    let text = unknown.detail().unwrap_or_default();
    assert!(
        text.starts_with("unknown command 'NOSUCHCOMMAND'"),
        "{text}"
    );
    assert_eq!(
        c.get::<_, String>(&k).unwrap(),
        "v",
        "refusals changed nothing"
    );
    assert_eq!(c.ttl::<_, i64>(&k).unwrap(), -1);
}
