//! Leader Append-Only (Figure 3, §5.3): a leader never overwrites or deletes entries in its
//! log; it only appends new ones.

use std::collections::BTreeMap;

use skiff_raft::{LogIndex, NodeId, Term};

use super::{entry_digest, LogView, Violation};

/// For each sitting leader, the last entry it had when last looked at.
#[derive(Debug, Default)]
pub struct LeaderAppendOnly {
    sitting: BTreeMap<NodeId, (Term, LogIndex, Option<u64>)>,
}

impl LeaderAppendOnly {
    /// `node` became leader of `term` with `log`.
    pub fn became_leader(&mut self, node: NodeId, term: Term, log: &dyn LogView) {
        let last = log.last_index();
        self.sitting.insert(
            node,
            (term, last, log.entry(last).map(|e| entry_digest(&e))),
        );
    }

    /// `node` is no longer leader.
    pub fn left_leadership(&mut self, node: NodeId) {
        self.sitting.remove(&node);
    }

    /// Checks that a sitting leader's log still holds the entry it last ended with. `term` and
    /// `is_leader` are the node's role as it stands: once it no longer leads that term, its log
    /// may change (a follower's log is repaired by the next leader).
    pub fn check(
        &mut self,
        node: NodeId,
        term_now: Term,
        is_leader: bool,
        log: &dyn LogView,
    ) -> Result<(), Violation> {
        let Some(&(term, last, digest)) = self.sitting.get(&node) else {
            return Ok(());
        };
        if !is_leader || term_now != term {
            self.sitting.remove(&node);
            return Ok(());
        }
        let now = log.entry(last).map(|e| entry_digest(&e));
        // An entry below the first index was compacted into the leader's own snapshot: its
        // content is no longer there to compare, but the log did not shrink.
        let compacted = last < log.first_index() && log.last_index() >= last;
        if !compacted && (log.last_index() < last || now != digest) {
            return Err(Violation {
                property: "Leader Append-Only",
                detail: format!(
                    "{node}, leader of {term}, had an entry at {last}; now its log ends at {} and that entry {}",
                    log.last_index(),
                    if now.is_some() { "changed" } else { "is gone" }
                ),
            });
        }
        let new_last = log.last_index();
        self.sitting.insert(
            node,
            (
                term,
                new_last,
                log.entry(new_last).map(|e| entry_digest(&e)),
            ),
        );
        Ok(())
    }
}
