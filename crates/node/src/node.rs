//! [`Node`]: the driver that owns the core, the durable log and the state machine.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use skiff_raft::{
    ConfChange, Entry, EntryKind, InvalidMessage, LogIndex, LogStorage, MessageBody, NodeId,
    ProposeError, RawNode, ReadIndexError, Role, SnapshotMeta, StepError, Term, TransferError,
};
use skiff_wal::{Disk, RecoveryReport, Wal};

use crate::config::NodeConfig;
use crate::decode_ahead::DecodedAhead;
use crate::effect::Effect;
use crate::error::{NodeError, PeerMessageError};
use crate::event::Event;
use crate::incoming_snapshot::{restore, IncomingSnapshot};
use crate::observer::Observer;
use crate::payload::{MemberAddress, MemberBook, NormalData, Payload};
use crate::refusals;
use crate::state_machine::{ClientSession, StateMachine};
use crate::wire::{Envelope, PeerMessage};

/// Committed entries the state machine is shown at a time before it applies them
/// ([`StateMachine::prefetch`]): enough for their loads to overlap, few enough that what
/// they load is still cached when their turn comes (8, 16 and 32 measured within a few per
/// cent of each other: round twenty-three in docs/benchmarks/rounds-21-and-later.md).
pub const APPLY_WINDOW: usize = 16;

mod driving;
mod forwards;
mod incarnations;
mod log_time;
mod replay;
mod resubmit;
mod snapshots;

use driving::{Stage, Writing};
use forwards::Forwards;
use incarnations::AmnesiaGuard;
pub use incarnations::IncarnationNotice;
use log_time::LogClock;
pub use replay::Replay;
use resubmit::SessionWrites;
use snapshots::LogGrowth;

/// The caller's id for one client request; the reply comes back with it.
pub type RequestId = u64;

/// Where a request came from, so its reply goes back there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// A client of this node.
    Local(RequestId),
    /// A client of a follower, forwarded here.
    Forwarded { from: NodeId, id: u64 },
}

