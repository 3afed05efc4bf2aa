//! [`Node`]: the driver that owns the core, the durable log and the state machine.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use skiff_kv::{Command, KvConfig, Reply, Request, StateMachine};
use skiff_raft::{
    ConfChange, Config, Entry, EntryKind, HardState, InvalidMessage, LogIndex, LogStorage,
    MessageBody, NodeId, ProposeError, RawNode, ReadIndexError, Ready, Role, SnapshotMeta,
    SoftState, StepError, Term, TransferError,
};
use skiff_wal::{Disk, RecoveryReport, SnapshotWrite, Wal, WalOptions};

use crate::error::{NodeError, PeerMessageError};
use crate::incoming_snapshot::{restore, IncomingSnapshot};
use crate::payload::{self, MemberAddress, Payload};
use crate::wire::PeerMessage;

/// The caller's id for one client request; the reply comes back with it.
pub type RequestId = u64;

/// Error replies the node gives. The first word is the Redis error code clients act on:
/// `CLUSTERDOWN` when no leader can take the request, `TRYAGAIN` when a retry may succeed.
pub mod errors {
    /// No leader is known: the cluster has no quorum, or is electing a leader.
    pub const NO_LEADER: &str =
        "CLUSTERDOWN no leader is known; the cluster may have lost its quorum";
    /// The write's entry was replaced by a new leader's: it was not applied.
    pub const LEADER_CHANGED: &str =
        "TRYAGAIN the leader changed before the write committed; it was not applied";
    /// A snapshot replaced the log where the write was: it may or may not have been applied.
    pub const OUTCOME_UNKNOWN: &str =
        "TRYAGAIN the leader changed; the write may or may not have been applied";
    /// Too many requests are waiting on this node.
    pub const BUSY: &str = "TRYAGAIN too many requests in flight; retry later";
    /// The leader changed or refused before confirming a read.
    pub const READ_NOT_CONFIRMED: &str = "TRYAGAIN no leader confirmed the read; retry";
    /// Leadership is being handed to node `to`.
    pub fn transferring(to: skiff_raft::NodeId) -> String {
        format!("TRYAGAIN leadership is being transferred to node {to}; retry")
    }
    /// The request does not fit in one log entry.
    pub const TOO_LARGE: &str = "ERR request too large for one log entry";
}

/// How a node is set up.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The Raft core's settings; `voters` is the cluster's initial membership, used until a
    /// snapshot or a configuration change in the log says otherwise.
    pub raft: Config,
    /// The state machine's limits: the same on every node.
    pub kv: KvConfig,
    /// The durable log's settings.
    pub wal: WalOptions,
    /// Take a snapshot once this many entries were applied past the last one (0: never).
    pub snapshot_every_entries: u64,
    /// Client requests that may wait on this node at once (proposed, forwarded or reading);
    /// more are refused with [`errors::BUSY`].
    pub max_pending_requests: usize,
}

impl NodeConfig {
    /// Defaults around `raft`: default state machine limits, 64 MiB segments, a snapshot
    /// every 100,000 entries, 10,000 pending requests.
    pub fn new(raft: Config, cluster_id: u64) -> NodeConfig {
        NodeConfig {
            raft,
            kv: KvConfig::default(),
            wal: WalOptions::new(cluster_id),
            snapshot_every_entries: 100_000,
            max_pending_requests: 10_000,
        }
    }
}

/// Where a request came from, so its reply goes back there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// A client of this node.
    Local(RequestId),
    /// A client of a follower, forwarded here.
    Forwarded { from: NodeId, id: u64 },
}

