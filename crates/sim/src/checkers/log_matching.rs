//! Log Matching (Figure 3, §5.3): if two logs contain an entry with the same index and term,
//! the logs are identical in all entries up through that index.
//!
//! Checked by induction: every entry any node writes is recorded by (index, term) with its
//! content and the term of the entry before it. Two entries with the same index and term must
//! agree on both; then their predecessors share index and term too, and so on down to index 1.

use std::collections::HashMap;

use skiff_raft::{Entry, LogIndex, NodeId, Term};

use super::{entry_digest, LogView, Violation};

/// (index, term) → (content digest, term of the previous entry, who wrote it first).
#[derive(Debug, Default)]
pub struct LogMatching {
    seen: HashMap<(LogIndex, Term), (u64, Term, NodeId)>,
}

impl LogMatching {
    /// `node` wrote `entries` (contiguous); `log` is its log afterwards.
    pub fn persisted(
        &mut self,
        node: NodeId,
        entries: &[Entry],
        log: &dyn LogView,
    ) -> Result<(), Violation> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut prev_term = match first.index.0 {
            1 => Term(0),
            _ => match log.entry(first.index.prev()) {
                Some(prev) => prev.term,
                None => return Ok(()), // below a compacted prefix: nothing to compare
            },
        };
        for entry in entries {
            let digest = entry_digest(entry);
            let key = (entry.index, entry.term);
            match self.seen.get(&key) {
                Some(&(seen_digest, seen_prev, writer))
                    if seen_digest != digest || seen_prev != prev_term =>
                {
                    return Err(Violation {
                        property: "Log Matching",
                        detail: format!(
                            "{node} wrote a different entry at {}/{} (previous term {prev_term}) than {writer} (previous term {seen_prev})",
                            entry.index, entry.term
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    self.seen.insert(key, (digest, prev_term, node));
                }
            }
            prev_term = entry.term;
        }
        Ok(())
    }
}
