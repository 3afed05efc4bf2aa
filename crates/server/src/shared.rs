//! What the driver thread publishes for the client, peer and HTTP tasks: the node's status,
//! the addresses other nodes advertise, and counters for `/metrics`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

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

/// State shared between the driver thread and the async tasks.
#[derive(Debug, Default)]
pub struct Shared {
    /// The latest status the driver published.
    pub status: RwLock<NodeStatus>,
    /// Addresses peers advertised, by id.
    pub advertised: RwLock<BTreeMap<u64, Advertised>>,
    /// The Prometheus metrics.
    pub metrics: Arc<Metrics>,
}

impl Shared {
    /// The latest status.
    pub fn status(&self) -> NodeStatus {
        self.status.read().map(|s| s.clone()).unwrap_or_default()
    }
}
