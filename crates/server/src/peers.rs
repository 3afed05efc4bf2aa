//! The driver's outgoing peer queues, one per node it sends to, and where each is connected.
//!
//! A peer's address is, in order: the one the log (or a snapshot) records for it, its entry in
//! the initial cluster (or in the members a joining node was told of), and the peer address it
//! gave in its Hello. A Hello, which anyone who reaches the peer port may send, never redirects
//! a node the log or the identity knows; it lets a node answer a sender it has no address for,
//! such as a leader that joined the cluster after it.
//!
//! A node that is not a member is dialled only while it is answered because it speaks: its
//! queue is kept while its address comes from its Hello alone and it was heard from within
//! [`NON_MEMBER_QUIET`]. A removed member, founding or joined, is no longer dialled.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_raft::NodeId;

use crate::shared::Shared;
use crate::transport::PeerLink;

/// How often the addresses are checked besides membership changes: a node that is not a
/// member gives its address only in its Hello, which may change.
pub const PEER_REFRESH: Duration = Duration::from_secs(1);

/// How long a node that is not a member, known only by its Hello, keeps its queue after it
/// was last heard from.
pub const NON_MEMBER_QUIET: Duration = Duration::from_secs(5);

/// Starts a sender task for a peer at an address; the driver keeps the returned link.
pub type ConnectPeer = Box<dyn Fn(NodeId, SocketAddr) -> PeerLink + Send>;

/// The queues, and what their addresses are chosen from.
pub struct Peers {
    /// A link per peer, with the address its sender task connects to.
    queues: HashMap<NodeId, (SocketAddr, PeerLink)>,
    connect: ConnectPeer,
    /// The identity's peer addresses: the initial cluster's, and those a joining node was told.
    known: BTreeMap<u64, SocketAddr>,
    shared: Arc<Shared>,
    /// When the addresses were last checked.
    refreshed: Instant,
}

impl Peers {
    /// No queues yet; `connect` opens them.
    pub fn new(
        connect: ConnectPeer,
        known: BTreeMap<u64, SocketAddr>,
        shared: Arc<Shared>,
    ) -> Peers {
        Peers {
            queues: HashMap::new(),
            connect,
            known,
            shared,
            refreshed: Instant::now(),
        }
    }

    /// Where to reach `id`, given the addresses the log records.
    pub fn address(&self, recorded: &BTreeMap<NodeId, String>, id: NodeId) -> Option<SocketAddr> {
        recorded
            .get(&id)
            .and_then(|addr| addr.parse::<SocketAddr>().ok())
            .or_else(|| self.known.get(&id.0).copied())
            .or_else(|| self.shared.advertised.read().ok()?.get(&id.0)?.peer_addr)
    }

    /// The address `id`'s Hello gave, if that is the only address known for it and it was
    /// heard from within [`NON_MEMBER_QUIET`] of `now`: a node this one must answer.
    fn speaking_stranger(
        &self,
        recorded: &BTreeMap<NodeId, String>,
        id: NodeId,
        now: Instant,
    ) -> Option<SocketAddr> {
        let logged = recorded
            .get(&id)
            .is_some_and(|addr| addr.parse::<SocketAddr>().is_ok());
        if logged || self.known.contains_key(&id.0) {
            return None;
        }
        let advertised = self.shared.advertised.read().ok()?;
        let entry = advertised.get(&id.0)?;
        let heard = entry.heard?;
        (now.saturating_duration_since(heard) < NON_MEMBER_QUIET)
            .then_some(entry.peer_addr)
            .flatten()
    }

    /// Opens a queue to every member with a known address, moves a queue whose peer's address
    /// changed (a node re-added elsewhere) to the new one, and closes the queues of nodes that
    /// are not members, unless one speaks to this node from the address its Hello gave.
    pub fn refresh(&mut self, me: NodeId, members: &[NodeId], recorded: &BTreeMap<NodeId, String>) {
        let now = Instant::now();
        let stale: Vec<NodeId> = self
            .queues
            .iter()
            .filter(|(id, (addr, _))| {
                !members.contains(id) && self.speaking_stranger(recorded, **id, now) != Some(*addr)
            })
            .map(|(id, _)| *id)
            .collect();
        self.queues.retain(|id, _| !stale.contains(id));
        for &id in members.iter().filter(|&&id| id != me) {
            let Some(addr) = self.address(recorded, id) else {
                tracing::warn!(node = me.0, peer = id.0, "no address known for a member");
                continue;
            };
            self.connect_to(id, addr);
        }
        self.refreshed = now;
    }

    /// Whether [`PEER_REFRESH`] has passed since the last refresh.
    pub fn refresh_due(&self, now: Instant) -> bool {
        now.duration_since(self.refreshed) >= PEER_REFRESH
    }

    /// The queue to `to`, opened now if there is none and an address is known for it (a node
    /// that is not a member in this node's view, such as a leader that joined after it):
    /// a node answers whoever sends to it.
    pub fn queue(&mut self, to: NodeId, recorded: &BTreeMap<NodeId, String>) -> Option<&PeerLink> {
        if !self.queues.contains_key(&to) {
            if let Some(addr) = self.address(recorded, to) {
                self.connect_to(to, addr);
            }
        }
        self.queues.get(&to).map(|(_, queue)| queue)
    }

