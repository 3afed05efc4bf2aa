//! Leader election (§5.2, §5.4.1): timeouts, one vote per term, up-to-date logs, and the
//! durability of votes (thesis §3.8).

mod harness;

use harness::*;
use skiff_raft::{Config, HardState, LogIndex, NodeId, Role, SoftState, StepError, Term};

/// Node `id` of `n` with PreVote off, so that a timeout starts a real election.
fn no_prevote(id: u64, n: u64) -> Config {
    let mut config = config(id, n);
    config.pre_vote = false;
    config
}

#[test]
fn follower_campaigns_after_election_timeout() {
    let mut node = node(no_prevote(1, 3), &[], HardState::default());
    let timeout = node.raft().randomized_election_timeout_ticks();
    for _tick in 1..timeout {
        node.tick();
    }
    assert_eq!(node.raft().election_elapsed_ticks(), timeout - 1);
    assert_eq!(node.raft().role(), Role::Follower);
    assert!(!node.has_ready(), "nothing happens before the timeout");

    node.tick();
    assert_eq!(node.raft().role(), Role::Candidate);
    assert_eq!(
        node.raft().election_elapsed_ticks(),
        0,
        "a new election restarts the timer"
    );
    let batch = process(&mut node);
    assert_eq!(
        batch.soft_state,
        Some(SoftState {
            role: Role::Candidate,
            leader: None
        })
    );
    assert_eq!(batch.hard_state, Some(hard_state(1, 1, 0)));
    assert_eq!(
        batch.messages,
        vec![
            msg(1, 2, 1, vote_request(0, 0)),
            msg(1, 3, 1, vote_request(0, 0)),
        ]
    );
    assert!(batch.persisted_messages.is_empty());
    // Reference: §5.2
}

#[test]
fn randomized_timeouts_lie_in_t_to_2t() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..200 {
        let mut config = config(1, 3);
        config.seed = seed;
        let mut node = node(config, &[], HardState::default());
        let timeout = node.raft().randomized_election_timeout_ticks();
        assert!((10..20).contains(&timeout), "seed {seed}: {timeout}");
        seen.insert(timeout);
        // A new term draws a new timeout from the same range.
        node.step(msg(2, 1, 1, append(0, 0, vec![], 0))).unwrap();
        let redrawn = node.raft().randomized_election_timeout_ticks();
        assert!((10..20).contains(&redrawn), "seed {seed}: {redrawn}");
        seen.insert(redrawn);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        (10..20).collect::<Vec<_>>(),
        "every value of [T, 2T) is drawn"
    );
    // Reference: §5.2 (randomized election timeouts)
}

#[test]
fn nodes_with_different_ids_draw_different_timeouts() {
    let timeouts: Vec<u64> = (1..=5)
        .map(|id| {
            let node = node(config(id, 5), &[], HardState::default());
            node.raft().randomized_election_timeout_ticks()
        })
        .collect();
    let distinct: std::collections::BTreeSet<_> = timeouts.iter().collect();
    assert!(distinct.len() > 1, "one seed, five ids: {timeouts:?}");
    // Reference: §5.2
}

#[test]
fn candidate_requests_votes_with_its_last_log_position() {
    let mut node = node(no_prevote(2, 3), &[1, 1, 2], hard_state(2, 0, 0));
    node.campaign();
    let batch = process(&mut node);
    assert_eq!(batch.hard_state, Some(hard_state(3, 2, 0)));
    assert_eq!(
        batch.messages,
        vec![
            msg(2, 1, 3, vote_request(3, 2)),
            msg(2, 3, 3, vote_request(3, 2)),
        ]
    );
    // Reference: §5.2, §5.4.1
}

