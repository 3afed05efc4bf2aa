//! Membership changes (§6): when changes take effect, and when they may be proposed.

mod harness;

use std::collections::{BTreeMap, BTreeSet};

use harness::*;
use proptest::prelude::*;
use skiff_raft::quorum::{JointConfig, VoteResult};
use skiff_raft::{
    ConfChange, ConfChangeError, ConfChangeStep, ConfState, Config, Entry, EntryKind, HardState,
    LogIndex, LogStorage, MemStorage, Message, MessageBody, NodeId, ProposeError, RawNode, Role,
    Term,
};

fn conf_entry(index: u64, term: u64, steps: Vec<ConfChangeStep>) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: EntryKind::ConfChange,
        data: ConfChange { steps }.encode().into(),
    }
}

fn no_prevote(id: u64, n: u64) -> Config {
    let mut config = config(id, n);
    config.pre_vote = false;
    config.check_quorum = false;
    config
}

fn asks_for_votes(messages: &[skiff_raft::Message]) -> bool {
    messages.iter().any(|m| {
        matches!(
            m.body,
            MessageBody::RequestVote { .. } | MessageBody::PreVote { .. }
        )
    })
}

#[test]
fn no_campaign_with_unapplied_config_change() {
    // A follower knows a configuration change is committed but has not applied it: it does not
    // campaign, since it does not know the configuration it would lead. Once applied, it does.
    let mut follower = node(no_prevote(2, 3), &[], HardState::default());
    let entries = vec![
        noop(1, 1),
        conf_entry(2, 1, vec![ConfChangeStep::AddLearner(NodeId(4))]),
    ];
    follower
        .step(msg(1, 2, 1, append(0, 0, entries, 2)))
        .unwrap();
    for _ in 0..40 {
        follower.tick();
    }
    let ready = follower.ready();
    assert!(
        !asks_for_votes(&ready.messages),
        "no campaign while the change is unapplied"
    );
    assert_eq!(follower.raft().term(), Term(1));
    persist(follower.storage_mut(), &ready);
    follower.advance(ready);
    assert_eq!(
        follower.raft().conf_state().learners,
        vec![NodeId(4)],
        "applied: the learner is in"
    );
    for _ in 0..40 {
        follower.tick();
    }
    assert!(
        asks_for_votes(&drain(&mut follower)),
        "with the change applied, the timeout starts an election"
    );
    // Reference: §6 (etcd-io/raft: no campaign with pending configuration changes)
}

#[test]
fn config_change_waits_for_leader_noop() {
    // A new leader proposes no membership change before its no-op commits: an earlier
    // leader's change may still be in flight. One change at a time afterwards.
    let mut leader = node(no_prevote(1, 3), &[], HardState::default());
    elect(&mut leader);
    let add = || ConfChange {
        steps: vec![ConfChangeStep::AddLearner(NodeId(4))],
    };
    assert_eq!(
        leader.propose_conf_change(add()),
        Err(ProposeError::ConfChangeTooEarly)
    );
    leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    drain(&mut leader);
    let (index, term) = leader
        .propose_conf_change(add())
        .expect("accepted once the no-op committed");
    assert_eq!((index, term), (LogIndex(2), Term(1)));
    assert_eq!(
        leader.propose_conf_change(ConfChange {
            steps: vec![ConfChangeStep::AddLearner(NodeId(5))]
        }),
        Err(ProposeError::ConfChangeInProgress {
            pending: LogIndex(2)
        })
    );
    // Reference: §6, thesis §4.1 (one change at a time)
}

#[test]
fn a_change_no_node_could_decode_is_refused_when_proposed() {
    // More steps than a change may hold, or a step naming node 0, would commit and then be
    // skipped by every node that reads it: the leader refuses them and appends nothing.
    let mut leader = node(no_prevote(1, 3), &[], HardState::default());
    elect(&mut leader);
    leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    drain(&mut leader);
    let last = leader.raft().log().last_index();
    let many = ConfChange {
        steps: (10..10 + ConfChange::MAX_STEPS as u64 + 1)
            .map(|id| ConfChangeStep::AddLearner(NodeId(id)))
            .collect(),
    };
    assert_eq!(
        leader.propose_conf_change(many),
        Err(ProposeError::InvalidConfChange(
            ConfChangeError::TooManySteps {
                count: ConfChange::MAX_STEPS + 1
            }
        ))
    );
    let zero = ConfChange {
        steps: vec![
            ConfChangeStep::AddLearner(NodeId(4)),
            ConfChangeStep::AddLearner(NodeId(0)),
        ],
    };
    assert_eq!(
        leader.propose_conf_change(zero.clone()),
        Err(ProposeError::InvalidConfChange(ConfChangeError::NodeZero {
            offset: 11
        }))
    );
    // The offset is where the decoder would stop too.
    assert_eq!(
        ConfChange::decode(&zero.encode()),
        Err(ConfChangeError::NodeZero { offset: 11 })
    );
    assert_eq!(leader.raft().log().last_index(), last);
    // A change of the largest size is still taken.
    let largest = ConfChange {
        steps: (10..10 + ConfChange::MAX_STEPS as u64)
            .map(|id| ConfChangeStep::AddLearner(NodeId(id)))
            .collect(),
    };
    assert!(leader.propose_conf_change(largest).is_ok());
}

