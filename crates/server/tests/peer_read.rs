//! Plain TCP peer connections are read by the driver thread itself once their Hello is
//! accepted (`transport/inbound.rs`). What a hostile or careless peer sends on such a
//! connection is refused exactly as the reader task refused it — the connection closed,
//! logged and counted, the node serving on — and a peer that floods frames cannot keep the
//! driver from its clients or its ticks.

#[macro_use]
#[path = "support/attack.rs"]
mod attack;
mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attack::{acknowledged_writes, closed_by_server, cluster_survived, connect_peer};
use common::{eventually, peer_frame as frame, peer_hello as hello, serial, TestCluster};
use redis::Commands;
use skiff_node::{wire, PeerMessage};
use skiff_raft::{Message, MessageBody, NodeId, Term};

/// A message frame from `from` to `to`, of incarnation `incarnation`.
fn message(cluster_id: u64, incarnation: u64, from: u64, to: u64, term: u64) -> Vec<u8> {
    let mut payload = Vec::new();
    let message = PeerMessage::Raft(Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body: MessageBody::TimeoutNow,
    });
    wire::encode_envelope(
        &skiff_node::Envelope::new(incarnation, message),
        &mut payload,
    );
    frame(cluster_id, 1, &payload)
}

fn cluster_id(cluster: &TestCluster, id: u64) -> u64 {
    cluster.status(id).expect("status")["cluster_id"]
        .as_u64()
        .expect("cluster id")
}

fn term(cluster: &TestCluster, id: u64) -> u64 {
    cluster.status(id).expect("status")["term"]
        .as_u64()
        .expect("term")
}

#[test]
fn what_the_reader_task_refused_the_driver_refuses_and_the_node_serves_on() {
    let _serial = serial();
    let mut cluster = TestCluster::launch(3, &[], false);
    let kept = acknowledged_writes(&cluster, "kept", 10);
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let followers = cluster.followers(leader);
    let (follower, other) = (followers[0], followers[1]);
    let id = cluster_id(&cluster, leader);
    let incarnation = cluster.incarnation(follower);
    let refused_before = cluster.errors_counted(leader, "peer_connection_refused");

    let mut oversized = (5u32 * 1024 * 1024).to_le_bytes().to_vec();
    oversized.push(wire::WIRE_VERSION);
    oversized.extend_from_slice(&id.to_le_bytes());
    oversized.push(1);
    oversized.extend_from_slice(&[0u8; 64 * 1024]);
    let mut truncated = message(id, incarnation, follower, leader, 1);
    truncated.pop();
    let other_sender = message(id, incarnation, other, leader, 1);
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "garbage",
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            "frame version 47, expected".into(),
        ),
        (
            "an oversized frame",
            oversized,
            "frame of 5242880 bytes exceeds the limit of 4194304".into(),
        ),
        (
            "another cluster's frame",
            frame(0x5eed, 1, &[0u8; 16]),
            "peer belongs to cluster 0x5eed".into(),
        ),
        (
            "a second Hello",
            hello(id, follower, "127.0.0.1:1", "127.0.0.1:2"),
            "unexpected frame kind 0".into(),
        ),
        (
            "a payload that does not decode",
            frame(id, 1, &[0xff; 40]),
            "malformed payload".into(),
        ),
        (
            "a message from another node",
            other_sender,
            format!("on the connection of node {follower}"),
        ),
        (
            "a frame cut short",
            truncated,
            "i/o: unexpected end of file".into(),
        ),
    ];
    for (what, bytes, logged) in &cases {
        let mut stream = connect_peer(&cluster, leader, follower).expect("a peer connection");
        let mut sent = hello(id, follower, "127.0.0.1:1", "127.0.0.1:2");
        sent.extend_from_slice(bytes);
        stream.write_all(&sent).expect("sent");
        stream.flush().expect("flushed");
        if *what == "a frame cut short" {
            // The rest never comes: the peer closes its side.
            let _ = stream.socket().shutdown(std::net::Shutdown::Write);
        }
        assert!(
            closed_by_server(&mut stream, Duration::from_secs(5)),
            "{what}: the connection stayed open"
        );
        eventually(Duration::from_secs(5), what, || {
            cluster
                .node_log(leader)
                .contains(logged.as_str())
                .then_some(())
        });
    }
    assert!(
        cluster.errors_counted(leader, "peer_connection_refused")
            >= refused_before + cases.len() as u64
    );

    // A valid frame dribbled a byte at a time reaches the node whole, across many reads: a
    // TimeoutNow from a follower is refused by the core (only the leader may send it),
    // logged and counted, and the connection stays open.
    let stepped_before = cluster.errors_counted(leader, "peer_message_refused");
    let mut stream = connect_peer(&cluster, leader, follower).expect("a peer connection");
    stream
        .write_all(&hello(id, follower, "127.0.0.1:1", "127.0.0.1:2"))
        .expect("hello");
    let term = term(&cluster, leader);
    for byte in message(id, incarnation, follower, leader, term) {
        stream.write_all(&[byte]).expect("a byte");
        stream.flush().expect("flushed");
        std::thread::sleep(Duration::from_millis(5));
    }
    eventually(Duration::from_secs(5), "the dribbled frame stepped", || {
        (cluster.errors_counted(leader, "peer_message_refused") > stepped_before).then_some(())
    });
    assert!(!closed_by_server(&mut stream, Duration::from_millis(500)));
    drop(stream);
    cluster_survived(&mut cluster, &kept);
}

