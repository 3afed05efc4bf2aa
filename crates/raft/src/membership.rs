//! Membership changes by joint consensus (§6, thesis §4.3): a change of voters goes through the
//! joint configuration C_old,new, in which every decision needs both majorities, and is left
//! automatically for C_new. Learners receive the log but do not vote.

use std::collections::BTreeSet;

use crate::types::NodeId;

/// One step of a configuration change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfChangeStep {
    /// Make `id` a voter (a learner is promoted).
    AddVoter(NodeId),
    /// Make `id` a learner: it receives the log and does not vote.
    AddLearner(NodeId),
    /// Remove `id`, voter or learner.
    Remove(NodeId),
}

/// A configuration change carried by a log entry. No steps means "leave the joint configuration".
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConfChange {
    /// What changes, all at once.
    pub steps: Vec<ConfChangeStep>,
}

/// Why a configuration change cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfChangeError {
    /// The entry's bytes are not a configuration change.
    #[error("malformed configuration change")]
    Malformed,
    /// A change of voters while the joint configuration has not been left yet.
    #[error("the joint configuration must be left before another change")]
    StillJoint,
    /// Leaving a joint configuration that is not joint.
    #[error("the configuration is not joint")]
    NotJoint,
    /// A change that would leave no voter.
    #[error("a configuration needs at least one voter")]
    NoVoters,
    /// A voter cannot become a learner directly.
    #[error("{0} is a voter: remove it before adding it as a learner")]
    VoterToLearner(NodeId),
}

/// The membership in force: voters (incoming), outgoing voters while joint, and learners.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConfState {
    /// The voters (of C_new while joint).
    pub voters: Vec<NodeId>,
    /// The voters of C_old while joint; empty otherwise.
    pub voters_outgoing: Vec<NodeId>,
    /// Members that receive the log without voting.
    pub learners: Vec<NodeId>,
}

impl ConfState {
    /// A configuration of these voters.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> ConfState {
        let voters: BTreeSet<NodeId> = voters.into_iter().collect();
        ConfState {
            voters: voters.into_iter().collect(),
            ..ConfState::default()
        }
    }

    /// Whether C_old,new is in force.
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Every member: voters of either configuration and learners.
    pub fn members(&self) -> BTreeSet<NodeId> {
        self.voters
            .iter()
            .chain(&self.voters_outgoing)
            .chain(&self.learners)
            .copied()
            .collect()
    }

    /// The configuration after `change`. A change of voters enters the joint configuration
    /// (§6: C_old,new); a change of learners alone takes effect directly; no steps leaves the
    /// joint configuration for C_new.
    pub fn apply(&self, change: &ConfChange) -> Result<ConfState, ConfChangeError> {
        if change.steps.is_empty() {
            if !self.is_joint() {
                return Err(ConfChangeError::NotJoint);
            }
            return Ok(ConfState {
                voters: self.voters.clone(),
                voters_outgoing: Vec::new(),
                learners: self.learners.clone(),
            });
        }
        if self.is_joint() {
            return Err(ConfChangeError::StillJoint);
        }
        let mut voters: BTreeSet<NodeId> = self.voters.iter().copied().collect();
        let mut learners: BTreeSet<NodeId> = self.learners.iter().copied().collect();
        for step in &change.steps {
            match *step {
                ConfChangeStep::AddVoter(id) => {
                    learners.remove(&id);
                    voters.insert(id);
                }
                ConfChangeStep::AddLearner(id) => {
                    if voters.contains(&id) {
                        return Err(ConfChangeError::VoterToLearner(id));
                    }
                    learners.insert(id);
                }
                ConfChangeStep::Remove(id) => {
                    voters.remove(&id);
                    learners.remove(&id);
                }
            }
        }
        if voters.is_empty() {
            return Err(ConfChangeError::NoVoters);
        }
        let voters: Vec<NodeId> = voters.into_iter().collect();
        let voters_outgoing = if voters == self.voters {
            Vec::new()
        } else {
            self.voters.clone()
        };
        Ok(ConfState {
            voters,
            voters_outgoing,
            learners: learners.into_iter().collect(),
        })
    }
}

const STEP_ADD_VOTER: u8 = 1;
const STEP_ADD_LEARNER: u8 = 2;
const STEP_REMOVE: u8 = 3;

impl ConfChange {
    /// The change that leaves the joint configuration.
    pub fn leave_joint() -> ConfChange {
        ConfChange::default()
    }

