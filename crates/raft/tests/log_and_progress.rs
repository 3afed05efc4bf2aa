//! The leader's and follower's bookkeeping, read through the public types: the log's reads
//! across the durable/unstable boundary, its rewrites, and a follower's progress record.

mod harness;

use harness::*;
use skiff_raft::log::RaftLog;
use skiff_raft::progress::{Progress, ProgressState};
use skiff_raft::{Entry, LogIndex, LogStorage, MemStorage, Term};

fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.index.0).collect()
}

/// Durable entries 1..=3 (34, 34 and 124 bytes) and unstable entries 4 and 5 (24 bytes each).
fn split_log() -> RaftLog<MemStorage> {
    let mut storage = MemStorage::new();
    storage
        .append(&[payload(1, 10), payload(2, 10), payload(3, 100)])
        .unwrap();
    let mut log = RaftLog::new(storage, LogIndex(0), LogIndex(0));
    log.append(&[entry(4, 1), entry(5, 1)]);
    log
}

fn payload(index: u64, len: usize) -> Entry {
    data_entry(index, 1, &vec![0; len])
}

#[test]
fn log_reads_span_durable_and_unstable_entries_without_gaps() {
    // (low, high, max_bytes, indexes read)
    let table = [
        (1, 6, u64::MAX, vec![1, 2, 3, 4, 5]),
        (1, 6, 100, vec![1, 2]), // the budget ends in storage: never skip ahead to the tail
        (1, 3, u64::MAX, vec![1, 2]),
        (2, 3, u64::MAX, vec![2]),
        (2, 5, 158, vec![2, 3]),
        (2, 5, 182, vec![2, 3, 4]),
        (3, 5, 1, vec![3]), // at least one entry
        (4, 6, 1, vec![4]),
        (4, 9, u64::MAX, vec![4, 5]), // high is clamped to the end of the log
        (6, 9, u64::MAX, vec![]),
        (3, 3, u64::MAX, vec![]),
    ];
    let log = split_log();
    assert_eq!(log.persisted_index(), LogIndex(3));
    for (low, high, max_bytes, expected) in table {
        let read = log
            .entries(LogIndex(low), LogIndex(high), max_bytes)
            .unwrap();
        assert_eq!(
            indexes(&read),
            expected,
            "[{low}, {high}) within {max_bytes}"
        );
    }
    // Reference: §5.3 (AppendEntries carries consecutive entries)
}

#[test]
fn log_reports_its_marks() {
    let log = RaftLog::new(storage_with_terms(&[1, 2]), LogIndex(2), LogIndex(1));
    assert_eq!(log.first_index(), LogIndex(1));
    assert_eq!(log.last_index(), LogIndex(2));
    assert_eq!(log.last_term(), Term(2));
    assert_eq!(log.persisted_index(), LogIndex(2));
    assert_eq!(log.committed(), LogIndex(2));
    assert_eq!(log.applied(), LogIndex(1));
    assert_eq!(log.storage().last_index(), LogIndex(2));
    assert_eq!(log.term(LogIndex(0)), Some(Term(0)));
    assert_eq!(log.term(LogIndex(3)), None);
    // Reference: Figure 2 (commitIndex, lastApplied)
}

#[test]
fn rewriting_inside_the_unstable_tail_keeps_its_prefix() {
    let mut log = RaftLog::new(MemStorage::new(), LogIndex(0), LogIndex(0));
    log.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]);
    log.append(&[entry(2, 2)]);
    assert_eq!(log.unstable_entries(), &[entry(1, 1), entry(2, 2)]);
    assert_eq!(log.last_index(), LogIndex(2));

    let mut log = RaftLog::new(storage_with_terms(&[1, 1]), LogIndex(0), LogIndex(0));
    log.append(&[entry(3, 1), entry(4, 1), entry(5, 1), entry(6, 1)]);
    log.append(&[entry(5, 2)]);
    assert_eq!(
        log.unstable_entries(),
        &[entry(3, 1), entry(4, 1), entry(5, 2)]
    );
    // Reference: §5.3 (a conflicting entry and all that follow it are replaced)
}

#[test]
fn answered_heartbeat_keeps_a_partial_pipeline() {
    let mut progress = Progress::new(LogIndex(1), 2);
    progress.maybe_update(LogIndex(0));
    progress.become_replicate();
    progress.sent_append(LogIndex(3), 3, 3);
    assert_eq!(progress.state(), ProgressState::Replicate);
    progress.heartbeat_sent();
    progress.heartbeat_answered();
    assert_eq!(
        progress.inflight_count(),
        1,
        "only a full pipeline gives up its oldest append"
    );
    progress.sent_append(LogIndex(5), 2, 2);
    assert!(progress.is_paused());
    progress.heartbeat_sent();
    progress.heartbeat_answered();
    assert_eq!(progress.inflight_count(), 1);
    assert!(!progress.is_paused());
    // Reference: etcd-io/raft tracker/progress.go
}

#[test]
fn follower_activity_is_recorded_until_the_round_ends() {
    let mut progress = Progress::new(LogIndex(1), 1);
    assert!(!progress.recent_active());
    progress.mark_active();
    assert!(progress.recent_active());
    assert!(progress.take_recent_active());
    assert!(!progress.recent_active());

    // Through the leader: an answer marks the follower active.
    let mut leader = node(config(1, 3), &[], Default::default());
    elect(&mut leader);
    leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    let progress = leader.raft().progress();
    assert!(progress[&skiff_raft::NodeId(2)].recent_active());
    assert!(!progress[&skiff_raft::NodeId(3)].recent_active());
    // Reference: thesis §6.2
}
