//! Membership changes by joint consensus (§6, thesis §4.3): a change of voters goes through the
//! joint configuration C_old,new, in which every decision needs both majorities, and is left
//! automatically for C_new. Learners receive the log but do not vote.

use std::collections::BTreeSet;

use skiff_codec::{put, CodecError, Reader};

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

impl ConfChangeStep {
    /// The node the step is about.
    pub fn node(&self) -> NodeId {
        match *self {
            ConfChangeStep::AddVoter(id)
            | ConfChangeStep::AddLearner(id)
            | ConfChangeStep::Remove(id) => id,
        }
    }
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
    /// The entry's bytes do not read as a configuration change: they end before its steps
    /// do, more bytes follow them, or a step is of no known kind.
    #[error("malformed configuration change: {0}")]
    Malformed(#[from] CodecError),
    /// The entry's bytes claim more steps than one change may hold.
    #[error("a configuration change of {count} steps (at most {max})", max = ConfChange::MAX_STEPS)]
    TooManySteps {
        /// The step count read.
        count: usize,
    },
    /// A step names node 0, the id reserved for nobody.
    #[error("a configuration change step names node 0 at byte {offset}")]
    NodeZero {
        /// Where the id starts.
        offset: usize,
    },
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
        // A change every node can decode, or none: refused here, at the proposal, rather than
        // committed and then skipped by every node that cannot read it.
        if change.steps.len() > ConfChange::MAX_STEPS {
            return Err(ConfChangeError::TooManySteps {
                count: change.steps.len(),
            });
        }
        if let Some(position) = change.steps.iter().position(|step| step.node().0 == 0) {
            // Where the id sits in the encoded change: the count byte, then a kind byte and
            // an 8-byte id per step.
            return Err(ConfChangeError::NodeZero {
                offset: 1 + position * 9 + 1,
            });
        }
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
    /// The most steps one change may hold; a longer one does not decode.
    pub const MAX_STEPS: usize = 16;

    /// The change that leaves the joint configuration.
    pub fn leave_joint() -> ConfChange {
        ConfChange::default()
    }

    /// The change as entry data: a count byte, then per step a kind byte and the node id as a
    /// little-endian `u64`. A change of more than 255 steps is written with the count 255, so
    /// that it is refused when read rather than read as a shorter count.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 9 * self.steps.len());
        put::u8(&mut out, u8::try_from(self.steps.len()).unwrap_or(u8::MAX));
        for step in &self.steps {
            let (kind, id) = match *step {
                ConfChangeStep::AddVoter(id) => (STEP_ADD_VOTER, id),
                ConfChangeStep::AddLearner(id) => (STEP_ADD_LEARNER, id),
                ConfChangeStep::Remove(id) => (STEP_REMOVE, id),
            };
            put::u8(&mut out, kind);
            put::u64(&mut out, id.0);
        }
        out
    }

    /// Decodes entry data written by [`encode`](ConfChange::encode). The bytes come from the
    /// log, which a leader filled: any that are not exactly a change of at most
    /// [`MAX_STEPS`](ConfChange::MAX_STEPS) steps naming real nodes give an error, never a
    /// panic.
    pub fn decode(data: &[u8]) -> Result<ConfChange, ConfChangeError> {
        let mut r = Reader::new(data);
        let count = usize::from(r.u8()?);
        if count > ConfChange::MAX_STEPS {
            return Err(ConfChangeError::TooManySteps { count });
        }
        let mut steps = Vec::with_capacity(count);
        for _ in 0..count {
            steps.push(read_step(&mut r)?);
        }
        r.finish()?;
        Ok(ConfChange { steps })
    }
}

/// One step: its kind byte, then the node id.
fn read_step(r: &mut Reader<'_>) -> Result<ConfChangeStep, ConfChangeError> {
    let step: fn(NodeId) -> ConfChangeStep = match r.u8()? {
        STEP_ADD_VOTER => ConfChangeStep::AddVoter,
        STEP_ADD_LEARNER => ConfChangeStep::AddLearner,
        STEP_REMOVE => ConfChangeStep::Remove,
        kind => return Err(r.unknown_tag("configuration change step", kind).into()),
    };
    let offset = r.offset();
    match r.u64()? {
        0 => Err(ConfChangeError::NodeZero { offset }),
        id => Ok(step(NodeId(id))),
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
        // Each refusal says what was wrong, and where.
        let refused = |data: &[u8]| ConfChange::decode(data).unwrap_err();
        assert_eq!(
            refused(&[]),
            ConfChangeError::Malformed(CodecError::Truncated { offset: 0 })
        );
        assert_eq!(
            refused(&[1, 9, 1, 0, 0, 0, 0, 0, 0, 0]),
            ConfChangeError::Malformed(CodecError::UnknownTag {
                field: "configuration change step",
                tag: 9,
                offset: 1
            })
        );
        assert_eq!(
            refused(&[1, 1, 0, 0]),
            ConfChangeError::Malformed(CodecError::Truncated { offset: 2 })
        );
        assert_eq!(
            refused(&[1, 3, 0, 0, 0, 0, 0, 0, 0, 0]),
            ConfChangeError::NodeZero { offset: 2 }
        );
        assert_eq!(
            refused(&[0, 0]),
            ConfChangeError::Malformed(CodecError::TrailingBytes { count: 1 })
        );
        assert_eq!(refused(&[17]), ConfChangeError::TooManySteps { count: 17 });
        assert_eq!(
            refused(&[17]).to_string(),
            "a configuration change of 17 steps (at most 16)"
        );
    }
}
