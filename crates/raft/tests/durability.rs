//! Durability and the Ready contract (thesis §3.8): what a node promises only after it is
//! durable, how it restarts from what it persisted, and how each Ready hands work out once.

mod harness;

use harness::*;
use skiff_raft::{
    Config, ConfigError, HardState, LogIndex, LogStorage, MemStorage, NodeId, RawNode, Ready, Role,
    SoftState, StartError, Status, Term,
};

#[test]
fn restart_with_commit_beyond_log_is_refused() {
    let start = |commit: u64| {
        RawNode::new(
            config(1, 3),
            storage_with_terms(&[1, 1]),
            hard_state(1, 0, commit),
        )
        .map(|node| node.raft().log().committed())
    };
    assert_eq!(start(2), Ok(LogIndex(2)));
    assert_eq!(
        start(3),
        Err(StartError::CommitBeyondLog {
            commit: LogIndex(3),
            last_index: LogIndex(2)
        })
    );
    let mut bad = config(1, 3);
    bad.id = NodeId(0);
    assert_eq!(
        RawNode::new(bad, MemStorage::new(), HardState::default()).map(|_| ()),
        Err(StartError::Config(ConfigError::ZeroId))
    );
    // Reference: Figure 2 (persistent state), thesis §3.8
}

#[test]
fn restart_hands_out_only_unapplied_entries() {
    // (applied index in the configuration, entries handed out after restart)
    let table = [
        (0, vec![1, 2, 3, 4]),
        (2, vec![3, 4]),
        (4, vec![]),
        (9, vec![]),
    ];
    for (applied, expected) in table {
        let mut config = config(1, 3);
        config.applied = LogIndex(applied);
        let mut node = node(config, &[1, 1, 1, 1, 1], hard_state(1, 0, 4));
        assert_eq!(node.has_ready(), !expected.is_empty(), "applied {applied}");
        let batch = process(&mut node);
        let indexes: Vec<u64> = batch.committed_entries.iter().map(|e| e.index.0).collect();
        assert_eq!(indexes, expected, "applied {applied}");
        assert_eq!(batch.soft_state, None, "applied {applied}");
        assert_eq!(batch.hard_state, None, "applied {applied}");
        assert_eq!(node.raft().log().applied(), LogIndex(4));
        assert!(!node.has_ready(), "applied {applied}");
    }
    // Reference: thesis §3.8 (the state machine is rebuilt from the log)
}

#[test]
fn restarted_node_keeps_term_and_vote() {
    let mut voter = node(config(1, 3), &[1], hard_state(1, 0, 0));
    voter.step(msg(2, 1, 5, vote_request(1, 1))).unwrap();
    let batch = process(&mut voter);
    let durable = batch.hard_state.unwrap();
    assert_eq!(durable, hard_state(5, 2, 0));

    let storage = voter.storage().clone();
    drop(voter);
    let mut restarted = RawNode::new(config(1, 3), storage, durable).unwrap();
    assert_eq!(restarted.raft().term(), Term(5));
    assert_eq!(restarted.raft().vote(), Some(NodeId(2)));
    assert!(
        !restarted.has_ready(),
        "nothing changed since it was persisted"
    );
    restarted.step(msg(3, 1, 5, vote_request(1, 1))).unwrap();
    let batch = process(&mut restarted);
    assert_eq!(
        batch.messages,
        vec![msg(1, 3, 5, vote_response(false))],
        "no second vote in term 5"
    );
    restarted.step(msg(2, 1, 5, vote_request(1, 1))).unwrap();
    assert_eq!(
        process(&mut restarted).persisted_messages,
        vec![msg(1, 2, 5, vote_response(true))]
    );
    // Reference: Figure 2 (currentTerm and votedFor are persistent)
}

#[test]
fn crashed_follower_rejoins_without_reapplying() {
    let mut cluster = CoreCluster::new(3);
    let leader = cluster.tick_until_leader();
    let follower = if leader == 1 { 2 } else { 1 };
    cluster.propose(leader, b"a");
    cluster.propose(leader, b"b");
    cluster.tick_all();
    let term = cluster.node(follower).raft().term();
    let log = cluster.log_terms(follower);
    cluster.crash(follower);
    cluster.propose(leader, b"c");
    cluster.restart(follower);
    assert_eq!(cluster.node(follower).raft().term(), term);
    assert_eq!(cluster.log_terms(follower), log);
    assert_eq!(cluster.node(follower).raft().role(), Role::Follower);
    for _tick in 0..3 {
        cluster.tick_all();
    }
    let all = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
    assert_eq!(
        cluster.applied_data(follower),
        all,
        "each entry applied exactly once"
    );
    assert_eq!(cluster.applied_data(leader), all);
    // Reference: §5.3, thesis §3.8
}

