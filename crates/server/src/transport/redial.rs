//! Dialling a peer again as soon as it is back. A sender task whose peer cannot be reached
//! waits between attempts, twice as long each time up to a second; a peer that restarts in
//! the meantime would otherwise hear nothing from this node until the next attempt — a
//! follower restarted from a snapshot waited out its election timeout for its leader's first
//! heartbeat. When a peer connects to this node (its Hello accepted), the task dialling it
//! stops waiting and dials at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The wake-up of each sender task, by peer id. Only the sender tasks put entries here, one
/// per peer the driver connects to, so a stranger's Hello adds nothing.
#[derive(Debug, Default)]
pub struct Redials {
    waiting: Mutex<BTreeMap<u64, Arc<Notify>>>,
}

/// A sender task's place in [`Redials`]: it replaces any earlier task's to the same peer, and
/// goes when the task ends (dropped), unless a newer task holds the place by then.
#[derive(Debug)]
pub struct Redial {
    redials: Arc<Redials>,
    peer: u64,
    signal: Arc<Notify>,
}

impl Redials {
    /// The place of a new sender task to `peer`.
    pub fn register(self: &Arc<Self>, peer: u64) -> Redial {
        let signal = Arc::new(Notify::new());
        self.lock().insert(peer, signal.clone());
        Redial {
            redials: self.clone(),
            peer,
            signal,
        }
    }

