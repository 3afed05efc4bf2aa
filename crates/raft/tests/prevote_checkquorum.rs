//! PreVote (thesis §9.6) and CheckQuorum with its leader lease (thesis §6.2, §4.2.3): a node
//! that was cut off cannot depose a healthy leader, and a leader that lost its majority stops.

mod harness;

use harness::*;
use skiff_raft::{Config, HardState, MemStorage, NodeId, RawNode, Role, SoftState, Term};

#[test]
fn prevote_does_not_raise_term() {
    let mut candidate = node(config(1, 3), &[1], hard_state(1, 0, 0));
    candidate.campaign();
    assert_eq!(candidate.raft().role(), Role::PreCandidate);
    let batch = process(&mut candidate);
    assert_eq!(
        batch.soft_state,
        Some(SoftState {
            role: Role::PreCandidate,
            leader: None
        })
    );
    assert_eq!(batch.hard_state, None, "term and vote are untouched");
    assert_eq!(
        batch.messages,
        vec![msg(1, 2, 2, pre_vote(1, 1)), msg(1, 3, 2, pre_vote(1, 1))],
        "the request names the term it would campaign in"
    );

    let mut voter = node(config(2, 3), &[1], hard_state(1, 0, 0));
    voter.step(msg(1, 2, 2, pre_vote(1, 1))).unwrap();
    let batch = process(&mut voter);
    assert_eq!(
        batch.hard_state, None,
        "answering a pre-vote changes nothing durable"
    );
    assert_eq!(batch.messages, vec![msg(2, 1, 2, pre_vote_response(true))]);
    assert!(batch.persisted_messages.is_empty());
    assert_eq!(voter.raft().term(), Term(1));
    // Reference: thesis §9.6
}

#[test]
fn prevote_switched_off_at_run_time_raises_the_term_at_once_and_on_again_does_not() {
    let mut candidate = node(config(1, 3), &[1], hard_state(1, 0, 0));
    candidate.set_pre_vote(false);
    candidate.campaign();
    assert_eq!(candidate.raft().role(), Role::Candidate);
    assert_eq!(candidate.raft().term(), Term(2), "§5.2: a new term at once");
    process(&mut candidate);

    candidate.set_pre_vote(true);
    candidate.campaign();
    assert_eq!(candidate.raft().role(), Role::PreCandidate);
    assert_eq!(
        candidate.raft().term(),
        Term(2),
        "asking first raises nothing"
    );
    // Reference: §5.2, thesis §9.6
}

#[test]
fn prevote_granted_for_a_later_term_despite_a_vote() {
    let mut voter = node(config(2, 3), &[1], hard_state(1, 3, 0));
    voter.step(msg(1, 2, 2, pre_vote(1, 1))).unwrap();
    let batch = process(&mut voter);
    assert_eq!(batch.messages, vec![msg(2, 1, 2, pre_vote_response(true))]);
    assert_eq!(
        voter.raft().vote(),
        Some(NodeId(3)),
        "the real vote is kept"
    );
    // Reference: thesis §9.6
}

#[test]
fn prevote_in_the_current_term_follows_the_vote() {
    // The voter is at term 2 and voted for 3; a pre-vote naming term 2 is a repeat election.
    let mut voter = node(config(2, 3), &[1], hard_state(2, 3, 0));
    voter.step(msg(1, 2, 2, pre_vote(1, 1))).unwrap();
    voter.step(msg(3, 2, 2, pre_vote(1, 1))).unwrap();
    let batch = process(&mut voter);
    assert_eq!(
        batch.messages,
        vec![
            msg(2, 1, 2, pre_vote_response(false)),
            msg(2, 3, 2, pre_vote_response(true)),
        ]
    );
    // Reference: thesis §9.6, Figure 2 (RequestVote RPC)
}

#[test]
fn prevote_refused_for_a_stale_log() {
    let mut voter = node(config(2, 3), &[1, 2], hard_state(2, 0, 0));
    voter.step(msg(1, 2, 3, pre_vote(5, 1))).unwrap();
    let batch = process(&mut voter);
    assert_eq!(
        batch.messages,
        vec![msg(2, 1, 2, pre_vote_response(false))],
        "the refusal carries the voter's own term"
    );
    // Reference: thesis §9.6, §5.4.1
}

#[test]
fn precandidate_becomes_candidate_on_prevote_majority() {
    let mut node = node(config(1, 3), &[1], hard_state(1, 0, 0));
    node.campaign();
    process(&mut node);
    node.step(msg(2, 1, 2, pre_vote_response(true))).unwrap();
    assert_eq!(node.raft().role(), Role::Candidate);
    let batch = process(&mut node);
    assert_eq!(batch.hard_state, Some(hard_state(2, 1, 0)));
    assert_eq!(
        batch.messages,
        vec![
            msg(1, 2, 2, vote_request(1, 1)),
            msg(1, 3, 2, vote_request(1, 1))
        ]
    );
    // Reference: thesis §9.6
}