#[test]
fn voter_change_enters_and_leaves_the_joint_configuration() {
    // Applying a change of voters puts C_old,new in force and the leader appends the entry
    // that leaves it; applying that one puts C_new in force.
    let mut leader = leader_ready_for_changes(3);
    leader
        .propose_conf_change(change(vec![ConfChangeStep::AddVoter(NodeId(4))]))
        .unwrap();
    drain(&mut leader);
    ack(&mut leader, 1, 2, &[2]);
    let conf = leader.raft().conf_state();
    assert_eq!(
        conf.voters,
        vec![NodeId(1), NodeId(2), NodeId(3), NodeId(4)]
    );
    assert_eq!(conf.voters_outgoing, vec![NodeId(1), NodeId(2), NodeId(3)]);
    let leave = leader
        .raft()
        .log()
        .entries(LogIndex(3), LogIndex(4), u64::MAX)
        .unwrap();
    assert_eq!(leave[0].kind, EntryKind::ConfChange);
    assert_eq!(
        ConfChange::decode(&leave[0].data),
        Ok(ConfChange::leave_joint())
    );
    // Joint: committing index 3 needs a majority of {1,2,3} and of {1,2,3,4}.
    ack(&mut leader, 1, 3, &[2]);
    assert_eq!(
        leader.raft().log().committed(),
        LogIndex(2),
        "two of four is not a majority of C_new"
    );
    ack(&mut leader, 1, 3, &[4]);
    assert_eq!(leader.raft().log().committed(), LogIndex(3));
    assert!(!leader.raft().conf_state().is_joint(), "C_new is in force");
    // Reference: §6 (joint consensus)
}

fn nodes(list: &[u64]) -> Vec<NodeId> {
    list.iter().map(|&id| NodeId(id)).collect()
}

fn change(steps: Vec<ConfChangeStep>) -> ConfChange {
    ConfChange { steps }
}

/// A configuration of `voters`, `outgoing` voters (joint when not empty) and `learners`.
fn conf(voters: &[u64], outgoing: &[u64], learners: &[u64]) -> ConfState {
    ConfState {
        voters: nodes(voters),
        voters_outgoing: nodes(outgoing),
        learners: nodes(learners),
    }
}

/// Node 1, leader of term 1 over voters `1..=n`, its no-op committed and applied.
fn leader_ready_for_changes(n: u64) -> RawNode<MemStorage> {
    let mut leader = node(no_prevote(1, n), &[], HardState::default());
    elect(&mut leader);
    for follower in 2..=n / 2 + 1 {
        leader.step(msg(follower, 1, 1, accepted(1))).unwrap();
    }
    drain(&mut leader);
    assert_eq!(leader.raft().log().applied(), LogIndex(1));
    leader
}

/// Node `id` restarting at term 1 over a snapshot at index 3 taken while `conf` was in force.
fn restarted_in(
    id: u64,
    n: u64,
    conf: &ConfState,
    adjust: impl Fn(&mut Config),
) -> RawNode<MemStorage> {
    let mut config = no_prevote(id, n);
    adjust(&mut config);
    RawNode::new(
        config,
        storage_with_snapshot(3, 1, conf),
        hard_state(1, 0, 3),
    )
    .unwrap()
}

/// Followers `from` acknowledge the leader's log up to `index` at `term`; the leader processes
/// everything that follows.
fn ack(leader: &mut RawNode<MemStorage>, term: u64, index: u64, from: &[u64]) -> Vec<Message> {
    for &follower in from {
        leader
            .step(msg(follower, 1, term, accepted(index)))
            .unwrap();
    }
    drain(leader)
}

/// Ticks the leader through one heartbeat interval; returns what it sent.
fn heartbeat(leader: &mut RawNode<MemStorage>) -> Vec<Message> {
    for _ in 0..leader.raft().config().heartbeat_interval_ticks {
        leader.tick();
    }
    drain(leader)
}

