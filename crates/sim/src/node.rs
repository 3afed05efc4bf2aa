//! One simulated node: the durable state that survives a crash, and the volatile core and
//! state machine that do not. The driver loop orders persist → send → apply → advance.

use std::cell::RefCell;
use std::rc::Rc;

use skiff_raft::{
    Config, Entry, HardState, LogIndex, LogStorage, MemStorage, Message, RawNode, ReadState, Ready,
    SnapshotMeta, SoftState, StorageError, Term,
};

/// The simulated disk: a log that outlives the node's process. Shared between the durable
/// side (kept across crashes) and the running core that appends to it.
#[derive(Clone, Debug, Default)]
pub struct SimStorage(Rc<RefCell<MemStorage>>);

impl LogStorage for SimStorage {
    fn first_index(&self) -> LogIndex {
        self.0.borrow().first_index()
    }
    fn last_index(&self) -> LogIndex {
        self.0.borrow().last_index()
    }
    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        self.0.borrow().term(index)
    }
    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.0.borrow().entries(low, high, max_bytes)
    }
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.0.borrow_mut().append(entries)
    }
    fn snapshot_meta(&self) -> SnapshotMeta {
        self.0.borrow().snapshot_meta()
    }
    fn snapshot_len(&self) -> u64 {
        self.0.borrow().snapshot_len()
    }
    fn snapshot_chunk(&self, offset: u64, max_bytes: u64) -> Result<Vec<u8>, StorageError> {
        self.0.borrow().snapshot_chunk(offset, max_bytes)
    }
    fn save_snapshot(&mut self, meta: SnapshotMeta, data: Vec<u8>) -> Result<(), StorageError> {
        self.0.borrow_mut().save_snapshot(meta, data)
    }
    fn compact(&mut self, upto: LogIndex) -> Result<(), StorageError> {
        self.0.borrow_mut().compact(upto)
    }
    fn stage_snapshot_chunk(
        &mut self,
        meta: &SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> Result<(), StorageError> {
        self.0.borrow_mut().stage_snapshot_chunk(meta, offset, data)
    }
    fn install_staged_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), StorageError> {
        self.0.borrow_mut().install_staged_snapshot(meta)
    }
}

/// What the first half of a driver pass produced: the batch's role change and the messages
/// that may leave before the disk write.
#[derive(Debug, Default)]
pub struct BeginOutput {
    /// Role or leader change, if any.
    pub soft_state: Option<SoftState>,
    /// Messages that may be sent before the batch is durable.
    pub messages: Vec<Message>,
    /// Reads confirmed by the leader: serve each once the state machine reached its index.
    pub read_states: Vec<ReadState>,
    /// Reads refused.
    pub failed_reads: Vec<u64>,
}

/// What the second half of a driver pass did, once the disk write completed.
#[derive(Debug, Default)]
pub struct FinishOutput {
    /// Entries written to the durable log, in order.
    pub persisted_entries: Vec<Entry>,
    /// The hard state made durable, if it changed.
    pub persisted_hard_state: Option<HardState>,
    /// Messages that needed durability, now free to go.
    pub persisted_messages: Vec<Message>,
    /// Entries applied to the state machine, in order.
    pub applied: Vec<Entry>,
    /// A snapshot received from the leader and installed, with its data: the state machine
    /// restarts from it before `applied`.
    pub installed_snapshot: Option<(SnapshotMeta, Vec<u8>)>,
}

/// A simulated node.
///
/// The driver runs in two halves, as a real one with an asynchronous disk does:
/// [`begin`](SimNode::begin) takes a Ready and releases the messages that may go at once;
/// [`finish`](SimNode::finish), after the disk delay, persists the batch, releases the
/// messages that needed durability, applies committed entries and advances. The core keeps
/// stepping messages and ticks in between; a crash in between loses the batch.
#[derive(Debug)]
pub struct SimNode {
    /// Durable: the log on disk.
    pub storage: SimStorage,
    /// Durable: the last hard state written.
    pub hard_state: HardState,
    /// Volatile: the running core, `None` while crashed.
    pub raw: Option<RawNode<SimStorage>>,
    /// Volatile: the batch being written to disk.
    in_flight: Option<Ready>,
    /// Volatile: the last index applied to the state machine.
    pub applied_index: LogIndex,
    /// Incremented at each restart, so events scheduled for an earlier life are ignored.
    pub incarnation: u64,
}

