//! The driver's way to a peer: a bounded queue that the peer's sender task writes out, and a
//! shortcut past it. While the sender task waits on an empty queue with nothing unwritten, the
//! driver writes its messages to the socket itself, with a write
//! that never blocks: an acknowledgement or an AppendEntries leaves without waking the sender
//! task, one thread hand-off less on a write's path.
//!
//! Order is kept: the driver writes directly only while the queue is empty and the sender task
//! holds nothing back, and the moment it queues anything (the part of its frames the socket did
//! not take, or messages the socket would not take at all) the shortcut is closed until the
//! sender task has written everything out and finds the queue empty again. Both sides decide
//! under one lock, so a frame never overtakes one queued before it.
//!
//! Over TLS the connection's session lives in the lane too, and whoever writes — the driver
//! directly, or the sender task — encrypts through it under the lock ([`PeerFeed::seal`]), so
//! records go out in the order they were sealed. What the socket does not take of the
//! driver's records stays in the session, and the sender task sends it before the records it
//! seals next.

use std::io::Write;
use std::sync::{Arc, Mutex};

use skiff_node::Envelope;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio_rustls::rustls::ClientConnection;

use super::put_message;

/// What the driver hands a peer's sender task.
#[derive(Debug)]
pub enum Outgoing {
    /// A message to encode and write.
    Message(Envelope),
    /// The rest of frames the driver began writing itself on connection number `connection`,
    /// to be written before anything else (and dropped if that connection is gone). Over TLS
    /// the rest stays in the session and `bytes` is empty: the item only wakes the task.
    Rest {
        /// The sender task's number for the connection the frames began on.
        connection: u64,
        /// The bytes the socket did not take.
        bytes: Vec<u8>,
    },
}

/// The counters of what was sent to one peer.
#[derive(Clone)]
pub struct Sent {
    /// Messages.
    pub messages: prometheus::IntCounter,
    /// Bytes.
    pub bytes: prometheus::IntCounter,
}

/// What the driver and a peer's sender task share.
pub struct Lane {
    cluster_id: u64,
    sent: Sent,
    state: Mutex<LaneState>,
}

/// The shortcut's state, decided under the lane's lock.
#[derive(Default)]
struct LaneState {
    /// The connection's number and a handle on its socket, while it has one.
    socket: Option<(u64, std::net::TcpStream)>,
    /// The connection's TLS session, on a TLS connection: every frame is sealed through it.
    session: Option<Box<ClientConnection>>,
    /// The sender task waits on an empty queue with nothing unwritten: the driver may write.
    /// Invariant: idle implies the queue is empty.
    idle: bool,
    /// The driver's frames, encoded (kept to reuse its memory).
    out: Vec<u8>,
}

/// The driver's end of a peer's lane: its queue, and the shortcut past it.
pub struct PeerLink {
    queue: mpsc::Sender<Outgoing>,
    lane: Arc<Lane>,
}

/// The sender task's end: the queue it drains, and the lane it opens when it is idle.
pub struct PeerFeed {
    /// The queue.
    pub queue: mpsc::Receiver<Outgoing>,
    /// The lane shared with the driver.
    pub lane: Arc<Lane>,
}

/// A lane of `capacity` queued items to a peer, counted in `sent`.
pub fn peer_lane(cluster_id: u64, capacity: usize, sent: Sent) -> (PeerLink, PeerFeed) {
    let (tx, rx) = mpsc::channel(capacity);
    let lane = Arc::new(Lane {
        cluster_id,
        sent,
        state: Mutex::new(LaneState::default()),
    });
    (
        PeerLink {
            queue: tx,
            lane: lane.clone(),
        },
        PeerFeed { queue: rx, lane },
    )
}