#[test]
fn single_node_skips_straight_through_prevote() {
    let mut node = node(config(1, 1), &[], HardState::default());
    node.campaign();
    assert_eq!(
        node.raft().role(),
        Role::Candidate,
        "its own pre-vote is a majority"
    );
    process(&mut node);
    assert_eq!(node.raft().role(), Role::Leader);
    // Reference: thesis §9.6
}

#[test]
fn precandidate_ignores_grants_for_other_terms() {
    let mut node = node(config(1, 3), &[1], hard_state(1, 0, 0));
    node.campaign();
    process(&mut node);
    node.step(msg(2, 1, 3, pre_vote_response(true))).unwrap();
    node.step(msg(3, 1, 1, pre_vote_response(true))).unwrap();
    assert_eq!(node.raft().role(), Role::PreCandidate);
    assert_eq!(node.raft().term(), Term(1));
    // Reference: thesis §9.6
}

#[test]
fn precandidate_falls_back_on_majority_refusal() {
    let mut node = node(config(1, 3), &[1], hard_state(1, 0, 0));
    node.campaign();
    process(&mut node);
    node.step(msg(2, 1, 1, pre_vote_response(false))).unwrap();
    assert_eq!(node.raft().role(), Role::PreCandidate);
    node.step(msg(3, 1, 1, pre_vote_response(false))).unwrap();
    assert_eq!(node.raft().role(), Role::Follower);
    assert_eq!(node.raft().term(), Term(1));
    let batch = process(&mut node);
    assert_eq!(batch.hard_state, None);
    // Reference: thesis §9.6
}

#[test]
fn refusal_from_a_higher_term_makes_the_precandidate_follow() {
    let mut node = node(config(1, 3), &[1], hard_state(1, 0, 0));
    node.campaign();
    process(&mut node);
    node.step(msg(2, 1, 4, pre_vote_response(false))).unwrap();
    assert_eq!(node.raft().role(), Role::Follower);
    let batch = process(&mut node);
    assert_eq!(batch.hard_state, Some(hard_state(4, 0, 0)));
    // Reference: §5.1, thesis §9.6
}

#[test]
fn vote_answers_do_not_reach_a_precandidate() {
    let mut node = node(config(1, 3), &[1], hard_state(1, 0, 0));
    node.campaign();
    process(&mut node);
    node.step(msg(2, 1, 1, vote_response(true))).unwrap();
    node.step(msg(3, 1, 1, vote_response(true))).unwrap();
    assert_eq!(node.raft().role(), Role::PreCandidate);
    // Reference: thesis §9.6
}

#[test]
fn precandidate_retries_prevote_after_another_timeout() {
    let mut node = node(config(1, 3), &[1], hard_state(1, 0, 0));
    node.campaign();
    process(&mut node);
    let timeout = node.raft().randomized_election_timeout_ticks();
    for _tick in 0..timeout {
        node.tick();
    }
    let batch = process(&mut node);
    assert_eq!(
        batch.messages,
        vec![msg(1, 2, 2, pre_vote(1, 1)), msg(1, 3, 2, pre_vote(1, 1))]
    );
    assert_eq!(node.raft().term(), Term(1));
    // Reference: thesis §9.6
}

/// A follower at term 2 (log [1, 2]) that heard from leader 2 and whose randomized timeout is
/// above the election timeout, so that the lease can expire before it campaigns.
fn follower_with_leader(check_quorum: bool) -> RawNode<MemStorage> {
    for seed in 0.. {
        let mut config: Config = config(1, 3);
        config.seed = seed;
        config.check_quorum = check_quorum;
        let mut node = node(config, &[1, 2], hard_state(2, 0, 0));
        if node.raft().randomized_election_timeout_ticks() > 10 {
            node.step(msg(2, 1, 2, append(2, 2, vec![], 0))).unwrap();
            drain(&mut node);
            return node;
        }
    }
    unreachable!()
}

