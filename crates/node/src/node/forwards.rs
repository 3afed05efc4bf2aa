//! This node's clients' writes forwarded to a leader, waiting for its reply (thesis §6.2).
//!
//! Each forward remembers the leader it went to, the term this node was in when it sent it,
//! and the tick it went at. No reply can come for a forward:
//! - to a node that no longer leads (the leader id changed);
//! - of a session write sent in an earlier term than this node's: its leader was deposed,
//!   or restarted and won again with no memory of the writes it took, so its reply is lost
//!   even when the same node leads now;
//! - of a session write whose Forward or ForwardReply the network dropped (peer queues drop
//!   when full; Raft retransmits its own messages, never these).
//!
//! A session write is safe to send again (the state machine applies a `(client, sequence)`
//! once and answers a copy from its session's window, see `node/resubmit.rs`), so the first
//! two are sent again as soon as this node's term or leader moves, and the third after
//! [`RESEND_AFTER_ELECTION_TIMEOUTS`] election timeouts without a reply. A write without a
//! session is failed only when the leader id changes: it may not be sent twice, and a
//! leader that kept leading across a new term still answers it.
//!
//! Everything here iterates in request-id order (ids grow with arrival), so a node's output
//! is deterministic.

use std::collections::{BTreeMap, BTreeSet};

use skiff_raft::{NodeId, Term};
use skiff_wal::Disk;

use super::{Node, Origin};
use crate::refusals;
use crate::state_machine::StateMachine;
use crate::RequestId;

/// A session write forwarded this many election timeouts ago with no reply is sent again:
/// long enough for a busy leader to commit it, short of a client's request timeout.
pub(super) const RESEND_AFTER_ELECTION_TIMEOUTS: u64 = 4;

/// One forward waiting for its reply.
#[derive(Clone, Copy, Debug)]
struct Forward {
    /// The leader it went to.
    leader: NodeId,
    /// This node's term when it went.
    term: Term,
    /// The tick it went at.
    sent_at_tick: u64,
    /// Whether it carries a client session (so it may be sent again).
    in_session: bool,
}

/// The forwards waiting for their reply, with this node's count of ticks.
#[derive(Debug, Default)]
pub(super) struct Forwards {
    by_request: BTreeMap<RequestId, Forward>,
    /// The session forwards by the tick they went at, oldest first.
    sessions_by_age: BTreeSet<(u64, RequestId)>,
    /// Ticks this node has counted.
    now_tick: u64,
    /// The term and leader when the forwards were last checked.
    checked_at: (Term, Option<NodeId>),
}

impl Forwards {
    /// Write `id` went to `leader` in `term` (replacing an earlier attempt's forward).
    pub(super) fn insert(&mut self, id: RequestId, leader: NodeId, term: Term, in_session: bool) {
        self.remove(id);
        let forward = Forward {
            leader,
            term,
            sent_at_tick: self.now_tick,
            in_session,
        };
        if in_session {
            self.sessions_by_age.insert((self.now_tick, id));
        }
        self.by_request.insert(id, forward);
    }

    /// Forgets write `id`'s forward; whether it had one.
    pub(super) fn remove(&mut self, id: RequestId) -> bool {
        let Some(forward) = self.by_request.remove(&id) else {
            return false;
        };
        self.sessions_by_age.remove(&(forward.sent_at_tick, id));
        true
    }

    /// The leader write `id` was last forwarded to, if it waits for its reply.
    pub(super) fn leader_of(&self, id: RequestId) -> Option<NodeId> {
        self.by_request.get(&id).map(|forward| forward.leader)
    }

    /// How many wait for their reply.
    pub(super) fn len(&self) -> usize {
        self.by_request.len()
    }

    /// Whether the term or leader moved since the last check (and notes them).
    fn moved(&mut self, term: Term, leader: Option<NodeId>) -> bool {
        let moved = self.checked_at != (term, leader);
        self.checked_at = (term, leader);
        moved
    }

    /// The forwards no reply can come for now that this node is in `term` and knows
    /// `leader`, in request order.
    fn orphaned(&self, term: Term, leader: Option<NodeId>) -> Vec<RequestId> {
        self.by_request
            .iter()
            .filter(|(_, f)| Some(f.leader) != leader || (f.in_session && f.term < term))
            .map(|(&id, _)| id)
            .collect()
    }

