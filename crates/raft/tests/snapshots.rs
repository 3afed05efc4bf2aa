//! Snapshots and log compaction (§7, Figure 13): taking a snapshot, sending it in chunks to a
//! follower whose next entries are compacted, and the follower staging and installing it.

mod harness;

use harness::*;
use skiff_raft::{
    progress::ProgressState, Config, HardState, LogIndex, LogStorage, MemStorage, Message,
    MessageBody, NodeId, RawNode, Role, SnapshotChunk, SnapshotError, SnapshotMeta, Term,
};

/// The leader's snapshot data: ten bytes, sent in chunks of four (`0123`, `4567`, `89`).
const DATA: &[u8] = b"0123456789";

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(index),
        term: Term(term),
        voters: ids(3),
        ..SnapshotMeta::default()
    }
}

fn install(meta: &SnapshotMeta, offset: u64, data: &[u8], done: bool) -> MessageBody {
    MessageBody::InstallSnapshot {
        meta: meta.clone(),
        offset,
        data: data.to_vec(),
        done,
    }
}

fn snapshot_response(index: u64, next_offset: u64, installed: bool) -> MessageBody {
    MessageBody::InstallSnapshotResponse {
        index: LogIndex(index),
        next_offset,
        installed,
    }
}

fn chunk(meta: &SnapshotMeta, offset: u64, data: &[u8]) -> SnapshotChunk {
    SnapshotChunk {
        meta: meta.clone(),
        offset,
        data: data.to_vec(),
    }
}

/// Node `id` of 3 restarted over `terms`, all committed and applied.
fn applied_node(id: u64, terms: &[u64], adjust: impl Fn(&mut Config)) -> RawNode<MemStorage> {
    let last = terms.len() as u64;
    let mut config = config(id, 3);
    config.applied = LogIndex(last);
    adjust(&mut config);
    node(
        config,
        terms,
        hard_state(*terms.last().unwrap_or(&0), 0, last),
    )
}

/// Node 1 of 3 over five applied entries of term 1, snapshotted at 5 with `DATA` keeping two
/// trailing entries (the log holds 4..=5), elected leader of term 2 with its no-op at 6.
/// Chunks are four bytes.
fn snapshotting_leader() -> RawNode<MemStorage> {
    let mut node = applied_node(1, &[1, 1, 1, 1, 1], |c| {
        c.snapshot_trailing_entries = 2;
        c.max_snapshot_chunk_bytes = 4;
    });
    node.take_snapshot(LogIndex(5), DATA.to_vec()).unwrap();
    assert_eq!(node.storage().first_index(), LogIndex(4));
    let sent = elect(&mut node);
    assert_eq!(sent[0], msg(1, 2, 2, append(5, 1, vec![noop(6, 2)], 5)));
    node
}

/// As [`snapshotting_leader`], and follower 2 (an empty log) rejected the no-op's append:
/// the leader sent it the first chunk. Returns the leader.
fn sending_leader() -> RawNode<MemStorage> {
    let mut leader = snapshotting_leader();
    leader.step(msg(2, 1, 2, rejected(5, 0, 0))).unwrap();
    let sent = drain(&mut leader);
    assert_eq!(
        sent,
        vec![msg(1, 2, 2, install(&meta(5, 1), 0, b"0123", false))]
    );
    leader
}

fn state_of(node: &RawNode<MemStorage>, id: u64) -> ProgressState {
    node.raft().progress()[&NodeId(id)].state()
}

fn to(id: u64, messages: Vec<Message>) -> Vec<Message> {
    messages
        .into_iter()
        .filter(|m| m.to == NodeId(id))
        .collect()
}

/// A fresh node 2 that follows leader 1 of term 2.
fn empty_follower() -> RawNode<MemStorage> {
    node(config(2, 3), &[], HardState::default())
}

