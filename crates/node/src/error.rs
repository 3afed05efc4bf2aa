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
        source: skiff_kv::KvError,
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
}
