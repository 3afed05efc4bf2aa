//! The lab's election scenarios and the seed document's election stories, in the simulator.
//! Budgets: a leader within 5 s of simulated time, agreement within 10 s.

use rand::Rng;
use skiff_raft::{NodeId, Role, Term};
use skiff_sim::{Cluster, ClusterOptions, Partition};

const LEADER_BUDGET_MS: u64 = 5_000;

fn cluster(nodes: usize, seed: u64) -> Cluster {
    Cluster::new(ClusterOptions::new(nodes).seed(seed))
}

fn terms(cluster: &Cluster) -> Vec<Term> {
    cluster.ids().iter().map(|&id| cluster.term(id)).collect()
}

fn leaders_among(cluster: &Cluster, nodes: &[NodeId]) -> Vec<NodeId> {
    nodes
        .iter()
        .copied()
        .filter(|&id| cluster.role(id) == Role::Leader)
        .collect()
}

/// With `cut` cut off, the other nodes elect exactly one leader within the budget. Returns them
/// and their leader.
fn leader_without(c: &mut Cluster, cut: NodeId) -> (Vec<NodeId>, NodeId) {
    let others: Vec<NodeId> = c.ids().iter().copied().filter(|&id| id != cut).collect();
    let elected = c.run_until(LEADER_BUDGET_MS, |c| leaders_among(c, &others).len() == 1);
    assert!(elected, "one new leader among {others:?}");
    let leader = leaders_among(c, &others)[0];
    (others, leader)
}

#[test]
fn initial_election() {
    // A fresh three-node cluster elects one leader; everyone agrees on its term, and the term
    // does not change while nothing fails.
    let mut c = cluster(3, 1);
    let leader = c
        .await_leader(LEADER_BUDGET_MS)
        .expect("a leader within 5 s");
    c.run_for(200);
    let term = c.term(leader);
    assert!(term >= Term(1));
    assert_eq!(
        terms(&c),
        vec![term; 3],
        "all nodes agree on the leader's term"
    );
    c.run_for(2_000);
    assert_eq!(terms(&c), vec![term; 3], "no failure, no new term");
    assert_eq!(c.leaders(), vec![(leader, term)]);
    c.assert_safe();
}

#[test]
fn re_election() {
    let mut c = cluster(3, 2);
    let first = c.await_leader(LEADER_BUDGET_MS).expect("first leader");

    // The leader is cut off: the other two elect a new one.
    c.isolate(first);
    let (others, second) = leader_without(&mut c, first);
    let term = c.term(second);

    // The old leader rejoins and does not disturb the new one.
    c.heal();
    c.run_for(2_000);
    assert_eq!(
        c.leaders(),
        vec![(second, term)],
        "the rejoined node follows"
    );
    assert_eq!(c.role(first), Role::Follower);

    // Two of three cut off: nobody can lead.
    let third_node = others
        .iter()
        .copied()
        .find(|&id| id != second)
        .expect("three nodes");
    c.isolate(second);
    c.isolate(third_node);
    c.run_for(2_000);
    assert!(
        c.leaders().is_empty(),
        "no leader without a majority: {:?}",
        c.leaders()
    );

    // Heal: a leader again.
    c.heal();
    assert!(c.await_leader(LEADER_BUDGET_MS).is_some());
    c.assert_safe();
}

#[test]
fn many_elections() {
    // Seven nodes; repeatedly cut three at random: the remaining four always find exactly one leader.
    let mut c = cluster(7, 3);
    c.await_leader(LEADER_BUDGET_MS).expect("first leader");
    for round in 0..10 {
        let mut connected = c.ids().to_vec();
        for _ in 0..3 {
            let k = c.rng().gen_range(0..connected.len());
            let node = connected.remove(k);
            c.isolate(node);
        }
        let one_current_leader = |c: &Cluster| {
            let leaders = leaders_among(c, &connected);
            let highest = connected
                .iter()
                .map(|&id| c.term(id))
                .max()
                .unwrap_or_default();
            leaders.len() == 1 && c.term(leaders[0]) == highest
        };
        assert!(
            c.run_until(LEADER_BUDGET_MS, one_current_leader),
            "round {round}: one leader among {connected:?}"
        );
        c.heal();
        c.run_for(500);
    }
    c.assert_safe();
}

#[test]
fn seed_follower_partition_rejoins_without_disruption() {
    // A leads at term 1 with 50 ms heartbeats; B is cut off for long enough that, without
    // PreVote, it would have reached term 8. With PreVote and CheckQuorum (the defaults) B
    // never raises its term, and when it rejoins A stays leader and no term changes.
    let mut c = cluster(3, 4);
    let a = c.await_leader(LEADER_BUDGET_MS).expect("leader");
    let term = c.term(a);
    assert_eq!(term, Term(1));
    let b = c
        .ids()
        .iter()
        .copied()
        .find(|&id| id != a)
        .expect("a follower");
    c.isolate(b);
    c.run_for(8 * 600 + 500); // eight election timeouts at the longest
    assert_eq!(
        c.term(b),
        term,
        "PreVote: an isolated follower does not raise its term"
    );
    c.heal();
    c.run_for(3_000);
    assert_eq!(c.leaders(), vec![(a, term)], "A is still leader");
    assert_eq!(terms(&c), vec![term; 3], "no term changed");
    c.assert_safe();
}

