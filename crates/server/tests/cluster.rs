//! Real `skiff serve` processes on loopback: replication through every node, crashes,
//! partitions and pauses, checked through the `redis` client.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, serial, TestCluster};
use redis::{Commands, Connection, RedisResult};

fn set(connection: &mut Connection, key: &str, value: &str) -> RedisResult<()> {
    connection.set(key, value)
}

fn get(connection: &mut Connection, key: &str) -> RedisResult<Option<String>> {
    connection.get(key)
}

#[test]
fn writes_and_reads_go_through_every_node() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    for writer in 1..=3 {
        let key = format!("written-at-{writer}");
        set(&mut cluster.redis(writer), &key, "v").expect("write accepted");
        for reader in 1..=3 {
            assert_eq!(
                get(&mut cluster.redis(reader), &key).expect("read served"),
                Some("v".to_string()),
                "node {reader} reads what node {writer} acknowledged"
            );
        }
    }
    let mut connection = cluster.redis(2);
    let cas: i64 = redis::cmd("CAS")
        .arg("written-at-1")
        .arg("v")
        .arg("w")
        .query(&mut connection)
        .expect("cas");
    assert_eq!(cas, 1);
    let cas: i64 = redis::cmd("CAS")
        .arg("written-at-1")
        .arg("v")
        .arg("x")
        .query(&mut connection)
        .expect("cas");
    assert_eq!(cas, 0, "the value is no longer the expected one");
    let info: String = redis::cmd("INFO").query(&mut connection).expect("info");
    assert!(
        info.contains("# Raft") && info.contains("node_id:2"),
        "{info}"
    );
}

#[test]
fn killing_the_leader_elects_a_new_one_that_serves_writes_and_loses_nothing() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let survivor = (1..=3).find(|&id| id != leader).expect("a follower");
    let mut acknowledged = Vec::new();
    for i in 0..50 {
        let key = format!("before-{i}");
        set(&mut cluster.redis(leader), &key, "v").expect("write");
        acknowledged.push(key);
    }
    cluster.kill(leader);
    let killed_at = Instant::now();
    let mut connection = cluster.redis(survivor);
    eventually(Duration::from_secs(5), "a write on the new leader", || {
        set(&mut connection, "after", "v").ok()
    });
    let failover = killed_at.elapsed();
    assert!(
        failover < Duration::from_secs(2),
        "a new leader served a write {failover:?} after the kill"
    );
    for key in &acknowledged {
        assert_eq!(get(&mut connection, key).expect("read"), Some("v".into()));
    }
}

#[test]
fn killing_every_node_mid_load_loses_no_acknowledged_write_and_applies_none_twice() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Four clients increment their own counter and count the increments acknowledged; a
    // failed increment may or may not have applied.
    let workers: Vec<_> = (1..=4u64)
        .map(|worker| {
            let stop = stop.clone();
            let mut connection = cluster.redis(worker % 3 + 1);
            std::thread::spawn(move || {
                let (mut acknowledged, mut attempted) = (0i64, 0i64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    attempted += 1;
                    let result: RedisResult<i64> = connection.incr(format!("counter-{worker}"), 1);
                    match result {
                        Ok(_) => acknowledged += 1,
                        Err(_) => break,
                    }
                }
                (worker, acknowledged, attempted)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    for id in 1..=3 {
        cluster.kill(id);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let counts: Vec<_> = workers
        .into_iter()
        .map(|w| w.join().expect("worker"))
        .collect();
    for id in 1..=3 {
        cluster.spawn(id);
    }
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let mut connection = cluster.redis(leader);
    for (worker, acknowledged, attempted) in counts {
        let value: Option<i64> = connection.get(format!("counter-{worker}")).expect("read");
        let value = value.unwrap_or(0);
        assert!(
            acknowledged > 0,
            "worker {worker} made progress before the crash"
        );
        assert!(
            value >= acknowledged,
            "worker {worker}: {acknowledged} increments acknowledged, {value} survived"
        );
        assert!(
            value <= attempted,
            "worker {worker}: {value} increments applied, only {attempted} sent"
        );
    }
}

#[test]
fn an_isolated_leader_answers_nothing_and_the_majority_goes_on() {
    let _serial = serial();
    let cluster = TestCluster::start_with(3, &["--request-timeout-ms", "2000"]);
    let old = cluster.wait_for_leader(Duration::from_secs(5));
    set(&mut cluster.redis(old), "k", "before").expect("write");
    let mut old_connection = cluster.redis(old);
    cluster.isolate(&[old]);
    let majority: Vec<u64> = (1..=3).filter(|&id| id != old).collect();
    let new = cluster.wait_for_leader_among(&majority, Duration::from_secs(5));
    assert_ne!(new, old);
    set(&mut cluster.redis(majority[0]), "k", "after").expect("the majority takes writes");

    let started = Instant::now();
    let write = set(&mut old_connection, "k", "minority");
    assert!(write.is_err(), "the minority refused the write: {write:?}");
    let read = get(&mut old_connection, "k");
    assert!(read.is_err(), "the minority refused the read: {read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "errors came within the request timeout, not as hangs"
    );

    cluster.heal();
    let mut healed = cluster.redis(old);
    let value = eventually(Duration::from_secs(10), "the old leader to rejoin", || {
        get(&mut healed, "k").ok()
    });
    assert_eq!(value, Some("after".to_string()));
}

#[test]
fn a_paused_leader_serves_no_stale_read_when_it_wakes() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let old = cluster.wait_for_leader(Duration::from_secs(5));
    set(&mut cluster.redis(old), "k", "old").expect("write");
    let mut old_connection = cluster.redis(old);
    cluster.signal(old, libc::SIGSTOP);
    let majority: Vec<u64> = (1..=3).filter(|&id| id != old).collect();
    cluster.wait_for_leader_among(&majority, Duration::from_secs(5));
    set(&mut cluster.redis(majority[0]), "k", "new").expect("write on the new leader");
    cluster.signal(old, libc::SIGCONT);
    // Whatever the woken node answers, it is never the value overwritten while it slept.
    match get(&mut old_connection, "k") {
        Ok(value) => assert_eq!(value, Some("new".to_string())),
        Err(error) => eprintln!("the woken node refused the read: {error}"),
    }
    let value = eventually(Duration::from_secs(10), "a read on the woken node", || {
        get(&mut old_connection, "k").ok()
    });
    assert_eq!(value, Some("new".to_string()));
}
