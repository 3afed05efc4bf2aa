//! Election Safety (Figure 3, §5.2): at most one leader can be elected in a given term.

use std::collections::BTreeMap;

use skiff_raft::{NodeId, Term};

use super::Violation;

/// Remembers who led each term.
#[derive(Debug, Default)]
pub struct ElectionSafety {
    leader_of_term: BTreeMap<Term, NodeId>,
}

impl ElectionSafety {
    /// `node` became leader of `term`.
    pub fn became_leader(&mut self, node: NodeId, term: Term) -> Result<(), Violation> {
        match self.leader_of_term.insert(term, node) {
            Some(earlier) if earlier != node => Err(Violation {
                property: "Election Safety",
                detail: format!("{node} became leader of {term}, which {earlier} already leads"),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_leader_in_a_term_is_a_violation() {
        let mut checker = ElectionSafety::default();
        assert!(checker.became_leader(NodeId(1), Term(3)).is_ok());
        assert!(
            checker.became_leader(NodeId(1), Term(3)).is_ok(),
            "the same leader again is fine"
        );
        assert!(checker.became_leader(NodeId(2), Term(4)).is_ok());
        assert!(checker.became_leader(NodeId(2), Term(3)).is_err());
    }
}
