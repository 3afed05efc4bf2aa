//! Re-submission of a client's writes in a session (thesis §6.3).
//!
//! A write that carries a client session may be proposed any number of times: the state
//! machine applies each `(client, sequence)` once and answers every later copy with the
//! first reply. So when a session write's outcome is lost to a leader change — it was
//! forwarded to a node that no longer leads or in an earlier term, its forward or reply
//! was dropped (see `node/forwards.rs`), its entry was replaced by a new leader's
//! ([`LEADER_CHANGED`](refusals::LEADER_CHANGED)), or a snapshot covered it
//! ([`OUTCOME_UNKNOWN`](refusals::OUTCOME_UNKNOWN)) — the node that took it from the client
//! sends the same request again to the current leader, and again, until it is applied or
//! the client stops waiting ([`Node::cancel`], the driver's request timeout). Without a
//! leader the write is parked and tried at each tick until one is known. A leader change
//! alone never answers a session write; only the driver's timeout says "may or may not".
//!
//! Once a write may be in the log (an attempt's outcome was lost), a refusal that means "not
//! proposed" (BUSY, a transfer, no leader) or that says only this copy was not applied (too
//! many client sessions) says nothing of the other copies, so it is never
//! the write's answer: the write is sent again at the next tick until it commits or the
//! client stops waiting. Every later copy carries the re-submitted flag, so a state machine
//! that forgot the session does not apply it as a first request. A write the state machine
//! refused as out of order (an earlier write of its session not yet applied) waits until
//! every earlier write of its client here is answered or cancelled, then goes again waiting
//! for nothing below it. Replies to an old attempt need no tag of their own: an applied
//! copy's reply is the same for every copy, and a "not proposed" one only sends the write
//! again.
//!
//! Writes without a session keep their answers: they may not be proposed twice.

use std::collections::{BTreeMap, BTreeSet};

use skiff_raft::Role;
use skiff_wal::Disk;

use super::{Node, Origin};
use crate::event::Event;
use crate::refusals;
use crate::state_machine::{ClientSession, StateMachine};
use crate::RequestId;

/// One session write waiting for its outcome.
#[derive(Debug)]
struct SessionWrite {
    /// The request bytes (unstamped) of its last attempt, shared with that attempt.
    request: bytes::Bytes,
    /// Its place in its client's session.
    session: ClientSession,
    /// How many times it was proposed or forwarded.
    attempts: u32,
    /// An attempt's outcome was lost: a copy may be in the log.
    maybe_in_log: bool,
}

/// The session writes of this node's clients that wait for their outcome, bounded by the
/// pending requests: each is also proposed, forwarded, parked or held.
#[derive(Debug, Default)]
pub(super) struct SessionWrites {
    /// Each write, by request id (ids grow with arrival, so this is the clients' order).
    requests: BTreeMap<RequestId, SessionWrite>,
    /// Writes waiting for a leader to be sent to, in the order they came.
    parked: Vec<RequestId>,
    /// Writes refused as out of order, waiting for their client's earlier writes here.
    held: BTreeSet<RequestId>,
}

/// What a reply to a session write's attempt means for the write.
enum Verdict {
    /// It is the write's answer.
    Answer,
    /// Its outcome was lost to a leader change: send it again now.
    Now,
    /// Not proposed, and a copy may be in the log: send it again at the next tick.
    NextTick,
    /// Refused as out of order: send it again once its client's earlier writes resolve.
    AfterEarlier,
}

impl SessionWrites {
    /// Remembers session write `id`: its request bytes, in `session`.
    pub(super) fn insert(&mut self, id: RequestId, request: bytes::Bytes, session: ClientSession) {
        let write = SessionWrite {
            request,
            session,
            attempts: 1,
            maybe_in_log: false,
        };
        self.requests.insert(id, write);
    }

    /// Forgets `id` (it was answered, or its client stopped waiting).
    pub(super) fn remove(&mut self, id: RequestId) {
        if self.requests.remove(&id).is_some() {
            self.parked.retain(|&parked| parked != id);
            self.held.remove(&id);
        }
    }