#[test]
fn a_peer_flooding_frames_does_not_stop_the_node_answering_clients() {
    flood_and_write(1);
}

/// Sixteen connections flooding at once share each turn's frames (2,048 in all, at least 64
/// each), so the driver's turn stays short and the leader's ticks and heartbeats go on.
#[test]
fn sixteen_peers_flooding_frames_at_once_do_not_stop_the_node_answering_clients() {
    flood_and_write(16);
}

/// `connections` peer connections each send frames as fast as the socket takes them, while
/// 200 writes go to the leader.
fn flood_and_write(connections: usize) {
    let _serial = serial();
    let mut cluster = TestCluster::launch(3, &[], false);
    let kept = acknowledged_writes(&cluster, "kept", 10);
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let follower = cluster.followers(leader)[0];
    let id = cluster_id(&cluster, leader);
    let term_before = term(&cluster, leader);
    let refused_before = cluster.errors_counted(leader, "wrong_incarnation");

    // As fast as the sockets take them: frames from a follower of another incarnation,
    // each read, decoded and stepped by the leader's driver (and refused there).
    let one = message(id, u64::MAX, follower, leader, term_before);
    let burst: Arc<Vec<u8>> =
        Arc::new(one.iter().copied().cycle().take(one.len() * 4096).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let flooding: Vec<_> = (0..connections)
        .map(|_| {
            let mut flood = connect_peer(&cluster, leader, follower).expect("a peer connection");
            flood
                .write_all(&hello(id, follower, "127.0.0.1:1", "127.0.0.1:2"))
                .expect("hello");
            let (stop, burst) = (stop.clone(), burst.clone());
            std::thread::spawn(move || {
                let mut bursts = 0u64;
                while !stop.load(Ordering::Relaxed) && flood.write_all(&burst).is_ok() {
                    bursts += 1;
                }
                bursts
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    // Meanwhile every write is answered, none refused for a full queue, and none waits long.
    let slowest = slowest_of_writes(&cluster, leader, "during-flood", 200);
    stop.store(true, Ordering::Relaxed);
    let bursts: u64 = flooding
        .into_iter()
        .map(|f| f.join().expect("a flooding thread"))
        .sum();
    eprintln!(
        "{connections} connections, {bursts} bursts of 4096 frames; slowest write {slowest:?}"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "a write waited {slowest:?}"
    );
    // The flood reached the driver's step, and the leader kept its term and leadership
    // (its ticks and heartbeats went on).
    assert!(cluster.errors_counted(leader, "wrong_incarnation") > refused_before + 10_000);
    assert_eq!(term(&cluster, leader), term_before);
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(5)), leader);
    cluster_survived(&mut cluster, &kept);
}

fn post(http: std::net::SocketAddr, path: &str) -> u16 {
    match ureq::post(&format!("http://{http}{path}"))
        .timeout(Duration::from_secs(10))
        .call()
    {
        Ok(response) => response.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(_) => 0,
    }
}

/// The live view's "cut off" (fault injection) drops what the driver reads from its peers:
/// the others elect a new leader in a higher term, which the cut-off node never hears of
/// until it is healed; then it follows it.
#[test]
fn a_node_cut_off_by_fault_injection_hears_nothing_its_driver_reads_until_healed() {
    let _serial = serial();
    let mut cluster = TestCluster::launch(3, &["--allow-fault-injection"], false);
    let kept = acknowledged_writes(&cluster, "kept", 5);
    let old = cluster.wait_for_leader(Duration::from_secs(5));
    let http = cluster.nodes[&old].http;
    assert_eq!(post(http, "/admin/isolate?on=true"), 200);
    let new = cluster.wait_for_leader_among(&cluster.followers(old), Duration::from_secs(10));
    let new_term = term(&cluster, new);
    std::thread::sleep(Duration::from_secs(1));
    // The new leader's heartbeats reached the cut-off node's socket and were dropped there.
    let status = cluster.status(old).expect("status");
    assert!(
        status["term"].as_u64().expect("term") < new_term,
        "{status}"
    );
    assert_ne!(status["leader"].as_u64(), Some(new), "{status}");

    assert_eq!(post(http, "/admin/isolate?on=false"), 200);
    eventually(Duration::from_secs(10), "the healed node to follow", || {
        let status = cluster.status(old)?;
        (status["leader"].as_u64() == Some(new) && status["role"] == "follower").then_some(())
    });
    cluster_survived(&mut cluster, &kept);
}

/// Peers that each announce a frame just under the size limit, send half of it and then hold
/// their connections open: the driver reads what is there without waiting for the rest, so
/// the leader answers every write meanwhile, and each half frame waits in that connection's
/// buffer, bounded by the frame limit, until the peer gives up and the connection is dropped.
#[test]
fn peers_holding_half_a_large_frame_open_do_not_stall_the_driver() {
    let _serial = serial();
    let mut cluster = TestCluster::launch(3, &[], false);
    let kept = acknowledged_writes(&cluster, "kept", 10);
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let follower = cluster.followers(leader)[0];
    let id = cluster_id(&cluster, leader);
    let term_before = term(&cluster, leader);

    // Length (4 MiB - 1, within the default 4 MiB limit), version, cluster, kind, then half
    // the payload.
    let claimed = 4 * 1024 * 1024 - 1u32;
    let mut half = claimed.to_le_bytes().to_vec();
    half.push(wire::WIRE_VERSION);
    half.extend_from_slice(&id.to_le_bytes());
    half.push(1);
    half.extend_from_slice(&vec![0u8; claimed as usize / 2]);
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = connect_peer(&cluster, leader, follower).expect("a peer connection");
        let mut sent = hello(id, follower, "127.0.0.1:1", "127.0.0.1:2");
        sent.extend_from_slice(&half);
        stream.write_all(&sent).expect("half a frame");
        stream.flush().expect("flushed");
        held.push(stream);
    }

    let slowest = slowest_of_writes(&cluster, leader, "while-held", 100);
    assert!(
        slowest < Duration::from_secs(2),
        "a write waited {slowest:?}"
    );
    assert_eq!(term(&cluster, leader), term_before);
    drop(held);
    cluster_survived(&mut cluster, &kept);
    let again: i64 = cluster
        .redis(leader)
        .get("while-held-99")
        .expect("read back");
    assert_eq!(again, 99);
}

/// Writes `prefix-0` … `prefix-{count - 1}` to `node` one after the other, each answered OK;
/// the longest any of them took.
fn slowest_of_writes(cluster: &TestCluster, node: u64, prefix: &str, count: u64) -> Duration {
    let mut connection = cluster.redis(node);
    let mut slowest = Duration::ZERO;
    for i in 0..count {
        let started = Instant::now();
        let _: () = connection
            .set(format!("{prefix}-{i}"), i)
            .unwrap_or_else(|e| panic!("write {prefix}-{i}: {e}"));
        slowest = slowest.max(started.elapsed());
    }
    slowest
}
