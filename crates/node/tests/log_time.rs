//! Log time through real nodes: the leader stamps what it proposes, stamps never go back
//! across leaders, a key's deadline and the index at which it expires are the same on every
//! replica, and both survive a restart and a snapshot install.

mod common;

use common::{outputs, NodeCluster};
use skiff_kv::{Command, Deadline, Expiry, Reply, SetCondition, SetOptions, TimeUnit};
use skiff_node::payload::Stamped;
use skiff_node::{NoObserver, Node};
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

/// The stamps of node `id`'s log, in log order, as the entries hold them (not as the state
/// machine clamps them when it applies).
fn stamps(cluster: &NodeCluster, id: u64) -> Vec<(LogIndex, u64)> {
    let log = node(cluster, id).raw().raft().log();
    let entries = log
        .entries(log.first_index(), log.last_index().next(), u64::MAX)
        .expect("the log reads");
    entries
        .iter()
        .filter_map(|entry| match Stamped::split(&entry.data) {
            Some(Ok(stamped)) => Some((entry.index, stamped.log_time_ms)),
            _ => None,
        })
        .collect()
}

/// Asserts that the stamps along node `id`'s log never decrease.
fn assert_stamps_never_decrease(cluster: &NodeCluster, id: u64) {
    let stamps = stamps(cluster, id);
    for pair in stamps.windows(2) {
        assert!(
            pair[0].1 <= pair[1].1,
            "node {id}: the stamp at {} is earlier than the one at {}: {stamps:?}",
            pair[1].0,
            pair[0].0
        );
    }
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
        let raw = stamps(&cluster, id);
        assert_eq!(
            raw.last().map(|&(_, stamp)| stamp),
            Some(T0 + 10_000),
            "node {id}: the new leader's entry holds the floor, not its clock"
        );
        assert_stamps_never_decrease(&cluster, id);
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

/// A new leader whose log holds stamped entries it has not applied yet (their commit is not
/// known to it) and whose clock is behind them stamps its first entry no earlier than the
/// last of them: the floor is the last stamp in the log, not the state machine's log time.
/// Reference: §5.4.1, §5.4.2 (a new leader commits earlier terms' entries only through one
/// of its own, so they are unapplied when it first proposes).
#[test]
fn a_new_leader_stamps_after_the_unapplied_entries_of_its_log() {
    let mut cluster = NodeCluster::new();
    cluster.set_clock(1, T0 + 10_000);
    cluster.set_clock(2, T0);
    cluster.set_clock(3, T0);
    cluster.elect(1);
    cluster.write(1, "a", "1");
    cluster.tick(1);
    assert_eq!(node(&cluster, 2).state_machine().log_time_ms(), T0 + 10_000);

    // Node 1, its clock now 20 s ahead, replicates `b` to 2 and 3 but never hears back:
    // they hold it without knowing it is committed.
    cluster.set_clock(1, T0 + 20_000);
    cluster
        .nodes
        .get_mut(&NodeId(1))
        .expect("exists")
        .submit(900, set_px("b", "2", 1_000));
    let leader = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    leader.run(&mut NoObserver).expect("node 1 runs");
    for message in outputs(leader).messages {
        let to = cluster.nodes.get_mut(&message.to()).expect("a member");
        let _ = to.step(message);
        to.run(&mut NoObserver).expect("a follower runs");
        outputs(to);
    }
    cluster.isolated = vec![NodeId(1)];
    let b_index = node(&cluster, 2).raw().raft().log().last_index();
    assert_eq!(stamps(&cluster, 2).last(), Some(&(b_index, T0 + 20_000)));

    // Nodes 2 and 3 time out; the moment one leads, before its own first entry commits, a
    // request comes to it and the other is cut off too.
    let mut new_leader = None;
    'election: for _ in 0..100 {
        for id in [2, 3] {
            cluster.nodes.get_mut(&NodeId(id)).expect("exists").tick();
        }
        for _round in 0..20 {
            let mut messages = Vec::new();
            for id in [2, 3] {
                let n = cluster.nodes.get_mut(&NodeId(id)).expect("exists");
                n.run(&mut NoObserver).expect("runs");
                messages.extend(outputs(n).messages);
            }
            for message in messages {
                if message.to() == NodeId(1) || message.from() == NodeId(1) {
                    continue;
                }
                let to = message.to();
                let _ = cluster.nodes.get_mut(&to).expect("a member").step(message);
                new_leader = [NodeId(2), NodeId(3)]
                    .into_iter()
                    .find(|id| cluster.nodes[id].raw().raft().role() == skiff_raft::Role::Leader);
                if new_leader.is_some() {
                    break 'election;
                }
            }
        }
    }
    let new_leader = new_leader.expect("node 2 or 3 leads");
    let other = if new_leader == NodeId(2) { 3 } else { 2 };
    cluster.isolated = vec![NodeId(1), NodeId(other)];
    cluster
        .nodes
        .get_mut(&new_leader)
        .expect("exists")
        .submit(901, set_px("c", "3", 1_000));
    cluster.settle();
    let id = new_leader.0;
    let leader = node(&cluster, id);
    assert!(
        leader.applied() < b_index,
        "node {id} has not applied `b` yet"
    );
    assert_eq!(leader.state_machine().log_time_ms(), T0 + 10_000);
    assert_eq!(
        stamps(&cluster, id).last().map(|&(_, stamp)| stamp),
        Some(T0 + 20_000),
        "`c` is stamped with `b`'s stamp, not the state machine's log time nor node {id}'s clock"
    );
    assert_stamps_never_decrease(&cluster, id);
}

/// `TTL` served by a node counts down from its wall clock while nothing is written: log time
/// stays where the last entry left it, yet the answer moves on.
#[test]
fn ttl_counts_down_on_an_idle_cluster() {
    let mut cluster = NodeCluster::new();
    cluster.set_clock(1, T0);
    cluster.elect(1);
    cluster.run_command(1, set_px("k", "v", 100_000));
    cluster.set_clock(1, T0 + 40_000);
    cluster.tick(1);
    let ttl = Command::Ttl {
        key: "k".into(),
        unit: TimeUnit::Seconds,
    };
    assert_eq!(cluster.run_command(1, ttl), Some(Reply::Integer(60)));
    assert_eq!(node(&cluster, 1).state_machine().log_time_ms(), T0);
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
