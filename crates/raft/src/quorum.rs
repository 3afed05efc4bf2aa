//! Majority arithmetic: the commit index a set of voters agrees on, and election outcomes.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::{LogIndex, NodeId};

/// The outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A majority granted.
    Won,
    /// A majority refused: the election cannot be won.
    Lost,
    /// Neither yet.
    Pending,
}

/// A set of voters whose decisions need a strict majority.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MajorityConfig {
    voters: BTreeSet<NodeId>,
}

impl MajorityConfig {
    /// A configuration of these voters.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> MajorityConfig {
        MajorityConfig {
            voters: voters.into_iter().collect(),
        }
    }

    /// The voters, in id order.
    pub fn voters(&self) -> &BTreeSet<NodeId> {
        &self.voters
    }

    /// Whether `id` votes.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// How many voters make a majority.
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The largest index that a majority of voters has stored, given each voter's match index
    /// (§5.3). Voters `match_index` knows nothing of count as 0.
    pub fn committed_index(&self, match_index: impl Fn(NodeId) -> Option<LogIndex>) -> LogIndex {
        self.quorum_value(match_index)
    }

    /// The largest value that a majority of voters has reached, given each voter's value
    /// (voters `value` knows nothing of count as the default). Used for match indexes and for
    /// acknowledged read rounds.
    pub fn quorum_value<T: Ord + Copy + Default>(&self, value: impl Fn(NodeId) -> Option<T>) -> T {
        if self.voters.is_empty() {
            return T::default();
        }
        let mut reached: Vec<T> = self
            .voters
            .iter()
            .map(|&id| value(id).unwrap_or_default())
            .collect();
        reached.sort_unstable_by(|a, b| b.cmp(a));
        reached[self.majority() - 1]
    }

    /// The election outcome given the votes received so far (`true` = granted).
    pub fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        let granted = self
            .voters
            .iter()
            .filter(|id| votes.get(id) == Some(&true))
            .count();
        let refused = self
            .voters
            .iter()
            .filter(|id| votes.get(id) == Some(&false))
            .count();
        if granted >= self.majority() {
            VoteResult::Won
        } else if refused >= self.majority() {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }

    /// Whether the nodes for which `active` holds form a majority (CheckQuorum, thesis §6.2).
    pub fn has_active_majority(&self, active: impl Fn(NodeId) -> bool) -> bool {
        self.voters.iter().filter(|&&id| active(id)).count() >= self.majority()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(n: u64) -> MajorityConfig {
        MajorityConfig::new((1..=n).map(NodeId))
    }

    /// The dumb twin: the largest index such that at least a majority has matched it.
    fn committed_index_by_scanning(matches: &[u64]) -> u64 {
        let majority = matches.len() / 2 + 1;
        (0..=matches.iter().copied().max().unwrap_or(0))
            .rev()
            .find(|&candidate| matches.iter().filter(|&&m| m >= candidate).count() >= majority)
            .unwrap_or(0)
    }

    proptest! {
        #[test]
        fn committed_index_matches_the_scanning_twin(matches in proptest::collection::vec(0u64..20, 1..8)) {
            let cfg = config(matches.len() as u64);
            let fast = cfg.committed_index(|id| Some(LogIndex(matches[(id.0 - 1) as usize])));
            prop_assert_eq!(fast.0, committed_index_by_scanning(&matches));
        }

        #[test]
        fn vote_result_matches_counting(votes in proptest::collection::vec(proptest::option::of(any::<bool>()), 1..8)) {
            let cfg = config(votes.len() as u64);
            let map: BTreeMap<NodeId, bool> = votes.iter().enumerate()
                .filter_map(|(k, v)| v.map(|v| (NodeId(k as u64 + 1), v))).collect();
            let yes = votes.iter().filter(|v| **v == Some(true)).count();
            let no = votes.iter().filter(|v| **v == Some(false)).count();
            let expected = if 2 * yes > votes.len() { VoteResult::Won }
                else if 2 * no > votes.len() { VoteResult::Lost } else { VoteResult::Pending };
            prop_assert_eq!(cfg.vote_result(&map), expected);
        }
    }

    #[test]
    fn committed_index_of_three_is_the_median() {
        let matches = [5, 9, 7];
        let cfg = config(3);
        assert_eq!(
            cfg.committed_index(|id| Some(LogIndex(matches[(id.0 - 1) as usize]))),
            LogIndex(7)
        );
    }

    #[test]
    fn unknown_voters_count_as_nothing_matched() {
        let cfg = config(3);
        let committed = cfg.committed_index(|id| (id == NodeId(1)).then_some(LogIndex(10)));
        assert_eq!(committed, LogIndex(0));
    }

    #[test]
    fn votes_from_non_voters_do_not_count() {
        let cfg = config(3);
        let votes = BTreeMap::from([(NodeId(1), true), (NodeId(7), true), (NodeId(8), true)]);
        assert_eq!(cfg.vote_result(&votes), VoteResult::Pending);
    }

    #[test]
    fn active_majority_needs_more_than_half() {
        let cfg = config(4);
        assert!(!cfg.has_active_majority(|id| id.0 <= 2));
        assert!(cfg.has_active_majority(|id| id.0 <= 3));
    }

    #[test]
    fn empty_configuration_commits_nothing() {
        assert_eq!(
            MajorityConfig::default().committed_index(|_| Some(LogIndex(3))),
            LogIndex(0)
        );
    }
}