#[test]
fn follower_grants_one_vote_per_term() {
    let mut node = node(config(1, 3), &[1], hard_state(1, 0, 0));

    node.step(msg(2, 1, 2, vote_request(1, 1))).unwrap();
    let first = process(&mut node);
    assert_eq!(first.hard_state, Some(hard_state(2, 2, 0)));
    assert!(first.messages.is_empty());
    assert_eq!(
        first.persisted_messages,
        vec![msg(1, 2, 2, vote_response(true))]
    );

    node.step(msg(3, 1, 2, vote_request(1, 1))).unwrap();
    let second = process(&mut node);
    assert_eq!(second.hard_state, None, "the vote stays with node 2");
    assert_eq!(second.messages, vec![msg(1, 3, 2, vote_response(false))]);
    assert!(second.persisted_messages.is_empty());

    node.step(msg(2, 1, 2, vote_request(1, 1))).unwrap();
    let repeat = process(&mut node);
    assert_eq!(
        repeat.persisted_messages,
        vec![msg(1, 2, 2, vote_response(true))],
        "a repeated request from the same candidate gets the same answer"
    );
    // Reference: §5.2, Figure 2 (RequestVote RPC, receiver rule 2)
}

#[test]
fn follower_that_knows_a_leader_refuses_a_vote_in_its_term() {
    let mut node = node(config(1, 3), &[1], hard_state(1, 0, 0));
    node.step(msg(2, 1, 2, append(1, 1, vec![], 0))).unwrap();
    drain(&mut node);
    assert_eq!(node.raft().leader(), Some(NodeId(2)));

    node.step(msg(3, 1, 2, vote_request(5, 2))).unwrap();
    let batch = process(&mut node);
    assert_eq!(batch.messages, vec![msg(1, 3, 2, vote_response(false))]);
    assert_eq!(node.raft().vote(), None);
    // Reference: §5.2 (a term has at most one leader)
}

#[test]
fn candidate_with_stale_log_is_refused() {
    // The voter's log is [1, 1, 2]. (candidate last index, candidate last term, granted)
    let table = [
        (3, 2, true),  // same last term, same length
        (4, 2, true),  // same last term, longer
        (2, 2, false), // same last term, shorter
        (1, 3, true),  // later last term wins whatever the length
        (9, 1, false), // earlier last term loses whatever the length
    ];
    for (last_index, last_term, granted) in table {
        let mut node = node(config(1, 3), &[1, 1, 2], hard_state(2, 0, 0));
        node.step(msg(2, 1, 3, vote_request(last_index, last_term)))
            .unwrap();
        let batch = process(&mut node);
        let mut answers = batch.messages;
        answers.extend(batch.persisted_messages);
        assert_eq!(
            answers,
            vec![msg(1, 2, 3, vote_response(granted))],
            "candidate {last_index}/{last_term}"
        );
        let vote = granted.then_some(NodeId(2));
        assert_eq!(
            node.raft().vote(),
            vote,
            "candidate {last_index}/{last_term}"
        );
        assert_eq!(node.raft().term(), Term(3));
    }
    // Reference: §5.4.1
}

#[test]
fn vote_grant_is_a_persisted_message() {
    let mut node = node(config(1, 3), &[1, 1], hard_state(1, 0, 0));
    node.step(msg(2, 1, 2, vote_request(2, 1))).unwrap();
    let ready = node.ready();
    assert_eq!(ready.hard_state, Some(hard_state(2, 2, 0)));
    assert!(
        ready.messages.is_empty(),
        "a grant must not leave before the vote is durable"
    );
    assert_eq!(
        ready.persisted_messages,
        vec![msg(1, 2, 2, vote_response(true))]
    );
    node.advance(ready);

    node.step(msg(3, 1, 2, vote_request(2, 1))).unwrap();
    let ready = node.ready();
    assert_eq!(ready.messages, vec![msg(1, 3, 2, vote_response(false))]);
    assert!(
        ready.persisted_messages.is_empty(),
        "a refusal promises nothing"
    );
    node.advance(ready);
    // Reference: thesis §3.8
}

