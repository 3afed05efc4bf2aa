//! Log replication (§5.3) and commitment (§5.4.2): consistency checks, conflict repair,
//! the size of each append, and the leader's proposal limits (the pipeline's limits: `flow_control.rs`).

mod harness;

use std::cell::Cell;
use std::rc::Rc;

use harness::*;
use skiff_raft::{
    AppendResponse, Entry, HardState, LogIndex, LogStorage, MemStorage, MessageBody, NodeId,
    ProposeError, RawNode, Role, Term,
};

fn match_index(node: &RawNode<MemStorage>, id: u64) -> LogIndex {
    node.raft().progress()[&NodeId(id)].match_index()
}

fn next_index(node: &RawNode<MemStorage>, id: u64) -> LogIndex {
    node.raft().progress()[&NodeId(id)].next_index()
}

fn payload(index: u64, term: u64, byte: u8, len: usize) -> Entry {
    data_entry(index, term, &vec![byte; len])
}

#[test]
fn leader_appends_noop_on_election() {
    let mut node = node(config(1, 3), &[1, 1], hard_state(1, 0, 1));
    let sent = elect(&mut node);
    assert_eq!(node.raft().term(), Term(2));
    assert_eq!(
        sent,
        vec![
            msg(1, 2, 2, append(2, 1, vec![noop(3, 2)], 1)),
            msg(1, 3, 2, append(2, 1, vec![noop(3, 2)], 1)),
        ]
    );
    assert_eq!(node.storage().all_entries()[2], noop(3, 2));
    assert_eq!(match_index(&node, 1), LogIndex(3), "its own log is durable");
    assert_eq!(match_index(&node, 2), LogIndex(0));
    assert_eq!(next_index(&node, 2), LogIndex(3));
    // Reference: §5.4.2, thesis §6.4
}

