//! Membership changes (§6): when changes take effect, and when they may be proposed.

mod harness;

use harness::*;
use skiff_raft::{
    ConfChange, ConfChangeStep, Config, Entry, EntryKind, HardState, LogIndex, MessageBody, NodeId,
    ProposeError, Term,
};

fn conf_entry(index: u64, term: u64, steps: Vec<ConfChangeStep>) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: EntryKind::ConfChange,
        data: ConfChange { steps }.encode(),
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
fn voter_change_enters_and_leaves_the_joint_configuration() {
    // Applying a change of voters puts C_old,new in force and the leader appends the entry
    // that leaves it; applying that one puts C_new in force.
    let mut leader = node(no_prevote(1, 3), &[], HardState::default());
    elect(&mut leader);
    leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    drain(&mut leader);
    leader
        .propose_conf_change(ConfChange {
            steps: vec![ConfChangeStep::AddVoter(NodeId(4))],
        })
        .unwrap();
    drain(&mut leader);
    leader.step(msg(2, 1, 1, accepted(2))).unwrap();
    drain(&mut leader);
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
    leader.step(msg(2, 1, 1, accepted(3))).unwrap();
    drain(&mut leader);
    assert_eq!(
        leader.raft().log().committed(),
        LogIndex(2),
        "two of four is not a majority of C_new"
    );
    leader.step(msg(4, 1, 1, accepted(3))).unwrap();
    drain(&mut leader);
    assert_eq!(leader.raft().log().committed(), LogIndex(3));
    assert!(!leader.raft().conf_state().is_joint(), "C_new is in force");
    // Reference: §6 (joint consensus)
}
