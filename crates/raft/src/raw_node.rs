//! The driving interface: feed time, messages and proposals in; take [`Ready`] batches out.

use crate::config::{Config, ConfigError};
use crate::log::RaftLog;
use crate::membership::ConfChange;
use crate::message::Message;
use crate::raft::{
    ProposeError, Raft, ReadIndexError, ReadState, SnapshotChunk, SnapshotError, StepError,
    TransferError,
};
use crate::storage::LogStorage;
use crate::storage::{SnapshotMeta, StorageError};
use crate::types::{Entry, EntryKind, HardState, LogIndex, NodeId, SoftState, Term};

/// Why a node could not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The durable hard state claims a commit index past the end of the durable log.
    #[error("hard state commit {commit} is past the last durable index {last_index}")]
    CommitBeyondLog {
        /// The commit index in the hard state.
        commit: LogIndex,
        /// The last index in storage.
        last_index: LogIndex,
    },
}

/// One batch of work for the application, to be handled in this order:
/// 1. write `entries` to storage (replacing any suffix from `entries[0].index`), then
///    `hard_state`, durably;
/// 2. send `messages` (these may also be sent before step 1) and then `persisted_messages`;
/// 3. apply `committed_entries` to the state machine;
/// 4. call [`RawNode::advance`] with the batch.
#[derive(Debug, Default)]
#[must_use = "a Ready must be persisted, sent, applied and then passed to advance()"]
pub struct Ready {
    /// Role or leader changed since the last batch.
    pub soft_state: Option<SoftState>,
    /// Term, vote or commit changed since the last batch: write it as one record.
    pub hard_state: Option<HardState>,
    /// Entries to append to storage, replacing any existing suffix from the first one.
    pub entries: Vec<Entry>,
    /// Messages that may be sent at once, even before `entries` are durable (a leader
    /// replicates while it writes its own log, thesis §10.2.1).
    pub messages: Vec<Message>,
    /// Messages that promise durability — vote grants and append acceptances — and may only be
    /// sent after `entries` and `hard_state` are durable (thesis §3.8).
    pub persisted_messages: Vec<Message>,
    /// Committed entries to apply, in log order. They are durable once step 1 is done.
    pub committed_entries: Vec<Entry>,
    /// Confirmed reads: each may be served once the state machine has applied its index.
    pub read_states: Vec<ReadState>,
    /// Reads that were refused (the leader changed or refused): their callers may retry.
    pub failed_reads: Vec<u64>,
    /// Chunks of a snapshot arriving from the leader: stage each durably, in order
    /// (`LogStorage::stage_snapshot_chunk`), before anything else in this batch.
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// A snapshot fully received: install it (`LogStorage::install_staged_snapshot`) after
    /// staging the chunks and before writing entries, and restore the state machine from it
    /// before applying `committed_entries`.
    pub snapshot: Option<SnapshotMeta>,
}

impl Ready {
    /// Step 1 for the log, in the order the contract needs: stage the snapshot chunks, install
    /// a fully received snapshot, then append the entries (replacing any suffix from the first
    /// one). The hard state is the application's to write afterwards, as one record.
    pub fn write_log<S: LogStorage>(&self, storage: &mut S) -> Result<(), StorageError> {
        for chunk in &self.snapshot_chunks {
            storage.stage_snapshot_chunk(&chunk.meta, chunk.offset, &chunk.data)?;
        }
        if let Some(meta) = &self.snapshot {
            storage.install_staged_snapshot(meta)?;
        }
        storage.append(&self.entries)
    }

    /// Whether the batch holds nothing to do.
    pub fn is_empty(&self) -> bool {
        self.soft_state.is_none()
            && self.hard_state.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.persisted_messages.is_empty()
            && self.committed_entries.is_empty()
            && self.read_states.is_empty()
            && self.failed_reads.is_empty()
            && self.snapshot_chunks.is_empty()
            && self.snapshot.is_none()
    }
}

