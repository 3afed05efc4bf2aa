//! Snapshots and log compaction (§7, Figure 13): the application snapshots its state at an
//! applied index and the log prefix is discarded; a follower too far behind receives the
//! snapshot in chunks, one unanswered chunk at a time, resuming from the last offset it
//! acknowledged.

use crate::membership::ConfState;
use crate::message::MessageBody;
use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::storage::{LogStorage, SnapshotMeta, StorageError};
use crate::types::{LogIndex, NodeId, Role};

/// A chunk of an incoming snapshot, for the application to stage durably.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The snapshot it belongs to.
    pub meta: SnapshotMeta,
    /// Where it starts in the snapshot's data.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Why a snapshot could not be taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Only applied state can be snapshotted.
    #[error("index {index} is not applied yet (applied {applied})")]
    NotApplied {
        /// The index asked for.
        index: LogIndex,
        /// The applied index.
        applied: LogIndex,
    },
    /// A snapshot at or after this index exists already.
    #[error("a snapshot at {existing} already covers index {index}")]
    AlreadyCovered {
        /// The index asked for.
        index: LogIndex,
        /// The existing snapshot's index.
        existing: LogIndex,
    },
    /// Storage refused.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Follower: the snapshot being received, and what the next Ready must stage or install.
#[derive(Clone, Debug, Default)]
pub(crate) struct SnapshotInbox {
    /// The snapshot being received from the leader and the offset expected next.
    receiving: Option<(SnapshotMeta, u64)>,
    /// Received chunks, for the next Ready to stage durably.
    chunks: Vec<SnapshotChunk>,
    /// A fully received snapshot, for the next Ready to install.
    to_install: Option<SnapshotMeta>,
}

impl SnapshotInbox {
    /// Whether the next Ready has chunks to stage or a snapshot to install.
    pub(crate) fn has_output(&self) -> bool {
        !self.chunks.is_empty() || self.to_install.is_some()
    }

    /// The chunks and the completed snapshot, for the Ready being built.
    pub(crate) fn take_output(&mut self) -> (Vec<SnapshotChunk>, Option<SnapshotMeta>) {
        (std::mem::take(&mut self.chunks), self.to_install.take())
    }

    /// The offset expected next of the snapshot `meta` (0 for a snapshot not being received).
    fn expected_offset(&self, meta: &SnapshotMeta) -> u64 {
        match &self.receiving {
            Some((receiving, next)) if receiving == meta => *next,
            _ => 0,
        }
    }
}

impl<S: LogStorage> Raft<S> {
    /// The application's state machine, having applied everything up to `index`, is `data`:
    /// keep it as the snapshot and discard the log up to `index - trailing_entries` (the
    /// trailing entries let slow followers catch up without the snapshot).
    pub fn take_snapshot(&mut self, index: LogIndex, data: Vec<u8>) -> Result<(), SnapshotError> {
        let meta = self.snapshot_meta_at(index)?;
        self.log.storage_mut().save_snapshot(meta, data)?;
        self.snapshot_saved(index)
    }

    /// The metadata of a snapshot of the state machine at `index` (which must be applied and
    /// not yet covered): its term and the configuration. For an application that writes the
    /// snapshot into storage itself, away from the thread that drives the core, and then
    /// calls [`snapshot_saved`](Raft::snapshot_saved).
    pub fn snapshot_meta_at(&self, index: LogIndex) -> Result<SnapshotMeta, SnapshotError> {
        let applied = self.log.applied();
        if index > applied || index.0 == 0 {
            return Err(SnapshotError::NotApplied { index, applied });
        }
        let existing = self.log.storage().snapshot_meta().index;
        if index <= existing {
            return Err(SnapshotError::AlreadyCovered { index, existing });
        }
        let term = self.log.term(index).ok_or(StorageError::Compacted {
            index,
            first_index: self.log.first_index(),
        })?;
        let conf = self.conf_state();
        Ok(SnapshotMeta {
            index,
            term,
            voters: conf.voters,
            voters_outgoing: conf.voters_outgoing,
            learners: conf.learners,
        })
    }

    /// Storage now durably holds a snapshot through `index`: discard the log behind it, but
    /// for the trailing entries that let slow followers catch up without the snapshot.
    pub fn snapshot_saved(&mut self, index: LogIndex) -> Result<(), SnapshotError> {
        let upto = LogIndex(
            index
                .0
                .saturating_sub(self.config.snapshot_trailing_entries),
        )
        .min(self.log.persisted_index());
        if upto >= self.log.first_index() {
            self.log.storage_mut().compact(upto)?;
        }
        Ok(())
    }

