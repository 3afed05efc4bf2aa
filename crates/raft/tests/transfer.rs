//! Leadership transfer (thesis §3.10): the leader catches a chosen voter up, tells it to
//! campaign at once with TimeoutNow, refuses proposals meanwhile, and gives up after an
//! election timeout.

mod harness;

use harness::*;
use skiff_raft::{
    Config, HardState, LogIndex, MemStorage, Message, MessageBody, NodeId, ProposeError, RawNode,
    Role, StepError, Term, TransferError,
};

/// Node 1 of 3, leader of term 1 over an empty log; both followers acknowledged its no-op (1).
fn streaming_leader(adjust: impl Fn(&mut Config)) -> RawNode<MemStorage> {
    let mut config = config(1, 3);
    adjust(&mut config);
    let mut node = node(config, &[], HardState::default());
    elect(&mut node);
    for id in [2, 3] {
        node.step(msg(id, 1, 1, accepted(1))).unwrap();
    }
    drain(&mut node);
    assert_eq!(node.raft().log().committed(), LogIndex(1));
    node
}

/// As [`streaming_leader`], with entries 2..=4 proposed and acknowledged by node 3 only:
/// node 2 is behind.
fn leader_with_lagging_follower(adjust: impl Fn(&mut Config)) -> RawNode<MemStorage> {
    let mut node = streaming_leader(adjust);
    for data in [b"a", b"b", b"c"] {
        node.propose(data.to_vec()).unwrap();
    }
    drain(&mut node);
    node.step(msg(3, 1, 1, accepted(4))).unwrap();
    drain(&mut node);
    assert_eq!(node.raft().log().committed(), LogIndex(4));
    node
}

/// Node `id` of 3 following leader 1 in term 1, holding its no-op.
fn follower(id: u64, adjust: impl Fn(&mut Config)) -> RawNode<MemStorage> {
    let mut config = config(id, 3);
    adjust(&mut config);
    let mut node = node(config, &[], HardState::default());
    node.step(msg(1, id, 1, append(0, 0, vec![noop(1, 1)], 1)))
        .unwrap();
    drain(&mut node);
    assert_eq!(node.raft().leader(), Some(NodeId(1)));
    node
}

fn transfer_vote_request(last_index: u64, last_term: u64) -> MessageBody {
    MessageBody::RequestVote {
        last_log_index: LogIndex(last_index),
        last_log_term: Term(last_term),
        leadership_transfer: true,
    }
}

fn timeouts(sent: &[Message]) -> Vec<Message> {
    sent.iter()
        .filter(|m| m.body == MessageBody::TimeoutNow)
        .cloned()
        .collect()
}

// ---- the leader ----

#[test]
fn transfer_is_refused_by_a_non_leader() {
    let mut fresh = node(config(2, 3), &[], HardState::default());
    assert_eq!(
        fresh.transfer_leadership(NodeId(3)),
        Err(TransferError::NotLeader { leader_hint: None })
    );
    let mut follower = follower(2, |_| {});
    assert_eq!(
        follower.transfer_leadership(NodeId(3)),
        Err(TransferError::NotLeader {
            leader_hint: Some(NodeId(1)),
        })
    );
    assert_eq!(follower.raft().lead_transferee(), None);
    // Reference: thesis §3.10
}

#[test]
fn transfer_to_itself_or_a_non_voter_is_refused() {
    let mut leader = streaming_leader(|_| {});
    assert_eq!(
        leader.transfer_leadership(NodeId(1)),
        Err(TransferError::AlreadyLeader(NodeId(1)))
    );
    assert_eq!(
        leader.transfer_leadership(NodeId(4)),
        Err(TransferError::NotAVoter(NodeId(4)))
    );
    assert_eq!(leader.raft().lead_transferee(), None);
    assert_eq!(drain(&mut leader), vec![]);
    assert!(leader.propose(b"x".to_vec()).is_ok(), "no transfer started");
    // Reference: thesis §3.10
}