/// One Skiff node: a Raft core, its durable log and a [`StateMachine`].
///
/// Inputs go in with [`tick`](Node::tick), [`step`](Node::step) and
/// [`submit`](Node::submit); everything the node asks in return comes out of
/// [`take_effects`](Node::take_effects) as [`Effect`]s. A driver sends the messages,
/// delivers the replies, notes the events, and carries out each I/O step where it likes,
/// handing back the step's token when it is done; [`begin_batch`](Node::begin_batch) starts
/// the next batch once the last one is synced. The order persist → send → apply → advance
/// is the node's: a driver cannot get it wrong. The same loop, every I/O step in line:
///
/// ```
/// use skiff_node::{Effect, NoObserver, Node, NodeConfig};
/// use skiff_raft::{Config, NodeId, Role};
/// use skiff_wal::MemDisk;
///
/// let config: NodeConfig = NodeConfig::new(Config::new(NodeId(1), [NodeId(1)]), 7);
/// let (mut node, _): (Node<MemDisk>, _) = Node::open(MemDisk::new(), "/data", config)?;
/// node.campaign();
/// loop {
///     let effects = node.take_effects();
///     if effects.is_empty() && !node.begin_batch() {
///         break;
///     }
///     for effect in effects {
///         match effect {
///             Effect::Send(_message) => {} // to `_message.to()`
///             Effect::Reply(_id, _reply) => {} // to the client that sent request `_id`
///             Effect::Event(_event) => {}
///             Effect::WriteBatch(token) => node.write_batch(token)?,
///             Effect::SyncBatch(token) => node.sync_batch(token, &mut NoObserver)?,
///             Effect::WriteSnapshot(job) => {
///                 node.write_snapshot(job)?;
///             }
///         }
///     }
/// }
/// assert_eq!(node.raw().raft().role(), Role::Leader);
/// # Ok::<(), skiff_node::NodeError>(())
/// ```
///
/// [`run`](Node::run) is this loop, for tests and simple embedders; the server syncs on a
/// writer thread instead (thesis §10.2.1), and the simulator runs each step in an event of
/// its own.
#[derive(Debug)]
pub struct Node<D: Disk, M: StateMachine = skiff_kv::StateMachine> {
    raw: RawNode<Wal<D>>,
    state_machine: M,
    /// Peer addresses and incarnations recorded in the log (and snapshots), by member.
    members: MemberBook,
    /// The amnesia guard's clock, records in flight and notices.
    guard: AmnesiaGuard,
    /// The wall clock the driver reports, and the last stamp in the log.
    clock: LogClock,
    config: NodeConfig<M::Config>,
    /// The last entry applied to the state machine (or covered by its snapshot).
    applied: LogIndex,
    /// The batch between `begin` and `finish`.
    writing: Option<Writing>,
    /// Proposed writes by index, with the term they were proposed in.
    proposals: BTreeMap<LogIndex, (Term, Origin)>,
    /// Reads waiting for a leader to confirm a read index; the read's context is its
    /// request id.
    reads: HashMap<RequestId, M::Command>,
    /// Confirmed reads waiting for the state machine to reach their index.
    confirmed_reads: BTreeMap<LogIndex, Vec<(RequestId, M::Command)>>,
    confirmed_read_count: usize,
    /// This node's writes forwarded to a leader, waiting for its reply.
    forwards: Forwards,
    /// This node's clients' writes in a session, sent again when a leader change loses
    /// their outcome.
    session_writes: SessionWrites,
    /// The snapshot coming in from the leader: what is staged, and what verified.
    incoming_snapshot: IncomingSnapshot<M>,
    /// The number of the last batch begun: its tokens carry it.
    batches: u64,
    /// The snapshot file being written by the driver, by number, if one is.
    snapshot_in_flight: Option<u64>,
    /// The number of the last snapshot handed out.
    snapshots: u64,
    /// The applied index when the last snapshot file was finished (written or not): the
    /// next scheduled one waits half a period after it, however long that one took.
    snapshot_finished_at: u64,
    /// The log written since the last snapshot, for the expansion factor.
    log_growth: LogGrowth,
    /// A scheduled snapshot the expansion factor held back is looked at again from here (a
    /// phase point of this node's).
    snapshot_deferred_to: u64,
    /// An operator asked for a snapshot: taken once no batch or snapshot is in flight.
    snapshot_requested: bool,
    /// What the driver has yet to take.
    effects: Vec<Effect<M::Reply>>,
    /// The candidate of a planned leadership transfer (thesis §3.10) and its election's term:
    /// while this node knows no leader in that term, clients hear that leadership is moving
    /// rather than that the cluster may have lost its quorum.
    moving_to: Option<TransferNote>,
    /// While the log is applied again at start-up, the commands a reader decoded ahead.
    decoded_ahead: Option<Arc<DecodedAhead<M::Command>>>,
}

/// A planned transfer's election this node heard of, kept for one election timeout.
#[derive(Clone, Copy, Debug)]
struct TransferNote {
    candidate: NodeId,
    term: Term,
    /// Ticks until the note is dropped: a transfer not done within an election timeout is
    /// abandoned (thesis §3.10), so silence after that may be a lost quorum.
    ticks_left: u64,
}

impl<D: Disk, M: StateMachine> Node<D, M> {
    /// Opens the node's durable state in `dir` on `disk` (creating it for a new node) and
    /// restores the state machine from its snapshot. The log's recovery report says what
    /// recovery found and did.
    pub fn open(
        disk: D,
        dir: impl Into<std::path::PathBuf>,
        config: NodeConfig<M::Config>,
    ) -> Result<(Node<D, M>, RecoveryReport), NodeError> {
        Self::open_with_progress(disk, dir, config, &mut |_| {})
    }

