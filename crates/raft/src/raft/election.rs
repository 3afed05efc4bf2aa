//! Elections (§5.2, thesis §9.6 PreVote): asking for votes, answering them, and counting them.

use crate::message::{Message, MessageBody};
use crate::quorum::VoteResult;
use crate::raft::Raft;
use crate::storage::LogStorage;
use crate::types::{HardState, LogIndex, NodeId, Role, Term};

impl<S: LogStorage> Raft<S> {
    /// Asks every other voter for its vote, or (`pre_vote`) whether it would give one.
    pub(crate) fn request_votes(&mut self, pre_vote: bool) {
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        let term = if pre_vote {
            self.term.next()
        } else {
            self.term
        };
        let others: Vec<NodeId> = self
            .tracker
            .voters()
            .voters()
            .into_iter()
            .filter(|&id| id != self.id)
            .collect();
        for to in others {
            let body = if pre_vote {
                MessageBody::PreVote {
                    last_log_index,
                    last_log_term,
                }
            } else {
                MessageBody::RequestVote {
                    last_log_index,
                    last_log_term,
                    leadership_transfer: self.campaign_is_transfer,
                }
            };
            self.outbox.send(Message {
                from: self.id,
                to,
                term,
                body,
            });
        }
    }

    pub(crate) fn record_vote(&mut self, from: NodeId, granted: bool) {
        self.tracker.record_vote(from, granted);
        self.check_election_result();
    }

    pub(crate) fn check_election_result(&mut self) {
        match self.tracker.vote_result() {
            VoteResult::Won if self.role == Role::PreCandidate => self.become_candidate(false),
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => self.become_follower(self.term, None),
            VoteResult::Pending => {}
        }
    }

    /// Called once the hard state `persisted` is durable.
    pub(crate) fn on_hard_state_persisted(&mut self, persisted: HardState) {
        // Thesis §3.8: the candidate's own vote counts only once it is durable.
        if self.role == Role::Candidate
            && persisted.term == self.term
            && persisted.vote == Some(self.id)
        {
            self.record_vote(self.id, true);
        }
    }

    pub(crate) fn handle_vote_request(
        &mut self,
        from: NodeId,
        term: Term,
        last_log_index: LogIndex,
        last_log_term: Term,
        pre_vote: bool,
    ) {
        // Figure 2 (RequestVote): one vote per term — a repeat of our own vote, or a first vote
        // in a term where no leader is known. A pre-vote for a later term promises nothing.
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        // §5.4.1: only a candidate whose log is at least as up-to-date gets the vote.
        let grant = can_vote && self.log.is_up_to_date(last_log_index, last_log_term);
        if !grant {
            let body = if pre_vote {
                MessageBody::PreVoteResponse { reject: true }
            } else {
                MessageBody::RequestVoteResponse { reject: true }
            };
            self.send(from, body);
            return;
        }
        if pre_vote {
            self.outbox.send(Message {
                from: self.id,
                to: from,
                term,
                body: MessageBody::PreVoteResponse { reject: false },
            });
            return;
        }
        self.vote = Some(from);
        self.timers.restart_election();
        // Thesis §3.8: the grant leaves only after the vote is durable.
        self.outbox.send_after_persist(Message {
            from: self.id,
            to: from,
            term: self.term,
            body: MessageBody::RequestVoteResponse { reject: false },
        });
    }

    pub(crate) fn handle_pre_vote_response(&mut self, from: NodeId, term: Term, reject: bool) {
        if self.role != Role::PreCandidate {
            return;
        }
        // Count grants for the election this pre-candidate would start, and refusals at its term.
        let current = if reject {
            term == self.term
        } else {
            term == self.term.next()
        };
        if current {
            self.record_vote(from, !reject);
        }
    }
}