#[test]
fn granting_a_vote_restarts_the_election_timer() {
    let mut node = node(config(1, 3), &[], hard_state(1, 0, 0));
    for _tick in 0..5 {
        node.tick();
    }
    node.step(msg(2, 1, 1, vote_request(0, 0))).unwrap();
    assert_eq!(node.raft().election_elapsed_ticks(), 0);
    for _tick in 0..3 {
        node.tick();
    }
    node.step(msg(3, 1, 1, vote_request(0, 0))).unwrap();
    assert_eq!(
        node.raft().election_elapsed_ticks(),
        3,
        "a refusal does not restart the timer"
    );
    // Reference: §5.2
}

#[test]
fn candidate_counts_own_vote_only_after_persisting() {
    let mut node = node(no_prevote(1, 3), &[], HardState::default());
    node.campaign();
    let ready = node.ready();
    assert_eq!(ready.hard_state, Some(hard_state(1, 1, 0)));
    // A grant arrives before the candidate's own term and vote are durable.
    node.step(msg(2, 1, 1, vote_response(true))).unwrap();
    assert_eq!(
        node.raft().role(),
        Role::Candidate,
        "one durable grant of three is no majority"
    );
    node.advance(ready);
    assert_eq!(node.raft().role(), Role::Leader);
    assert_eq!(node.raft().term(), Term(1));
    // Reference: thesis §3.8
}

#[test]
fn candidate_does_not_count_a_vote_persisted_for_another_term() {
    let mut node = node(no_prevote(1, 3), &[], HardState::default());
    node.campaign();
    let stale = node.ready();
    node.campaign();
    assert_eq!(node.raft().term(), Term(2));
    node.step(msg(2, 1, 2, vote_response(true))).unwrap();
    node.advance(stale);
    assert_eq!(
        node.raft().role(),
        Role::Candidate,
        "the term-1 vote is not a term-2 vote"
    );
    let batch = process(&mut node);
    assert_eq!(batch.hard_state, Some(hard_state(2, 1, 0)));
    assert_eq!(node.raft().role(), Role::Leader);
    // Reference: thesis §3.8
}

#[test]
fn single_node_becomes_leader_once_its_vote_is_durable() {
    let mut node = node(no_prevote(1, 1), &[], HardState::default());
    node.campaign();
    assert_eq!(node.raft().role(), Role::Candidate);
    let batch = process(&mut node);
    assert_eq!(batch.hard_state, Some(hard_state(1, 1, 0)));
    assert!(batch.messages.is_empty());
    assert_eq!(node.raft().role(), Role::Leader);
    let batch = process(&mut node);
    assert_eq!(
        batch.soft_state,
        Some(SoftState {
            role: Role::Leader,
            leader: Some(NodeId(1))
        })
    );
    assert_eq!(batch.entries, vec![noop(1, 1)]);
    // Reference: §5.2, thesis §3.8
}

#[test]
fn candidate_wins_with_a_majority_of_grants() {
    let mut node = node(no_prevote(1, 5), &[], HardState::default());
    node.campaign();
    process(&mut node);
    node.step(msg(2, 1, 1, vote_response(true))).unwrap();
    node.step(msg(3, 1, 1, vote_response(false))).unwrap();
    node.step(msg(4, 1, 1, vote_response(false))).unwrap();
    assert_eq!(
        node.raft().role(),
        Role::Candidate,
        "2 grants, 2 refusals of 5"
    );
    node.step(msg(2, 1, 1, vote_response(false))).unwrap();
    assert_eq!(
        node.raft().role(),
        Role::Candidate,
        "a voter's first answer is the one that counts"
    );
    node.step(msg(5, 1, 1, vote_response(true))).unwrap();
    assert_eq!(node.raft().role(), Role::Leader);
    assert_eq!(node.raft().leader(), Some(NodeId(1)));
    // Reference: §5.2
}

#[test]
fn candidate_loses_on_a_majority_of_refusals() {
    let mut node = node(no_prevote(1, 5), &[], HardState::default());
    node.campaign();
    process(&mut node);
    node.step(msg(2, 1, 1, vote_response(false))).unwrap();
    node.step(msg(3, 1, 1, vote_response(false))).unwrap();
    assert_eq!(node.raft().role(), Role::Candidate);
    node.step(msg(4, 1, 1, vote_response(false))).unwrap();
    assert_eq!(node.raft().role(), Role::Follower);
    assert_eq!(node.raft().term(), Term(1), "losing keeps the term");
    assert_eq!(node.raft().vote(), Some(NodeId(1)), "and the vote");
    // Reference: §5.2
}