    /// [`Node::open`], reporting the log's recovery after each segment read.
    pub fn open_with_progress(
        disk: D,
        dir: impl Into<std::path::PathBuf>,
        config: NodeConfig<M::Config>,
        progress: &mut dyn FnMut(skiff_wal::RecoveryProgress),
    ) -> Result<(Node<D, M>, RecoveryReport), NodeError> {
        let (mut node, report) = Self::open_unrecovered(disk, dir, config, progress)?;
        node.recover_recorded_incarnations()?;
        Ok((node, report))
    }

    /// Opens the node's durable state and restores the snapshot, without taking in the
    /// incarnations recorded in the log after it: the caller does that, or applies the
    /// entries holding them, before the node steps a message.
    fn open_unrecovered(
        disk: D,
        dir: impl Into<std::path::PathBuf>,
        mut config: NodeConfig<M::Config>,
        progress: &mut dyn FnMut(skiff_wal::RecoveryProgress),
    ) -> Result<(Node<D, M>, RecoveryReport), NodeError> {
        // An empty state machine checks the settings before anything is opened.
        let empty = M::new(&config.state_machine).map_err(|e| NodeError::Config(e.to_string()))?;
        let (wal, report) = Wal::open_with_progress(disk, dir, config.wal, progress)?;
        let meta = wal.snapshot_meta();
        let (state_machine, members) = if meta.index == LogIndex(0) {
            (empty, MemberBook::default())
        } else {
            let data = wal.snapshot_chunk(0, wal.snapshot_len())?;
            restore(&config.state_machine, meta.index, &data)?
        };
        // The state machine holds exactly the snapshot: every later committed entry is
        // applied again from the log.
        config.raft.applied = meta.index;
        let hard_state = wal.hard_state();
        let raw = RawNode::new(config.raft.clone(), wal, hard_state)?;
        let node = Node {
            raw,
            state_machine,
            members,
            guard: AmnesiaGuard::default(),
            clock: LogClock::default(),
            config,
            applied: meta.index,
            writing: None,
            proposals: BTreeMap::new(),
            reads: HashMap::new(),
            confirmed_reads: BTreeMap::new(),
            confirmed_read_count: 0,
            forwards: Forwards::default(),
            session_writes: SessionWrites::default(),
            incoming_snapshot: IncomingSnapshot::default(),
            batches: 0,
            snapshot_in_flight: None,
            snapshots: 0,
            snapshot_finished_at: 0,
            log_growth: LogGrowth::default(),
            snapshot_deferred_to: 0,
            snapshot_requested: false,
            effects: Vec::new(),
            moving_to: None,
            decoded_ahead: None,
        };
        Ok((node, report))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.raft.id
    }

    /// One tick of logical time. A leader whose state machine has a deadline that the wall
    /// clock ([`set_wall_clock_ms`](Node::set_wall_clock_ms)) has passed proposes an entry
    /// carrying only the time.
    pub fn tick(&mut self) {
        if self.guard_tick() {
            self.raw.tick();
        }
        self.age_transfer_note();
        self.propose_time_if_due();
        self.resubmit_parked();
        self.resend_overdue_forwards();
    }

    /// Starts an election now (PreVote first when enabled), as if the election timer had fired.
    /// Not while a peer refuses this node's data directory ([`Node::is_refused`]).
    pub fn campaign(&mut self) {
        if !self.is_refused() {
            self.raw.campaign();
        }
    }

    /// Takes a client command. Its reply comes out as an [`Effect::Reply`] under `id`:
    /// - a write is proposed here if this node leads, or forwarded to the leader; the reply
    ///   comes once it is committed and applied;
    /// - a read is served once a leader confirmed a read index and this node's state machine
    ///   reached it (ReadIndex, thesis §6.4), so it is linearizable on every node.
    pub fn submit(&mut self, id: RequestId, command: M::Command) {
        self.submit_in_session(id, command, None);
    }

