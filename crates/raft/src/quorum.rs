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

/// The voters of a configuration, possibly joint (§6, C_old,new): while joint, every decision
/// needs a majority of the incoming voters *and* a majority of the outgoing ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JointConfig {
    incoming: MajorityConfig,
    /// Empty unless the configuration is joint.
    outgoing: MajorityConfig,
}

impl JointConfig {
    /// A simple (not joint) configuration of these voters.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> JointConfig {
        JointConfig {
            incoming: MajorityConfig::new(voters),
            outgoing: MajorityConfig::default(),
        }
    }

    /// A joint configuration: `incoming` (C_new) and `outgoing` (C_old).
    pub fn joint(
        incoming: impl IntoIterator<Item = NodeId>,
        outgoing: impl IntoIterator<Item = NodeId>,
    ) -> JointConfig {
        JointConfig {
            incoming: MajorityConfig::new(incoming),
            outgoing: MajorityConfig::new(outgoing),
        }
    }

    /// Whether both an old and a new configuration are in force.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.voters().is_empty()
    }

    /// The incoming (or only) voters.
    pub fn incoming(&self) -> &BTreeSet<NodeId> {
        self.incoming.voters()
    }

    /// The outgoing voters (empty unless joint).
    pub fn outgoing(&self) -> &BTreeSet<NodeId> {
        self.outgoing.voters()
    }

    /// Every voter of either configuration.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.incoming
            .voters()
            .union(self.outgoing.voters())
            .copied()
            .collect()
    }

    /// Whether `id` votes in either configuration.
    pub fn contains(&self, id: NodeId) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// The largest value both majorities have reached (§6: agreement needs both).
    pub fn quorum_value<T: Ord + Copy + Default>(&self, value: impl Fn(NodeId) -> Option<T>) -> T {
        let incoming = self.incoming.quorum_value(&value);
        if !self.is_joint() {
            return incoming;
        }
        incoming.min(self.outgoing.quorum_value(&value))
    }

    /// The commit index both majorities agree on.
    pub fn committed_index(&self, match_index: impl Fn(NodeId) -> Option<LogIndex>) -> LogIndex {
        self.quorum_value(match_index)
    }

    /// An election is won with both majorities and lost if either is lost.
    pub fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        let incoming = self.incoming.vote_result(votes);
        if !self.is_joint() {
            return incoming;
        }
        match (incoming, self.outgoing.vote_result(votes)) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }

    /// CheckQuorum in both configurations.
    pub fn has_active_majority(&self, active: impl Fn(NodeId) -> bool) -> bool {
        self.incoming.has_active_majority(&active)
            && (!self.is_joint() || self.outgoing.has_active_majority(&active))
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
    fn joint_configuration_needs_both_majorities() {
        let joint = JointConfig::joint(
            [NodeId(1), NodeId(2), NodeId(3)],
            [NodeId(3), NodeId(4), NodeId(5)],
        );
        assert!(joint.is_joint());
        let matches = [0, 9, 9, 9, 2, 2];
        assert_eq!(
            joint.committed_index(|id| Some(LogIndex(matches[id.0 as usize]))),
            LogIndex(2)
        );
        let votes = BTreeMap::from([(NodeId(1), true), (NodeId(2), true)]);
        assert_eq!(
            joint.vote_result(&votes),
            VoteResult::Pending,
            "the outgoing majority is missing"
        );
        let votes = BTreeMap::from([
            (NodeId(1), true),
            (NodeId(2), true),
            (NodeId(4), true),
            (NodeId(5), true),
        ]);
        assert_eq!(joint.vote_result(&votes), VoteResult::Won);
        let votes = BTreeMap::from([(NodeId(4), false), (NodeId(5), false)]);
        assert_eq!(
            joint.vote_result(&votes),
            VoteResult::Lost,
            "losing either majority loses"
        );
        assert!(!joint.has_active_majority(|id| id.0 <= 3));
        assert!(joint.has_active_majority(|id| id.0 != 1 && id.0 != 4));
        assert_eq!(joint.voters().len(), 5);
    }

    #[test]
    fn simple_configuration_behaves_as_a_majority() {
        let simple = JointConfig::new([NodeId(1), NodeId(2), NodeId(3)]);
        assert!(!simple.is_joint());
        let matches = [0, 5, 9, 7];
        assert_eq!(
            simple.committed_index(|id| Some(LogIndex(matches[id.0 as usize]))),
            LogIndex(7)
        );
        let votes = BTreeMap::from([(NodeId(1), true), (NodeId(3), true)]);
        assert_eq!(simple.vote_result(&votes), VoteResult::Won);
    }

    #[test]
    fn empty_configuration_commits_nothing() {
        assert_eq!(
            MajorityConfig::default().committed_index(|_| Some(LogIndex(3))),
            LogIndex(0)
        );
    }
}
