//! The batch pipeline: the one order in which a node persists, sends, applies and advances.
//!
//! A batch goes through three steps, each ended by the driver with the token of the effect
//! that asked for it:
//!
//! 1. [`Node::begin_batch`] takes the core's Ready, hands out the messages that may leave
//!    before anything is durable (so followers write in parallel with the leader, thesis
//!    §10.2.1) and asks for [`Effect::WriteBatch`];
//! 2. [`Node::write_batch`] writes the batch into the log without its sync and asks for
//!    [`Effect::SyncBatch`]; meanwhile the driver may call [`Node::apply_durable`], in steps,
//!    to apply the committed entries that were durable before the batch and answer their
//!    clients;
//! 3. [`Node::batch_synced`] (or [`Node::sync_batch`], which syncs on the node's own disk)
//!    releases the messages that promise durability, applies the rest, answers clients,
//!    advances the core and, when one is due, asks for [`Effect::WriteSnapshot`]. A driver
//!    that wants those messages sent before the apply calls [`Node::release_synced`] first
//!    (after [`Node::sync_written`], when the node syncs on its own disk).

use std::path::{Path, PathBuf};

use skiff_raft::{EntryKind, LogStorage, Ready};
use skiff_wal::Disk;

use super::incarnations::is_incarnation_record;
use super::{Event, Node, Observer, Origin};
use crate::effect::{BatchToken, Effect, SyncToken};
use crate::error::NodeError;
use crate::refusals;
use crate::state_machine::StateMachine;
use crate::wire::PeerMessage;

/// The batch between [`Node::begin_batch`] and [`Node::batch_synced`].
#[derive(Debug)]
pub(super) struct Writing {
    /// Its number, which its tokens carry.
    pub(super) batch: u64,
    pub(super) ready: Ready,
    pub(super) stage: Stage,
    /// The last entry durable in storage when the batch began. The core's
    /// `persisted_index` may move past it before the write (a snapshot restored from the
    /// leader meanwhile sets it to the snapshot's index, which storage does not hold yet).
    pub(super) durable: skiff_raft::LogIndex,
}

/// How far a batch got.
#[derive(Debug)]
pub(super) enum Stage {
    /// Taken from the core; [`Effect::WriteBatch`] handed out.
    Begun,
    /// Written, and waiting for `unsynced` to be synced, if that is `Some`. The first
    /// `durable_committed` of its committed entries were durable before it: they may be
    /// applied while it syncs ([`Node::apply_durable`]). `released` once the sync is done and
    /// what promised durability is handed out ([`Node::release_synced`]).
    Written {
        unsynced: Option<PathBuf>,
        durable_committed: usize,
        released: bool,
    },
}

impl<D: Disk, M: StateMachine> Node<D, M> {
    /// Everything the node asks of its driver since the last call, in the order produced.
    pub fn take_effects(&mut self) -> Vec<Effect<M::Reply>> {
        std::mem::take(&mut self.effects)
    }

    /// Whether a batch is in flight (between [`begin_batch`](Node::begin_batch) and
    /// [`batch_synced`](Node::batch_synced)).
    pub fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    /// Whether [`begin_batch`](Node::begin_batch) would start a batch.
    pub fn has_ready(&self) -> bool {
        self.writing.is_none() && self.raw.has_ready()
    }

