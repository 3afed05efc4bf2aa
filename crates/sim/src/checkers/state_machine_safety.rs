//! State Machine Safety (Figure 3, §5.4.3): if a server has applied a log entry at a given
//! index to its state machine, no other server will ever apply a different entry for that
//! index. Also: each node applies indexes in order, each once per life.

use std::collections::BTreeMap;

use skiff_raft::{Entry, LogIndex, NodeId, Term};

use super::{entry_digest, Violation};

/// Every entry applied anywhere, by index; and each node's last applied index.
#[derive(Debug, Default)]
pub struct StateMachineSafety {
    committed: BTreeMap<LogIndex, (Term, u64, NodeId)>,
    digest_view: BTreeMap<LogIndex, (Term, u64)>,
    last_applied: BTreeMap<NodeId, LogIndex>,
}

impl StateMachineSafety {
    /// `node` applied `entry`.
    pub fn applied(&mut self, node: NodeId, entry: &Entry) -> Result<(), Violation> {
        let last = self.last_applied.get(&node).copied().unwrap_or_default();
        if entry.index != last.next() {
            return Err(Violation {
                property: "State Machine Safety",
                detail: format!("{node} applied {} right after {last}", entry.index),
            });
        }
        self.last_applied.insert(node, entry.index);
        let digest = entry_digest(entry);
        match self.committed.get(&entry.index) {
            Some(&(term, seen, first)) if seen != digest => Err(Violation {
                property: "State Machine Safety",
                detail: format!(
                    "{node} applied {}/{} but {first} applied {}/{term} there",
                    entry.index, entry.term, entry.index
                ),
            }),
            Some(_) => Ok(()),
            None => {
                self.committed
                    .insert(entry.index, (entry.term, digest, node));
                self.digest_view.insert(entry.index, (entry.term, digest));
                Ok(())
            }
        }
    }

    /// `node` lost its state machine: it will apply again from the start.
    pub fn crashed(&mut self, node: NodeId) {
        self.last_applied.remove(&node);
    }

    /// Index → (term, digest) of every entry applied somewhere, hence committed.
    pub fn committed(&self) -> &BTreeMap<LogIndex, (Term, u64)> {
        &self.digest_view
    }
}
