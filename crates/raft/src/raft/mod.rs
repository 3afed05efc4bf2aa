//! The Raft protocol for one node: roles, terms, elections and log replication.
//!
//! [`Raft`] reacts to ticks, messages and proposals by changing its state and queueing
//! messages; [`RawNode`](crate::RawNode) turns that into [`Ready`](crate::Ready) batches.

mod conf;
mod read_only;
mod reads;
mod snapshot;
mod step;
mod transfer;

use std::collections::{BTreeMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::log::RaftLog;
use crate::message::{AppendResponse, Message, MessageBody};
use crate::progress::{Progress, ProgressState};
use crate::quorum::{JointConfig, VoteResult};
use crate::storage::{LogStorage, SnapshotMeta};
use crate::types::{Entry, EntryKind, HardState, LogIndex, NodeId, Role, SoftState, Term};
use read_only::ReadOnly;
pub use read_only::{ReadIndexError, ReadState};
pub use snapshot::{SnapshotChunk, SnapshotError};
pub use step::StepError;
pub use transfer::TransferError;

/// Why a proposal was refused. Nothing is queued: the caller decides whether to retry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader_hint: Option<NodeId>,
    },
    /// One entry must fit in one AppendEntries message.
    #[error("entry of {size_bytes} bytes exceeds max_message_bytes ({max_bytes})")]
    EntryTooLarge {
        /// The entry's size.
        size_bytes: u64,
        /// The configured limit.
        max_bytes: u64,
    },
    /// The leader is handing leadership over and accepts nothing meanwhile.
    #[error("leadership is being transferred to {to}")]
    TransferInProgress {
        /// The transfer target.
        to: NodeId,
    },
    /// A membership change is proposed only once the leader's no-op of its term has committed.
    #[error("the leader's first entry of its term has not committed yet")]
    ConfChangeTooEarly,
    /// One membership change at a time: the last one is not applied yet.
    #[error("the configuration change at {pending} is not applied yet")]
    ConfChangeInProgress {
        /// The index of the change in flight.
        pending: LogIndex,
    },
    /// A learner is promoted only once its log has caught up with the commit index.
    #[error("learner {learner} has not caught up yet")]
    LearnerNotCaughtUp {
        /// The learner.
        learner: NodeId,
    },
    /// The change does not apply to the configuration in force.
    #[error(transparent)]
    InvalidConfChange(#[from] crate::membership::ConfChangeError),
    /// Too many bytes are proposed and not yet committed.
    #[error("{uncommitted_bytes} uncommitted bytes already; limit is {max_bytes}")]
    UncommittedLimit {
        /// Bytes proposed and not yet committed.
        uncommitted_bytes: u64,
        /// The configured limit.
        max_bytes: u64,
    },
}

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
    voters: JointConfig,
    /// Members that receive the log but do not vote.
    learners: std::collections::BTreeSet<NodeId>,
    /// Leader only: the index of the last configuration change it proposed; another may be
    /// proposed only once this one is applied (one change at a time).
    pending_conf_index: LogIndex,
    /// Leader only: one entry per voter, this node included.
    progress: BTreeMap<NodeId, Progress>,
    /// (Pre-)candidate only: the answers received in this election.
    votes: BTreeMap<NodeId, bool>,
    election_elapsed_ticks: u64,
    heartbeat_elapsed_ticks: u64,
    randomized_election_timeout_ticks: u64,
    rng: ChaCha8Rng,
    /// Messages that may be sent at once.
    messages: Vec<Message>,
    /// Messages that promise durability (vote grants, append acceptances) and may only be sent
    /// once the hard state and entries of the same Ready are durable (thesis §3.8).
    persisted_messages: Vec<Message>,
    /// Leader only: (index, bytes) of this term's proposals that are not committed yet.
    uncommitted: VecDeque<(LogIndex, u64)>,
    uncommitted_bytes: u64,
    /// Leader only: new entries wait for the next Ready, so that many proposals share one append.
    broadcast_pending: bool,
    /// Ticks since this node started (the clock lease reads are measured on).
    ticks: u64,
    /// Leader only: reads waiting for a heartbeat round.
    read_only: ReadOnly,
    /// Leader only: reads that arrived before an entry of this term committed
    /// (thesis §6.4: until then the commit index may be behind an earlier leader's).
    /// Invariant: `reads_awaiting_commit.len() <= max_pending_reads`.
    reads_awaiting_commit: VecDeque<(u64, Option<NodeId>)>,
    /// Leader only: the tick each recent read round started, for lease reads.
    round_started_at: VecDeque<(u64, u64)>,
    /// Leader only: lease reads may be answered while `ticks` is below this.
    lease_until_tick: u64,
    /// Reads confirmed, for the next Ready.
    read_states: Vec<ReadState>,
    /// Reads refused (no leader, or the leader refused), for the next Ready.
    failed_reads: Vec<u64>,
    /// Leader only: the voter leadership is being handed to (thesis §3.10).
    lead_transferee: Option<NodeId>,
    /// Leader only: ticks since the transfer began; it is abandoned after an election timeout.
    transfer_elapsed_ticks: u64,
    /// Candidate only: this election was started by the leader's TimeoutNow.
    campaign_is_transfer: bool,
    /// Follower: the snapshot being received from the leader and the offset expected next.
    incoming_snapshot: Option<(SnapshotMeta, u64)>,
    /// Received snapshot chunks, for the next Ready to stage durably.
    snapshot_chunks: Vec<SnapshotChunk>,
    /// A fully received snapshot, for the next Ready to install.
    snapshot_to_install: Option<SnapshotMeta>,
}