/// Delivers `pending` and every answer between `a` and `b` until both are quiet; messages
/// to other nodes are dropped. Returns what was delivered, in order.
fn exchange(
    a: &mut RawNode<MemStorage>,
    b: &mut RawNode<MemStorage>,
    pending: Vec<Message>,
) -> Vec<Message> {
    let mut queue: std::collections::VecDeque<Message> = pending.into();
    let mut delivered = Vec::new();
    for _step in 0..1_000 {
        queue.extend(drain(a));
        queue.extend(drain(b));
        let Some(m) = queue.pop_front() else {
            return delivered;
        };
        let node = if m.to == a.raft().id() {
            &mut *a
        } else if m.to == b.raft().id() {
            &mut *b
        } else {
            continue;
        };
        delivered.push(m.clone());
        node.step(m).unwrap();
    }
    panic!("the two nodes never became quiet");
}

// ---- taking a snapshot ----

#[test]
fn snapshot_of_unapplied_state_is_refused() {
    let mut config = config(1, 3);
    config.applied = LogIndex(2);
    let mut node = node(config, &[1, 1, 1], hard_state(1, 0, 3));
    assert_eq!(node.raft().log().applied(), LogIndex(2));
    assert_eq!(
        node.take_snapshot(LogIndex(3), b"s".to_vec()),
        Err(SnapshotError::NotApplied {
            index: LogIndex(3),
            applied: LogIndex(2),
        })
    );
    assert_eq!(
        node.take_snapshot(LogIndex(0), b"s".to_vec()),
        Err(SnapshotError::NotApplied {
            index: LogIndex(0),
            applied: LogIndex(2),
        }),
        "index 0 is no state at all"
    );
    assert_eq!(node.storage().snapshot_meta(), SnapshotMeta::default());
    assert_eq!(node.take_snapshot(LogIndex(2), b"s".to_vec()), Ok(()));
    assert_eq!(node.storage().snapshot_meta(), meta(2, 1));
    // Reference: §7 / Figure 13
}

#[test]
fn snapshot_at_or_below_the_existing_one_is_refused() {
    let mut node = applied_node(1, &[1, 1, 2, 2], |_| {});
    node.take_snapshot(LogIndex(3), b"at3".to_vec()).unwrap();
    for index in [3, 1] {
        assert_eq!(
            node.take_snapshot(LogIndex(index), b"x".to_vec()),
            Err(SnapshotError::AlreadyCovered {
                index: LogIndex(index),
                existing: LogIndex(3),
            }),
            "snapshot at {index}"
        );
    }
    assert_eq!(node.storage().snapshot_meta(), meta(3, 2));
    assert_eq!(node.storage().snapshot_chunk(0, 100), Ok(b"at3".to_vec()));
    assert_eq!(node.take_snapshot(LogIndex(4), b"at4".to_vec()), Ok(()));
    assert_eq!(node.storage().snapshot_meta(), meta(4, 2));
    // Reference: §7 / Figure 13
}

#[test]
fn compaction_keeps_the_trailing_entries() {
    // (trailing entries, snapshot index, first index held afterwards)
    let table = [(0, 8, 9), (3, 8, 6), (2, 3, 2), (3, 3, 1), (20, 8, 1)];
    for (trailing, index, first) in table {
        let mut node = applied_node(1, &[1; 10], |c| c.snapshot_trailing_entries = trailing);
        node.take_snapshot(LogIndex(index), vec![index as u8])
            .unwrap();
        assert_eq!(
            node.storage().first_index(),
            LogIndex(first),
            "trailing {trailing}, snapshot at {index}"
        );
        assert_eq!(node.storage().last_index(), LogIndex(10));
        assert_eq!(node.storage().snapshot_meta(), meta(index, 1));
        assert_eq!(node.storage().snapshot_chunk(0, 9), Ok(vec![index as u8]));
    }
    // Reference: §7 / Figure 13
}

