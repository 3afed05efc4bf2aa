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
    // Each node's log goes to a file, not a terminal: plain text, no colour codes.
    for id in 1..=3 {
        let log = cluster.node_log(id);
        assert!(log.contains("INFO"), "node {id} logged: {log}");
        assert!(!log.contains('\x1b'), "node {id}'s log holds colour codes");
    }
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
    kill_every_node_mid_load(&[]);
}

#[test]
fn with_a_writer_thread_syncing_batches_a_crash_still_loses_no_acknowledged_write() {
    kill_every_node_mid_load(&["--sync-thread"]);
}

/// Four clients increment counters on a cluster started with `args`; every node is killed
/// with SIGKILL mid-load and restarted; each counter must hold at least the increments
/// acknowledged and at most those sent.
fn kill_every_node_mid_load(args: &[&str]) {
    let _serial = serial();
    let mut cluster = TestCluster::start_with(3, args);
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

#[test]
fn metrics_are_exported_in_the_prometheus_text_format() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    for i in 0..10 {
        set(&mut cluster.redis(follower), &format!("m{i}"), "v").expect("write");
    }
    // Gauges are published at each tick (10 ms).
    std::thread::sleep(Duration::from_millis(100));
    let text = common::http_get(cluster.nodes[&leader].http, "/metrics").expect("metrics");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text");
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("{name} {label:?} is exported:\n{text}"));
        match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.last().map(|b| b.count).unwrap_or(0.0)
            }
            other => panic!("{name}: unexpected {other:?}"),
        }
    };
    assert!(value("skiff_term", None) >= 1.0);
    assert_eq!(value("skiff_role", Some(("role", "leader"))), 1.0);
    assert_eq!(value("skiff_role", Some(("role", "follower"))), 0.0);
    assert!(value("skiff_commit_index", None) >= 11.0);
    assert!(value("skiff_applied_index", None) >= 11.0);
    assert!(value("skiff_elections_won_total", None) >= 1.0);
    assert!(value("skiff_leader_changes_total", None) >= 1.0);
    assert!(
        value("skiff_proposals_total", None) >= 10.0,
        "forwarded writes proposed here"
    );
    assert!(value("skiff_fsync_duration_seconds", None) >= 1.0);
    assert!(value("skiff_append_batch_entries", None) >= 1.0);
    assert_eq!(
        value("skiff_wal_segment_files", Some(("kind", "segment"))),
        1.0
    );
    assert_eq!(
        value("skiff_wal_segment_files", Some(("kind", "spare"))),
        0.0
    );
    assert_eq!(value("skiff_wal_segments_recycled_total", None), 0.0);
    assert!(
        value(
            "skiff_peer_messages_sent_total",
            Some(("peer", &follower.to_string()))
        ) >= 10.0
    );
    assert!(
        value(
            "skiff_peer_bytes_sent_total",
            Some(("peer", &follower.to_string()))
        ) > 0.0
    );
    for metric in [
        "skiff_last_log_index",
        "skiff_snapshot_index",
        "skiff_keys",
        "skiff_pending_requests",
        "skiff_elections_started_total",
        "skiff_client_connections",
        "skiff_peer_messages_dropped_total",
    ] {
        value(metric, None);
    }
    value("skiff_snapshots_total", Some(("event", "taken")));
    value("skiff_errors_total", Some(("kind", "protocol")));

    // Every metric the sample Grafana dashboard queries is exported.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana-dashboard.json"
    ))
    .expect("the dashboard");
    let exported: std::collections::BTreeSet<&str> =
        scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    let mut queried: Vec<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("skiff_"))
        .map(|word| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(word)
        })
        .collect();
    queried.dedup();
    assert!(
        queried.len() >= 10,
        "the dashboard queries metrics: {queried:?}"
    );
    for metric in queried {
        assert!(
            exported.contains(metric),
            "the dashboard queries {metric}, which is not exported"
        );
    }

    let text = common::http_get(cluster.nodes[&follower].http, "/metrics").expect("metrics");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text");
    let forwarded = scrape
        .samples
        .iter()
        .find(|s| s.metric == "skiff_forwarded_requests_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => 0.0,
        });
    assert_eq!(
        forwarded,
        Some(10.0),
        "the follower forwarded its ten writes"
    );
    let writes = scrape.samples.iter().find(|s| {
        s.metric == "skiff_request_duration_seconds_count"
            || (s.metric == "skiff_request_duration_seconds"
                && s.labels.get("kind") == Some("write"))
    });
    assert!(writes.is_some(), "write latencies are recorded:\n{text}");
}
