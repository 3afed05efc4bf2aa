//! What the driver thread publishes for the client, peer and HTTP tasks: the node's status,
//! the addresses other nodes advertise, and counters for `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// The first index still in the log.
    pub first_index: u64,
    /// Ticks since the election timer was reset.
    pub election_elapsed: u64,
    /// The randomized election timeout, in ticks.
    pub election_timeout: u64,
    /// The members.
    pub members: Vec<MemberStatus>,
    /// The control API of `skiff local`, when the node runs under it.
    pub local_control: Option<String>,
    /// Whether the node accepts `POST /admin/isolate` (demonstrations and tests only).
    pub fault_injection: bool,
    /// Whether the node is cut off from its peers by `POST /admin/isolate`.
    pub isolated: bool,
    /// The incarnation of the node's data directory.
    #[serde(default)]
    pub incarnation: u64,
    /// Whether a peer refuses this node lately: its data directory is not the one the
    /// cluster recorded (it was wiped or replaced), so it stays out of elections.
    #[serde(default)]
    pub refused: bool,
}

/// Something that happened, as the live view and `skiff local` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEvent {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The term it happened in.
    pub term: u64,
    /// `role`, `leader`, `membership`, `snapshot`, `recovery`.
    pub kind: String,
    /// What happened, in words.
    pub text: String,
}

/// Addresses another node advertised when it connected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Advertised {
    /// Its client address.
    pub client_addr: String,
    /// Its HTTP address.
    pub http_addr: String,
    /// Its peer address, if it gave one: where to answer it when the log records none.
    pub peer_addr: Option<std::net::SocketAddr>,
    /// When it was last heard from: its Hello, then (at most once a second) a message on
    /// the connection it opened. `None` for this node's own entry.
    pub heard: Option<std::time::Instant>,
}

/// State shared between the driver thread and the async tasks.
#[derive(Debug)]
pub struct Shared {
    /// The latest status the driver published.
    pub status: RwLock<NodeStatus>,
    /// Addresses peers advertised, by id.
    pub advertised: RwLock<BTreeMap<u64, Advertised>>,
    /// The Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Events for the live view's subscribers (bounded: a slow subscriber misses events).
    pub events: tokio::sync::broadcast::Sender<String>,
    /// Set by `POST /admin/isolate`: every peer message in or out is dropped.
    pub isolated: AtomicBool,
    /// Whether `POST /admin/isolate` is allowed.
    pub fault_injection: bool,
    /// The control API of `skiff local`, shown to the live view.
    pub local_control: Option<String>,
    /// The founding members' peer addresses (the configuration the log starts from), for
    /// `GET /cluster`.
    pub initial_cluster: BTreeMap<u64, std::net::SocketAddr>,
    /// This node's subscribers and its `notify-keyspace-events` setting.
    pub pubsub: Arc<crate::pubsub::Hub>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            status: RwLock::default(),
            advertised: RwLock::default(),
            metrics: Arc::default(),
            events: tokio::sync::broadcast::channel(256).0,
            isolated: AtomicBool::new(false),
            fault_injection: false,
            local_control: None,
            initial_cluster: BTreeMap::new(),
            pubsub: Arc::default(),
        }
    }
}

impl Shared {
    /// The latest status.
    pub fn status(&self) -> NodeStatus {
        let mut status = self.status.read().map(|s| s.clone()).unwrap_or_default();
        status.local_control = self.local_control.clone();
        status.fault_injection = self.fault_injection;
        status.isolated = self.is_isolated();
        status
    }

    /// Whether peer traffic is being dropped on purpose.
    pub fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::Relaxed)
    }

    /// Publishes an event to the live view's subscribers, if any.
    pub fn publish(&self, term: u64, kind: &str, text: String) {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let event = ClusterEvent {
            at_ms,
            term,
            kind: kind.to_string(),
            text,
        };
        if let Ok(json) = serde_json::to_string(&event) {
            // No subscriber is not an error.
            let _ = self.events.send(json);
        }
    }
}