    /// [`submit`](Node::submit) for a client with an exactly-once session (thesis §6.3): a
    /// write carries `session` through forwarding and the log to the state machine, which
    /// applies each `(client_id, sequence)` once and answers a retry with its first reply.
    /// So when a leader change loses the write's outcome, the node sends it again to the
    /// current leader until it is applied or [`cancel`](Node::cancel)led (see
    /// `node/resubmit.rs`), in the order its client sent it relative to its client's other
    /// writes here. The write carries the commit index known now
    /// ([`ClientSession::proposed_after`], whatever the caller put there), so a copy sent
    /// again to a state machine that never knew the session (the first copy was lost with a
    /// leader's uncommitted tail) is applied as a first request. Its reply says "may or may
    /// not have been applied" only when the state machine does not know the session of a
    /// copy sent again and forgot a session active after that index (it may have applied an
    /// earlier copy and forgotten the session since), or when the caller stops waiting.
    pub fn submit_in_session(
        &mut self,
        id: RequestId,
        command: M::Command,
        session: Option<ClientSession>,
    ) {
        if self.pending_requests() >= self.config.max_pending_requests {
            self.reply(Origin::Local(id), M::refused(refusals::BUSY.into()));
            return;
        }
        if M::is_read_only(&command) {
            match self.raw.read_index(id) {
                Ok(()) => {
                    self.reads.insert(id, command);
                }
                Err(ReadIndexError::NoLeader) => {
                    self.reply(Origin::Local(id), self.no_leader_refusal())
                }
                Err(ReadIndexError::TooManyPending { .. }) => {
                    self.reply(Origin::Local(id), M::refused(refusals::BUSY.into()))
                }
            }
        } else {
            // §5.4: any leader that appends this write holds every entry committed now, so
            // every copy of it sits above this index; copies sent again keep it.
            let committed = self.raw.raft().log().committed().0;
            let session = session.map(|session| ClientSession {
                proposed_after: committed,
                ..session
            });
            // Shared, not copied, with the session's record of it (a value may be large).
            let request = bytes::Bytes::from(M::encode_command(command, session));
            if let Some(session) = session {
                self.session_writes.insert(id, request.clone(), session);
            }
            self.propose(Origin::Local(id), request);
        }
    }

    /// Forgets a request whose caller stopped waiting (it timed out or disconnected). A write
    /// already proposed may still be applied.
    pub fn cancel(&mut self, id: RequestId) {
        if self.session_writes.contains(id) {
            self.session_writes.remove(id);
            // Its client stopped waiting: its later writes need not wait for it.
            self.release_held();
        }
        self.reads.remove(&id);
        self.forwards.remove(id);
        self.proposals
            .retain(|_, (_, origin)| *origin != Origin::Local(id));
        let mut removed = 0;
        self.confirmed_reads.retain(|_, waiting| {
            let before = waiting.len();
            waiting.retain(|(request, _)| *request != id);
            removed += before - waiting.len();
            !waiting.is_empty()
        });
        self.confirmed_read_count -= removed;
    }