fn progress_ids(node: &RawNode<MemStorage>) -> Vec<NodeId> {
    node.raft().progress().keys().copied().collect()
}

fn appends_to(messages: &[Message]) -> BTreeSet<NodeId> {
    messages
        .iter()
        .filter(|m| matches!(m.body, MessageBody::AppendEntries { .. }))
        .map(|m| m.to)
        .collect()
}

fn vote_requests_to(messages: &[Message]) -> BTreeSet<NodeId> {
    messages
        .iter()
        .filter(|m| matches!(m.body, MessageBody::RequestVote { .. }))
        .map(|m| m.to)
        .collect()
}

#[test]
fn every_refusal_of_a_conf_change() {
    // A change is refused by a follower (with its leader hint), during a leadership transfer,
    // while another is in flight (the joint configuration's leave entry too), and when it does
    // not apply to the configuration in force; a refused change appends nothing.
    let add5 = || change(vec![ConfChangeStep::AddLearner(NodeId(5))]);
    let mut follower = node(no_prevote(2, 3), &[], HardState::default());
    assert_eq!(
        follower.propose_conf_change(add5()),
        Err(ProposeError::NotLeader { leader_hint: None })
    );
    follower
        .step(msg(1, 2, 1, append(0, 0, vec![], 0)))
        .unwrap();
    assert_eq!(
        follower.propose_conf_change(add5()),
        Err(ProposeError::NotLeader {
            leader_hint: Some(NodeId(1))
        })
    );

    let mut leader = leader_ready_for_changes(3);
    let invalid = [
        (
            change(vec![ConfChangeStep::AddLearner(NodeId(2))]),
            ConfChangeError::VoterToLearner(NodeId(2)),
        ),
        (ConfChange::leave_joint(), ConfChangeError::NotJoint),
        (
            change(
                nodes(&[1, 2, 3])
                    .into_iter()
                    .map(ConfChangeStep::Remove)
                    .collect(),
            ),
            ConfChangeError::NoVoters,
        ),
    ];
    for (refused, why) in invalid {
        assert_eq!(
            leader.propose_conf_change(refused),
            Err(ProposeError::InvalidConfChange(why))
        );
    }
    assert_eq!(
        leader.raft().log().last_index(),
        LogIndex(1),
        "nothing appended"
    );

    leader.transfer_leadership(NodeId(3)).unwrap();
    assert_eq!(
        leader.propose_conf_change(add5()),
        Err(ProposeError::TransferInProgress { to: NodeId(3) })
    );

    // A learner change applies directly; once applied, the next change may be proposed.
    let mut leader = leader_ready_for_changes(3);
    assert_eq!(
        leader.propose_conf_change(add5()),
        Ok((LogIndex(2), Term(1)))
    );
    ack(&mut leader, 1, 2, &[2]);
    assert_eq!(leader.raft().log().applied(), LogIndex(2));
    let (index, _) = leader
        .propose_conf_change(change(vec![ConfChangeStep::AddVoter(NodeId(4))]))
        .expect("the previous change is applied");
    assert_eq!(index, LogIndex(3));
    ack(&mut leader, 1, 3, &[2]);
    assert!(leader.raft().conf_state().is_joint());
    assert_eq!(
        leader.propose_conf_change(change(vec![ConfChangeStep::Remove(NodeId(5))])),
        Err(ProposeError::ConfChangeInProgress {
            pending: LogIndex(4)
        }),
        "the leave entry is the change in flight"
    );
    // Reference: §6, thesis §4.1 (one change at a time)
}

#[test]
fn learners_replicate_but_do_not_count() {
    // A learner gets progress and appends from the leader, but its acknowledgement commits
    // nothing and its vote elects nobody; it is not even asked to vote.
    let in_force = conf(&[1, 2, 3], &[], &[4]);
    let mut candidate = restarted_in(1, 3, &in_force, |_| {});
    assert_eq!(candidate.raft().conf_state(), in_force);
    candidate.campaign();
    let sent = drain(&mut candidate);
    assert_eq!(
        vote_requests_to(&sent),
        nodes(&[2, 3]).into_iter().collect()
    );
    candidate.step(msg(4, 1, 2, vote_response(true))).unwrap();
    drain(&mut candidate);
    assert_eq!(
        candidate.raft().role(),
        Role::Candidate,
        "a learner's vote does not count"
    );
    candidate.step(msg(2, 1, 2, vote_response(true))).unwrap();
    let sent = drain(&mut candidate);
    assert_eq!(candidate.raft().role(), Role::Leader);
    assert_eq!(progress_ids(&candidate), nodes(&[1, 2, 3, 4]));
    assert_eq!(appends_to(&sent), nodes(&[2, 3, 4]).into_iter().collect());
    let mut leader = candidate;
    ack(&mut leader, 2, 4, &[4]);
    assert_eq!(
        leader.raft().progress()[&NodeId(4)].match_index(),
        LogIndex(4)
    );
    assert_eq!(
        leader.raft().log().committed(),
        LogIndex(3),
        "a learner does not commit"
    );
    ack(&mut leader, 2, 4, &[2]);
    assert_eq!(leader.raft().log().committed(), LogIndex(4));
    // Reference: §6, thesis §4.2.1 (non-voting members)
}