#[test]
fn crashed_leader_is_replaced_and_catches_up() {
    let mut cluster = CoreCluster::new(3);
    let first = cluster.tick_until_leader();
    cluster.propose(first, b"a");
    cluster.crash(first);
    for _tick in 0..40 {
        cluster.tick_all();
    }
    let second = cluster.leader().expect("the survivors elect a leader").0;
    assert_ne!(second, first);
    cluster.propose(second, b"b");
    cluster.restart(first);
    assert_eq!(cluster.node(first).raft().role(), Role::Follower);
    for _tick in 0..3 {
        cluster.tick_all();
    }
    assert_eq!(cluster.node(first).raft().leader(), Some(NodeId(second)));
    assert_eq!(
        cluster.applied_data(first),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(cluster.log_terms(first), cluster.log_terms(second));
    // Reference: §5.2, §5.4 (Leader Completeness)
}

#[test]
fn single_node_restarts_and_commits_its_old_entries() {
    let mut node = node(config(1, 1), &[1, 1], hard_state(1, 1, 1));
    node.campaign();
    let mut applied = Vec::new();
    for _batch in 0..10 {
        if !node.has_ready() {
            break;
        }
        applied.extend(process(&mut node).committed_entries);
    }
    assert_eq!(node.raft().role(), Role::Leader);
    assert_eq!(node.raft().term(), Term(2));
    assert_eq!(applied, vec![entry(1, 1), entry(2, 1), noop(3, 2)]);
    // Reference: §5.4.2
}

#[test]
fn rewritten_unstable_tail_is_not_marked_durable() {
    let mut follower = node(config(2, 3), &[1], hard_state(1, 0, 0));
    follower
        .step(msg(
            1,
            2,
            1,
            append(1, 1, vec![entry(2, 1), entry(3, 1)], 0),
        ))
        .unwrap();
    let first = follower.ready();
    assert_eq!(first.entries, vec![entry(2, 1), entry(3, 1)]);
    // Before the first batch is durable, a new leader replaces entry 3.
    follower
        .step(msg(3, 2, 2, append(2, 1, vec![entry(3, 2)], 0)))
        .unwrap();
    follower.storage_mut().append(&first.entries).unwrap();
    follower.advance(first);
    assert_eq!(
        follower.raft().log().persisted_index(),
        LogIndex(1),
        "entry 3 on disk is of term 1, not the term-2 entry the log now holds"
    );
    let second = process(&mut follower);
    assert_eq!(second.entries, vec![entry(2, 1), entry(3, 2)]);
    assert_eq!(second.persisted_messages, vec![msg(2, 3, 2, accepted(3))]);
    assert_eq!(follower.raft().log().persisted_index(), LogIndex(3));
    assert_eq!(follower.storage().all_entries()[2], entry(3, 2));
    // Reference: thesis §3.8, §5.3
}

#[test]
fn entries_appended_during_a_ready_stay_unstable() {
    let mut follower = node(config(2, 3), &[], hard_state(1, 0, 0));
    follower
        .step(msg(
            1,
            2,
            1,
            append(0, 0, vec![entry(1, 1), entry(2, 1)], 0),
        ))
        .unwrap();
    let first = follower.ready();
    follower
        .step(msg(1, 2, 1, append(2, 1, vec![entry(3, 1)], 0)))
        .unwrap();
    follower.storage_mut().append(&first.entries).unwrap();
    follower.advance(first);
    assert_eq!(follower.raft().log().persisted_index(), LogIndex(2));
    assert_eq!(follower.raft().log().unstable_entries(), &[entry(3, 1)]);
    let second = process(&mut follower);
    assert_eq!(second.entries, vec![entry(3, 1)]);
    assert_eq!(
        second.persisted_messages,
        vec![msg(2, 1, 1, accepted(3))],
        "the second ack waits for the second batch"
    );
    // Reference: thesis §3.8
}

#[test]
fn overwriting_durable_entries_lowers_the_durable_mark() {
    let mut follower = node(config(2, 3), &[1, 1, 1], hard_state(1, 0, 1));
    assert_eq!(follower.raft().log().persisted_index(), LogIndex(3));
    follower
        .step(msg(1, 2, 2, append(1, 1, vec![entry(2, 2)], 1)))
        .unwrap();
    assert_eq!(follower.raft().log().persisted_index(), LogIndex(1));
    assert_eq!(follower.raft().log().last_index(), LogIndex(2));
    let batch = process(&mut follower);
    assert_eq!(batch.entries, vec![entry(2, 2)]);
    assert_eq!(follower.raft().log().persisted_index(), LogIndex(2));
    assert_eq!(
        follower.storage().all_entries(),
        &[entry(1, 1), entry(2, 2)]
    );
    // Reference: §5.3
}

#[test]
fn ready_hands_out_each_item_once() {
    let mut follower = node(config(2, 3), &[], hard_state(1, 0, 0));
    follower
        .step(msg(1, 2, 1, append(0, 0, vec![entry(1, 1)], 1)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(
        batch.soft_state,
        Some(SoftState {
            role: Role::Follower,
            leader: Some(NodeId(1))
        })
    );
    assert_eq!(batch.hard_state, Some(hard_state(1, 0, 1)));
    assert_eq!(batch.entries, vec![entry(1, 1)]);
    assert_eq!(batch.committed_entries, vec![entry(1, 1)]);
    assert!(!follower.has_ready());
    let again = follower.ready();
    assert!(again.is_empty(), "{again:?}");
    follower.advance(again);

    follower
        .step(msg(1, 2, 1, append(1, 1, vec![], 1)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(batch.soft_state, None, "same role, same leader");
    assert_eq!(batch.hard_state, None);
    assert!(batch.entries.is_empty());
    assert!(batch.committed_entries.is_empty());
    assert_eq!(batch.persisted_messages, vec![msg(2, 1, 1, accepted(1))]);
    // Reference: etcd-io/raft node.go (Ready)
}

#[test]
fn has_ready_reports_each_kind_of_work() {
    // Nothing to do.
    let fresh = node(config(1, 3), &[1], hard_state(1, 0, 0));
    assert!(!fresh.has_ready());

    // Only a new role: a leader that loses its quorum steps down without sending anything.
    let mut leader = node(config(1, 3), &[], HardState::default());
    elect(&mut leader);
    for _tick in 0..9 {
        leader.tick();
        drain(&mut leader);
    }
    leader.tick();
    assert!(leader.has_ready(), "the role changed");
    let batch = process(&mut leader);
    assert_eq!(
        batch.soft_state,
        Some(SoftState {
            role: Role::Follower,
            leader: None
        })
    );
    assert_eq!(batch.hard_state, None);
    assert!(batch.messages.is_empty() && batch.entries.is_empty());

    // Only entries to apply: a restart with a commit index beyond the applied one.
    let restarted = node(config(1, 3), &[1, 1], hard_state(1, 0, 2));
    assert!(restarted.has_ready());

    // Only a new hard state: a leaderless follower learns of a later term from an answer.
    let mut follower = node(config(1, 3), &[], hard_state(1, 0, 0));
    follower.step(msg(2, 1, 3, accepted(0))).unwrap();
    assert!(follower.has_ready(), "the term changed");
    let batch = process(&mut follower);
    assert_eq!(batch.soft_state, None);
    assert_eq!(batch.hard_state, Some(hard_state(3, 0, 0)));
    assert!(batch.messages.is_empty() && batch.persisted_messages.is_empty());

    // A new hard state and messages: a candidate (without PreVote) that times
    // campaigns again raises its term and asks again.
    let mut config = config(1, 3);
    config.pre_vote = false;
    let mut candidate = node(config, &[], HardState::default());
    candidate.campaign();
    drain(&mut candidate);
    candidate.campaign();
    assert!(candidate.has_ready());
    let batch = process(&mut candidate);
    assert_eq!(batch.soft_state, None);
    assert_eq!(batch.hard_state, Some(hard_state(2, 1, 0)));
    // Reference: etcd-io/raft rawnode.go (HasReady)
}

#[test]
fn ready_is_empty_only_when_nothing_to_do() {
    let hs = Some(hard_state(1, 0, 0));
    let soft = Some(SoftState {
        role: Role::Follower,
        leader: None,
    });
    let m = msg(1, 2, 1, accepted(0));
    let cases: Vec<(Ready, bool)> = vec![
        (Ready::default(), true),
        (
            Ready {
                soft_state: soft,
                ..Ready::default()
            },
            false,
        ),
        (
            Ready {
                hard_state: hs,
                ..Ready::default()
            },
            false,
        ),
        (
            Ready {
                entries: vec![entry(1, 1)],
                ..Ready::default()
            },
            false,
        ),
        (
            Ready {
                messages: vec![m.clone()],
                ..Ready::default()
            },
            false,
        ),
        (
            Ready {
                persisted_messages: vec![m],
                ..Ready::default()
            },
            false,
        ),
        (
            Ready {
                committed_entries: vec![entry(1, 1)],
                ..Ready::default()
            },
            false,
        ),
    ];
    for (k, (ready, empty)) in cases.into_iter().enumerate() {
        assert_eq!(ready.is_empty(), empty, "case {k}");
    }
    // Reference: etcd-io/raft node.go (Ready.containsUpdates)
}

#[test]
fn status_reports_the_node() {
    let mut leader = node(config(1, 3), &[], HardState::default());
    elect(&mut leader);
    leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    drain(&mut leader);
    assert_eq!(
        leader.status(),
        Status {
            id: NodeId(1),
            term: Term(1),
            vote: Some(NodeId(1)),
            soft_state: SoftState {
                role: Role::Leader,
                leader: Some(NodeId(1))
            },
            commit: LogIndex(1),
            applied: LogIndex(1),
            last_index: LogIndex(1),
            match_index: vec![
                (NodeId(1), LogIndex(1)),
                (NodeId(2), LogIndex(1)),
                (NodeId(3), LogIndex(0))
            ],
        }
    );
    assert_eq!(leader.raft().config(), &{
        let mut c: Config = config(1, 3);
        c.seed = 42;
        c
    });
    assert_eq!(leader.raft().hard_state(), hard_state(1, 1, 1));
    assert_eq!(leader.raft().log().first_index(), LogIndex(1));
    // Reference: etcd-io/raft status.go
}