#[test]
fn vote_request_ignored_in_leader_lease() {
    // (check_quorum, knows a leader, ticks since it heard from it, request answered)
    let table = [
        (true, true, 0, false),
        (true, true, 9, false),
        (true, true, 10, true),
        (false, true, 0, true),
        (true, false, 0, true),
    ];
    for (check_quorum, knows_leader, ticks, answered) in table {
        for request in [vote_request(2, 2), pre_vote(2, 2)] {
            let mut node = if knows_leader {
                follower_with_leader(check_quorum)
            } else {
                harness::node(config(1, 3), &[1, 2], hard_state(2, 0, 0))
            };
            for _tick in 0..ticks {
                node.tick();
            }
            assert_eq!(node.raft().role(), Role::Follower);
            node.step(msg(3, 1, 3, request.clone())).unwrap();
            let sent = drain(&mut node);
            let case = format!("{check_quorum} {knows_leader} {ticks} {request:?}");
            if answered {
                assert_eq!(sent.len(), 1, "{case}");
                assert_eq!(sent[0].to, NodeId(3), "{case}");
                assert_eq!(sent[0].term, Term(3), "{case}");
            } else {
                assert_eq!(sent, vec![], "{case}");
                assert_eq!(node.raft().term(), Term(2), "{case}");
                assert_eq!(node.raft().leader(), Some(NodeId(2)), "{case}");
            }
        }
    }
    // Reference: thesis §4.2.3, §9.6
}

#[test]
fn leader_ignores_higher_term_vote_requests_under_check_quorum() {
    let mut leader = node(config(1, 3), &[], HardState::default());
    elect(&mut leader);
    leader.step(msg(3, 1, 5, vote_request(9, 5))).unwrap();
    assert_eq!(leader.raft().role(), Role::Leader);
    assert_eq!(leader.raft().term(), Term(1));
    assert!(drain(&mut leader).is_empty());
    // Reference: thesis §4.2.3
}

#[test]
fn check_quorum_leader_steps_down_when_isolated() {
    let mut leader = node(config(1, 3), &[], HardState::default());
    elect(&mut leader);
    for tick in 1..10 {
        leader.tick();
        assert_eq!(leader.raft().role(), Role::Leader, "tick {tick}");
    }
    leader.tick();
    assert_eq!(leader.raft().role(), Role::Follower);
    let batch = process(&mut leader);
    assert_eq!(
        batch.soft_state,
        Some(SoftState {
            role: Role::Follower,
            leader: None
        })
    );
    assert_eq!(batch.hard_state, None, "stepping down keeps term and vote");
    assert_eq!(leader.raft().term(), Term(1));
    // Reference: thesis §6.2
}

#[test]
fn check_quorum_leader_stays_with_active_majority() {
    let mut leader = node(config(1, 3), &[], HardState::default());
    elect(&mut leader);
    for _tick in 1..10 {
        leader.tick();
    }
    // One follower answers: with the leader itself that is two of three.
    leader.step(msg(2, 1, 1, accepted(0))).unwrap();
    leader.tick();
    assert_eq!(leader.raft().role(), Role::Leader);
    // The next round needs a fresh answer.
    for tick in 1..10 {
        leader.tick();
        assert_eq!(leader.raft().role(), Role::Leader, "tick {tick}");
    }
    leader.tick();
    assert_eq!(leader.raft().role(), Role::Follower);
    // Reference: thesis §6.2
}

#[test]
fn check_quorum_counts_voters_in_a_five_node_cluster() {
    // (followers that answered, leader survives the round)
    let table = [
        (vec![], false),
        (vec![2], false),
        (vec![2, 3], true),
        (vec![2, 2], false),
    ];
    for (answered, survives) in table {
        let mut leader = node(config(1, 5), &[], HardState::default());
        elect(&mut leader);
        for _tick in 1..10 {
            leader.tick();
        }
        for &from in &answered {
            leader.step(msg(from, 1, 1, accepted(0))).unwrap();
        }
        leader.tick();
        let role = if survives {
            Role::Leader
        } else {
            Role::Follower
        };
        assert_eq!(leader.raft().role(), role, "{answered:?}");
    }
    // Reference: thesis §6.2
}

#[test]
fn leader_without_check_quorum_stays_when_isolated() {
    let mut config = config(1, 3);
    config.check_quorum = false;
    let mut leader = node(config, &[], HardState::default());
    elect(&mut leader);
    for _tick in 0..100 {
        leader.tick();
    }
    assert_eq!(leader.raft().role(), Role::Leader);
    // Reference: thesis §6.2 (CheckQuorum is what makes a leader step down)
}

