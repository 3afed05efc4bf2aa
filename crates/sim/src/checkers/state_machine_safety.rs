//! State Machine Safety (Figure 3, §5.4.3): if a server has applied a log entry at a given
//! index to its state machine, no other server will ever apply a different entry for that
//! index. Also: each node applies indexes in order, each once per life.

use std::collections::BTreeMap;

use skiff_raft::{Entry, LogIndex, NodeId, Term};

use super::{entry_digest, CommittedEntry, Violation};

/// Every entry applied anywhere, by index; and each node's last applied index.
#[derive(Debug, Default)]
pub struct StateMachineSafety {
    committed: BTreeMap<LogIndex, CommittedEntry>,
    last_applied: BTreeMap<NodeId, LogIndex>,
    /// The state machine's digest after applying each index, as first seen.
    state_after: BTreeMap<LogIndex, (u64, NodeId)>,
}

impl StateMachineSafety {
    /// `node`, whose term is now `node_term`, applied `entry`.
    pub fn applied(
        &mut self,
        node: NodeId,
        node_term: Term,
        entry: &Entry,
        state: u64,
    ) -> Result<(), Violation> {
        self.check_state(node, entry.index, state)?;
        let last = self.last_applied.get(&node).copied().unwrap_or_default();
        if entry.index != last.next() {
            return Err(Violation {
                property: "State Machine Safety",
                detail: format!("{node} applied {} right after {last}", entry.index),
            });
        }
        self.last_applied.insert(node, entry.index);
        let digest = entry_digest(entry);
        match self.committed.get_mut(&entry.index) {
            Some(seen) if seen.digest != digest => Err(Violation {
                property: "State Machine Safety",
                detail: format!(
                    "{node} applied {}/{} but {} applied {}/{} there",
                    entry.index, entry.term, seen.first_applier, entry.index, seen.term
                ),
            }),
            Some(seen) => {
                seen.committed_by_term = seen.committed_by_term.min(node_term);
                Ok(())
            }
            None => {
                let committed = CommittedEntry {
                    term: entry.term,
                    digest,
                    committed_by_term: node_term,
                    first_applier: node,
                };
                self.committed.insert(entry.index, committed);
                Ok(())
            }
        }
    }

    /// `node` replaced its state machine with a snapshot at `index` (state digest `state`).
    pub fn restored(&mut self, node: NodeId, index: LogIndex, state: u64) -> Result<(), Violation> {
        self.check_state(node, index, state)?;
        self.last_applied.insert(node, index);
        Ok(())
    }

    /// Every state machine that reached `index` must be in the same state there.
    fn check_state(&mut self, node: NodeId, index: LogIndex, state: u64) -> Result<(), Violation> {
        match self.state_after.get(&index) {
            Some(&(seen, first)) if seen != state => Err(Violation {
                property: "State Machine Safety",
                detail: format!("{node}'s state after {index} differs from {first}'s"),
            }),
            Some(_) => Ok(()),
            None => {
                self.state_after.insert(index, (state, node));
                Ok(())
            }
        }
    }

    /// `node` lost its state machine: it will apply again from the start.
    pub fn crashed(&mut self, node: NodeId) {
        self.last_applied.remove(&node);
    }

    /// Every entry applied somewhere, hence committed, by index.
    pub fn committed(&self) -> &BTreeMap<LogIndex, CommittedEntry> {
        &self.committed
    }
}
