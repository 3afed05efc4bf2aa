//! Linearizable reads on the leader and through followers (ReadIndex, thesis §6.4), and lease
//! reads (thesis §6.4.1) when configured. What is kept about reads is the [`ReadBook`]'s;
//! this file decides what happens to each read.
//!
//! [`ReadBook`]: super::read_book::ReadBook

use crate::message::MessageBody;
use crate::raft::read_only::{ReadIndexError, ReadState};
use crate::raft::Raft;
use crate::storage::LogStorage;
use crate::types::{LogIndex, NodeId, Role};

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
            return self.reads.await_commit((ctx, from));
        }
        let index = self.log.committed();
        if self.tracker.is_only_voter(self.id) || self.lease_is_valid() {
            self.deliver_read(ctx, index, from);
            return Ok(());
        }
        self.reads.await_round(ctx, index, from)
    }

    fn deliver_read(&mut self, ctx: u64, index: LogIndex, from: Option<NodeId>) {
        match from {
            None => self.reads.confirmed(ReadState { ctx, index }),
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
            && self.transfer.is_none()
            && self.reads.lease_holds(self.timers.now())
    }

    /// Gives up the lease (leadership is being handed over).
    pub(crate) fn end_lease(&mut self) {
        // Thesis §3.10: a late TimeoutNow can still elect the target, so no lease this term.
        self.reads.end_lease();
    }

    /// Starts a heartbeat round; the messages sent from now on carry it.
    pub(crate) fn start_read_round(&mut self) {
        self.reads.start_round(self.timers.now());
    }

    /// `from` answered a message of `round`: confirm the reads a majority has now vouched for.
    pub(crate) fn read_round_answered(&mut self, from: NodeId, round: u64) {
        self.reads.ack(from, round);
        let me = self.id;
        let current = self.reads.current_round();
        let reads = &self.reads;
        let quorum_round = self.tracker.voters().quorum_value(|id| {
            Some(if id == me {
                current
            } else {
                reads.acked_round(id)
            })
        });
        let lease_ticks = self
            .config
            .election_timeout_ticks
            .saturating_sub(self.config.lease_clock_drift_ticks);
        for read in self.reads.quorum_answered(quorum_round, lease_ticks) {
            self.deliver_read(read.ctx, read.index, read.from);
        }
    }

    /// The leader's first entry of its term committed: reads that waited for it get a round.
    pub(crate) fn release_reads_awaiting_commit(&mut self) {
        while let Some((ctx, from)) = self.reads.next_awaiting_commit() {
            if self.leader_read(ctx, from).is_err() {
                self.refuse_read(ctx, from);
            }
        }
    }

    fn refuse_read(&mut self, ctx: u64, from: Option<NodeId>) {
        match from {
            None => self.reads.refused(ctx),
            Some(follower) => self.send(
                follower,
                MessageBody::ReadIndexResponse { ctx, index: None },
            ),
        }
    }

    /// Leaving leadership: every waiting read is refused (its caller may retry elsewhere).
    pub(crate) fn abandon_reads(&mut self) {
        for (ctx, from) in self.reads.abandon() {
            self.refuse_read(ctx, from);
        }
    }
}
