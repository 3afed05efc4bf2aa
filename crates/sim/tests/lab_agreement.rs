//! The lab's agreement scenarios: replication, failures of followers and leaders, catching up,
//! backing up over divergent logs, and what it all costs in messages.

use skiff_raft::{LogIndex, NodeId, Role};
use skiff_sim::values::decode_value;
use skiff_sim::{Cluster, ClusterOptions};

const AGREEMENT_BUDGET_MS: u64 = 10_000;

fn cluster(nodes: usize, seed: u64) -> Cluster {
    Cluster::new(ClusterOptions::new(nodes).seed(seed))
}

fn followers(c: &Cluster, leader: NodeId) -> Vec<NodeId> {
    c.ids().iter().copied().filter(|&id| id != leader).collect()
}

#[test]
fn basic_agree() {
    // Commands commit one after another at consecutive indexes, right after the leader's
    // no-op and its records of the members' incarnations (made at their first answers);
    // nothing commits before it is proposed.
    let mut c = cluster(3, 11);
    let leader = c.await_leader(5_000).expect("leader");
    c.run_for(500);
    let noop = c.last_index(leader);
    for (k, value) in (101..=103).enumerate() {
        assert_eq!(
            c.count_applied(value),
            0,
            "v{value} applied before it was proposed"
        );
        let index = c
            .one(value, 3, AGREEMENT_BUDGET_MS)
            .expect("commits on all three");
        assert_eq!(index, LogIndex(noop.0 + 1 + k as u64));
    }
    c.assert_safe();
}

#[test]
fn rpc_bytes() {
    // Ten 5000-byte commands: each entry crosses the network about once per follower.
    let mut c = cluster(3, 12);
    let leader = c.await_leader(5_000).expect("leader");
    c.one(1, 3, AGREEMENT_BUDGET_MS).expect("warm-up");
    let before = c.stats().entry_bytes_sent;
    let mut payload = 0;
    for value in 2..12 {
        let proposal = c
            .propose_to(leader, value, 5000 - 8)
            .expect("leader accepts");
        assert_eq!(proposal.node, leader);
        payload += 5000;
        assert!(c.run_until(AGREEMENT_BUDGET_MS, |c| c.count_applied(value) == 3));
    }
    let sent = c.stats().entry_bytes_sent - before;
    eprintln!("rpc_bytes: {sent} bytes sent for {payload} bytes of commands");
    assert!(
        sent <= 3 * payload + 50_000,
        "sent {sent} bytes for {payload} bytes of commands"
    );
    assert!(
        sent >= 2 * payload,
        "both followers received every command ({sent} bytes)"
    );
    c.assert_safe();
}

#[test]
fn follower_failure() {
    let mut c = cluster(3, 13);
    c.one(101, 3, AGREEMENT_BUDGET_MS).expect("all three");
    let leader = c.leader().expect("leader");
    let [f1, f2] = followers(&c, leader)[..] else {
        panic!("three nodes")
    };

    // One follower gone: the other two still commit.
    c.isolate(f1);
    c.one(102, 2, AGREEMENT_BUDGET_MS)
        .expect("commits with one follower gone");
    c.one(103, 2, AGREEMENT_BUDGET_MS).expect("and again");

    // Both followers gone: nothing commits.
    c.isolate(f2);
    let leader = c
        .leader()
        .expect("the old leader still thinks it leads for a while");
    let proposal = c.propose_to(leader, 104, 0).expect("a leader accepts");
    c.run_for(2_000);
    assert_eq!(c.count_applied(104), 0, "no majority, no commit");
    assert!(c.commit(proposal.node) < proposal.index);
    c.assert_safe();
}