#[test]
fn caught_up_target_gets_timeout_now_at_once() {
    let mut leader = streaming_leader(|_| {});
    assert_eq!(leader.transfer_leadership(NodeId(2)), Ok(()));
    assert_eq!(leader.raft().lead_transferee(), Some(NodeId(2)));
    assert_eq!(
        drain(&mut leader),
        vec![msg(1, 2, 1, MessageBody::TimeoutNow)]
    );
    // Reference: thesis §3.10
}

#[test]
fn lagging_target_gets_timeout_now_only_once_caught_up() {
    let mut leader = leader_with_lagging_follower(|_| {});
    assert_eq!(leader.transfer_leadership(NodeId(2)), Ok(()));
    assert_eq!(timeouts(&drain(&mut leader)), vec![]);

    leader.step(msg(2, 1, 1, accepted(3))).unwrap();
    assert_eq!(drain(&mut leader), vec![], "3 of 4 is not caught up");
    leader.step(msg(3, 1, 1, accepted(4))).unwrap();
    assert_eq!(
        drain(&mut leader),
        vec![],
        "only the target gets TimeoutNow"
    );

    leader.step(msg(2, 1, 1, accepted(4))).unwrap();
    assert_eq!(
        drain(&mut leader),
        vec![msg(1, 2, 1, MessageBody::TimeoutNow)]
    );
    // Reference: thesis §3.10
}

#[test]
fn transfer_sends_the_target_its_missing_entries_at_once() {
    let mut leader = streaming_leader(|_| {});
    let (index, _) = leader.propose(b"x".to_vec()).unwrap();
    leader.transfer_leadership(NodeId(2)).unwrap();
    let sent = drain(&mut leader);
    let x = data_entry(index.0, 1, b"x");
    assert_eq!(
        sent,
        vec![
            msg(1, 2, 1, append(1, 1, vec![x.clone()], 1)),
            msg(1, 3, 1, append(1, 1, vec![x], 1)),
        ],
        "the target first, before the batch's broadcast"
    );
    // Reference: thesis §3.10
}

#[test]
fn proposals_are_refused_during_a_transfer() {
    let mut leader = leader_with_lagging_follower(|_| {});
    leader.transfer_leadership(NodeId(2)).unwrap();
    assert_eq!(
        leader.propose(b"x".to_vec()),
        Err(ProposeError::TransferInProgress { to: NodeId(2) })
    );
    assert_eq!(leader.raft().log().last_index(), LogIndex(4));
    // Reference: thesis §3.10
}

#[test]
fn transfer_is_abandoned_after_exactly_an_election_timeout() {
    let mut leader = leader_with_lagging_follower(|c| c.check_quorum = false);
    leader.transfer_leadership(NodeId(2)).unwrap();
    for tick in 1..10 {
        leader.tick();
        assert_eq!(
            leader.raft().lead_transferee(),
            Some(NodeId(2)),
            "tick {tick}"
        );
    }
    assert!(leader.propose(b"x".to_vec()).is_err());
    leader.tick();
    assert_eq!(leader.raft().lead_transferee(), None);
    assert_eq!(leader.raft().role(), Role::Leader);
    assert_eq!(leader.propose(b"x".to_vec()), Ok((LogIndex(5), Term(1))));
    // Reference: thesis §3.10
}

#[test]
fn repeated_transfer_to_the_same_target_keeps_its_deadline() {
    let mut leader = leader_with_lagging_follower(|c| c.check_quorum = false);
    leader.transfer_leadership(NodeId(2)).unwrap();
    for _tick in 0..5 {
        leader.tick();
    }
    assert_eq!(leader.transfer_leadership(NodeId(2)), Ok(()));
    for _tick in 0..4 {
        leader.tick();
    }
    assert_eq!(leader.raft().lead_transferee(), Some(NodeId(2)));
    leader.tick();
    assert_eq!(leader.raft().lead_transferee(), None);
    // Reference: thesis §3.10
}

#[test]
fn repeated_transfer_to_a_caught_up_target_sends_no_second_timeout_now() {
    let mut leader = streaming_leader(|_| {});
    leader.transfer_leadership(NodeId(2)).unwrap();
    drain(&mut leader);
    leader.transfer_leadership(NodeId(2)).unwrap();
    assert_eq!(drain(&mut leader), vec![]);
    // Reference: thesis §3.10
}

