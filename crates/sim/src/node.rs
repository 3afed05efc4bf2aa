//! One simulated node: the durable state that survives a crash, and the volatile core and
//! state machine that do not. The driver loop orders persist → send → apply → advance.

use std::cell::RefCell;
use std::rc::Rc;

use skiff_raft::{
    Config, Entry, HardState, LogIndex, LogStorage, MemStorage, Message, RawNode, SoftState,
    StorageError, Term,
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
}

/// What one pass of the driver did, for the cluster to route and the checkers to observe.
#[derive(Debug, Default)]
pub struct DriveOutput {
    /// Role or leader changes, in order.
    pub soft_states: Vec<SoftState>,
    /// Entries written to the durable log, in order.
    pub persisted_entries: Vec<Entry>,
    /// Hard states made durable, in order.
    pub persisted_hard_states: Vec<HardState>,
    /// Messages to put on the network, in the order they may leave.
    pub outbox: Vec<Message>,
    /// Entries applied to the state machine, in order.
    pub applied: Vec<Entry>,
}

/// A simulated node.
#[derive(Debug)]
pub struct SimNode {
    /// Durable: the log on disk.
    pub storage: SimStorage,
    /// Durable: the last hard state written.
    pub hard_state: HardState,
    /// Volatile: the running core, `None` while crashed.
    pub raw: Option<RawNode<SimStorage>>,
    /// Volatile: the state machine, as the list of applied entries' indexes and payloads.
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
            applied_index: LogIndex(0),
            incarnation: 0,
        }
    }

    /// Whether the process is running.
    pub fn is_up(&self) -> bool {
        self.raw.is_some()
    }

    /// Crash: everything not written to the durable log and hard state is lost.
    pub fn crash(&mut self) {
        self.raw = None;
        self.applied_index = LogIndex(0);
    }

    /// Restart from the durable state with `config` (whose seed should differ per life).
    pub fn restart(&mut self, config: Config) -> Result<(), skiff_raft::StartError> {
        let raw = RawNode::new(config, self.storage.clone(), self.hard_state)?;
        self.raw = Some(raw);
        self.applied_index = LogIndex(0);
        self.incarnation += 1;
        Ok(())
    }

    /// Runs the Ready loop until the core has nothing more: persist, send, apply, advance.
    pub fn drive(&mut self) -> DriveOutput {
        let mut out = DriveOutput::default();
        let Some(raw) = self.raw.as_mut() else {
            return out;
        };
        while raw.has_ready() {
            let ready = raw.ready();
            if let Some(soft) = ready.soft_state {
                out.soft_states.push(soft);
            }
            // 1. Persist: entries first, then the hard state that may point into them.
            raw.storage_mut()
                .append(&ready.entries)
                .expect("the simulated log accepts the core's appends");
            out.persisted_entries.extend(ready.entries.iter().cloned());
            if let Some(hard_state) = ready.hard_state {
                self.hard_state = hard_state;
                out.persisted_hard_states.push(hard_state);
            }
            // 2. Send: the messages that could go at once, then those that needed durability.
            out.outbox.extend(ready.messages.iter().cloned());
            out.outbox.extend(ready.persisted_messages.iter().cloned());
            // 3. Apply.
            for entry in &ready.committed_entries {
                assert_eq!(
                    entry.index,
                    self.applied_index.next(),
                    "entries are applied in order"
                );
                self.applied_index = entry.index;
                out.applied.push(entry.clone());
            }
            // 4. Advance.
            raw.advance(ready);
        }
        out
    }
}
