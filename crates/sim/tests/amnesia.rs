//! The amnesia guard in the simulator: a voter that voted loses its disk and starts again
//! under the same id, with a new incarnation. The cluster must refuse it as the member it
//! was: with one intact member down, the other intact one and the wiped node must not elect a
//! leader (the wiped node's vote is not the vote its id gave), and once the intact member is
//! back the cluster serves again, one leader per term throughout.
//! Reference: thesis §3.8 (a server must not forget its vote), §5.2 (Election Safety).

use skiff_sim::{Cluster, ClusterOptions};

const BUDGET_MS: u64 = 10_000;

#[test]
fn a_wiped_voter_is_refused_and_the_cluster_keeps_one_leader_per_term() {
    let mut c = Cluster::new(ClusterOptions::new(3).seed(171));
    for value in 1..=5 {
        c.one(value, 3, BUDGET_MS).expect("all three apply it");
    }
    // The first leader stops; one of the two others wins with the other's vote.
    let first = c.leader().expect("a leader");
    c.crash(first);
    let second = c
        .await_leader(BUDGET_MS)
        .expect("a new leader of the two left");
    let voter = *c
        .ids()
        .iter()
        .find(|&&id| id != first && id != second)
        .expect("the third node");
    let term = c.term(second);
    assert_eq!(
        c.hard_state(voter).vote,
        Some(second),
        "{voter} voted for {second} in {term}"
    );
    // Entries committed by the second leader and the voter alone: the first leader lacks them.
    for value in 6..=10 {
        c.one(value, 2, BUDGET_MS).expect("the two apply it");
    }

    // The voter loses its disk and starts again empty, under the same id.
    c.crash(voter);
    assert!(c.wipe(voter), "the voter was down and wiped");
    assert!(c.is_up(voter), "and started again, as a first start");
    assert_eq!(c.stats().wipes, 1);

    // The second leader stops and the first comes back: it and the wiped voter are a majority
    // by count, but the voter's vote must not count.
    c.crash(second);
    c.restart(first);
    c.run_for(5_000);
    c.assert_safe();
    assert_eq!(c.leader(), None, "no leader elected with a forgotten vote");
    assert!(
        c.stats().incarnation_refusals > 0,
        "the wiped voter's messages were refused"
    );
    assert!(c.stats().incarnation_notices > 0, "and it was told");

    // The second leader comes back: the two intact members elect a leader and serve.
    c.restart(second);
    let leader = c
        .await_leader(BUDGET_MS)
        .expect("a leader of the intact two");
    assert_ne!(leader, voter);
    c.one(11, 2, BUDGET_MS).expect("the cluster serves again");
    assert!(c.is_amnesiac(voter), "the wiped voter stays refused");
    assert_eq!(c.count_applied(11), 2, "the wiped voter did not apply it");
    let kept = c.applied_values(leader);
    assert!(
        (6..=10).all(|value| kept.contains(&value)),
        "what the second leader and the voter committed is kept: {kept:?}"
    );
    c.assert_safe();
}