#[test]
fn transfer_to_another_target_restarts_the_deadline() {
    let mut leader = leader_with_lagging_follower(|c| c.check_quorum = false);
    leader.transfer_leadership(NodeId(2)).unwrap();
    for _tick in 0..5 {
        leader.tick();
    }
    leader.transfer_leadership(NodeId(3)).unwrap();
    assert_eq!(leader.raft().lead_transferee(), Some(NodeId(3)));
    for _tick in 0..9 {
        leader.tick();
    }
    assert_eq!(leader.raft().lead_transferee(), Some(NodeId(3)));
    leader.tick();
    assert_eq!(leader.raft().lead_transferee(), None);
    // Reference: thesis §3.10
}

#[test]
fn stepping_down_ends_the_transfer() {
    let mut leader = leader_with_lagging_follower(|_| {});
    leader.transfer_leadership(NodeId(2)).unwrap();
    leader.step(msg(3, 1, 2, append(4, 1, vec![], 4))).unwrap();
    assert_eq!(leader.raft().role(), Role::Follower);
    assert_eq!(leader.raft().lead_transferee(), None);
    // Reference: thesis §3.10
}

// ---- the target ----

#[test]
fn target_campaigns_at_once_without_prevote() {
    let mut target = follower(2, |c| c.pre_vote = true);
    target.step(msg(1, 2, 1, MessageBody::TimeoutNow)).unwrap();
    assert_eq!(target.raft().role(), Role::Candidate);
    assert_eq!(target.raft().term(), Term(2));
    assert_eq!(target.raft().vote(), Some(NodeId(2)));
    assert_eq!(
        drain(&mut target),
        vec![
            msg(2, 1, 2, transfer_vote_request(1, 1)),
            msg(2, 3, 2, transfer_vote_request(1, 1)),
        ]
    );
    // Reference: thesis §3.10
}

#[test]
fn normal_election_after_a_transfer_election_carries_no_flag() {
    let mut target = follower(2, |c| c.pre_vote = false);
    target.step(msg(1, 2, 1, MessageBody::TimeoutNow)).unwrap();
    drain(&mut target);
    target.campaign();
    assert_eq!(target.raft().term(), Term(3));
    assert_eq!(
        drain(&mut target),
        vec![
            msg(2, 1, 3, vote_request(1, 1)),
            msg(2, 3, 3, vote_request(1, 1)),
        ]
    );
    // Reference: thesis §3.10
}

#[test]
fn timeout_now_from_a_non_leader_is_refused() {
    let mut node = follower(2, |_| {});
    assert!(matches!(
        node.step(msg(3, 2, 1, MessageBody::TimeoutNow)),
        Err(StepError::TimeoutNowNotFromLeader {
            from: NodeId(3),
            leader: Some(NodeId(1)),
            ..
        })
    ));
    assert_eq!(node.raft().role(), Role::Follower);
    assert_eq!(node.raft().term(), Term(1));
    assert_eq!(drain(&mut node), vec![]);

    let mut fresh = node_without_leader();
    assert!(fresh.step(msg(1, 2, 0, MessageBody::TimeoutNow)).is_err());
    assert_eq!(fresh.raft().role(), Role::Follower);
    assert_eq!(drain(&mut fresh), vec![]);
    // Reference: thesis §3.10
}

#[test]
fn timeout_now_from_a_later_term_neither_raises_the_term_nor_starts_an_election() {
    // A forged TimeoutNow "from the leader of a later term": obeying its term would depose
    // the leader (or restart elections on a follower) once per frame.
    let mut node = follower(2, |_| {});
    for forged_term in [2, 3, 4, 5, 6] {
        assert!(matches!(
            node.step(msg(1, 2, forged_term, MessageBody::TimeoutNow)),
            Err(StepError::TimeoutNowNotFromLeader { .. })
        ));
    }
    assert_eq!(node.raft().role(), Role::Follower);
    assert_eq!(node.raft().term(), Term(1));
    assert_eq!(node.raft().leader(), Some(NodeId(1)));
    assert_eq!(drain(&mut node), vec![]);

    let mut leader = streaming_leader(|_| {});
    for forged_term in [2, 3, 4, 5, 6] {
        assert!(leader
            .step(msg(3, 1, forged_term, MessageBody::TimeoutNow))
            .is_err());
    }
    assert_eq!(
        leader.raft().role(),
        Role::Leader,
        "five forged frames, no leader change"
    );
    assert_eq!(leader.raft().term(), Term(1));
    // Reference: thesis §3.10
}