    /// Opens a queue to `id` at `addr`, unless one to that address is open: a queue to another
    /// address is closed (its sender task ends) and replaced.
    fn connect_to(&mut self, id: NodeId, addr: SocketAddr) {
        if self.queues.get(&id).map(|(known, _)| *known) != Some(addr) {
            let queue = (self.connect)(id, addr);
            self.queues.insert(id, (addr, queue));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::Advertised;
    use std::sync::Mutex;

    /// The connections opened, in order: a peer's id and address.
    type Opened = Arc<Mutex<Vec<(u64, SocketAddr)>>>;

    /// Peers whose connections are recorded rather than made, with node 1 in the identity.
    fn peers() -> (Peers, Opened, Arc<Shared>) {
        let opened = Arc::new(Mutex::new(Vec::new()));
        let record = opened.clone();
        let connect: ConnectPeer = Box::new(move |id, addr| {
            record.lock().unwrap().push((id.0, addr));
            let metrics = crate::metrics::Metrics::new();
            let sent = crate::transport::Sent {
                messages: metrics.peer_messages_sent.with_label_values(&["0"]),
                bytes: metrics.peer_bytes_sent.with_label_values(&["0"]),
            };
            crate::transport::peer_lane(0, 1, sent).0
        });
        let shared = Arc::new(Shared::default());
        let known = BTreeMap::from([(1, addr("10.0.0.1:7101"))]);
        (Peers::new(connect, known, shared.clone()), opened, shared)
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn hello(shared: &Shared, id: u64, peer_addr: &str) {
        shared.advertised.write().unwrap().insert(
            id,
            Advertised {
                peer_addr: Some(addr(peer_addr)),
                heard: Some(Instant::now()),
                ..Advertised::default()
            },
        );
    }

    #[test]
    fn a_member_re_added_at_another_address_is_reconnected_there() {
        let (mut peers, opened, _) = peers();
        let me = NodeId(9);
        let members = [NodeId(1), NodeId(2), me];
        let mut recorded = BTreeMap::from([(NodeId(2), "10.0.0.2:7101".to_string())]);
        peers.refresh(me, &members, &recorded);
        peers.refresh(me, &members, &recorded);
        recorded.insert(NodeId(2), "10.0.0.22:7101".to_string());
        peers.refresh(me, &members, &recorded);
        assert_eq!(
            *opened.lock().unwrap(),
            [
                (1, addr("10.0.0.1:7101")),
                (2, addr("10.0.0.2:7101")),
                (2, addr("10.0.0.22:7101"))
            ]
        );
        // Removed, it loses its queue.
        peers.refresh(me, &[NodeId(1), me], &BTreeMap::new());
        assert!(!peers.queues.contains_key(&NodeId(2)));
    }

    #[test]
    fn a_hello_gives_an_address_only_to_a_node_the_log_and_identity_do_not_know() {
        let (mut peers, opened, shared) = peers();
        let recorded = BTreeMap::from([(NodeId(2), "10.0.0.2:7101".to_string())]);
        // A forged Hello for nodes 1 and 2 does not move them; one for node 5, a leader
        // this node has no address for, is where node 5 is answered.
        hello(&shared, 1, "10.6.6.6:1");
        hello(&shared, 2, "10.6.6.6:2");
        hello(&shared, 5, "10.0.0.5:7101");
        for id in [1, 2, 5] {
            assert!(peers.queue(NodeId(id), &recorded).is_some());
        }
        assert!(
            peers.queue(NodeId(6), &recorded).is_none(),
            "no address at all"
        );
        assert_eq!(
            *opened.lock().unwrap(),
            [
                (1, addr("10.0.0.1:7101")),
                (2, addr("10.0.0.2:7101")),
                (5, addr("10.0.0.5:7101"))
            ]
        );
        // A new Hello from node 5 moves it at the next refresh; a recorded address then wins.
        hello(&shared, 5, "10.0.0.55:7101");
        peers.refresh(NodeId(9), &[NodeId(9)], &recorded);
        assert!(peers.queue(NodeId(5), &recorded).is_some());
        let recorded = BTreeMap::from([(NodeId(5), "10.0.0.50:7101".to_string())]);
        peers.refresh(NodeId(9), &[NodeId(5), NodeId(9)], &recorded);
        assert_eq!(
            opened.lock().unwrap()[3..],
            [(5, addr("10.0.0.55:7101")), (5, addr("10.0.0.50:7101"))]
        );
    }

    #[test]
    fn a_removed_founding_member_is_no_longer_dialled() {
        let (mut peers, opened, _) = peers();
        let me = NodeId(9);
        peers.refresh(me, &[NodeId(1), me], &BTreeMap::new());
        assert!(peers.queues.contains_key(&NodeId(1)));
        // Node 1, a founding member, is removed: the identity still gives its address, but
        // its queue is closed and stays closed.
        peers.refresh(me, &[me], &BTreeMap::new());
        peers.refresh(me, &[me], &BTreeMap::new());
        assert!(!peers.queues.contains_key(&NodeId(1)));
        assert_eq!(opened.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_stranger_known_by_its_hello_keeps_its_queue_only_while_it_speaks() {
        let (mut peers, opened, shared) = peers();
        let me = NodeId(9);
        let none = BTreeMap::new();
        hello(&shared, 5, "10.0.0.5:7101");
        assert!(peers.queue(NodeId(5), &none).is_some());
        peers.refresh(me, &[me], &none);
        assert!(peers.queues.contains_key(&NodeId(5)), "heard just now");
        // Quiet for longer than NON_MEMBER_QUIET: closed.
        if let Some(entry) = shared.advertised.write().unwrap().get_mut(&5) {
            entry.heard = Instant::now().checked_sub(NON_MEMBER_QUIET * 2);
        }
        peers.refresh(me, &[me], &none);
        assert!(!peers.queues.contains_key(&NodeId(5)));
        assert_eq!(opened.lock().unwrap().len(), 1);
    }
}
