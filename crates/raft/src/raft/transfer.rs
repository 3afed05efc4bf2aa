//! Leadership transfer (thesis §3.10): the leader brings a chosen voter up to date, then tells
//! it to campaign at once; meanwhile it accepts no proposals, and it gives up after an
//! election timeout.

use crate::message::MessageBody;
use crate::raft::Raft;
use crate::storage::LogStorage;
use crate::types::{NodeId, Role};

/// Why a leadership transfer could not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// Only the leader can hand leadership over.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader_hint: Option<NodeId>,
    },
    /// The target is this leader already.
    #[error("{0} is already the leader")]
    AlreadyLeader(NodeId),
    /// Only a voter can become leader.
    #[error("{0} is not a voter")]
    NotAVoter(NodeId),
}

/// Leader only: a transfer in course.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transfer {
    /// The voter leadership is being handed to.
    to: NodeId,
    /// Ticks since the transfer began; it is abandoned after an election timeout.
    elapsed_ticks: u64,
}

impl<S: LogStorage> Raft<S> {
    /// Starts handing leadership to `to`.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError> {
        if self.role != Role::Leader {
            return Err(TransferError::NotLeader {
                leader_hint: self.leader,
            });
        }
        if to == self.id {
            return Err(TransferError::AlreadyLeader(to));
        }
        if !self.tracker.is_voter(to) {
            return Err(TransferError::NotAVoter(to));
        }
        if self.lead_transferee() == Some(to) {
            return Ok(());
        }
        self.transfer = Some(Transfer {
            to,
            elapsed_ticks: 0,
        });
        self.maybe_send_timeout_now(to);
        self.send_appends(to);
        Ok(())
    }

    /// The voter leadership is being handed to, if any.
    pub fn lead_transferee(&self) -> Option<NodeId> {
        self.transfer.map(|transfer| transfer.to)
    }

    /// Once the target's log matches ours, it may win an election at once.
    pub(crate) fn maybe_send_timeout_now(&mut self, to: NodeId) {
        if self.lead_transferee() != Some(to) {
            return;
        }
        let caught_up = self
            .tracker
            .get(to)
            .is_some_and(|p| p.match_index() == self.log.last_index());
        if caught_up {
            // The target will win votes that ignore this leader's lease: the lease ends now.
            self.end_lease();
            self.send(to, MessageBody::TimeoutNow);
        }
    }

    /// A transfer that has not completed within an election timeout is abandoned, and the
    /// leader accepts proposals again.
    pub(crate) fn tick_transfer(&mut self) {
        let Some(transfer) = &mut self.transfer else {
            return;
        };
        transfer.elapsed_ticks += 1;
        if transfer.elapsed_ticks >= self.config.election_timeout_ticks {
            self.transfer = None;
        }
    }

    /// The leader asked this node to take over: campaign now, without PreVote.
    pub(crate) fn handle_timeout_now(&mut self, from: NodeId) {
        if self.role == Role::Leader
            || self.leader != Some(from)
            || !self.tracker.is_voter(self.id)
            || self.term >= crate::validate::MAX_TERM
        {
            return;
        }
        // The vote requests carry the transfer flag, so voters still in the old leader's
        // lease answer them.
        self.become_candidate(true);
    }
}