#[test]
fn follower_appends_acks_and_applies() {
    let mut follower = node(config(2, 3), &[1], hard_state(1, 0, 0));
    let entries = vec![payload(2, 1, b'a', 1), payload(3, 1, b'b', 1)];
    follower
        .step(msg(1, 2, 1, append(1, 1, entries.clone(), 2)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(batch.entries, entries);
    assert_eq!(batch.hard_state, Some(hard_state(1, 0, 2)));
    assert_eq!(
        batch.committed_entries,
        vec![entry(1, 1), entries[0].clone()]
    );
    assert!(batch.messages.is_empty());
    assert_eq!(batch.persisted_messages, vec![msg(2, 1, 1, accepted(3))]);
    assert_eq!(follower.raft().leader(), Some(NodeId(1)));
    assert_eq!(follower.raft().log().applied(), LogIndex(2));
    assert_eq!(follower.raft().log().persisted_index(), LogIndex(3));
    assert!(!follower.has_ready());
    // Reference: §5.3, Figure 2 (AppendEntries RPC, receiver rules 4 and 5)
}

#[test]
fn append_ack_is_a_persisted_message() {
    let mut follower = node(config(2, 3), &[1], hard_state(1, 0, 0));
    follower
        .step(msg(1, 2, 1, append(1, 1, vec![entry(2, 1)], 0)))
        .unwrap();
    let ready = follower.ready();
    assert_eq!(ready.entries, vec![entry(2, 1)]);
    assert!(
        ready.messages.is_empty(),
        "an ack must wait for the entries to be durable"
    );
    assert_eq!(ready.persisted_messages, vec![msg(2, 1, 1, accepted(2))]);
    follower.storage_mut().append(&ready.entries).unwrap();
    follower.advance(ready);

    follower
        .step(msg(1, 2, 1, append(5, 1, vec![entry(6, 1)], 0)))
        .unwrap();
    let ready = follower.ready();
    assert_eq!(ready.messages, vec![msg(2, 1, 1, rejected(5, 2, 1))]);
    assert!(
        ready.persisted_messages.is_empty(),
        "a rejection promises nothing"
    );
    follower.advance(ready);
    // Reference: thesis §3.8
}

#[test]
fn follower_commit_is_bounded_by_what_the_append_verified() {
    let mut follower = node(config(2, 3), &[1, 1, 1, 1], hard_state(1, 0, 0));
    follower
        .step(msg(1, 2, 1, append(1, 1, vec![entry(2, 1)], 4)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(batch.hard_state, Some(hard_state(1, 0, 2)));
    assert_eq!(batch.committed_entries, vec![entry(1, 1), entry(2, 1)]);
    assert_eq!(batch.persisted_messages, vec![msg(2, 1, 1, accepted(2))]);
    // Reference: §5.3 (commit index = min(leaderCommit, index of last new entry))
}

#[test]
fn stale_append_does_not_truncate() {
    let mut follower = node(config(2, 3), &[1, 1, 1, 1], hard_state(1, 0, 0));
    follower
        .step(msg(1, 2, 1, append(1, 1, vec![entry(2, 1)], 0)))
        .unwrap();
    let batch = process(&mut follower);
    assert!(
        batch.entries.is_empty(),
        "entries 3 and 4 match the leader and stay"
    );
    assert_eq!(follower.raft().log().last_index(), LogIndex(4));
    assert_eq!(follower.storage().last_index(), LogIndex(4));
    assert_eq!(batch.persisted_messages, vec![msg(2, 1, 1, accepted(2))]);
    // Reference: §5.3 (delete only entries that conflict)
}

#[test]
fn conflicting_suffix_is_replaced() {
    // (append's entries as (index, term), entries written, log after, ack)
    type Case = (
        &'static [(u64, u64)],
        &'static [(u64, u64)],
        &'static [u64],
        u64,
    );
    let table: [Case; 4] = [
        (&[(2, 2)], &[(2, 2)], &[1, 2], 2),
        (
            &[(2, 1), (3, 2), (4, 2)],
            &[(3, 2), (4, 2)],
            &[1, 1, 2, 2],
            4,
        ),
        (&[(2, 1), (3, 1), (4, 1)], &[(4, 1)], &[1, 1, 1, 1], 4),
        (&[(2, 1)], &[], &[1, 1, 1], 2),
    ];
    for (sent, written, after, ack) in table {
        let mut follower = node(config(2, 3), &[1, 1, 1], hard_state(2, 0, 1));
        let sent_entries: Vec<Entry> = sent.iter().map(|&(i, t)| entry(i, t)).collect();
        follower
            .step(msg(1, 2, 2, append(1, 1, sent_entries, 1)))
            .unwrap();
        let batch = process(&mut follower);
        let written_entries: Vec<Entry> = written.iter().map(|&(i, t)| entry(i, t)).collect();
        assert_eq!(batch.entries, written_entries, "{sent:?}");
        let terms: Vec<u64> = follower
            .storage()
            .all_entries()
            .iter()
            .map(|e| e.term.0)
            .collect();
        assert_eq!(terms, after, "{sent:?}");
        assert_eq!(
            batch.persisted_messages,
            vec![msg(2, 1, 2, accepted(ack))],
            "{sent:?}"
        );
    }
    // Reference: §5.3, Figure 2 (AppendEntries RPC, receiver rule 3)
}

#[test]
fn append_below_the_commit_index_is_acknowledged_at_the_commit_index() {
    // (prev index of the append, the ack)
    let table = [(1, 3), (2, 3), (3, 4)];
    for (prev, ack) in table {
        let mut follower = node(config(2, 3), &[1, 1, 1], hard_state(1, 0, 3));
        follower
            .step(msg(1, 2, 1, append(prev, 1, vec![entry(prev + 1, 1)], 3)))
            .unwrap();
        let batch = process(&mut follower);
        assert_eq!(
            batch.persisted_messages,
            vec![msg(2, 1, 1, accepted(ack))],
            "prev {prev}"
        );
        let expected_last = if prev < 3 { 3 } else { 4 };
        assert_eq!(
            follower.raft().log().last_index(),
            LogIndex(expected_last),
            "prev {prev}"
        );
    }
    // Reference: §5.3 (committed entries already match the leader)
}

#[test]
fn follower_rejection_hints_skip_a_whole_term() {
    // The follower's log is [1, 1, 2, 2, 2]. (prev index, prev term, hint index, hint term)
    let table = [(7, 3, 5, 2), (4, 3, 4, 2), (5, 1, 2, 1), (3, 1, 2, 1)];
    for (prev_index, prev_term, hint_index, hint_term) in table {
        let mut follower = node(config(2, 3), &[1, 1, 2, 2, 2], hard_state(3, 0, 0));
        follower
            .step(msg(1, 2, 3, append(prev_index, prev_term, vec![], 0)))
            .unwrap();
        let batch = process(&mut follower);
        assert_eq!(
            batch.messages,
            vec![msg(2, 1, 3, rejected(prev_index, hint_index, hint_term))],
            "prev {prev_index}/{prev_term}"
        );
        assert!(batch.entries.is_empty());
        assert_eq!(batch.hard_state, None);
    }
    // Reference: §5.3 (the optimisation at the end of the section)
}

/// Leader 1 of term 8 with the log of Figure 7's leader: [1,1,1,4,4,5,5,6,6,6] plus its no-op.
fn figure_7_leader() -> RawNode<MemStorage> {
    let mut node = node(
        config(1, 3),
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6],
        hard_state(7, 0, 0),
    );
    let sent = elect(&mut node);
    assert_eq!(sent[0], msg(1, 2, 8, append(10, 6, vec![noop(11, 8)], 0)));
    node
}

#[test]
fn rejected_append_backs_up_by_whole_terms() {
    // Figure 7 (f): the follower's log is [1,1,1,2,2,2,3,3,3,3,3].
    let mut follower = node(
        config(2, 3),
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
        hard_state(3, 0, 0),
    );
    follower
        .step(msg(1, 2, 8, append(10, 6, vec![noop(11, 8)], 0)))
        .unwrap();
    let answer = drain(&mut follower);
    assert_eq!(answer, vec![msg(2, 1, 8, rejected(10, 10, 3))]);

    let mut leader = figure_7_leader();
    leader.step(answer[0].clone()).unwrap();
    let sent = drain(&mut leader);
    let leader_entries: Vec<Entry> = leader.storage().all_entries()[3..].to_vec();
    assert_eq!(
        sent,
        vec![msg(1, 2, 8, append(3, 1, leader_entries, 0))],
        "one round trip skips the follower's terms 2 and 3"
    );

    follower.step(sent[0].clone()).unwrap();
    let answer = drain(&mut follower);
    assert_eq!(answer, vec![msg(2, 1, 8, accepted(11))]);
    assert_eq!(
        follower.storage().all_entries(),
        leader.storage().all_entries()
    );
    // Reference: §5.3
}

#[test]
fn leader_probes_from_the_hint() {
    // (rejection's hint index, hint term, prev index of the next probe, its prev term)
    let table = [
        (10, 3, 3, 1),
        (6, 5, 6, 5),
        (10, 6, 9, 6),
        (0, 0, 0, 0),
        (4, 4, 4, 4),
    ];
    for (hint_index, hint_term, prev_index, prev_term) in table {
        let mut leader = figure_7_leader();
        leader
            .step(msg(2, 1, 8, rejected(10, hint_index, hint_term)))
            .unwrap();
        let sent = drain(&mut leader);
        assert_eq!(sent.len(), 1, "hint {hint_index}/{hint_term}");
        match &sent[0].body {
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                ..
            } => {
                assert_eq!(
                    (*prev_log_index, *prev_log_term),
                    (LogIndex(prev_index), Term(prev_term)),
                    "hint {hint_index}/{hint_term}"
                );
                assert_eq!(
                    entries.first().map(|e| e.index),
                    Some(LogIndex(prev_index + 1))
                );
                assert_eq!(entries.last().map(|e| e.index), Some(LogIndex(11)));
            }
            other => panic!("expected an append, got {other:?}"),
        }
        assert_eq!(next_index(&leader, 2), LogIndex(prev_index + 1));
    }
    // Reference: §5.3
}

#[test]
fn stale_rejection_is_ignored() {
    let mut leader = figure_7_leader();
    // An answer to an older probe (prev 7), not the outstanding one (prev 10).
    leader.step(msg(2, 1, 8, rejected(7, 3, 1))).unwrap();
    assert!(drain(&mut leader).is_empty());
    assert_eq!(next_index(&leader, 2), LogIndex(11));
    // Reference: §5.3
}

#[test]
fn rejection_while_streaming_falls_back_to_probing_after_match() {
    let mut leader = streaming_leader(3, |_| {});
    leader.propose(b"a".to_vec()).unwrap();
    leader.propose(b"b".to_vec()).unwrap();
    let sent = drain(&mut leader);
    assert_eq!(sent.len(), 2, "one append to each follower: {sent:?}");
    assert_eq!(next_index(&leader, 2), LogIndex(4));
    // A rejection at or below the match index is stale.
    leader.step(msg(2, 1, 1, rejected(1, 0, 0))).unwrap();
    assert!(drain(&mut leader).is_empty());
    assert_eq!(next_index(&leader, 2), LogIndex(4));
    // The follower lost the append: probe again right after the match index.
    leader.step(msg(2, 1, 1, rejected(3, 1, 1))).unwrap();
    let entries = leader.storage().all_entries()[1..].to_vec();
    assert_eq!(
        drain(&mut leader),
        vec![msg(1, 2, 1, append(1, 1, entries, 1))]
    );
    // Reference: §5.3
}

#[test]
fn prior_term_entry_not_committed_by_counting() {
    // Figure 8: the leader of term 3 holds an entry of term 2 that a majority stores.
    let mut leader = node(config(1, 3), &[1, 2], hard_state(2, 0, 1));
    elect(&mut leader);
    assert_eq!(leader.raft().term(), Term(3));
    leader.step(msg(2, 1, 3, accepted(2))).unwrap();
    let batch = process(&mut leader);
    assert_eq!(
        leader.raft().log().committed(),
        LogIndex(1),
        "index 2 is of term 2"
    );
    assert_eq!(batch.hard_state, None);
    assert!(batch.committed_entries.is_empty());
    assert_eq!(
        batch.messages,
        vec![msg(1, 2, 3, append(2, 2, vec![noop(3, 3)], 1))]
    );

    leader.step(msg(2, 1, 3, accepted(3))).unwrap();
    let batch = process(&mut leader);
    assert_eq!(batch.hard_state, Some(hard_state(3, 1, 3)));
    assert_eq!(batch.committed_entries, vec![entry(2, 2), noop(3, 3)]);
    // Reference: §5.4.2, Figure 8
}

#[test]
fn leader_commits_once_a_majority_stores_an_entry() {
    let mut leader = new_leader(5, |_| {});
    leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    let batch = process(&mut leader);
    assert_eq!(batch.hard_state, None, "two of five");
    assert!(batch.committed_entries.is_empty());
    assert!(batch.messages.is_empty(), "nothing new for node 2");

    leader.step(msg(3, 1, 1, accepted(1))).unwrap();
    let batch = process(&mut leader);
    assert_eq!(batch.hard_state, Some(hard_state(1, 1, 1)));
    assert_eq!(batch.committed_entries, vec![noop(1, 1)]);
    assert!(
        batch.messages.is_empty(),
        "the commit index rides on the next heartbeat"
    );
    leader.tick();
    assert_eq!(
        drain(&mut leader),
        vec![
            msg(1, 2, 1, append_in_round(1, 1, vec![], 1, 1)),
            msg(1, 3, 1, append_in_round(1, 1, vec![], 1, 1)),
            msg(1, 4, 1, append_in_round(0, 0, vec![], 0, 1)),
            msg(1, 5, 1, append_in_round(0, 0, vec![], 0, 1)),
        ],
        "probing followers are not told to commit what they have not verified"
    );
    // Reference: §5.3, §5.4.2
}

#[test]
fn stale_reply_does_not_move_match_index_back() {
    let mut leader = streaming_leader(3, |_| {});
    for data in [b"a", b"b", b"c"] {
        leader.propose(data.to_vec()).unwrap();
    }
    drain(&mut leader);
    leader.step(msg(2, 1, 1, accepted(4))).unwrap();
    drain(&mut leader);
    assert_eq!(match_index(&leader, 2), LogIndex(4));
    assert_eq!(leader.raft().log().committed(), LogIndex(4));

    leader.step(msg(2, 1, 1, accepted(2))).unwrap();
    assert_eq!(match_index(&leader, 2), LogIndex(4));
    assert_eq!(next_index(&leader, 2), LogIndex(5));
    assert!(drain(&mut leader).is_empty());
    // Reference: Figure 2 (matchIndex increases monotonically)
}

#[test]
fn ack_beyond_the_leaders_log_is_ignored() {
    let mut leader = new_leader(3, |_| {});
    leader.step(msg(2, 1, 1, accepted(9))).unwrap();
    assert_eq!(match_index(&leader, 2), LogIndex(0));
    assert!(drain(&mut leader).is_empty());
    assert_eq!(leader.raft().log().committed(), LogIndex(0));
    // Reference: §5.3
}

#[test]
fn ack_from_outside_the_cluster_is_ignored() {
    let mut leader = new_leader(3, |_| {});
    leader.step(msg(7, 1, 1, accepted(1))).unwrap();
    leader.step(msg(8, 1, 1, accepted(1))).unwrap();
    assert_eq!(leader.raft().log().committed(), LogIndex(0));
    assert!(drain(&mut leader).is_empty());
    // Reference: §5.3
}

#[test]
fn append_messages_respect_max_append_entries_and_bytes() {
    // Five proposals of 10 bytes (34 bytes with the header).
    // (max_append_entries, max_message_bytes, entries per message to node 2)
    let table = [
        (1024, 1024 * 1024, vec![5]),
        (2, 1024 * 1024, vec![2, 2, 1]),
        (1, 1024 * 1024, vec![1, 1, 1, 1, 1]),
        (1024, 68, vec![2, 2, 1]),
        (1024, 67, vec![1, 1, 1, 1, 1]),
        (1024, 102, vec![3, 2]),
    ];
    for (max_entries, max_bytes, shape) in table {
        let mut leader = streaming_leader(2, |c| {
            c.max_append_entries = max_entries;
            c.max_message_bytes = max_bytes;
        });
        for byte in b"abcde" {
            leader.propose(vec![*byte; 10]).unwrap();
        }
        let sent = drain(&mut leader);
        let sizes: Vec<usize> = sent
            .iter()
            .map(|m| match &m.body {
                MessageBody::AppendEntries { entries, .. } => entries.len(),
                other => panic!("expected an append, got {other:?}"),
            })
            .collect();
        assert_eq!(sizes, shape, "{max_entries} entries, {max_bytes} bytes");
        let bytes: u64 = sent.iter().map(|m| m.entries_bytes()).sum();
        assert_eq!(bytes, 50, "every entry is sent once");
    }
    // Reference: thesis §10.2.1, etcd-io/raft Config.MaxSizePerMsg
}

#[test]
fn heartbeat_carries_commit_bounded_by_prev_index() {
    let mut leader = new_leader(3, |_| {});
    leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    leader.propose(b"a".to_vec()).unwrap();
    drain(&mut leader);
    leader.step(msg(2, 1, 1, accepted(2))).unwrap();
    drain(&mut leader);
    assert_eq!(leader.raft().log().committed(), LogIndex(2));
    // Node 3 never answered its probe (prev 0): it must not be told to commit past 0.
    leader.tick();
    assert_eq!(
        drain(&mut leader),
        vec![
            msg(1, 2, 1, append_in_round(2, 1, vec![], 2, 1)),
            msg(1, 3, 1, append_in_round(0, 0, vec![], 0, 1))
        ]
    );
    // Reference: §5.3 (a follower commits only what it verified)
}

#[test]
fn commit_index_rides_on_the_next_heartbeat() {
    let mut leader = streaming_leader(3, |_| {});
    leader.propose(b"a".to_vec()).unwrap();
    drain(&mut leader);
    leader.step(msg(2, 1, 1, accepted(2))).unwrap();
    assert_eq!(leader.raft().log().committed(), LogIndex(2));
    assert!(drain(&mut leader).is_empty());
    leader.tick();
    assert_eq!(
        drain(&mut leader),
        vec![
            msg(1, 2, 1, append_in_round(2, 1, vec![], 2, 1)),
            msg(1, 3, 1, append_in_round(2, 1, vec![], 2, 1)),
        ]
    );
    // Reference: §5.3
}

#[test]
fn proposals_share_one_append() {
    let mut leader = streaming_leader(2, |_| {});
    leader.propose(b"a".to_vec()).unwrap();
    leader.propose(b"b".to_vec()).unwrap();
    let batch = process(&mut leader);
    assert_eq!(batch.entries.len(), 2);
    assert_eq!(
        batch.messages,
        vec![msg(1, 2, 1, append(1, 1, batch.entries.clone(), 1))]
    );
    // Reference: thesis §10.2.1 (batching)
}

#[test]
fn single_node_commit_requires_durability() {
    let mut node = node(config(1, 1), &[], HardState::default());
    node.campaign();
    drain(&mut node);
    assert_eq!(node.raft().log().committed(), LogIndex(1));
    assert_eq!(node.propose(b"x".to_vec()), Ok((LogIndex(2), Term(1))));
    let ready = node.ready();
    assert_eq!(ready.entries, vec![data_entry(2, 1, b"x")]);
    assert!(ready.committed_entries.is_empty(), "not durable yet");
    assert_eq!(ready.hard_state, None);
    node.storage_mut().append(&ready.entries).unwrap();
    node.advance(ready);
    assert!(node.has_ready());
    let batch = process(&mut node);
    assert_eq!(batch.hard_state, Some(hard_state(1, 1, 2)));
    assert_eq!(batch.committed_entries, vec![data_entry(2, 1, b"x")]);
    assert!(!node.has_ready());
    // Reference: §5.3, thesis §10.2.1
}

#[test]
fn leader_commit_waits_for_its_own_durable_log_in_three_nodes() {
    let mut leader = streaming_leader(3, |_| {});
    leader.propose(b"a".to_vec()).unwrap();
    let ready = leader.ready();
    leader.step(msg(2, 1, 1, accepted(2))).unwrap();
    assert_eq!(
        leader.raft().log().committed(),
        LogIndex(1),
        "1 durable copy of 3"
    );
    leader.storage_mut().append(&ready.entries).unwrap();
    leader.advance(ready);
    assert_eq!(leader.raft().log().committed(), LogIndex(2));
    // Reference: thesis §10.2.1
}

#[test]
fn proposal_over_uncommitted_limit_is_refused() {
    // Each proposal is 26 + 24 = 50 bytes.
    let mut leader = streaming_leader(3, |c| c.max_uncommitted_bytes = 100);
    let data = vec![7; 26];
    assert_eq!(leader.propose(data.clone()), Ok((LogIndex(2), Term(1))));
    assert_eq!(leader.propose(data.clone()), Ok((LogIndex(3), Term(1))));
    assert_eq!(
        leader.propose(vec![1]),
        Err(ProposeError::UncommittedLimit {
            uncommitted_bytes: 100,
            max_bytes: 100
        })
    );
    drain(&mut leader);
    leader.step(msg(2, 1, 1, accepted(2))).unwrap();
    assert_eq!(leader.raft().log().committed(), LogIndex(2));
    assert_eq!(
        leader.propose(data.clone()),
        Ok((LogIndex(4), Term(1))),
        "50 bytes freed"
    );
    assert_eq!(
        leader.propose(vec![]),
        Err(ProposeError::UncommittedLimit {
            uncommitted_bytes: 100,
            max_bytes: 100
        })
    );
    drain(&mut leader);
    leader.step(msg(2, 1, 1, accepted(4))).unwrap();
    assert_eq!(leader.propose(data.clone()), Ok((LogIndex(5), Term(1))));
    assert_eq!(leader.propose(data), Ok((LogIndex(6), Term(1))));
    // Reference: etcd-io/raft Config.MaxUncommittedEntriesSize (thesis §10.2.1 flow control)
}

#[test]
fn one_proposal_is_accepted_even_beyond_the_uncommitted_limit() {
    let mut leader = streaming_leader(3, |c| c.max_uncommitted_bytes = 10);
    assert_eq!(leader.propose(vec![0; 26]), Ok((LogIndex(2), Term(1))));
    assert_eq!(
        leader.propose(vec![]),
        Err(ProposeError::UncommittedLimit {
            uncommitted_bytes: 50,
            max_bytes: 10
        })
    );
    // Reference: etcd-io/raft Config.MaxUncommittedEntriesSize
}

#[test]
fn new_leader_starts_with_no_uncommitted_bytes() {
    let mut leader = streaming_leader(3, |c| c.max_uncommitted_bytes = 100);
    leader.propose(vec![0; 76]).unwrap();
    assert!(leader.propose(vec![]).is_err());
    leader.step(msg(2, 1, 2, append(1, 1, vec![], 1))).unwrap();
    drain(&mut leader);
    elect(&mut leader);
    assert_eq!(leader.raft().term(), Term(3));
    let index = leader.raft().log().last_index().next();
    assert_eq!(leader.propose(vec![0; 76]), Ok((index, Term(3))));
    // Reference: etcd-io/raft Config.MaxUncommittedEntriesSize
}

#[test]
fn entry_too_large_is_refused() {
    let mut leader = streaming_leader(3, |c| c.max_message_bytes = 100);
    assert_eq!(
        leader.propose(vec![0; 77]),
        Err(ProposeError::EntryTooLarge {
            size_bytes: 101,
            max_bytes: 100
        })
    );
    assert_eq!(
        leader.raft().log().last_index(),
        LogIndex(1),
        "nothing appended"
    );
    assert_eq!(
        leader.propose(vec![0; 76]),
        Ok((LogIndex(2), Term(1))),
        "exactly at the limit"
    );
    // Reference: etcd-io/raft Config.MaxSizePerMsg
}

#[test]
fn not_leader_error_carries_leader_hint() {
    let mut follower = node(config(2, 3), &[], hard_state(1, 0, 0));
    assert_eq!(
        follower.propose(b"x".to_vec()),
        Err(ProposeError::NotLeader { leader_hint: None })
    );
    follower
        .step(msg(3, 2, 1, append(0, 0, vec![], 0)))
        .unwrap();
    assert_eq!(
        follower.propose(vec![0; 10_000_000]),
        Err(ProposeError::NotLeader {
            leader_hint: Some(NodeId(3))
        }),
        "the leader check comes first"
    );
    follower.campaign();
    assert_eq!(follower.raft().role(), Role::PreCandidate);
    assert_eq!(
        follower.propose(b"x".to_vec()),
        Err(ProposeError::NotLeader { leader_hint: None })
    );
    // Reference: §5.1 (clients are redirected to the leader), thesis §6.2
}

#[test]
fn committed_entries_respect_max_apply_bytes() {
    // Entries of 10 bytes count 34; a limit of 68 hands out two at a time.
    let mut config = config(2, 3);
    config.max_apply_bytes = 68;
    let mut follower = node(config, &[], hard_state(1, 0, 0));
    let entries: Vec<Entry> = (1..=5).map(|i| payload(i, 1, b'x', 10)).collect();
    follower
        .step(msg(1, 2, 1, append(0, 0, entries.clone(), 5)))
        .unwrap();
    let mut batches = Vec::new();
    while follower.has_ready() && batches.len() < 10 {
        let batch = process(&mut follower);
        batches.push(
            batch
                .committed_entries
                .iter()
                .map(|e| e.index.0)
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(batches, vec![vec![1, 2], vec![3, 4], vec![5]]);
    assert_eq!(follower.raft().log().applied(), LogIndex(5));
    // Reference: etcd-io/raft Config.MaxCommittedSizePerReady
}

#[test]
fn an_entry_larger_than_max_apply_bytes_is_still_applied() {
    let mut config = config(2, 3);
    config.max_apply_bytes = 1;
    let mut follower = node(config, &[], hard_state(1, 0, 0));
    follower
        .step(msg(
            1,
            2,
            1,
            append(0, 0, vec![entry(1, 1), entry(2, 1)], 2),
        ))
        .unwrap();
    assert_eq!(process(&mut follower).committed_entries, vec![entry(1, 1)]);
    assert_eq!(process(&mut follower).committed_entries, vec![entry(2, 1)]);
    // Reference: etcd-io/raft Config.MaxCommittedSizePerReady
}

#[test]
fn cluster_replicates_and_applies_in_order() {
    let mut cluster = CoreCluster::new(3);
    let leader = cluster.tick_until_leader();
    for data in [b"a", b"b", b"c"] {
        cluster.propose(leader, data);
    }
    cluster.tick_all();
    for id in 1..=3 {
        assert_eq!(
            cluster.applied_data(id),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()],
            "node {id}"
        );
        assert_eq!(cluster.log_terms(id), vec![1, 1, 1, 1], "node {id}");
    }
    // Reference: §5.3 (State Machine Safety)
}

#[test]
fn lost_appends_are_repaired_after_the_link_heals() {
    let mut cluster = CoreCluster::new(3);
    let leader = cluster.tick_until_leader();
    let lagging = if leader == 3 { 2 } else { 3 };
    cluster.cut(leader, lagging);
    for data in [b"a", b"b", b"c", b"d"] {
        cluster.propose(leader, data);
    }
    assert_eq!(
        cluster.applied_data(leader).len(),
        4,
        "a majority is enough"
    );
    assert!(cluster.applied_data(lagging).is_empty());
    cluster.heal();
    for _tick in 0..3 {
        cluster.tick_all();
    }
    assert_eq!(cluster.applied_data(lagging), cluster.applied_data(leader));
    assert_eq!(cluster.log_terms(lagging), cluster.log_terms(leader));
    // Reference: §5.3
}

#[test]
fn new_leader_repairs_a_divergent_follower() {
    let mut cluster = CoreCluster::new(3);
    let first = cluster.tick_until_leader();
    cluster.propose(first, b"kept");
    // The old leader appends entries that nobody else receives, then loses leadership.
    cluster.isolate(first);
    cluster.node_mut(first).propose(b"lost-1".to_vec()).unwrap();
    cluster.node_mut(first).propose(b"lost-2".to_vec()).unwrap();
    cluster.deliver_all();
    for _tick in 0..40 {
        cluster.tick_all();
    }
    let second = cluster.leader().unwrap().0;
    assert_ne!(second, first);
    cluster.propose(second, b"new");
    cluster.heal();
    for _tick in 0..3 {
        cluster.tick_all();
    }
    for id in 1..=3 {
        assert_eq!(
            cluster.applied_data(id),
            vec![b"kept".to_vec(), b"new".to_vec()],
            "node {id}"
        );
        assert_eq!(
            cluster.log_terms(id),
            cluster.log_terms(second),
            "node {id}"
        );
    }
    // Reference: §5.3, Figure 7
}

#[test]
fn dropped_appends_are_found_by_the_consistency_check_and_resent() {
    let mut cluster = CoreCluster::new(3);
    let leader = cluster.tick_until_leader();
    let target = if leader == 3 { 2 } else { 3 };
    let dropped = Rc::new(Cell::new(0));
    let counter = Rc::clone(&dropped);
    cluster.intercept(move |m| {
        let carries_entries =
            matches!(&m.body, MessageBody::AppendEntries { entries, .. } if !entries.is_empty());
        if m.to == NodeId(target) && carries_entries && counter.get() < 2 {
            counter.set(counter.get() + 1);
            return false;
        }
        true
    });
    cluster.propose(leader, b"x");
    assert_eq!(dropped.get(), 1);
    assert!(cluster.applied_data(target).is_empty());
    for _tick in 0..4 {
        cluster.tick_all();
    }
    assert_eq!(dropped.get(), 2, "the first probe was lost too");
    assert_eq!(cluster.applied_data(target), vec![b"x".to_vec()]);
    let rejections: Vec<_> = cluster
        .delivered
        .iter()
        .filter(|m| m.from == NodeId(target) && m.to == NodeId(leader))
        .filter(|m| {
            matches!(
                m.body,
                MessageBody::AppendEntriesResponse {
                    result: AppendResponse::Rejected { .. },
                    ..
                }
            )
        })
        .cloned()
        .collect();
    let rejections: Vec<_> = rejections
        .into_iter()
        .map(|m| match m.body {
            MessageBody::AppendEntriesResponse { result, .. } => (m.from, m.to, m.term, result),
            _ => unreachable!("filtered to append responses"),
        })
        .collect();
    let expected = match rejected(2, 1, 1) {
        MessageBody::AppendEntriesResponse { result, .. } => result,
        _ => unreachable!("rejected builds an append response"),
    };
    assert_eq!(
        rejections,
        vec![(NodeId(target), NodeId(leader), Term(1), expected)],
        "a heartbeat whose previous entry was lost is refused once"
    );
    // Reference: §5.3 (the consistency check finds a missing entry)
}
