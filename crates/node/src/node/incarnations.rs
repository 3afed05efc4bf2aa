//! The amnesia guard: a member whose data directory is not the one the cluster recorded (its
//! disk was wiped or replaced, so it forgot its term and vote) is never counted.
//!
//! Thesis §3.8 (and the persistent state of Figure 2): a server must not forget its vote, or
//! it may vote twice in a term and let two leaders be elected. A wiped node cannot remember,
//! so the cluster must recognise it: every data directory holds a random incarnation
//! ([`skiff_wal::incarnation`]), every message carries its sender's ([`Envelope`]), and the
//! replicated [`MemberBook`](crate::payload::MemberBook) records each member's.
//!
//! - The leader records a member's incarnation the first time it hears from a member that
//!   has none recorded (a joining learner's first answer, or a founding member's), and the
//!   record is forgotten when the member is removed. Trust on first contact leaves one window:
//!   a founding member wiped before any leader heard from it is recorded as it comes back.
//! - [`Node::step`] refuses every message from a member whose recorded incarnation differs
//!   ([`PeerMessageError::WrongIncarnation`]): its votes, vote requests, PreVotes and append
//!   acknowledgements never reach the core. The refused node is told, at most once per
//!   election timeout per peer ([`PeerMessage::IncarnationRefused`]).
//! - A record takes effect on a node only once a durable commit index covers it, and a
//!   restarted node recovers the records its durable commit covers before it steps a
//!   message: a member that refused a wiped node still refuses it after its own crash.
//! - A node told it is refused stays out of elections: it neither campaigns nor lets its
//!   election timer run, for three election timeouts after each notice. It could not win
//!   anyway (its requests are refused before they reach any core, so they raise no one's
//!   term), but it would wake every few hundred milliseconds to try.

use std::collections::BTreeMap;

use skiff_raft::{ConfChange, ConfChangeStep, Entry, EntryKind, LogStorage, NodeId, Role, Term};
use skiff_wal::Disk;

use super::Node;
use crate::error::{NodeError, PeerMessageError};
use crate::event::Event;
use crate::payload::{MemberIncarnation, Payload, MEMBER_INCARNATION_TAG};
use crate::state_machine::StateMachine;
use crate::wire::{Envelope, PeerMessage};

/// How many election timeouts a notice keeps a refused node out of elections.
const REFUSED_FOR_ELECTION_TIMEOUTS: u64 = 3;

/// How many bytes of entries [`Node::recover_recorded_incarnations`] reads at a time.
const SCAN_CHUNK_BYTES: u64 = 1 << 20;

/// Whether `entry` is a [`MemberIncarnation`] record: it takes effect only once a durable
/// commit index covers it (see `driving.rs`).
pub(super) fn is_incarnation_record(entry: &Entry) -> bool {
    entry.kind == EntryKind::Normal && entry.data.first() == Some(&MEMBER_INCARNATION_TAG)
}

/// What a node keeps for the guard; none of it is durable.
#[derive(Debug, Default)]
pub(super) struct AmnesiaGuard {
    /// Ticks since the node opened: the clock of the rate limit and of a refusal's end.
    ticks: u64,
    /// Records this leader proposed, by member, with the term they were proposed in.
    recording: BTreeMap<NodeId, Term>,
    /// When a notice last went to each refused member (in `ticks`).
    notices_sent: BTreeMap<NodeId, u64>,
    /// A peer refused this node: until when (in `ticks`) it stays out of elections.
    refused_until: Option<u64>,
}

/// A peer's notice that this node's data directory is not the one the cluster recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncarnationNotice {
    /// The peer that refused this node.
    pub by: NodeId,
    /// This node's incarnation.
    pub incarnation: u64,
    /// The incarnation the cluster recorded for this node's id.
    pub recorded: u64,
}

impl<D: Disk, M: StateMachine> Node<D, M> {
    /// The incarnation of this node's data directory.
    pub fn incarnation(&self) -> u64 {
        self.raw.storage().incarnation()
    }

    /// The incarnations recorded in the replicated state, by member.
    pub fn member_incarnations(&self) -> &BTreeMap<NodeId, u64> {
        &self.members.incarnations
    }

    /// Whether a peer refused this node lately (its data directory is not the one recorded):
    /// it then stays out of elections.
    pub fn is_refused(&self) -> bool {
        self.guard
            .refused_until
            .is_some_and(|until| self.guard.ticks < until)
    }

    /// One tick of the guard's clock; whether the core may tick (not while refused, unless
    /// it leads).
    pub(super) fn guard_tick(&mut self) -> bool {
        self.guard.ticks += 1;
        if !self.members.incarnations.contains_key(&self.id()) {
            // A leader records itself too: it hears no message from itself.
            self.record_incarnation(self.id(), self.incarnation());
        }
        !self.is_refused() || self.raw.raft().role() == Role::Leader
    }