#[test]
fn leader_failure() {
    let mut c = cluster(3, 14);
    c.one(101, 3, AGREEMENT_BUDGET_MS).expect("all three");
    let first = c.leader().expect("leader");

    // The leader goes: the others elect a new leader and commit.
    c.isolate(first);
    c.one(102, 2, AGREEMENT_BUDGET_MS)
        .expect("a new leader commits with two");
    let second = c.leader().filter(|&l| l != first).expect("new leader");

    // That leader goes too: one node left alone with the old leader cut off — nothing commits.
    c.isolate(second);
    for id in c.ids().to_vec() {
        let _ = c.propose_to(id, 103, 0);
    }
    c.run_for(2_000);
    assert_eq!(
        c.count_applied(103),
        0,
        "nothing commits when only one node is reachable"
    );
    c.assert_safe();
}

#[test]
fn fail_agree() {
    // A follower cut off while commands commit catches up once it reconnects.
    let mut c = cluster(3, 15);
    c.one(101, 3, AGREEMENT_BUDGET_MS).expect("all three");
    let leader = c.leader().expect("leader");
    let follower = followers(&c, leader)[0];
    c.isolate(follower);
    for value in 102..=105 {
        c.one(value, 2, AGREEMENT_BUDGET_MS)
            .expect("commits without the follower");
    }
    c.reconnect(follower);
    c.one(106, 3, AGREEMENT_BUDGET_MS).expect("all three again");
    assert_eq!(
        c.applied_values(follower),
        &[101, 102, 103, 104, 105, 106],
        "the follower caught up"
    );
    c.assert_safe();
}

#[test]
fn fail_no_agree() {
    // Three of five cut off: no commit. After healing, the new leader may overwrite the
    // uncommitted index.
    let mut c = cluster(5, 16);
    c.one(10, 5, AGREEMENT_BUDGET_MS).expect("all five");
    let leader = c.leader().expect("leader");
    for &f in &followers(&c, leader)[..3] {
        c.isolate(f);
    }
    let stuck = c.propose_to(leader, 20, 0).expect("the leader accepts");
    c.run_for(2_000);
    assert_eq!(c.count_applied(20), 0, "two of five cannot commit");
    c.heal();
    let index = c
        .one(30, 5, AGREEMENT_BUDGET_MS)
        .expect("the healed cluster commits");
    assert!(
        index >= stuck.index,
        "later commands land at or after the stuck index"
    );
    let at_stuck = c
        .entry(leader, stuck.index)
        .expect("entry at the stuck index");
    if c.count_applied(20) == 0 {
        assert_ne!(
            decode_value(&at_stuck),
            Some(20),
            "the uncommitted entry was overwritten"
        );
    }
    c.assert_safe();
}

#[test]
fn concurrent_starts() {
    // Five proposals at once in one term all commit.
    let mut c = cluster(3, 17);
    let leader = c.await_leader(5_000).expect("leader");
    let term = c.term(leader);
    let proposals: Vec<_> = (1..=5)
        .map(|v| c.propose_to(leader, v, 0).expect("accepted"))
        .collect();
    assert!(proposals.iter().all(|p| p.term == term));
    assert!(c.run_until(AGREEMENT_BUDGET_MS, |c| (1..=5)
        .all(|v| c.count_applied(v) == 3)));
    assert_eq!(c.applied_values(leader), &[1, 2, 3, 4, 5]);
    c.assert_safe();
}

#[test]
fn rejoin() {
    // A partitioned old leader's uncommitted entries are overwritten when it rejoins.
    let mut c = cluster(3, 18);
    c.one(101, 3, AGREEMENT_BUDGET_MS).expect("all three");
    let old = c.leader().expect("leader");
    c.isolate(old);
    for value in [9102, 9103, 9104] {
        c.propose_to(old, value, 0)
            .expect("the cut-off leader still accepts");
    }
    c.one(103, 2, AGREEMENT_BUDGET_MS)
        .expect("the rest commit under a new leader");
    let new = c.leader().filter(|&l| l != old).expect("new leader");
    c.isolate(new);
    c.reconnect(old);
    c.one(104, 2, AGREEMENT_BUDGET_MS)
        .expect("old leader and the third node commit");
    c.heal();
    c.one(105, 3, AGREEMENT_BUDGET_MS).expect("everyone");
    for value in [9102, 9103, 9104] {
        assert_eq!(c.count_applied(value), 0, "v{value} was never committed");
    }
    assert_eq!(c.applied_values(old), &[101, 103, 104, 105]);
    c.assert_safe();
}