#[test]
fn compaction_never_passes_the_persisted_index() {
    // A follower hands out entries 1..=8 (term 1) with commit 6; before it advances, a new
    // leader rewrites 7..=8. The advance cannot mark the tail durable (its terms changed), so
    // the log is persisted only up to 0 although 1..=6 are applied.
    let mut config = config(2, 3);
    config.snapshot_trailing_entries = 0;
    let mut follower = node(config, &[], HardState::default());
    let old: Vec<_> = (1..=8).map(|i| entry(i, 1)).collect();
    follower
        .step(msg(1, 2, 1, append(0, 0, old.clone(), 6)))
        .unwrap();
    let ready = follower.ready();
    assert_eq!(ready.entries, old);
    persist(follower.storage_mut(), &ready);
    follower
        .step(msg(
            3,
            2,
            2,
            append(6, 1, vec![entry(7, 2), entry(8, 2)], 6),
        ))
        .unwrap();
    follower.advance(ready);
    assert_eq!(follower.raft().log().applied(), LogIndex(6));
    assert_eq!(follower.raft().log().persisted_index(), LogIndex(0));

    assert_eq!(follower.take_snapshot(LogIndex(6), b"s".to_vec()), Ok(()));
    assert_eq!(follower.storage().snapshot_meta(), meta(6, 1));
    assert_eq!(
        follower.storage().first_index(),
        LogIndex(1),
        "nothing is compacted past what is durable"
    );
    let batch = process(&mut follower);
    assert_eq!(
        batch.entries.len(),
        8,
        "the rewritten tail is written again"
    );
    assert_eq!(follower.storage().last_index(), LogIndex(8));
    // Reference: §7 / Figure 13
}

// ---- the leader sends the snapshot ----

#[test]
fn leader_sends_snapshot_to_follower_whose_entries_are_compacted() {
    let leader = sending_leader();
    assert_eq!(
        state_of(&leader, 2),
        ProgressState::Snapshot {
            index: LogIndex(5),
            offset: 0,
        }
    );
    assert_eq!(state_of(&leader, 3), ProgressState::Probe);
    // Reference: §7 / Figure 13
}

#[test]
fn leader_sends_one_unanswered_chunk_at_a_time() {
    let mut leader = sending_leader();
    leader.propose(b"a".to_vec()).unwrap();
    let sent = drain(&mut leader);
    assert_eq!(
        to(2, sent),
        vec![],
        "the chunk is unanswered: nothing more goes out"
    );
    // Reference: §7 / Figure 13
}

#[test]
fn leader_resumes_from_the_acknowledged_offset() {
    let mut leader = sending_leader();
    let m5 = meta(5, 1);
    leader
        .step(msg(2, 1, 2, snapshot_response(5, 4, false)))
        .unwrap();
    assert_eq!(
        state_of(&leader, 2),
        ProgressState::Snapshot {
            index: LogIndex(5),
            offset: 4,
        }
    );
    assert_eq!(
        drain(&mut leader),
        vec![msg(1, 2, 2, install(&m5, 4, b"4567", false))]
    );
    assert!(leader.raft().progress()[&NodeId(2)].recent_active());

    leader
        .step(msg(2, 1, 2, snapshot_response(5, 8, false)))
        .unwrap();
    assert_eq!(
        drain(&mut leader),
        vec![msg(1, 2, 2, install(&m5, 8, b"89", true))],
        "the last chunk is shorter and done"
    );

    // The follower lost a chunk and asks to continue from 4: the leader goes back there.
    leader
        .step(msg(2, 1, 2, snapshot_response(5, 4, false)))
        .unwrap();
    assert_eq!(
        drain(&mut leader),
        vec![msg(1, 2, 2, install(&m5, 4, b"4567", false))]
    );
    // Reference: §7 / Figure 13
}

#[test]
fn snapshot_whose_size_is_a_multiple_of_the_chunk_is_done_with_a_full_chunk() {
    let mut leader = applied_node(1, &[1, 1, 1], |c| {
        c.snapshot_trailing_entries = 0;
        c.max_snapshot_chunk_bytes = 4;
    });
    leader
        .take_snapshot(LogIndex(3), b"abcdefgh".to_vec())
        .unwrap();
    elect(&mut leader);
    leader.step(msg(2, 1, 2, rejected(3, 0, 0))).unwrap();
    let m3 = meta(3, 1);
    assert_eq!(
        drain(&mut leader),
        vec![msg(1, 2, 2, install(&m3, 0, b"abcd", false))]
    );
    leader
        .step(msg(2, 1, 2, snapshot_response(3, 4, false)))
        .unwrap();
    assert_eq!(
        drain(&mut leader),
        vec![msg(1, 2, 2, install(&m3, 4, b"efgh", true))]
    );
    // Reference: §7 / Figure 13
}