#[test]
fn learner_added_by_a_change_gets_progress_and_appends() {
    // Applying a change that adds a learner gives it progress at the leader, which then sends
    // it the log; the voters keep theirs, and the leader stays leader.
    let mut leader = leader_ready_for_changes(3);
    leader
        .propose_conf_change(change(vec![ConfChangeStep::AddLearner(NodeId(4))]))
        .unwrap();
    ack(&mut leader, 1, 2, &[2]);
    assert_eq!(leader.raft().conf_state(), conf(&[1, 2, 3], &[], &[4]));
    assert_eq!(leader.raft().role(), Role::Leader);
    assert_eq!(progress_ids(&leader), nodes(&[1, 2, 3, 4]));
    let sent = heartbeat(&mut leader);
    assert!(
        appends_to(&sent).contains(&NodeId(4)),
        "the learner is sent the log"
    );
    // Reference: §6, thesis §4.2.1
}

#[test]
fn a_learner_never_campaigns() {
    // A learner's election timer fires again and again, and an explicit campaign is ignored:
    // it never asks for votes.
    let mut learner = restarted_in(4, 4, &conf(&[1, 2, 3], &[], &[4]), |_| {});
    for _ in 0..100 {
        learner.tick();
    }
    learner.campaign();
    assert!(!asks_for_votes(&drain(&mut learner)));
    assert_eq!(learner.raft().role(), Role::Follower);
    assert_eq!(learner.raft().term(), Term(1));
    // Reference: thesis §4.2.1 (non-voting members)
}

#[test]
fn removing_a_learner() {
    // Removing a learner takes effect directly (no joint configuration) and the leader drops
    // its progress.
    let mut leader = leader_ready_for_changes(3);
    leader
        .propose_conf_change(change(vec![ConfChangeStep::AddLearner(NodeId(4))]))
        .unwrap();
    ack(&mut leader, 1, 2, &[2]);
    leader
        .propose_conf_change(change(vec![ConfChangeStep::Remove(NodeId(4))]))
        .unwrap();
    let sent = ack(&mut leader, 1, 3, &[2]);
    assert_eq!(
        leader.raft().conf_state(),
        ConfState::with_voters(nodes(&[1, 2, 3]))
    );
    assert_eq!(
        leader.raft().log().last_index(),
        LogIndex(3),
        "no leave entry"
    );
    assert_eq!(progress_ids(&leader), nodes(&[1, 2, 3]));
    assert_eq!(leader.raft().role(), Role::Leader);
    assert!(
        sent.iter().any(|m| m.to == NodeId(4)),
        "sent before the removal applied"
    );
    let sent = heartbeat(&mut leader);
    assert_eq!(appends_to(&sent), nodes(&[2, 3]).into_iter().collect());
    // Reference: §6, thesis §4.2.1
}