    /// Handles a message from another node. A message no honest peer sends is refused at once
    /// with a [`PeerMessageError`] naming what was wrong, and nothing of it reaches the core,
    /// the state machine or the disk: a Raft message that fails [`skiff_raft::validate()`] or
    /// that the core refuses, and the last chunk of a snapshot that does not restore as a
    /// state machine (checked before the snapshot can replace the durable one). So is every
    /// message from a member whose data directory is not the one recorded
    /// ([`PeerMessageError::WrongIncarnation`], see `node/incarnations.rs`). Other
    /// mis-addressed messages are dropped.
    pub fn step(&mut self, envelope: Envelope) -> Result<(), PeerMessageError> {
        if envelope.from().0 == 0 || envelope.to().0 == 0 {
            let field = if envelope.from().0 == 0 { "from" } else { "to" };
            return Err(StepError::from(InvalidMessage::ZeroNodeId { field }).into());
        }
        // §3.8: a member that forgot its vote must not be counted.
        self.check_incarnation(&envelope)?;
        match envelope.message {
            PeerMessage::IncarnationRefused {
                from,
                to,
                incarnation,
                recorded,
            } => {
                if to == self.id() {
                    self.on_refused(from, incarnation, recorded);
                }
                Ok(())
            }
            PeerMessage::Raft(message) => {
                skiff_raft::validate(&message).map_err(StepError::from)?;
                // Every normal entry a build writes opens with its payload's tag or version
                // (the leader's no-op is `EntryKind::Noop`): an empty one is forged, and
                // committed it would stop the apply (§5.3 forbids skipping it).
                if let MessageBody::AppendEntries { entries, .. } = &message.body {
                    if let Some(empty) = entries
                        .iter()
                        .find(|e| e.kind == EntryKind::Normal && e.data.is_empty())
                    {
                        return Err(PeerMessageError::EmptyEntry {
                            from: message.from,
                            index: empty.index,
                        });
                    }
                }
                if let MessageBody::InstallSnapshot {
                    meta,
                    offset,
                    data,
                    done: true,
                } = &message.body
                {
                    let chunks_in_flight = matches!(
                        &self.writing,
                        Some(Writing { ready, stage: Stage::Begun, .. }) if !ready.snapshot_chunks.is_empty()
                    );
                    self.incoming_snapshot.check_last_chunk(
                        &self.raw,
                        chunks_in_flight,
                        &self.config.state_machine,
                        message.from,
                        message.term,
                        meta,
                        *offset,
                        data,
                    )?;
                }
                let transfer_election = match &message.body {
                    MessageBody::RequestVote {
                        leadership_transfer: true,
                        ..
                    } => Some((message.from, message.term)),
                    MessageBody::TimeoutNow => Some((self.id(), message.term.next())),
                    _ => None,
                };
                self.raw.step(message)?;
                if let Some(moving) = transfer_election {
                    self.note_transfer_election(moving);
                }
                Ok(())
            }
            PeerMessage::Forward {
                from,
                to,
                id,
                request,
            } => {
                if to != self.id() {
                    return Ok(());
                }
                let origin = Origin::Forwarded { from, id };
                if self.pending_requests() >= self.config.max_pending_requests {
                    self.reply(origin, M::refused(refusals::BUSY.into()));
                } else if let Err(error) = M::decode_command(&request) {
                    self.reply(
                        origin,
                        M::refused(format!("ERR malformed request: {error}")),
                    );
                } else {
                    self.propose(origin, request.into());
                }
                Ok(())
            }
            PeerMessage::ForwardReply {
                from,
                to,
                id,
                reply,
            } => {
                // Only the leader the write was last sent to answers it.
                if to != self.id() || self.forwards.leader_of(id) != Some(from) {
                    return Ok(());
                }
                self.forwards.remove(id);
                let reply = M::decode_reply(&reply).unwrap_or_else(|error| {
                    M::refused(format!("ERR malformed reply from the leader: {error}"))
                });
                // A session write may go again instead (see `node/resubmit.rs`).
                self.reply(Origin::Local(id), reply);
                Ok(())
            }
        }
    }

    /// Hands leadership to `to` (thesis §3.10).
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError> {
        self.raw.transfer_leadership(to)
    }

    /// Proposes a membership change; the reply under `id` comes once it is applied.
    pub fn propose_conf_change(&mut self, id: RequestId, change: ConfChange) {
        match self.raw.propose_conf_change(change) {
            Ok((index, term)) => {
                self.proposals.insert(index, (term, Origin::Local(id)));
            }
            Err(error) => self.reply(Origin::Local(id), propose_error_reply::<M>(&error)),
        }
    }

    /// Records `id`'s peer address in the log, before the node is added to the cluster; the
    /// reply under `request` comes once it is applied. Only the leader takes it.
    pub fn propose_member_address(&mut self, request: RequestId, id: NodeId, addr: String) {
        if self.raw.raft().role() != Role::Leader {
            self.reply(
                Origin::Local(request),
                M::refused(refusals::NO_LEADER.into()),
            );
            return;
        }
        match self.raw.propose(MemberAddress { id, addr }.encode()) {
            Ok((index, term)) => {
                self.proposals.insert(index, (term, Origin::Local(request)));
            }
            Err(error) => self.reply(Origin::Local(request), propose_error_reply::<M>(&error)),
        }
    }

