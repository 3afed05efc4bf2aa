//! Log time through real nodes: the leader stamps what it proposes, stamps never go back
//! across leaders, a key's deadline and the index at which it expires are the same on every
//! replica, and both survive a restart and a snapshot install.

mod common;

use common::NodeCluster;
use skiff_kv::{Command, Deadline, Expiry, Reply, SetCondition, SetOptions};
use skiff_node::payload::Stamped;
use skiff_node::Node;
use skiff_raft::{LogIndex, NodeId};
use skiff_wal::MemDisk;

const T0: u64 = 1_700_000_000_000;

fn set_px(key: &str, value: &str, ms: i64) -> Command {
    Command::SetWith {
        key: key.into(),
        value: value.into(),
        options: SetOptions {
            condition: SetCondition::Always,
            expiry: Expiry::Until(Deadline::In(ms)),
            get: false,
        },
    }
}

fn node(cluster: &NodeCluster, id: u64) -> &Node<MemDisk> {
    cluster.node(id)
}

/// What node `id` knows of `key`: its value, deadline and revision, and its log time.
fn view(cluster: &NodeCluster, id: u64, key: &str) -> (Option<Vec<u8>>, Option<u64>, Option<u64>) {
    let kv = node(cluster, id).state_machine();
    (
        kv.get(key.as_bytes()).map(<[u8]>::to_vec),
        kv.deadline_ms(key.as_bytes()),
        kv.revision(key.as_bytes()),
    )
}

/// The indexes of the entries in node `id`'s log that carry only the time.
fn time_entries(cluster: &NodeCluster, id: u64) -> Vec<LogIndex> {
    let log = node(cluster, id).raw().raft().log();
    let entries = log
        .entries(log.first_index(), log.last_index().next(), u64::MAX)
        .expect("the log reads");
    entries
        .iter()
        .filter(|entry| matches!(Stamped::split(&entry.data), Some(Ok(s)) if s.request.is_empty()))
        .map(|entry| entry.index)
        .collect()
}

/// A relative TTL becomes the same absolute deadline on every replica — counted from the
/// leader's stamp, not from each node's own (skewed) clock — and the key is removed at the
/// same index everywhere by an entry carrying only the time, once the leader's clock passes
/// the deadline; a node cut off meanwhile learns it from a snapshot, and a restart keeps it.
#[test]
fn a_deadline_and_its_expiry_are_the_same_on_every_replica_through_restart_and_snapshot() {
    let mut cluster = NodeCluster::new();
    cluster.set_clock(1, T0);
    cluster.set_clock(2, T0 + 5_000);
    cluster.set_clock(3, T0 - 3_000);
    cluster.elect(1);
    // Written through a follower whose clock runs 5 s ahead: the leader stamps it.
    assert_eq!(
        cluster.run_command(2, set_px("k", "v", 2_000)),
        Some(Reply::Ok)
    );
    cluster.run_command(1, set_px("long", "v", 3_600_000));
    for id in 1..=3 {
        let (value, deadline, revision) = view(&cluster, id, "k");
        assert_eq!(value.as_deref(), Some(&b"v"[..]), "node {id}");
        assert_eq!(deadline, Some(T0 + 2_000), "node {id}");
        assert_eq!(revision, view(&cluster, 1, "k").2, "node {id}");
        assert_eq!(node(&cluster, id).state_machine().log_time_ms(), T0);
    }

    // Node 3 is cut off; the leader's clock passes the deadline with no write coming.
    cluster.isolated = vec![NodeId(3)];
    cluster.set_clock(1, T0 + 1_999);
    cluster.tick(1);
    assert_eq!(time_entries(&cluster, 1), [], "no deadline passed yet");
    cluster.set_clock(1, T0 + 2_000);
    cluster.tick(1);
    let [expired_at] = time_entries(&cluster, 1)[..] else {
        panic!("one entry carrying the time");
    };
    cluster.tick(3);
    assert_eq!(time_entries(&cluster, 1), [expired_at], "and only one");
    assert_eq!(time_entries(&cluster, 2), [expired_at]);
    for id in 1..=2 {
        assert_eq!(view(&cluster, id, "k"), (None, None, None), "node {id}");
        let kv = node(&cluster, id).state_machine();
        assert_eq!(kv.log_time_ms(), T0 + 2_000);
        assert!(kv.applied_index() >= expired_at.0);
        assert_eq!(kv.len(), 1, "the expired key's memory is reclaimed");
    }

    // Enough writes for the leader to compact past node 3, which then gets a snapshot.
    for i in 0..12 {
        cluster.write(1, &format!("w{i}"), "x");
    }
    cluster.tick(2);
    cluster.isolated.clear();
    cluster.tick(10);
    assert!(
        node(&cluster, 3).raw().raft().log().first_index() > expired_at,
        "node 3 caught up from a snapshot taken after the expiry"
    );
    let long = view(&cluster, 1, "long");
    assert_eq!(long.1, Some(T0 + 3_600_000));
    for id in 1..=3 {
        assert_eq!(view(&cluster, id, "k"), (None, None, None), "node {id}");
        assert_eq!(view(&cluster, id, "long"), long, "node {id}");
    }
    assert_eq!(
        node(&cluster, 3).state_machine().snapshot(),
        node(&cluster, 1).state_machine().snapshot(),
        "node 3 holds what the others hold, deadlines and revisions included"
    );

    // A restart reads the same deadlines and log time back from its snapshot and log.
    let before_restart = node(&cluster, 2).state_machine().snapshot();
    cluster.reopen(2);
    cluster.settle();
    assert_eq!(node(&cluster, 2).state_machine().snapshot(), before_restart);
}

