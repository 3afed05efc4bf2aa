//! Replacing every founding node, one by one, with nodes that join through a member
//! (`skiff serve --join <a member's HTTP address>`, no `--initial-cluster`), then growing the
//! cluster while a node that joined later leads: a writer runs throughout, and every write it
//! saw acknowledged is readable from every node at the end.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{eventually, serial, TestCluster};
use redis::Commands;

/// Writes `w-N` = N for growing N to the nodes whose client addresses `targets` holds, moving
/// to the next node on an error; keeps the N of every acknowledged write.
struct Writer {
    targets: Arc<Mutex<Vec<SocketAddr>>>,
    acked: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(targets: Vec<SocketAddr>) -> Writer {
        let targets = Arc::new(Mutex::new(targets));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (targets, acked, stop) = (targets.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                let mut turn = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let target = {
                        let targets = targets.lock().unwrap();
                        targets[turn % targets.len()]
                    };
                    let written = redis::Client::open(format!("redis://{target}/"))
                        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                        .and_then(|mut c| {
                            c.set_read_timeout(Some(Duration::from_secs(6)))?;
                            // A connection serves writes until it fails.
                            while !stop.load(Ordering::Relaxed)
                                && targets.lock().unwrap().contains(&target)
                            {
                                n += 1;
                                let _: () = c.set(format!("w-{n}"), n)?;
                                acked.lock().unwrap().push(n);
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            Ok(())
                        });
                    if written.is_err() {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    turn += 1;
                }
            })
        };
        Writer {
            targets,
            acked,
            stop,
            thread: Some(thread),
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits for `more` acknowledged writes beyond those so far: writes keep succeeding.
    fn wait_for_more(&self, more: usize, stage: &str) {
        let from = self.acked();
        eventually(
            Duration::from_secs(15),
            &format!("{more} more writes acknowledged {stage}"),
            || (self.acked() >= from + more).then_some(()),
        );
    }

    fn set_targets(&self, targets: Vec<SocketAddr>) {
        *self.targets.lock().unwrap() = targets;
    }

    fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("the writer");
        self.acked.lock().unwrap().clone()
    }
}

/// The leader that a majority of `ids` (the running members) agree on, waiting for one.
fn leader_among(cluster: &TestCluster, ids: &[u64]) -> u64 {
    eventually(Duration::from_secs(15), "a leader", || {
        current_leader(cluster, ids)
    })
}

/// The leader that a majority of `ids` agree on now, if any.
fn current_leader(cluster: &TestCluster, ids: &[u64]) -> Option<u64> {
    let statuses: Vec<_> = ids.iter().filter_map(|&id| cluster.status(id)).collect();
    let leader = statuses.iter().find(|s| s["role"] == "leader")?;
    let (id, term) = (leader["id"].as_u64()?, leader["term"].as_u64());
    let agreeing = statuses
        .iter()
        .filter(|s| s["leader"].as_u64() == Some(id) && s["term"].as_u64() == term)
        .count();
    (agreeing * 2 > ids.len()).then_some(id)
}

/// Writes before the first snapshot, more than the log keeps after one.
const BURST: usize = 1_500;

fn status_u64(cluster: &TestCluster, id: u64, field: &str) -> Option<u64> {
    cluster.status(id)?[field].as_u64()
}