impl<S: LogStorage> Raft<S> {
    /// A node restarting from `hard_state` over the durable log in `log`.
    pub(crate) fn new(config: Config, log: RaftLog<S>, hard_state: HardState) -> Raft<S> {
        let rng = ChaCha8Rng::seed_from_u64(
            config.seed ^ config.id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let config_max_pending_reads = config.max_pending_reads;
        let mut raft = Raft {
            id: config.id,
            voters: JointConfig::new(config.voters.iter().copied()),
            learners: Default::default(),
            pending_conf_index: LogIndex(0),
            config,
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed_ticks: 0,
            heartbeat_elapsed_ticks: 0,
            randomized_election_timeout_ticks: 0,
            rng,
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            uncommitted: VecDeque::new(),
            uncommitted_bytes: 0,
            broadcast_pending: false,
            ticks: 0,
            read_only: ReadOnly::new(config_max_pending_reads),
            reads_awaiting_commit: VecDeque::new(),
            round_started_at: VecDeque::new(),
            lease_until_tick: 0,
            read_states: Vec::new(),
            failed_reads: Vec::new(),
            lead_transferee: None,
            transfer_elapsed_ticks: 0,
            campaign_is_transfer: false,
            incoming_snapshot: None,
            snapshot_chunks: Vec::new(),
            snapshot_to_install: None,
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

    /// Leader only: what it knows of each voter.
    pub fn progress(&self) -> &BTreeMap<NodeId, Progress> {
        &self.progress
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Ticks since the election timer was last reset.
    pub fn election_elapsed_ticks(&self) -> u64 {
        self.election_elapsed_ticks
    }

    /// The current randomized election timeout.
    pub fn randomized_election_timeout_ticks(&self) -> u64 {
        self.randomized_election_timeout_ticks
    }

    pub(crate) fn take_messages(&mut self) -> (Vec<Message>, Vec<Message>) {
        (
            std::mem::take(&mut self.messages),
            std::mem::take(&mut self.persisted_messages),
        )
    }

    pub(crate) fn has_pending_output(&self) -> bool {
        !self.messages.is_empty()
            || !self.persisted_messages.is_empty()
            || self.broadcast_pending
            || !self.read_states.is_empty()
            || !self.failed_reads.is_empty()
            || !self.snapshot_chunks.is_empty()
            || self.snapshot_to_install.is_some()
            || (self.role == Role::Leader && self.read_only.needs_round())
    }

    pub(crate) fn take_snapshot_output(&mut self) -> (Vec<SnapshotChunk>, Option<SnapshotMeta>) {
        (
            std::mem::take(&mut self.snapshot_chunks),
            self.snapshot_to_install.take(),
        )
    }

    pub(crate) fn take_reads(&mut self) -> (Vec<ReadState>, Vec<u64>) {
        (
            std::mem::take(&mut self.read_states),
            std::mem::take(&mut self.failed_reads),
        )
    }

    // ---- time ----

    /// One tick of logical time.
    pub fn tick(&mut self) {
        self.ticks += 1;
        match self.role {
            Role::Leader => self.tick_heartbeat(),
            _ => self.tick_election(),
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed_ticks += 1;
        if self.election_elapsed_ticks >= self.randomized_election_timeout_ticks && self.is_voter()
        {
            self.campaign();
        }
    }

    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed_ticks += 1;
        self.election_elapsed_ticks += 1;
        self.tick_transfer();
        if self.election_elapsed_ticks >= self.config.election_timeout_ticks {
            self.election_elapsed_ticks = 0;
            // Thesis §6.2 (CheckQuorum): a leader that has not heard from a majority for an
            // election timeout steps down, so a partitioned leader stops serving.
            if self.config.check_quorum && !self.quorum_recently_active() {
                self.become_follower(self.term, None);
                return;
            }
        }
        if self.heartbeat_elapsed_ticks >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed_ticks = 0;
            self.start_read_round();
            self.broadcast_heartbeat();
        }
    }

    fn quorum_recently_active(&mut self) -> bool {
        let me = self.id;
        let active: Vec<NodeId> = self
            .progress
            .iter_mut()
            .filter_map(|(&id, progress)| (progress.take_recent_active() || id == me).then_some(id))
            .collect();
        self.voters.has_active_majority(|id| active.contains(&id))
    }

    // ---- role changes ----

    fn reset_timers(&mut self) {
        self.election_elapsed_ticks = 0;
        self.heartbeat_elapsed_ticks = 0;
        let timeout = self.config.election_timeout_ticks;
        self.randomized_election_timeout_ticks = self.rng.gen_range(timeout..2 * timeout);
    }

    fn is_voter(&self) -> bool {
        self.voters.contains(self.id)
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

    fn leave_role(&mut self) {
        self.abandon_reads();
        self.lead_transferee = None;
        self.campaign_is_transfer = false;
        self.reset_timers();
        self.votes.clear();
        self.progress.clear();
        self.uncommitted.clear();
        self.uncommitted_bytes = 0;
        self.broadcast_pending = false;
    }

    fn become_pre_candidate(&mut self) {
        // Thesis §9.6: a pre-candidate keeps its term and vote; it only asks.
        self.role = Role::PreCandidate;
        self.leader = None;
        self.leave_role();
        self.votes.insert(self.id, true);
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
        let next = self.log.last_index().next();
        for member in self
            .voters
            .voters()
            .into_iter()
            .chain(self.learners.iter().copied())
        {
            self.progress.insert(
                member,
                Progress::new(next, self.config.max_inflight_appends),
            );
        }
        // A change of an earlier term may still be unapplied: none is proposed until it is.
        self.pending_conf_index = self.log.last_index();
        let persisted = self.log.persisted_index();
        if let Some(mine) = self.progress.get_mut(&self.id) {
            mine.maybe_update(persisted);
        }
        // §5.4.2 / thesis §6.4: a leader commits entries of earlier terms only by committing one
        // of its own, so it appends an empty entry at once.
        self.append_entry(EntryKind::Noop, Vec::new());
        self.broadcast_pending = true;
    }

    fn request_votes(&mut self, pre_vote: bool) {
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        let term = if pre_vote {
            self.term.next()
        } else {
            self.term
        };
        let others: Vec<NodeId> = self
            .voters
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
            self.messages.push(Message {
                from: self.id,
                to,
                term,
                body,
            });
        }
    }

    fn record_vote(&mut self, from: NodeId, granted: bool) {
        self.votes.entry(from).or_insert(granted);
        self.check_election_result();
    }

    fn check_election_result(&mut self) {
        match self.voters.vote_result(&self.votes) {
            VoteResult::Won if self.role == Role::PreCandidate => self.become_candidate(false),
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => self.become_follower(self.term, None),
            VoteResult::Pending => {}
        }
    }

    /// Called once the hard state `persisted` is durable.
    pub(crate) fn on_hard_state_persisted(&mut self, persisted: HardState) {
        if self.role == Role::Candidate
            && persisted.term == self.term
            && persisted.vote == Some(self.id)
        {
            self.record_vote(self.id, true);
        }
    }

    /// Called once storage durably holds the log up to `index` at `term`.
    pub(crate) fn on_entries_persisted(&mut self, index: LogIndex, term: Term) {
        self.log.stable_to(index, term);
        if self.role != Role::Leader {
            return;
        }
        let persisted = self.log.persisted_index();
        let moved = self
            .progress
            .get_mut(&self.id)
            .is_some_and(|mine| mine.maybe_update(persisted));
        if moved {
            self.maybe_commit();
        }
    }

    // ---- messages ----

    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.messages.push(Message {
            from: self.id,
            to,
            term: self.term,
            body,
        });
    }

    fn handle_vote_request(
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
            self.messages.push(Message {
                from: self.id,
                to: from,
                term,
                body: MessageBody::PreVoteResponse { reject: false },
            });
            return;
        }
        self.vote = Some(from);
        self.election_elapsed_ticks = 0;
        // Thesis §3.8: the grant leaves only after the vote is durable.
        self.persisted_messages.push(Message {
            from: self.id,
            to: from,
            term: self.term,
            body: MessageBody::RequestVoteResponse { reject: false },
        });
    }

    fn handle_pre_vote_response(&mut self, from: NodeId, term: Term, reject: bool) {
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

    fn handle_append_response(&mut self, from: NodeId, read_round: u64, response: AppendResponse) {
        if self.role != Role::Leader {
            return;
        }
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.mark_active();
        // Any answer in this term, acceptance or rejection, shows `from` still follows us.
        self.read_round_answered(from, read_round);
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        match response {
            AppendResponse::Accepted { match_index } => {
                if match_index > self.log.last_index() {
                    return; // Not an answer to anything this leader sent.
                }
                let moved = progress.maybe_update(match_index);
                if !moved {
                    progress.heartbeat_answered();
                } else if progress.state() == ProgressState::Probe {
                    progress.become_replicate();
                }
                if moved {
                    self.maybe_commit();
                    self.maybe_send_timeout_now(from);
                }
                self.send_appends(from);
            }
            AppendResponse::Rejected {
                rejected_index,
                hint_index,
                hint_term,
            } => {
                let (probe_index, _) = self.log.find_conflict_by_term(hint_index, hint_term);
                if progress.maybe_decrease_to(rejected_index, probe_index.next()) {
                    self.send_appends(from);
                }
            }
        }
    }

    /// Moves the commit index to what a majority stores. Returns whether it moved.
    fn maybe_commit(&mut self) -> bool {
        let progress = &self.progress;
        let quorum_index = self
            .voters
            .committed_index(|id| progress.get(&id).map(Progress::match_index));
        // Figure 8 / §5.4.2: only entries of the current term are committed by counting replicas.
        if quorum_index <= self.log.committed() || self.log.term(quorum_index) != Some(self.term) {
            return false;
        }
        self.log.commit_to(quorum_index);
        while self
            .uncommitted
            .front()
            .is_some_and(|&(index, _)| index <= quorum_index)
        {
            let (_, bytes) = self.uncommitted.pop_front().expect("front checked");
            self.uncommitted_bytes -= bytes;
        }
        self.release_reads_awaiting_commit();
        true
    }

    // ---- replication ----

    /// Sends `to` as many appends as its progress allows.
    fn send_appends(&mut self, to: NodeId) {
        let last_index = self.log.last_index();
        loop {
            let Some(progress) = self.progress.get(&to) else {
                return;
            };
            if progress.is_paused() || progress.next_index() > last_index {
                return;
            }
            if !self.send_append(to, false) {
                return;
            }
        }
    }

    /// Sends one AppendEntries from `to`'s next index. Returns whether a message was sent.
    fn send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let Some(progress) = self.progress.get(&to) else {
            return false;
        };
        let next = progress.next_index();
        let prev_log_index = next.prev();
        let in_snapshot = matches!(progress.state(), ProgressState::Snapshot { .. });
        let Some(prev_log_term) = self.log.term(prev_log_index).filter(|_| !in_snapshot) else {
            // The entries this follower needs are compacted: it gets the snapshot instead.
            return self.send_snapshot(to);
        };
        // Thesis §10.2.1 (pipelining): a paused follower gets an empty heartbeat, so that no
        // more than `max_inflight_appends` appends are ever unanswered.
        let high = if progress.is_paused() {
            next
        } else {
            next.plus(self.config.max_append_entries as u64)
        };
        let entries = self
            .log
            .entries(next, high, self.config.max_message_bytes)
            .unwrap_or_else(|err| panic!("{}: entries from {next} unreadable: {err}", self.id));
        if entries.is_empty() && !allow_empty {
            return false;
        }
        let last_sent = prev_log_index.plus(entries.len() as u64);
        // §5.3: the follower may commit only what this request lets it verify.
        let leader_commit = self.log.committed().min(last_sent);
        let count = entries.len();
        let progress = self.progress.get_mut(&to).expect("progress checked above");
        progress.sent_append(last_sent, count);
        let read_round = self.read_only.current_round();
        self.send(
            to,
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                read_round,
            },
        );
        true
    }

