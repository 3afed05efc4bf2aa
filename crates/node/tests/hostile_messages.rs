//! The regression corpus of attacks seen against a real cluster through a forged peer
//! connection. Each scenario sends the attack to a node of a healthy three-node cluster and
//! checks that the node refuses it with an error naming what was wrong, that nothing of it
//! reached the node's state or disk, that the node still serves, and that it restarts from
//! its disk.

mod common;

use bytes::Bytes;
use common::NodeCluster;
use skiff_kv::Reply;
use skiff_node::{PeerMessageError, SnapshotRefusal};
use skiff_raft::{
    Entry, EntryKind, InvalidMessage, LogIndex, LogStorage, Message, MessageBody, NodeId,
    SnapshotMeta, StepError, Term,
};

/// A cluster led by node 1 that committed `a = 1` everywhere.
fn healthy() -> NodeCluster {
    let mut cluster = NodeCluster::new();
    cluster.elect(1);
    assert_eq!(cluster.write(1, "a", "1"), Some(Reply::Ok));
    cluster.tick(5);
    cluster.check_invariants("setup");
    cluster
}

fn term_of(cluster: &NodeCluster, id: u64) -> Term {
    cluster.node(id).raw().raft().term()
}

/// After an attack on node `id`: the cluster still commits a write that node `id` applies,
/// and node `id` restarts from its disk with the same durable term and the same data.
fn still_works(cluster: &mut NodeCluster, id: u64) {
    cluster.check_invariants("after the attack");
    // An attack in a later term may depose the leader (§5.1): wait for the next one.
    cluster.tick(80);
    let leader = cluster.leader().expect("a leader").0;
    assert_eq!(
        cluster.write(leader, "b", "2"),
        Some(Reply::Ok),
        "the cluster still commits"
    );
    cluster.tick(5);
    assert_eq!(
        cluster.value(id, "b"),
        Some(b"2".to_vec()),
        "the node still follows"
    );
    let term = cluster.node(id).wal().hard_state().term;
    cluster.reopen(id);
    cluster.settle();
    assert_eq!(cluster.node(id).wal().hard_state().term, term);
    assert_eq!(cluster.value(id, "a"), Some(b"1".to_vec()));
    cluster.check_invariants("after the restart");
}

fn append(from: u64, to: u64, term: u64, prev: (u64, u64), entries: Vec<Entry>) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body: MessageBody::AppendEntries {
            prev_log_index: LogIndex(prev.0),
            prev_log_term: Term(prev.1),
            entries,
            leader_commit: LogIndex(0),
            read_round: 0,
        },
    }
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: EntryKind::Normal,
        data: b"forged".to_vec().into(),
    }
}

#[test]
fn append_entries_with_term_u64_max_is_refused_and_the_term_stays() {
    let mut cluster = healthy();
    let before = term_of(&cluster, 2);
    let mut frame = Vec::new();
    let attack = append(1, 2, u64::MAX, (0, 0), vec![]);
    skiff_node::wire::encode(&skiff_node::PeerMessage::Raft(attack.clone()), &mut frame);
    // 76 bytes on the wire with the transport's header (length, version, cluster id, kind).
    assert_eq!(frame.len() + 14, 76);
    let refused = cluster.forge(attack);
    assert!(
        matches!(
            refused,
            Err(PeerMessageError::Refused(StepError::Invalid(
                InvalidMessage::TermTooLarge { field: "term", .. }
            )))
        ),
        "{refused:?}"
    );
    assert_eq!(term_of(&cluster, 2), before, "the term is not raised");
    assert_eq!(
        cluster.node(2).wal().hard_state().term,
        before,
        "nor made durable"
    );
    still_works(&mut cluster, 2);
}

#[test]
fn append_entries_with_an_index_gap_is_refused_and_the_log_is_unchanged() {
    let mut cluster = healthy();
    let term = term_of(&cluster, 2).0;
    let last = cluster.node(2).raw().raft().log().last_index().0;
    let refused = cluster.forge(append(
        1,
        2,
        term,
        (last, term),
        vec![entry(last + 1, term), entry(last + 3, term)],
    ));
    assert!(
        matches!(
            refused,
            Err(PeerMessageError::Refused(StepError::Invalid(
                InvalidMessage::EntryGap { .. }
            )))
        ),
        "{refused:?}"
    );
    assert_eq!(cluster.node(2).raw().raft().log().last_index().0, last);
    still_works(&mut cluster, 2);
}