    /// Peer addresses recorded in the log, by member (members of the initial configuration
    /// are known from the configuration instead).
    pub fn member_addresses(&self) -> &BTreeMap<NodeId, String> {
        &self.members.addresses
    }

    /// Requests waiting on this node.
    pub fn pending_requests(&self) -> usize {
        self.proposals.len()
            + self.reads.len()
            + self.confirmed_read_count
            + self.forwards.len()
            + self.session_writes.waiting_len()
    }

    /// Turns PreVote (thesis §9.6) on or off for this node's next elections: demonstrations
    /// of the disruption it prevents (thesis §4.2.3).
    pub fn set_pre_vote(&mut self, on: bool) {
        self.raw.set_pre_vote(on);
    }

    /// The Raft core, for status.
    pub fn raw(&self) -> &RawNode<Wal<D>> {
        &self.raw
    }

    /// The durable log.
    pub fn wal(&self) -> &Wal<D> {
        self.raw.storage()
    }

    /// The key-value state machine.
    pub fn state_machine(&self) -> &M {
        &self.state_machine
    }

    /// The state machine, for side channels that are not replicated state (taking the
    /// keyspace events it recorded, turning their recording on). Changing what it applies
    /// through this breaks replication.
    pub fn state_machine_mut(&mut self) -> &mut M {
        &mut self.state_machine
    }

    /// The last index applied to the state machine.
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// The disk, for fault injection: the simulator makes its syncs fail to stop a node in
    /// the middle of a write. Writing to it behind the log's back breaks the log.
    pub fn disk_mut(&mut self) -> &mut D {
        self.raw.storage_mut().disk_mut()
    }

    /// Stops the node and gives its disk back, as a crash does: a batch between `begin` and
    /// `finish` is lost.
    pub fn into_disk(self) -> D {
        self.raw.into_storage().into_disk()
    }

    fn propose(&mut self, origin: Origin, request: bytes::Bytes) {
        let raft = self.raw.raft();
        if raft.role() != Role::Leader {
            // A follower hands its own client's write to the leader; a forwarded write is
            // not forwarded again.
            match (origin, raft.leader()) {
                (Origin::Local(id), Some(leader)) if leader != self.id() => {
                    self.forward(id, leader, request.to_vec());
                }
                // A write forwarded to a node that no longer leads (a transfer or an election
                // moved leadership while it was on its way): not proposed, and the cluster
                // has a leader, so its client retries rather than hears the cluster is down.
                (Origin::Forwarded { .. }, Some(leader)) if leader != self.id() => {
                    self.reply(origin, M::refused(refusals::transferring(leader)));
                }
                _ => {
                    let refusal = self.no_leader_refusal();
                    self.reply(origin, refusal);
                }
            }
            return;
        }
        let entry = self.stamped(&request);
        match self.raw.propose(entry) {
            Ok((index, term)) => {
                self.proposals.insert(index, (term, origin));
            }
            Err(error) => self.reply(origin, propose_error_reply::<M>(&error)),
        }
    }

    /// Hands out a message, in an envelope with this node's incarnation.
    fn send(&mut self, message: PeerMessage) {
        let incarnation = self.incarnation();
        self.effects
            .push(Effect::Send(Envelope::new(incarnation, message)));
    }

    fn reply(&mut self, origin: Origin, reply: M::Reply) {
        match origin {
            Origin::Local(id) if self.session_writes.contains(id) => {
                if let Some(reply) = self.session_reply(id, reply) {
                    self.session_writes.remove(id);
                    self.effects.push(Effect::Reply(id, reply));
                    self.release_held();
                }
            }
            Origin::Local(id) => self.effects.push(Effect::Reply(id, reply)),
            Origin::Forwarded { from, id } => self.send(PeerMessage::ForwardReply {
                from: self.id(),
                to: from,
                id,
                reply: M::encode_reply(&reply),
            }),
        }
    }