impl Lane {
    /// The shortcut's state. A panic while it was held leaves it consistent (each field is
    /// set whole; a session a panic left mid-record fails its next write, and the connection
    /// is dialled again), so a poisoned lock is taken as it is: a peer is never cut off for
    /// good.
    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl PeerLink {
    /// Sends `messages`, all to this link's peer, in order: written to the socket at once when
    /// the sender task is idle, queued otherwise. Returns how many were dropped because the
    /// queue was full (Raft retransmits, as after a network drop).
    pub fn send(&self, messages: Vec<Envelope>) -> usize {
        let mut state = self.lane.lock();
        let state = &mut *state;
        if let (true, Some((connection, socket))) = (state.idle, &state.socket) {
            state.out.clear();
            for message in &messages {
                put_message(&mut state.out, self.lane.cluster_id, message);
            }
            let connection = *connection;
            match state.session.as_mut() {
                Some(session) if state.out.len() <= MAX_SEALED_DIRECTLY_BYTES => {
                    // Sealed now, so sent whatever the socket takes: the rest stays in the
                    // session for the sender task, which is woken to send it. A session that
                    // refuses them ends the connection, and the woken task dials again.
                    let (dropped, rest) = match write_sealed(session, &state.out, socket) {
                        Ok(written) => {
                            self.lane.sent.messages.inc_by(messages.len() as u64);
                            self.lane.sent.bytes.inc_by(written as u64);
                            (0, session.wants_write())
                        }
                        Err(_) => {
                            let _ = socket.shutdown(std::net::Shutdown::Both);
                            (messages.len(), true)
                        }
                    };
                    if rest {
                        state.idle = false;
                        self.queue_rest(connection, Vec::new(), socket);
                    }
                    return dropped;
                }
                // Over TLS a large batch is left to the sender task, off the driver's thread.
                Some(_) => {}
                // The socket is non-blocking (tokio's): a full send buffer answers WouldBlock.
                None => {
                    if let Ok(written) = (&*socket).write(&state.out) {
                        self.lane.sent.messages.inc_by(messages.len() as u64);
                        self.lane.sent.bytes.inc_by(written as u64);
                        if written < state.out.len() {
                            // The rest goes first, through the queue: it is empty while the
                            // lane is idle.
                            state.idle = false;
                            self.queue_rest(connection, state.out[written..].to_vec(), socket);
                        }
                        return 0;
                    }
                }
            }
            // Would block, or the connection failed: the sender task writes them, or finds
            // out and reconnects.
        }
        state.idle = false;
        messages
            .into_iter()
            .map(|message| self.queue.try_send(Outgoing::Message(message)).is_err())
            .filter(|&dropped| dropped)
            .count()
    }
}

impl PeerLink {
    /// Queues the rest of frames the driver began on connection number `connection` (over
    /// TLS none: the rest stays in the session, and the item only wakes the sender task).
    fn queue_rest(&self, connection: u64, bytes: Vec<u8>, socket: &std::net::TcpStream) {
        if self
            .queue
            .try_send(Outgoing::Rest { connection, bytes })
            .is_err()
        {
            // Never with an empty queue; if it were, the next frame would follow a torn one:
            // the connection ends, and the sender task dials again.
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl PeerFeed {
    /// The next item to write, waiting for one if there is none: an idle wait opens the
    /// shortcut to the driver. `None` once the driver dropped the link.
    pub async fn next(&mut self) -> Option<Outgoing> {
        match self.queue.try_recv() {
            Ok(item) => return Some(item),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        {
            let mut state = self.lane.lock();
            // Checked again under the lock: the driver queues only under it.
            match self.queue.try_recv() {
                Ok(item) => return Some(item),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => state.idle = true,
            }
        }
        // The driver closes the shortcut before it queues what wakes this.
        self.queue.recv().await
    }

    /// The next item if one is queued, without waiting.
    pub fn try_next(&mut self) -> Option<Outgoing> {
        self.queue.try_recv().ok()
    }

    /// Connection number `connection` is open: the driver may write to `socket` (a handle on
    /// the same socket, if one could be had) once the sender task is idle. On a TLS connection
    /// every frame is sealed through `session` (its handshake done).
    pub fn attach(
        &self,
        connection: u64,
        socket: Option<std::net::TcpStream>,
        session: Option<ClientConnection>,
    ) {
        let session = session.map(|mut session| {
            // Sealed records are taken out at once, so the session need not bound them.
            session.set_buffer_limit(None);
            Box::new(session)
        });
        let mut state = self.lane.lock();
        state.socket = socket.map(|socket| (connection, socket));
        state.session = session;
        state.idle = false;
    }

    /// The connection is gone: everything goes through the queue.
    pub fn detach(&self) {
        let mut state = self.lane.lock();
        state.socket = None;
        state.session = None;
        state.idle = false;
    }

    /// On a TLS connection, seals `plain` and appends to `wire` every record the session holds
    /// (first those the driver sealed and the socket did not take); `false` on a plain
    /// connection, whose frames go out as they are.
    pub fn seal(&self, plain: &[u8], wire: &mut Vec<u8>) -> std::io::Result<bool> {
        // A piece at a time, so that the driver never waits on the lock for long: while the
        // sender task is not idle, nothing else seals (the driver only queues).
        let mut pieces = plain.chunks(SEAL_PIECE_BYTES);
        loop {
            let mut state = self.lane.lock();
            let Some(session) = state.session.as_mut() else {
                return Ok(false);
            };
            session
                .writer()
                .write_all(pieces.next().unwrap_or_default())?;
            while session.wants_write() {
                session.write_tls(wire)?;
            }
            if pieces.len() == 0 {
                return Ok(true);
            }
        }
    }

    /// The counters of what was sent.
    pub fn sent(&self) -> &Sent {
        &self.lane.sent
    }
}

impl Drop for PeerFeed {
    fn drop(&mut self) {
        // The driver's handle on the socket must not keep the connection open.
        self.detach();
    }
}

/// The most the driver seals and writes itself over TLS in one go: a larger batch (a
/// follower catching up) is sealed by the sender task.
const MAX_SEALED_DIRECTLY_BYTES: usize = 256 * 1024;
/// How much the sender task seals per hold of the lane's lock.
const SEAL_PIECE_BYTES: usize = 64 * 1024;

/// Seals `plain` through `session` and writes what the socket takes of its records without
/// blocking; the bytes written. The rest stays in the session.
fn write_sealed(
    session: &mut ClientConnection,
    plain: &[u8],
    mut socket: &std::net::TcpStream,
) -> std::io::Result<usize> {
    session.writer().write_all(plain)?;
    let mut written = 0;
    while session.wants_write() {
        // Would block, or the connection failed (the sender task finds out): the rest waits.
        match session.write_tls(&mut socket) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n,
        }
    }
    Ok(written)
}

/// Appends `item` to the frames going out on connection number `connection`; the number of
/// messages it adds (the rest of the driver's frames was counted by the driver).
pub fn put_outgoing(out: &mut Vec<u8>, cluster_id: u64, connection: u64, item: Outgoing) -> u64 {
    match item {
        Outgoing::Message(message) => {
            put_message(out, cluster_id, &message);
            1
        }
        Outgoing::Rest {
            connection: began_on,
            bytes,
        } => {
            // Frames begun on a lost connection would be torn on the new one.
            if began_on == connection {
                out.extend_from_slice(&bytes);
            }
            0
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::transport::inbound::tests::message;
    use std::io::Read;
    use std::time::Duration;

    pub(crate) fn lane(capacity: usize) -> (PeerLink, PeerFeed) {
        let metrics = Metrics::new();
        let sent = Sent {
            messages: metrics.peer_messages_sent.with_label_values(&["2"]),
            bytes: metrics.peer_bytes_sent.with_label_values(&["2"]),
        };
        peer_lane(9, capacity, sent)
    }

    /// A connected pair of loopback sockets, the first non-blocking as tokio leaves them.
    fn socket_pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (theirs, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        (ours, theirs)
    }

    fn frames(messages: &[Envelope]) -> Vec<u8> {
        let mut out = Vec::new();
        for message in messages {
            put_message(&mut out, 9, message);
        }
        out
    }

    #[tokio::test]
    async fn an_idle_sender_lets_the_driver_write_and_a_busy_one_gets_the_messages() {
        let (link, mut feed) = lane(16);
        let (ours, mut theirs) = socket_pair();
        feed.attach(1, Some(ours), None);
        // Not idle yet (the sender task is writing its Hello): queued.
        assert_eq!(link.send(vec![message(1)]), 0);
        assert!(matches!(feed.next().await, Some(Outgoing::Message(m)) if m == message(1)));
        // The sender found the queue empty and waits: the driver writes itself.
        let waiting = tokio::time::timeout(Duration::from_millis(50), feed.next()).await;
        assert!(waiting.is_err(), "nothing was queued");
        assert_eq!(link.send(vec![message(2), message(3)]), 0);
        let expected = frames(&[message(2), message(3)]);
        let mut got = vec![0; expected.len()];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(got, expected);
        assert!(feed.try_next().is_none(), "written, not queued");
        assert_eq!(feed.sent().messages.get(), 2);
        // Detached (connection lost, or TLS): queued again.
        feed.detach();
        assert_eq!(link.send(vec![message(4)]), 0);
        assert!(matches!(feed.try_next(), Some(Outgoing::Message(m)) if m == message(4)));
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_goes_first_and_later_messages_queue_behind_it() {
        let (link, mut feed) = lane(16);
        let (ours, mut theirs) = socket_pair();
        ours.set_nodelay(true).unwrap();
        feed.attach(3, Some(ours), None);
        let _ = tokio::time::timeout(Duration::from_millis(10), feed.next()).await;
        // Megabytes the peer does not read: the socket takes part, the rest is queued.
        let big: Vec<Envelope> = (0..600_000).map(message).collect();
        assert_eq!(link.send(big.clone()), 0);
        assert_eq!(link.send(vec![message(1_000_000)]), 0);
        let mut out = Vec::new();
        let mut rest = 0;
        while let Some(item) = feed.try_next() {
            rest += usize::from(matches!(item, Outgoing::Rest { .. }));
            assert!(
                rest == 1,
                "the rest of the frames first, then the later message"
            );
            put_outgoing(&mut out, 9, 3, item);
        }
        assert_eq!(rest, 1, "the socket took only part of {} bytes", out.len());
        // What the peer reads is the frames in order, whole.
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            theirs
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut chunk = vec![0; 1 << 16];
            while let Ok(n) = theirs.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&chunk[..n]);
            }
            all
        });
        let read = reader.join().unwrap();
        let mut all = read;
        all.extend_from_slice(&out);
        let mut expected = big;
        expected.push(message(1_000_000));
        assert_eq!(all, frames(&expected));
        // A rest from a connection since lost is not written on the new one.
        let mut out = Vec::new();
        let stale = Outgoing::Rest {
            connection: 3,
            bytes: vec![1, 2, 3],
        };
        assert_eq!(put_outgoing(&mut out, 9, 4, stale), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (link, feed) = lane(2);
        assert_eq!(link.send((0..5).map(message).collect()), 3);
        drop(feed);
    }

    /// What a TLS server reads from `socket` through `session` until `want` bytes of plaintext
    /// came, or a second passes without any.
    fn read_plain(
        mut socket: std::net::TcpStream,
        mut session: tokio_rustls::rustls::ServerConnection,
        want: usize,
    ) -> Vec<u8> {
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut plain = Vec::new();
        let mut chunk = vec![0; 1 << 16];
        while plain.len() < want {
            match session.reader().read(&mut chunk) {
                Ok(n) if n > 0 => {
                    plain.extend_from_slice(&chunk[..n]);
                    continue;
                }
                _ => {}
            }
            match session.read_tls(&mut socket) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    session.process_new_packets().unwrap();
                }
            }
        }
        plain
    }

    #[tokio::test]
    async fn over_tls_the_driver_seals_what_it_writes_and_its_rest_goes_out_first() {
        let dir = tempfile::tempdir().unwrap();
        let (theirs, _, server, peer) = crate::transport::inbound::tests::tls_sessions(dir.path());
        let (client, ours) = (peer.conn, peer.sock);
        ours.set_nonblocking(true).unwrap();
        let (link, mut feed) = lane(16);
        feed.attach(5, Some(ours.try_clone().unwrap()), Some(client));
        // The sender task's Hello-like first frames, sealed by it.
        let mut wire = Vec::new();
        assert!(feed.seal(&frames(&[message(1)]), &mut wire).unwrap());
        std::io::Write::write_all(&mut &ours, &wire).unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(10), feed.next()).await;
        // Idle: the driver seals and writes batches the peer does not read yet, each under
        // the size it seals itself, until the socket takes only part of one: the rest stays
        // sealed in the session, and the task is woken.
        let per_batch = 200_000 / frames(&[message(1)]).len() as u64;
        let mut expected = vec![message(1)];
        let mut next = 2;
        let woken = loop {
            assert!(next < 100_000_000, "the socket never filled");
            let batch: Vec<Envelope> = (next..next + per_batch).map(message).collect();
            next += per_batch;
            expected.extend(batch.iter().cloned());
            assert_eq!(link.send(batch), 0);
            if let Some(item) = feed.try_next() {
                break item;
            }
        };
        // The wake-up (nothing of its own), then a later message, queued behind it.
        assert!(matches!(woken, Outgoing::Rest { connection: 5, ref bytes } if bytes.is_empty()));
        assert_eq!(link.send(vec![message(1_000_000)]), 0);
        expected.push(message(1_000_000));
        let expected = frames(&expected);
        let reader = std::thread::spawn({
            let want = expected.len();
            move || read_plain(theirs, server, want)
        });
        let later = match feed.try_next() {
            Some(Outgoing::Message(m)) => frames(&[m]),
            other => panic!("the later message is queued after the rest: {other:?}"),
        };
        let mut sock = ours;
        sock.set_nonblocking(false).unwrap();
        wire.clear();
        assert!(feed.seal(&[], &mut wire).unwrap(), "the rest, still sealed");
        assert!(!wire.is_empty(), "the socket did not take everything");
        std::io::Write::write_all(&mut sock, &wire).unwrap();
        wire.clear();
        assert!(feed.seal(&later, &mut wire).unwrap());
        std::io::Write::write_all(&mut sock, &wire).unwrap();
        let plain = reader.join().unwrap();
        assert!(plain == expected, "the frames in order, whole");
    }
}