#[test]
fn leader_removed_from_c_new_steps_down_and_never_campaigns() {
    // §6: a leader not in C_new manages the cluster while C_old,new is in force, steps down once
    // the leave entry is applied, and, no longer a voter, never campaigns again.
    let mut leader = leader_ready_for_changes(3);
    leader
        .propose_conf_change(change(vec![ConfChangeStep::Remove(NodeId(1))]))
        .unwrap();
    ack(&mut leader, 1, 2, &[2]);
    assert_eq!(leader.raft().conf_state(), conf(&[2, 3], &[1, 2, 3], &[]));
    assert_eq!(leader.raft().role(), Role::Leader, "still leads C_old,new");
    ack(&mut leader, 1, 3, &[2]);
    assert_eq!(
        leader.raft().log().committed(),
        LogIndex(2),
        "C_new = {{2, 3}} needs both; the leader does not count in it"
    );
    let sent = ack(&mut leader, 1, 3, &[3]);
    assert_eq!(leader.raft().log().committed(), LogIndex(3));
    assert_eq!(leader.raft().conf_state(), conf(&[2, 3], &[], &[]));
    assert_eq!(leader.raft().role(), Role::Follower);
    // Before stepping down it tells C_new that C_new committed: nobody else would.
    for member in [2, 3] {
        assert!(
            sent.iter().any(|m| m.to == NodeId(member)
                && matches!(
                    m.body,
                    MessageBody::AppendEntries {
                        leader_commit: LogIndex(3),
                        ..
                    }
                )),
            "node {member} learns the commit of C_new: {sent:?}"
        );
    }
    assert_eq!(leader.raft().term(), Term(1));
    assert_eq!(leader.raft().leader(), None);
    assert!(leader.raft().progress().is_empty());
    for _ in 0..100 {
        leader.tick();
    }
    leader.campaign();
    assert!(!asks_for_votes(&drain(&mut leader)));
    assert_eq!(leader.raft().role(), Role::Follower);
    assert_eq!(leader.raft().term(), Term(1));
    // Reference: §6 (a leader not in C_new steps down)
}

/// A log of term 1 whose committed changes mostly do not apply to the configuration in force.
fn log_with_inapplicable_changes() -> Vec<Entry> {
    vec![
        noop(1, 1),
        conf_entry(2, 1, vec![ConfChangeStep::AddLearner(NodeId(4))]),
        conf_entry(3, 1, vec![]),
        conf_entry(4, 1, vec![ConfChangeStep::AddLearner(NodeId(2))]),
        conf_entry(
            5,
            1,
            nodes(&[1, 2, 3])
                .into_iter()
                .map(ConfChangeStep::Remove)
                .collect(),
        ),
    ]
}

#[test]
fn an_inapplicable_change_is_skipped_on_every_node() {
    // Entries 3 (leave a configuration that is not joint), 4 (a voter made learner) and 5 (no
    // voter left) do not apply: every node, followers and a later leader alike, skips them and
    // ends with the same configuration.
    let expected = conf(&[1, 2, 3], &[], &[4]);
    for id in [2, 3] {
        let mut follower = node(no_prevote(id, 3), &[], HardState::default());
        follower
            .step(msg(
                1,
                id,
                1,
                append(0, 0, log_with_inapplicable_changes(), 5),
            ))
            .unwrap();
        drain(&mut follower);
        assert_eq!(follower.raft().log().applied(), LogIndex(5));
        assert_eq!(follower.raft().conf_state(), expected, "node {id}");
        assert_eq!(follower.raft().log().last_index(), LogIndex(5));
    }
    let mut storage = MemStorage::new();
    storage.append(&log_with_inapplicable_changes()).unwrap();
    let mut leader = RawNode::new(no_prevote(1, 3), storage, hard_state(1, 0, 0)).unwrap();
    elect(&mut leader);
    assert_eq!(leader.raft().log().last_index(), LogIndex(6));
    ack(&mut leader, 2, 6, &[2]);
    assert_eq!(leader.raft().log().applied(), LogIndex(6));
    assert_eq!(leader.raft().conf_state(), expected, "the leader");
    assert_eq!(leader.raft().role(), Role::Leader);
    assert_eq!(
        leader.raft().log().last_index(),
        LogIndex(6),
        "no leave entry"
    );
    assert_eq!(progress_ids(&leader), nodes(&[1, 2, 3, 4]));
    // Reference: §6
}

#[test]
fn snapshots_carry_the_configuration() {
    // A snapshot taken in C_old,new records voters, outgoing voters and learners; a follower
    // installing it, and the follower restarted over it, take that configuration.
    let mut leader = leader_ready_for_changes(3);
    leader
        .propose_conf_change(change(vec![
            ConfChangeStep::AddVoter(NodeId(4)),
            ConfChangeStep::AddLearner(NodeId(5)),
        ]))
        .unwrap();
    ack(&mut leader, 1, 2, &[2]);
    let joint = conf(&[1, 2, 3, 4], &[1, 2, 3], &[5]);
    assert_eq!(leader.raft().conf_state(), joint);
    leader
        .take_snapshot(LogIndex(2), b"state".to_vec())
        .unwrap();
    let meta = leader.storage().snapshot_meta();
    assert_eq!(meta, snapshot_meta_in(2, 1, &joint));

    let mut follower = node(no_prevote(2, 3), &[], HardState::default());
    let body = MessageBody::InstallSnapshot {
        meta: meta.clone(),
        offset: 0,
        data: b"state".to_vec(),
        done: true,
    };
    follower.step(msg(1, 2, 1, body)).unwrap();
    assert_eq!(
        follower.raft().conf_state(),
        joint,
        "in force once installed"
    );
    drain(&mut follower);
    assert_eq!(follower.storage().snapshot_meta(), meta);
    assert_eq!(follower.raft().conf_state(), joint);

    let restarted = RawNode::new(
        no_prevote(2, 3),
        follower.storage().clone(),
        follower.raft().hard_state(),
    )
    .unwrap();
    assert_eq!(restarted.raft().conf_state(), joint);
    // Reference: §7, thesis §4.4 (the snapshot holds the latest configuration)
}