/// A new leader whose clock is behind the last stamp in its log stamps with that stamp, not
/// its clock: log time never goes back, so a TTL counted from it may stretch by the skew and
/// never shrinks. Reference: §5.4.1 (the new leader's log holds every committed stamp).
#[test]
fn a_leader_with_a_slow_clock_never_stamps_earlier_than_its_log() {
    let mut cluster = NodeCluster::new();
    cluster.set_clock(1, T0 + 10_000);
    cluster.set_clock(2, T0);
    cluster.set_clock(3, T0);
    cluster.elect(1);
    cluster.run_command(1, set_px("a", "1", 1_000));
    cluster.tick(1);
    assert_eq!(view(&cluster, 2, "a").1, Some(T0 + 11_000));

    // Node 1 goes away; node 2 or 3, ten seconds behind, takes over.
    cluster.isolated = vec![NodeId(1)];
    let leads = |cluster: &NodeCluster, id: u64| {
        node(cluster, id).raw().raft().role() == skiff_raft::Role::Leader
    };
    for _ in 0..100 {
        if leads(&cluster, 2) || leads(&cluster, 3) {
            break;
        }
        cluster.tick(1);
    }
    let new_leader = if leads(&cluster, 2) { 2 } else { 3 };
    assert!(leads(&cluster, new_leader), "a new leader among 2 and 3");
    cluster.run_command(new_leader, set_px("b", "2", 1_000));
    cluster.tick(1);
    for id in 2..=3 {
        let kv = node(&cluster, id).state_machine();
        assert_eq!(
            kv.log_time_ms(),
            T0 + 10_000,
            "node {id}: time did not go back"
        );
        assert_eq!(kv.deadline_ms(b"b"), Some(T0 + 11_000), "node {id}");
        assert_eq!(
            kv.get(b"a"),
            Some(&b"1"[..]),
            "node {id}: a is not expired early"
        );
    }

    // Its clock catches up: time moves on from there, and `a` and `b` expire together.
    cluster.set_clock(new_leader, T0 + 11_000);
    cluster.tick(2);
    for id in 2..=3 {
        let kv = node(&cluster, id).state_machine();
        assert_eq!(kv.log_time_ms(), T0 + 11_000);
        assert!(kv.is_empty(), "node {id}");
    }
}

/// A leader with no deadline to watch proposes nothing however long it idles, and a key
/// without a TTL never causes an entry.
#[test]
fn an_idle_leader_without_deadlines_proposes_nothing() {
    let mut cluster = NodeCluster::new();
    cluster.set_clock(1, T0);
    cluster.elect(1);
    cluster.write(1, "plain", "v");
    for step in 1..=20 {
        cluster.set_clock(1, T0 + step * 60_000);
        cluster.tick(1);
    }
    assert_eq!(time_entries(&cluster, 1), []);
    assert_eq!(cluster.value(2, "plain").as_deref(), Some(&b"v"[..]));
}