    /// Applies `entries` in log order (those applied already are skipped), [`APPLY_WINDOW`]
    /// at a time: before a window's first entry is applied, the state machine is shown the
    /// client requests of the whole window ([`StateMachine::prefetch`]), so that what they
    /// touch loads while the earlier ones apply. What is applied, and in what order, is the
    /// same as one by one.
    pub(super) fn apply_entries(
        &mut self,
        entries: &[Entry],
        observer: &mut impl Observer<M>,
    ) -> Result<(), NodeError> {
        let from = entries.partition_point(|entry| entry.index <= self.applied);
        for window in entries[from..].chunks(APPLY_WINDOW) {
            let normal = window
                .iter()
                .filter(|entry| entry.kind == EntryKind::Normal);
            let requests = normal.filter_map(|entry| match NormalData::of(&entry.data) {
                NormalData::Request { request, .. } => Some(request),
                _ => None,
            });
            self.state_machine.prefetch(requests);
            for entry in window {
                self.apply(entry, observer)?;
            }
        }
        Ok(())
    }

    /// Applies one committed entry and answers the request that proposed it, if it waits here.
    /// An entry this build cannot decode is not applied, and stops the node
    /// ([`NodeError::UndecodableEntry`]).
    pub(super) fn apply(
        &mut self,
        entry: &Entry,
        observer: &mut impl Observer<M>,
    ) -> Result<(), NodeError> {
        debug_assert!(
            entry.index > self.applied,
            "entries are applied once, in order"
        );
        let reply = match entry.kind {
            EntryKind::Normal => Some(self.apply_normal(entry)?),
            EntryKind::ConfChange => {
                self.forget_removed_incarnations(entry);
                self.event(Event::ConfChangeApplied { index: entry.index });
                None
            }
            EntryKind::Noop => None,
        };
        self.applied = entry.index;
        self.log_growth.applied(entry);
        observer.applied(entry, reply.as_ref());
        observer.state_reached(entry.index, &self.state_machine);
        // Requests proposed at earlier indexes can no longer be answered by their own entry.
        while let Some((&index, _)) = self.proposals.first_key_value() {
            if index >= entry.index {
                break;
            }
            let (_, (_, origin)) = self.proposals.pop_first().expect("checked non-empty");
            self.lost_outcome(origin, refusals::OUTCOME_UNKNOWN);
        }
        if let Some((term, origin)) = self.proposals.remove(&entry.index) {
            // §5.3: the entry at the proposal's index is the proposal only if its term
            // matches: otherwise a new leader replaced it (Log Matching), and it was not
            // applied.
            if term == entry.term {
                self.reply(origin, reply.unwrap_or_else(M::done));
            } else {
                self.lost_outcome(origin, refusals::LEADER_CHANGED);
            }
        }
        Ok(())
    }

    /// Applies a normal entry: a client's command (stamped with its log time, or not if
    /// written before stamps), the log time alone, or a member's address or incarnation.
    fn apply_normal(&mut self, entry: &Entry) -> Result<M::Reply, NodeError> {
        let undecodable = |reason: String| NodeError::UndecodableEntry {
            index: entry.index,
            reason,
        };
        let ahead = self.decoded_ahead.as_ref();
        if let Some(decoded) = ahead.and_then(|a| a.take(entry.index, entry.term)) {
            return Ok(self.state_machine.apply(
                entry.index,
                decoded.command,
                decoded.session,
                decoded.log_time_ms,
            ));
        }
        match NormalData::of(&entry.data) {
            NormalData::Request {
                request,
                log_time_ms,
            } => match M::decode_command(request) {
                Ok((command, session)) => {
                    Ok(self
                        .state_machine
                        .apply(entry.index, command, session, log_time_ms))
                }
                Err(error) => Err(undecodable(error.to_string())),
            },
            NormalData::Time(log_time_ms) => {
                self.state_machine.pass_time(entry.index, log_time_ms);
                Ok(M::done())
            }
            NormalData::Member => match Payload::decode(&entry.data) {
                Ok(Payload::MemberAddress(MemberAddress { id, addr })) => {
                    self.members.addresses.insert(id, addr);
                    self.event(Event::MemberAddressRecorded { id });
                    Ok(M::done())
                }
                Ok(Payload::MemberIncarnation(record)) => {
                    self.apply_member_incarnation(record);
                    Ok(M::done())
                }
                Ok(Payload::Request(_) | Payload::Stamped { .. }) => {
                    unreachable!("the tag is a member record's")
                }
                Err(error) => Err(undecodable(error.to_string())),
            },
            NormalData::BadStamp(error) => Err(undecodable(error.to_string())),
        }
    }

