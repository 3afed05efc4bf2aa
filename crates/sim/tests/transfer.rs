//! Leadership transfer (thesis §3.10) in the simulator.

use skiff_kv::Reply;
use skiff_node::refusals;
use skiff_raft::{NodeId, Role};
use skiff_sim::{Cluster, ClusterOptions, Refused};

#[test]
fn leadership_transfer_hands_over_to_the_target() {
    // The leader brings the target up to date and tells it to campaign; the target wins the
    // next term at once — long before any election timeout — and nobody else campaigns.
    let mut c = Cluster::new(ClusterOptions::new(5).seed(51));
    let old = c.await_leader(5_000).expect("leader");
    c.one(1, 5, 5_000).expect("everyone agrees");
    let target = c
        .ids()
        .iter()
        .copied()
        .find(|&id| id != old)
        .expect("a follower");
    let term = c.term(old);
    let elections_before = c.stats().elections;
    assert!(c.transfer_leadership(target));
    assert_eq!(
        c.propose_to(old, 2, 0),
        Err(Refused::Reply(Reply::error(refusals::transferring(target)))),
        "proposals are refused during the transfer"
    );
    assert!(
        c.run_until(100, |c| c.role(target) == Role::Leader),
        "the target leads within 100 ms"
    );
    assert_eq!(c.term(target), skiff_raft::Term(term.0 + 1));
    assert_eq!(
        c.stats().elections - elections_before,
        1,
        "only the target campaigned"
    );
    c.run_for(500);
    assert_eq!(c.role(old), Role::Follower);
    c.one(3, 5, 5_000).expect("the new leader commits");
    c.assert_safe();
    // Reference: thesis §3.10
}

#[test]
fn leadership_transfer_to_a_lagging_target_catches_it_up_first() {
    let mut c = Cluster::new(ClusterOptions::new(3).seed(52));
    let old = c.await_leader(5_000).expect("leader");
    let target = c
        .ids()
        .iter()
        .copied()
        .find(|&id| id != old)
        .expect("a follower");
    c.isolate(target);
    for value in 1..=20 {
        c.one(value, 2, 5_000)
            .expect("the majority commits without the target");
    }
    c.reconnect(target);
    assert!(c.transfer_leadership(target));
    assert!(c.run_until(1_000, |c| c.role(target) == Role::Leader));
    assert_eq!(
        c.applied_values(target),
        (1..=20).collect::<Vec<u64>>().as_slice()
    );
    c.assert_safe();
}

#[test]
fn leadership_transfer_is_abandoned_after_an_election_timeout() {
    // The target is unreachable: after an election timeout the leader gives up and accepts
    // proposals again; it stays leader.
    let mut c = Cluster::new(ClusterOptions::new(3).seed(53));
    let old = c.await_leader(5_000).expect("leader");
    c.run_for(200);
    let target: NodeId = c
        .ids()
        .iter()
        .copied()
        .find(|&id| id != old)
        .expect("a follower");
    c.isolate(target);
    assert!(c.transfer_leadership(target));
    assert!(
        c.propose_to(old, 1, 0).is_err(),
        "refused during the transfer"
    );
    c.run_for(31 * 10); // the election timeout is 30 ticks of 10 ms
    assert_eq!(c.role(old), Role::Leader, "the leader kept its place");
    assert!(
        c.propose_to(old, 2, 0).is_ok(),
        "proposals are accepted again"
    );
    c.assert_safe();
    // Reference: thesis §3.10 ("abort the transfer after an election timeout")
}