#[test]
fn append_entries_rewriting_committed_entries_changes_nothing() {
    let mut cluster = healthy();
    let term = term_of(&cluster, 2).0;
    let committed = cluster.node(2).raw().raft().log().committed().0;
    assert!(committed >= 2);
    // A forged "leader" of a later term rewrites the last committed entry.
    let refused = cluster.forge(append(
        1,
        2,
        term + 1,
        (committed - 1, term),
        vec![entry(committed, term + 1)],
    ));
    // Below the commit index the log already matches any real leader's (§5.4 Leader
    // Completeness): the follower acknowledges its commit index and keeps its entries.
    assert!(refused.is_ok(), "{refused:?}");
    let log = cluster.node(2).raw().raft().log();
    assert_eq!(
        log.term(LogIndex(committed)),
        Some(Term(term)),
        "the entry is kept"
    );
    still_works(&mut cluster, 2);
}

fn garbage_snapshot(
    from: u64,
    to: u64,
    term: Term,
    index: u64,
    offset: u64,
    done: bool,
) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term,
        body: MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                index: LogIndex(index),
                term,
                voters: vec![NodeId(1), NodeId(2), NodeId(3)],
                voters_outgoing: vec![],
                learners: vec![],
            },
            offset,
            data: b"definitely not a snapshot".to_vec(),
            done,
        },
    }
}

