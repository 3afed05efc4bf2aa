//! Membership changes by joint consensus (§6) in the simulator.

use skiff_kv::Reply;
use skiff_raft::{ConfChange, ConfChangeStep, LogIndex, NodeId, ProposeError, Role};
use skiff_sim::{Cluster, ClusterOptions, Partition, Refused};

const BUDGET_MS: u64 = 10_000;

fn cluster(nodes: usize, pool: usize, seed: u64) -> Cluster {
    let mut options = ClusterOptions::new(nodes).seed(seed);
    options.pool_size = pool;
    Cluster::new(options)
}

fn ids(list: &[u64]) -> Vec<NodeId> {
    list.iter().map(|&id| NodeId(id)).collect()
}

/// Proposes `steps` to the leader, retrying while another change is in flight, and waits until
/// the leader's configuration no longer is joint and satisfies `done`.
fn change(c: &mut Cluster, steps: Vec<ConfChangeStep>, done: impl Fn(&Cluster) -> bool) {
    let accepted = c.run_until(BUDGET_MS, |c| c.leader().is_some())
        && (0..200).any(|_| {
            let leader = c.leader().expect("leader");
            let result = c.propose_conf_change(
                leader,
                ConfChange {
                    steps: steps.clone(),
                },
            );
            if result.is_err() {
                c.run_for(50);
            }
            result.is_ok()
        });
    assert!(accepted, "the leader accepted {steps:?}");
    let applied = c.run_until(BUDGET_MS, |c| {
        c.leader()
            .is_some_and(|leader| !c.conf(leader).is_joint() && done(c))
    });
    assert!(
        applied,
        "{steps:?} took effect; leader conf {:?}",
        c.leader().map(|l| c.conf(l))
    );
}

/// The node's error reply when its core refuses a proposal with `error`.
fn refused(error: ProposeError) -> Refused {
    Refused::Reply(Reply::error(format!("ERR {error}")))
}

fn voters_are(c: &Cluster, expected: &[u64]) -> bool {
    c.leader()
        .is_some_and(|leader| c.conf(leader).voters == ids(expected))
}

#[test]
fn add_a_node_to_a_three_node_cluster_under_load() {
    let mut c = cluster(3, 4, 71);
    let mut value = 1;
    c.one(value, 3, BUDGET_MS).expect("commits");
    c.start_node(NodeId(4));
    change(&mut c, vec![ConfChangeStep::AddLearner(NodeId(4))], |c| {
        c.leader().is_some_and(|l| c.conf(l).learners == ids(&[4]))
    });
    for _ in 0..20 {
        value += 1;
        c.propose(value);
        c.run_for(20);
    }
    change(&mut c, vec![ConfChangeStep::AddVoter(NodeId(4))], |c| {
        voters_are(c, &[1, 2, 3, 4])
    });
    value += 1;
    c.one(value, 4, BUDGET_MS).expect("all four apply");
    assert_eq!(
        c.applied_values(NodeId(4)).last(),
        Some(&value),
        "the new voter caught up"
    );
    c.assert_safe();
}

#[test]
fn replace_every_member_one_by_one() {
    let mut c = cluster(3, 6, 72);
    let mut value = 1;
    c.one(value, 3, BUDGET_MS).expect("commits");
    for (old, new) in [(1, 4), (2, 5), (3, 6)] {
        c.start_node(NodeId(new));
        change(&mut c, vec![ConfChangeStep::AddLearner(NodeId(new))], |c| {
            c.leader()
                .is_some_and(|l| c.conf(l).learners.contains(&NodeId(new)))
        });
        change(
            &mut c,
            vec![
                ConfChangeStep::AddVoter(NodeId(new)),
                ConfChangeStep::Remove(NodeId(old)),
            ],
            |c| {
                c.leader().is_some_and(|l| {
                    c.conf(l).voters.contains(&NodeId(new))
                        && !c.conf(l).voters.contains(&NodeId(old))
                })
            },
        );
        value += 1;
        c.one(value, 3, BUDGET_MS)
            .expect("the new configuration commits");
    }
    assert!(voters_are(&c, &[4, 5, 6]));
    let leader = c.leader().expect("leader");
    assert!(
        [4, 5, 6].contains(&leader.0),
        "the leader is one of the new members"
    );
    c.assert_safe();
}

