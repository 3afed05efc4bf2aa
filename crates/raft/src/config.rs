//! Settings of one Raft node, with their limits and units in their names.

use crate::types::{LogIndex, NodeId};

/// [`Config::snapshot_trailing_entries`] unless set: a follower up to this many entries behind
/// a new snapshot still catches up from the log.
pub const DEFAULT_SNAPSHOT_TRAILING_ENTRIES: u64 = 1024;

/// Settings of one node. [`Config::new`] gives the defaults; fields may be changed before
/// [`RawNode::new`](crate::RawNode::new), which validates them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id (never 0).
    pub id: NodeId,
    /// The voting members of the cluster, this node included when it votes.
    pub voters: Vec<NodeId>,
    /// Followers campaign after a random timeout in `[election_timeout_ticks, 2 * election_timeout_ticks)`.
    pub election_timeout_ticks: u64,
    /// A leader sends heartbeats every this many ticks. Must be below the election timeout.
    pub heartbeat_interval_ticks: u64,
    /// PreVote (thesis §9.6): ask whether an election could be won before raising the term.
    pub pre_vote: bool,
    /// CheckQuorum (thesis §6.2): a leader that has not heard from a majority within an
    /// election timeout steps down, and nodes that heard from a leader that recently ignore
    /// vote requests.
    pub check_quorum: bool,
    /// Unanswered appends in flight to one follower while streaming.
    pub max_inflight_appends: usize,
    /// While streaming to a follower, a new append goes only while the unanswered ones hold
    /// fewer than this many bytes of entries (one append always goes, whatever its size), so
    /// what a leader holds for a follower that catches up stays below this plus one
    /// `max_message_bytes` append.
    pub max_inflight_bytes: u64,
    /// Entries in one AppendEntries message.
    pub max_append_entries: usize,
    /// Bytes of entries in one AppendEntries message (a larger single proposal is refused).
    pub max_message_bytes: u64,
    /// Bytes of proposals a leader accepts before they commit; beyond it proposals are refused.
    pub max_uncommitted_bytes: u64,
    /// Bytes of committed entries handed to the application in one [`Ready`](crate::Ready).
    pub max_apply_bytes: u64,
    /// Read requests a leader holds while they wait for confirmation.
    pub max_pending_reads: usize,
    /// Lease reads: a leader that heard from a majority within the last
    /// `election_timeout_ticks - lease_clock_drift_ticks` ticks answers reads without a
    /// heartbeat round. Requires `check_quorum`. It assumes that no node's tick runs more than
    /// `lease_clock_drift_ticks` per election timeout faster than the leader's: a follower
    /// votes for no one else until an election timeout after it last heard from the leader,
    /// and the lease ends before that on the leader's own clock.
    pub read_lease: bool,
    /// The clock drift that lease reads allow for, in ticks per election timeout.
    pub lease_clock_drift_ticks: u64,
    /// Entries kept in the log below a new snapshot, so that slightly slow followers catch up
    /// from the log rather than receive the whole snapshot.
    pub snapshot_trailing_entries: u64,
    /// Bytes of snapshot data in one InstallSnapshot message.
    pub max_snapshot_chunk_bytes: u64,
    /// The index the application's state machine has already applied (on restart).
    pub applied: LogIndex,
    /// Seeds the PRNG that randomizes election timeouts.
    pub seed: u64,
}

/// Why a [`Config`] was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Node id 0 means "nobody".
    #[error("node id 0 is reserved")]
    ZeroId,
    /// A voter list may not contain id 0 or the same id twice.
    #[error("the voter list contains id 0 or a duplicate: {0:?}")]
    BadVoters(Vec<NodeId>),
    /// The heartbeat must fire well within the election timeout.
    #[error("heartbeat interval ({heartbeat}) must be at least 1 and below the election timeout ({election})")]
    BadTimeouts {
        /// The heartbeat interval in ticks.
        heartbeat: u64,
        /// The election timeout in ticks.
        election: u64,
    },
    /// Lease reads need CheckQuorum, and a drift allowance below the election timeout.
    #[error("read_lease needs check_quorum and lease_clock_drift_ticks ({drift}) below the election timeout ({election})")]
    BadLease {
        /// The drift allowance in ticks.
        drift: u64,
        /// The election timeout in ticks.
        election: u64,
    },
    /// A limit was set to zero.
    #[error("limit {0} must be at least 1")]
    ZeroLimit(&'static str),
}

