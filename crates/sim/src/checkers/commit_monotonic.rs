//! Durability of commitment: a node's durable commit index never moves back, and nothing a
//! node applied is lost across its crash — on restart its disk still holds those very
//! entries.
//!
//! The commit index itself is volatile state (Figure 2). A node writes it with each batch
//! but does not sync for it alone, so a restarted node may know less of it than it had
//! applied; it learns the rest from the leader. It never knows less than it had synced.

use std::collections::BTreeMap;

use skiff_raft::{LogIndex, NodeId};

use super::{entry_digest, CommittedEntry, LogView, Violation};

/// Each node's highest durable commit index and highest applied index.
#[derive(Debug, Default)]
pub struct CommitMonotonic {
    durable_commit: BTreeMap<NodeId, LogIndex>,
    applied: BTreeMap<NodeId, LogIndex>,
    applied_before_crash: BTreeMap<NodeId, LogIndex>,
}

impl CommitMonotonic {
    /// `node` persisted `commit` in its hard state.
    pub fn persisted_commit(&mut self, node: NodeId, commit: LogIndex) -> Result<(), Violation> {
        let before = self.durable_commit.get(&node).copied().unwrap_or_default();
        if commit < before {
            return Err(Violation {
                property: "Commit Monotonic",
                detail: format!("{node} persisted commit {commit} after having persisted {before}"),
            });
        }
        self.durable_commit.insert(node, commit);
        Ok(())
    }

    /// `node` applied `index`.
    pub fn applied(&mut self, node: NodeId, index: LogIndex) -> Result<(), Violation> {
        self.applied.insert(node, index);
        Ok(())
    }

    /// `node` crashed.
    pub fn crashed(&mut self, node: NodeId) {
        let applied = self.applied.remove(&node).unwrap_or_default();
        let before = self
            .applied_before_crash
            .get(&node)
            .copied()
            .unwrap_or_default();
        self.applied_before_crash.insert(node, applied.max(before));
    }

    /// `node`'s disk was replaced by an empty one: nothing of its old disk is expected back.
    pub fn wiped(&mut self, node: NodeId) {
        self.durable_commit.remove(&node);
        self.applied.remove(&node);
        self.applied_before_crash.remove(&node);
    }

    /// `node` restarted with durable `commit` over `log`; `committed` is what was applied anywhere.
    pub fn restarted(
        &mut self,
        node: NodeId,
        commit: LogIndex,
        log: &dyn LogView,
        committed: &BTreeMap<LogIndex, CommittedEntry>,
    ) -> Result<(), Violation> {
        let applied = self
            .applied_before_crash
            .get(&node)
            .copied()
            .unwrap_or_default();
        let durable = self.durable_commit.get(&node).copied().unwrap_or_default();
        if commit < durable {
            return Err(Violation {
                property: "Commit Monotonic",
                detail: format!(
                    "{node} restarted with commit {commit} after having synced commit {durable}"
                ),
            });
        }
        // Entries below the first index are covered by the node's snapshot.
        for (&index, committed) in committed
            .range(..=applied)
            .filter(|(&index, _)| index >= log.first_index())
        {
            let term = committed.term;
            if log.entry(index).as_ref().map(entry_digest) != Some(committed.digest) {
                return Err(Violation {
                    property: "Applied Entries Survive Crashes",
                    detail: format!("{node} applied {index}/{term} before crashing, and its disk no longer holds it"),
                });
            }
        }
        Ok(())
    }
}
