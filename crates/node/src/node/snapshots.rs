//! Snapshots the node takes of its own state machine: the policy (one setting,
//! `snapshot_every_entries`, and operators' requests) and the file's life as an effect.
//!
//! When the node decides to snapshot, it freezes the state machine's state at its applied
//! index ([`StateMachine::freeze`]: a clone of a persistent map, O(1) in the store's size),
//! or serializes it then if the state machine cannot freeze. The driver serializes the
//! frozen state and writes the file — on a thread of its own in the server, in a later event
//! in the simulator, in line in [`Node::run`] — while the node goes on applying. Once
//! it is written and synced, it becomes the current snapshot and the log behind it is
//! compacted (thesis §5.1: a snapshot replaces the log entries it covers).

use skiff_raft::{LogIndex, LogStorage};
use skiff_wal::Disk;

use super::{Event, Node};
use crate::effect::{Effect, SnapshotData, SnapshotJob, SnapshotToken};
use crate::error::NodeError;
use crate::payload;
use crate::state_machine::StateMachine;

impl<D: Disk, M: StateMachine> Node<D, M> {
    /// Asks for a snapshot now, whatever `snapshot_every_entries` says: it is handed out as
    /// [`Effect::WriteSnapshot`] once no batch or snapshot is in flight, or
    /// [`Event::SnapshotSkipped`] tells that there was nothing new to snapshot.
    pub fn request_snapshot(&mut self) -> Result<(), NodeError> {
        self.snapshot_requested = true;
        self.consider_snapshot()
    }

    /// The snapshot file `token` names is written and synced: it becomes the current
    /// snapshot and the log behind it is compacted. Returns the snapshot's index, or `None`
    /// if a newer snapshot (one received from the leader) took its place meanwhile.
    pub fn snapshot_written(
        &mut self,
        token: SnapshotToken,
    ) -> Result<Option<LogIndex>, NodeError> {
        self.check_snapshot(&token)?;
        self.snapshot_in_flight = None;
        let index = token.write.meta().index;
        let installed = if self
            .raw
            .storage_mut()
            .install_written_snapshot(token.write)?
        {
            self.raw.snapshot_saved(index)?;
            self.event(Event::SnapshotTaken { index });
            Some(index)
        } else {
            None
        };
        self.consider_requested_snapshot()?;
        Ok(installed)
    }

    /// The snapshot file `token` names could not be written (the driver removes what it
    /// wrote): the log is untouched, and the next snapshot tries again.
    pub fn snapshot_abandoned(&mut self, token: SnapshotToken) -> Result<(), NodeError> {
        self.check_snapshot(&token)?;
        self.snapshot_in_flight = None;
        self.consider_requested_snapshot()
    }

    /// Writes and syncs the snapshot file of `job` on the node's own disk, then
    /// [`snapshot_written`](Node::snapshot_written): for a driver without a snapshot thread.
    pub fn write_snapshot(&mut self, job: SnapshotJob) -> Result<Option<LogIndex>, NodeError> {
        self.check_snapshot(&job.token)?;
        let SnapshotJob { mut token, data } = job;
        let data = data.serialize();
        let written = self
            .raw
            .storage_mut()
            .write_snapshot_file(&mut token.write, &data);
        drop(data);
        if let Err(error) = written {
            // The log removed what it wrote; the next snapshot tries again.
            self.snapshot_in_flight = None;
            return Err(error.into());
        }
        self.snapshot_written(token)
    }

    /// At the end of a batch, or on request: hands out a snapshot if one is due or asked for
    /// and none is in flight.
    pub(super) fn consider_snapshot(&mut self) -> Result<(), NodeError> {
        if self.snapshot_in_flight.is_some() || self.writing.is_some() {
            return Ok(());
        }
        let every = self.config.snapshot_every_entries;
        let due = every > 0 && self.entries_since_snapshot() >= every;
        if !due && !self.snapshot_requested {
            return Ok(());
        }
        let requested = std::mem::take(&mut self.snapshot_requested);
        let Some((index, data)) = self.snapshot_data() else {
            if requested {
                self.event(Event::SnapshotSkipped {
                    applied: self.applied,
                });
            }
            return Ok(());
        };
        let meta = self.raw.snapshot_meta_at(index)?;
        let write = self.raw.storage().prepare_snapshot_write(meta)?;
        self.snapshots += 1;
        self.snapshot_in_flight = Some(self.snapshots);
        let token = SnapshotToken {
            snapshot: self.snapshots,
            write,
        };
        self.effects
            .push(Effect::WriteSnapshot(SnapshotJob { token, data }));
        Ok(())
    }

    /// After a snapshot file: an operator's request that came meanwhile is considered now.
    fn consider_requested_snapshot(&mut self) -> Result<(), NodeError> {
        if self.snapshot_requested {
            self.consider_snapshot()?;
        }
        Ok(())
    }

    /// Refuses a snapshot token that is not the one in flight.
    fn check_snapshot(&self, token: &SnapshotToken) -> Result<(), NodeError> {
        if self.snapshot_in_flight == Some(token.snapshot) {
            Ok(())
        } else {
            Err(NodeError::OutOfStep(
                "no snapshot file is being written under this token",
            ))
        }
    }

    /// Entries applied since the last snapshot.
    fn entries_since_snapshot(&self) -> u64 {
        self.applied
            .0
            .saturating_sub(self.raw.storage().snapshot_meta().index.0)
    }

    /// The state machine's snapshot data — its state frozen now, or serialized now if it
    /// cannot freeze — and the index it reflects, when there is something new to snapshot
    /// and the node may take it now.
    fn snapshot_data(&self) -> Option<(LogIndex, SnapshotData)> {
        // The snapshot is labelled with the index its data reflects: the state machine's.
        // The core's applied index runs ahead of it while a snapshot received from the
        // leader is still being written (the core has restored it, the state machine not).
        let index = self.applied;
        // A snapshot the core received and has not handed over yet will replace the state
        // machine, and the log below it is no longer the core's to read: nothing to take.
        let receiving = self.raw.raft().log().applied() > index;
        // Mid-batch, entries applied by `write_batch` are not yet applied in the core (and a
        // configuration change among them not yet in effect).
        if index <= self.raw.storage().snapshot_meta().index || receiving || self.is_writing() {
            return None;
        }
        let mut bytes = Vec::new();
        payload::put_snapshot_header(&self.members, &mut bytes);
        // Frozen at `index`: the writes applied after this, while a driver serializes it
        // elsewhere, never reach it.
        let frozen = self.state_machine.freeze();
        if frozen.is_none() {
            self.state_machine.snapshot_into(&mut bytes);
        }
        Some((index, SnapshotData { bytes, frozen }))
    }
}
