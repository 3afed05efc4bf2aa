//! Who is in the cluster and what the leader knows of them: the voters (possibly a joint
//! configuration), the learners, each member's replication progress, and the votes of the
//! election in course — with the questions a quorum answers about them.

use std::collections::{BTreeMap, BTreeSet};

use crate::membership::ConfState;
use crate::progress::Progress;
use crate::quorum::{JointConfig, VoteResult};
use crate::types::{LogIndex, NodeId};

/// How far a leader streams ahead of a follower's answers: appends and entry bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InflightLimit {
    pub(crate) appends: usize,
    pub(crate) bytes: u64,
}

impl InflightLimit {
    /// A follower about which nothing is known yet, probed from `next`.
    fn progress(self, next: LogIndex) -> Progress {
        Progress::new(next, self.appends).with_max_inflight_bytes(self.bytes)
    }
}

/// The membership and what is known of each member.
#[derive(Clone, Debug)]
pub struct ProgressTracker {
    voters: JointConfig,
    /// Members that receive the log but do not vote.
    learners: BTreeSet<NodeId>,
    /// Leader only: one entry per member, this node included.
    progress: BTreeMap<NodeId, Progress>,
    /// (Pre-)candidate only: the answers received in this election.
    votes: BTreeMap<NodeId, bool>,
}