fn peer_messages_dropped(cluster: &TestCluster, id: u64) -> u64 {
    let metrics = cluster.http_get(id, "/metrics").expect("metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("skiff_peer_messages_dropped_total "))
        .and_then(|v| v.parse().ok())
        .expect("the dropped-messages counter is exported")
}

/// Starts node `new` with `--join <via's HTTP address>`, adds it as a learner, waits until it
/// has caught up (promote refuses a learner that has not) and promotes it. Returns how many
/// peer messages the joiner dropped by the time it was a voter.
fn join_and_promote(cluster: &mut TestCluster, writer: &Writer, new: u64, via: u64) -> u64 {
    cluster.start_joining_through(new, via);
    let via_http = cluster.nodes[&via].http.to_string();
    // The joiner tells its operator the command to run next.
    let log_line = format!(
        "skiff admin --addr {via_http} add-learner --id {new} --peer-addr {}",
        cluster.nodes[&new].peer_proxy
    );
    eventually(Duration::from_secs(10), "the joiner's next step", || {
        cluster.node_log(new).contains(&log_line).then_some(())
    });
    let peer_addr = cluster.nodes[&new].peer_proxy.to_string();
    let id = new.to_string();
    assert!(cluster.admin_ok(
        via,
        &["add-learner", "--id", &id, "--peer-addr", &peer_addr]
    ));
    let leader = status_u64(cluster, via, "leader").expect("a leader known");
    let commit = status_u64(cluster, leader, "commit").expect("leader's commit");
    eventually(Duration::from_secs(20), "the joiner to catch up", || {
        (status_u64(cluster, new, "applied")? >= commit).then_some(())
    });
    writer.wait_for_more(20, &format!("while node {new} catches up"));
    eventually(Duration::from_secs(20), "the promotion", || {
        cluster
            .admin_ok(via, &["promote", "--id", &id])
            .then_some(())
    });
    eventually(Duration::from_secs(10), "the joiner to be a voter", || {
        (cluster.member_kind(new, new).as_deref() == Some("voter")).then_some(())
    });
    peer_messages_dropped(cluster, new)
}

/// Stops writing to `old`, removes it through `via` and stops it.
fn remove_and_stop(cluster: &mut TestCluster, writer: &Writer, old: u64, via: u64, rest: &[u64]) {
    writer.set_targets(rest.iter().map(|id| cluster.nodes[id].client).collect());
    let id = old.to_string();
    eventually(Duration::from_secs(20), "the removal", || {
        cluster
            .admin_ok(via, &["remove", "--id", &id])
            .then_some(())
    });
    eventually(Duration::from_secs(10), "the removed node to leave", || {
        (cluster.member_kind(via, old).is_none()).then_some(())
    });
    cluster.kill(old);
    leader_among(cluster, rest);
    writer.wait_for_more(20, &format!("after node {old} left"));
}

/// Snapshots every node in `ids` now (`skiff admin snapshot`), so that a node joining next
/// catches up from a snapshot rather than from the log's first entry.
fn snapshot_all(cluster: &TestCluster, ids: &[u64]) {
    for &id in ids {
        assert!(cluster.admin_ok(id, &["snapshot"]), "snapshot on node {id}");
    }
}

#[test]
fn every_founding_node_is_replaced_and_the_cluster_grows_under_a_later_leader() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    let writer = Writer::start((1..=3).map(|id| cluster.nodes[&id].client).collect());
    writer.wait_for_more(50, "on the founding cluster");

    // Node 4 joins through node 2 after every node compacted its log (which keeps the last
    // 1,024 entries: a burst of writes goes first): it catches up by snapshot.
    let burst: Vec<String> = (0..BURST).map(|i| format!("b-{i}")).collect();
    let mut pipe = redis::pipe();
    for key in &burst {
        pipe.set(key, key).ignore();
    }
    let _: () = pipe.query(&mut cluster.redis(2)).expect("the burst");
    snapshot_all(&cluster, &[1, 2, 3]);
    join_and_promote(&mut cluster, &writer, 4, 2);
    assert!(
        status_u64(&cluster, 4, "snapshot_index").unwrap_or(0) > 0,
        "node 4 caught up from a snapshot"
    );
    remove_and_stop(&mut cluster, &writer, 1, 2, &[2, 3, 4]);

    // A node that joined later leads from now on: node 5 joins through it (the case where a
    // joiner's replies to a leader it had no address for were dropped).
    // A transfer may give up (the target must catch up within an election timeout): give
    // each one a second before asking again.
    eventually(Duration::from_secs(30), "node 4 to lead", || {
        if current_leader(&cluster, &[2, 3, 4]) == Some(4) {
            return Some(());
        }
        cluster.admin_ok(2, &["transfer-leader", "--to", "4"]);
        std::thread::sleep(Duration::from_secs(1));
        None
    });
    let dropped_5 = join_and_promote(&mut cluster, &writer, 5, 4);
    remove_and_stop(&mut cluster, &writer, 2, 4, &[3, 4, 5]);

    snapshot_all(&cluster, &[3, 4, 5]);
    let dropped_6 = join_and_promote(&mut cluster, &writer, 6, 5);
    remove_and_stop(&mut cluster, &writer, 3, 5, &[4, 5, 6]);

    // No founding node is left; a fourth node joins while a later node leads.
    let leader = leader_among(&cluster, &[4, 5, 6]);
    assert!(leader >= 4, "a node that joined later leads");
    let dropped_7 = join_and_promote(&mut cluster, &writer, 7, 6);
    writer.set_targets((4..=7).map(|id| cluster.nodes[&id].client).collect());
    writer.wait_for_more(50, "on the replaced cluster");
    let acked = writer.finish();

    // The joiners dropped next to nothing, and stop dropping once they take part.
    for (id, dropped) in [(5, dropped_5), (6, dropped_6), (7, dropped_7)] {
        assert!(
            dropped < 50,
            "node {id} dropped {dropped} peer messages while joining"
        );
    }
    let settled = peer_messages_dropped(&cluster, 7);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        peer_messages_dropped(&cluster, 7) <= settled + 5,
        "node 7 keeps dropping peer messages"
    );

    // Every acknowledged write, from every stage, is on every node.
    for id in 4..=7 {
        let values: Vec<Option<String>> = cluster.redis(id).mget(&burst).expect("the burst");
        let present = burst
            .iter()
            .zip(&values)
            .filter(|(k, v)| v.as_ref() == Some(*k));
        assert_eq!(present.count(), burst.len(), "the burst on node {id}");
    }
    assert!(
        acked.len() >= 300,
        "only {} writes acknowledged",
        acked.len()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    for id in 4..=7 {
        let mut connection = cluster.redis(id);
        for chunk in acked.chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|n| format!("w-{n}")).collect();
            let values: Vec<Option<u64>> = loop {
                match connection.mget(&keys) {
                    Ok(values) => break values,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                        connection = cluster.redis(id);
                    }
                    Err(error) => panic!("reading from node {id}: {error}"),
                }
            };
            for (n, value) in chunk.iter().zip(values) {
                assert_eq!(value, Some(*n), "w-{n} on node {id}");
            }
        }
    }

    // A restart needs no --join; one that names a member of another cluster is refused, and
    // one that names a member of its own starts.
    cluster.kill(7);
    let other = answer_once(
        r#"{"cluster_id":12345,"initial_cluster":{"1":"127.0.0.1:9"},"members":[],"leader":null}"#,
    );
    let node = &cluster.nodes[&7];
    let refused = std::process::Command::new(common::skiff_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(&node.dir)
        .args(["--join", &other.to_string()])
        .args(["--listen-client", &node.client.to_string()])
        .args(["--listen-peer", &node.peer.to_string()])
        .args(["--listen-http", &node.http.to_string()])
        .output()
        .expect("skiff runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("is a member of cluster 0x3039"), "{stderr}");
    cluster.spawn(7);
    let commit = status_u64(&cluster, 4, "commit").expect("commit");
    eventually(Duration::from_secs(20), "node 7 back and caught up", || {
        (status_u64(&cluster, 7, "applied")? >= commit).then_some(())
    });
}

#[test]
fn a_removed_node_added_back_at_another_peer_address_is_reached_there() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    write_through(&cluster, 1, "before", "1");
    // Two voters tolerate no failure, so the guard wants --force, as the operator would pass.
    eventually(Duration::from_secs(20), "the removal", || {
        cluster
            .admin_ok(1, &["remove", "--id", "3", "--force"])
            .then_some(())
    });
    eventually(Duration::from_secs(10), "node 3 to leave", || {
        cluster.member_kind(1, 3).is_none().then_some(())
    });
    cluster.kill(3);
    write_through(&cluster, 1, "away", "2");

    // Node 3 comes back with its data directory on another peer port, which the log records
    // before it is a learner again: the members must dial it there, not where it was.
    let moved: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .expect("an address");
    let node = cluster.nodes.get_mut(&3).expect("node 3");
    (node.peer, node.peer_proxy) = (moved, moved);
    let moved = moved.to_string();
    eventually(Duration::from_secs(20), "node 3 added back", || {
        cluster
            .admin_ok(1, &["add-learner", "--id", "3", "--peer-addr", &moved])
            .then_some(())
    });
    cluster.spawn(3);
    let leader = leader_among(&cluster, &[1, 2]);
    let commit = status_u64(&cluster, leader, "commit").expect("the leader's commit");
    eventually(Duration::from_secs(20), "node 3 to catch up", || {
        (status_u64(&cluster, 3, "applied")? >= commit).then_some(())
    });
    eventually(Duration::from_secs(20), "the promotion", || {
        cluster.admin_ok(1, &["promote", "--id", "3"]).then_some(())
    });
    let recorded = cluster.status(1).expect("node 1's status")["members"]
        .as_array()
        .and_then(|members| members.iter().find(|m| m["id"] == 3).cloned())
        .expect("node 3 a member");
    assert_eq!(recorded["peer_addr"], moved.as_str());
    eventually(
        Duration::from_secs(10),
        "the write made while away, on node 3",
        || {
            let away: Option<String> = cluster.redis(3).get("away").ok()?;
            (away.as_deref() == Some("2")).then_some(())
        },
    );
}

/// Sets `key` through node `via`, again while the write is refused (node 3 may have led when
/// it was removed).
fn write_through(cluster: &TestCluster, via: u64, key: &str, value: &str) {
    eventually(
        Duration::from_secs(20),
        &format!("the write of {key}"),
        || cluster.redis(via).set::<_, _, ()>(key, value).ok(),
    );
}

/// An HTTP server on loopback that answers one request with `body` (as JSON).
fn answer_once(body: &'static str) -> SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}