#[test]
fn remove_the_leader() {
    // The leader removes itself: it steps down once C_new applies, a new leader takes over
    // among the rest, and the removed node never campaigns again.
    let mut c = cluster(4, 4, 73);
    c.one(1, 4, BUDGET_MS).expect("commits");
    let old = c.leader().expect("leader");
    let rest: Vec<u64> = c
        .ids()
        .iter()
        .map(|id| id.0)
        .filter(|&id| id != old.0)
        .collect();
    change(&mut c, vec![ConfChangeStep::Remove(old)], |c| {
        voters_are(c, &rest) && c.leader() != Some(old)
    });
    assert_ne!(c.role(old), Role::Leader);
    let term = c.term(old);
    let elections = c.stats().elections;
    c.run_for(5_000);
    assert_eq!(
        c.role(old),
        Role::Follower,
        "the removed node does not campaign"
    );
    assert_eq!(
        c.stats().elections,
        elections,
        "nobody had to campaign again"
    );
    assert!(
        c.term(old) <= term.next(),
        "the removed node raised no term"
    );
    c.one(2, 3, BUDGET_MS).expect("the remaining three commit");
    c.assert_safe();
}

/// Voters {1,2,3} and learners {4,5} that have applied the log.
fn three_voters_and_two_learners(seed: u64) -> Cluster {
    let mut c = cluster(3, 5, seed);
    c.one(1, 3, BUDGET_MS).expect("commits");
    for id in [4, 5] {
        c.start_node(NodeId(id));
    }
    change(
        &mut c,
        vec![
            ConfChangeStep::AddLearner(NodeId(4)),
            ConfChangeStep::AddLearner(NodeId(5)),
        ],
        |c| {
            c.leader()
                .is_some_and(|l| c.conf(l).learners == ids(&[4, 5]))
        },
    );
    c.one(2, 5, BUDGET_MS).expect("learners apply too");
    // The leader records each learner's incarnation when it first hears from it, so entries
    // may commit after the value: wait until every node applied all that is committed, or a
    // promotion may find a learner not caught up yet.
    assert!(
        c.run_until(BUDGET_MS, |c| c.leader().is_some_and(|l| {
            (1..=5).all(|id| c.applied(NodeId(id)) >= c.commit(l))
        })),
        "every node applies the committed log"
    );
    c
}

#[test]
fn partition_during_a_joint_configuration() {
    // {1,2,3} → {3,4,5}. With 4 and 5 cut off, C_old,new is entered (it commits under C_old)
    // but cannot be left, and nothing commits: every decision needs a majority of C_new too.
    let mut c = three_voters_and_two_learners(74);
    c.partition(Partition::Split(ids(&[4, 5])));
    let leader = c.leader().expect("leader");
    let steps = vec![
        ConfChangeStep::AddVoter(NodeId(4)),
        ConfChangeStep::AddVoter(NodeId(5)),
        ConfChangeStep::Remove(NodeId(1)),
        ConfChangeStep::Remove(NodeId(2)),
    ];
    c.propose_conf_change(leader, ConfChange { steps })
        .expect("accepted");
    assert!(
        c.run_until(BUDGET_MS, |c| c
            .leader()
            .is_some_and(|l| c.conf(l).is_joint())),
        "C_old,new is in force"
    );
    let stuck = c.propose(3).expect("the leader accepts a write");
    c.run_for(2_000);
    assert_eq!(
        c.count_applied(3),
        0,
        "no majority of C_new: nothing commits"
    );
    assert!(
        ids(&[1, 2, 3]).iter().all(|&id| c.conf(id).is_joint()),
        "still joint: C_new has no majority to leave it"
    );
    c.heal();
    assert!(
        c.run_until(BUDGET_MS, |c| voters_are(c, &[3, 4, 5])),
        "C_new once healed"
    );
    assert!(
        c.run_until(BUDGET_MS, |c| c.count_applied(3) >= 3),
        "the write commits"
    );
    // The removed leader stepped down after telling C_new of the commit: C_new elects its own.
    assert!(
        c.run_until(BUDGET_MS, |c| c.leader().is_some()),
        "C_new elects a leader"
    );
    assert!(c.commit(c.leader().expect("leader")) >= stuck.index);
    c.assert_safe();
}