    /// Whether `id` is a session write waiting here.
    pub(super) fn contains(&self, id: RequestId) -> bool {
        self.requests.contains_key(&id)
    }

    /// How many wait here for a leader or for earlier writes (neither proposed nor
    /// forwarded).
    pub(super) fn waiting_len(&self) -> usize {
        self.parked.len() + self.held.len()
    }

    /// What `reply` to an attempt of write `id` means (`id` waits here).
    fn verdict<M: StateMachine>(&mut self, id: RequestId, reply: &M::Reply) -> Verdict {
        let Some(write) = self.requests.get_mut(&id) else {
            return Verdict::Answer;
        };
        let Some(text) = M::refusal_text(reply) else {
            return Verdict::Answer;
        };
        if text == refusals::LEADER_CHANGED || text == refusals::OUTCOME_UNKNOWN {
            write.maybe_in_log = true;
            Verdict::Now
        } else if text == refusals::OUT_OF_ORDER {
            Verdict::AfterEarlier
        } else if text == refusals::NO_LEADER
            || text == refusals::BUSY
            || refusals::is_leadership_moving(text)
            || text == refusals::TOO_MANY_SESSIONS
        {
            // §6.3: "not proposed" (or "not applied", for a session the state machine had no
            // room for) is true of this attempt only; another copy may still commit.
            if write.attempts > 1 || write.maybe_in_log {
                Verdict::NextTick
            } else {
                Verdict::Answer
            }
        } else {
            Verdict::Answer
        }
    }

    /// The held writes whose client has no earlier write waiting here, in order.
    fn releasable(&self) -> Vec<RequestId> {
        self.held
            .iter()
            .copied()
            .filter(|id| {
                let session = self.requests[id].session;
                !self.requests.values().any(|other| {
                    other.session.client_id == session.client_id
                        && other.session.sequence < session.sequence
                })
            })
            .collect()
    }
}

impl<D: Disk, M: StateMachine> Node<D, M> {
    /// Answers `origin` with a refusal that says the write's outcome was lost to a leader
    /// change (`text`); a session write of this node's client is sent again instead.
    pub(super) fn lost_outcome(&mut self, origin: Origin, text: &'static str) {
        self.reply(origin, M::refused(text.into()));
    }

    /// Takes `reply` to an attempt of this node's session write `id`: `None` when the write
    /// goes again instead, else the reply for its client.
    pub(super) fn session_reply(&mut self, id: RequestId, reply: M::Reply) -> Option<M::Reply> {
        match self.session_writes.verdict::<M>(id, &reply) {
            Verdict::Answer => return Some(reply),
            Verdict::Now => self.resubmit(id),
            Verdict::NextTick => self.session_writes.parked.push(id),
            Verdict::AfterEarlier => {
                self.session_writes.held.insert(id);
                self.release_held();
            }
        }
        None
    }

    /// Sends again the held writes whose client's earlier writes here are all resolved,
    /// waiting for nothing below them (the client has every earlier answer, or gave up).
    pub(super) fn release_held(&mut self) {
        for id in self.session_writes.releasable() {
            self.session_writes.held.remove(&id);
            let Some(write) = self.session_writes.requests.get_mut(&id) else {
                continue;
            };
            write.session.lowest_unanswered = write.session.sequence;
            self.resubmit(id);
        }
    }

