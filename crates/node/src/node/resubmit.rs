//! Re-submission of a client's writes in a session (thesis §6.3).
//!
//! A write that carries a client session may be proposed any number of times: the state
//! machine applies each `(client, sequence)` once and answers every later copy with the
//! first reply. So when a session write's outcome is lost to a leader change — it was
//! forwarded to a node that no longer leads, its entry was replaced by a new leader's
//! ([`LEADER_CHANGED`](refusals::LEADER_CHANGED)), or a snapshot covered it
//! ([`OUTCOME_UNKNOWN`](refusals::OUTCOME_UNKNOWN)) — the node that took it from the client
//! sends the same request again to the current leader, and again, until it is applied or
//! the client stops waiting ([`Node::cancel`], the driver's request timeout). Without a
//! leader the write is parked and tried at each tick until one is known. A leader change
//! alone never answers a session write; only the driver's timeout says "may or may not".
//!
//! Writes without a session keep their answers: they may not be proposed twice.

use skiff_raft::Role;
use skiff_wal::Disk;

use super::{Node, Origin};
use crate::event::Event;
use crate::refusals;
use crate::state_machine::StateMachine;
use crate::wire::PeerMessage;
use crate::RequestId;

/// The session writes of this node's clients that wait for their outcome, bounded by the
/// pending requests: each is also proposed, forwarded or parked.
#[derive(Debug, Default)]
pub(super) struct SessionWrites {
    /// Each write's request bytes (unstamped), kept to send again.
    requests: std::collections::BTreeMap<RequestId, Vec<u8>>,
    /// Writes waiting for a leader to be sent to, in the order they came.
    parked: Vec<RequestId>,
    /// The encoded refusals a leader answers a forwarded write with when its outcome was
    /// lost to a leader change: the write is sent again rather than answered.
    lost_outcome_replies: Vec<Vec<u8>>,
    /// The encoded refusal of a node that no longer leads when the write reached it: it was
    /// not proposed, and is sent again at the next tick, to the leader known then.
    not_leader_reply: Vec<u8>,
}

/// When to send a forwarded session write again, by the leader's answer.
pub(super) enum Again {
    /// Its outcome was lost to a leader change: now.
    Now,
    /// It reached a node that no longer leads: at the next tick.
    NextTick,
}

impl SessionWrites {
    /// An empty set for a state machine of type `M`.
    pub(super) fn new<M: StateMachine>() -> SessionWrites {
        SessionWrites {
            lost_outcome_replies: [refusals::LEADER_CHANGED, refusals::OUTCOME_UNKNOWN]
                .iter()
                .map(|text| M::encode_reply(&M::refused(text.to_string())))
                .collect(),
            not_leader_reply: M::encode_reply(&M::refused(refusals::NO_LEADER.into())),
            ..SessionWrites::default()
        }
    }

    /// Remembers a session write's request bytes under `id`.
    pub(super) fn insert(&mut self, id: RequestId, request: Vec<u8>) {
        self.requests.insert(id, request);
    }

    /// Forgets `id` (it was answered, or its client stopped waiting).
    pub(super) fn remove(&mut self, id: RequestId) {
        if self.requests.remove(&id).is_some() {
            self.parked.retain(|&parked| parked != id);
        }
    }

    /// Whether `id` is a session write waiting here.
    pub(super) fn contains(&self, id: RequestId) -> bool {
        self.requests.contains_key(&id)
    }

    /// How many wait for a leader.
    pub(super) fn parked_len(&self) -> usize {
        self.parked.len()
    }

    /// Whether the leader's encoded `reply` to forwarded session write `id` asks for the
    /// write to be sent again, and when.
    pub(super) fn again(&self, id: RequestId, reply: &[u8]) -> Option<Again> {
        if !self.contains(id) {
            None
        } else if self.lost_outcome_replies.iter().any(|lost| lost == reply) {
            Some(Again::Now)
        } else if reply == self.not_leader_reply {
            Some(Again::NextTick)
        } else {
            None
        }
    }

    /// Parks `id` until the next tick.
    pub(super) fn park(&mut self, id: RequestId) {
        self.parked.push(id);
    }
}

impl<D: Disk, M: StateMachine> Node<D, M> {
    /// Answers `origin` with a refusal that says the write's outcome was lost to a leader
    /// change (`text`), or, for a session write of this node's client, sends it again.
    pub(super) fn lost_outcome(&mut self, origin: Origin, text: &'static str) {
        match origin {
            Origin::Local(id) if self.session_writes.contains(id) => self.resubmit(id),
            _ => self.reply(origin, M::refused(text.into())),
        }
    }

    /// Sends session write `id` again: proposed here if this node leads, forwarded to the
    /// leader it knows, or parked until one is known.
    pub(super) fn resubmit(&mut self, id: RequestId) {
        let Some(request) = self.session_writes.requests.get(&id).cloned() else {
            return;
        };
        let raft = self.raw.raft();
        match (raft.role(), raft.leader()) {
            (Role::Leader, _) => {
                let entry = self.stamped(&request);
                match self.raw.propose(entry) {
                    Ok((index, term)) => {
                        self.proposals.insert(index, (term, Origin::Local(id)));
                        self.event(Event::WriteResubmitted { id });
                    }
                    // Stepping down, or a transfer in progress: try again at a later tick.
                    Err(_) => self.session_writes.parked.push(id),
                }
            }
            (_, Some(leader)) if leader != self.id() => {
                self.forwarded.insert(id, leader);
                self.event(Event::WriteResubmitted { id });
                self.send(PeerMessage::Forward {
                    from: self.id(),
                    to: leader,
                    id,
                    request,
                });
            }
            _ => self.session_writes.parked.push(id),
        }
    }

    /// Sends the parked session writes again, once a leader is known.
    pub(super) fn resubmit_parked(&mut self) {
        if self.session_writes.parked.is_empty() {
            return;
        }
        let raft = self.raw.raft();
        if raft.role() != Role::Leader && raft.leader().is_none() {
            return;
        }
        for id in std::mem::take(&mut self.session_writes.parked) {
            self.resubmit(id);
        }
    }
}