    /// Checks the sender's incarnation against the record: a mismatch is refused (and the
    /// sender told, rate-limited); a member without a record is recorded by the leader.
    pub(super) fn check_incarnation(
        &mut self,
        envelope: &Envelope,
    ) -> Result<(), PeerMessageError> {
        let from = envelope.from();
        if envelope.incarnation == 0 {
            return Err(PeerMessageError::NoIncarnation { from });
        }
        match self.members.incarnations.get(&from) {
            // §3.8: a member that lost its disk forgot its vote; nothing it says may count.
            Some(&recorded) if recorded != envelope.incarnation => {
                self.notify_refused(from, envelope.incarnation, recorded);
                Err(PeerMessageError::WrongIncarnation {
                    from,
                    found: envelope.incarnation,
                    recorded,
                })
            }
            Some(_) => Ok(()),
            None => {
                self.record_incarnation(from, envelope.incarnation);
                Ok(())
            }
        }
    }

    /// A peer's notice that it refuses this node.
    pub(super) fn on_refused(&mut self, by: NodeId, incarnation: u64, recorded: u64) {
        if incarnation != self.incarnation() {
            return; // About an earlier incarnation of this id: not this directory.
        }
        if !self.is_member(by) {
            return; // Only a member's refusal may keep this node out of elections.
        }
        let timeout = self.config.raft.election_timeout_ticks;
        if !self.is_refused() {
            self.event(Event::IncarnationRefused(IncarnationNotice {
                by,
                incarnation,
                recorded,
            }));
        }
        self.guard.refused_until = Some(self.guard.ticks + REFUSED_FOR_ELECTION_TIMEOUTS * timeout);
    }

    /// Applies a recorded incarnation: the first record of a member stands until it is removed.
    pub(super) fn apply_member_incarnation(&mut self, record: MemberIncarnation) {
        self.guard.recording.remove(&record.id);
        if self.members.incarnations.contains_key(&record.id) {
            return;
        }
        self.members
            .incarnations
            .insert(record.id, record.incarnation);
        self.event(Event::MemberIncarnationRecorded {
            id: record.id,
            incarnation: record.incarnation,
        });
    }

    /// At open, before any message is stepped: takes in the records and removals of the
    /// committed log after the snapshot, up to the durable commit index, so the node refuses
    /// a wiped member at once rather than after its first batch applies them again.
    pub(super) fn recover_recorded_incarnations(&mut self) -> Result<(), NodeError> {
        let wal = self.raw.storage();
        let end = wal.hard_state().commit.min(wal.last_index()).next();
        let mut next = self.applied.next();
        while next < end {
            let entries = self.raw.storage().entries(next, end, SCAN_CHUNK_BYTES)?;
            let Some(last) = entries.last() else {
                break;
            };
            next = last.index.next();
            for entry in &entries {
                if entry.kind == EntryKind::ConfChange {
                    self.forget_removed_incarnations(entry);
                } else if is_incarnation_record(entry) {
                    // An undecodable record stops the node when it is applied.
                    if let Ok(Payload::MemberIncarnation(record)) = Payload::decode(&entry.data) {
                        self.apply_member_incarnation(record);
                    }
                }
            }
        }
        Ok(())
    }

    /// Forgets the incarnations of members a configuration change removes: one added back
    /// later is a new member, recorded anew.
    pub(super) fn forget_removed_incarnations(&mut self, entry: &Entry) {
        let Ok(change) = ConfChange::decode(&entry.data) else {
            return;
        };
        for step in change.steps {
            if let ConfChangeStep::Remove(id) = step {
                self.members.incarnations.remove(&id);
            }
        }
    }

    /// The leader proposes a record for a member it heard from for the first time.
    fn record_incarnation(&mut self, from: NodeId, incarnation: u64) {
        let raft = self.raw.raft();
        let term = raft.term();
        // The cheap checks first: this runs on every tick of a node without its own record.
        if raft.role() != Role::Leader
            || self.guard.recording.get(&from) == Some(&term)
            || !self.is_member(from)
        {
            return;
        }
        let record = MemberIncarnation {
            id: from,
            incarnation,
        };
        if self.raw.propose(record.encode()).is_ok() {
            self.guard.recording.insert(from, term);
        }
    }

    /// Whether `id` is a voter (incoming or outgoing) or a learner of the configuration in force.
    fn is_member(&self, id: NodeId) -> bool {
        let conf = self.raw.raft().conf_state();
        conf.voters.contains(&id)
            || conf.voters_outgoing.contains(&id)
            || conf.learners.contains(&id)
    }

    /// Tells `to` that its messages are refused, at most once per election timeout.
    fn notify_refused(&mut self, to: NodeId, incarnation: u64, recorded: u64) {
        let now = self.guard.ticks;
        let timeout = self.config.raft.election_timeout_ticks;
        if let Some(&last) = self.guard.notices_sent.get(&to) {
            if now < last + timeout {
                return;
            }
        }
        self.guard.notices_sent.insert(to, now);
        self.send(PeerMessage::IncarnationRefused {
            from: self.id(),
            to,
            incarnation,
            recorded,
        });
    }
}