    /// Sends session write `id` again: proposed here if this node leads, forwarded to the
    /// leader it knows, or parked until one is known. The copy says it may be a second one
    /// when an earlier attempt's outcome was lost.
    pub(super) fn resubmit(&mut self, id: RequestId) {
        let Some(write) = self.session_writes.requests.get_mut(&id) else {
            return;
        };
        // The copy carries the write's session as it is now: its floor (raised once its
        // client's earlier writes resolved) and whether a copy may be in the log.
        write.session.resubmitted = write.maybe_in_log;
        if let Ok((command, _)) = M::decode_command(&write.request) {
            write.request = M::encode_command(command, Some(write.session)).into();
        }
        let request = write.request.clone();
        let raft = self.raw.raft();
        match (raft.role(), raft.leader()) {
            (Role::Leader, _) => {
                let entry = self.stamped(&request);
                match self.raw.propose(entry) {
                    Ok((index, term)) => {
                        self.count_attempt(id);
                        self.proposals.insert(index, (term, Origin::Local(id)));
                        self.event(Event::WriteResubmitted {
                            id,
                            proposed_at: Some((index, term)),
                        });
                    }
                    // Stepping down, or a transfer in progress: try again at a later tick.
                    Err(_) => self.session_writes.parked.push(id),
                }
            }
            (_, Some(leader)) if leader != self.id() => {
                self.count_attempt(id);
                self.event(Event::WriteResubmitted {
                    id,
                    proposed_at: None,
                });
                self.forward(id, leader, request.to_vec());
            }
            _ => self.session_writes.parked.push(id),
        }
    }

    fn count_attempt(&mut self, id: RequestId) {
        if let Some(write) = self.session_writes.requests.get_mut(&id) {
            write.attempts = write.attempts.saturating_add(1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_kv::{Command, Reply};

    type Kv = skiff_kv::StateMachine;

    fn write(writes: &mut SessionWrites, id: u64, client_id: u64, sequence: u64) -> RequestId {
        let session = ClientSession {
            client_id,
            sequence,
            lowest_unanswered: 1,
            resubmitted: false,
            proposed_after: 0,
        };
        let command = Command::Incr { key: "n".into() };
        writes.insert(
            id,
            Kv::encode_command(command, Some(session)).into(),
            session,
        );
        id
    }

    fn refusal(text: &str) -> Reply {
        Kv::refused(text.to_string())
    }

    /// A "not proposed" refusal (BUSY, no leader, a transfer) or "too many client sessions"
    /// answers a write's first attempt; once an attempt's outcome was lost, a copy may be in
    /// the log (and a copy sent again may still start its session), so the same refusals
    /// only send it again. Reference: thesis §6.3.
    #[test]
    fn not_proposed_answers_only_a_write_with_no_copy_in_any_log() {
        let mut writes = SessionWrites::default();
        let id = write(&mut writes, 1, 7, 1);
        let not_proposed = [
            refusal(refusals::BUSY),
            refusal(refusals::NO_LEADER),
            refusal(&refusals::transferring(skiff_raft::NodeId(3))),
            refusal(refusals::TOO_MANY_SESSIONS),
        ];
        for reply in &not_proposed {
            assert!(matches!(writes.verdict::<Kv>(id, reply), Verdict::Answer));
        }
        let lost = refusal(refusals::OUTCOME_UNKNOWN);
        assert!(matches!(writes.verdict::<Kv>(id, &lost), Verdict::Now));
        for reply in &not_proposed {
            assert!(matches!(writes.verdict::<Kv>(id, reply), Verdict::NextTick));
        }
        assert!(matches!(
            writes.verdict::<Kv>(id, &Reply::Integer(4)),
            Verdict::Answer
        ));
    }

    /// A write refused as out of order waits until no earlier write of its client waits
    /// here; other clients' writes do not hold it. Reference: thesis §6.3.
    #[test]
    fn an_out_of_order_write_waits_for_its_clients_earlier_writes() {
        let mut writes = SessionWrites::default();
        let first = write(&mut writes, 1, 7, 1);
        let _other_client = write(&mut writes, 2, 8, 1);
        let second = write(&mut writes, 3, 7, 2);
        let out_of_order = refusal(refusals::OUT_OF_ORDER);
        assert!(matches!(
            writes.verdict::<Kv>(second, &out_of_order),
            Verdict::AfterEarlier
        ));
        writes.held.insert(second);
        assert!(writes.releasable().is_empty(), "write 1 of client 7 waits");
        writes.remove(first);
        assert_eq!(writes.releasable(), [second]);
    }
}