    /// `peer` connected to this node: the task dialling it, if it is waiting to try again,
    /// tries now (if it is not waiting, its next wait ends at once, costing one early try).
    pub fn peer_is_back(&self, peer: u64) {
        if let Some(signal) = self.lock().get(&peer) {
            signal.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Notify>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Redial {
    /// Returns when the peer has connected to this node since the last call.
    pub async fn peer_back(&self) {
        self.signal.notified().await;
    }
}

impl Drop for Redial {
    fn drop(&mut self) {
        let mut waiting = self.redials.lock();
        if waiting
            .get(&self.peer)
            .is_some_and(|held| Arc::ptr_eq(held, &self.signal))
        {
            waiting.remove(&self.peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_peer_back_wakes_the_task_waiting_to_dial_it_and_no_other() {
        let redials = Arc::new(Redials::default());
        let (to_2, to_3) = (redials.register(2), redials.register(3));
        let woken = |place: Redial| async move {
            tokio::time::timeout(Duration::from_millis(200), place.peer_back())
                .await
                .is_ok()
        };
        redials.peer_is_back(2);
        redials.peer_is_back(9); // a stranger: nothing to wake, nothing kept
        assert_eq!(redials.lock().len(), 2, "node 9's Hello was kept");
        assert!(woken(to_2).await, "the task dialling node 2 waits on");
        assert!(!woken(to_3).await, "node 3's task was woken for node 2");
    }

    fn options(id: u64) -> Arc<crate::transport::TransportOptions> {
        Arc::new(crate::transport::TransportOptions {
            id,
            cluster_id: 9,
            max_frame_bytes: 1 << 20,
            max_connections: 4,
            hello: hello(id),
        })
    }

    fn hello(from: u64) -> crate::transport::Hello {
        crate::transport::Hello {
            from,
            client_addr: "127.0.0.1:7001".into(),
            http_addr: "127.0.0.1:7201".into(),
            peer_addr: None,
        }
    }

    /// A loopback address nothing listens on (until a test binds it again).
    fn unreachable() -> std::net::SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    /// The sender task of node 1 to node 2 at `addr`, registered in `redials`; its queue's
    /// sending end, which the driver would hold.
    fn sender_task(
        addr: std::net::SocketAddr,
        redials: &Arc<Redials>,
    ) -> (crate::transport::PeerLink, tokio::task::JoinHandle<()>) {
        let (link, feed) = crate::transport::lane::tests::lane(4);
        let back = redials.register(2);
        let task = tokio::spawn(crate::transport::send_to_peer(
            skiff_raft::NodeId(2),
            addr,
            options(1),
            feed,
            None,
            back,
        ));
        (link, task)
    }

    /// A sender task whose peer has been unreachable for 3.5 s waits a second between
    /// attempts (its last at about 3.26 s, its next at about 4.26 s). The peer comes back and
    /// connects: the task dials it at once, not at its next attempt. On tokio's paused clock,
    /// which moves only while every task waits (loopback connects and refusals complete
    /// within the system call), so a loaded machine cannot stretch the 400 ms.
    #[tokio::test(start_paused = true)]
    async fn a_peer_that_comes_back_is_dialled_at_once_not_after_the_wait() {
        let (addr, redials) = (unreachable(), Arc::new(Redials::default()));
        let (_link, task) = sender_task(addr, &redials);
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let back = tokio::time::Instant::now();
        redials.peer_is_back(2);
        let dialled = tokio::time::timeout(Duration::from_millis(400), listener.accept()).await;
        assert!(
            dialled.is_ok(),
            "not dialled within 400 ms of the peer's return ({:?} on the paused clock)",
            back.elapsed()
        );
        task.abort();
    }

    /// The driver drops the queue of a peer it no longer sends to (it left, or moved) while
    /// the peer cannot be reached: the task ends, and its wake-up goes with it.
    #[tokio::test]
    async fn a_task_whose_queue_is_dropped_while_its_peer_is_unreachable_ends() {
        let (addr, redials) = (unreachable(), Arc::new(Redials::default()));
        let (link, task) = sender_task(addr, &redials);
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(link);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task goes on dialling a peer nothing sends to")
            .unwrap();
        assert!(redials.lock().is_empty(), "its wake-up stayed registered");
    }

    /// A connection whose Hello names node 2, accepted by the peer listener, wakes the task
    /// dialling node 2; a Hello naming a node no task dials wakes nothing and adds nothing.
    #[tokio::test]
    async fn a_hello_accepted_on_the_peer_port_wakes_the_task_dialling_its_sender() {
        use tokio::io::AsyncWriteExt;
        let shared = Arc::new(crate::shared::Shared::default());
        let to_2 = shared.redials.register(2);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap();
        let (to_driver, _inbox) = crate::driver::inbox(4).unwrap();
        let serving = tokio::spawn(crate::transport::serve_peers(
            listener,
            options(1),
            to_driver,
            shared.clone(),
            None,
        ));
        let mut connections = Vec::new();
        for from in [7, 2] {
            let mut out = Vec::new();
            crate::transport::put_hello(&mut out, 9, &hello(from));
            let mut peer = tokio::net::TcpStream::connect(port).await.unwrap();
            peer.write_all(&out).await.unwrap();
            connections.push(peer);
        }
        tokio::time::timeout(Duration::from_secs(5), to_2.peer_back())
            .await
            .expect("node 2's Hello did not wake the task dialling node 2");
        assert_eq!(shared.redials.lock().len(), 1, "node 7's Hello was kept");
        serving.abort();
    }

    /// A hostile or broken peer accepts each connection and resets it at once, while its
    /// Hellos arrive as fast as it can send them: the node dials it no more than once per
    /// `MIN_DIAL_GAP` (without the gap: 477 dials in a second).
    #[tokio::test]
    async fn a_peer_that_drops_every_connection_and_floods_hellos_is_not_dialled_in_a_loop() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let redials = Arc::new(Redials::default());
        let (link, task) = sender_task(addr, &redials);
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counting = accepted.clone();
        let dropping = tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                counting.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = socket.set_zero_linger();
                drop(socket);
            }
        });
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(1) {
            redials.peer_is_back(2);
            link.send(vec![crate::transport::inbound::tests::message(1)]);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let dials = accepted.load(std::sync::atomic::Ordering::Relaxed);
        let gap = crate::transport::MIN_DIAL_GAP.as_millis();
        let most = (started.elapsed().as_millis() / gap) as usize + 2;
        assert!(dials >= 2, "the peer was not dialled again ({dials})");
        assert!(dials <= most, "{dials} dials in {:?}", started.elapsed());
        dropping.abort();
        task.abort();
    }

    #[test]
    fn an_ended_task_leaves_a_newer_one_to_the_same_peer_registered() {
        let redials = Arc::new(Redials::default());
        let old = redials.register(2);
        let new = redials.register(2);
        drop(old);
        assert!(Arc::ptr_eq(&redials.lock()[&2], &new.signal));
        drop(new);
        assert!(redials.lock().is_empty());
    }
}
