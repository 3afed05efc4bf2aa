//! What the driver thread publishes for the client, peer and HTTP tasks: the node's status,
//! the addresses other nodes advertise, and counters for `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// One member of the cluster as this node knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// The member's id.
    pub id: u64,
    /// `voter`, `voter (outgoing)` or `learner`.
    pub kind: String,
    /// Its peer address.
    pub peer_addr: Option<String>,
    /// Its client (Redis protocol) address, as it advertised it.
    pub client_addr: Option<String>,
    /// Its HTTP address, as it advertised it.
    pub http_addr: Option<String>,
    /// On the leader: the highest index known to be replicated on it.
    pub match_index: Option<u64>,
}

/// `GET /status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// This node's id.
    pub id: u64,
    /// The cluster id.
    pub cluster_id: u64,
    /// `leader`, `follower`, `candidate` or `pre-candidate`.
    pub role: String,
    /// The current term.
    pub term: u64,
    /// Whom this node voted for in the term.
    pub vote: Option<u64>,
    /// The leader this node knows of.
    pub leader: Option<u64>,
    /// The leader's client address, if known.
    pub leader_client_addr: Option<String>,
    /// The commit index.
    pub commit: u64,
    /// The applied index.
    pub applied: u64,
    /// The last log index.
    pub last_index: u64,
    /// The snapshot's last included index.
    pub snapshot_index: u64,
    /// Keys in the store.
    pub keys: u64,
    /// Client requests waiting on this node.
    pub pending_requests: u64,
    /// The members.
    pub members: Vec<MemberStatus>,
}

/// Addresses another node advertised when it connected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Advertised {
    /// Its client address.
    pub client_addr: String,
    /// Its HTTP address.
    pub http_addr: String,
}

/// Monotonic counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Elections this node started (as candidate).
    pub elections_started: AtomicU64,
    /// Elections this node won.
    pub elections_won: AtomicU64,
    /// Times the known leader changed.
    pub leader_changes: AtomicU64,
    /// Client writes proposed or forwarded.
    pub client_writes: AtomicU64,
    /// Client reads.
    pub client_reads: AtomicU64,
    /// Client requests refused because a queue was full.
    pub busy_refusals: AtomicU64,
    /// Client requests that timed out.
    pub request_timeouts: AtomicU64,
    /// Client connections open now.
    pub client_connections: AtomicU64,
    /// Client protocol errors (malformed requests).
    pub protocol_errors: AtomicU64,
    /// Unknown or malformed commands.
    pub command_errors: AtomicU64,
    /// Peer messages dropped because a peer's queue was full or it was unreachable.
    pub peer_messages_dropped: AtomicU64,
    /// Peer messages sent.
    pub peer_messages_sent: AtomicU64,
    /// Peer connections refused (bad handshake, other cluster, garbage).
    pub peer_connections_refused: AtomicU64,
    /// Durable write batches (one fsync each).
    pub wal_batches: AtomicU64,
    /// Total microseconds spent in durable write batches.
    pub wal_batch_micros: AtomicU64,
    /// Snapshots taken.
    pub snapshots_taken: AtomicU64,
    /// Snapshots installed from the leader.
    pub snapshots_installed: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// State shared between the driver thread and the async tasks.
#[derive(Debug, Default)]
pub struct Shared {
    /// The latest status the driver published.
    pub status: RwLock<NodeStatus>,
    /// Addresses peers advertised, by id.
    pub advertised: RwLock<BTreeMap<u64, Advertised>>,
    /// Counters.
    pub metrics: Metrics,
}

impl Shared {
    /// The latest status.
    pub fn status(&self) -> NodeStatus {
        self.status.read().map(|s| s.clone()).unwrap_or_default()
    }
}
