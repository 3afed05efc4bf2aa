//! Snapshots the node takes of its own state machine: the policy (two settings,
//! `snapshot_every_entries` and `snapshot_expansion_factor`, and operators' requests) and the
//! file's life as an effect.
//!
//! When the node decides to snapshot, it freezes the state machine's state at its applied
//! index ([`StateMachine::freeze`]: a clone of a persistent map, O(1) in the store's size),
//! or serializes it then if the state machine cannot freeze. The driver serializes the
//! frozen state and writes the file — on a thread of its own in the server, in a later event
//! in the simulator, in line in [`Node::run`] — while the node goes on applying. Once
//! it is written and synced, it becomes the current snapshot and the log behind it is
//! compacted (thesis §5.1: a snapshot replaces the log entries it covers).
//!
//! Replicas apply the same entries at about the same time, so snapshots due every N entries
//! from index 0 would come on every replica at once, each paying for its snapshot while the
//! others pay for theirs. Each node takes them at its own phase of the N instead
//! ([`snapshot_phase`]): at indexes `phase + k·N`, between N/2 and 3N/2 entries after its
//! last snapshot, wherever that was (one received from the leader, say), so replicas settle
//! into snapshots spread over the period.
//!
//! A snapshot writes the whole state; the log it replaces may be much smaller (a large store
//! under small writes). So a scheduled snapshot also waits until the log written since the
//! last one holds `snapshot_expansion_factor` times that snapshot's bytes (thesis §5.1.2);
//! until then the node looks again at its next phase point, so replicas stay spread. For a
//! store of steady size and a factor F, snapshots then write about 1 / (F + 1) of the bytes
//! the node writes, and the disk holds about F + 2 times the state at most (the old
//! snapshot, the log, the new one).