/// A Raft node driven by the application: no threads, no clock, no I/O.
///
/// Time enters through [`tick`](RawNode::tick), messages through [`step`](RawNode::step),
/// client data through [`propose`](RawNode::propose); what must be written, sent and
/// applied comes out of [`ready`](RawNode::ready) and is acknowledged with
/// [`advance`](RawNode::advance).
#[derive(Debug)]
pub struct RawNode<S> {
    raft: Raft<S>,
    prev_soft_state: SoftState,
    prev_hard_state: HardState,
}

impl<S: LogStorage> RawNode<S> {
    /// A node over `storage` that last persisted `hard_state` (all defaults for a new node).
    /// When storage holds a snapshot, the application restores its state machine from it
    /// before driving the node; `config.applied` may say it has applied more than that.
    pub fn new(
        config: Config,
        storage: S,
        hard_state: HardState,
    ) -> Result<RawNode<S>, StartError> {
        config.validate()?;
        let last_index = storage.last_index();
        if hard_state.commit > last_index {
            return Err(StartError::CommitBeyondLog {
                commit: hard_state.commit,
                last_index,
            });
        }
        // The state machine restarts from the storage's snapshot (the application restores it),
        // so everything the snapshot covers counts as applied and committed.
        let snapshot_index = storage.snapshot_meta().index;
        let committed = hard_state.commit.max(snapshot_index);
        let applied = config.applied.min(committed).max(snapshot_index);
        let log = RaftLog::new(storage, committed, applied);
        let raft = Raft::new(config, log, hard_state);
        let prev_soft_state = raft.soft_state();
        Ok(RawNode {
            raft,
            prev_soft_state,
            prev_hard_state: hard_state,
        })
    }

    /// One tick of logical time: drives election timeouts and heartbeats.
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Handles a message from another node.
    pub fn step(&mut self, message: Message) -> Result<(), StepError> {
        self.raft.step(message)
    }

