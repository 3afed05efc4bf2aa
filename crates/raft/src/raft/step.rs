//! Receiving a message: checks on the message itself, then the term rules of §5.1, then the
//! handler of its kind.

use crate::log::AppendError;
use crate::message::{AppendResponse, Message, MessageBody};
use crate::raft::{Raft, ReadState};
use crate::storage::LogStorage;
use crate::types::{LogIndex, NodeId, Role, Term};
use crate::validate::{validate, InvalidMessage};

/// Why a message was refused. Nothing of it reached the node's state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The message is one no honest node sends (see [`validate()`](crate::validate())).
    #[error("invalid message: {0}")]
    Invalid(#[from] InvalidMessage),
    /// The message is addressed to another node.
    #[error("message for {to} delivered to {me}")]
    WrongRecipient {
        /// The addressee.
        to: NodeId,
        /// This node.
        me: NodeId,
    },
    /// A node never sends to itself over the network.
    #[error("message from this node itself ({0})")]
    FromSelf(NodeId),
    /// Thesis §3.10: TimeoutNow is obeyed only from the leader of the current term.
    #[error(
        "TimeoutNow from {from} in {term}, who is not this node's leader ({leader:?} in {current_term})"
    )]
    TimeoutNowNotFromLeader {
        /// The sender.
        from: NodeId,
        /// The message's term.
        term: Term,
        /// The leader this node follows, if any.
        leader: Option<NodeId>,
        /// This node's term.
        current_term: Term,
    },
    /// The entries cannot go into this node's log.
    #[error("AppendEntries refused: {0}")]
    Append(#[from] AppendError),
}

impl<S: LogStorage> Raft<S> {
    /// Handles one message from another node.
    /// Refuses, with a [`StepError`] naming what was wrong, a message no honest peer sends
    /// ([`validate`]), one addressed elsewhere, and a TimeoutNow not from this term's leader.
    pub fn step(&mut self, m: Message) -> Result<(), StepError> {
        self.check_sender(&m)?;
        if !self.observe_term(&m) {
            return Ok(());
        }
        self.dispatch(m)
    }

    /// Refuses a message this node must not act on whatever its term: one addressed
    /// elsewhere or to itself, one no honest peer sends, a TimeoutNow not from its leader.
    fn check_sender(&self, m: &Message) -> Result<(), StepError> {
        if m.to != self.id {
            return Err(StepError::WrongRecipient {
                to: m.to,
                me: self.id,
            });
        }
        if m.from == self.id {
            return Err(StepError::FromSelf(m.from));
        }
        validate(m)?;
        if m.body == MessageBody::TimeoutNow {
            // Thesis §3.10: only the leader of this node's current term may tell it to campaign.
            // A forged or stale TimeoutNow neither raises the term nor starts an election.
            if m.term != self.term || self.leader != Some(m.from) || self.role == Role::Leader {
                return Err(StepError::TimeoutNowNotFromLeader {
                    from: m.from,
                    term: m.term,
                    leader: self.leader,
                    current_term: self.term,
                });
            }
        }
        Ok(())
    }