#[test]
fn a_restarted_node_takes_the_configuration_of_its_snapshot() {
    // The configuration in the node's `Config` is only the initial one: a snapshot in storage
    // says which configuration was in force at its index.
    let cases = [
        conf(&[1, 2, 3, 4], &[], &[]),
        conf(&[1, 4, 5], &[1, 2, 3], &[6]),
        conf(&[1], &[], &[2, 3]),
    ];
    for in_force in cases {
        let restarted = restarted_in(1, 3, &in_force, |_| {});
        assert_eq!(restarted.raft().conf_state(), in_force);
    }
    let fresh = node(no_prevote(1, 3), &[1, 1], hard_state(1, 0, 2));
    assert_eq!(
        fresh.raft().conf_state(),
        ConfState::with_voters(nodes(&[1, 2, 3]))
    );
    // Reference: thesis §4.4
}

#[test]
fn joint_election_needs_both_majorities() {
    // In C_old,new = {1,2,3},{1,4,5} a candidate asks every voter of both; it wins only with a
    // majority of each and loses when either majority refuses.
    let joint = conf(&[1, 4, 5], &[1, 2, 3], &[]);
    let cases: [(&[(u64, bool)], Role); 4] = [
        (&[(2, true), (3, true)], Role::Candidate),
        (&[(2, true), (4, true)], Role::Leader),
        (&[(4, false), (5, false)], Role::Follower),
        (
            &[(4, true), (5, true), (2, false), (3, false)],
            Role::Follower,
        ),
    ];
    for (votes, role) in cases {
        let mut candidate = restarted_in(1, 5, &joint, |_| {});
        candidate.campaign();
        let sent = drain(&mut candidate);
        assert_eq!(
            vote_requests_to(&sent),
            nodes(&[2, 3, 4, 5]).into_iter().collect()
        );
        for &(from, granted) in votes {
            candidate
                .step(msg(from, 1, 2, vote_response(granted)))
                .unwrap();
        }
        drain(&mut candidate);
        assert_eq!(candidate.raft().role(), role, "votes {votes:?}");
    }
    // Reference: §6 (elections need both majorities of C_old,new)
}

#[test]
fn joint_check_quorum_needs_both_majorities() {
    // CheckQuorum in C_old,new = {1,2,3},{1,4,5}: the leader keeps its role after an election
    // timeout only if a majority of each configuration was heard from.
    let joint = conf(&[1, 4, 5], &[1, 2, 3], &[]);
    let cases: [(&[u64], Role); 3] = [
        (&[2, 3], Role::Follower),
        (&[4, 5], Role::Follower),
        (&[2, 4], Role::Leader),
    ];
    for (heard, role) in cases {
        let mut leader = restarted_in(1, 5, &joint, |config| config.check_quorum = true);
        elect(&mut leader);
        ack(&mut leader, 2, 4, heard);
        for _ in 0..leader.raft().config().election_timeout_ticks {
            leader.tick();
        }
        drain(&mut leader);
        assert_eq!(leader.raft().role(), role, "heard from {heard:?}");
        assert_eq!(leader.raft().term(), Term(2));
    }
    // Reference: §6, thesis §6.2 (CheckQuorum)
}

#[test]
fn removing_the_transfer_target_ends_the_transfer() {
    // A transfer begun after the target's removal was proposed continues while the target still
    // votes in C_old,new and ends when C_new, without it, is in force.
    let mut leader = leader_ready_for_changes(3);
    leader
        .propose_conf_change(change(vec![ConfChangeStep::Remove(NodeId(3))]))
        .unwrap();
    leader.transfer_leadership(NodeId(3)).unwrap();
    ack(&mut leader, 1, 2, &[2]);
    assert_eq!(leader.raft().conf_state(), conf(&[1, 2], &[1, 2, 3], &[]));
    assert_eq!(
        leader.raft().lead_transferee(),
        Some(NodeId(3)),
        "3 still votes in C_old"
    );
    ack(&mut leader, 1, 3, &[2]);
    assert_eq!(leader.raft().conf_state(), conf(&[1, 2], &[], &[]));
    assert_eq!(leader.raft().lead_transferee(), None);
    assert_eq!(progress_ids(&leader), nodes(&[1, 2]));
    assert_eq!(leader.propose(b"x".to_vec()), Ok((LogIndex(4), Term(1))));
    // Reference: §6, thesis §3.10 (leadership transfer)
}