impl SimNode {
    /// A node that has never run, started with `config`.
    pub fn new(config: Config) -> SimNode {
        let storage = SimStorage::default();
        let raw = RawNode::new(config, storage.clone(), HardState::default())
            .expect("valid simulator config");
        SimNode {
            storage,
            hard_state: HardState::default(),
            raw: Some(raw),
            in_flight: None,
            applied_index: LogIndex(0),
            incarnation: 0,
        }
    }

    /// Whether the process is running.
    pub fn is_up(&self) -> bool {
        self.raw.is_some()
    }

    /// Whether a batch is being written.
    pub fn is_writing(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Whether the core has a batch to hand out and no batch is being written.
    pub fn can_begin(&self) -> bool {
        self.in_flight.is_none() && self.raw.as_ref().is_some_and(RawNode::has_ready)
    }

    /// Crash: everything not written to the durable log and hard state is lost.
    pub fn crash(&mut self) {
        self.raw = None;
        self.in_flight = None;
        self.applied_index = LogIndex(0);
    }

    /// Restart from the durable state with `config` (whose seed should differ per life). The
    /// state machine restarts from the durable snapshot, if any: its metadata and data are
    /// returned.
    pub fn restart(
        &mut self,
        mut config: Config,
    ) -> Result<(SnapshotMeta, Vec<u8>), skiff_raft::StartError> {
        let meta = self.storage.snapshot_meta();
        let data = self
            .storage
            .snapshot_chunk(0, self.storage.snapshot_len())
            .unwrap_or_default();
        config.applied = meta.index;
        let raw = RawNode::new(config, self.storage.clone(), self.hard_state)?;
        self.raw = Some(raw);
        self.in_flight = None;
        self.applied_index = meta.index;
        self.incarnation += 1;
        Ok((meta, data))
    }

    /// First half: takes the next Ready and releases the messages that may go at once.
    pub fn begin(&mut self) -> BeginOutput {
        let Some(raw) = self
            .raw
            .as_mut()
            .filter(|raw| self.in_flight.is_none() && raw.has_ready())
        else {
            return BeginOutput::default();
        };
        let mut ready = raw.ready();
        let out = BeginOutput {
            soft_state: ready.soft_state.take(),
            messages: std::mem::take(&mut ready.messages),
            read_states: std::mem::take(&mut ready.read_states),
            failed_reads: std::mem::take(&mut ready.failed_reads),
        };
        self.in_flight = Some(ready);
        out
    }

    /// Second half: persist, send what needed durability, apply, advance.
    pub fn finish(&mut self) -> FinishOutput {
        let (Some(raw), Some(mut ready)) = (self.raw.as_mut(), self.in_flight.take()) else {
            return FinishOutput::default();
        };
        // 1. Persist: snapshot chunks, an installed snapshot, entries, then the hard state.
        let storage = raw.storage_mut();
        ready
            .write_log(storage)
            .expect("the simulated log accepts the core's writes");
        let installed_snapshot = ready.snapshot.as_ref().map(|meta| {
            let data = storage
                .snapshot_chunk(0, storage.snapshot_len())
                .expect("the snapshot just installed");
            self.applied_index = meta.index;
            (meta.clone(), data)
        });
        if let Some(hard_state) = ready.hard_state {
            self.hard_state = hard_state;
        }
        // 2. Send what waited for durability.
        let persisted_messages = std::mem::take(&mut ready.persisted_messages);
        // 3. Apply.
        for entry in &ready.committed_entries {
            assert_eq!(
                entry.index,
                self.applied_index.next(),
                "entries are applied in order"
            );
            self.applied_index = entry.index;
        }
        let out = FinishOutput {
            persisted_entries: ready.entries.clone(),
            persisted_hard_state: ready.hard_state,
            persisted_messages,
            applied: ready.committed_entries.clone(),
            installed_snapshot,
        };
        // 4. Advance.
        raw.advance(ready);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_storage_passes_the_log_storage_conformance_suite() {
        skiff_raft::storage::conformance::run_log_storage_suite(SimStorage::default);
        skiff_raft::storage::conformance::run_snapshot_suite(SimStorage::default);
    }
}
