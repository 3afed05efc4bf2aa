//! [`Event`]: what happened in a node, for logs, metrics and status pages.

use skiff_raft::{LogIndex, NodeId, SoftState, Term};

/// Something that happened, for logs, metrics and status pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The role or the known leader changed.
    RoleChanged {
        /// The new role and leader.
        soft_state: SoftState,
        /// The term it happened in.
        term: Term,
    },
    /// A configuration change was applied.
    ConfChangeApplied {
        /// Its log index.
        index: LogIndex,
    },
    /// A member's peer address was recorded.
    MemberAddressRecorded {
        /// The member.
        id: NodeId,
    },
    /// A member's incarnation was recorded (see [`crate::Node::member_incarnations`]).
    MemberIncarnationRecorded {
        /// The member.
        id: NodeId,
        /// The incarnation of its data directory.
        incarnation: u64,
    },
    /// A peer refuses this node: its data directory is not the one the cluster recorded. It
    /// stays out of elections; an operator removes it and adds it back as a new member.
    IncarnationRefused(crate::IncarnationNotice),
    /// A client's write in a session was sent again to the leader, its first outcome lost
    /// to a leader change (see `node/resubmit.rs`).
    WriteResubmitted {
        /// The client request.
        id: crate::RequestId,
        /// Where this node, leading, appended the copy (`None`: forwarded to the leader).
        proposed_at: Option<(LogIndex, Term)>,
    },
    /// The state machine was snapshotted and the log compacted.
    SnapshotTaken {
        /// The snapshot's last included index.
        index: LogIndex,
    },
    /// A chunk of a snapshot from the leader was written: `received` bytes of it so far.
    SnapshotChunkReceived {
        /// The snapshot's last included index.
        index: LogIndex,
        /// Bytes of the snapshot received and durable so far.
        received: u64,
    },
    /// A snapshot from the leader replaced the state machine.
    SnapshotInstalled {
        /// The snapshot's last included index.
        index: LogIndex,
    },
    /// A requested snapshot was not taken: nothing was applied past the last snapshot, or a
    /// snapshot from the leader is about to replace the state machine.
    SnapshotSkipped {
        /// The state machine's applied index.
        applied: LogIndex,
    },
}
