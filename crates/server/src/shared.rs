//! What the driver thread publishes for the client, peer and HTTP tasks: the node's status,
//! the addresses other nodes advertise, and counters for `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::history::History;
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
    /// The last entries of the log (index, term, kind), oldest first.
    #[serde(default)]
    pub log: Vec<crate::driver::log_tail::LogCell>,
    /// The Raft messages sent to and received from each peer, by kind, since the start.
    #[serde(default)]
    pub traffic: Vec<crate::driver::traffic::PeerTraffic>,
    /// Milliseconds per Raft tick, now.
    #[serde(default)]
    pub tick_ms: u64,
    /// Whether this node asks for pre-votes before an election (thesis §9.6).
    #[serde(default)]
    pub pre_vote: bool,
}

/// Something that happened, as the live view and `skiff local` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEvent {
    /// Its place among the events of this node (the first is 1): a view that got the
    /// history takes from the stream only the events after it.
    #[serde(default)]
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The term it happened in.
    pub term: u64,
    /// `election`, `role`, `leader`, `membership`, `snapshot`, `isolation`.
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
    /// Sent with the history's lock held, so that a subscriber that takes the lock to copy
    /// the history and subscribe misses no event and gets none twice.
    pub events: tokio::sync::broadcast::Sender<String>,
    /// The last events, for views opened later.
    pub history: Mutex<History>,
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
    /// Milliseconds per Raft tick: the driver reads it before each tick, so the live view
    /// can slow the node down to follow single messages (`POST /admin/tick`).
    pub tick_ms: AtomicU64,
    /// The sender tasks to peers, woken when their peer connects to this node.
    pub redials: Arc<crate::transport::redial::Redials>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            status: RwLock::default(),
            advertised: RwLock::default(),
            metrics: Arc::default(),
            events: tokio::sync::broadcast::channel(256).0,
            history: Mutex::default(),
            isolated: AtomicBool::new(false),
            fault_injection: false,
            local_control: None,
            initial_cluster: BTreeMap::new(),
            pubsub: Arc::default(),
            tick_ms: AtomicU64::new(crate::settings::DEFAULT_TICK_MS),
            redials: Arc::default(),
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
        status.tick_ms = self.tick_ms.load(Ordering::Relaxed);
        status
    }

    /// The time per Raft tick, now.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.load(Ordering::Relaxed).max(1))
    }

    /// Sets the time per Raft tick (whole milliseconds, at least one).
    pub fn set_tick(&self, tick: Duration) {
        let ms = u64::try_from(tick.as_millis()).unwrap_or(u64::MAX).max(1);
        self.tick_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether peer traffic is being dropped on purpose.
    pub fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::Relaxed)
    }

    /// Publishes an event to the live view's subscribers, if any, and keeps it in the
    /// history.
    pub fn publish(&self, term: u64, kind: &str, text: String) {
        let at_ms = crate::driver::wall_clock_ms();
        let Ok(mut history) = self.history.lock() else {
            return;
        };
        let event = ClusterEvent {
            seq: history.next_seq(),
            at_ms,
            term,
            kind: kind.to_string(),
            text,
        };
        if let Ok(json) = serde_json::to_string(&event) {
            history.push(json.clone());
            // No subscriber is not an error.
            let _ = self.events.send(json);
        }
    }

    /// A subscription to the events, with the history up to it (as [`History::to_json`]).
    pub fn subscribe_with_history(&self) -> (tokio::sync::broadcast::Receiver<String>, String) {
        match self.history.lock() {
            Ok(history) => (self.events.subscribe(), history.to_json()),
            Err(_) => (self.events.subscribe(), History::default().to_json()),
        }
    }
}
