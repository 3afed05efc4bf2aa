//! Linearizable reads without writing the log (ReadIndex, thesis §6.4).
//!
//! A read request is given the leader's commit index when it arrives. Before it may be served,
//! the leader must show it was still leader *after* the read arrived: it starts a heartbeat
//! round, and once a majority has answered a round at least that new, every read registered
//! before the round began is confirmed. Concurrent reads share one round.

use std::collections::{BTreeMap, VecDeque};

use crate::types::{LogIndex, NodeId};

/// A confirmed read: it may be served once the state machine has applied `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's id for the request.
    pub ctx: u64,
    /// The commit index when the request arrived at the leader.
    pub index: LogIndex,
}

/// Why a read request was refused at once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadIndexError {
    /// No leader is known to forward the request to.
    #[error("no leader is known")]
    NoLeader,
    /// Too many reads are waiting for confirmation.
    #[error("{pending} reads are already waiting (limit {max})")]
    TooManyPending {
        /// Reads waiting.
        pending: usize,
        /// The configured limit.
        max: usize,
    },
}

/// A read waiting for its heartbeat round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingRead {
    /// The caller's id for the request.
    pub ctx: u64,
    /// The commit index when the request arrived.
    pub index: LogIndex,
    /// The round whose majority answer confirms it.
    pub round: u64,
    /// The follower that forwarded it, or `None` for the leader's own caller.
    pub from: Option<NodeId>,
}

/// The leader's heartbeat rounds, who answered which, and the reads waiting for them.
#[derive(Clone, Debug)]
pub struct ReadOnly {
    /// Ordered by round. Invariant: `pending.len() <= max_pending`.
    pending: VecDeque<PendingRead>,
    max_pending: usize,
    /// The last round started (carried by every append and heartbeat).
    sent_round: u64,
    /// The highest round each node has answered in this term.
    acked: BTreeMap<NodeId, u64>,
    /// A TimeoutNow was sent in this term: no lease reads until the next one.
    lease_revoked: bool,
}

impl ReadOnly {
    /// An empty book holding at most `max_pending` reads.
    pub fn new(max_pending: usize) -> ReadOnly {
        ReadOnly {
            pending: VecDeque::new(),
            max_pending,
            sent_round: 0,
            acked: BTreeMap::new(),
            lease_revoked: false,
        }
    }

    /// Registers a read at `index`; it waits for the next round.
    pub fn add(
        &mut self,
        ctx: u64,
        index: LogIndex,
        from: Option<NodeId>,
    ) -> Result<(), ReadIndexError> {
        if self.pending.len() >= self.max_pending {
            return Err(ReadIndexError::TooManyPending {
                pending: self.pending.len(),
                max: self.max_pending,
            });
        }
        self.pending.push_back(PendingRead {
            ctx,
            index,
            round: self.sent_round + 1,
            from,
        });
        Ok(())
    }

    /// Whether some read waits for a round not started yet.
    pub fn needs_round(&self) -> bool {
        self.pending
            .back()
            .is_some_and(|read| read.round > self.sent_round)
    }

    /// Starts a new round; returns its number.
    pub fn start_round(&mut self) -> u64 {
        self.sent_round += 1;
        self.sent_round
    }

    /// The last round started.
    pub fn current_round(&self) -> u64 {
        self.sent_round
    }

    /// `from` answered a message of `round` in this term.
    pub fn ack(&mut self, from: NodeId, round: u64) {
        let acked = self.acked.entry(from).or_insert(0);
        *acked = (*acked).max(round.min(self.sent_round));
    }

    /// The highest round `id` has answered.
    pub fn acked_round(&self, id: NodeId) -> u64 {
        self.acked.get(&id).copied().unwrap_or(0)
    }

    /// Removes and returns every read whose round is at or below `quorum_round`, in order.
    pub fn confirm_up_to(&mut self, quorum_round: u64) -> Vec<PendingRead> {
        let mut confirmed = Vec::new();
        while self
            .pending
            .front()
            .is_some_and(|read| read.round <= quorum_round)
        {
            confirmed.extend(self.pending.pop_front());
        }
        confirmed
    }

    /// Turns lease reads off for the rest of this term.
    pub fn revoke_lease(&mut self) {
        self.lease_revoked = true;
    }

    /// Whether lease reads were turned off in this term.
    pub fn lease_revoked(&self) -> bool {
        self.lease_revoked
    }

    /// Forgets every pending read (the node stopped leading); returns them.
    pub fn reset(&mut self) -> Vec<PendingRead> {
        self.acked.clear();
        self.sent_round = 0;
        self.lease_revoked = false;
        self.pending.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arriving_before_a_round_share_it() {
        let mut book = ReadOnly::new(8);
        book.add(1, LogIndex(5), None).unwrap();
        book.add(2, LogIndex(6), Some(NodeId(2))).unwrap();
        assert!(book.needs_round());
        assert_eq!(book.start_round(), 1);
        assert!(!book.needs_round(), "both reads ride on round 1");
        book.add(3, LogIndex(7), None).unwrap();
        assert!(
            book.needs_round(),
            "a read after the round began needs the next one"
        );
        let confirmed = book.confirm_up_to(1);
        assert_eq!(
            confirmed.iter().map(|r| r.ctx).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(book.needs_round(), "read 3 is still waiting");
    }

    #[test]
    fn an_ack_of_an_older_round_confirms_nothing_newer() {
        let mut book = ReadOnly::new(8);
        book.start_round();
        book.add(1, LogIndex(5), None).unwrap();
        assert!(
            book.confirm_up_to(1).is_empty(),
            "round 1 began before the read arrived"
        );
        book.start_round();
        assert_eq!(book.confirm_up_to(2).len(), 1);
    }

    #[test]
    fn acks_never_exceed_the_rounds_started_nor_move_back() {
        let mut book = ReadOnly::new(8);
        book.start_round();
        book.ack(NodeId(2), 9);
        assert_eq!(
            book.acked_round(NodeId(2)),
            1,
            "an answer cannot be for a round not started"
        );
        book.start_round();
        book.ack(NodeId(2), 2);
        book.ack(NodeId(2), 1);
        assert_eq!(book.acked_round(NodeId(2)), 2);
    }

    #[test]
    fn the_book_is_bounded() {
        let mut book = ReadOnly::new(1);
        book.add(1, LogIndex(1), None).unwrap();
        assert_eq!(
            book.add(2, LogIndex(1), None),
            Err(ReadIndexError::TooManyPending { pending: 1, max: 1 })
        );
    }

    #[test]
    fn reset_returns_the_abandoned_reads() {
        let mut book = ReadOnly::new(4);
        book.add(1, LogIndex(1), None).unwrap();
        book.start_round();
        book.ack(NodeId(2), 1);
        assert_eq!(book.reset().len(), 1);
        assert_eq!(book.acked_round(NodeId(2)), 0);
        assert!(!book.needs_round());
    }
}
