//! Everything a node keeps about reads: on the leader, reads waiting for an entry of its term
//! to commit, reads waiting for a heartbeat round, the rounds' start times and the lease they
//! earn; on every node, the answers waiting for the next Ready.

use std::collections::VecDeque;

use crate::raft::read_only::{PendingRead, ReadIndexError, ReadOnly, ReadState};
use crate::types::{LogIndex, NodeId};

/// Round start times kept for lease reads; older rounds are forgotten (their lease is lost,
/// which only makes the leader fall back to a heartbeat round).
const MAX_TRACKED_ROUNDS: usize = 1024;

/// A read the leader holds: the caller's id and the follower that forwarded it (`None` for the
/// leader's own caller).
pub(crate) type HeldRead = (u64, Option<NodeId>);

/// The node's reads, in every stage.
#[derive(Clone, Debug)]
pub(crate) struct ReadBook {
    /// Leader only: reads waiting for a heartbeat round.
    rounds: ReadOnly,
    /// Leader only: reads that arrived before an entry of this term committed
    /// (thesis §6.4: until then the commit index may be behind an earlier leader's).
    /// Invariant: `awaiting_commit.len() <= max_pending`.
    awaiting_commit: VecDeque<HeldRead>,
    max_pending: usize,
    /// Leader only: (round, tick) when each recent read round started, for lease reads.
    round_started_at: VecDeque<(u64, u64)>,
    /// Leader only: lease reads may be answered while the clock is below this tick.
    lease_until_tick: u64,
    /// Reads confirmed, for the next Ready.
    read_states: Vec<ReadState>,
    /// Reads refused (no leader, or the leader refused), for the next Ready.
    failed_reads: Vec<u64>,
}

impl ReadBook {
    /// An empty book; at most `max_pending` reads wait at each leader stage.
    pub(crate) fn new(max_pending: usize) -> ReadBook {
        ReadBook {
            rounds: ReadOnly::new(max_pending),
            awaiting_commit: VecDeque::new(),
            max_pending,
            round_started_at: VecDeque::new(),
            lease_until_tick: 0,
            read_states: Vec::new(),
            failed_reads: Vec::new(),
        }
    }

    // ---- waiting for the leader's first commit of its term ----

    /// Holds a read until an entry of the leader's term commits.
    pub(crate) fn await_commit(&mut self, read: HeldRead) -> Result<(), ReadIndexError> {
        if self.awaiting_commit.len() >= self.max_pending {
            return Err(ReadIndexError::TooManyPending {
                pending: self.awaiting_commit.len(),
                max: self.max_pending,
            });
        }
        self.awaiting_commit.push_back(read);
        Ok(())
    }

    /// The first read waiting for the commit, taken out of the book.
    pub(crate) fn next_awaiting_commit(&mut self) -> Option<HeldRead> {
        self.awaiting_commit.pop_front()
    }

    // ---- heartbeat rounds (thesis §6.4) ----

    /// Registers a read at `index`; it waits for the next round.
    pub(crate) fn await_round(
        &mut self,
        ctx: u64,
        index: LogIndex,
        from: Option<NodeId>,
    ) -> Result<(), ReadIndexError> {
        self.rounds.add(ctx, index, from)
    }

    /// Whether some read waits for a round not started yet.
    pub(crate) fn needs_round(&self) -> bool {
        self.rounds.needs_round()
    }

    /// The last round started (every append and heartbeat carries it).
    pub(crate) fn current_round(&self) -> u64 {
        self.rounds.current_round()
    }

    /// Starts a round at tick `now`; returns its number.
    pub(crate) fn start_round(&mut self, now: u64) -> u64 {
        let round = self.rounds.start_round();
        if self.round_started_at.len() == MAX_TRACKED_ROUNDS {
            self.round_started_at.pop_front();
        }
        self.round_started_at.push_back((round, now));
        round
    }

    /// `from` answered a message of `round` in this term.
    pub(crate) fn ack(&mut self, from: NodeId, round: u64) {
        self.rounds.ack(from, round);
    }

