//! The Raft protocol for one node: roles, terms, elections and log replication.
//!
//! [`Raft`] reacts to ticks, messages and proposals by changing its state and queueing
//! messages; [`RawNode`](crate::RawNode) turns that into [`Ready`](crate::Ready) batches.
//! This file holds the role machine — the node's state, time, and the role changes; the
//! handlers live beside the state they use:
//! - `election`: asking for, granting and counting votes;
//! - `replication`: sending, accepting and committing entries;
//! - `proposal`: what the leader appends, and what it refuses;
//! - `reads` over `read_book` and `read_only`: ReadIndex and lease reads;
//! - `conf`, `transfer`, `snapshot`: membership changes, leadership transfer, snapshots;
//! - `step`: a message's way in, from the term rules to its handler;
//! - `timers`, `outbox`, `uncommitted`: the clock, the queued messages, the proposal budget.

mod conf;
mod election;
mod outbox;
mod proposal;
mod read_book;
mod read_only;
mod reads;
mod replication;
mod snapshot;
mod step;
mod timers;
mod transfer;
mod uncommitted;

use std::collections::BTreeMap;

use crate::config::Config;
use crate::log::RaftLog;
use crate::message::{Message, MessageBody};
use crate::progress::Progress;
use crate::storage::{LogStorage, SnapshotMeta};
use crate::tracker::ProgressTracker;
use crate::types::{EntryKind, HardState, LogIndex, NodeId, Role, SoftState, Term};
use outbox::Outbox;
pub use proposal::ProposeError;
use read_book::ReadBook;
pub use read_only::{ReadIndexError, ReadState};
use snapshot::SnapshotInbox;
pub use snapshot::{SnapshotChunk, SnapshotError};
pub use step::StepError;
use timers::Timers;
use transfer::Transfer;
pub use transfer::TransferError;
use uncommitted::UncommittedBytes;

/// One Raft node's protocol state (Figure 2).
#[derive(Debug)]
pub struct Raft<S> {
    id: NodeId,
    config: Config,
    /// Persistent: the latest term seen. Invariant: never decreases.
    term: Term,
    /// Persistent: whom this node voted for in `term`. Invariant: set at most once per term.
    vote: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    pub(crate) log: RaftLog<S>,
    /// The membership, each member's progress (leader) and the votes received (candidate).
    tracker: ProgressTracker,
    /// Leader only: the index of the last configuration change it proposed; another may be
    /// proposed only once this one is applied (one change at a time).
    pending_conf_index: LogIndex,
    /// The logical clock, the election and heartbeat timers, and the seeded randomness.
    timers: Timers,
    /// Messages for the next Ready: those that may leave at once, and those after persist.
    outbox: Outbox,
    /// Leader only: proposals not committed yet, bounded by `max_uncommitted_bytes`.
    uncommitted: UncommittedBytes,
    /// Leader only: new entries wait for the next Ready, so that many proposals share one append.
    broadcast_pending: bool,
    /// Reads in every stage: awaiting a commit or a round, the lease, answers for the Ready.
    reads: ReadBook,
    /// Leader only: the leadership transfer in course (thesis §3.10).
    transfer: Option<Transfer>,
    /// Candidate only: this election was started by the leader's TimeoutNow.
    campaign_is_transfer: bool,
    /// Follower: a snapshot being received, and what the next Ready must stage or install.
    snapshot_inbox: SnapshotInbox,
}

impl<S: LogStorage> Raft<S> {
    /// A node restarting from `hard_state` over the durable log in `log`.
    pub(crate) fn new(config: Config, log: RaftLog<S>, hard_state: HardState) -> Raft<S> {
        let mut raft = Raft {
            id: config.id,
            tracker: ProgressTracker::new(config.voters.iter().copied()),
            pending_conf_index: LogIndex(0),
            timers: Timers::new(config.seed, config.id),
            reads: ReadBook::new(config.max_pending_reads),
            config,
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            outbox: Outbox::default(),
            uncommitted: UncommittedBytes::default(),
            broadcast_pending: false,
            transfer: None,
            campaign_is_transfer: false,
            snapshot_inbox: SnapshotInbox::default(),
        };
        // After a restart, the membership is the snapshot's; later changes are applied again
        // with the entries that follow it.
        let snapshot = raft.log.storage().snapshot_meta();
        if snapshot.index.0 > 0 {
            raft.set_conf_state(&crate::membership::ConfState {
                voters: snapshot.voters,
                voters_outgoing: snapshot.voters_outgoing,
                learners: snapshot.learners,
            });
        }
        raft.reset_timers();
        raft
    }

