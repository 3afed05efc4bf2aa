//! Proposals (§5.3): the leader appends client data to its log and replicates it with the next
//! Ready; what it refuses, and why.

use crate::raft::Raft;
use crate::storage::LogStorage;
use crate::types::{Entry, EntryKind, LogIndex, NodeId, Role, Term};

/// Why a proposal was refused. Nothing is queued: the caller decides whether to retry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader_hint: Option<NodeId>,
    },
    /// One entry must fit in one AppendEntries message.
    #[error("entry of {size_bytes} bytes exceeds max_message_bytes ({max_bytes})")]
    EntryTooLarge {
        /// The entry's size.
        size_bytes: u64,
        /// The configured limit.
        max_bytes: u64,
    },
    /// The leader is handing leadership over and accepts nothing meanwhile.
    #[error("leadership is being transferred to {to}")]
    TransferInProgress {
        /// The transfer target.
        to: NodeId,
    },
    /// A membership change is proposed only once the leader's no-op of its term has committed.
    #[error("the leader's first entry of its term has not committed yet")]
    ConfChangeTooEarly,
    /// One membership change at a time: the last one is not applied yet.
    #[error("the configuration change at {pending} is not applied yet")]
    ConfChangeInProgress {
        /// The index of the change in flight.
        pending: LogIndex,
    },
    /// A learner is promoted only once its log has caught up with the commit index.
    #[error("learner {learner} has not caught up yet")]
    LearnerNotCaughtUp {
        /// The learner.
        learner: NodeId,
    },
    /// The change does not apply to the configuration in force.
    #[error(transparent)]
    InvalidConfChange(#[from] crate::membership::ConfChangeError),
    /// Too many bytes are proposed and not yet committed.
    #[error("{uncommitted_bytes} uncommitted bytes already; limit is {max_bytes}")]
    UncommittedLimit {
        /// Bytes proposed and not yet committed.
        uncommitted_bytes: u64,
        /// The configured limit.
        max_bytes: u64,
    },
}

impl<S: LogStorage> Raft<S> {
    /// Appends `data` to the leader's log. The entry goes out with the next Ready.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(LogIndex, Term), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader_hint: self.leader,
            });
        }
        if let Some(to) = self.lead_transferee() {
            // Thesis §3.10: the leader stops accepting proposals while it hands over.
            return Err(ProposeError::TransferInProgress { to });
        }
        let size_bytes = crate::types::ENTRY_HEADER_BYTES + data.len() as u64;
        if size_bytes > self.config.max_message_bytes {
            return Err(ProposeError::EntryTooLarge {
                size_bytes,
                max_bytes: self.config.max_message_bytes,
            });
        }
        self.uncommitted
            .admit(size_bytes, self.config.max_uncommitted_bytes)?;
        let index = self.append_entry(EntryKind::Normal, data);
        self.uncommitted.add(index, size_bytes);
        self.broadcast_pending = true;
        Ok((index, self.term))
    }

    /// Appends one entry of the current term to the leader's log; returns its index.
    pub(crate) fn append_entry(&mut self, kind: EntryKind, data: Vec<u8>) -> LogIndex {
        let index = self.log.last_index().next();
        self.log.append(&[Entry {
            term: self.term,
            index,
            kind,
            data: data.into(),
        }]);
        index
    }
}