#[test]
fn committed_entries_without_changes_do_not_block_a_campaign() {
    // Only an unapplied *configuration change* holds a campaign back: committed but unapplied
    // ordinary entries do not.
    let mut follower = node(no_prevote(2, 3), &[], HardState::default());
    follower
        .step(msg(1, 2, 1, append(0, 0, vec![noop(1, 1), entry(2, 1)], 2)))
        .unwrap();
    for _ in 0..40 {
        if follower.raft().role() != Role::Follower {
            break;
        }
        follower.tick();
    }
    assert_eq!(follower.raft().log().applied(), LogIndex(0));
    assert_eq!(follower.raft().role(), Role::Candidate);
    assert_eq!(follower.raft().term(), Term(2));
    // Reference: §6
}

#[test]
fn conf_state_apply_step_by_step() {
    // The configuration arithmetic: voter changes enter C_old,new, learner changes and no-op
    // voter changes do not, the leave entry keeps C_new and the learners.
    let old = ConfState::with_voters(nodes(&[3, 1, 2, 1]));
    assert_eq!(old, conf(&[1, 2, 3], &[], &[]));
    assert!(!old.is_joint());
    assert_eq!(old.members(), nodes(&[1, 2, 3]).into_iter().collect());
    let apply = |from: &ConfState, steps: Vec<ConfChangeStep>| from.apply(&change(steps));

    let with_learner = apply(&old, vec![ConfChangeStep::AddLearner(NodeId(5))]).unwrap();
    assert_eq!(with_learner, conf(&[1, 2, 3], &[], &[5]));
    assert_eq!(
        with_learner.members(),
        nodes(&[1, 2, 3, 5]).into_iter().collect()
    );
    assert_eq!(
        apply(&with_learner, vec![ConfChangeStep::Remove(NodeId(5))]),
        Ok(old.clone())
    );
    assert_eq!(
        apply(&old, vec![ConfChangeStep::AddVoter(NodeId(2))]),
        Ok(old.clone())
    );
    assert_eq!(
        apply(&old, vec![ConfChangeStep::Remove(NodeId(9))]),
        Ok(old.clone())
    );

    let joint = apply(
        &with_learner,
        vec![
            ConfChangeStep::AddVoter(NodeId(4)),
            ConfChangeStep::Remove(NodeId(1)),
            ConfChangeStep::AddLearner(NodeId(6)),
        ],
    )
    .unwrap();
    assert_eq!(joint, conf(&[2, 3, 4], &[1, 2, 3], &[5, 6]));
    assert!(joint.is_joint());
    assert_eq!(
        joint.members(),
        nodes(&[1, 2, 3, 4, 5, 6]).into_iter().collect()
    );
    assert_eq!(
        apply(&joint, vec![ConfChangeStep::AddLearner(NodeId(7))]),
        Err(ConfChangeError::StillJoint)
    );
    let new = joint.apply(&ConfChange::leave_joint()).unwrap();
    assert_eq!(new, conf(&[2, 3, 4], &[], &[5, 6]));
    assert_eq!(
        new.apply(&ConfChange::leave_joint()),
        Err(ConfChangeError::NotJoint)
    );

    let promoted = apply(&with_learner, vec![ConfChangeStep::AddVoter(NodeId(5))]).unwrap();
    assert_eq!(promoted, conf(&[1, 2, 3, 5], &[1, 2, 3], &[]));
    assert_eq!(
        apply(&old, vec![ConfChangeStep::AddLearner(NodeId(3))]),
        Err(ConfChangeError::VoterToLearner(NodeId(3)))
    );
    assert_eq!(
        apply(
            &old,
            nodes(&[1, 2, 3])
                .into_iter()
                .map(ConfChangeStep::Remove)
                .collect()
        ),
        Err(ConfChangeError::NoVoters)
    );
    // Reference: §6 (joint consensus), thesis §4.3
}

