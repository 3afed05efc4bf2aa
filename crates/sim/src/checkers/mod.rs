//! Independent checkers of Raft's safety properties (Figure 3), one property per file.
//!
//! The checkers see only facts the simulator observes from outside the core — roles taken,
//! messages sent, entries written to disk, entries applied, hard states persisted, crashes
//! and restarts —
//! and keep their own record of history to judge them. None of them reads the core's
//! internal bookkeeping.

mod commit_monotonic;
mod election_safety;
mod leader_append_only;
mod leader_completeness;
mod log_matching;
mod one_vote_per_term;
mod state_machine_safety;

pub use commit_monotonic::CommitMonotonic;
pub use election_safety::ElectionSafety;
pub use leader_append_only::LeaderAppendOnly;
pub use leader_completeness::LeaderCompleteness;
pub use log_matching::LogMatching;
pub use one_vote_per_term::OneVotePerTerm;
pub use state_machine_safety::StateMachineSafety;

use skiff_raft::{Entry, LogIndex, Message, MessageBody, NodeId, Term};

/// A broken property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The property's name, as in the paper.
    pub property: &'static str,
    /// What was seen.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.property, self.detail)
    }
}

/// An entry known to be committed (some node applied it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommittedEntry {
    /// The entry's term.
    pub term: Term,
    /// Its content digest.
    pub digest: u64,
    /// The entry was committed in this term or earlier: a node applies an entry only once a
    /// leader of its current term or an earlier one committed it, so the lowest term of any
    /// node that applied it bounds the term it was committed in.
    pub committed_by_term: Term,
    /// The first node seen applying it.
    pub first_applier: NodeId,
}

/// A read-only view of one node's log at the moment of an observation.
pub trait LogView {
    /// The first index the log holds (entries before it are covered by a snapshot).
    fn first_index(&self) -> LogIndex {
        LogIndex(1)
    }
    /// The last index in the log.
    fn last_index(&self) -> LogIndex;
    /// The entry at `index`, if the log holds it.
    fn entry(&self, index: LogIndex) -> Option<Entry>;
}

/// A stable 64-bit digest of an entry's content.
pub fn entry_digest(entry: &Entry) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let kind = [entry.kind as u8];
    for bytes in [
        &entry.term.0.to_le_bytes()[..],
        &entry.index.0.to_le_bytes()[..],
        &kind[..],
        &entry.data[..],
    ] {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// Every checker, fed the same facts.
#[derive(Debug, Default)]
pub struct Checkers {
    election_safety: ElectionSafety,
    leader_append_only: LeaderAppendOnly,
    log_matching: LogMatching,
    leader_completeness: LeaderCompleteness,
    state_machine_safety: StateMachineSafety,
    commit_monotonic: CommitMonotonic,
    one_vote_per_term: OneVotePerTerm,
}

impl Checkers {
    /// `node` became leader of `term`, with `log` as its log at that moment.
    pub fn became_leader(
        &mut self,
        node: NodeId,
        term: Term,
        log: &dyn LogView,
    ) -> Result<(), Violation> {
        self.election_safety.became_leader(node, term)?;
        self.leader_completeness.became_leader(
            node,
            term,
            log,
            self.state_machine_safety.committed(),
        )?;
        self.leader_append_only.became_leader(node, term, log);
        Ok(())
    }

    /// A node sent `message` (whether or not the network delivers it).
    pub fn sent(&mut self, message: &Message) -> Result<(), Violation> {
        match message.body {
            // §5.2: a granted RequestVote (not a PreVote) is a vote in the sender's term.
            MessageBody::RequestVoteResponse { reject: false } => {
                self.one_vote_per_term
                    .granted(message.from, message.term, message.to)
            }
            _ => Ok(()),
        }
    }

    /// `node` stopped being leader (stepped down, or crashed).
    pub fn left_leadership(&mut self, node: NodeId) {
        self.leader_append_only.left_leadership(node);
    }

    /// `node` durably wrote `entries`; `log` is its log afterwards.
    pub fn persisted_entries(
        &mut self,
        node: NodeId,
        entries: &[Entry],
        log: &dyn LogView,
    ) -> Result<(), Violation> {
        self.log_matching.persisted(node, entries, log)
    }

    /// After a driver pass: `node`'s term, whether it leads, and its log as they stand.
    pub fn log_settled(
        &mut self,
        node: NodeId,
        term: Term,
        is_leader: bool,
        log: &dyn LogView,
    ) -> Result<(), Violation> {
        self.leader_append_only.check(node, term, is_leader, log)
    }

    /// `node` durably recorded `commit` as its commit index.
    pub fn persisted_commit(&mut self, node: NodeId, commit: LogIndex) -> Result<(), Violation> {
        self.commit_monotonic.persisted_commit(node, commit)
    }

    /// `node`, whose term is now `node_term`, applied `entry` to its state machine, whose
    /// state then has digest `state`.
    pub fn applied(
        &mut self,
        node: NodeId,
        node_term: Term,
        entry: &Entry,
        state: u64,
    ) -> Result<(), Violation> {
        self.state_machine_safety
            .applied(node, node_term, entry, state)?;
        self.commit_monotonic.applied(node, entry.index)
    }

    /// `node`'s state machine was replaced by a snapshot at `index` whose state has digest
    /// `state` (received from the leader, or read from its disk at restart).
    pub fn restored(&mut self, node: NodeId, index: LogIndex, state: u64) -> Result<(), Violation> {
        self.state_machine_safety.restored(node, index, state)
    }

    /// `node` crashed.
    pub fn crashed(&mut self, node: NodeId) {
        self.leader_append_only.left_leadership(node);
        self.commit_monotonic.crashed(node);
        self.state_machine_safety.crashed(node);
    }

    /// `node` is down and its disk was replaced by an empty one (a wipe): it restarts as a new
    /// voter under the same id, so what it promised before binds it no more.
    pub fn wiped(&mut self, node: NodeId) {
        self.one_vote_per_term.wiped(node);
        self.commit_monotonic.wiped(node);
    }

    /// `node` restarted with `commit` from its durable hard state and `log` from its disk.
    pub fn restarted(
        &mut self,
        node: NodeId,
        commit: LogIndex,
        log: &dyn LogView,
    ) -> Result<(), Violation> {
        self.commit_monotonic
            .restarted(node, commit, log, self.state_machine_safety.committed())
    }

    /// How many distinct entries are known committed.
    pub fn committed_count(&self) -> usize {
        self.state_machine_safety.committed().len()
    }

    /// The entry known committed at `index`.
    pub fn committed_at(&self, index: LogIndex) -> Option<CommittedEntry> {
        self.state_machine_safety.committed().get(&index).copied()
    }
}