    /// The change as entry data: a count, then one kind byte and an id per step.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 9 * self.steps.len());
        out.push(self.steps.len() as u8);
        for step in &self.steps {
            let (kind, id) = match *step {
                ConfChangeStep::AddVoter(id) => (STEP_ADD_VOTER, id),
                ConfChangeStep::AddLearner(id) => (STEP_ADD_LEARNER, id),
                ConfChangeStep::Remove(id) => (STEP_REMOVE, id),
            };
            out.push(kind);
            out.extend_from_slice(&id.0.to_le_bytes());
        }
        out
    }

    /// Decodes entry data written by [`encode`](ConfChange::encode).
    pub fn decode(data: &[u8]) -> Result<ConfChange, ConfChangeError> {
        let (&count, mut rest) = data.split_first().ok_or(ConfChangeError::Malformed)?;
        if rest.len() != 9 * count as usize {
            return Err(ConfChangeError::Malformed);
        }
        let mut steps = Vec::with_capacity(count as usize);
        while let Some((&kind, tail)) = rest.split_first() {
            let id = NodeId(u64::from_le_bytes(
                tail[..8]
                    .try_into()
                    .map_err(|_| ConfChangeError::Malformed)?,
            ));
            rest = &tail[8..];
            steps.push(match kind {
                STEP_ADD_VOTER => ConfChangeStep::AddVoter(id),
                STEP_ADD_LEARNER => ConfChangeStep::AddLearner(id),
                STEP_REMOVE => ConfChangeStep::Remove(id),
                _ => return Err(ConfChangeError::Malformed),
            });
        }
        if count as usize > 16 || steps.iter().any(|step| matches!(step, ConfChangeStep::AddVoter(id) | ConfChangeStep::AddLearner(id) | ConfChangeStep::Remove(id) if id.0 == 0)) {
            return Err(ConfChangeError::Malformed);
        }
        Ok(ConfChange { steps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[u64]) -> Vec<NodeId> {
        list.iter().map(|&id| NodeId(id)).collect()
    }

    #[test]
    fn changing_voters_goes_through_the_joint_configuration() {
        let old = ConfState::with_voters(ids(&[1, 2, 3]));
        let change = ConfChange {
            steps: vec![
                ConfChangeStep::AddVoter(NodeId(4)),
                ConfChangeStep::Remove(NodeId(1)),
            ],
        };
        let joint = old.apply(&change).unwrap();
        assert_eq!(joint.voters, ids(&[2, 3, 4]));
        assert_eq!(joint.voters_outgoing, ids(&[1, 2, 3]));
        assert_eq!(joint.apply(&change), Err(ConfChangeError::StillJoint));
        let new = joint.apply(&ConfChange::leave_joint()).unwrap();
        assert_eq!(new, ConfState::with_voters(ids(&[2, 3, 4])));
        assert_eq!(
            new.apply(&ConfChange::leave_joint()),
            Err(ConfChangeError::NotJoint)
        );
    }

    #[test]
    fn learners_change_directly_and_are_promoted() {
        let old = ConfState::with_voters(ids(&[1, 2, 3]));
        let with_learner = old
            .apply(&ConfChange {
                steps: vec![ConfChangeStep::AddLearner(NodeId(4))],
            })
            .unwrap();
        assert!(
            !with_learner.is_joint(),
            "a learner alone needs no joint configuration"
        );
        assert_eq!(with_learner.learners, ids(&[4]));
        let promoted = with_learner
            .apply(&ConfChange {
                steps: vec![ConfChangeStep::AddVoter(NodeId(4))],
            })
            .unwrap();
        assert!(promoted.is_joint());
        assert!(promoted.learners.is_empty());
        assert_eq!(
            old.apply(&ConfChange {
                steps: vec![ConfChangeStep::AddLearner(NodeId(2))]
            }),
            Err(ConfChangeError::VoterToLearner(NodeId(2)))
        );
        assert_eq!(
            old.apply(&ConfChange {
                steps: ids(&[1, 2, 3])
                    .into_iter()
                    .map(ConfChangeStep::Remove)
                    .collect()
            }),
            Err(ConfChangeError::NoVoters)
        );
    }

    #[test]
    fn changes_round_trip_and_garbage_is_refused() {
        let change = ConfChange {
            steps: vec![
                ConfChangeStep::AddVoter(NodeId(4)),
                ConfChangeStep::AddLearner(NodeId(5)),
                ConfChangeStep::Remove(NodeId(1)),
            ],
        };
        assert_eq!(ConfChange::decode(&change.encode()), Ok(change));
        assert_eq!(
            ConfChange::decode(&ConfChange::leave_joint().encode()),
            Ok(ConfChange::leave_joint())
        );
        assert_eq!(ConfChange::decode(&[]), Err(ConfChangeError::Malformed));
        assert_eq!(
            ConfChange::decode(&[1, 9, 1, 0, 0, 0, 0, 0, 0, 0]),
            Err(ConfChangeError::Malformed)
        );
        assert_eq!(
            ConfChange::decode(&[1, 1, 0, 0]),
            Err(ConfChangeError::Malformed)
        );
    }
}
