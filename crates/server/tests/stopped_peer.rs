//! A peer that stops reading: its process is stopped (`SIGSTOP`) in the middle of a heavy
//! write load, so the leader's connection to it fills — the socket's buffers, then whatever
//! the leader would queue behind them (over TLS, the session's sealed records too). The
//! leader must keep committing with the other follower and hold no more memory than the load
//! itself needs; and when the peer reads again and answers every heartbeat queued for it at
//! once, the leader must catch it up a pipeline at a time (`max_inflight_bytes`), not send
//! all it lags behind in one burst. Before the core paced those answers, the leader's
//! resident memory rose by 530–640 MiB catching up a peer 192 MiB behind.

#[macro_use]
#[path = "support/attack.rs"]
mod attack;
mod common;

use std::time::{Duration, Instant};

use attack::{cluster_survived, peak_rss_mib};
use common::{eventually, serial, TestCluster};
use redis::Commands;

/// Bytes written through the leader while the peer is stopped: many times what the leader
/// may hold for it, so that holding the lag would show.
const WRITTEN_BYTES: usize = 96 * 1024 * 1024;
/// Each value's size: every write's entry is a large AppendEntries payload.
const VALUE_BYTES: usize = 16 * 1024;
/// Keys written over and over: the store itself stays small.
const KEYS: usize = 8;
/// How much more the leader may hold at its peak than before the load, during it and while
/// the peer catches up (the WAL's recent entries, a pipeline of appends to the peer as entries
/// and as frames, read and write buffers, the allocator's slack).
const GROWTH_LIMIT_MIB: u64 = 128;

fn pid(cluster: &TestCluster, id: u64) -> u32 {
    cluster.nodes[&id].child.as_ref().expect("running").id()
}

fn a_peer_that_stops_reading_cannot_make_the_leader_hold_memory(secure: bool) {
    let _serial = serial();
    let mut cluster = TestCluster::launch(3, &[], secure);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let followers = cluster.followers(leader);
    let stopped = followers[0];
    let mut connection = cluster.redis(leader);
    let _: () = connection.set("warm", "up").expect("write before the stop");
    let before = peak_rss_mib(pid(&cluster, leader));

    cluster.signal(stopped, libc::SIGSTOP);
    let started = Instant::now();
    let writes = WRITTEN_BYTES / VALUE_BYTES;
    let mut value = vec![b'v'; VALUE_BYTES];
    for i in 0..writes {
        value[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let _: () = connection
            .set(format!("hot-{}", i % KEYS), &value)
            .unwrap_or_else(|e| panic!("write {i} with node {stopped} stopped: {e}"));
    }
    let during = peak_rss_mib(pid(&cluster, leader));
    eprintln!(
        "{writes} writes of {VALUE_BYTES} bytes in {:?} with node {stopped} stopped; \
         the leader's peak resident memory {before} -> {during} MiB",
        started.elapsed()
    );
    assert!(
        during <= before + GROWTH_LIMIT_MIB,
        "the leader grew from {before} to {during} MiB while node {stopped} read nothing"
    );

    // Reading again, the peer catches up with everything committed meanwhile.
    cluster.signal(stopped, libc::SIGCONT);
    let commit = cluster.status(leader).expect("status")["commit"]
        .as_u64()
        .expect("commit");
    eventually(
        Duration::from_secs(30),
        "the stopped peer caught up",
        || {
            let applied = cluster.status(stopped)?["applied"].as_u64()?;
            (applied >= commit).then_some(())
        },
    );
    let last = writes - 1;
    let mut expected = vec![b'v'; VALUE_BYTES];
    expected[..8].copy_from_slice(&(last as u64).to_be_bytes());
    let found: Vec<u8> = cluster
        .redis(stopped)
        .get(format!("hot-{}", last % KEYS))
        .expect("read on the peer that was stopped");
    assert!(found == expected, "the last write, read on node {stopped}");
    let after = peak_rss_mib(pid(&cluster, leader));
    eprintln!("the leader's peak resident memory once node {stopped} caught up: {after} MiB");
    assert!(
        after <= before + GROWTH_LIMIT_MIB,
        "the leader grew from {before} to {after} MiB catching node {stopped} up"
    );
    cluster_survived(&mut cluster, &[]);
}

plain_and_tls! {
    a_peer_that_stops_reading_cannot_make_the_leader_hold_memory:
        a_peer_that_stops_reading_cannot_make_the_leader_hold_memory_plain,
        a_peer_that_stops_reading_cannot_make_the_leader_hold_memory_over_tls;
}