/// The dumb twin of one majority: the largest index at least a strict majority has matched.
fn naive_committed(voters: &BTreeSet<u64>, matches: &[u64]) -> u64 {
    (0..=10)
        .filter(|&index| {
            let reached = voters
                .iter()
                .filter(|&&id| matches[id as usize - 1] >= index)
                .count();
            2 * reached > voters.len()
        })
        .max()
        .unwrap_or(0)
}

fn naive_vote(voters: &BTreeSet<u64>, votes: &[Option<bool>]) -> VoteResult {
    let count = |granted: bool| {
        voters
            .iter()
            .filter(|&&id| votes[id as usize - 1] == Some(granted))
            .count()
    };
    if 2 * count(true) > voters.len() {
        VoteResult::Won
    } else if 2 * count(false) > voters.len() {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

proptest! {
    #[test]
    fn joint_config_matches_two_naive_majorities(
        incoming in proptest::collection::btree_set(1u64..=7, 1..=7),
        outgoing in proptest::collection::btree_set(1u64..=7, 0..=7),
        matches in proptest::collection::vec(0u64..=10, 7),
        votes in proptest::collection::vec(proptest::option::of(any::<bool>()), 7),
        active in proptest::collection::vec(any::<bool>(), 7),
    ) {
        // §6: in C_old,new the commit index is the smaller of the two majorities' and an
        // election needs both; a simple configuration is one naive majority.
        let config = JointConfig::joint(
            incoming.iter().copied().map(NodeId),
            outgoing.iter().copied().map(NodeId),
        );
        let joint = !outgoing.is_empty();
        prop_assert_eq!(config.is_joint(), joint);
        let committed = config.committed_index(|id| {
            let m = matches[id.0 as usize - 1];
            (m > 0).then_some(LogIndex(m))
        });
        let mut expected = naive_committed(&incoming, &matches);
        if joint {
            expected = expected.min(naive_committed(&outgoing, &matches));
        }
        prop_assert_eq!(committed, LogIndex(expected));

        let ballot: BTreeMap<NodeId, bool> = (1u64..=7)
            .filter_map(|id| votes[id as usize - 1].map(|granted| (NodeId(id), granted)))
            .collect();
        let expected_vote = match (naive_vote(&incoming, &votes), joint) {
            (only, false) => only,
            (inc, true) => match (inc, naive_vote(&outgoing, &votes)) {
                (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
                (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
                _ => VoteResult::Pending,
            },
        };
        prop_assert_eq!(config.vote_result(&ballot), expected_vote);

        let majority_active = |voters: &BTreeSet<u64>| {
            2 * voters.iter().filter(|&&id| active[id as usize - 1]).count() > voters.len()
        };
        prop_assert_eq!(
            config.has_active_majority(|id| active[id.0 as usize - 1]),
            majority_active(&incoming) && (!joint || majority_active(&outgoing))
        );
        // Reference: §6 (joint consensus)
    }

    #[test]
    fn conf_changes_round_trip(
        raw in proptest::collection::vec((1u8..=3, 1u64..), 0..=16),
    ) {
        // Any change of at most 16 steps of non-zero ids decodes to itself.
        let steps = raw
            .into_iter()
            .map(|(kind, id)| match kind {
                1 => ConfChangeStep::AddVoter(NodeId(id)),
                2 => ConfChangeStep::AddLearner(NodeId(id)),
                _ => ConfChangeStep::Remove(NodeId(id)),
            })
            .collect();
        let original = change(steps);
        prop_assert_eq!(ConfChange::decode(&original.encode()), Ok(original));
        // Reference: §6
    }
}

#[test]
fn learner_is_promoted_only_once_caught_up() {
    // Promoting a learner that lags would add a voter that holds nothing: refused until its
    // log has reached the commit index.
    let mut leader = leader_ready_for_changes(3);
    leader
        .propose_conf_change(change(vec![ConfChangeStep::AddLearner(NodeId(4))]))
        .unwrap();
    drain(&mut leader);
    ack(&mut leader, 1, 2, &[2]);
    assert_eq!(leader.raft().conf_state().learners, vec![NodeId(4)]);
    let promote = || change(vec![ConfChangeStep::AddVoter(NodeId(4))]);
    assert_eq!(
        leader.propose_conf_change(promote()),
        Err(ProposeError::LearnerNotCaughtUp { learner: NodeId(4) })
    );
    ack(&mut leader, 1, 2, &[4]);
    assert!(
        leader.propose_conf_change(promote()).is_ok(),
        "caught up: promoted"
    );
    // Reference: §6, thesis §4.2.1 (new servers join as non-voting members until caught up)
}