impl Config {
    /// The defaults for node `id` in a cluster of `voters`: election timeout 10 ticks,
    /// heartbeat every tick, PreVote and CheckQuorum on.
    pub fn new(id: NodeId, voters: impl IntoIterator<Item = NodeId>) -> Config {
        Config {
            id,
            voters: voters.into_iter().collect(),
            election_timeout_ticks: 10,
            heartbeat_interval_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            max_inflight_appends: 256,
            max_inflight_bytes: 8 * 1024 * 1024,
            max_append_entries: 1024,
            max_message_bytes: 1024 * 1024,
            max_uncommitted_bytes: 64 * 1024 * 1024,
            max_apply_bytes: 16 * 1024 * 1024,
            max_pending_reads: 4096,
            read_lease: false,
            lease_clock_drift_ticks: 2,
            snapshot_trailing_entries: DEFAULT_SNAPSHOT_TRAILING_ENTRIES,
            max_snapshot_chunk_bytes: 1024 * 1024,
            applied: LogIndex(0),
            seed: 0,
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id.0 == 0 {
            return Err(ConfigError::ZeroId);
        }
        let mut sorted = self.voters.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.voters.len() || sorted.first().is_some_and(|id| id.0 == 0) {
            return Err(ConfigError::BadVoters(self.voters.clone()));
        }
        if self.heartbeat_interval_ticks == 0
            || self.heartbeat_interval_ticks >= self.election_timeout_ticks
        {
            return Err(ConfigError::BadTimeouts {
                heartbeat: self.heartbeat_interval_ticks,
                election: self.election_timeout_ticks,
            });
        }
        if self.read_lease
            && (!self.check_quorum || self.lease_clock_drift_ticks >= self.election_timeout_ticks)
        {
            return Err(ConfigError::BadLease {
                drift: self.lease_clock_drift_ticks,
                election: self.election_timeout_ticks,
            });
        }
        let limits = [
            ("max_inflight_appends", self.max_inflight_appends as u64),
            ("max_inflight_bytes", self.max_inflight_bytes),
            ("max_append_entries", self.max_append_entries as u64),
            ("max_message_bytes", self.max_message_bytes),
            ("max_uncommitted_bytes", self.max_uncommitted_bytes),
            ("max_apply_bytes", self.max_apply_bytes),
            ("max_pending_reads", self.max_pending_reads as u64),
            ("max_snapshot_chunk_bytes", self.max_snapshot_chunk_bytes),
        ];
        match limits.iter().find(|(_, value)| *value == 0) {
            Some((name, _)) => Err(ConfigError::ZeroLimit(name)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        Config::new(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)])
    }

    #[test]
    fn defaults_are_valid_with_prevote_and_checkquorum_on() {
        let config = base();
        assert_eq!(config.validate(), Ok(()));
        assert!(config.pre_vote && config.check_quorum);
    }

    #[test]
    fn invalid_settings_are_named() {
        let mut zero = base();
        zero.id = NodeId(0);
        assert_eq!(zero.validate(), Err(ConfigError::ZeroId));

        let mut dup = base();
        dup.voters.push(NodeId(2));
        assert!(matches!(dup.validate(), Err(ConfigError::BadVoters(_))));

        let mut zero_voter = base();
        zero_voter.voters.push(NodeId(0));
        assert!(matches!(
            zero_voter.validate(),
            Err(ConfigError::BadVoters(_))
        ));

        let mut slow_heartbeat = base();
        slow_heartbeat.heartbeat_interval_ticks = 10;
        assert!(matches!(
            slow_heartbeat.validate(),
            Err(ConfigError::BadTimeouts { .. })
        ));

        let mut no_heartbeat = base();
        no_heartbeat.heartbeat_interval_ticks = 0;
        assert!(matches!(
            no_heartbeat.validate(),
            Err(ConfigError::BadTimeouts { .. })
        ));

        let mut no_inflight = base();
        no_inflight.max_inflight_appends = 0;
        assert_eq!(
            no_inflight.validate(),
            Err(ConfigError::ZeroLimit("max_inflight_appends"))
        );

        let mut lease_without_check_quorum = base();
        lease_without_check_quorum.read_lease = true;
        lease_without_check_quorum.check_quorum = false;
        assert!(matches!(
            lease_without_check_quorum.validate(),
            Err(ConfigError::BadLease { .. })
        ));

        let mut lease_with_huge_drift = base();
        lease_with_huge_drift.read_lease = true;
        lease_with_huge_drift.lease_clock_drift_ticks = 10;
        assert!(matches!(
            lease_with_huge_drift.validate(),
            Err(ConfigError::BadLease { .. })
        ));

        let mut no_apply = base();
        no_apply.max_apply_bytes = 0;
        assert_eq!(
            no_apply.validate(),
            Err(ConfigError::ZeroLimit("max_apply_bytes"))
        );
    }
}