#[test]
fn heartbeats_follow_the_heartbeat_interval() {
    let mut config = config(1, 3);
    config.heartbeat_interval_ticks = 3;
    let mut leader = node(config, &[], HardState::default());
    elect(&mut leader);
    leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    leader.step(msg(3, 1, 1, accepted(1))).unwrap();
    drain(&mut leader);
    // Each heartbeat starts a new read round.
    let heartbeats = |round| {
        vec![
            msg(1, 2, 1, append_in_round(1, 1, vec![], 1, round)),
            msg(1, 3, 1, append_in_round(1, 1, vec![], 1, round)),
        ]
    };
    for tick in 1..=6 {
        leader.tick();
        let sent = drain(&mut leader);
        let expected = if tick % 3 == 0 {
            heartbeats(tick / 3)
        } else {
            vec![]
        };
        assert_eq!(sent, expected, "tick {tick}");
    }
    // Reference: §5.2 (leaders send periodic heartbeats)
}

#[test]
fn rejoining_node_cannot_depose_the_leader() {
    let mut cluster = CoreCluster::new(3);
    let leader = cluster.tick_until_leader();
    let loner = if leader == 3 { 2 } else { 3 };
    cluster.isolate(loner);
    for _tick in 0..100 {
        cluster.tick_all();
    }
    assert_eq!(
        cluster.node(loner).raft().term(),
        Term(1),
        "pre-votes fail: no term inflation"
    );
    cluster.heal();
    for _tick in 0..5 {
        cluster.tick_all();
    }
    assert_eq!(cluster.leader(), Some(NodeId(leader)));
    for id in 1..=3 {
        assert_eq!(cluster.node(id).raft().term(), Term(1), "node {id}");
        assert_eq!(
            cluster.node(id).raft().leader(),
            Some(NodeId(leader)),
            "node {id}"
        );
    }
    // Reference: thesis §9.6
}

#[test]
fn isolated_leader_steps_down_and_the_rest_elect_a_new_one() {
    let mut cluster = CoreCluster::new(3);
    let old = cluster.tick_until_leader();
    cluster.isolate(old);
    for _tick in 0..40 {
        cluster.tick_all();
    }
    assert_ne!(cluster.node(old).raft().role(), Role::Leader);
    assert_eq!(
        cluster.node(old).raft().term(),
        Term(1),
        "its pre-votes fail, so its term stays"
    );
    let new = cluster.leader().expect("the majority elects a leader").0;
    assert_ne!(new, old);
    assert_eq!(cluster.node(new).raft().term(), Term(2));
    cluster.heal();
    cluster.tick_all();
    assert_eq!(cluster.node(old).raft().term(), Term(2));
    assert_eq!(cluster.node(old).raft().leader(), Some(NodeId(new)));
    // Reference: thesis §6.2
}

#[test]
fn without_prevote_a_rejoining_node_disrupts_the_leader() {
    let mut cluster = CoreCluster::with_config(3, |c| c.pre_vote = false);
    let leader = cluster.tick_until_leader();
    let loner = if leader == 3 { 2 } else { 3 };
    cluster.isolate(loner);
    for _tick in 0..50 {
        cluster.tick_all();
    }
    let inflated = cluster.node(loner).raft().term();
    assert!(
        inflated > Term(1),
        "each timeout raised its term: {inflated:?}"
    );
    assert_eq!(cluster.node(leader).raft().term(), Term(1));
    cluster.heal();
    cluster.tick_all();
    assert!(
        cluster.node(leader).raft().term() >= inflated,
        "the loner's answer to a heartbeat carries its higher term and deposes the leader"
    );
    assert_ne!(cluster.node(leader).raft().role(), Role::Leader);
    // Reference: §5.1, thesis §9.6 (the problem PreVote solves)
}

#[test]
fn with_lease_reads_a_started_node_refuses_votes_for_an_election_timeout() {
    // A node may have promised a leader, before a crash, not to vote for an election timeout
    // (the leader's lease reads rely on it): after starting it keeps refusing for that long.
    let mut config = config(2, 3);
    config.read_lease = true;
    config.pre_vote = false;
    let timeout = config.election_timeout_ticks;
    let mut voter = node(config, &[], HardState::default());
    let vote_from_3 = |term| msg(3, 2, term, vote_request(0, 0));
    voter.step(vote_from_3(5)).unwrap();
    assert!(
        drain(&mut voter).is_empty(),
        "just started: the request is ignored"
    );
    for _ in 0..timeout - 1 {
        voter.tick();
    }
    drain(&mut voter);
    voter.step(vote_from_3(5)).unwrap();
    assert!(
        drain(&mut voter).is_empty(),
        "one tick short of an election timeout: still ignored"
    );
    voter.tick();
    drain(&mut voter);
    voter.step(vote_from_3(9)).unwrap();
    let answers = drain(&mut voter);
    assert!(
        answers.contains(&msg(2, 3, 9, vote_response(true))),
        "after an election timeout the vote is granted: {answers:?}"
    );
    // Reference: thesis §6.4.1 (leases rely on voters keeping their promise)
}