#[test]
fn votes_from_outside_the_cluster_do_not_count() {
    let mut node = node(no_prevote(1, 3), &[], HardState::default());
    node.campaign();
    process(&mut node);
    node.step(msg(7, 1, 1, vote_response(true))).unwrap();
    node.step(msg(8, 1, 1, vote_response(true))).unwrap();
    assert_eq!(node.raft().role(), Role::Candidate);
    // Reference: §5.2
}

#[test]
fn late_vote_reply_from_older_term_is_ignored() {
    let mut node = node(no_prevote(1, 3), &[], hard_state(2, 0, 0));
    node.campaign();
    process(&mut node);
    assert_eq!(node.raft().term(), Term(3));
    node.step(msg(2, 1, 2, vote_response(true))).unwrap();
    node.step(msg(3, 1, 2, vote_response(true))).unwrap();
    assert_eq!(node.raft().role(), Role::Candidate);
    assert!(
        !node.has_ready(),
        "an old answer is dropped without a reply"
    );
    node.step(msg(2, 1, 3, vote_response(true))).unwrap();
    assert_eq!(node.raft().role(), Role::Leader);
    // Reference: §5.1
}

#[test]
fn vote_responses_reach_only_candidates() {
    // A follower (and a leader) ignore vote answers of their own term.
    let mut follower = node(no_prevote(1, 3), &[], hard_state(1, 0, 0));
    follower.step(msg(2, 1, 1, vote_response(true))).unwrap();
    follower.step(msg(3, 1, 1, vote_response(true))).unwrap();
    assert_eq!(follower.raft().role(), Role::Follower);

    let mut leader = node(no_prevote(1, 3), &[], HardState::default());
    elect(&mut leader);
    leader.step(msg(3, 1, 1, vote_response(true))).unwrap();
    assert_eq!(leader.raft().role(), Role::Leader);
    // Reference: §5.2
}

#[test]
fn no_double_vote_on_same_term_step_down() {
    // Stepping down on a same-term append keeps the vote for itself.
    let mut node = node(no_prevote(1, 3), &[], HardState::default());
    node.campaign();
    process(&mut node);
    node.step(msg(2, 1, 1, append(0, 0, vec![], 0))).unwrap();
    assert_eq!(node.raft().role(), Role::Follower);
    assert_eq!(node.raft().leader(), Some(NodeId(2)));
    assert_eq!(node.raft().vote(), Some(NodeId(1)));
    let batch = process(&mut node);
    assert_eq!(batch.hard_state, None, "term and vote are unchanged");
    assert_eq!(batch.persisted_messages, vec![msg(1, 2, 1, accepted(0))]);

    node.step(msg(3, 1, 1, vote_request(9, 1))).unwrap();
    let batch = process(&mut node);
    assert_eq!(batch.messages, vec![msg(1, 3, 1, vote_response(false))]);
    assert_eq!(node.raft().vote(), Some(NodeId(1)));

    // Losing an election keeps the vote too.
    let mut loser = harness::node(no_prevote(1, 3), &[], HardState::default());
    loser.campaign();
    process(&mut loser);
    loser.step(msg(2, 1, 1, vote_response(false))).unwrap();
    loser.step(msg(3, 1, 1, vote_response(false))).unwrap();
    assert_eq!(loser.raft().role(), Role::Follower);
    loser.step(msg(2, 1, 1, vote_request(9, 1))).unwrap();
    let batch = process(&mut loser);
    assert_eq!(batch.messages, vec![msg(1, 2, 1, vote_response(false))]);
    // Reference: Figure 2 (votedFor), §5.2
}

