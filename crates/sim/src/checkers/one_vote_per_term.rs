//! One vote per term (§5.2: "each server will vote for at most one candidate in a given
//! term, on a first-come-first-served basis"), across crashes: a vote is durable before it is
//! sent (thesis §3.8), so a restart — even on a damaged disk — must never let a node grant a
//! second one in the same term. Two votes in a term are how a term gets two leaders.
//!
//! Judged from the vote grants the nodes send, not from their state.

use std::collections::BTreeMap;

use skiff_raft::{NodeId, Term};

use super::Violation;

/// Remembers whom each node voted for in each term.
#[derive(Debug, Default)]
pub struct OneVotePerTerm {
    vote_of: BTreeMap<(NodeId, Term), NodeId>,
}

impl OneVotePerTerm {
    /// `voter` sent a vote grant for `term` to `candidate`.
    pub fn granted(
        &mut self,
        voter: NodeId,
        term: Term,
        candidate: NodeId,
    ) -> Result<(), Violation> {
        match self.vote_of.insert((voter, term), candidate) {
            Some(earlier) if earlier != candidate => Err(Violation {
                property: "One Vote Per Term",
                detail: format!(
                    "{voter} granted its vote in {term} to {candidate}, after granting it to {earlier}"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// `voter`'s disk was replaced by an empty one: it is a new voter under the same id, with
    /// no vote to keep. Its old votes no longer bind it; the cluster refuses to count the new
    /// node's (the amnesia guard), which Election Safety checks.
    pub fn wiped(&mut self, voter: NodeId) {
        self.vote_of.retain(|(id, _), _| *id != voter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_candidate_in_the_same_term_is_a_violation() {
        let mut checker = OneVotePerTerm::default();
        assert!(checker.granted(NodeId(1), Term(3), NodeId(2)).is_ok());
        assert!(
            checker.granted(NodeId(1), Term(3), NodeId(2)).is_ok(),
            "the same grant again (a retry, a duplicate) is fine"
        );
        assert!(
            checker.granted(NodeId(1), Term(4), NodeId(3)).is_ok(),
            "a new term, a new vote"
        );
        assert!(
            checker.granted(NodeId(2), Term(3), NodeId(3)).is_ok(),
            "another voter"
        );
        let violation = checker.granted(NodeId(1), Term(3), NodeId(3)).unwrap_err();
        assert_eq!(violation.property, "One Vote Per Term");
        assert!(
            violation.detail.contains("to n3, after granting it to n2"),
            "{violation}"
        );
    }
}