/// Something that happened, for logs, metrics and status pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The role or the known leader changed.
    RoleChanged {
        /// The new role and leader.
        soft_state: SoftState,
        /// The term it happened in.
        term: Term,
    },
    /// A configuration change was applied.
    ConfChangeApplied {
        /// Its log index.
        index: LogIndex,
    },
    /// A member's peer address was recorded.
    MemberAddressRecorded {
        /// The member.
        id: NodeId,
    },
    /// The state machine was snapshotted and the log compacted.
    SnapshotTaken {
        /// The snapshot's last included index.
        index: LogIndex,
    },
    /// A chunk of a snapshot from the leader was written: `received` bytes of it so far.
    SnapshotChunkReceived {
        /// The snapshot's last included index.
        index: LogIndex,
        /// Bytes of the snapshot received and durable so far.
        received: u64,
    },
    /// A snapshot from the leader replaced the state machine.
    SnapshotInstalled {
        /// The snapshot's last included index.
        index: LogIndex,
    },
}

/// What the node produced since it was last drained with [`Node::take_output`].
#[derive(Debug, Default)]
pub struct Output {
    /// Messages for other nodes, in the order they may be sent.
    pub messages: Vec<PeerMessage>,
    /// Replies to this node's clients.
    pub replies: Vec<(RequestId, Reply)>,
    /// Things that happened.
    pub events: Vec<Event>,
}

/// Watches a node's durable and applied history (the simulator's checkers do).
pub trait Observer {
    /// A batch became durable. `hard_state` is the batch's hard state if it was synced (a
    /// batch that only moves the commit index is written but not synced for itself).
    fn persisted(&mut self, _entries: &[Entry], _hard_state: Option<HardState>) {}
    /// A snapshot from the leader was installed.
    fn snapshot_installed(&mut self, _meta: &SnapshotMeta) {}
    /// A committed entry was applied; `reply` is the state machine's answer for a client
    /// command.
    fn applied(&mut self, _entry: &Entry, _reply: Option<&Reply>) {}
    /// The state machine now holds the effect of every entry up to `index`: called after each
    /// committed entry is applied and after a snapshot from the leader replaced the state
    /// machine, so that a checker can compare replicas' states index by index.
    fn state_reached(&mut self, _index: LogIndex, _state: &StateMachine) {}
}

/// An [`Observer`] that watches nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// One Skiff node. See the [crate documentation](crate) for the driving loop.
#[derive(Debug)]
pub struct Node<D: Disk> {
    raw: RawNode<Wal<D>>,
    state_machine: StateMachine,
    /// Peer addresses recorded in the log (and snapshots), by member.
    addresses: BTreeMap<NodeId, String>,
    config: NodeConfig,
    /// The last entry applied to the state machine (or covered by its snapshot).
    applied: LogIndex,
    /// The batch between `begin` and `finish`.
    writing: Option<Writing>,
    /// Proposed writes by index, with the term they were proposed in.
    proposals: BTreeMap<LogIndex, (Term, Origin)>,
    /// Reads waiting for a leader to confirm a read index; the read's context is its
    /// request id.
    reads: HashMap<RequestId, Command>,
    /// Confirmed reads waiting for the state machine to reach their index.
    confirmed_reads: BTreeMap<LogIndex, Vec<(RequestId, Command)>>,
    confirmed_read_count: usize,
    /// This node's writes forwarded to a leader, waiting for its reply: the leader by request.
    forwarded: HashMap<RequestId, NodeId>,
    /// The snapshot coming in from the leader: what is staged, and what verified.
    incoming_snapshot: IncomingSnapshot,
    output: Output,
}

impl<D: Disk> Node<D> {
    /// Opens the node's durable state in `dir` on `disk` (creating it for a new node) and
    /// restores the state machine from its snapshot. The log's recovery report says what
    /// recovery found and did.
    pub fn open(
        disk: D,
        dir: impl Into<std::path::PathBuf>,
        config: NodeConfig,
    ) -> Result<(Node<D>, RecoveryReport), NodeError> {
        Node::open_with_progress(disk, dir, config, &mut |_| {})
    }

