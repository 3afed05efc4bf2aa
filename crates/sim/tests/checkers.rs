//! Each checker, fed a history that breaks its property, reports it — and accepts a good one.

use skiff_raft::{Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, Term};
use skiff_sim::checkers::{Checkers, LogView};

/// A log given as (term, payload byte) per index from 1.
struct FakeLog(Vec<(u64, u8)>);

impl LogView for FakeLog {
    fn last_index(&self) -> LogIndex {
        LogIndex(self.0.len() as u64)
    }
    fn entry(&self, index: LogIndex) -> Option<Entry> {
        let &(term, byte) = self.0.get((index.0 as usize).checked_sub(1)?)?;
        Some(entry(index.0, term, byte))
    }
}

fn entry(index: u64, term: u64, byte: u8) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: EntryKind::Normal,
        data: vec![byte].into(),
    }
}

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);

#[test]
fn two_leaders_in_one_term_break_election_safety() {
    let mut checkers = Checkers::default();
    let log = FakeLog(vec![]);
    checkers
        .became_leader(N1, Term(2), &log)
        .expect("first leader of term 2");
    let violation = checkers
        .became_leader(N2, Term(2), &log)
        .expect_err("second leader of term 2");
    assert_eq!(violation.property, "Election Safety");
}

/// A vote grant: `voter`'s RequestVoteResponse in `term` to `candidate`.
fn grant(voter: NodeId, term: u64, candidate: NodeId) -> Message {
    Message {
        from: voter,
        to: candidate,
        term: Term(term),
        body: MessageBody::RequestVoteResponse { reject: false },
    }
}

#[test]
fn two_vote_grants_in_one_term_break_one_vote_per_term() {
    // A voter whose vote was lost (a restart on a wiped log, say) grants a second candidate
    // in the same term: the way to two leaders in one term, caught at the grant.
    let mut checkers = Checkers::default();
    let n3 = NodeId(3);
    checkers
        .sent(&grant(N1, 4, N2))
        .expect("first vote in term 4");
    checkers
        .sent(&grant(N1, 4, N2))
        .expect("the same vote sent again");
    checkers
        .sent(&grant(N1, 5, n3))
        .expect("a vote in the next term");
    let refusal = Message {
        body: MessageBody::RequestVoteResponse { reject: true },
        ..grant(N1, 4, n3)
    };
    checkers.sent(&refusal).expect("a refusal is no vote");
    let pre_vote = Message {
        body: MessageBody::PreVoteResponse { reject: false },
        ..grant(N1, 4, n3)
    };
    checkers.sent(&pre_vote).expect("a pre-vote is no vote");
    let violation = checkers
        .sent(&grant(N1, 4, n3))
        .expect_err("a second candidate in term 4");
    assert_eq!(violation.property, "One Vote Per Term");
}

#[test]
fn same_index_and_term_with_different_content_breaks_log_matching() {
    let mut checkers = Checkers::default();
    checkers
        .persisted_entries(N1, &[entry(1, 1, 7)], &FakeLog(vec![(1, 7)]))
        .expect("first write");
    checkers
        .persisted_entries(N2, &[entry(1, 1, 7)], &FakeLog(vec![(1, 7)]))
        .expect("same entry");
    let violation = checkers
        .persisted_entries(N2, &[entry(1, 1, 8)], &FakeLog(vec![(1, 8)]))
        .expect_err("different content");
    assert_eq!(violation.property, "Log Matching");
}

#[test]
fn same_index_and_term_after_different_predecessors_breaks_log_matching() {
    let mut checkers = Checkers::default();
    checkers
        .persisted_entries(N1, &[entry(2, 3, 1)], &FakeLog(vec![(1, 0), (3, 1)]))
        .expect("first write");
    let violation = checkers
        .persisted_entries(N2, &[entry(2, 3, 1)], &FakeLog(vec![(2, 0), (3, 1)]))
        .expect_err("same entry after a different predecessor");
    assert_eq!(violation.property, "Log Matching");
}

#[test]
fn leader_without_a_committed_entry_breaks_leader_completeness() {
    let mut checkers = Checkers::default();
    checkers
        .applied(N1, Term(1), &entry(1, 1, 5), 0)
        .expect("apply");
    let violation = checkers
        .became_leader(N2, Term(2), &FakeLog(vec![(1, 1)]))
        .expect_err("lacks the committed entry");
    assert_eq!(violation.property, "Leader Completeness");
    let mut checkers = Checkers::default();
    checkers
        .applied(N1, Term(1), &entry(1, 1, 5), 0)
        .expect("apply");
    checkers
        .became_leader(N2, Term(2), &FakeLog(vec![(1, 5)]))
        .expect("holds the committed entry");
}