    /// Takes the core's next batch, if there is one and none is in flight: hands out the
    /// messages that may leave before it is durable, then [`Effect::WriteBatch`]. Returns
    /// whether a batch began.
    pub fn begin_batch(&mut self) -> bool {
        if !self.has_ready() {
            return false;
        }
        let mut ready = self.raw.ready();
        self.fail_orphaned_forwards();
        if let Some(soft_state) = ready.soft_state.take() {
            self.event(Event::RoleChanged {
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
                self.reply(
                    Origin::Local(ctx),
                    M::refused(refusals::READ_NOT_CONFIRMED.into()),
                );
            }
        }
        self.serve_confirmed_reads();
        self.send_all(std::mem::take(&mut ready.messages));
        self.batches += 1;
        let batch = self.batches;
        let durable = self.raw.raft().log().persisted_index();
        self.writing = Some(Writing {
            batch,
            ready,
            stage: Stage::Begun,
            durable,
        });
        self.effects.push(Effect::WriteBatch(BatchToken { batch }));
        true
    }

    /// Writes the batch `token` names into the log without its final sync, and asks for
    /// [`Effect::SyncBatch`]. The committed entries that were durable here before it wait
    /// for the driver: [`apply_durable`](Node::apply_durable) applies them, in steps, when it
    /// chooses (the server's leader does, since they answer its clients; its followers leave
    /// them to `batch_synced`, after the acknowledgement), and `batch_synced` applies what is
    /// left. Until the batch is synced, `step`, `tick` and `submit` may go on, but no new
    /// batch begins.
    ///
    /// An error is a disk failure (the node must stop; recovery decides on restart what was
    /// durable) or a token of another step ([`NodeError::OutOfStep`]).
    pub fn write_batch(&mut self, token: BatchToken) -> Result<(), NodeError> {
        match &self.writing {
            Some(writing)
                if writing.batch == token.batch && matches!(writing.stage, Stage::Begun) => {}
            _ => {
                return Err(NodeError::OutOfStep(
                    "no batch waits to be written under this token",
                ))
            }
        }
        let Some(Writing {
            batch,
            ready,
            durable: durable_at_begin,
            ..
        }) = self.writing.take()
        else {
            unreachable!("checked above");
        };
        // 1. Persist: snapshot chunks, a received snapshot, then entries and hard state as one
        //    batch with one fsync (group commit).
        let wal = self.raw.storage_mut();
        for chunk in &ready.snapshot_chunks {
            wal.stage_snapshot_chunk(&chunk.meta, chunk.offset, &chunk.data)?;
            self.incoming_snapshot
                .chunk_staged(&chunk.meta, chunk.offset, chunk.data.len() as u64);
            self.effects
                .push(Effect::Event(Event::SnapshotChunkReceived {
                    index: chunk.meta.index,
                    received: chunk.offset + chunk.data.len() as u64,
                }));
        }
        if let Some(meta) = &ready.snapshot {
            wal.install_staged_snapshot(meta)?;
            self.incoming_snapshot.installed();
        }
        let mut unsynced = if !ready.entries.is_empty() || ready.hard_state.is_some() {
            wal.append_batch_unsynced(&ready.entries, ready.hard_state)?
        } else {
            None
        };
        // §3.8: a node must not forget a recorded incarnation it acted on, so one takes effect
        // only once a durable commit index covers it (a restart then takes it in again before
        // the node steps a message). Records are rare: the commit index alone is synced for
        // them, and for nothing else.
        if unsynced.is_none() && ready.committed_entries.iter().any(is_incarnation_record) {
            unsynced = wal.unsynced_path().map(Path::to_path_buf);
        }
        // 2. What was already durable here (on a leader, every committed entry: its own vote
        //    toward commitment counts only durable entries) may be applied while the batch
        //    syncs. A received snapshot replaces the state machine first, so nothing goes
        //    before it; a configuration change takes effect in the core at `advance`, and a
        //    recorded incarnation once the commit index covering it is synced, so either and
        //    what follows wait for `batch_synced`.
        let durable = self
            .raw
            .raft()
            .log()
            .persisted_index()
            .min(durable_at_begin);
        let durable_committed = if ready.snapshot.is_some() {
            0
        } else {
            ready
                .committed_entries
                .iter()
                .take_while(|entry| {
                    entry.index <= durable
                        && entry.kind != EntryKind::ConfChange
                        && !is_incarnation_record(entry)
                })
                .count()
        };
        self.writing = Some(Writing {
            batch,
            ready,
            stage: Stage::Written {
                unsynced: unsynced.clone(),
                durable_committed,
                released: false,
            },
            durable: durable_at_begin,
        });
        self.effects.push(Effect::SyncBatch(SyncToken {
            batch,
            file: unsynced,
        }));
        Ok(())
    }

    /// Applies up to `at_most` (at least one) of the committed entries of the written batch
    /// that were durable here before it, answering their clients; true while some are left. A driver
    /// calls this between writing the batch and finishing it, in steps if it likes, so that
    /// the replies of a large batch go out while the rest is applied. Nothing is lost
    /// without the call: [`batch_synced`](Node::batch_synced) applies what is left. With no
    /// written batch, it applies nothing.
    pub fn apply_durable(
        &mut self,
        observer: &mut impl Observer<M>,
        at_most: usize,
    ) -> Result<bool, NodeError> {
        let Some(writing) = self.writing.take() else {
            return Ok(false);
        };
        let durable_committed = match &writing.stage {
            Stage::Written {
                durable_committed, ..
            } => *durable_committed,
            Stage::Begun => 0,
        };
        let durable = &writing.ready.committed_entries[..durable_committed];
        let from = durable.partition_point(|entry| entry.index <= self.applied);
        let to = from.saturating_add(at_most.max(1)).min(durable.len());
        let applied = self.apply_entries(&durable[from..to], observer);
        // The batch stays in flight whatever happened: `batch_synced` ends it.
        self.writing = Some(writing);
        applied?;
        self.serve_confirmed_reads();
        Ok(to < durable_committed)
    }

    /// Syncs the batch `token` names on the node's own disk, then
    /// [`batch_synced`](Node::batch_synced): for a driver without a writer thread (the
    /// simulator, tests, [`run`](Node::run)).
    pub fn sync_batch(
        &mut self,
        token: SyncToken,
        observer: &mut impl Observer<M>,
    ) -> Result<(), NodeError> {
        self.sync_written(&token)?;
        self.batch_synced(token, observer)
    }

    /// Syncs the batch `token` names on the node's own disk, and nothing more: a driver
    /// that syncs in line and wants what the sync releases sent before the batch's entries
    /// are applied calls [`release_synced`](Node::release_synced) next, then
    /// [`batch_synced`](Node::batch_synced).
    pub fn sync_written(&mut self, token: &SyncToken) -> Result<(), NodeError> {
        self.check_written(token)?;
        if token.file.is_some() {
            self.raw.storage_mut().sync_batch()?;
        }
        Ok(())
    }

    /// The batch `token` names is durable (its file was synced): hands out the messages that
    /// promised durability (§3.8: vote grants and append acknowledgements only once durable)
    /// without applying anything, so that a driver can send them before the apply, which
    /// for a batch of hundreds of entries takes milliseconds: the leader's commitment waits
    /// for a follower's acknowledgement, not for its apply. [`batch_synced`](Node::batch_synced)
    /// must follow (and releases them itself when this was not called). Called twice, the
    /// second call does nothing.
    pub fn release_synced(
        &mut self,
        token: &SyncToken,
        observer: &mut impl Observer<M>,
    ) -> Result<(), NodeError> {
        self.check_written(token)?;
        let Some(Writing {
            ready,
            stage: Stage::Written {
                unsynced, released, ..
            },
            ..
        }) = &mut self.writing
        else {
            unreachable!("checked above");
        };
        if std::mem::replace(released, true) {
            return Ok(());
        }
        // A batch that only moved the commit index was written but not synced for itself
        // (unless it commits a recorded incarnation).
        let durable_hard_state = unsynced.as_ref().and(ready.hard_state);
        if let Some(file) = unsynced.as_ref() {
            self.raw.storage_mut().batch_synced(file);
        }
        observer.persisted(&ready.entries, durable_hard_state);
        let messages = std::mem::take(&mut ready.persisted_messages);
        self.send_all(messages);
        Ok(())
    }

    /// The batch `token` names is durable (its file was synced): releases the messages that
    /// promise durability (unless [`release_synced`](Node::release_synced) did), applies the
    /// remaining committed entries, answers clients, advances the core, and asks for
    /// [`Effect::WriteSnapshot`] when a snapshot is due.
    pub fn batch_synced(
        &mut self,
        token: SyncToken,
        observer: &mut impl Observer<M>,
    ) -> Result<(), NodeError> {
        // 2. Send what promised durability.
        self.release_synced(&token, observer)?;
        let Some(Writing { ready, .. }) = self.writing.take() else {
            unreachable!("checked by release_synced");
        };
        // 3. Apply.
        if let Some(meta) = &ready.snapshot {
            self.restore_snapshot(meta)?;
            observer.snapshot_installed(meta);
            observer.state_reached(meta.index, &self.state_machine);
        }
        // Those `apply_durable` applied already are behind `applied`.
        self.apply_entries(&ready.committed_entries, observer)?;
        self.serve_confirmed_reads();
        // 4. Advance.
        self.raw.advance(ready);
        self.consider_snapshot()
    }

    /// The synchronous driver, for tests and simple embedders: begins, writes and syncs
    /// batches and writes snapshot files on this thread, until the core has nothing left.
    /// The messages, replies and events stay for [`take_effects`](Node::take_effects).
    pub fn run(&mut self, observer: &mut impl Observer<M>) -> Result<(), NodeError> {
        loop {
            let io = self.effects.iter().position(|effect| {
                matches!(
                    effect,
                    Effect::WriteBatch(_) | Effect::SyncBatch(_) | Effect::WriteSnapshot(_)
                )
            });
            match io.map(|at| self.effects.remove(at)) {
                Some(Effect::WriteBatch(token)) => self.write_batch(token)?,
                Some(Effect::SyncBatch(token)) => self.sync_batch(token, observer)?,
                Some(Effect::WriteSnapshot(job)) => {
                    self.write_snapshot(job)?;
                }
                Some(_) => unreachable!("only I/O effects are picked"),
                None => {
                    if !self.begin_batch() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Refuses a sync token that is not the written batch's.
    fn check_written(&self, token: &SyncToken) -> Result<(), NodeError> {
        match &self.writing {
            Some(Writing {
                batch,
                stage: Stage::Written { unsynced, .. },
                ..
            }) if *batch == token.batch && *unsynced == token.file => Ok(()),
            _ => Err(NodeError::OutOfStep(
                "no written batch waits for a sync under this token",
            )),
        }
    }

    /// Hands out Raft messages to send now.
    fn send_all(&mut self, messages: Vec<skiff_raft::Message>) {
        for message in messages {
            self.send(PeerMessage::Raft(message));
        }
    }

    /// Hands out an event.
    pub(super) fn event(&mut self, event: Event) {
        self.effects.push(Effect::Event(event));
    }
}