#[test]
fn candidate_refuses_a_rival_in_its_term() {
    let mut node = node(no_prevote(1, 3), &[], HardState::default());
    node.campaign();
    process(&mut node);
    node.step(msg(2, 1, 1, vote_request(5, 1))).unwrap();
    let batch = process(&mut node);
    assert_eq!(batch.messages, vec![msg(1, 2, 1, vote_response(false))]);
    assert_eq!(node.raft().role(), Role::Candidate);
    // Reference: §5.2
}

#[test]
fn candidate_steps_down_on_higher_term_vote_request() {
    let mut node = node(no_prevote(1, 3), &[], HardState::default());
    node.campaign();
    process(&mut node);
    node.step(msg(2, 1, 4, vote_request(0, 0))).unwrap();
    assert_eq!(node.raft().role(), Role::Follower);
    let batch = process(&mut node);
    assert_eq!(batch.hard_state, Some(hard_state(4, 2, 0)));
    assert_eq!(
        batch.persisted_messages,
        vec![msg(1, 2, 4, vote_response(true))]
    );
    // Reference: §5.1
}

#[test]
fn leader_steps_down_on_higher_term_response() {
    let table = [
        accepted(0),
        rejected(0, 0, 0),
        vote_response(false),
        pre_vote_response(false),
    ];
    for body in table {
        let mut node = node(config(1, 3), &[], HardState::default());
        elect(&mut node);
        assert_eq!(node.raft().term(), Term(1));
        node.step(msg(2, 1, 5, body.clone())).unwrap();
        assert_eq!(node.raft().role(), Role::Follower, "{body:?}");
        let batch = process(&mut node);
        assert_eq!(
            batch.soft_state,
            Some(SoftState {
                role: Role::Follower,
                leader: None
            }),
            "{body:?}"
        );
        assert_eq!(batch.hard_state, Some(hard_state(5, 0, 0)), "{body:?}");
        assert!(batch.messages.is_empty(), "{body:?}");
        assert_eq!(
            node.raft().progress().len(),
            0,
            "a follower tracks no progress"
        );
    }
    // Reference: §5.1
}

#[test]
fn higher_term_append_makes_a_follower_of_its_sender() {
    let mut node = node(no_prevote(1, 3), &[], HardState::default());
    elect(&mut node);
    node.step(msg(3, 1, 4, append(0, 0, vec![], 0))).unwrap();
    let batch = process(&mut node);
    assert_eq!(
        batch.soft_state,
        Some(SoftState {
            role: Role::Follower,
            leader: Some(NodeId(3))
        })
    );
    assert_eq!(batch.hard_state, Some(hard_state(4, 0, 0)));
    assert_eq!(batch.persisted_messages, vec![msg(1, 3, 4, accepted(0))]);
    // Reference: §5.1
}

#[test]
fn leader_ignores_an_append_of_its_own_term() {
    let mut node = node(no_prevote(1, 3), &[], HardState::default());
    elect(&mut node);
    node.step(msg(2, 1, 1, append(0, 0, vec![entry(1, 1)], 0)))
        .unwrap();
    assert_eq!(node.raft().role(), Role::Leader);
    assert!(!node.has_ready(), "no answer, no change");
    assert_eq!(node.raft().log().last_index(), LogIndex(1));
    // Reference: §5.2 (Election Safety)
}

#[test]
fn stale_term_request_gets_current_term() {
    // (request at term 3, the answer from a node at term 5; None = dropped silently)
    let table = [
        (vote_request(2, 2), Some(vote_response(false))),
        (pre_vote(2, 2), Some(pre_vote_response(false))),
        (append(2, 2, vec![entry(3, 2)], 2), Some(rejected(2, 0, 0))),
        (append(7, 2, vec![], 0), Some(rejected(7, 0, 0))),
        (vote_response(true), None),
        (pre_vote_response(true), None),
        (accepted(2), None),
        (rejected(2, 1, 1), None),
    ];
    for (request, answer) in table {
        let mut node = node(config(1, 3), &[1, 2], hard_state(5, 0, 0));
        node.step(msg(2, 1, 3, request.clone())).unwrap();
        let expected: Vec<_> = answer.into_iter().map(|a| msg(1, 2, 5, a)).collect();
        let batch = process(&mut node);
        assert_eq!(batch.messages, expected, "{request:?}");
        assert!(batch.persisted_messages.is_empty(), "{request:?}");
        assert_eq!(batch.hard_state, None, "{request:?}");
        assert_eq!(node.raft().log().last_index(), LogIndex(2), "{request:?}");
    }
    // Reference: §5.1
}