    /// The term rules of §5.1: a later term makes this node a follower of it, an earlier one
    /// is answered with the current term. Returns whether the message goes on to its handler.
    fn observe_term(&mut self, m: &Message) -> bool {
        if m.term > self.term {
            let is_vote_request = matches!(
                m.body,
                MessageBody::PreVote { .. }
                    | MessageBody::RequestVote {
                        leadership_transfer: false,
                        ..
                    }
            );
            // Thesis §4.2.3 / §9.6: a node that heard from a live leader within the election
            // timeout ignores vote requests, so a rejoining node cannot depose a healthy leader.
            // A candidate the leader itself asked to take over (§3.10) is answered.
            if is_vote_request && self.in_leader_lease() {
                return false;
            }
            match m.body {
                // PreVote never raises anyone's term.
                MessageBody::PreVote { .. } => {}
                MessageBody::PreVoteResponse { reject: false } => {}
                MessageBody::AppendEntries { .. } | MessageBody::InstallSnapshot { .. } => {
                    self.become_follower(m.term, Some(m.from))
                }
                // §5.1: a higher term always makes a node a follower of that term.
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.term {
            self.answer_stale_term(m);
            return false;
        }
        true
    }

    /// Hands a message of the current term (or a PreVote exchange for the next) to the
    /// handler of its kind.
    fn dispatch(&mut self, m: Message) -> Result<(), StepError> {
        match m.body {
            MessageBody::PreVote {
                last_log_index,
                last_log_term,
            } => self.handle_vote_request(m.from, m.term, last_log_index, last_log_term, true),
            MessageBody::RequestVote {
                last_log_index,
                last_log_term,
                ..
            } => self.handle_vote_request(m.from, m.term, last_log_index, last_log_term, false),
            MessageBody::PreVoteResponse { reject } => {
                self.handle_pre_vote_response(m.from, m.term, reject)
            }
            MessageBody::RequestVoteResponse { reject } => {
                if self.role == Role::Candidate {
                    self.record_vote(m.from, !reject);
                }
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                read_round,
            } => self.handle_append_entries(
                m.from,
                prev_log_index,
                prev_log_term,
                &entries,
                leader_commit,
                read_round,
            )?,
            MessageBody::AppendEntriesResponse { read_round, result } => {
                self.handle_append_response(m.from, read_round, result)
            }
            MessageBody::ReadIndex { ctx } => self.handle_read_index(m.from, ctx),
            MessageBody::TimeoutNow => self.handle_timeout_now(m.from),
            MessageBody::InstallSnapshot {
                meta,
                offset,
                data,
                done,
            } => self.handle_install_snapshot(m.from, meta, offset, data, done),
            MessageBody::InstallSnapshotResponse {
                index,
                next_offset,
                installed,
            } => self.handle_snapshot_response(m.from, index, next_offset, installed),
            MessageBody::ReadIndexResponse { ctx, index } => match index {
                Some(index) => self.reads.confirmed(ReadState { ctx, index }),
                None => self.reads.refused(ctx),
            },
        }
        Ok(())
    }

    fn in_leader_lease(&self) -> bool {
        let heard_from_leader = self.leader.is_some()
            && self.timers.election_elapsed_ticks() < self.config.election_timeout_ticks;
        // With lease reads, a node that just started may have promised a leader, before it
        // crashed, not to vote for an election timeout: it keeps that promise after restarting.
        let just_started =
            self.config.read_lease && self.timers.now() < self.config.election_timeout_ticks;
        self.config.check_quorum && (heard_from_leader || just_started)
    }

    /// §5.1: a request from an older term is refused with the current term, so its sender
    /// learns it is stale. Answers from older terms are dropped: they belong to a finished
    /// election or a deposed leadership.
    fn answer_stale_term(&mut self, m: &Message) {
        let body = match &m.body {
            MessageBody::PreVote { .. } => MessageBody::PreVoteResponse { reject: true },
            MessageBody::RequestVote { .. } => MessageBody::RequestVoteResponse { reject: true },
            MessageBody::AppendEntries { prev_log_index, .. } => {
                MessageBody::AppendEntriesResponse {
                    read_round: 0,
                    result: AppendResponse::Rejected {
                        rejected_index: *prev_log_index,
                        hint_index: LogIndex(0),
                        hint_term: Term(0),
                    },
                }
            }
            MessageBody::ReadIndex { ctx } => MessageBody::ReadIndexResponse {
                ctx: *ctx,
                index: None,
            },
            MessageBody::InstallSnapshot { meta, .. } => MessageBody::InstallSnapshotResponse {
                index: meta.index,
                next_offset: 0,
                installed: false,
            },
            _ => return,
        };
        self.send(m.from, body);
    }
}