    /// Leader only: every node it replicates to.
    fn followers(&self) -> Vec<NodeId> {
        self.progress
            .keys()
            .copied()
            .filter(|&id| id != self.id)
            .collect()
    }

    fn broadcast_heartbeat(&mut self) {
        let peers = self.followers();
        for to in peers {
            if let Some(progress) = self.progress.get_mut(&to) {
                progress.resend_snapshot_chunk();
            }
            self.send_append(to, true);
        }
    }

    /// Sends pending entries to every follower (called when a Ready is built).
    pub(crate) fn flush_broadcast(&mut self) {
        if self.role == Role::Leader && self.read_only.needs_round() {
            // Reads arrived since the last round: confirm leadership now rather than at the
            // next heartbeat. Every read registered so far shares this one round.
            self.start_read_round();
            self.broadcast_heartbeat();
        }
        if !std::mem::take(&mut self.broadcast_pending) {
            return;
        }
        let peers = self.followers();
        // A new commit index alone does not trigger a message: it rides on the next append
        // or heartbeat, which halves the messages of a lightly loaded cluster.
        for to in peers {
            self.send_appends(to);
        }
    }

    // ---- proposals ----

    /// Appends `data` to the leader's log. The entry goes out with the next Ready.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(LogIndex, Term), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader_hint: self.leader,
            });
        }
        if let Some(to) = self.lead_transferee {
            // Thesis §3.10: the leader stops accepting proposals while it hands over.
            return Err(ProposeError::TransferInProgress { to });
        }
        let size_bytes = crate::types::ENTRY_HEADER_BYTES + data.len() as u64;
        if size_bytes > self.config.max_message_bytes {
            return Err(ProposeError::EntryTooLarge {
                size_bytes,
                max_bytes: self.config.max_message_bytes,
            });
        }
        if !self.uncommitted.is_empty()
            && self.uncommitted_bytes + size_bytes > self.config.max_uncommitted_bytes
        {
            return Err(ProposeError::UncommittedLimit {
                uncommitted_bytes: self.uncommitted_bytes,
                max_bytes: self.config.max_uncommitted_bytes,
            });
        }
        let index = self.append_entry(EntryKind::Normal, data);
        self.uncommitted.push_back((index, size_bytes));
        self.uncommitted_bytes += size_bytes;
        self.broadcast_pending = true;
        Ok((index, self.term))
    }

    fn append_entry(&mut self, kind: EntryKind, data: Vec<u8>) -> LogIndex {
        let index = self.log.last_index().next();
        self.log.append(&[Entry {
            term: self.term,
            index,
            kind,
            data,
        }]);
        index
    }
}