fn node_without_leader() -> RawNode<MemStorage> {
    node(config(2, 3), &[], HardState::default())
}

#[test]
fn timeout_now_to_a_leader_is_ignored() {
    let mut leader = streaming_leader(|_| {});
    assert!(leader.step(msg(2, 1, 1, MessageBody::TimeoutNow)).is_err());
    assert_eq!(leader.raft().role(), Role::Leader);
    assert_eq!(leader.raft().term(), Term(1));
    assert_eq!(drain(&mut leader), vec![]);
    // Reference: thesis §3.10
}

#[test]
fn timeout_now_to_a_non_voter_is_ignored() {
    let mut learner = follower(4, |_| {});
    learner.step(msg(1, 4, 1, MessageBody::TimeoutNow)).unwrap();
    assert_eq!(learner.raft().role(), Role::Follower);
    assert_eq!(learner.raft().term(), Term(1));
    assert_eq!(drain(&mut learner), vec![]);
    // Reference: thesis §3.10
}

// ---- the other voters ----

#[test]
fn voter_in_leader_lease_answers_a_transfer_vote_request() {
    let mut voter = follower(3, |_| {});
    voter
        .step(msg(2, 3, 2, transfer_vote_request(1, 1)))
        .unwrap();
    assert_eq!(voter.raft().term(), Term(2));
    assert_eq!(voter.raft().vote(), Some(NodeId(2)));
    assert_eq!(drain(&mut voter), vec![msg(3, 2, 2, vote_response(true))]);
    // Reference: thesis §3.10
}

#[test]
fn voter_in_leader_lease_ignores_a_normal_vote_request() {
    let mut voter = follower(3, |_| {});
    voter.step(msg(2, 3, 2, vote_request(1, 1))).unwrap();
    assert_eq!(voter.raft().term(), Term(1));
    assert_eq!(voter.raft().vote(), None);
    assert_eq!(drain(&mut voter), vec![]);
    // Reference: thesis §3.10
}

#[test]
fn leadership_moves_to_the_target_in_a_cluster() {
    let mut cluster = CoreCluster::new(3);
    let old = cluster.tick_until_leader();
    cluster.propose(old, b"before");
    let target = if old == 3 { 1 } else { old + 1 };
    let term = cluster.node(old).raft().term();
    let seen = cluster.delivered.len();
    cluster
        .node_mut(old)
        .transfer_leadership(NodeId(target))
        .unwrap();
    cluster.deliver_all();
    assert_eq!(cluster.leader(), Some(NodeId(target)));
    assert_eq!(cluster.node(target).raft().term(), term.next());
    assert_eq!(cluster.node(old).raft().role(), Role::Follower);
    let campaign: Vec<&Message> = cluster.delivered[seen..]
        .iter()
        .filter(|m| {
            matches!(
                m.body,
                MessageBody::PreVote { .. } | MessageBody::RequestVote { .. }
            )
        })
        .collect();
    assert_eq!(campaign.len(), 2);
    assert!(campaign.iter().all(|m| m.body
        == MessageBody::RequestVote {
            last_log_index: LogIndex(2),
            last_log_term: term,
            leadership_transfer: true,
        }));
    cluster.propose(target, b"after");
    cluster.tick_all(); // the new commit index rides on the next heartbeat
    assert_eq!(cluster.leader(), Some(NodeId(target)));
    for id in 1..=3 {
        assert_eq!(
            cluster.applied_data(id),
            vec![b"before".to_vec(), b"after".to_vec()]
        );
    }
    // Reference: thesis §3.10
}
