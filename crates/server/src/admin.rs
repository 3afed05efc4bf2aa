//! The operator's membership changes, checked on the leader before they are proposed: the node
//! must exist in the role the change expects, have a usable peer address, and — unless the
//! operator forces it — the change must leave a voter set whose majority the leader can reach
//! now, a removal must not leave fewer than three voters, and a learner is added only while the
//! current voters' majority answers (else it could never be promoted). The core refuses what
//! breaks Raft's rules (one change at a time, a promoted learner must have caught up); these
//! checks refuse what Raft allows but would leave the cluster unable to lose a node, or unable
//! to commit at all. Every answer names the resulting fault tolerance ([`Outcome`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use skiff_raft::{ConfState, LogStorage, NodeId, Raft, Role};

use crate::driver::AdminRequest;

/// The largest node id an operator may name: ids are small numbers typed by hand, and the live
/// view reads them as JavaScript numbers.
pub const MAX_NODE_ID: u64 = u32::MAX as u64;

/// The start of [`AdminError::ReachabilityUnsettled`]'s text, by which the HTTP handler knows
/// to ask again a moment later.
pub const UNSETTLED_PREFIX: &str = "the leader has not heard a full heartbeat round";

/// The smallest voter set that survives a failure; a removal below it needs `--force`.
pub const MIN_SAFE_VOTERS: usize = 3;

/// How many of `voters` voters may fail while a majority still answers (§5.2, §6).
fn failures_tolerated(voters: usize) -> usize {
    voters.saturating_sub(1) / 2
}

/// `voters` as "3 voters (1, 2, 4)".
fn voters_in_words(voters: &[u64]) -> String {
    let list: Vec<String> = voters.iter().map(u64::to_string).collect();
    let noun = if voters.len() == 1 { "voter" } else { "voters" };
    format!("{} {noun} ({})", voters.len(), list.join(", "))
}

/// How many failures `voters` voters tolerate: "no failure", "1 failure", "2 failures".
fn failures_in_words(voters: usize) -> String {
    match failures_tolerated(voters) {
        0 => "no failure".to_string(),
        1 => "1 failure".to_string(),
        n => format!("{n} failures"),
    }
}

/// "2 voters (1, 2), which tolerate no failure": the subject of a refusal.
fn which_tolerate(voters: &[u64]) -> String {
    let verb = if voters.len() == 1 {
        "tolerates"
    } else {
        "tolerate"
    };
    format!(
        "{}, which {verb} {}",
        voters_in_words(voters),
        failures_in_words(voters.len())
    )
}

/// The configuration a membership change leaves, as its answer says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The voters after the change.
    pub voters: Vec<u64>,
    /// The learners after the change.
    pub learners: Vec<u64>,
}

impl std::fmt::Display for Outcome {
    /// "3 voters (1, 2, 4), tolerates 1 failure; 1 learner (5)".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, tolerates {}",
            voters_in_words(&self.voters),
            failures_in_words(self.voters.len())
        )?;
        if !self.learners.is_empty() {
            let list: Vec<String> = self.learners.iter().map(u64::to_string).collect();
            let noun = if self.learners.len() == 1 {
                "learner"
            } else {
                "learners"
            };
            write!(f, "; {} {noun} ({})", self.learners.len(), list.join(", "))?;
        }
        Ok(())
    }
}