#[test]
fn leader_that_rewrites_its_log_breaks_leader_append_only() {
    let mut checkers = Checkers::default();
    checkers
        .became_leader(N1, Term(3), &FakeLog(vec![(1, 1), (3, 2)]))
        .expect("leader");
    checkers
        .log_settled(N1, Term(3), true, &FakeLog(vec![(1, 1), (3, 2), (3, 3)]))
        .expect("appending is fine");
    let violation = checkers
        .log_settled(N1, Term(3), true, &FakeLog(vec![(1, 1), (3, 2)]))
        .expect_err("truncated");
    assert_eq!(violation.property, "Leader Append-Only");
    // Once it no longer leads, its log may change.
    let mut checkers = Checkers::default();
    checkers
        .became_leader(N1, Term(3), &FakeLog(vec![(1, 1), (3, 2)]))
        .expect("leader");
    checkers
        .log_settled(N1, Term(4), false, &FakeLog(vec![(1, 1)]))
        .expect("a follower's log is repaired");
}

#[test]
fn different_entries_applied_at_one_index_break_state_machine_safety() {
    let mut checkers = Checkers::default();
    checkers
        .applied(N1, Term(1), &entry(1, 1, 5), 0)
        .expect("apply");
    let violation = checkers
        .applied(N2, Term(1), &entry(1, 2, 6), 0)
        .expect_err("different entry at index 1");
    assert_eq!(violation.property, "State Machine Safety");
    let mut checkers = Checkers::default();
    let violation = checkers
        .applied(N1, Term(1), &entry(2, 1, 5), 0)
        .expect_err("a gap in applying");
    assert_eq!(violation.property, "State Machine Safety");
}

#[test]
fn commit_moving_back_or_applied_entries_lost_are_violations() {
    let mut checkers = Checkers::default();
    checkers
        .persisted_commit(N1, LogIndex(5))
        .expect("commit 5");
    let violation = checkers
        .persisted_commit(N1, LogIndex(4))
        .expect_err("commit moved back");
    assert_eq!(violation.property, "Commit Monotonic");
    checkers.crashed(N1);
    let violation = checkers
        .restarted(N1, LogIndex(3), &FakeLog(vec![]))
        .expect_err("restarted below its synced commit");
    assert_eq!(violation.property, "Commit Monotonic");

    // The commit index is not synced on its own: a restart may know less of it than was
    // applied, as long as the applied entries are still on disk.
    let mut checkers = Checkers::default();
    checkers
        .applied(N1, Term(1), &entry(1, 1, 5), 0)
        .expect("apply 1");
    checkers
        .applied(N1, Term(1), &entry(2, 1, 6), 0)
        .expect("apply 2");
    checkers.crashed(N1);
    checkers
        .restarted(N1, LogIndex(1), &FakeLog(vec![(1, 5), (1, 6)]))
        .expect("commit behind applied, entries kept");
    let mut checkers = Checkers::default();
    checkers
        .applied(N1, Term(1), &entry(1, 1, 5), 0)
        .expect("apply 1");
    checkers
        .applied(N1, Term(1), &entry(2, 1, 6), 0)
        .expect("apply 2");
    checkers.crashed(N1);
    let violation = checkers
        .restarted(N1, LogIndex(1), &FakeLog(vec![(1, 5)]))
        .expect_err("an applied entry is gone");
    assert_eq!(violation.property, "Applied Entries Survive Crashes");

    let mut checkers = Checkers::default();
    checkers
        .applied(N1, Term(1), &entry(1, 1, 5), 0)
        .expect("apply 1");
    checkers.crashed(N1);
    let violation = checkers
        .restarted(N1, LogIndex(1), &FakeLog(vec![(1, 9)]))
        .expect_err("disk lost the entry");
    assert_eq!(violation.property, "Applied Entries Survive Crashes");

    let mut checkers = Checkers::default();
    checkers
        .applied(N1, Term(1), &entry(1, 1, 5), 0)
        .expect("apply 1");
    checkers.crashed(N1);
    checkers
        .restarted(N1, LogIndex(1), &FakeLog(vec![(1, 5)]))
        .expect("everything survived");
}