impl ProgressTracker {
    /// A tracker for a simple configuration of `voters`, knowing nothing of them yet.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> ProgressTracker {
        ProgressTracker {
            voters: JointConfig::new(voters),
            learners: BTreeSet::new(),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
        }
    }

    // ---- membership ----

    /// The voters (both configurations while joint).
    pub fn voters(&self) -> &JointConfig {
        &self.voters
    }

    /// The learners.
    pub fn learners(&self) -> &BTreeSet<NodeId> {
        &self.learners
    }

    /// Whether `id` votes in the configuration in force.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(id)
    }

    /// Whether `id` is the only voter.
    pub fn is_only_voter(&self, id: NodeId) -> bool {
        self.voters.voters().len() == 1 && self.voters.contains(id)
    }

    /// The membership in force.
    pub fn conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.incoming().iter().copied().collect(),
            voters_outgoing: self.voters.outgoing().iter().copied().collect(),
            learners: self.learners.iter().copied().collect(),
        }
    }

    /// Puts `conf` in force. Progress is left as it is: the leader adjusts it.
    pub(crate) fn set_conf_state(&mut self, conf: &ConfState) {
        self.voters = JointConfig::joint(
            conf.voters.iter().copied(),
            conf.voters_outgoing.iter().copied(),
        );
        self.learners = conf.learners.iter().copied().collect();
    }

    // ---- progress (leader only) ----

    /// What is known of each member.
    pub fn progress(&self) -> &BTreeMap<NodeId, Progress> {
        &self.progress
    }

    /// What is known of `id`.
    pub fn get(&self, id: NodeId) -> Option<&Progress> {
        self.progress.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: NodeId) -> Option<&mut Progress> {
        self.progress.get_mut(&id)
    }

    /// Every member but `me`, in id order.
    pub fn followers(&self, me: NodeId) -> Vec<NodeId> {
        self.progress
            .keys()
            .copied()
            .filter(|&id| id != me)
            .collect()
    }

    /// A new leader knows nothing of its members yet: each starts probing at `next`.
    pub(crate) fn start_leading(&mut self, next: LogIndex, limit: InflightLimit) {
        for member in self
            .voters
            .voters()
            .into_iter()
            .chain(self.learners.iter().copied())
        {
            self.progress.insert(member, limit.progress(next));
        }
    }

    /// After a change, the leader tracks exactly `members` (and itself): newcomers start
    /// probing at `next`, those who left are forgotten.
    pub(crate) fn track_members(
        &mut self,
        members: &BTreeSet<NodeId>,
        me: NodeId,
        next: LogIndex,
        limit: InflightLimit,
    ) {
        for &member in members {
            self.progress
                .entry(member)
                .or_insert_with(|| limit.progress(next));
        }
        self.progress
            .retain(|id, _| members.contains(id) || *id == me);
    }

    /// §5.3: the largest index a majority of voters (both majorities while joint) has stored.
    pub fn committed_index(&self) -> LogIndex {
        let progress = &self.progress;
        self.voters
            .committed_index(|id| progress.get(&id).map(Progress::match_index))
    }

    /// Thesis §6.2 (CheckQuorum): whether a majority was heard from since the last check
    /// (`me` counts as heard). Every member's activity flag is cleared for the next check.
    pub(crate) fn quorum_recently_active(&mut self, me: NodeId) -> bool {
        let active: Vec<NodeId> = self
            .progress
            .iter_mut()
            .filter_map(|(&id, progress)| (progress.take_recent_active() || id == me).then_some(id))
            .collect();
        self.voters.has_active_majority(|id| active.contains(&id))
    }

    // ---- votes ((pre-)candidate only) ----

    /// Counts `from`'s answer; a voter's first answer in an election is the one that counts.
    pub(crate) fn record_vote(&mut self, from: NodeId, granted: bool) {
        self.votes.entry(from).or_insert(granted);
    }

    /// The election's outcome so far.
    pub fn vote_result(&self) -> VoteResult {
        self.voters.vote_result(&self.votes)
    }

    /// Forgets progress and votes: the node changes role.
    pub(crate) fn reset(&mut self) {
        self.votes.clear();
        self.progress.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: InflightLimit = InflightLimit {
        appends: 4,
        bytes: u64::MAX,
    };

    fn three() -> ProgressTracker {
        ProgressTracker::new([NodeId(1), NodeId(2), NodeId(3)])
    }

    #[test]
    fn commit_index_is_what_a_majority_of_voters_stores() {
        let mut tracker = three();
        tracker.set_conf_state(&ConfState {
            voters: vec![NodeId(1), NodeId(2), NodeId(3)],
            voters_outgoing: vec![],
            learners: vec![NodeId(4)],
        });
        tracker.start_leading(LogIndex(1), LIMIT);
        tracker
            .get_mut(NodeId(1))
            .unwrap()
            .maybe_update(LogIndex(9));
        tracker
            .get_mut(NodeId(4))
            .unwrap()
            .maybe_update(LogIndex(9));
        assert_eq!(
            tracker.committed_index(),
            LogIndex(0),
            "a learner's copy does not count toward the quorum"
        );
        tracker
            .get_mut(NodeId(3))
            .unwrap()
            .maybe_update(LogIndex(5));
        assert_eq!(tracker.committed_index(), LogIndex(5));
    }

    #[test]
    fn only_the_first_answer_of_a_voter_counts() {
        let mut tracker = three();
        tracker.record_vote(NodeId(1), true);
        tracker.record_vote(NodeId(2), false);
        tracker.record_vote(NodeId(2), true);
        assert_eq!(tracker.vote_result(), VoteResult::Pending);
        tracker.record_vote(NodeId(3), true);
        assert_eq!(tracker.vote_result(), VoteResult::Won);
        tracker.reset();
        assert_eq!(tracker.vote_result(), VoteResult::Pending);
    }

    #[test]
    fn check_quorum_counts_the_leader_and_clears_activity() {
        let mut tracker = three();
        tracker.start_leading(LogIndex(1), LIMIT);
        tracker.get_mut(NodeId(2)).unwrap().mark_active();
        assert!(tracker.quorum_recently_active(NodeId(1)));
        assert!(
            !tracker.quorum_recently_active(NodeId(1)),
            "activity is counted once per check"
        );
    }

    #[test]
    fn a_change_forgets_members_that_left_and_keeps_the_leader() {
        let mut tracker = three();
        tracker.start_leading(LogIndex(1), LIMIT);
        tracker
            .get_mut(NodeId(2))
            .unwrap()
            .maybe_update(LogIndex(3));
        let members = BTreeSet::from([NodeId(2), NodeId(3), NodeId(5)]);
        tracker.track_members(&members, NodeId(1), LogIndex(7), LIMIT);
        assert_eq!(
            tracker.followers(NodeId(1)),
            vec![NodeId(2), NodeId(3), NodeId(5)]
        );
        assert!(tracker.get(NodeId(1)).is_some());
        assert_eq!(tracker.get(NodeId(2)).unwrap().match_index(), LogIndex(3));
        assert_eq!(tracker.get(NodeId(5)).unwrap().next_index(), LogIndex(7));
    }
}