    /// Replaces the state machine with the snapshot just installed.
    fn restore_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), NodeError> {
        (self.state_machine, self.members) = match self.incoming_snapshot.take_verified(meta) {
            Some(verified) => verified,
            None => {
                let wal = self.raw.storage();
                let data = wal.snapshot_chunk(0, wal.snapshot_len())?;
                restore(&self.config.state_machine, meta.index, &data)?
            }
        };
        self.applied = meta.index;
        self.log_growth.snapshot_restored();
        // Writes the snapshot covers may or may not be in it.
        let covered: Vec<LogIndex> = self
            .proposals
            .range(..=meta.index)
            .map(|(i, _)| *i)
            .collect();
        for index in covered {
            if let Some((_, origin)) = self.proposals.remove(&index) {
                self.lost_outcome(origin, refusals::OUTCOME_UNKNOWN);
            }
        }
        self.event(Event::SnapshotInstalled { index: meta.index });
        Ok(())
    }

    /// Serves every confirmed read whose index the state machine has reached.
    fn serve_confirmed_reads(&mut self) {
        while let Some(entry) = self.confirmed_reads.first_entry() {
            if *entry.key() > self.applied {
                break;
            }
            for (id, command) in entry.remove() {
                self.confirmed_read_count -= 1;
                let reply = self.state_machine.read_at(&command, self.wall_clock_ms());
                self.effects.push(Effect::Reply(id, reply));
            }
        }
    }
}

impl<D: Disk, M: StateMachine> Node<D, M> {
    /// Remembers the candidate of a planned transfer's election if this node is now in its
    /// term (a stale or refused vote request leaves the term, and the note, alone), for the
    /// longest randomized election timeout.
    fn note_transfer_election(&mut self, (candidate, term): (NodeId, Term)) {
        if self.raw.raft().term() == term {
            self.moving_to = Some(TransferNote {
                candidate,
                term,
                ticks_left: 2 * self.config.raft.election_timeout_ticks,
            });
        }
    }

    /// One tick of the transfer note's life: after an election timeout the transfer is
    /// abandoned (thesis §3.10), so a node that still knows no leader says so plainly.
    fn age_transfer_note(&mut self) {
        if let Some(note) = &mut self.moving_to {
            note.ticks_left = note.ticks_left.saturating_sub(1);
            if note.ticks_left == 0 {
                self.moving_to = None;
            }
        }
    }

    /// The refusal of a request when no leader is known: `TRYAGAIN` naming the candidate while
    /// a planned transfer's election runs in the current term, `CLUSTERDOWN` otherwise.
    fn no_leader_refusal(&self) -> M::Reply {
        let raft = self.raw.raft();
        match self.moving_to {
            Some(TransferNote {
                candidate, term, ..
            }) if term == raft.term() && raft.leader().is_none() => {
                M::refused(refusals::transferring(candidate))
            }
            _ => M::refused(refusals::NO_LEADER.into()),
        }
    }
}

/// The client's reply when the core refuses a proposal.
fn propose_error_reply<M: StateMachine>(error: &ProposeError) -> M::Reply {
    M::refused(match error {
        ProposeError::NotLeader { .. } => refusals::NO_LEADER.to_string(),
        ProposeError::TransferInProgress { to } => refusals::transferring(*to),
        ProposeError::UncommittedLimit { .. } => refusals::BUSY.to_string(),
        ProposeError::EntryTooLarge { .. } => refusals::TOO_LARGE.to_string(),
        other => format!("ERR {other}"),
    })
}
