//! Linearizable reads on the leader and through followers (ReadIndex, thesis §6.4), and lease
//! reads (thesis §6.4.1) when configured.

use crate::message::MessageBody;
use crate::raft::read_only::{ReadIndexError, ReadState};
use crate::raft::Raft;
use crate::storage::LogStorage;
use crate::types::{NodeId, Role};

/// Round start times kept for lease reads; older rounds are forgotten (their lease is lost,
/// which only makes the leader fall back to a heartbeat round).
const MAX_TRACKED_ROUNDS: usize = 1024;

impl<S: LogStorage> Raft<S> {
    /// Requests a linearizable read, identified by `ctx`. The answer comes in a later
    /// [`Ready`](crate::Ready): `read_states` with the index to wait for, or `failed_reads`.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ReadIndexError> {
        if self.role == Role::Leader {
            return self.leader_read(ctx, None);
        }
        match self.leader {
            Some(leader) if leader != self.id => {
                self.send(leader, MessageBody::ReadIndex { ctx });
                Ok(())
            }
            _ => Err(ReadIndexError::NoLeader),
        }
    }

    /// A follower forwarded a read.
    pub(crate) fn handle_read_index(&mut self, from: NodeId, ctx: u64) {
        let accepted = self.role == Role::Leader && self.leader_read(ctx, Some(from)).is_ok();
        if !accepted {
            self.send(from, MessageBody::ReadIndexResponse { ctx, index: None });
        }
    }

    fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.committed()) == Some(self.term)
    }

    fn leader_read(&mut self, ctx: u64, from: Option<NodeId>) -> Result<(), ReadIndexError> {
        // Thesis §6.4: a new leader's commit index may lag an earlier leader's until an entry of
        // its own term commits, so reads wait for its no-op.
        if !self.committed_in_current_term() {
            let max = self.config.max_pending_reads;
            if self.reads_awaiting_commit.len() >= max {
                return Err(ReadIndexError::TooManyPending {
                    pending: self.reads_awaiting_commit.len(),
                    max,
                });
            }
            self.reads_awaiting_commit.push_back((ctx, from));
            return Ok(());
        }
        let index = self.log.committed();
        let only_voter = self.voters.voters().len() == 1 && self.voters.contains(self.id);
        if only_voter || self.lease_is_valid() {
            self.deliver_read(ctx, index, from);
            return Ok(());
        }
        self.read_only.add(ctx, index, from)
    }

    fn deliver_read(&mut self, ctx: u64, index: crate::types::LogIndex, from: Option<NodeId>) {
        match from {
            None => self.read_states.push(ReadState { ctx, index }),
            Some(follower) => self.send(
                follower,
                MessageBody::ReadIndexResponse {
                    ctx,
                    index: Some(index),
                },
            ),
        }
    }

    /// Thesis §6.4.1: lease reads skip the round trip while a majority answered recently
    /// enough that none of them can have voted for another leader yet.
    fn lease_is_valid(&self) -> bool {
        self.config.read_lease
            && self.config.check_quorum
            && self.lead_transferee.is_none()
            && !self.read_only.lease_revoked()
            && self.ticks < self.lease_until_tick
    }

    /// Gives up the lease (leadership is being handed over).
    pub(crate) fn end_lease(&mut self) {
        self.lease_until_tick = 0;
        // Thesis §3.10: a late TimeoutNow can still elect the target, so no lease this term.
        self.read_only.revoke_lease();
    }

    /// Starts a heartbeat round; the messages sent from now on carry it.
    pub(crate) fn start_read_round(&mut self) {
        let round = self.read_only.start_round();
        if self.round_started_at.len() == MAX_TRACKED_ROUNDS {
            self.round_started_at.pop_front();
        }
        self.round_started_at.push_back((round, self.ticks));
    }

    /// `from` answered a message of `round`: confirm the reads a majority has now vouched for.
    pub(crate) fn read_round_answered(&mut self, from: NodeId, round: u64) {
        self.read_only.ack(from, round);
        let me = self.id;
        let current = self.read_only.current_round();
        let read_only = &self.read_only;
        let quorum_round = self.voters.quorum_value(|id| {
            Some(if id == me {
                current
            } else {
                read_only.acked_round(id)
            })
        });
        // The lease runs from when the round a majority answered was sent: each of them heard
        // from us after that, and votes for no one else for an election timeout afterwards.
        while self
            .round_started_at
            .front()
            .is_some_and(|&(round, _)| round < quorum_round)
        {
            self.round_started_at.pop_front();
        }
        if let Some(&(round, started)) = self.round_started_at.front() {
            if round == quorum_round {
                let lease = self
                    .config
                    .election_timeout_ticks
                    .saturating_sub(self.config.lease_clock_drift_ticks);
                self.lease_until_tick = self.lease_until_tick.max(started + lease);
            }
        }
        for read in self.read_only.confirm_up_to(quorum_round) {
            self.deliver_read(read.ctx, read.index, read.from);
        }
    }

    /// The leader's first entry of its term committed: reads that waited for it get a round.
    pub(crate) fn release_reads_awaiting_commit(&mut self) {
        while let Some((ctx, from)) = self.reads_awaiting_commit.pop_front() {
            if self.leader_read(ctx, from).is_err() {
                self.refuse_read(ctx, from);
            }
        }
    }

    fn refuse_read(&mut self, ctx: u64, from: Option<NodeId>) {
        match from {
            None => self.failed_reads.push(ctx),
            Some(follower) => self.send(
                follower,
                MessageBody::ReadIndexResponse { ctx, index: None },
            ),
        }
    }

    /// Leaving leadership: every waiting read is refused (its caller may retry elsewhere).
    pub(crate) fn abandon_reads(&mut self) {
        let waiting: Vec<(u64, Option<NodeId>)> = self.reads_awaiting_commit.drain(..).collect();
        let pending: Vec<(u64, Option<NodeId>)> = self
            .read_only
            .reset()
            .into_iter()
            .map(|r| (r.ctx, r.from))
            .collect();
        for (ctx, from) in waiting.into_iter().chain(pending) {
            self.refuse_read(ctx, from);
        }
        self.round_started_at.clear();
        self.lease_until_tick = 0;
    }
}
