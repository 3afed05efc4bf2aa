//! The lab's snapshot scenarios (§7): compaction keeps the durable state small, and lagging
//! followers catch up through InstallSnapshot, also over a lossy network, through crashes, and
//! across full restarts.

use skiff_raft::{LogIndex, MessageBody, NodeId};
use skiff_sim::{Cluster, ClusterOptions, NetworkOptions};

const BUDGET_MS: u64 = 10_000;

/// Snapshots every 10 entries, 5 kept below each snapshot, chunks of `chunk_bytes`.
fn snapshotting(nodes: usize, seed: u64, chunk_bytes: u64) -> ClusterOptions {
    let mut options = ClusterOptions::new(nodes).seed(seed);
    options.snapshot_every_entries = 10;
    options.snapshot_trailing_entries = 5;
    options.max_snapshot_chunk_bytes = chunk_bytes;
    options
}

fn followers(c: &Cluster, leader: NodeId) -> Vec<NodeId> {
    c.ids().iter().copied().filter(|&id| id != leader).collect()
}

#[test]
fn snapshot_basic() {
    // With tiny commands and a snapshot every 10 entries, the durable Raft state stays small.
    let mut c = Cluster::new(snapshotting(3, 61, 1024));
    for value in 1..=200 {
        c.one(value, 3, BUDGET_MS)
            .unwrap_or_else(|| panic!("v{value} commits"));
        for id in c.ids().to_vec() {
            assert!(
                c.durable_bytes(id) < 2000,
                "{id} keeps {} bytes after v{value}",
                c.durable_bytes(id)
            );
        }
    }
    for id in c.ids().to_vec() {
        assert!(
            c.snapshot_index(id) > LogIndex(150),
            "{id} snapshotted recently"
        );
    }
    assert!(c.stats().snapshots >= 3 * 15);
    c.assert_safe();
}

/// A follower misses many entries (cut off, or crashed when `crash`); when it is back, the
/// leader's log no longer holds what it needs, and it catches up from the snapshot.
fn lagging_follower_catches_up(seed: u64, unreliable: bool, crash: bool, chunk_bytes: u64) {
    let mut options = snapshotting(3, seed, chunk_bytes);
    if unreliable {
        options.network = NetworkOptions::unreliable();
    }
    let mut c = Cluster::new(options);
    let mut value = 1;
    for _round in 0..5 {
        if c.one(value, 3, BUDGET_MS).is_none() {
            panic!("all three agree\n{}", c.trace().render_recent());
        }
        value += 1;
        let leader = c.leader().expect("leader");
        let victim = followers(&c, leader)[(value % 2) as usize];
        if crash {
            c.crash(victim);
        } else {
            c.isolate(victim);
        }
        for _ in 0..30 {
            c.one(value, 2, BUDGET_MS).expect("the other two commit");
            value += 1;
        }
        let leader = c.leader().expect("leader");
        assert!(
            c.durable_first_index(leader) > c.last_index(victim).next() || crash,
            "the leader compacted past what the follower has"
        );
        if crash {
            c.restart(victim);
        } else {
            c.reconnect(victim);
        }
        c.one(value, 3, BUDGET_MS).expect("the follower caught up");
        value += 1;
    }
    assert!(
        c.stats().snapshot_installs >= 3,
        "followers caught up by snapshot ({} installs)",
        c.stats().snapshot_installs
    );
    for id in c.ids().to_vec() {
        let last = c
            .state_machine(id)
            .and_then(|kv| kv.get(skiff_sim::values::LAST_VALUE_KEY.as_bytes()))
            .map(<[u8]>::to_vec);
        assert_eq!(
            last,
            Some((value - 1).to_string().into_bytes()),
            "{id}'s state machine holds the last value"
        );
    }
    c.assert_safe();
}

#[test]
fn snapshot_install() {
    lagging_follower_catches_up(62, false, false, 1024);
}

#[test]
fn snapshot_install_unreliable() {
    // Small chunks over a lossy, reordering network: the transfer resumes where it stopped.
    lagging_follower_catches_up(63, true, false, 8);
}

#[test]
fn snapshot_install_crash() {
    lagging_follower_catches_up(64, false, true, 8);
}