    /// [`Node::open`], reporting the log's recovery after each segment read.
    pub fn open_with_progress(
        disk: D,
        dir: impl Into<std::path::PathBuf>,
        mut config: NodeConfig,
        progress: &mut dyn FnMut(skiff_wal::RecoveryProgress),
    ) -> Result<(Node<D>, RecoveryReport), NodeError> {
        config
            .kv
            .validate()
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let (wal, report) = Wal::open_with_progress(disk, dir, config.wal, progress)?;
        let meta = wal.snapshot_meta();
        let (state_machine, addresses) = if meta.index == LogIndex(0) {
            let state_machine = StateMachine::new(config.kv.clone())
                .map_err(|e| NodeError::Config(e.to_string()))?;
            (state_machine, BTreeMap::new())
        } else {
            let data = wal.snapshot_chunk(0, wal.snapshot_len())?;
            restore(&config.kv, meta.index, &data)?
        };
        // The state machine holds exactly the snapshot: every later committed entry is
        // applied again from the log.
        config.raft.applied = meta.index;
        let hard_state = wal.hard_state();
        let raw = RawNode::new(config.raft.clone(), wal, hard_state)?;
        let node = Node {
            raw,
            state_machine,
            addresses,
            config,
            applied: meta.index,
            writing: None,
            proposals: BTreeMap::new(),
            reads: HashMap::new(),
            confirmed_reads: BTreeMap::new(),
            confirmed_read_count: 0,
            forwarded: HashMap::new(),
            incoming_snapshot: IncomingSnapshot::default(),
            output: Output::default(),
        };
        Ok((node, report))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.raft.id
    }

    /// One tick of logical time.
    pub fn tick(&mut self) {
        self.raw.tick();
    }

    /// Starts an election now (PreVote first when enabled), as if the election timer had fired.
    pub fn campaign(&mut self) {
        self.raw.campaign();
    }

    /// Takes a client command. Its reply comes out in [`Output::replies`] under `id`:
    /// - a write is proposed here if this node leads, or forwarded to the leader; the reply
    ///   comes once it is committed and applied;
    /// - a read is served once a leader confirmed a read index and this node's state machine
    ///   reached it (ReadIndex, thesis §6.4), so it is linearizable on every node.
    pub fn submit(&mut self, id: RequestId, command: Command) {
        if self.pending_requests() >= self.config.max_pending_requests {
            self.reply(Origin::Local(id), Reply::error(errors::BUSY));
            return;
        }
        if command.is_read_only() {
            match self.raw.read_index(id) {
                Ok(()) => {
                    self.reads.insert(id, command);
                }
                Err(ReadIndexError::NoLeader) => {
                    self.reply(Origin::Local(id), Reply::error(errors::NO_LEADER))
                }
                Err(ReadIndexError::TooManyPending { .. }) => {
                    self.reply(Origin::Local(id), Reply::error(errors::BUSY))
                }
            }
        } else {
            let request = Request {
                session: None,
                command,
            };
            self.propose(Origin::Local(id), request.encode());
        }
    }