#[test]
fn acknowledgement_of_another_snapshot_is_ignored() {
    let mut leader = sending_leader();
    leader
        .step(msg(2, 1, 2, snapshot_response(4, 8, false)))
        .unwrap();
    assert_eq!(drain(&mut leader), vec![]);
    assert_eq!(
        state_of(&leader, 2),
        ProgressState::Snapshot {
            index: LogIndex(5),
            offset: 0,
        }
    );
    // Reference: §7 / Figure 13
}

#[test]
fn heartbeat_resends_the_unanswered_chunk() {
    let mut leader = sending_leader();
    leader.tick();
    assert_eq!(
        to(2, drain(&mut leader)),
        vec![msg(1, 2, 2, install(&meta(5, 1), 0, b"0123", false))]
    );
    leader
        .step(msg(2, 1, 2, snapshot_response(5, 4, false)))
        .unwrap();
    drain(&mut leader);
    leader.tick();
    assert_eq!(
        to(2, drain(&mut leader)),
        vec![msg(1, 2, 2, install(&meta(5, 1), 4, b"4567", false))],
        "the resent chunk starts at the acknowledged offset"
    );
    // Reference: §7 / Figure 13
}

#[test]
fn repeated_answers_about_the_same_chunk_send_the_next_chunk_once() {
    let mut leader = sending_leader();
    let m5 = meta(5, 1);
    // The heartbeat resends the unanswered first chunk: two copies are out, and both are
    // answered.
    leader.tick();
    assert_eq!(
        to(2, drain(&mut leader)),
        vec![msg(1, 2, 2, install(&m5, 0, b"0123", false))]
    );
    leader
        .step(msg(2, 1, 2, snapshot_response(5, 4, false)))
        .unwrap();
    assert_eq!(
        drain(&mut leader),
        vec![msg(1, 2, 2, install(&m5, 4, b"4567", false))]
    );
    leader
        .step(msg(2, 1, 2, snapshot_response(5, 4, false)))
        .unwrap();
    assert_eq!(
        drain(&mut leader),
        vec![],
        "the second answer names the chunk already out: sending it again would run two \
         streams of chunks side by side from here on"
    );
    // A follower that lost what it had staged asks for the start again: that is news.
    leader
        .step(msg(2, 1, 2, snapshot_response(5, 0, false)))
        .unwrap();
    assert_eq!(
        drain(&mut leader),
        vec![msg(1, 2, 2, install(&m5, 0, b"0123", false))]
    );
    // Reference: §7 / Figure 13
}

#[test]
fn a_flood_of_repeated_and_stale_answers_sends_one_chunk() {
    // A peer (or a network that duplicates) answers the first chunk a thousand times, with
    // stale offsets of another snapshot and past the end mixed in: the leader sends the next
    // chunk once, and nothing for the rest.
    let mut leader = sending_leader();
    let m5 = meta(5, 1);
    let mut sent = Vec::new();
    for i in 0..1_000u64 {
        let answer = match i % 3 {
            0 => snapshot_response(5, 4, false),
            1 => snapshot_response(4, 4, false),
            _ => snapshot_response(5, 1 << 40, false),
        };
        leader.step(msg(2, 1, 2, answer)).unwrap();
        sent.extend(drain(&mut leader));
    }
    assert_eq!(sent, vec![msg(1, 2, 2, install(&m5, 4, b"4567", false))]);
    // Reference: §7 / Figure 13
}

#[test]
fn leader_with_a_newer_snapshot_restarts_the_transfer() {
    let mut leader = sending_leader();
    leader
        .step(msg(2, 1, 2, snapshot_response(5, 4, false)))
        .unwrap();
    drain(&mut leader);
    // Node 3 acknowledges the no-op: 6 commits and is applied, and a new snapshot covers it.
    leader.step(msg(3, 1, 2, accepted(6))).unwrap();
    drain(&mut leader);
    assert_eq!(leader.raft().log().applied(), LogIndex(6));
    leader
        .take_snapshot(LogIndex(6), b"abcdef".to_vec())
        .unwrap();

    leader.tick();
    assert_eq!(
        to(2, drain(&mut leader)),
        vec![msg(1, 2, 2, install(&meta(6, 2), 0, b"abcd", false))]
    );
    assert_eq!(
        state_of(&leader, 2),
        ProgressState::Snapshot {
            index: LogIndex(6),
            offset: 0,
        }
    );
    // The answer about the old snapshot changes nothing.
    leader
        .step(msg(2, 1, 2, snapshot_response(5, 8, false)))
        .unwrap();
    assert_eq!(drain(&mut leader), vec![]);
    // Reference: §7 / Figure 13
}

