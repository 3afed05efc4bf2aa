//! Leadership transfer (thesis §3.10) in the simulator.

use skiff_kv::{Command, Reply};
use skiff_node::{refusals, ClientSession};
use skiff_raft::{NodeId, Role};
use skiff_sim::{Cluster, ClusterOptions, Refused, Submitted};

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

#[test]
fn a_write_forwarded_to_a_leader_that_handed_over_is_refused_tryagain_and_never_applied() {
    // A follower forwards a client's session write to the leader, and the forward is slow: by
    // the time it arrives the leader has handed leadership to the third node and heard from
    // it, while the follower, which has not heard from the new leader yet, still takes the
    // old one for the leader. The old leader proposes nothing and answers TRYAGAIN naming its
    // successor, which the client gets; its retry, once the follower hears from the new
    // leader, is applied, and exactly once.
    let mut c = Cluster::new(ClusterOptions::new(3).seed(55));
    let old = c.await_leader(5_000).expect("leader");
    c.one(1, 3, 5_000).expect("everyone agrees");
    let others: Vec<NodeId> = c.ids().iter().copied().filter(|&id| id != old).collect();
    let (follower, target) = (others[0], others[1]);
    c.hold_messages(move |m| m.from == target && m.to == follower);
    c.delay_forwards_to(old, 200);
    let request = 900_001;
    let session = ClientSession {
        client_id: 7,
        sequence: 1,
        lowest_unanswered: 1,
        resubmitted: false,
        proposed_after: 0,
    };
    let append = Command::Append {
        key: b"k".to_vec(),
        value: b"x".to_vec(),
    };
    assert!(matches!(
        c.submit_in_session(follower, request, append, Some(session)),
        Submitted::Pending
    ));
    assert!(c.transfer_leadership(target));
    assert!(
        c.run_until(150, |c| c.role(target) == Role::Leader
            && c.role(old) == Role::Follower),
        "the transfer ends while the forward is on its way"
    );
    assert_eq!(c.stats().forwards_redirected, 0, "not arrived yet");
    let refused =
        format!("{old} -> {follower} reply to forwarded request {request}: Error(\"TRYAGAIN");
    assert!(
        c.run_until(1_000, |c| c.trace().render_recent().contains(&refused)),
        "the old leader refuses the write as not proposed, naming its successor:\n{}",
        c.trace().render_recent()
    );
    assert!(c.stats().forwards_redirected >= 1);
    // Never proposed anywhere, so the client hears it was not applied and may send it again.
    assert_eq!(
        c.take_reply(request),
        Some(Reply::error(refusals::transferring(target)))
    );
    c.stop_holding();
    assert!(
        c.run_until(1_000, |c| c.leaders().len() == 1
            && c.commit(follower) == c.commit(target)),
        "the follower hears from the new leader"
    );
    let retry = Command::Append {
        key: b"k".to_vec(),
        value: b"x".to_vec(),
    };
    let again = 900_002;
    assert!(matches!(
        c.submit_in_session(follower, again, retry, Some(session)),
        Submitted::Pending
    ));
    assert!(c.run_until(2_000, |c| c.peek_reply(again).is_some()));
    assert_eq!(
        c.take_reply(again),
        Some(Reply::Integer(1)),
        "applied once: the refused copy never was"
    );
    c.run_for(500);
    for &id in c.ids() {
        assert_eq!(c.value(id, b"k"), Some(b"x".to_vec()), "{id}");
    }
    c.assert_safe();
    // Reference: thesis §3.10, §6.3
}