    /// Sends `to` the next chunk of the current snapshot. Returns whether a message was sent.
    pub(crate) fn send_snapshot(&mut self, to: NodeId) -> bool {
        let meta = self.log.storage().snapshot_meta();
        if meta.index.0 == 0 {
            return false;
        }
        let Some(progress) = self.tracker.get_mut(to) else {
            return false;
        };
        let offset = match progress.state() {
            ProgressState::Snapshot { index, offset } if index == meta.index => offset,
            _ => {
                progress.become_snapshot(meta.index);
                0
            }
        };
        if progress.is_paused() {
            return false;
        }
        let total = self.log.storage().snapshot_len();
        let data = match self
            .log
            .storage()
            .snapshot_chunk(offset, self.config.max_snapshot_chunk_bytes)
        {
            Ok(data) => data,
            Err(_) => return false, // storage trouble: the next heartbeat tries again
        };
        let done = offset + data.len() as u64 >= total;
        let progress = self.tracker.get_mut(to).expect("checked above");
        progress.sent_snapshot_chunk();
        self.send(
            to,
            MessageBody::InstallSnapshot {
                meta,
                offset,
                data,
                done,
            },
        );
        true
    }

    /// Figure 13, receiver side.
    pub(crate) fn handle_install_snapshot(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        data: Vec<u8>,
        done: bool,
    ) {
        if !self.follow(from) {
            return; // Election Safety: no other leader can exist in this term.
        }
        if self.snapshot_inbox.to_install.is_some() {
            // One snapshot per batch: the next one waits until this one is installed (the
            // leader resends it with the heartbeat interval's next heartbeat).
            return;
        }
        let index = meta.index;
        // Never go back: a snapshot no newer than what is committed (hence what may be applied)
        // is not installed; the follower already holds all it covers.
        if index <= self.log.committed() {
            self.answer_snapshot(from, index, 0, true);
            return;
        }
        let expected = self.snapshot_inbox.expected_offset(&meta);
        if offset != expected {
            // A chunk was lost or repeated: ask for the transfer to continue where it stands.
            self.answer_snapshot(from, index, expected, false);
            return;
        }
        let next_offset = offset.saturating_add(data.len() as u64);
        self.receive_snapshot_chunk(meta, offset, data, done);
        // Thesis §3.8: the acknowledgement promises the chunk is durable.
        let term = self.term;
        self.outbox.send_after_persist(crate::message::Message {
            from: self.id,
            to: from,
            term,
            body: MessageBody::InstallSnapshotResponse {
                index,
                next_offset,
                installed: done,
            },
        });
    }

    /// Answers a chunk that was not taken: already covered, or not the one expected.
    fn answer_snapshot(&mut self, to: NodeId, index: LogIndex, next_offset: u64, installed: bool) {
        self.send(
            to,
            MessageBody::InstallSnapshotResponse {
                index,
                next_offset,
                installed,
            },
        );
    }

    /// Keeps the chunk expected next for the Ready to stage; the last one completes the
    /// snapshot, which replaces the log and the membership at once.
    fn receive_snapshot_chunk(
        &mut self,
        meta: SnapshotMeta,
        offset: u64,
        data: Vec<u8>,
        done: bool,
    ) {
        let next_offset = offset.saturating_add(data.len() as u64);
        self.snapshot_inbox.chunks.push(SnapshotChunk {
            meta: meta.clone(),
            offset,
            data,
        });
        if done {
            self.snapshot_inbox.receiving = None;
            self.log.restore(meta.index, meta.term);
            self.set_conf_state(&ConfState {
                voters: meta.voters.clone(),
                voters_outgoing: meta.voters_outgoing.clone(),
                learners: meta.learners.clone(),
            });
            self.snapshot_inbox.to_install = Some(meta);
        } else {
            self.snapshot_inbox.receiving = Some((meta, next_offset));
        }
    }

    /// Follower: the snapshot being received from the leader and the offset of the next chunk
    /// it expects. A chunk at that offset with `done` set completes it.
    pub fn incoming_snapshot(&self) -> Option<(&SnapshotMeta, u64)> {
        self.snapshot_inbox
            .receiving
            .as_ref()
            .map(|(meta, next)| (meta, *next))
    }

    /// Chunks received that the next Ready has not handed out yet, or a received snapshot not
    /// yet handed out for installing.
    pub fn has_pending_snapshot_output(&self) -> bool {
        self.snapshot_inbox.has_output()
    }

    /// The leader learns how far a follower got with the snapshot.
    pub(crate) fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        index: LogIndex,
        next_offset: u64,
        installed: bool,
    ) {
        if self.role != Role::Leader {
            return;
        }
        // Answers about a snapshot this leader does not hold, or offsets past its end, are
        // not answers to anything it sent.
        let current = self.log.storage().snapshot_meta().index;
        if index > self.log.last_index()
            || (!installed && (index != current || next_offset > self.log.storage().snapshot_len()))
        {
            return;
        }
        let Some(progress) = self.tracker.get_mut(from) else {
            return;
        };
        progress.mark_active();
        if installed {
            if index > progress.match_index()
                || matches!(progress.state(), ProgressState::Snapshot { .. })
            {
                progress.snapshot_installed(index);
                self.maybe_commit();
            }
            self.send_appends(from);
        } else if progress.snapshot_acknowledged(index, next_offset) {
            self.send_snapshot(from);
        }
    }
}