#[test]
fn learner_is_promoted() {
    // A learner receives the log but its acknowledgements do not count: with two of three
    // voters cut off, the leader and the learner commit nothing. Once promoted, it votes.
    let mut c = cluster(3, 4, 75);
    c.one(1, 3, BUDGET_MS).expect("commits");
    c.start_node(NodeId(4));
    change(&mut c, vec![ConfChangeStep::AddLearner(NodeId(4))], |c| {
        c.leader().is_some_and(|l| c.conf(l).learners == ids(&[4]))
    });
    c.one(2, 4, BUDGET_MS).expect("the learner applies the log");
    assert_eq!(c.role(NodeId(4)), Role::Follower);
    let leader = c.leader().expect("leader");
    let others: Vec<NodeId> = ids(&[1, 2, 3])
        .into_iter()
        .filter(|&id| id != leader)
        .collect();
    for &id in &others {
        c.isolate(id);
    }
    c.reconnect(NodeId(4));
    for &id in &others {
        c.isolate(id);
    }
    c.propose_to(leader, 3, 0).expect("the leader accepts");
    c.run_for(300);
    assert_eq!(
        c.count_applied(3),
        0,
        "a learner's acknowledgement does not count"
    );
    c.heal();
    change(&mut c, vec![ConfChangeStep::AddVoter(NodeId(4))], |c| {
        voters_are(c, &[1, 2, 3, 4])
    });
    c.one(4, 4, BUDGET_MS).expect("four voters commit");
    c.assert_safe();
}

#[test]
fn config_change_waits_for_leader_noop() {
    let mut c = cluster(3, 4, 76);
    assert!(c.run_until(BUDGET_MS, |c| c.leader().is_some()));
    let leader = c.leader().expect("leader");
    let first_try = c.propose_conf_change(
        leader,
        ConfChange {
            steps: vec![ConfChangeStep::AddLearner(NodeId(4))],
        },
    );
    assert_eq!(
        first_try,
        Err(refused(ProposeError::ConfChangeTooEarly)),
        "refused before the no-op commits"
    );
    c.run_for(300);
    let accepted = c.propose_conf_change(
        leader,
        ConfChange {
            steps: vec![ConfChangeStep::AddLearner(NodeId(4))],
        },
    );
    let (pending, _) = accepted.expect("accepted once the no-op committed");
    let again = c.propose_conf_change(
        leader,
        ConfChange {
            steps: vec![ConfChangeStep::AddLearner(NodeId(4))],
        },
    );
    assert_eq!(
        again,
        Err(refused(ProposeError::ConfChangeInProgress { pending })),
        "one change at a time"
    );
    assert!(c.commit(leader) >= LogIndex(1));
    c.assert_safe();
}

#[test]
fn joint_configuration_needs_the_old_majority_too() {
    // {L, a, b} → {L, 4, 5}. The moment C_old,new is in force, a and b are cut off: C_new has a
    // majority (L, 4, 5) but C_old has not, so neither a write nor leaving the joint
    // configuration commits until they are back.
    let mut c = three_voters_and_two_learners(77);
    let leader = c.leader().expect("leader");
    let old: Vec<NodeId> = ids(&[1, 2, 3])
        .into_iter()
        .filter(|&id| id != leader)
        .collect();
    let mut steps = vec![
        ConfChangeStep::AddVoter(NodeId(4)),
        ConfChangeStep::AddVoter(NodeId(5)),
    ];
    steps.extend(old.iter().map(|&id| ConfChangeStep::Remove(id)));
    c.propose_conf_change(leader, ConfChange { steps })
        .expect("accepted");
    assert!(
        c.run_until(BUDGET_MS, |c| c.conf(leader).is_joint()),
        "C_old,new is in force on the leader"
    );
    c.partition(Partition::Split(old.clone()));
    c.propose_to(leader, 3, 0)
        .expect("the leader accepts a write");
    c.run_for(2_000);
    assert_eq!(
        c.count_applied(3),
        0,
        "no majority of C_old: nothing commits"
    );
    assert!(
        c.conf(leader).is_joint(),
        "the joint configuration cannot be left"
    );
    c.heal();
    let mut expected: Vec<u64> = vec![leader.0, 4, 5];
    expected.sort_unstable();
    assert!(
        c.run_until(BUDGET_MS, |c| voters_are(c, &expected)),
        "C_new once healed"
    );
    // The write was never committed: the old voters, on their own, may have elected a leader
    // under C_old (they had not applied C_old,new) and replaced it. What must hold: the cluster
    // reaches C_new and commits again.
    c.one(4, 3, BUDGET_MS).expect("C_new commits");
    c.assert_safe();
}
