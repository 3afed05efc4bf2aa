//! [`NodeError`]: why a node could not start or had to stop.

use skiff_raft::{LogIndex, SnapshotError, StartError};
use skiff_wal::WalError;

/// A failure the node cannot serve through: the process should stop (and, for a disk error,
/// be restarted so that recovery finds out what the disk really holds).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The durable log refused to open or to write.
    #[error("durable log: {0}")]
    Wal(#[from] WalError),
    /// The durable log refused a write the core asked for.
    #[error("durable log: {0}")]
    Storage(#[from] skiff_raft::StorageError),
    /// The Raft core refused to start.
    #[error("raft: {0}")]
    Start(#[from] StartError),
    /// The snapshot on disk is not a state machine snapshot this build can read.
    #[error("snapshot at index {index}: {source}")]
    Snapshot {
        /// The snapshot's last included index.
        index: LogIndex,
        /// What was wrong with it.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The snapshot on disk is not a node snapshot this build can read.
    #[error("snapshot at index {index}: {source}")]
    SnapshotEnvelope {
        /// The snapshot's last included index.
        index: LogIndex,
        /// What was wrong with it.
        source: crate::payload::PayloadError,
    },
    /// The core refused to take a snapshot.
    #[error("taking a snapshot: {0}")]
    TakeSnapshot(#[from] SnapshotError),
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A committed entry this build cannot decode: written by a newer build (a payload tag or
    /// command version it does not know) or damaged. Skipping it would make this node's
    /// state diverge from the others' (§5.3: every replica applies the same commands in the
    /// same order), so the node stops applying before it; nothing after it is applied.
    #[error("committed log entry at index {index} cannot be applied: {reason}; it was written by a newer build: upgrade this node (or, if every node runs this build, the log is damaged)")]
    UndecodableEntry {
        /// The entry's index.
        index: LogIndex,
        /// Why it does not decode.
        reason: String,
    },
    /// The driver reported the completion of a step the node is not at: a token of another
    /// batch or snapshot, or one already used. A bug in the driver; nothing was changed.
    #[error("driver out of step: {0}")]
    OutOfStep(&'static str),
}

/// Why a message from a peer was refused. Nothing of it reached the node's state or disk;
/// the node goes on. The server logs it with the peer's id and counts it.
#[derive(Debug, thiserror::Error)]
pub enum PeerMessageError {
    /// The core refused it: a message no honest node sends (bounds on terms and indexes,
    /// contiguous entries, snapshot metadata, node ids: [`skiff_raft::InvalidMessage`]),
    /// one addressed elsewhere, a TimeoutNow not from this term's leader, or entries that
    /// would replace committed ones.
    #[error(transparent)]
    Refused(#[from] skiff_raft::StepError),
    /// The last chunk of a snapshot completes data that is not a state machine snapshot.
    #[error("snapshot at index {index} from {from} refused: {problem}")]
    BadSnapshot {
        /// The sender.
        from: skiff_raft::NodeId,
        /// The snapshot's last included index.
        index: LogIndex,
        /// What is wrong with it.
        problem: SnapshotRefusal,
    },
    /// The sender's data directory is not the one the cluster recorded for its id: its disk
    /// was wiped or replaced, and it forgot its votes (thesis §3.8). Nothing it sends counts
    /// until it is removed and added back as a new member.
    #[error(
        "node {id}'s data directory is not the one the cluster knows (incarnation {found:#x}, recorded {recorded:#x}): remove it (`skiff admin remove --id {id}`, adding `--force` if fewer than three voters would remain) and add it back as a new member",
        id = .from.0
    )]
    WrongIncarnation {
        /// The sender.
        from: skiff_raft::NodeId,
        /// The incarnation its message carried.
        found: u64,
        /// The incarnation recorded for it.
        recorded: u64,
    },
    /// The message carried no incarnation (0): no honest node sends it.
    #[error("message from {from} carries no incarnation")]
    NoIncarnation {
        /// The sender.
        from: skiff_raft::NodeId,
    },
    /// The last chunk of a snapshot arrived before the earlier ones were on disk, so the
    /// snapshot cannot be checked yet; the leader resends the chunk.
    #[error("last chunk of the snapshot at index {index} from {from} came before the earlier chunks were staged")]
    SnapshotNotStaged {
        /// The sender.
        from: skiff_raft::NodeId,
        /// The snapshot's last included index.
        index: LogIndex,
    },
    /// An AppendEntries carried a normal entry with no bytes, which no build writes; the
    /// whole message is refused, so nothing of it reaches the log.
    #[error("entry {index} from {from} is a normal entry with no data, which no leader writes")]
    EmptyEntry {
        /// The sender.
        from: skiff_raft::NodeId,
        /// The entry's index.
        index: LogIndex,
    },
}

/// What is wrong with a snapshot received from a peer.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotRefusal {
    /// It is not a node snapshot (address book envelope).
    #[error("not a node snapshot: {0}")]
    Envelope(crate::payload::PayloadError),
    /// Its state machine part does not restore (magic, checksum, encoding).
    #[error("state machine snapshot: {0}")]
    StateMachine(Box<dyn std::error::Error + Send + Sync>),
    /// Its state machine applied entries past the index the snapshot claims to cover.
    #[error("its state machine applied index {applied}, past the snapshot's index")]
    AppliedPastIndex {
        /// The state machine's applied index.
        applied: LogIndex,
    },
    /// The chunks staged on disk could not be read back.
    #[error("staged chunks unreadable: {0}")]
    Unreadable(String),
}