/// Why an operator's request is refused before it reaches the core.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// Id 0 means "nobody"; ids past [`MAX_NODE_ID`] are typing mistakes.
    #[error("node id {0} is out of range: ids run from 1 to {MAX_NODE_ID}")]
    BadId(u64),
    /// Membership changes are checked and proposed by the leader only.
    #[error("this node is not the leader ({}); send membership changes to the leader", leader_hint(*.leader))]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<u64>,
    },
    /// `add-learner` of a node that is already in the configuration.
    #[error("node {id} is already a {kind}")]
    AlreadyMember {
        /// The node.
        id: u64,
        /// "voter" or "learner".
        kind: &'static str,
    },
    /// `add-learner` with an address no node can be reached at.
    #[error("bad peer address {addr:?}: {reason}")]
    BadAddress {
        /// What the operator gave.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `add-learner` with the address of a member that is already there.
    #[error("peer address {addr} is already node {owner}'s")]
    AddressInUse {
        /// The address.
        addr: String,
        /// The member at it.
        owner: u64,
    },
    /// `promote` or `remove` of a node that is not in the configuration.
    #[error("node {0} is not a member")]
    NotAMember(u64),
    /// `promote` of a voter.
    #[error("node {0} is already a voter: promote takes a learner")]
    AlreadyVoter(u64),
    /// `promote` of a learner whose peer address nobody recorded: no one could reach it.
    #[error("node {0} has no known peer address: add it again with add-learner --peer-addr")]
    NoAddress(u64),
    /// The voters after the change would not include a majority that answers the leader.
    #[error(
        "refused: after this change the voters would be {voters:?}, of which only {reachable:?} \
         answered the leader recently; a majority needs {needed}, so the cluster could not \
         commit and tolerates no failure now (once all answer, {}). Bring the others back, or \
         repeat with --force (force=1) to change the configuration anyway",
        which_tolerate(voters)
    )]
    QuorumUnreachable {
        /// The voters after the change.
        voters: Vec<u64>,
        /// Those of them the leader heard from recently (itself included).
        reachable: Vec<u64>,
        /// A majority of `voters`.
        needed: usize,
    },
    /// A removal would leave fewer than [`MIN_SAFE_VOTERS`] voters.
    #[error(
        "refused: removing {id} leaves {}; pass --force (force=1) to do it anyway",
        which_tolerate(voters)
    )]
    TooFewVoters {
        /// The voter being removed.
        id: u64,
        /// The voters after the removal.
        voters: Vec<u64>,
    },
    /// `add-learner` while the current voters' majority does not answer the leader: the
    /// learner's entry could not commit, nor could its promotion.
    #[error(
        "refused: of the voters {voters:?} only {reachable:?} answered the leader recently; a \
         majority needs {needed}, so a learner added now could never be promoted, and the \
         cluster tolerates no failure now (once all answer, {}). Bring the others back, or \
         repeat with --force (force=1) to add it anyway",
        which_tolerate(voters)
    )]
    LearnerQuorumUnreachable {
        /// The voters in force.
        voters: Vec<u64>,
        /// Those of them the leader heard from recently (itself included).
        reachable: Vec<u64>,
        /// A majority of `voters`.
        needed: usize,
    },
    /// The leader's record of who answered was reset too recently to tell.
    #[error("{UNSETTLED_PREFIX} since it last checked its followers; retry in a moment")]
    ReachabilityUnsettled,
}

fn leader_hint(leader: Option<u64>) -> String {
    match leader {
        Some(id) => format!("the leader is node {id}"),
        None => "no leader is known".to_string(),
    }
}

/// What the node knows when it checks a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// This node.
    pub me: u64,
    /// The leader this node knows of (itself when it leads).
    pub leader: Option<u64>,
    /// The configuration in force.
    pub conf: ConfState,
    /// The peer address of every node that has one recorded (in the log or at start).
    pub addresses: BTreeMap<u64, String>,
    /// The nodes the leader heard from since its last CheckQuorum round (thesis §6.2), itself
    /// included. Without CheckQuorum the core never clears its record, and this holds every
    /// follower that answered in the leader's term: a weaker check.
    pub reachable: BTreeSet<u64>,
    /// Whether that round is old enough for every live follower to have answered a heartbeat
    /// in it; if not, an empty-looking `reachable` says nothing.
    pub reachability_settled: bool,
}

impl ClusterView {
    /// The view of `raft`, with the peer addresses known to the driver.
    pub fn of<S: LogStorage>(raft: &Raft<S>, addresses: BTreeMap<u64, String>) -> ClusterView {
        let me = raft.id().0;
        let leading = raft.role() == Role::Leader;
        let mut reachable: BTreeSet<u64> = raft
            .progress()
            .iter()
            .filter(|(_, progress)| leading && progress.recent_active())
            .map(|(id, _)| id.0)
            .collect();
        reachable.insert(me);
        ClusterView {
            me,
            leader: raft.leader().map(|l| l.0),
            conf: raft.conf_state(),
            addresses,
            reachable,
            // The flags are cleared every election timeout; every live follower answers the
            // first heartbeat after that, sent at most a heartbeat interval later.
            reachability_settled: raft.election_elapsed_ticks()
                > raft.config().heartbeat_interval_ticks,
        }
    }