#[test]
fn a_garbage_snapshot_is_refused_before_it_replaces_the_durable_one() {
    let mut cluster = healthy();
    let term = term_of(&cluster, 2);
    let applied = cluster.node(2).applied();
    let snapshot_before = cluster.node(2).wal().snapshot_meta();
    // In one chunk, and in two (the first is staged on disk, the last is checked).
    let refused = cluster.forge(garbage_snapshot(1, 2, term, 500, 0, true));
    assert!(
        matches!(
            refused,
            Err(PeerMessageError::BadSnapshot {
                problem: SnapshotRefusal::Envelope(_),
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        cluster
            .forge(garbage_snapshot(1, 2, term, 600, 0, false))
            .ok(),
        Some(())
    );
    let refused = cluster.forge(garbage_snapshot(1, 2, term, 600, 25, true));
    assert!(
        matches!(refused, Err(PeerMessageError::BadSnapshot { .. })),
        "{refused:?}"
    );
    assert_eq!(
        cluster.node(2).applied(),
        applied,
        "the state machine is kept"
    );
    assert_eq!(
        cluster.node(2).wal().snapshot_meta(),
        snapshot_before,
        "and the snapshot"
    );
    assert_eq!(cluster.value(2, "a"), Some(b"1".to_vec()));
    still_works(&mut cluster, 2);
}

#[test]
fn a_garbage_snapshot_with_a_real_envelope_is_refused_by_the_state_machine_checksum() {
    let mut cluster = healthy();
    let term = term_of(&cluster, 2);
    let mut data = Vec::new();
    skiff_node::payload::put_snapshot_header(&Default::default(), &mut data);
    data.extend_from_slice(b"SKVS\x01 not a state machine");
    let mut attack = garbage_snapshot(1, 2, term, 500, 0, true);
    if let MessageBody::InstallSnapshot { data: chunk, .. } = &mut attack.body {
        *chunk = data;
    }
    let refused = cluster.forge(attack);
    assert!(
        matches!(
            refused,
            Err(PeerMessageError::BadSnapshot {
                problem: SnapshotRefusal::StateMachine(_),
                ..
            })
        ),
        "{refused:?}"
    );
    still_works(&mut cluster, 2);
}

#[test]
fn forged_timeout_now_frames_cause_no_leader_change() {
    let mut cluster = healthy();
    let term = term_of(&cluster, 1).0;
    // From a follower to a follower, and "from the leader" in later terms to the leader and
    // to a follower: five frames each.
    for k in 0..5 {
        for (from, to, term) in [(3, 2, term), (2, 1, term + 1 + k), (1, 3, term + 1 + k)] {
            let refused = cluster.forge(Message {
                from: NodeId(from),
                to: NodeId(to),
                term: Term(term),
                body: MessageBody::TimeoutNow,
            });
            assert!(
                matches!(
                    refused,
                    Err(PeerMessageError::Refused(
                        StepError::TimeoutNowNotFromLeader { .. }
                    ))
                ),
                "{refused:?}"
            );
        }
        cluster.settle();
    }
    assert_eq!(cluster.leader(), Some(NodeId(1)), "Reference: thesis §3.10");
    for id in 1..=3 {
        assert_eq!(term_of(&cluster, id).0, term, "node {id} kept its term");
    }
    still_works(&mut cluster, 2);
}

#[test]
fn messages_from_or_to_node_zero_are_refused() {
    let mut cluster = healthy();
    let term = term_of(&cluster, 2).0;
    let node = cluster.nodes.get_mut(&NodeId(2)).expect("exists");
    let refused = node.step(skiff_node::Envelope::new(
        1,
        skiff_node::PeerMessage::Raft(append(0, 2, term, (0, 0), vec![])),
    ));
    assert!(
        matches!(
            refused,
            Err(PeerMessageError::Refused(StepError::Invalid(
                InvalidMessage::ZeroNodeId { field: "from" }
            )))
        ),
        "{refused:?}"
    );
    let refused = node.step(skiff_node::Envelope::new(
        1,
        skiff_node::PeerMessage::Forward {
            from: NodeId(0),
            to: NodeId(2),
            id: 1,
            request: vec![],
        },
    ));
    assert!(refused.is_err(), "{refused:?}");
    still_works(&mut cluster, 2);
}

#[test]
fn a_node_poisoned_by_the_old_bug_starts_and_does_not_panic() {
    // Before validation, term u64::MAX became durable. Such a node must still open, and its
    // own arithmetic (campaigning) must not overflow.
    let mut cluster = healthy();
    let node = cluster.nodes.remove(&NodeId(3)).expect("exists");
    let mut disk = node.into_disk();
    {
        let options = common::config(3).wal;
        let (mut wal, _) = skiff_wal::Wal::open(disk, common::DIR, options).expect("opens");
        let mut poisoned = wal.hard_state();
        poisoned.term = Term(u64::MAX);
        poisoned.vote = None;
        wal.append_batch(&[], Some(poisoned)).expect("writes");
        disk = wal.into_disk();
    }
    let (mut node, _): (skiff_node::Node<_>, _) =
        skiff_node::Node::open(disk, common::DIR, common::config(3)).expect("still opens");
    for _ in 0..200 {
        node.tick();
        node.run(&mut skiff_node::NoObserver).expect("runs");
        let _ = node.take_effects();
    }
    assert_eq!(node.raw().raft().term(), Term(u64::MAX));
}

#[test]
fn a_real_snapshot_in_many_chunks_is_checked_and_installed() {
    // The control for the refusals above: node 3 misses enough entries that the leader
    // compacts them, and catches up from a snapshot sent 64 bytes at a time.
    let mut cluster = healthy();
    let away = cluster.nodes.remove(&NodeId(3)).expect("exists");
    for k in 0..20 {
        assert_eq!(cluster.write(1, &format!("k{k}"), "v"), Some(Reply::Ok));
    }
    assert!(
        cluster.node(1).wal().snapshot_meta().index.0 > 0,
        "the leader compacted"
    );
    cluster.nodes.insert(NodeId(3), away);
    cluster.tick(20);
    assert!(
        cluster.node(3).wal().snapshot_meta().index.0 > 0,
        "node 3 installed it"
    );
    assert_eq!(cluster.value(3, "k19"), Some(b"v".to_vec()));
    still_works(&mut cluster, 3);
}

#[test]
fn an_empty_normal_entry_from_the_leader_is_refused_and_the_log_is_unchanged() {
    let mut cluster = healthy();
    let term = term_of(&cluster, 2).0;
    let last = cluster.node(2).raw().raft().log().last_index().0;
    let mut attack = append(
        1,
        2,
        term,
        (last, term),
        vec![
            entry(last + 1, term),
            Entry {
                data: Bytes::new(),
                ..entry(last + 2, term)
            },
        ],
    );
    if let MessageBody::AppendEntries { leader_commit, .. } = &mut attack.body {
        *leader_commit = LogIndex(last + 2);
    }
    let refused = cluster.forge(attack);
    assert!(
        matches!(
            refused,
            Err(PeerMessageError::EmptyEntry { from: NodeId(1), index }) if index == LogIndex(last + 2)
        ),
        "{refused:?}"
    );
    let log = cluster.node(2).raw().raft().log();
    assert_eq!(log.last_index().0, last, "no entry of it is stored");
    assert_eq!(cluster.node(2).applied().0, last);
    still_works(&mut cluster, 2);
}