#[test]
fn snapshot_install_uncrash() {
    lagging_follower_catches_up(65, true, true, 8);
}

#[test]
fn snapshot_all_crash() {
    // Crash everyone, again and again: the committed index never goes back.
    let mut c = Cluster::new(snapshotting(3, 66, 16));
    let mut value = 1;
    let mut committed = LogIndex(0);
    for _round in 0..10 {
        for _ in 0..12 {
            c.one(value, 3, BUDGET_MS).expect("commits");
            value += 1;
        }
        let leader = c.leader().expect("leader");
        assert!(c.commit(leader) >= committed, "commit went back");
        committed = c.commit(leader);
        for id in c.ids().to_vec() {
            c.crash(id);
        }
        for id in c.ids().to_vec() {
            c.restart(id);
            assert!(
                c.commit(id) >= c.snapshot_index(id),
                "a restarted node's commit covers its snapshot"
            );
        }
    }
    c.one(value, 3, BUDGET_MS)
        .expect("commits after the last restart");
    c.assert_safe();
}

#[test]
fn snapshot_init() {
    // After two full restarts the snapshot is still there, and the log after it.
    let mut c = Cluster::new(snapshotting(3, 67, 1024));
    for value in 1..=40 {
        c.one(value, 3, BUDGET_MS).expect("commits");
    }
    for _ in 0..2 {
        for id in c.ids().to_vec() {
            c.crash(id);
        }
        for id in c.ids().to_vec() {
            c.restart(id);
        }
        c.await_leader(5_000).expect("a leader after the restart");
    }
    for id in c.ids().to_vec() {
        assert!(
            c.snapshot_index(id) >= LogIndex(30),
            "{id} still has its snapshot"
        );
        assert!(
            c.durable_first_index(id) > LogIndex(1),
            "{id}'s log was compacted"
        );
    }
    c.one(41, 3, BUDGET_MS).expect("commits");
    c.assert_safe();
}

#[test]
fn stale_snapshot_is_not_installed() {
    // An InstallSnapshot delayed in the network arrives after the follower moved past it: it
    // is not installed, and nothing the follower applied goes back.
    let mut c = Cluster::new(snapshotting(3, 68, 1024));
    c.one(1, 3, BUDGET_MS).expect("commits");
    let leader = c.leader().expect("leader");
    let follower = followers(&c, leader)[0];
    c.isolate(follower);
    for value in 2..40 {
        c.one(value, 2, BUDGET_MS)
            .expect("commits without the follower");
    }
    c.hold_messages(move |m| {
        m.to == follower && matches!(m.body, MessageBody::InstallSnapshot { .. })
    });
    c.reconnect(follower);
    c.run_for(200);
    let stale = c.stop_holding();
    assert!(!stale.is_empty(), "the snapshot was held back");
    c.one(40, 3, BUDGET_MS)
        .expect("the follower caught up anyway");
    for value in 41..80 {
        c.one(value, 3, BUDGET_MS).expect("commits");
    }
    let installs = c.stats().snapshot_installs;
    let applied = c.applied(follower);
    for message in stale {
        c.deliver_later(message, 1);
    }
    c.run_for(100);
    assert_eq!(
        c.stats().snapshot_installs,
        installs,
        "the stale snapshot was not installed"
    );
    assert!(c.applied(follower) >= applied, "nothing applied went back");
    c.assert_safe();
}

#[test]
fn log_memory_stays_bounded() {
    // A long run of continuous writes with periodic snapshots: the entries any node retains
    // stay within the snapshot interval, the trailing window and what is in flight.
    let mut c = Cluster::new(snapshotting(3, 69, 1024));
    let mut most_retained = 0;
    for value in 1..=1000 {
        c.one(value, 2, BUDGET_MS).expect("commits");
        for id in c.ids().to_vec() {
            let retained = c.last_index(id).0 + 1 - c.durable_first_index(id).0;
            most_retained = most_retained.max(retained);
        }
    }
    assert!(
        most_retained <= 10 + 5 + 10,
        "at most {most_retained} entries retained"
    );
    c.assert_safe();
}