    fn is_voter(&self, id: u64) -> bool {
        self.conf.voters.contains(&NodeId(id))
    }

    fn is_learner(&self, id: u64) -> bool {
        self.conf.learners.contains(&NodeId(id))
    }
}

/// Checks `request` against `view`. A membership change that passes answers with the
/// configuration it leaves; requests that are not membership changes pass with none (the core
/// checks a leadership transfer's target itself) once their id is in range.
pub fn check(view: &ClusterView, request: &AdminRequest) -> Result<Option<Outcome>, AdminError> {
    let id = match request {
        AdminRequest::TransferLeader(id) => return check_id(*id).map(|()| None),
        AdminRequest::Snapshot | AdminRequest::Campaign | AdminRequest::PreVote(_) => {
            return Ok(None)
        }
        AdminRequest::AddLearner { id, .. }
        | AdminRequest::Promote { id, .. }
        | AdminRequest::Remove { id, .. } => *id,
    };
    check_id(id)?;
    if view.leader != Some(view.me) {
        return Err(AdminError::NotLeader {
            leader: view.leader,
        });
    }
    let voters_before: BTreeSet<u64> = view.conf.voters.iter().map(|v| v.0).collect();
    let mut voters = voters_before.clone();
    let mut learners: BTreeSet<u64> = view.conf.learners.iter().map(|v| v.0).collect();
    let force = match request {
        AdminRequest::AddLearner {
            peer_addr, force, ..
        } => {
            check_new_learner(view, id, peer_addr)?;
            if !force {
                check_learner_can_be_promoted(view, &voters)?;
            }
            learners.insert(id);
            return Ok(Some(outcome(&voters, &learners)));
        }
        AdminRequest::Promote { force, .. } => {
            if view.is_voter(id) {
                return Err(AdminError::AlreadyVoter(id));
            }
            if !view.is_learner(id) {
                return Err(AdminError::NotAMember(id));
            }
            if !view.addresses.contains_key(&id) {
                return Err(AdminError::NoAddress(id));
            }
            voters.insert(id);
            learners.remove(&id);
            *force
        }
        AdminRequest::Remove { force, .. } => {
            if !view.conf.members().contains(&NodeId(id)) {
                return Err(AdminError::NotAMember(id));
            }
            voters.remove(&id);
            learners.remove(&id);
            *force
        }
        AdminRequest::TransferLeader(_)
        | AdminRequest::Snapshot
        | AdminRequest::Campaign
        | AdminRequest::PreVote(_) => {
            unreachable!("handled above")
        }
    };
    if !force {
        check_quorum_after(view, &voters)?;
        // Growing from one voter passes through two; only a shrink below three is refused.
        if voters.len() < MIN_SAFE_VOTERS && voters.len() < voters_before.len() {
            return Err(AdminError::TooFewVoters {
                id,
                voters: voters.iter().copied().collect(),
            });
        }
    }
    Ok(Some(outcome(&voters, &learners)))
}

fn outcome(voters: &BTreeSet<u64>, learners: &BTreeSet<u64>) -> Outcome {
    Outcome {
        voters: voters.iter().copied().collect(),
        learners: learners.iter().copied().collect(),
    }
}

fn check_id(id: u64) -> Result<(), AdminError> {
    if id == 0 || id > MAX_NODE_ID {
        return Err(AdminError::BadId(id));
    }
    Ok(())
}

fn check_new_learner(view: &ClusterView, id: u64, peer_addr: &str) -> Result<(), AdminError> {
    if view.is_voter(id) {
        return Err(AdminError::AlreadyMember { id, kind: "voter" });
    }
    if view.is_learner(id) {
        return Err(AdminError::AlreadyMember {
            id,
            kind: "learner",
        });
    }
    let bad = |reason: &str| AdminError::BadAddress {
        addr: peer_addr.to_string(),
        reason: reason.to_string(),
    };
    let addr: SocketAddr = peer_addr
        .parse()
        .map_err(|error: std::net::AddrParseError| bad(&format!("{error} (expected ip:port)")))?;
    if addr.port() == 0 {
        return Err(bad("port 0 is not a port a node listens on"));
    }
    if addr.ip().is_unspecified() || addr.ip().is_multicast() {
        return Err(bad("not an address a node can be reached at"));
    }
    let members = view.conf.members();
    let owner = view.addresses.iter().find(|(owner, known)| {
        members.contains(&NodeId(**owner)) && known.parse::<SocketAddr>().ok() == Some(addr)
    });
    if let Some((&owner, _)) = owner {
        return Err(AdminError::AddressInUse {
            addr: addr.to_string(),
            owner,
        });
    }
    Ok(())
}