#[test]
fn step_rejects_wrong_recipient() {
    let mut node = node(config(1, 3), &[], HardState::default());
    assert_eq!(
        node.step(msg(2, 3, 1, vote_request(0, 0))),
        Err(StepError::WrongRecipient {
            to: NodeId(3),
            me: NodeId(1)
        })
    );
    assert_eq!(
        node.step(msg(1, 1, 1, vote_request(0, 0))),
        Err(StepError::FromSelf(NodeId(1)))
    );
    assert_eq!(
        node.raft().term(),
        Term(0),
        "a refused message changes nothing"
    );
    assert!(!node.has_ready());
    assert_eq!(node.step(msg(2, 1, 1, vote_request(0, 0))), Ok(()));
    assert_eq!(node.raft().term(), Term(1));
    // Reference: §5.1 (messages carry sender and term)
}

#[test]
fn node_outside_the_voters_never_campaigns() {
    let mut config = no_prevote(4, 3);
    config.voters = ids(3);
    let mut node = node(config, &[], HardState::default());
    for _tick in 0..100 {
        node.tick();
    }
    node.campaign();
    assert_eq!(node.raft().role(), Role::Follower);
    assert!(!node.has_ready());
    // Reference: thesis §4.2.1 (only voters start elections)
}

#[test]
fn leader_campaign_is_a_no_op() {
    let mut node = node(no_prevote(1, 3), &[], HardState::default());
    elect(&mut node);
    node.campaign();
    assert_eq!(node.raft().role(), Role::Leader);
    assert_eq!(node.raft().term(), Term(1));
    assert!(!node.has_ready());
    // Reference: §5.2
}

#[test]
fn three_nodes_elect_exactly_one_leader() {
    let mut cluster = CoreCluster::new(3);
    let leader = cluster.tick_until_leader();
    cluster.tick_all();
    for id in 1..=3 {
        let raft = cluster.node(id).raft();
        assert_eq!(raft.term(), Term(1), "node {id}");
        assert_eq!(raft.leader(), Some(NodeId(leader)), "node {id}");
        let role = if id == leader {
            Role::Leader
        } else {
            Role::Follower
        };
        assert_eq!(raft.role(), role, "node {id}");
        assert_eq!(
            raft.log().committed(),
            LogIndex(1),
            "node {id}: the no-op commits"
        );
        assert_eq!(cluster.hard_states[&NodeId(id)].commit, LogIndex(1));
    }
    let votes: Vec<_> = (1..=3).map(|id| cluster.node(id).raft().vote()).collect();
    assert!(
        votes.iter().filter(|&&v| v == Some(NodeId(leader))).count() >= 2,
        "a majority voted for the leader: {votes:?}"
    );
    // Reference: §5.2
}

#[test]
fn two_node_cluster_needs_both_votes() {
    let mut node = node(config(1, 2), &[], HardState::default());
    node.campaign();
    let batch = process(&mut node);
    assert_eq!(batch.messages, vec![msg(1, 2, 1, pre_vote(0, 0))]);
    assert_eq!(
        node.raft().role(),
        Role::PreCandidate,
        "one of two is no majority"
    );
    node.step(msg(2, 1, 1, pre_vote_response(true))).unwrap();
    let batch = process(&mut node);
    assert_eq!(batch.messages, vec![msg(1, 2, 1, vote_request(0, 0))]);
    assert_eq!(node.raft().role(), Role::Candidate);
    node.step(msg(2, 1, 1, vote_response(true))).unwrap();
    assert_eq!(node.raft().role(), Role::Leader);
    // Reference: §5.2, thesis §9.6
}