#[test]
fn leader_probes_after_the_snapshot_is_installed() {
    let mut leader = sending_leader();
    leader
        .step(msg(2, 1, 2, snapshot_response(5, 10, true)))
        .unwrap();
    assert_eq!(
        drain(&mut leader),
        vec![msg(1, 2, 2, append(5, 1, vec![noop(6, 2)], 5))]
    );
    let progress = &leader.raft().progress()[&NodeId(2)];
    assert_eq!(progress.state(), ProgressState::Probe);
    assert_eq!(progress.match_index(), LogIndex(5));
    assert!(progress.recent_active());
    leader.step(msg(2, 1, 2, accepted(6))).unwrap();
    assert_eq!(leader.raft().log().committed(), LogIndex(6));
    assert_eq!(state_of(&leader, 2), ProgressState::Replicate);
    // Reference: §7 / Figure 13
}

#[test]
fn installed_answer_from_a_probing_follower_moves_its_match() {
    // Follower 3 is probing (never sent the snapshot) and says it holds everything to 5.
    let mut leader = snapshotting_leader();
    leader
        .step(msg(3, 1, 2, snapshot_response(5, 0, true)))
        .unwrap();
    let progress = &leader.raft().progress()[&NodeId(3)];
    assert_eq!(progress.match_index(), LogIndex(5));
    assert_eq!(progress.next_index(), LogIndex(6));
    assert_eq!(
        drain(&mut leader),
        vec![msg(1, 3, 2, append(5, 1, vec![noop(6, 2)], 5))]
    );
    // Reference: §7 / Figure 13
}

#[test]
fn stale_installed_answer_leaves_a_streaming_follower_alone() {
    let mut leader = snapshotting_leader();
    leader.step(msg(3, 1, 2, accepted(6))).unwrap();
    drain(&mut leader);
    assert_eq!(state_of(&leader, 3), ProgressState::Replicate);
    for index in [5, 6] {
        leader
            .step(msg(3, 1, 2, snapshot_response(index, 0, true)))
            .unwrap();
        assert_eq!(drain(&mut leader), vec![]);
        assert_eq!(
            state_of(&leader, 3),
            ProgressState::Replicate,
            "answer at {index}"
        );
        assert_eq!(
            leader.raft().progress()[&NodeId(3)].match_index(),
            LogIndex(6)
        );
    }
    // Reference: §7 / Figure 13
}

#[test]
fn installed_answer_for_a_snapshot_below_match_still_ends_the_snapshot_state() {
    // A late acceptance moves match past the snapshot while the leader is sending it; the
    // follower's installed answer then returns it to probing.
    let mut leader = sending_leader();
    leader.step(msg(2, 1, 2, accepted(6))).unwrap();
    drain(&mut leader);
    assert!(matches!(
        state_of(&leader, 2),
        ProgressState::Snapshot { .. }
    ));
    leader
        .step(msg(2, 1, 2, snapshot_response(5, 10, true)))
        .unwrap();
    assert_eq!(state_of(&leader, 2), ProgressState::Probe);
    assert_eq!(
        leader.raft().progress()[&NodeId(2)].match_index(),
        LogIndex(6)
    );
    assert_eq!(
        leader.raft().progress()[&NodeId(2)].next_index(),
        LogIndex(7)
    );
    // Reference: §7 / Figure 13
}

#[test]
fn follower_ignores_snapshot_answers() {
    let mut follower = applied_node(2, &[1], |_| {});
    follower
        .step(msg(1, 2, 1, append(1, 1, vec![], 1)))
        .unwrap();
    drain(&mut follower);
    follower
        .step(msg(3, 2, 1, snapshot_response(1, 0, true)))
        .unwrap();
    assert_eq!(drain(&mut follower), vec![]);
    assert_eq!(follower.raft().role(), Role::Follower);
    // Reference: §7 / Figure 13
}