    /// Counts a tick; the session forwards sent `ticks` or more ago, in request order.
    fn tick_and_overdue(&mut self, ticks: u64) -> Vec<RequestId> {
        self.now_tick += 1;
        let mut overdue: Vec<RequestId> = self
            .sessions_by_age
            .iter()
            .take_while(|(sent_at, _)| self.now_tick - sent_at >= ticks)
            .map(|&(_, id)| id)
            .collect();
        overdue.sort_unstable();
        overdue
    }
}

impl<D: Disk, M: StateMachine> Node<D, M> {
    /// Forwards write `id` to `leader`, remembering it until the reply comes.
    pub(super) fn forward(&mut self, id: RequestId, leader: NodeId, request: Vec<u8>) {
        let term = self.raw.raft().term();
        let in_session = self.session_writes.contains(id);
        self.forwards.insert(id, leader, term, in_session);
        self.send(crate::wire::PeerMessage::Forward {
            from: self.id(),
            to: leader,
            id,
            request,
        });
    }

    /// When this node's term or leader moved, answers the forwards no reply can come for
    /// now, so their clients retry at once rather than wait for their timeout; a session
    /// write is sent again to the leader instead (or parked until one is known).
    pub(super) fn fail_orphaned_forwards(&mut self) {
        let raft = self.raw.raft();
        let (term, leader) = (raft.term(), raft.leader());
        if !self.forwards.moved(term, leader) {
            return;
        }
        for id in self.forwards.orphaned(term, leader) {
            self.forwards.remove(id);
            self.lost_outcome(Origin::Local(id), refusals::OUTCOME_UNKNOWN);
        }
        self.resubmit_parked();
    }

    /// Counts a tick, and sends again the session writes forwarded a few election timeouts
    /// ago with no reply: the Forward, or its reply, may have been dropped.
    pub(super) fn resend_overdue_forwards(&mut self) {
        let ticks = RESEND_AFTER_ELECTION_TIMEOUTS
            .saturating_mul(self.config.raft.election_timeout_ticks)
            .max(1);
        for id in self.forwards.tick_and_overdue(ticks) {
            self.forwards.remove(id);
            self.lost_outcome(Origin::Local(id), refusals::OUTCOME_UNKNOWN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forward to a node that no longer leads is orphaned, session or not; a session
    /// forward of an earlier term is orphaned even when the same node leads again, a
    /// sessionless one is not (its leader, if it kept leading, still answers it).
    /// Reference: thesis §6.3.
    #[test]
    fn a_new_term_orphans_only_session_forwards_of_earlier_terms() {
        let mut forwards = Forwards::default();
        forwards.insert(1, NodeId(1), Term(5), true);
        forwards.insert(2, NodeId(1), Term(5), false);
        forwards.insert(3, NodeId(1), Term(6), true);
        forwards.insert(4, NodeId(2), Term(6), false);
        assert_eq!(forwards.orphaned(Term(6), Some(NodeId(1))), [1, 4]);
        assert_eq!(forwards.orphaned(Term(5), Some(NodeId(1))), [4]);
        assert_eq!(forwards.orphaned(Term(6), None), [1, 2, 3, 4]);
    }

    /// Only session forwards fall overdue, each once it waited the given ticks; a write sent
    /// again starts waiting afresh.
    #[test]
    fn session_forwards_fall_overdue_after_their_wait() {
        let mut forwards = Forwards::default();
        forwards.insert(9, NodeId(1), Term(1), true);
        forwards.insert(2, NodeId(1), Term(1), false);
        assert!(forwards.tick_and_overdue(3).is_empty());
        forwards.insert(5, NodeId(1), Term(1), true);
        assert!(forwards.tick_and_overdue(3).is_empty());
        assert_eq!(forwards.tick_and_overdue(3), [9]);
        forwards.insert(9, NodeId(1), Term(1), true);
        assert_eq!(forwards.tick_and_overdue(3), [5]);
        forwards.remove(5);
        assert!(forwards.tick_and_overdue(3).is_empty());
        assert_eq!(forwards.tick_and_overdue(3), [9]);
        assert_eq!(forwards.len(), 2);
    }
}