/// A learner is worth adding only if the voters in force can commit now: its own entry, and
/// later its promotion, need a majority of them (§6).
fn check_learner_can_be_promoted(
    view: &ClusterView,
    voters: &BTreeSet<u64>,
) -> Result<(), AdminError> {
    match check_quorum_after(view, voters) {
        Err(AdminError::QuorumUnreachable {
            voters,
            reachable,
            needed,
        }) => Err(AdminError::LearnerQuorumUnreachable {
            voters,
            reachable,
            needed,
        }),
        other => other,
    }
}

/// After the change, a majority of `voters` must be reachable now (the leader counts itself
/// if it stays a voter): otherwise the joint configuration, which needs a majority of both
/// C_old and C_new (§6), could not commit, and the new configuration could not lose a node.
fn check_quorum_after(view: &ClusterView, voters: &BTreeSet<u64>) -> Result<(), AdminError> {
    let reachable: Vec<u64> = voters
        .iter()
        .copied()
        .filter(|id| view.reachable.contains(id))
        .collect();
    let needed = voters.len() / 2 + 1;
    if reachable.len() >= needed {
        return Ok(());
    }
    if !view.reachability_settled {
        return Err(AdminError::ReachabilityUnsettled);
    }
    Err(AdminError::QuorumUnreachable {
        voters: voters.iter().copied().collect(),
        reachable,
        needed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[u64]) -> Vec<NodeId> {
        ids.iter().copied().map(NodeId).collect()
    }

    /// Node 1 leads voters `voters` and learners `learners`; `reachable` answered lately; every
    /// member has an address 127.0.0.1:710<id>.
    fn leader_view(voters: &[u64], learners: &[u64], reachable: &[u64]) -> ClusterView {
        let conf = ConfState {
            voters: ids(voters),
            voters_outgoing: Vec::new(),
            learners: ids(learners),
        };
        let addresses = voters
            .iter()
            .chain(learners)
            .map(|id| (*id, format!("127.0.0.1:{}", 7100 + id)))
            .collect();
        ClusterView {
            me: 1,
            leader: Some(1),
            conf,
            addresses,
            reachable: reachable.iter().copied().chain([1]).collect(),
            reachability_settled: true,
        }
    }

    fn promote(id: u64) -> AdminRequest {
        AdminRequest::Promote { id, force: false }
    }

    fn remove(id: u64) -> AdminRequest {
        AdminRequest::Remove { id, force: false }
    }

    fn add(id: u64, peer_addr: &str) -> AdminRequest {
        AdminRequest::AddLearner {
            id,
            peer_addr: peer_addr.to_string(),
            force: false,
        }
    }

    /// What a passing change answers, as `skiff admin` prints it after "done: ".
    fn passes(view: &ClusterView, request: &AdminRequest) -> String {
        match check(view, request) {
            Ok(Some(outcome)) => outcome.to_string(),
            other => panic!("{request:?} did not pass: {other:?}"),
        }
    }

    #[test]
    fn promoting_a_node_that_does_not_exist_is_refused() {
        let view = leader_view(&[1, 2, 3], &[], &[2, 3]);
        assert_eq!(check(&view, &promote(99)), Err(AdminError::NotAMember(99)));
    }

    #[test]
    fn promoting_a_voter_is_refused() {
        let view = leader_view(&[1, 2, 3], &[], &[2, 3]);
        assert_eq!(check(&view, &promote(2)), Err(AdminError::AlreadyVoter(2)));
    }

    #[test]
    fn promoting_a_reachable_learner_with_an_address_passes() {
        let view = leader_view(&[1, 2, 3], &[4], &[2, 3, 4]);
        assert_eq!(
            passes(&view, &promote(4)),
            "4 voters (1, 2, 3, 4), tolerates 1 failure"
        );
    }

    #[test]
    fn promoting_a_learner_without_a_recorded_address_is_refused() {
        let mut view = leader_view(&[1, 2, 3], &[4], &[2, 3, 4]);
        view.addresses.remove(&4);
        assert_eq!(check(&view, &promote(4)), Err(AdminError::NoAddress(4)));
    }

    #[test]
    fn promoting_when_the_new_voters_lack_a_reachable_majority_is_refused_unless_forced() {
        // Voters {1,2,3,4} after the promotion need 3; only 1 and 4 answer.
        let view = leader_view(&[1, 2, 3], &[4], &[4]);
        assert_eq!(
            check(&view, &promote(4)),
            Err(AdminError::QuorumUnreachable {
                voters: vec![1, 2, 3, 4],
                reachable: vec![1, 4],
                needed: 3,
            })
        );
        let forced = AdminRequest::Promote { id: 4, force: true };
        assert_eq!(
            passes(&view, &forced),
            "4 voters (1, 2, 3, 4), tolerates 1 failure"
        );
    }

    #[test]
    fn removing_a_non_member_is_refused_even_when_forced() {
        let view = leader_view(&[1, 2, 3], &[], &[2, 3]);
        let forced = AdminRequest::Remove { id: 7, force: true };
        assert_eq!(check(&view, &forced), Err(AdminError::NotAMember(7)));
    }

    #[test]
    fn removing_a_live_voter_that_leaves_three_reachable_voters_passes() {
        // {1,2,3,4} minus 4 leaves {1,2,3}: all answer.
        let view = leader_view(&[1, 2, 3, 4], &[], &[2, 3, 4]);
        assert_eq!(
            passes(&view, &remove(4)),
            "3 voters (1, 2, 3), tolerates 1 failure"
        );
    }

    #[test]
    fn removing_down_to_two_voters_is_refused_unless_forced() {
        // {1,2,3} minus 3 leaves {1,2}: both answer, but neither may fail.
        let view = leader_view(&[1, 2, 3], &[], &[2, 3]);
        let refused = check(&view, &remove(3));
        assert_eq!(
            refused,
            Err(AdminError::TooFewVoters {
                id: 3,
                voters: vec![1, 2]
            })
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            "refused: removing 3 leaves 2 voters (1, 2), which tolerate no failure; \
             pass --force (force=1) to do it anyway"
        );
        let forced = AdminRequest::Remove { id: 3, force: true };
        assert_eq!(
            passes(&view, &forced),
            "2 voters (1, 2), tolerates no failure"
        );
    }

    #[test]
    fn removing_down_to_one_voter_is_refused_unless_forced() {
        let view = leader_view(&[1, 2], &[], &[2]);
        let refused = check(&view, &remove(2)).unwrap_err().to_string();
        assert!(
            refused.contains("leaves 1 voter (1), which tolerates no failure"),
            "{refused}"
        );
        let forced = AdminRequest::Remove { id: 2, force: true };
        assert_eq!(passes(&view, &forced), "1 voter (1), tolerates no failure");
    }

    #[test]
    fn growing_from_one_voter_through_two_passes() {
        // The only way from one voter to three is through two: a promotion never shrinks.
        let view = leader_view(&[1], &[2, 3], &[2, 3]);
        assert_eq!(
            passes(&view, &promote(2)),
            "2 voters (1, 2), tolerates no failure; 1 learner (3)"
        );
        let view = leader_view(&[1, 2], &[3], &[2, 3]);
        assert_eq!(
            passes(&view, &promote(3)),
            "3 voters (1, 2, 3), tolerates 1 failure"
        );
    }

    #[test]
    fn fault_tolerance_is_said_in_words_for_each_size() {
        for (voters, words) in [
            (&[1][..], "1 voter (1), tolerates no failure"),
            (&[1, 2], "2 voters (1, 2), tolerates no failure"),
            (&[1, 2, 3], "3 voters (1, 2, 3), tolerates 1 failure"),
            (&[1, 2, 3, 4], "4 voters (1, 2, 3, 4), tolerates 1 failure"),
            (
                &[1, 2, 3, 4, 5],
                "5 voters (1, 2, 3, 4, 5), tolerates 2 failures",
            ),
        ] {
            let outcome = Outcome {
                voters: voters.to_vec(),
                learners: Vec::new(),
            };
            assert_eq!(outcome.to_string(), words);
        }
    }

    #[test]
    fn removing_the_only_live_follower_while_another_is_down_is_refused_unless_forced() {
        // 3 is down; removing 2 leaves {1,3}, which needs both, and 3 does not answer.
        let view = leader_view(&[1, 2, 3], &[], &[2]);
        assert_eq!(
            check(&view, &remove(2)),
            Err(AdminError::QuorumUnreachable {
                voters: vec![1, 3],
                reachable: vec![1],
                needed: 2,
            })
        );
        let text = check(&view, &remove(2)).unwrap_err().to_string();
        assert!(
            text.contains("once all answer, 2 voters (1, 3), which tolerate no failure"),
            "{text}"
        );
        let forced = AdminRequest::Remove { id: 2, force: true };
        assert_eq!(
            passes(&view, &forced),
            "2 voters (1, 3), tolerates no failure"
        );
    }

    #[test]
    fn removing_the_down_voter_of_five_passes() {
        // 5 is down; removing it leaves {1,2,3,4}, all answering: the usual repair.
        let view = leader_view(&[1, 2, 3, 4, 5], &[], &[2, 3, 4]);
        assert_eq!(
            passes(&view, &remove(5)),
            "4 voters (1, 2, 3, 4), tolerates 1 failure"
        );
    }

    #[test]
    fn removing_the_down_voter_of_three_needs_force() {
        // 3 is down; removing it leaves {1,2}, both answering, which may lose neither.
        let view = leader_view(&[1, 2, 3], &[], &[2]);
        assert!(matches!(
            check(&view, &remove(3)),
            Err(AdminError::TooFewVoters { id: 3, .. })
        ));
        let forced = AdminRequest::Remove { id: 3, force: true };
        assert_eq!(
            passes(&view, &forced),
            "2 voters (1, 2), tolerates no failure"
        );
    }

    #[test]
    fn removing_the_leader_counts_only_the_remaining_voters() {
        // Without 1, {2,3,4} needs two of them; only 2 answers.
        let view = leader_view(&[1, 2, 3, 4], &[], &[2]);
        assert!(matches!(
            check(&view, &remove(1)),
            Err(AdminError::QuorumUnreachable { needed: 2, .. })
        ));
        let view = leader_view(&[1, 2, 3, 4], &[], &[2, 3]);
        assert_eq!(
            passes(&view, &remove(1)),
            "3 voters (2, 3, 4), tolerates 1 failure"
        );
    }

    #[test]
    fn removing_a_learner_never_changes_the_quorum_or_the_voter_count() {
        let view = leader_view(&[1, 2, 3], &[4], &[2, 3]);
        assert_eq!(
            passes(&view, &remove(4)),
            "3 voters (1, 2, 3), tolerates 1 failure"
        );
        // Two voters stay two: the removal of a learner takes nothing from them.
        let view = leader_view(&[1, 2], &[4], &[2]);
        assert_eq!(
            passes(&view, &remove(4)),
            "2 voters (1, 2), tolerates no failure"
        );
    }

    #[test]
    fn a_failing_quorum_check_before_a_full_heartbeat_round_asks_to_retry() {
        let mut view = leader_view(&[1, 2, 3], &[], &[]);
        view.reachability_settled = false;
        let refused = check(&view, &remove(2));
        assert_eq!(refused, Err(AdminError::ReachabilityUnsettled));
        let text = refused.unwrap_err().to_string();
        assert!(text.starts_with(UNSETTLED_PREFIX), "{text}");
        // A check that passes needs no settled view.
        view.reachable.extend([2, 3]);
        let forced = AdminRequest::Remove { id: 2, force: true };
        assert!(matches!(check(&view, &forced), Ok(Some(_))));
        assert!(matches!(
            check(&view, &remove(2)),
            Err(AdminError::TooFewVoters { .. })
        ));
    }

    #[test]
    fn ids_zero_and_absurd_are_refused_for_every_request_naming_a_node() {
        let view = leader_view(&[1, 2, 3], &[], &[2, 3]);
        for id in [0, MAX_NODE_ID + 1, u64::MAX] {
            for request in [
                promote(id),
                remove(id),
                add(id, "127.0.0.1:7199"),
                AdminRequest::TransferLeader(id),
            ] {
                assert_eq!(check(&view, &request), Err(AdminError::BadId(id)));
            }
        }
    }

    #[test]
    fn membership_changes_on_a_follower_are_refused_with_the_leader_named() {
        let mut view = leader_view(&[1, 2, 3], &[4], &[]);
        view.leader = Some(2);
        for request in [promote(4), remove(3), add(5, "127.0.0.1:7105")] {
            let refused = check(&view, &request);
            assert_eq!(refused, Err(AdminError::NotLeader { leader: Some(2) }));
            assert!(refused
                .unwrap_err()
                .to_string()
                .contains("the leader is node 2"));
        }
    }

    #[test]
    fn adding_a_learner_needs_a_new_id_and_a_reachable_looking_address() {
        let view = leader_view(&[1, 2, 3], &[4], &[2, 3]);
        assert_eq!(
            passes(&view, &add(5, "127.0.0.1:7105")),
            "3 voters (1, 2, 3), tolerates 1 failure; 2 learners (4, 5)"
        );
        assert_eq!(
            check(&view, &add(2, "127.0.0.1:7199")),
            Err(AdminError::AlreadyMember {
                id: 2,
                kind: "voter"
            })
        );
        assert_eq!(
            check(&view, &add(4, "127.0.0.1:7199")),
            Err(AdminError::AlreadyMember {
                id: 4,
                kind: "learner"
            })
        );
        for bad in [
            "",
            "nowhere",
            "127.0.0.1",
            "127.0.0.1:0",
            "0.0.0.0:7105",
            "<script>:1",
        ] {
            assert!(
                matches!(
                    check(&view, &add(5, bad)),
                    Err(AdminError::BadAddress { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            check(&view, &add(5, "127.0.0.1:7102")),
            Err(AdminError::AddressInUse {
                addr: "127.0.0.1:7102".into(),
                owner: 2
            })
        );
    }

    #[test]
    fn requests_that_change_no_membership_pass() {
        let mut view = leader_view(&[1, 2, 3], &[], &[]);
        view.leader = None;
        for request in [
            AdminRequest::Snapshot,
            AdminRequest::Campaign,
            AdminRequest::TransferLeader(2),
        ] {
            assert_eq!(check(&view, &request), Ok(None));
        }
    }

    #[test]
    fn adding_a_learner_while_the_voters_lack_a_reachable_majority_is_refused_unless_forced() {
        // 2 and 3 are down: the learner's entry could not commit, nor could its promotion.
        let view = leader_view(&[1, 2, 3], &[], &[]);
        let refused = check(&view, &add(4, "127.0.0.1:7104"));
        assert_eq!(
            refused,
            Err(AdminError::LearnerQuorumUnreachable {
                voters: vec![1, 2, 3],
                reachable: vec![1],
                needed: 2,
            })
        );
        let text = refused.unwrap_err().to_string();
        assert!(text.contains("could never be promoted"), "{text}");
        assert!(text.contains("tolerates no failure now"), "{text}");
        assert!(text.contains("--force"), "{text}");
        let forced = AdminRequest::AddLearner {
            id: 4,
            peer_addr: "127.0.0.1:7104".into(),
            force: true,
        };
        assert_eq!(
            passes(&view, &forced),
            "3 voters (1, 2, 3), tolerates 1 failure; 1 learner (4)"
        );
        // One voter down leaves a majority: the learner may come.
        let view = leader_view(&[1, 2, 3], &[], &[2]);
        assert!(matches!(
            check(&view, &add(4, "127.0.0.1:7104")),
            Ok(Some(_))
        ));
    }

    #[test]
    fn an_unsettled_view_asks_to_retry_an_add_learner_rather_than_refuse_it() {
        let mut view = leader_view(&[1, 2, 3], &[], &[]);
        view.reachability_settled = false;
        assert_eq!(
            check(&view, &add(4, "127.0.0.1:7104")),
            Err(AdminError::ReachabilityUnsettled)
        );
    }
}
