//! The error replies a node gives when it refuses or cannot finish a client's request. The
//! first word is the Redis error code clients act on: `CLUSTERDOWN` when no leader can take
//! the request, `TRYAGAIN` when a retry may succeed.

/// No leader is known: the cluster has no quorum, or is electing a leader.
pub const NO_LEADER: &str = "CLUSTERDOWN no leader is known; the cluster may have lost its quorum";
/// The write's entry was replaced by a new leader's: it was not applied.
pub const LEADER_CHANGED: &str =
    "TRYAGAIN the leader changed before the write committed; it was not applied";
/// A snapshot replaced the log where the write was: it may or may not have been applied.
pub const OUTCOME_UNKNOWN: &str =
    "TRYAGAIN the leader changed; the write may or may not have been applied";
/// Too many requests are waiting on this node.
pub const BUSY: &str = "TRYAGAIN too many requests in flight; retry later";
/// The leader changed or refused before confirming a read.
pub const READ_NOT_CONFIRMED: &str = "TRYAGAIN no leader confirmed the read; retry";
/// Leadership is moving to node `to` in a planned transfer (thesis §3.10): the leader refuses
/// new writes until it is done, and the others know no leader for the moment. Nothing was
/// applied; the cluster has not lost its quorum.
pub fn transferring(to: skiff_raft::NodeId) -> String {
    format!("{MOVING_PREFIX}{}; retry", to.0)
}
/// The start of every [`transferring`] refusal.
pub const MOVING_PREFIX: &str = "TRYAGAIN leadership is moving to node ";
/// Whether `text` is a [`transferring`] refusal.
pub fn is_leadership_moving(text: &str) -> bool {
    text.starts_with(MOVING_PREFIX)
}
/// The request does not fit in one log entry.
pub const TOO_LARGE: &str = "ERR request too large for one log entry";

/// A session write that reached the state machine ahead of an earlier write of its session
/// not yet applied: not applied; the node sends it again once the earlier ones resolve, and
/// no client sees it (a state machine answers a session's out-of-order request with it).
pub const OUT_OF_ORDER: &str =
    "TRYAGAIN an earlier write of the session is not applied yet; it was not applied";

/// A session write whose session the state machine does not know, refused because its
/// session table is full of busier sessions: this copy was not applied (a state machine
/// answers it so). True of that copy only: once the write was sent again, another copy may
/// still start the session.
pub const TOO_MANY_SESSIONS: &str = "TRYAGAIN too many client sessions; the write was not applied";