// ---- the follower receives the snapshot ----

#[test]
fn follower_stages_chunks_and_installs_the_snapshot() {
    let mut follower = empty_follower();
    let m5 = meta(5, 1);
    follower
        .step(msg(1, 2, 2, install(&m5, 0, b"0123", false)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(batch.snapshot_chunks, vec![chunk(&m5, 0, b"0123")]);
    assert_eq!(batch.snapshot, None);
    assert_eq!(batch.messages, vec![]);
    assert_eq!(
        batch.persisted_messages,
        vec![msg(2, 1, 2, snapshot_response(5, 4, false))],
        "the acknowledgement promises the chunk is durable"
    );
    assert_eq!(follower.raft().leader(), Some(NodeId(1)));
    assert_eq!(follower.raft().log().committed(), LogIndex(0));

    follower
        .step(msg(1, 2, 2, install(&m5, 4, b"4567", false)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(batch.snapshot_chunks, vec![chunk(&m5, 4, b"4567")]);
    assert_eq!(
        batch.persisted_messages,
        vec![msg(2, 1, 2, snapshot_response(5, 8, false))]
    );

    follower
        .step(msg(1, 2, 2, install(&m5, 8, b"89", true)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(batch.snapshot_chunks, vec![chunk(&m5, 8, b"89")]);
    assert_eq!(batch.snapshot, Some(m5.clone()));
    assert_eq!(batch.hard_state, Some(hard_state(2, 0, 5)));
    assert_eq!(batch.committed_entries, vec![]);
    assert_eq!(
        batch.persisted_messages,
        vec![msg(2, 1, 2, snapshot_response(5, 10, true))]
    );
    let log = follower.raft().log();
    assert_eq!(
        (log.committed(), log.applied(), log.last_index()),
        (LogIndex(5), LogIndex(5), LogIndex(5))
    );
    assert_eq!(log.term(LogIndex(5)), Some(Term(1)));
    assert_eq!(follower.storage().snapshot_meta(), m5);
    assert_eq!(follower.storage().snapshot_chunk(0, 100), Ok(DATA.to_vec()));

    follower
        .step(msg(1, 2, 2, append(5, 1, vec![noop(6, 2)], 6)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(batch.persisted_messages, vec![msg(2, 1, 2, accepted(6))]);
    assert_eq!(batch.committed_entries, vec![noop(6, 2)]);
    // Reference: §7 / Figure 13
}

#[test]
fn follower_asks_to_continue_from_its_offset_after_a_lost_chunk() {
    let mut follower = empty_follower();
    let m5 = meta(5, 1);
    follower
        .step(msg(1, 2, 2, install(&m5, 0, b"0123", false)))
        .unwrap();
    process(&mut follower);
    for offset in [8, 0] {
        follower
            .step(msg(1, 2, 2, install(&m5, offset, b"xxxx", false)))
            .unwrap();
        let batch = process(&mut follower);
        assert_eq!(batch.snapshot_chunks, vec![], "chunk at {offset}");
        assert_eq!(
            batch.messages,
            vec![msg(2, 1, 2, snapshot_response(5, 4, false))],
            "a request to resend promises nothing: it is not held back"
        );
        assert_eq!(batch.persisted_messages, vec![]);
    }
    // Reference: §7 / Figure 13
}

#[test]
fn first_chunk_must_start_at_zero() {
    let mut follower = empty_follower();
    follower
        .step(msg(1, 2, 2, install(&meta(5, 1), 4, b"4567", false)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(batch.snapshot_chunks, vec![]);
    assert_eq!(
        batch.messages,
        vec![msg(2, 1, 2, snapshot_response(5, 0, false))]
    );
    // Reference: §7 / Figure 13
}

#[test]
fn newer_snapshot_restarts_the_follower_at_offset_zero() {
    let mut follower = empty_follower();
    follower
        .step(msg(1, 2, 2, install(&meta(5, 1), 0, b"0123", false)))
        .unwrap();
    process(&mut follower);
    let m7 = meta(7, 2);
    follower
        .step(msg(1, 2, 2, install(&m7, 0, b"abcd", false)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(batch.snapshot_chunks, vec![chunk(&m7, 0, b"abcd")]);
    assert_eq!(
        batch.persisted_messages,
        vec![msg(2, 1, 2, snapshot_response(7, 4, false))]
    );
    follower
        .step(msg(1, 2, 2, install(&m7, 4, b"ef", true)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(batch.snapshot, Some(m7.clone()));
    assert_eq!(
        follower.storage().snapshot_chunk(0, 100),
        Ok(b"abcdef".to_vec())
    );
    // Reference: §7 / Figure 13
}

#[test]
fn stale_snapshot_is_not_installed() {
    // (follower's commit index, snapshot index): a snapshot no newer than the commit index
    // covers nothing the follower lacks.
    for (commit, index) in [(5, 5), (6, 5)] {
        let mut follower = node(config(2, 3), &[1; 6], hard_state(1, 0, commit));
        drain(&mut follower);
        follower
            .step(msg(1, 2, 2, install(&meta(index, 1), 0, b"0123", false)))
            .unwrap();
        let batch = process(&mut follower);
        assert_eq!(batch.snapshot_chunks, vec![], "commit {commit}");
        assert_eq!(batch.snapshot, None);
        assert_eq!(
            batch.messages,
            vec![msg(2, 1, 2, snapshot_response(index, 0, true))],
            "answered installed at once"
        );
        assert_eq!(batch.persisted_messages, vec![]);
        assert_eq!(follower.raft().log().committed(), LogIndex(commit));
        assert_eq!(follower.raft().log().last_index(), LogIndex(6));
    }
    // Reference: §7 / Figure 13
}

#[test]
fn snapshot_matching_the_follower_log_keeps_the_entries_after_it() {
    let mut follower = node(config(2, 3), &[1; 7], hard_state(1, 0, 3));
    drain(&mut follower);
    let m5 = meta(5, 1);
    follower
        .step(msg(1, 2, 2, install(&m5, 0, b"s", true)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(batch.snapshot, Some(m5));
    let log = follower.raft().log();
    assert_eq!(
        (log.committed(), log.applied(), log.last_index()),
        (LogIndex(5), LogIndex(5), LogIndex(7))
    );
    assert_eq!(follower.storage().first_index(), LogIndex(6));
    // Reference: §7 / Figure 13
}

#[test]
fn second_snapshot_in_the_same_batch_waits() {
    let mut follower = empty_follower();
    let m5 = meta(5, 1);
    follower
        .step(msg(1, 2, 2, install(&m5, 0, b"s5", true)))
        .unwrap();
    let m7 = meta(7, 2);
    follower
        .step(msg(1, 2, 2, install(&m7, 0, b"s7", true)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(batch.snapshot_chunks, vec![chunk(&m5, 0, b"s5")]);
    assert_eq!(batch.snapshot, Some(m5));
    assert_eq!(batch.messages, vec![], "the second one is not answered");
    assert_eq!(
        batch.persisted_messages,
        vec![msg(2, 1, 2, snapshot_response(5, 2, true))]
    );
    // The leader resends it with its next heartbeat.
    follower
        .step(msg(1, 2, 2, install(&m7, 0, b"s7", true)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(batch.snapshot, Some(m7.clone()));
    assert_eq!(follower.storage().snapshot_meta(), m7);
    assert_eq!(follower.raft().log().committed(), LogIndex(7));
    // Reference: §7 / Figure 13
}

#[test]
fn snapshot_chunk_resets_the_election_timer() {
    let mut follower = empty_follower();
    for _tick in 0..5 {
        follower.tick();
    }
    assert_eq!(follower.raft().election_elapsed_ticks(), 5);
    follower
        .step(msg(1, 2, 2, install(&meta(5, 1), 0, b"0123", false)))
        .unwrap();
    assert_eq!(follower.raft().election_elapsed_ticks(), 0);
    // Reference: §7 / Figure 13
}

#[test]
fn candidate_receiving_a_chunk_of_its_term_follows_the_sender() {
    let mut config = config(2, 3);
    config.pre_vote = false;
    let mut candidate = node(config, &[], HardState::default());
    candidate.campaign();
    drain(&mut candidate);
    assert_eq!(candidate.raft().role(), Role::Candidate);
    let m5 = meta(5, 1);
    candidate
        .step(msg(1, 2, 1, install(&m5, 0, b"0123", false)))
        .unwrap();
    assert_eq!(candidate.raft().role(), Role::Follower);
    assert_eq!(candidate.raft().leader(), Some(NodeId(1)));
    assert_eq!(candidate.raft().term(), Term(1));
    let batch = process(&mut candidate);
    assert_eq!(batch.snapshot_chunks, vec![chunk(&m5, 0, b"0123")]);
    // Reference: §7 / Figure 13
}

#[test]
fn leader_ignores_a_chunk_of_its_own_term() {
    let mut leader = snapshotting_leader();
    leader
        .step(msg(3, 1, 2, install(&meta(9, 2), 0, b"0123", false)))
        .unwrap();
    let batch = process(&mut leader);
    assert_eq!(batch.snapshot_chunks, vec![]);
    assert_eq!(batch.messages, vec![]);
    assert_eq!(batch.persisted_messages, vec![]);
    assert_eq!(leader.raft().role(), Role::Leader);
    // Reference: §7 / Figure 13
}

#[test]
fn lagging_follower_catches_up_through_the_snapshot_and_then_the_log() {
    let mut leader = snapshotting_leader();
    let mut follower = empty_follower();
    let first = msg(1, 2, 2, append(5, 1, vec![noop(6, 2)], 5));
    let delivered = exchange(&mut leader, &mut follower, vec![first.clone()]);
    let m5 = meta(5, 1);
    assert_eq!(
        delivered,
        vec![
            first.clone(),
            msg(2, 1, 2, rejected(5, 0, 0)),
            msg(1, 2, 2, install(&m5, 0, b"0123", false)),
            msg(2, 1, 2, snapshot_response(5, 4, false)),
            msg(1, 2, 2, install(&m5, 4, b"4567", false)),
            msg(2, 1, 2, snapshot_response(5, 8, false)),
            msg(1, 2, 2, install(&m5, 8, b"89", true)),
            msg(2, 1, 2, snapshot_response(5, 10, true)),
            first,
            msg(2, 1, 2, accepted(6)),
        ]
    );
    assert_eq!(leader.raft().log().committed(), LogIndex(6));
    assert_eq!(follower.storage().snapshot_meta(), m5);
    assert_eq!(follower.storage().snapshot_chunk(0, 100), Ok(DATA.to_vec()));
    assert_eq!(follower.storage().all_entries(), &[noop(6, 2)]);
    // Reference: §7 / Figure 13
}

#[test]
fn lost_chunk_is_recovered_by_the_next_heartbeat() {
    let mut leader = snapshotting_leader();
    let mut follower = empty_follower();
    let first = msg(1, 2, 2, append(5, 1, vec![noop(6, 2)], 5));
    // The rejection reaches the leader; the first chunk it answers with is lost.
    follower.step(first).unwrap();
    for m in drain(&mut follower) {
        leader.step(m).unwrap();
    }
    let lost = to(2, drain(&mut leader));
    assert_eq!(
        lost,
        vec![msg(1, 2, 2, install(&meta(5, 1), 0, b"0123", false))]
    );
    leader.tick();
    let resent = to(2, drain(&mut leader));
    assert_eq!(resent, lost);
    exchange(&mut leader, &mut follower, resent);
    assert_eq!(follower.storage().snapshot_meta(), meta(5, 1));
    assert_eq!(
        leader.raft().progress()[&NodeId(2)].match_index(),
        LogIndex(6)
    );
    // Reference: §7 / Figure 13
}

#[test]
fn stale_term_snapshot_chunk_is_answered_with_the_current_term() {
    // §5.1: a chunk from a deposed leader is refused at the current term, so its sender learns
    // it is stale; nothing is staged.
    let mut follower = node(config(2, 3), &[], hard_state(3, 0, 0));
    follower
        .step(msg(1, 2, 2, install(&meta(5, 2), 0, DATA, true)))
        .unwrap();
    let batch = process(&mut follower);
    assert_eq!(
        batch.messages,
        vec![msg(2, 1, 3, snapshot_response(5, 0, false))]
    );
    assert!(batch.snapshot_chunks.is_empty() && batch.snapshot.is_none());
    // Reference: §5.1, Figure 13
}
