//! Leader Completeness (Figure 3, §5.4): if an entry is committed in a given term, it is
//! present in the logs of the leaders of all higher terms.

use std::collections::BTreeMap;

use skiff_raft::{LogIndex, NodeId, Term};

use super::{entry_digest, CommittedEntry, LogView, Violation};

/// Stateless: compares each new leader's log with what is known committed.
#[derive(Debug, Default)]
pub struct LeaderCompleteness;

impl LeaderCompleteness {
    /// `node` became leader of `term`; `committed` holds every entry known committed so far.
    pub fn became_leader(
        &mut self,
        node: NodeId,
        term: Term,
        log: &dyn LogView,
        committed: &BTreeMap<LogIndex, CommittedEntry>,
    ) -> Result<(), Violation> {
        // Entries below the leader's first index are covered by its snapshot, whose state is
        // checked against every state machine's (State Machine Safety).
        for (&index, committed) in committed.range(log.first_index()..) {
            if committed.committed_by_term >= term {
                // Possibly committed in this term or a later one: the property speaks only of
                // leaders of higher terms than the commit's (a leader may learn of its
                // election late, after a later term committed more).
                continue;
            }
            let entry_term = committed.term;
            let held = log.entry(index);
            if held.as_ref().map(entry_digest) != Some(committed.digest) {
                return Err(Violation {
                    property: "Leader Completeness",
                    detail: format!(
                        "{node} became leader of {term} without committed entry {index}/{entry_term} (its log has {})",
                        held.map_or("nothing".to_string(), |e| format!("{}/{}", e.index, e.term))
                    ),
                });
            }
        }
        Ok(())
    }
}
