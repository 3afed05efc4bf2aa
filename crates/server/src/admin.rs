//! The operator's membership changes, checked on the leader before they are proposed: the node
//! must exist in the role the change expects, have a usable peer address, and — unless the
//! operator forces it — the change must leave a voter set whose majority the leader can reach
//! now. The core refuses what breaks Raft's rules (one change at a time, a promoted learner must
//! have caught up); these checks refuse what Raft allows but would leave the cluster unable to
//! lose a node, or unable to commit at all.

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
         answered the leader recently; a majority needs {needed}. Bring the others back, or \
         repeat with --force (force=1) to change the configuration anyway"
    )]
    QuorumUnreachable {
        /// The voters after the change.
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

/// Checks `request` against `view`; requests that are not membership changes pass (the core
/// checks a leadership transfer's target itself) once their id is in range.
pub fn check(view: &ClusterView, request: &AdminRequest) -> Result<(), AdminError> {
    let id = match request {
        AdminRequest::TransferLeader(id) => return check_id(*id),
        AdminRequest::Snapshot | AdminRequest::Campaign => return Ok(()),
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
    let mut voters: BTreeSet<u64> = view.conf.voters.iter().map(|v| v.0).collect();
    let force = match request {
        AdminRequest::AddLearner { peer_addr, .. } => {
            return check_new_learner(view, id, peer_addr)
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
            *force
        }
        AdminRequest::Remove { force, .. } => {
            if !view.conf.members().contains(&NodeId(id)) {
                return Err(AdminError::NotAMember(id));
            }
            voters.remove(&id);
            *force
        }
        AdminRequest::TransferLeader(_) | AdminRequest::Snapshot | AdminRequest::Campaign => {
            unreachable!("handled above")
        }
    };
    if force {
        return Ok(());
    }
    check_quorum_after(view, &voters)
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
        assert_eq!(check(&view, &promote(4)), Ok(()));
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
        assert_eq!(check(&view, &forced), Ok(()));
    }

    #[test]
    fn removing_a_non_member_is_refused_even_when_forced() {
        let view = leader_view(&[1, 2, 3], &[], &[2, 3]);
        let forced = AdminRequest::Remove { id: 7, force: true };
        assert_eq!(check(&view, &forced), Err(AdminError::NotAMember(7)));
    }

    #[test]
    fn removing_a_live_voter_that_leaves_a_reachable_majority_passes() {
        // {1,2,3} minus 3 leaves {1,2}: both answer.
        let view = leader_view(&[1, 2, 3], &[], &[2, 3]);
        assert_eq!(check(&view, &remove(3)), Ok(()));
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
        let forced = AdminRequest::Remove { id: 2, force: true };
        assert_eq!(check(&view, &forced), Ok(()));
    }

    #[test]
    fn removing_the_down_voter_passes() {
        // 3 is down; removing it leaves {1,2}, both answering: the usual repair.
        let view = leader_view(&[1, 2, 3], &[], &[2]);
        assert_eq!(check(&view, &remove(3)), Ok(()));
    }

    #[test]
    fn removing_the_leader_counts_only_the_remaining_voters() {
        // Without 1, {2,3} needs both; only 2 answers.
        let view = leader_view(&[1, 2, 3], &[], &[2]);
        assert!(matches!(
            check(&view, &remove(1)),
            Err(AdminError::QuorumUnreachable { needed: 2, .. })
        ));
        let view = leader_view(&[1, 2, 3], &[], &[2, 3]);
        assert_eq!(check(&view, &remove(1)), Ok(()));
    }

    #[test]
    fn removing_a_learner_never_changes_the_quorum() {
        let view = leader_view(&[1, 2, 3], &[4], &[2, 3]);
        assert_eq!(check(&view, &remove(4)), Ok(()));
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
        assert_eq!(check(&view, &remove(2)), Ok(()));
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
        assert_eq!(check(&view, &add(5, "127.0.0.1:7105")), Ok(()));
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
            assert_eq!(check(&view, &request), Ok(()));
        }
    }
}