#[test]
fn backup() {
    // Two minority leaders leave 50 divergent entries each; the leader backs up over them
    // quickly because rejections carry conflict-term hints.
    let mut c = cluster(5, 19);
    c.one(1, 5, AGREEMENT_BUDGET_MS).expect("all five");
    let leader1 = c.leader().expect("leader");
    let others = followers(&c, leader1);
    let follower1 = others[0];

    // Leader 1 and one follower in a minority: 50 uncommitted entries.
    for &id in &others[1..] {
        c.isolate(id);
    }
    for value in 1000..1050 {
        let _ = c.propose_to(leader1, value, 0);
    }
    c.run_for(500);

    // The other three elect a leader and commit 50 entries.
    c.heal();
    c.isolate(leader1);
    c.isolate(follower1);
    for value in 2000..2050 {
        c.one(value, 3, AGREEMENT_BUDGET_MS)
            .expect("the majority commits");
    }
    let leader2 = c
        .leader()
        .filter(|l| others[1..].contains(l))
        .expect("leader of the majority");
    let other = others[1..]
        .iter()
        .copied()
        .find(|&id| id != leader2)
        .expect("a follower of leader 2");

    // Leader 2 and one follower: 50 more uncommitted entries.
    c.isolate(other);
    for value in 3000..3050 {
        let _ = c.propose_to(leader2, value, 0);
    }
    c.run_for(500);

    // Leader 1, its follower and `other` form a majority; `other` has the committed entries.
    c.heal();
    c.isolate(leader2);
    let fifth = others[1..]
        .iter()
        .copied()
        .find(|&id| id != leader2 && id != other)
        .expect("five nodes");
    c.isolate(fifth);
    for value in 4000..4050 {
        c.one(value, 3, AGREEMENT_BUDGET_MS)
            .expect("the new majority commits");
    }

    // Everyone back: all five agree. Backing up over the divergent entries (leader 1's and its
    // follower's in the third step, leader 2's now) took a few rejections, not one per entry.
    c.heal();
    c.one(5000, 5, AGREEMENT_BUDGET_MS).expect("all five agree");
    let rejections = c.stats().append_rejections;
    eprintln!("backup: {rejections} rejected appends in the whole scenario");
    assert!(
        rejections <= 10,
        "{rejections} rejected appends to back up over 50+50 divergent entries"
    );
    for id in c.ids().to_vec() {
        assert!(c.applied_values(id).ends_with(&[5000]));
        assert!(!c
            .applied_values(id)
            .iter()
            .any(|v| (1000..1050).contains(v) || (3000..3050).contains(v)));
    }
    c.assert_safe();
}

#[test]
fn count() {
    // An election costs few messages, so does each command, and an idle second costs only
    // heartbeats.
    let mut c = cluster(3, 20);
    let leader = c.await_leader(5_000).expect("leader");
    c.run_for(100);
    let election_messages = c.stats().messages;
    assert!(
        election_messages <= 30,
        "the election took {election_messages} messages"
    );
    assert_eq!(c.role(leader), Role::Leader);

    // Eleven commands, proposed one after another as each commits on the leader.
    let before = c.stats().requests;
    for value in 1..=11 {
        let proposal = c.propose_to(leader, value, 0).expect("leader accepts");
        assert!(c.run_until(2_000, |c| c.commit(leader) >= proposal.index));
    }
    let command_requests = c.stats().requests - before;
    assert!(
        command_requests <= 42,
        "11 commands took {command_requests} requests"
    );

    // One idle second.
    c.run_for(200);
    let before = c.stats().requests;
    c.run_for(1_000);
    let idle = c.stats().requests - before;
    eprintln!("count: election {election_messages} messages, 11 commands {command_requests} requests, idle second {idle} requests");
    assert!(idle <= 60, "an idle second took {idle} requests");
    assert!(
        idle >= 2 * 10,
        "heartbeats keep flowing: {idle} requests in an idle second"
    );
    c.assert_safe();
}