#[test]
fn seed_follower_partition_deposes_leader_without_prevote() {
    // The same story with PreVote off: B's term climbs while it is cut off; when it rejoins,
    // its higher term makes A step down and a new leader is elected. Entries were written while
    // B was away, so B's log is behind and B cannot win.
    let mut options = ClusterOptions::new(3).seed(5);
    options.pre_vote = false;
    let mut c = Cluster::new(options);
    let a = c.await_leader(LEADER_BUDGET_MS).expect("leader");
    let b = c
        .ids()
        .iter()
        .copied()
        .find(|&id| id != a)
        .expect("a follower");
    c.isolate(b);
    for value in 1..=3 {
        c.one(value, 2, 5_000)
            .expect("writes commit on the majority");
    }
    assert!(
        c.run_until(20_000, |c| c.term(b) >= Term(8)),
        "B's term climbs while it is cut off"
    );
    let b_term = c.term(b);
    c.heal();
    assert!(
        c.run_until(2_000, |c| c.role(a) != Role::Leader || c.term(a) >= b_term),
        "A hears B's term"
    );
    assert!(c.term(a) >= b_term, "A adopted B's higher term");
    let new_leader = c.await_leader(LEADER_BUDGET_MS).expect("a new leader");
    assert_ne!(new_leader, b, "B's log is behind: it cannot win");
    assert!(c.term(new_leader) > Term(1));
    c.assert_safe();
}

#[test]
fn seed_leader_partition() {
    // The leader is cut off; the others elect a new leader in a higher term; the old leader
    // rejoins, sees the higher term and becomes a follower.
    let mut c = cluster(3, 6);
    let old = c.await_leader(LEADER_BUDGET_MS).expect("leader");
    let old_term = c.term(old);
    c.isolate(old);
    let (_, new) = leader_without(&mut c, old);
    assert!(c.term(new) > old_term);
    c.heal();
    assert!(c.run_until(2_000, |c| c.role(old) == Role::Follower
        && c.term(old) == c.term(new)));
    assert_eq!(c.leaders(), vec![(new, c.term(new))]);
    c.assert_safe();
}

#[test]
fn seed_split_vote() {
    // Every node campaigns at the same moment, so the first election can split; randomized
    // timeouts break the tie and one leader emerges.
    let mut options = ClusterOptions::new(5).seed(7);
    options.pre_vote = false;
    let mut c = Cluster::new(options);
    c.run_for(1);
    for id in c.ids().to_vec() {
        c.campaign_now(id);
    }
    c.run_for(100);
    assert!(
        c.leaders().is_empty(),
        "each candidate voted for itself: term 1 has no winner"
    );
    assert_eq!(terms(&c), vec![Term(1); 5]);
    let leader = c
        .await_leader(LEADER_BUDGET_MS)
        .expect("randomized timeouts resolve the split");
    assert!(c.term(leader) > Term(1), "a later term has a winner");
    assert!(c.stats().elections >= 5, "all five campaigned");
    c.assert_safe();
}

#[test]
fn prevote_checkquorum_majorities_ring() {
    // Five nodes in a majorities ring: each sees a different majority. The leader keeps a
    // majority, and the nodes that cannot see it are refused by nodes that can (they are in the
    // leader's lease), so the leader stays. PreVote alone or CheckQuorum alone is not enough.
    let mut c = cluster(5, 8);
    let leader = c.await_leader(LEADER_BUDGET_MS).expect("leader");
    let term = c.term(leader);
    c.one(1, 5, 5_000)
        .expect("every node holds the same log before the ring forms");
    c.partition(Partition::MajoritiesRing);
    c.run_for(10_000);
    assert_eq!(
        c.leaders(),
        vec![(leader, term)],
        "the leader survives the ring"
    );
    assert!(
        terms(&c).iter().all(|&t| t == term),
        "no term changed: {:?}",
        terms(&c)
    );
    c.assert_safe();

    // The same ring with only one of the two defences: the leader is disrupted.
    for (pre_vote, check_quorum) in [(true, false), (false, true)] {
        let mut options = ClusterOptions::new(5).seed(8);
        options.pre_vote = pre_vote;
        options.check_quorum = check_quorum;
        let mut c = Cluster::new(options);
        let leader = c.await_leader(LEADER_BUDGET_MS).expect("leader");
        let term = c.term(leader);
        c.one(1, 5, 5_000)
            .expect("every node holds the same log before the ring forms");
        c.partition(Partition::MajoritiesRing);
        c.run_for(10_000);
        assert!(
            terms(&c).iter().any(|&t| t > term),
            "pre_vote={pre_vote} check_quorum={check_quorum}: the ring raises some term"
        );
        c.assert_safe();
    }
}