use skiff_raft::{Entry, LogIndex, LogStorage};
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
        self.snapshot_finished();
        let index = token.write.meta().index;
        let installed = if self
            .raw
            .storage_mut()
            .install_written_snapshot(token.write)?
        {
            self.raw.snapshot_saved(index)?;
            self.log_growth.snapshot_taken();
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
        self.snapshot_finished();
        self.consider_requested_snapshot()
    }

    /// No snapshot file is in flight any more; the next scheduled one rests from here.
    fn snapshot_finished(&mut self) {
        self.snapshot_in_flight = None;
        self.snapshot_finished_at = self.applied.0;
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
            self.snapshot_finished();
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
        let due = self.snapshot_due();
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
        self.log_growth.frozen();
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

    /// Whether the settings ask for a snapshot now: once the applied index reaches this
    /// node's next phase point at least half a period after its last snapshot, half a period
    /// has been applied since the last snapshot file was finished (a snapshot slower than
    /// half a period, on a busy machine, is not followed at once by the next), and the log
    /// written since the last snapshot has outgrown it by the expansion factor.
    fn snapshot_due(&mut self) -> bool {
        let every = self.config.snapshot_every_entries;
        if every == 0 {
            return false;
        }
        let (id, applied) = (self.id().0, self.applied.0);
        let last = self.raw.storage().snapshot_meta().index.0;
        let rested = self.snapshot_finished_at.saturating_add(every / 2);
        let at = next_snapshot_at(id, every, last).max(self.snapshot_deferred_to);
        if applied < at || applied < rested {
            return false;
        }
        let factor = self.config.snapshot_expansion_factor;
        if self
            .log_growth
            .outgrew(self.raw.storage().snapshot_len(), factor)
        {
            return true;
        }
        // §5.1.2: the log has not outgrown the last snapshot; look again at this node's next
        // phase point, not at the first batch that tips it, so replicas stay spread.
        self.snapshot_deferred_to = phase_point_from(id, every, applied.saturating_add(1));
        false
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
        // Mid-batch, entries applied by `apply_durable` are not yet applied in the core (and a
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

/// How much log a node wrote since its last snapshot (thesis §5.1.2: the log's size, weighed
/// against the last snapshot's), in the bytes of the records that carry its entries. Counted
/// as entries are applied, at start-up too, where the log behind the snapshot is applied
/// again; so a restart counts what its log holds.
#[derive(Debug, Default)]
pub(super) struct LogGrowth {
    /// Record bytes of the entries applied since the node opened (wrapping: only
    /// differences are taken).
    applied_bytes: u64,
    /// `applied_bytes` at the index of the current snapshot.
    at_snapshot: u64,
    /// `applied_bytes` when the state for the snapshot file in flight was taken.
    at_freeze: u64,
}

impl LogGrowth {
    /// `entry` was applied.
    pub(super) fn applied(&mut self, entry: &Entry) {
        let record = skiff_wal::record::entry_record_bytes(entry.data.len());
        self.applied_bytes = self.applied_bytes.wrapping_add(record);
    }

    /// The state was taken for a snapshot file at the applied index.
    pub(super) fn frozen(&mut self) {
        self.at_freeze = self.applied_bytes;
    }

    /// The file of the state last taken became the current snapshot.
    pub(super) fn snapshot_taken(&mut self) {
        self.at_snapshot = self.at_freeze;
    }

    /// A snapshot received from the leader replaced the state at the applied index.
    pub(super) fn snapshot_restored(&mut self) {
        self.at_snapshot = self.applied_bytes;
    }

    /// The log's bytes since the current snapshot.
    fn since_snapshot(&self) -> u64 {
        self.applied_bytes.wrapping_sub(self.at_snapshot)
    }

    /// Whether the log since the current snapshot, of `snapshot_bytes`, holds at least
    /// `factor` times its bytes (always, at factor 0 or with no snapshot yet).
    pub(super) fn outgrew(&self, snapshot_bytes: u64, factor: u64) -> bool {
        self.since_snapshot() >= snapshot_bytes.saturating_mul(factor)
    }
}

/// The applied index at which node `id`, snapshotting every `every` entries (not 0), takes
/// its next snapshot after one at `last`: the first index of its phase at least `every / 2`
/// (and at least one) entries after `last`.
fn next_snapshot_at(id: u64, every: u64, last: u64) -> u64 {
    let from = last.saturating_add(every / 2).max(last.saturating_add(1));
    phase_point_from(id, every, from)
}

/// The first index from `from` on that lies at node `id`'s phase of `every` (not 0).
fn phase_point_from(id: u64, every: u64, from: u64) -> u64 {
    let (phase, at) = (snapshot_phase(id, every), from % every);
    let to_phase = if phase >= at {
        phase - at
    } else {
        every - (at - phase)
    };
    from.saturating_add(to_phase)
}

/// Where in each period of `every` entries node `id` takes its snapshots: the fractional
/// part of `id` times the golden ratio's inverse, scaled to the period. Consecutive ids land
/// far apart (ids 1, 2, 3 at 0.62, 0.24, 0.85 of the period), whatever the cluster's size.
fn snapshot_phase(id: u64, every: u64) -> u64 {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15; // 2^64 / φ
    let fraction = id.wrapping_mul(GOLDEN);
    // fraction / 2^64 · every, below every.
    ((u128::from(fraction) * u128::from(every)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The indexes at which node `id` snapshots while applying entries 1 to `through`.
    fn snapshots_of(id: u64, every: u64, through: u64) -> Vec<u64> {
        let mut last = 0;
        let mut taken = Vec::new();
        for applied in 1..=through {
            if applied >= next_snapshot_at(id, every, last) {
                taken.push(applied);
                last = applied;
            }
        }
        taken
    }

    /// Three replicas applying the same entries start their snapshots at different indexes,
    /// each every `every` entries once settled, never sooner than half a period after its
    /// last nor later than one and a half — spread over the period rather than all at once.
    #[test]
    fn replicas_take_their_snapshots_at_indexes_spread_over_the_period() {
        let every = 100;
        let taken: Vec<Vec<u64>> = (1..=3).map(|id| snapshots_of(id, every, 1_000)).collect();
        for snapshots in &taken {
            assert!((50..150).contains(&snapshots[0]), "{snapshots:?}");
            for pair in snapshots.windows(2) {
                assert_eq!(pair[1] - pair[0], every, "{snapshots:?}");
            }
        }
        for (i, a) in taken.iter().enumerate() {
            for b in &taken[i + 1..] {
                let gap = (a[0] % every).abs_diff(b[0] % every);
                assert!(gap.min(every - gap) >= 20, "{a:?} and {b:?} too close");
            }
        }
    }

    /// Thesis §5.1.2: the log is weighed from the state the current snapshot holds, in the
    /// bytes of its records. Entries applied while its file was written count toward the
    /// next one, a snapshot received from the leader starts the count again, and the count
    /// wraps without losing the difference.
    #[test]
    fn the_log_is_weighed_from_the_state_the_current_snapshot_holds() {
        let record = |data: usize| skiff_wal::record::entry_record_bytes(data);
        let applied = |growth: &mut LogGrowth, data: usize| {
            growth.applied(&Entry {
                term: skiff_raft::Term(1),
                index: LogIndex(1),
                kind: skiff_raft::EntryKind::Normal,
                data: vec![0; data].into(),
            })
        };
        let mut growth = LogGrowth::default();
        assert!(growth.outgrew(0, 4), "no snapshot yet: nothing to outgrow");
        applied(&mut growth, 1_000);
        let one = record(1_000);
        assert!(one > 1_000, "a record is more than its data");
        assert!(growth.outgrew(one / 4, 4) && !growth.outgrew(one / 4 + 1, 4));
        assert!(growth.outgrew(u64::MAX, 0), "factor 0: never waits");
        // Taken after the first entry; a second applied while the file was written.
        growth.frozen();
        applied(&mut growth, 300);
        growth.snapshot_taken();
        let two = record(300);
        assert!(growth.outgrew(two, 1) && !growth.outgrew(two + 1, 1));
        // A snapshot from the leader holds everything applied so far.
        growth.snapshot_restored();
        assert!(!growth.outgrew(1, 1));
        applied(&mut growth, 10);
        assert!(growth.outgrew(record(10), 1) && !growth.outgrew(record(10) + 1, 1));
        assert!(
            !growth.outgrew(u64::MAX, 2),
            "the product saturates, not wraps"
        );
        // Across the counter's wrap the difference stays exact.
        growth.applied_bytes = u64::MAX - 5;
        growth.snapshot_restored();
        applied(&mut growth, 100);
        assert!(growth.outgrew(record(100), 1) && !growth.outgrew(record(100) + 1, 1));
    }

    /// After a snapshot at an index off its phase (one installed from the leader, say), a node
    /// waits at least half a period and at most one and a half; one entry a snapshot and a
    /// period as long as an index can be both work.
    #[test]
    fn the_next_snapshot_comes_between_half_and_one_and_a_half_periods_later() {
        for id in 1..=7 {
            for last in [0, 1, 37, 99, 100, 12_345] {
                let next = next_snapshot_at(id, 100, last);
                assert!(
                    (last + 50..last + 150).contains(&next),
                    "{id} {last} {next}"
                );
            }
            assert_eq!(next_snapshot_at(id, 1, 41), 42);
            assert!(next_snapshot_at(id, u64::MAX, 5) > 5);
            assert_eq!(next_snapshot_at(id, u64::MAX, u64::MAX - 1), u64::MAX);
        }
    }
}
