//! The vocabulary of Raft: terms, log indexes, node ids, entries and hard state.

use std::fmt;

use bytes::Bytes;

/// A Raft term (§5.1). Terms only grow; term 0 means "no term yet".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Term(pub u64);

/// A position in the replicated log. Index 0 is the empty prefix; the first entry is at 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogIndex(pub u64);

/// The id of a cluster member. Id 0 is reserved for "nobody".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl Term {
    /// The term after this one (saturating: terms from the network are bounded far below
    /// `u64::MAX` by [`validate`](crate::validate()), so it never saturates in practice).
    pub fn next(self) -> Term {
        Term(self.0.saturating_add(1))
    }
}

impl LogIndex {
    /// The index after this one.
    pub fn next(self) -> LogIndex {
        LogIndex(self.0.saturating_add(1))
    }

    /// The index before this one, saturating at 0.
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }

    /// This index moved forward by `n` entries (saturating, like [`LogIndex::next`]).
    pub fn plus(self, n: u64) -> LogIndex {
        LogIndex(self.0.saturating_add(n))
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Data proposed by the application.
    Normal,
    /// The empty entry a leader appends at the start of its term (§5.4.2, thesis §6.4):
    /// committing it commits every earlier entry.
    Noop,
    /// A membership change ([`ConfChange`](crate::membership::ConfChange) in its data). It takes
    /// effect on every node when applied.
    ConfChange,
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: LogIndex,
    /// Whether this is application data or a leader's no-op.
    pub kind: EntryKind,
    /// The application's payload (empty for a no-op). Shared, not copied, as the entry is
    /// handed from the log to each follower's message, to storage and to the state machine;
    /// it may be a slice of a larger buffer (the frame it arrived in), so whatever keeps it
    /// long should copy it out.
    pub data: Bytes,
}

impl Entry {
    /// The bytes this entry counts against size limits: its payload plus a fixed header.
    pub fn size_bytes(&self) -> u64 {
        ENTRY_HEADER_BYTES + self.data.len() as u64
    }
}

/// The per-entry overhead counted by size limits (term, index and kind on the wire).
pub const ENTRY_HEADER_BYTES: u64 = 24;

/// The state that must be durable before a node answers anyone (Figure 2, "Persistent state").
///
/// It is written as one record so that a crash can never separate a term from its vote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The highest index known to be committed.
    pub commit: LogIndex,
}

/// A node's role (Figure 4), plus the pre-candidate of the PreVote extension (thesis §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Answers leaders and candidates; campaigns when the election timer fires.
    Follower,
    /// Asks whether it could win an election, without raising its term.
    PreCandidate,
    /// Raised its term and asks for votes.
    Candidate,
    /// Replicates its log to the others.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        };
        f.write_str(name)
    }
}

/// Volatile state that the application may want to display or react to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SoftState {
    /// The node's role.
    pub role: Role,
    /// The leader this node follows in the current term, if it knows one.
    pub leader: Option<NodeId>,
}