    /// The highest round `id` has answered in this term.
    pub(crate) fn acked_round(&self, id: NodeId) -> u64 {
        self.rounds.acked_round(id)
    }

    /// A majority has answered `quorum_round`: the lease runs `lease_ticks` from when that
    /// round was sent, and every read registered before it began is confirmed (returned in
    /// order, for the caller to deliver).
    pub(crate) fn quorum_answered(
        &mut self,
        quorum_round: u64,
        lease_ticks: u64,
    ) -> Vec<PendingRead> {
        // Thesis §6.4.1: each voter of the majority heard from us after the round was sent,
        // and votes for no one else for an election timeout afterwards.
        while self
            .round_started_at
            .front()
            .is_some_and(|&(round, _)| round < quorum_round)
        {
            self.round_started_at.pop_front();
        }
        if let Some(&(round, started)) = self.round_started_at.front() {
            if round == quorum_round {
                self.lease_until_tick = self.lease_until_tick.max(started + lease_ticks);
            }
        }
        self.rounds.confirm_up_to(quorum_round)
    }

    // ---- the lease (thesis §6.4.1) ----

    /// Whether the lease earned by answered rounds still holds at tick `now`.
    pub(crate) fn lease_holds(&self, now: u64) -> bool {
        !self.rounds.lease_revoked() && now < self.lease_until_tick
    }

    /// Gives the lease up for the rest of this term (leadership is being handed over).
    pub(crate) fn end_lease(&mut self) {
        self.lease_until_tick = 0;
        self.rounds.revoke_lease();
    }

    // ---- answers for the next Ready ----

    /// A read of this node's caller is confirmed.
    pub(crate) fn confirmed(&mut self, read: ReadState) {
        self.read_states.push(read);
    }

    /// A read of this node's caller is refused.
    pub(crate) fn refused(&mut self, ctx: u64) {
        self.failed_reads.push(ctx);
    }

    /// Whether answers wait for the next Ready.
    pub(crate) fn has_answers(&self) -> bool {
        !self.read_states.is_empty() || !self.failed_reads.is_empty()
    }

    /// The answers for the Ready being built.
    pub(crate) fn take_answers(&mut self) -> (Vec<ReadState>, Vec<u64>) {
        (
            std::mem::take(&mut self.read_states),
            std::mem::take(&mut self.failed_reads),
        )
    }

    /// Leaving leadership: empties the leader's stages and ends the lease; returns every read
    /// that was held (those awaiting the commit first), for the caller to refuse.
    pub(crate) fn abandon(&mut self) -> Vec<HeldRead> {
        let mut held: Vec<HeldRead> = self.awaiting_commit.drain(..).collect();
        held.extend(self.rounds.reset().into_iter().map(|r| (r.ctx, r.from)));
        self.round_started_at.clear();
        self.lease_until_tick = 0;
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_runs_from_the_start_of_the_round_a_majority_answered() {
        let mut book = ReadBook::new(8);
        book.start_round(10);
        book.start_round(14);
        assert!(!book.lease_holds(14));
        book.quorum_answered(1, 8);
        assert!(
            book.lease_holds(17),
            "round 1 began at tick 10: lease until 18"
        );
        assert!(!book.lease_holds(18));
        book.quorum_answered(2, 8);
        assert!(book.lease_holds(21));
        book.end_lease();
        assert!(
            !book.lease_holds(15),
            "a revoked lease holds no more this term"
        );
    }

    #[test]
    fn abandoning_returns_every_held_read_and_ends_the_lease() {
        let mut book = ReadBook::new(2);
        book.await_commit((1, None)).unwrap();
        book.await_commit((2, Some(NodeId(3)))).unwrap();
        assert!(
            book.await_commit((3, None)).is_err(),
            "the stage is bounded"
        );
        book.await_round(4, LogIndex(5), None).unwrap();
        book.start_round(0);
        book.quorum_answered(0, 10);
        assert_eq!(
            book.abandon(),
            vec![(1, None), (2, Some(NodeId(3))), (4, None)]
        );
        assert!(!book.lease_holds(0));
        assert!(!book.needs_round());
        assert_eq!(book.next_awaiting_commit(), None);
    }
}