    /// Proposes `data` for the log; returns the index and term it will have if it commits.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(LogIndex, Term), ProposeError> {
        self.raft.propose(data)
    }

    /// Requests a linearizable read identified by `ctx` (ReadIndex, thesis §6.4). A later
    /// Ready answers it in `read_states` (serve once `applied >= index`) or `failed_reads`.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ReadIndexError> {
        self.raft.read_index(ctx)
    }

    /// The state machine, having applied everything up to `index`, is `data`: keep it as the
    /// snapshot and compact the log below it (keeping `snapshot_trailing_entries`).
    pub fn take_snapshot(&mut self, index: LogIndex, data: Vec<u8>) -> Result<(), SnapshotError> {
        self.raft.take_snapshot(index, data)
    }

    /// See [`Raft::snapshot_meta_at`].
    pub fn snapshot_meta_at(&self, index: LogIndex) -> Result<SnapshotMeta, SnapshotError> {
        self.raft.snapshot_meta_at(index)
    }

    /// See [`Raft::snapshot_saved`].
    pub fn snapshot_saved(&mut self, index: LogIndex) -> Result<(), SnapshotError> {
        self.raft.snapshot_saved(index)
    }

    /// Proposes a membership change (§6). Voter changes go through the joint configuration,
    /// which the leader leaves on its own; one change at a time.
    pub fn propose_conf_change(
        &mut self,
        change: ConfChange,
    ) -> Result<(LogIndex, Term), ProposeError> {
        self.raft.propose_conf_change(change)
    }

    /// Starts handing leadership to voter `to` (thesis §3.10). Proposals are refused until the
    /// transfer completes or, after an election timeout, is abandoned.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError> {
        self.raft.transfer_leadership(to)
    }

    /// Starts an election now, as if the election timer had fired.
    pub fn campaign(&mut self) {
        self.raft.campaign();
    }

    /// Turns PreVote on or off for this node's next elections ([`Raft::set_pre_vote`]).
    pub fn set_pre_vote(&mut self, on: bool) {
        self.raft.set_pre_vote(on);
    }

    /// Whether [`ready`](RawNode::ready) has anything to hand out.
    pub fn has_ready(&self) -> bool {
        self.raft.soft_state() != self.prev_soft_state
            || self.raft.hard_state() != self.prev_hard_state
            || !self.raft.log.unstable_entries().is_empty()
            || self.raft.has_pending_output()
            || self.raft.log.applied() < self.raft.log.committed()
    }

    /// Everything to persist, send and apply since the last batch.
    pub fn ready(&mut self) -> Ready {
        self.raft.flush_broadcast();
        let soft_state = self.raft.soft_state();
        let hard_state = self.raft.hard_state();
        let (messages, persisted_messages) = self.raft.take_messages();
        let (read_states, failed_reads) = self.raft.take_reads();
        let (snapshot_chunks, snapshot) = self.raft.take_snapshot_output();
        let ready = Ready {
            soft_state: (soft_state != self.prev_soft_state).then_some(soft_state),
            hard_state: (hard_state != self.prev_hard_state).then_some(hard_state),
            entries: self.raft.log.unstable_entries().to_vec(),
            messages,
            persisted_messages,
            committed_entries: self
                .raft
                .log
                .next_committed_entries(self.raft.config().max_apply_bytes),
            read_states,
            failed_reads,
            snapshot_chunks,
            snapshot,
        };
        self.prev_soft_state = soft_state;
        ready
    }

    /// The application has persisted, sent and applied `ready`.
    pub fn advance(&mut self, ready: Ready) {
        // Configuration changes take effect as they are applied (§6).
        for entry in ready
            .committed_entries
            .iter()
            .filter(|e| e.kind == EntryKind::ConfChange)
        {
            if let Ok(change) = ConfChange::decode(&entry.data) {
                self.raft.apply_conf_change(&change);
            }
        }
        if let Some(meta) = &ready.snapshot {
            self.raft.log.snapshot_installed(meta.index);
        }
        if let Some(hard_state) = ready.hard_state {
            self.prev_hard_state = hard_state;
            self.raft.on_hard_state_persisted(hard_state);
        }
        if let Some(last) = ready.entries.last() {
            self.raft.on_entries_persisted(last.index, last.term);
        }
        if let Some(last) = ready.committed_entries.last() {
            self.raft.log.applied_to(last.index);
        }
    }

    /// The protocol state, for inspection.
    pub fn raft(&self) -> &Raft<S> {
        &self.raft
    }

    /// The durable log, for the application to append a Ready's entries.
    pub fn storage_mut(&mut self) -> &mut S {
        self.raft.log.storage_mut()
    }

    /// Stops the node and gives its storage back.
    pub fn into_storage(self) -> S {
        self.raft.log.into_storage()
    }

    /// The durable log.
    pub fn storage(&self) -> &S {
        self.raft.log.storage()
    }

    /// A summary for status pages and tests.
    pub fn status(&self) -> Status {
        let raft = &self.raft;
        Status {
            id: raft.id(),
            term: raft.term(),
            vote: raft.vote(),
            soft_state: raft.soft_state(),
            commit: raft.log().committed(),
            applied: raft.log().applied(),
            last_index: raft.log().last_index(),
            match_index: raft
                .progress()
                .iter()
                .map(|(&id, p)| (id, p.match_index()))
                .collect(),
        }
    }
}

/// A snapshot of a node's state for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The node's id.
    pub id: NodeId,
    /// The current term.
    pub term: Term,
    /// The vote in the current term.
    pub vote: Option<NodeId>,
    /// Role and leader.
    pub soft_state: SoftState,
    /// The commit index.
    pub commit: LogIndex,
    /// The applied index.
    pub applied: LogIndex,
    /// The last log index.
    pub last_index: LogIndex,
    /// Leader only: each voter's match index.
    pub match_index: Vec<(NodeId, LogIndex)>,
}