    /// Forgets a request whose caller stopped waiting (it timed out or disconnected). A write
    /// already proposed may still be applied.
    pub fn cancel(&mut self, id: RequestId) {
        self.reads.remove(&id);
        self.forwarded.remove(&id);
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
    /// the state machine or the disk: a Raft message that fails [`skiff_raft::validate`] or
    /// that the core refuses, and the last chunk of a snapshot that does not restore as a
    /// state machine (checked before the snapshot can replace the durable one). Other
    /// mis-addressed messages are dropped.
    pub fn step(&mut self, message: PeerMessage) -> Result<(), PeerMessageError> {
        if message.from().0 == 0 || message.to().0 == 0 {
            let field = if message.from().0 == 0 { "from" } else { "to" };
            return Err(StepError::from(InvalidMessage::ZeroNodeId { field }).into());
        }
        match message {
            PeerMessage::Raft(message) => {
                skiff_raft::validate(&message).map_err(StepError::from)?;
                if let MessageBody::InstallSnapshot {
                    meta,
                    offset,
                    data,
                    done: true,
                } = &message.body
                {
                    let chunks_in_flight = matches!(
                        &self.writing,
                        Some(Writing { ready, stage: Stage::Begun }) if !ready.snapshot_chunks.is_empty()
                    );
                    self.incoming_snapshot.check_last_chunk(
                        &self.raw,
                        chunks_in_flight,
                        &self.config.kv,
                        message.from,
                        message.term,
                        meta,
                        *offset,
                        data,
                    )?;
                }
                Ok(self.raw.step(message)?)
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
                    self.reply(origin, Reply::error(errors::BUSY));
                } else if let Err(error) = Request::decode(&request) {
                    self.reply(
                        origin,
                        Reply::error(format!("ERR malformed request: {error}")),
                    );
                } else {
                    self.propose(origin, request);
                }
                Ok(())
            }
            PeerMessage::ForwardReply { to, id, reply, .. } => {
                if to == self.id() && self.forwarded.remove(&id).is_some() {
                    let reply = Reply::decode(&reply).unwrap_or_else(|error| {
                        Reply::error(format!("ERR malformed reply from the leader: {error}"))
                    });
                    self.output.replies.push((id, reply));
                }
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
            Err(error) => self.reply(Origin::Local(id), propose_error_reply(&error)),
        }
    }

    /// Records `id`'s peer address in the log, before the node is added to the cluster; the
    /// reply under `request` comes once it is applied. Only the leader takes it.
    pub fn propose_member_address(&mut self, request: RequestId, id: NodeId, addr: String) {
        if self.raw.raft().role() != Role::Leader {
            self.reply(Origin::Local(request), Reply::error(errors::NO_LEADER));
            return;
        }
        match self.raw.propose(MemberAddress { id, addr }.encode()) {
            Ok((index, term)) => {
                self.proposals.insert(index, (term, Origin::Local(request)));
            }
            Err(error) => self.reply(Origin::Local(request), propose_error_reply(&error)),
        }
    }

    /// Peer addresses recorded in the log, by member (members of the initial configuration
    /// are known from the configuration instead).
    pub fn member_addresses(&self) -> &BTreeMap<NodeId, String> {
        &self.addresses
    }

    /// Snapshots the state machine now and compacts the log below it.
    pub fn take_snapshot(&mut self) -> Result<LogIndex, NodeError> {
        if let Some((index, data)) = self.snapshot_data() {
            self.raw.take_snapshot(index, data)?;
            self.output.events.push(Event::SnapshotTaken { index });
        }
        Ok(self.applied)
    }

    /// The state machine's snapshot data and the index it reflects, when there is something
    /// new to snapshot and the node may take it now.
    fn snapshot_data(&self) -> Option<(LogIndex, Vec<u8>)> {
        // The snapshot is labelled with the index its data reflects: the state machine's.
        // The core's applied index runs ahead of it while a snapshot received from the
        // leader is still being written (the core has restored it, the state machine not).
        let index = self.applied;
        // A snapshot the core received and has not handed over yet will replace the state
        // machine, and the log below it is no longer the core's to read: nothing to take.
        let receiving = self.raw.raft().log().applied() > index;
        // Mid-batch, entries applied by `write` are not yet applied in the core (and a
        // configuration change among them not yet in effect).
        if index <= self.raw.storage().snapshot_meta().index || receiving || self.is_writing() {
            return None;
        }
        let mut data = Vec::new();
        payload::put_snapshot_header(&self.addresses, &mut data);
        self.state_machine.snapshot_into(&mut data);
        Some((index, data))
    }

    /// The first half of [`take_snapshot`](Node::take_snapshot), for a driver that writes the
    /// snapshot file on another thread so that it goes on ticking and serving meanwhile:
    /// the state machine's snapshot data, and where and how to write it (see
    /// [`Wal::prepare_snapshot_write`]). `None`: nothing new to snapshot, or a batch is in
    /// flight. Call [`snapshot_written`](Node::snapshot_written) once the file is written
    /// and synced.
    pub fn prepare_snapshot(&mut self) -> Result<Option<(SnapshotWrite, Vec<u8>)>, NodeError> {
        let Some((index, data)) = self.snapshot_data() else {
            return Ok(None);
        };
        let meta = self.raw.snapshot_meta_at(index)?;
        let write = self.raw.storage().prepare_snapshot_write(meta, &data)?;
        Ok(Some((write, data)))
    }

    /// Writes and syncs the file [`prepare_snapshot`](Node::prepare_snapshot) prepared, on
    /// this thread and this node's disk: what a snapshot thread does, for a driver that has
    /// none (the simulator, in an event of its own).
    pub fn write_snapshot_file(
        &mut self,
        write: &SnapshotWrite,
        data: &[u8],
    ) -> Result<(), NodeError> {
        Ok(self.raw.storage_mut().write_snapshot_file(write, data)?)
    }

    /// The snapshot file prepared by [`prepare_snapshot`](Node::prepare_snapshot) is written
    /// and synced: it becomes the current snapshot and the log behind it is discarded.
    /// Returns the snapshot's index, or `None` if a newer snapshot (one received from the
    /// leader) took its place meanwhile.
    pub fn snapshot_written(
        &mut self,
        write: SnapshotWrite,
    ) -> Result<Option<LogIndex>, NodeError> {
        let index = write.meta().index;
        if !self.raw.storage_mut().install_written_snapshot(write)? {
            return Ok(None);
        }
        self.raw.snapshot_saved(index)?;
        self.output.events.push(Event::SnapshotTaken { index });
        Ok(Some(index))
    }

    /// Entries applied since the last snapshot: a driver that takes snapshots itself
    /// (`snapshot_every_entries = 0`) compares this with its own threshold.
    pub fn entries_since_snapshot(&self) -> u64 {
        self.applied
            .0
            .saturating_sub(self.raw.storage().snapshot_meta().index.0)
    }

    /// Whether a batch is being written (between `begin` and `finish`).
    pub fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    /// Whether [`begin`](Node::begin) would start a batch.
    pub fn has_ready(&self) -> bool {
        self.writing.is_none() && self.raw.has_ready()
    }

    /// First half of a driver pass: takes the core's next batch and releases the messages
    /// that may leave before it is durable. Returns whether a batch started.
    pub fn begin(&mut self) -> bool {
        if !self.has_ready() {
            return false;
        }
        let mut ready = self.raw.ready();
        if let Some(soft_state) = ready.soft_state.take() {
            self.fail_forwards_to_former_leaders(soft_state.leader);
            self.output.events.push(Event::RoleChanged {
                soft_state,
                term: self.raw.raft().term(),
            });
        }
        for read in std::mem::take(&mut ready.read_states) {
            if let Some(command) = self.reads.remove(&read.ctx) {
                self.confirmed_reads
                    .entry(read.index)
                    .or_default()
                    .push((read.ctx, command));
                self.confirmed_read_count += 1;
            }
        }
        for ctx in std::mem::take(&mut ready.failed_reads) {
            if self.reads.remove(&ctx).is_some() {
                self.reply(Origin::Local(ctx), Reply::error(errors::READ_NOT_CONFIRMED));
            }
        }
        self.serve_confirmed_reads();
        self.output.messages.extend(
            std::mem::take(&mut ready.messages)
                .into_iter()
                .map(PeerMessage::Raft),
        );
        self.writing = Some(Writing {
            ready,
            stage: Stage::Begun,
        });
        true
    }

    /// Second half: persists the batch (one sync), releases the messages that promise
    /// durability, applies committed entries, answers clients and advances the core.
    ///
    /// An error means the disk failed: the node must stop, and recovery decides on restart
    /// what was durable.
    pub fn finish(&mut self, observer: &mut impl Observer) -> Result<(), NodeError> {
        self.write(observer)?;
        self.sync_written()?;
        self.finish_synced(observer)
    }

    /// Syncs the batch written by [`write`](Node::write) on this thread, for a driver that
    /// separates the two steps without a writer thread (the simulator does, to let other
    /// events happen in between).
    pub fn sync_written(&mut self) -> Result<(), NodeError> {
        if let Some(Writing {
            stage: Stage::Written { unsynced: Some(_) },
            ..
        }) = &self.writing
        {
            self.raw.storage_mut().sync_batch()?;
        }
        Ok(())
    }

    /// The first part of [`finish`](Node::finish), for a driver that syncs on another thread
    /// (thesis §10.2.1): writes the batch without its final sync, and applies the committed
    /// entries that were durable here before it (and answers their clients) meanwhile.
    /// Returns the segment file to sync; once it is synced (`fdatasync`), call
    /// [`finish_synced`](Node::finish_synced). `None`: nothing to sync, call it at once.
    ///
    /// Until then, `step`, `tick` and `submit` may go on, but no new batch begins.
    pub fn write(&mut self, observer: &mut impl Observer) -> Result<Option<PathBuf>, NodeError> {
        if let Some(Writing {
            stage: Stage::Written { unsynced },
            ..
        }) = &self.writing
        {
            return Ok(unsynced.clone());
        }
        let Some(Writing { ready, .. }) = self.writing.take() else {
            return Ok(None);
        };
        // 1. Persist: snapshot chunks, a received snapshot, then entries and hard state as one
        //    batch with one fsync (group commit).
        let wal = self.raw.storage_mut();
        for chunk in &ready.snapshot_chunks {
            wal.stage_snapshot_chunk(&chunk.meta, chunk.offset, &chunk.data)?;
            self.incoming_snapshot
                .chunk_staged(&chunk.meta, chunk.offset, chunk.data.len() as u64);
            self.output.events.push(Event::SnapshotChunkReceived {
                index: chunk.meta.index,
                received: chunk.offset + chunk.data.len() as u64,
            });
        }
        if let Some(meta) = &ready.snapshot {
            wal.install_staged_snapshot(meta)?;
            self.incoming_snapshot.installed();
        }
        let unsynced = if !ready.entries.is_empty() || ready.hard_state.is_some() {
            wal.append_batch_unsynced(&ready.entries, ready.hard_state)?
        } else {
            None
        };
        // 2. Apply what was already durable here (on a leader, every committed entry: its own
        //    vote toward commitment counts only durable entries), while the batch syncs. A
        //    received snapshot replaces the state machine first, so nothing goes before it;
        //    a configuration change takes effect in the core at `advance`, so it and what
        //    follows wait for `finish_synced`.
        let durable = self.raw.raft().log().persisted_index();
        let early = if ready.snapshot.is_some() {
            0
        } else {
            ready
                .committed_entries
                .iter()
                .take_while(|entry| entry.index <= durable && entry.kind != EntryKind::ConfChange)
                .count()
        };
        for entry in &ready.committed_entries[..early] {
            self.apply(entry, observer);
        }
        self.serve_confirmed_reads();
        self.writing = Some(Writing {
            ready,
            stage: Stage::Written {
                unsynced: unsynced.clone(),
            },
        });
        Ok(unsynced)
    }

    /// The rest of [`finish`](Node::finish), once the batch written by
    /// [`write`](Node::write) is synced: releases the messages that promise durability,
    /// applies the remaining committed entries, answers clients and advances the core.
    pub fn finish_synced(&mut self, observer: &mut impl Observer) -> Result<(), NodeError> {
        let Some(Writing { mut ready, stage }) = self.writing.take() else {
            return Ok(());
        };
        let Stage::Written { unsynced } = stage else {
            // Not written yet: `finish` writes and syncs.
            self.writing = Some(Writing {
                ready,
                stage: Stage::Begun,
            });
            return self.finish(observer);
        };
        // A batch that only moved the commit index was written but not synced for itself.
        let durable_hard_state = unsynced.as_ref().and(ready.hard_state);
        if let Some(file) = unsynced {
            self.raw.storage_mut().batch_synced(&file);
        }
        observer.persisted(&ready.entries, durable_hard_state);
        // 2. Send what promised durability (§3.8: votes and acknowledgements only once durable).
        self.output.messages.extend(
            std::mem::take(&mut ready.persisted_messages)
                .into_iter()
                .map(PeerMessage::Raft),
        );
        // 3. Apply.
        if let Some(meta) = &ready.snapshot {
            self.restore_snapshot(meta)?;
            observer.snapshot_installed(meta);
            observer.state_reached(meta.index, &self.state_machine);
        }
        // Those `write` applied already are behind `applied`.
        for entry in &ready.committed_entries {
            if entry.index > self.applied {
                self.apply(entry, observer);
            }
        }
        self.serve_confirmed_reads();
        // 4. Advance.
        self.raw.advance(ready);
        self.maybe_take_snapshot()?;
        Ok(())
    }

    /// Both halves at once, for a driver whose disk write need not overlap anything.
    pub fn process(&mut self, observer: &mut impl Observer) -> Result<(), NodeError> {
        while self.begin() {
            self.finish(observer)?;
        }
        Ok(())
    }

    /// Everything produced since the last call.
    pub fn take_output(&mut self) -> Output {
        std::mem::take(&mut self.output)
    }

    /// Requests waiting on this node.
    pub fn pending_requests(&self) -> usize {
        self.proposals.len() + self.reads.len() + self.confirmed_read_count + self.forwarded.len()
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
    pub fn state_machine(&self) -> &StateMachine {
        &self.state_machine
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

    fn propose(&mut self, origin: Origin, request: Vec<u8>) {
        let raft = self.raw.raft();
        if raft.role() != Role::Leader {
            // A follower hands its own client's write to the leader; a forwarded write is
            // not forwarded again.
            match (origin, raft.leader()) {
                (Origin::Local(id), Some(leader)) if leader != self.id() => {
                    self.forwarded.insert(id, leader);
                    self.output.messages.push(PeerMessage::Forward {
                        from: self.id(),
                        to: leader,
                        id,
                        request,
                    });
                }
                _ => self.reply(origin, Reply::error(errors::NO_LEADER)),
            }
            return;
        }
        match self.raw.propose(request) {
            Ok((index, term)) => {
                self.proposals.insert(index, (term, origin));
            }
            Err(error) => self.reply(origin, propose_error_reply(&error)),
        }
    }

    /// Writes forwarded to a node that no longer leads get no reply from it: answer them now,
    /// so their clients retry at once rather than wait for their timeout.
    fn fail_forwards_to_former_leaders(&mut self, leader: Option<NodeId>) {
        let stale: Vec<RequestId> = self
            .forwarded
            .iter()
            .filter(|(_, &to)| Some(to) != leader)
            .map(|(&id, _)| id)
            .collect();
        for id in stale {
            self.forwarded.remove(&id);
            self.output
                .replies
                .push((id, Reply::error(errors::OUTCOME_UNKNOWN)));
        }
    }

    fn reply(&mut self, origin: Origin, reply: Reply) {
        match origin {
            Origin::Local(id) => self.output.replies.push((id, reply)),
            Origin::Forwarded { from, id } => {
                self.output.messages.push(PeerMessage::ForwardReply {
                    from: self.id(),
                    to: from,
                    id,
                    reply: reply.encode(),
                })
            }
        }
    }

    /// Applies one committed entry and answers the request that proposed it, if it waits here.
    fn apply(&mut self, entry: &Entry, observer: &mut impl Observer) {
        debug_assert!(
            entry.index > self.applied,
            "entries are applied once, in order"
        );
        self.applied = entry.index;
        let reply = match entry.kind {
            EntryKind::Normal => Some(match Payload::decode(&entry.data) {
                Ok(Payload::Request(request)) => {
                    self.state_machine
                        .apply(entry.index.0, request.command, request.session)
                }
                Ok(Payload::MemberAddress(MemberAddress { id, addr })) => {
                    self.addresses.insert(id, addr);
                    self.output.events.push(Event::MemberAddressRecorded { id });
                    Reply::Ok
                }
                Err(error) => Reply::error(format!("ERR undecodable log entry: {error}")),
            }),
            EntryKind::ConfChange => {
                self.output
                    .events
                    .push(Event::ConfChangeApplied { index: entry.index });
                None
            }
            EntryKind::Noop => None,
        };
        observer.applied(entry, reply.as_ref());
        observer.state_reached(entry.index, &self.state_machine);
        // Requests proposed at earlier indexes can no longer be answered by their own entry.
        while let Some((&index, _)) = self.proposals.first_key_value() {
            if index >= entry.index {
                break;
            }
            let (_, (_, origin)) = self.proposals.pop_first().expect("checked non-empty");
            self.reply(origin, Reply::error(errors::OUTCOME_UNKNOWN));
        }
        if let Some((term, origin)) = self.proposals.remove(&entry.index) {
            // The entry at the proposal's index is the proposal only if its term matches:
            // otherwise a new leader replaced it (Log Matching), and it was not applied.
            let reply = if term == entry.term {
                reply.unwrap_or(Reply::Ok)
            } else {
                Reply::error(errors::LEADER_CHANGED)
            };
            self.reply(origin, reply);
        }
    }

    /// Replaces the state machine with the snapshot just installed.
    fn restore_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), NodeError> {
        (self.state_machine, self.addresses) = match self.incoming_snapshot.take_verified(meta) {
            Some(verified) => verified,
            None => {
                let wal = self.raw.storage();
                let data = wal.snapshot_chunk(0, wal.snapshot_len())?;
                restore(&self.config.kv, meta.index, &data)?
            }
        };
        self.applied = meta.index;
        // Writes the snapshot covers may or may not be in it.
        let covered: Vec<LogIndex> = self
            .proposals
            .range(..=meta.index)
            .map(|(i, _)| *i)
            .collect();
        for index in covered {
            if let Some((_, origin)) = self.proposals.remove(&index) {
                self.reply(origin, Reply::error(errors::OUTCOME_UNKNOWN));
            }
        }
        self.output
            .events
            .push(Event::SnapshotInstalled { index: meta.index });
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
                let reply = self.state_machine.read(&command);
                self.output.replies.push((id, reply));
            }
        }
    }

    fn maybe_take_snapshot(&mut self) -> Result<(), NodeError> {
        let every = self.config.snapshot_every_entries;
        if every > 0 && self.entries_since_snapshot() >= every {
            self.take_snapshot()?;
        }
        Ok(())
    }
}

/// A batch between `begin` and `finish`.
#[derive(Debug)]
struct Writing {
    ready: Ready,
    stage: Stage,
}

/// How far a batch got.
#[derive(Debug)]
enum Stage {
    /// Taken by `begin`.
    Begun,
    /// Written by `write` (the committed entries durable before it applied), and waiting
    /// for `unsynced` to be synced, if that is `Some`.
    Written { unsynced: Option<PathBuf> },
}

/// The client's reply when the core refuses a proposal.
fn propose_error_reply(error: &ProposeError) -> Reply {
    Reply::error(match error {
        ProposeError::NotLeader { .. } => errors::NO_LEADER.to_string(),
        ProposeError::TransferInProgress { to } => errors::transferring(*to),
        ProposeError::UncommittedLimit { .. } => errors::BUSY.to_string(),
        ProposeError::EntryTooLarge { .. } => errors::TOO_LARGE.to_string(),
        other => format!("ERR {other}"),
    })
}
