//! [`Observer`]: a watcher of a node's durable and applied history.

use skiff_raft::{Entry, HardState, LogIndex, SnapshotMeta};

use crate::state_machine::StateMachine;

/// Watches a node's durable and applied history (the simulator's checkers do).
pub trait Observer<M: StateMachine> {
    /// A batch became durable. `hard_state` is the batch's hard state if it was synced (a
    /// batch that only moves the commit index is written but not synced for itself).
    fn persisted(&mut self, _entries: &[Entry], _hard_state: Option<HardState>) {}
    /// A snapshot from the leader was installed.
    fn snapshot_installed(&mut self, _meta: &SnapshotMeta) {}
    /// A committed entry was applied; `reply` is the state machine's answer for a client
    /// command.
    fn applied(&mut self, _entry: &Entry, _reply: Option<&M::Reply>) {}
    /// The state machine now holds the effect of every entry up to `index`: called after each
    /// committed entry is applied and after a snapshot from the leader replaced the state
    /// machine, so that a checker can compare replicas' states index by index.
    fn state_reached(&mut self, _index: LogIndex, _state: &M) {}
}

/// An [`Observer`] that watches nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl<M: StateMachine> Observer<M> for NoObserver {}