    // ---- what the outside may read ----

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The vote cast in the current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The state that must be durable.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed(),
        }
    }

    /// Role and leader.
    pub fn soft_state(&self) -> SoftState {
        SoftState {
            role: self.role,
            leader: self.leader,
        }
    }

    /// The log.
    pub fn log(&self) -> &RaftLog<S> {
        &self.log
    }

    /// The membership and what this node knows of each member.
    pub fn tracker(&self) -> &ProgressTracker {
        &self.tracker
    }

    /// Leader only: what it knows of each member.
    pub fn progress(&self) -> &BTreeMap<NodeId, Progress> {
        self.tracker.progress()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Turns PreVote (thesis §9.6) on or off for this node's next elections. It changes only
    /// how this node campaigns; how it answers others' PreVotes and RequestVotes does not
    /// depend on it. For demonstrations of the disruption PreVote prevents (thesis §4.2.3).
    pub fn set_pre_vote(&mut self, on: bool) {
        self.config.pre_vote = on;
    }

    /// Ticks since the election timer was last reset.
    pub fn election_elapsed_ticks(&self) -> u64 {
        self.timers.election_elapsed_ticks()
    }

    /// The current randomized election timeout.
    pub fn randomized_election_timeout_ticks(&self) -> u64 {
        self.timers.randomized_election_timeout_ticks()
    }

    // ---- what the next Ready takes ----

    pub(crate) fn take_messages(&mut self) -> (Vec<Message>, Vec<Message>) {
        self.outbox.take()
    }

    pub(crate) fn has_pending_output(&self) -> bool {
        !self.outbox.is_empty()
            || self.broadcast_pending
            || self.reads.has_answers()
            || self.snapshot_inbox.has_output()
            || (self.role == Role::Leader && self.reads.needs_round())
    }

    pub(crate) fn take_snapshot_output(&mut self) -> (Vec<SnapshotChunk>, Option<SnapshotMeta>) {
        self.snapshot_inbox.take_output()
    }

    pub(crate) fn take_reads(&mut self) -> (Vec<ReadState>, Vec<u64>) {
        self.reads.take_answers()
    }

    // ---- time ----

    /// One tick of logical time.
    pub fn tick(&mut self) {
        self.timers.advance_clock();
        match self.role {
            Role::Leader => self.tick_heartbeat(),
            _ => self.tick_election(),
        }
    }

    fn tick_election(&mut self) {
        // §5.2: a follower that hears from no leader for a randomized timeout campaigns.
        if self.timers.tick_election() && self.is_voter() {
            self.campaign();
        }
    }

    fn tick_heartbeat(&mut self) {
        self.timers.tick_leader();
        self.tick_transfer();
        if self
            .timers
            .take_election_timeout(self.config.election_timeout_ticks)
        {
            // Thesis §6.2 (CheckQuorum): a leader that has not heard from a majority for an
            // election timeout steps down, so a partitioned leader stops serving.
            if self.config.check_quorum && !self.tracker.quorum_recently_active(self.id) {
                self.become_follower(self.term, None);
                return;
            }
        }
        if self
            .timers
            .take_heartbeat_due(self.config.heartbeat_interval_ticks)
        {
            self.start_read_round();
            self.broadcast_heartbeat(true);
        }
    }

    // ---- role changes ----

    fn reset_timers(&mut self) {
        self.timers.reset(self.config.election_timeout_ticks);
    }

    fn is_voter(&self) -> bool {
        self.tracker.is_voter(self.id)
    }

    /// Starts an election now (PreVote first when enabled), as if the timer had fired.
    pub fn campaign(&mut self) {
        if !self.is_voter() || self.role == Role::Leader {
            return;
        }
        // A committed configuration change not yet applied may remove this node or change the
        // quorum: it does not campaign until it knows the configuration it would lead.
        if self.has_unapplied_conf_change() {
            return;
        }
        // No election past the largest term peers accept (see `validate`): its messages would
        // be refused, and `term + 1` must never wrap.
        if self.term >= crate::validate::MAX_TERM {
            return;
        }
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate(false);
        }
    }

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        // Figure 2: the vote belongs to a term; only a new term clears it. Stepping down
        // within the same term must keep it, or the node could vote twice in one term.
        if term != self.term {
            assert!(
                term > self.term,
                "{}: term moved back from {} to {term}",
                self.id,
                self.term
            );
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.leave_role();
    }

    /// A message from `from`, the leader of this term, arrived: follow it and restart the
    /// election timer. Returns false on a leader, which ignores it (Election Safety: there is
    /// no other leader in its term).
    pub(crate) fn follow(&mut self, from: NodeId) -> bool {
        match self.role {
            Role::Leader => return false,
            Role::Candidate | Role::PreCandidate => self.become_follower(self.term, Some(from)),
            Role::Follower => self.leader = Some(from),
        }
        self.timers.restart_election();
        true
    }

    fn leave_role(&mut self) {
        self.abandon_reads();
        self.transfer = None;
        self.campaign_is_transfer = false;
        self.reset_timers();
        self.tracker.reset();
        self.uncommitted.clear();
        self.broadcast_pending = false;
    }

    fn become_pre_candidate(&mut self) {
        // Thesis §9.6: a pre-candidate keeps its term and vote; it only asks.
        self.role = Role::PreCandidate;
        self.leader = None;
        self.leave_role();
        self.tracker.record_vote(self.id, true);
        self.request_votes(true);
        self.check_election_result();
    }

    /// Raises the term and asks for votes; `transfer` marks an election the leader asked for.
    pub(crate) fn become_candidate(&mut self, transfer: bool) {
        self.term = self.term.next();
        self.vote = Some(self.id);
        self.role = Role::Candidate;
        self.leader = None;
        self.leave_role();
        self.campaign_is_transfer = transfer;
        // The candidate's own vote counts only once its term and vote are durable
        // (see `on_hard_state_persisted`): otherwise a crash could let it win this term twice.
        self.request_votes(false);
    }

    fn become_leader(&mut self) {
        assert_eq!(
            self.role,
            Role::Candidate,
            "{}: only a candidate becomes leader",
            self.id
        );
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.leave_role();
        self.tracker
            .start_leading(self.log.last_index().next(), self.inflight_limit());
        // A change of an earlier term may still be unapplied: none is proposed until it is.
        self.pending_conf_index = self.log.last_index();
        let persisted = self.log.persisted_index();
        if let Some(mine) = self.tracker.get_mut(self.id) {
            mine.maybe_update(persisted);
        }
        // §5.4.2 / thesis §6.4: a leader commits entries of earlier terms only by committing one
        // of its own, so it appends an empty entry at once.
        self.append_entry(EntryKind::Noop, Vec::new());
        self.broadcast_pending = true;
    }

    // ---- messages ----

    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.outbox.send(Message {
            from: self.id,
            to,
            term: self.term,
            body,
        });
    }
}
