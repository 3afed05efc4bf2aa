//! An incoming peer connection read by the driver thread itself, once its Hello is accepted
//! ([`crate::driver::inbox`]): each frame checked by [`super::check_message`] (its kind, that
//! it decodes, and that it comes from the node the Hello named, to this node), read without
//! ever blocking and a bounded amount per turn, so a peer that floods frames cannot hold up
//! the driver's other inputs or its ticks. On a TLS peer port the connection's session
//! (rustls, which does no I/O of its own) comes along, and the bytes read are decrypted
//! through it before they are taken as frames.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use skiff_node::Envelope;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::rustls::ServerConnection;

use super::{check_message, take_frame, touch_heard, FrameError, TransportOptions};
use crate::shared::Shared;

/// Frames taken from one connection per turn of the driver at most. Everything read in one
/// turn goes into one batch (one fsync): a follower's forwarded writes arrive one frame each,
/// and at 64 a turn the leader wrote a batch per 60–80 of them instead of per ~400
/// (docs/benchmarks/rounds-1-to-6.md, "Forwarded writes in one batch").
pub const MAX_FRAMES_PER_TURN: usize = 1024;
/// Frames taken from all connections together per turn, shared among those with bytes
/// waiting, unless that leaves one fewer than [`MIN_FRAMES_PER_TURN`]: a turn takes at most
/// max(2,048, 64 × connections) frames in all, the same as 64 each once 32 or more are busy.
pub const FRAMES_PER_TURN_IN_ALL: usize = 2048;
/// Frames a connection may always take per turn, however many there are.
pub const MIN_FRAMES_PER_TURN: usize = 64;

/// Bytes read from one connection per turn of the driver at most (a frame larger than this
/// arrives over several turns).
pub const MAX_READ_BYTES_PER_TURN: usize = 1024 * 1024;
/// The bytes one read may take, in the driver's scratch buffer.
pub const READ_BYTES: usize = 64 * 1024;

/// A peer's connection, handed from its task to the driver after the Hello.
pub struct PeerSocket {
    stream: mio::net::TcpStream,
    /// The TLS session over `stream`, on a TLS peer port.
    tls: Option<Box<ServerConnection>>,
    /// Bytes read and not yet taken as frames: at most one frame's worth plus one read, as a
    /// frame is taken as soon as it is whole.
    buf: BytesMut,
    from: u64,
    addr: SocketAddr,
    options: Arc<TransportOptions>,
    heard: Instant,
    /// There may be bytes to read (a readiness event came, or a turn's budget ran out before
    /// the socket was drained).
    pending: bool,
    /// A readiness event said the peer closed its side (or the socket failed): from then on
    /// every turn reads until the socket says end or would block, since no further event
    /// will come.
    read_closed: bool,
    /// Held while the connection is open: it counts against `max_peer_connections`.
    _slot: OwnedSemaphorePermit,
}

impl std::fmt::Debug for PeerSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSocket")
            .field("from", &self.from)
            .field("addr", &self.addr)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

/// How many frames each of `connections` busy connections may take this turn.
pub fn frames_per_connection(connections: usize) -> usize {
    (FRAMES_PER_TURN_IN_ALL / connections.max(1)).clamp(MIN_FRAMES_PER_TURN, MAX_FRAMES_PER_TURN)
}

/// Reads a turn of every connection of `connections` that may hold bytes, the turn's frames
/// shared among those ([`frames_per_connection`]), handing each message to `step` in its
/// connection's order; drops the connections that closed, and those that sent what is
/// refused (logged and counted as the reader task does).
pub fn read_turns<K: Ord>(
    connections: &mut BTreeMap<K, PeerSocket>,
    shared: &Shared,
    scratch: &mut [u8],
    mut step: impl FnMut(Envelope),
) {
    let busy = connections.values().filter(|c| c.pending()).count();
    let max_frames = frames_per_connection(busy);
    connections.retain(|_, connection| {
        match connection.read_turn(shared, scratch, max_frames, &mut step) {
            Ok(Turn::Open) => true,
            Ok(Turn::Closed) => false,
            Err(error) => {
                connection.refused(shared, &error);
                false
            }
        }
    });
}

/// What a turn's reading left of a connection.
pub enum Turn {
    /// Still open.
    Open,
    /// The peer closed it between frames.
    Closed,
}

impl PeerSocket {
    /// The connection of node `from` at `addr`, with the bytes read after its Hello.
    pub fn new(
        stream: std::net::TcpStream,
        buf: BytesMut,
        from: u64,
        addr: SocketAddr,
        options: Arc<TransportOptions>,
        slot: OwnedSemaphorePermit,
    ) -> PeerSocket {
        PeerSocket {
            stream: mio::net::TcpStream::from_std(stream),
            tls: None,
            buf,
            from,
            addr,
            options,
            heard: Instant::now(),
            pending: true,
            read_closed: false,
            _slot: slot,
        }
    }

    /// The connection, its bytes decrypted through `session` (its handshake done, and any
    /// bytes it holds not yet read).
    pub fn over_tls(mut self, session: ServerConnection) -> PeerSocket {
        self.tls = Some(Box::new(session));
        self
    }

    /// The peer's id.
    pub fn from(&self) -> u64 {
        self.from
    }

    /// The socket, to watch it.
    pub fn stream_mut(&mut self) -> &mut mio::net::TcpStream {
        &mut self.stream
    }

    /// Bytes may be waiting.
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// A readiness event came; `closed`: it said the peer closed its side, or an error.
    pub fn mark_readable(&mut self, closed: bool) {
        self.pending = true;
        self.read_closed |= closed;
    }

    /// Reads what the socket holds, up to `max_frames` frames and this turn's byte budget,
    /// never blocking, and hands each message to `step` in the order sent; while this node is
    /// cut off (the live view's fault injection) messages are dropped and counted instead. `scratch` is the driver's
    /// read buffer. An error means the connection must be closed; the caller logs it with
    /// [`PeerSocket::refused`].
    pub fn read_turn(
        &mut self,
        shared: &Shared,
        scratch: &mut [u8],
        max_frames: usize,
        mut step: impl FnMut(Envelope),
    ) -> Result<Turn, FrameError> {
        if !self.pending {
            return Ok(Turn::Open);
        }
        let (mut frames, mut bytes) = (0, 0);
        // Over TLS the socket's bytes count too: tiny records could otherwise cost many reads
        // and decryptions for each byte of plaintext.
        let mut wire_left = MAX_READ_BYTES_PER_TURN;
        // A read that filled less than the scratch buffer took all the socket held: the
        // next byte to arrive raises a new readiness event (as tokio assumes on Linux), so
        // no further read is spent to see it fail — unless the peer's end already came,
        // which raises none (tokio keeps that state too).
        let mut drained = false;
        loop {
            if frames >= max_frames || bytes >= MAX_READ_BYTES_PER_TURN {
                // Come back next turn, without waiting for another readiness event.
                return Ok(Turn::Open);
            }
            let options = &self.options;
            if let Some((kind, payload)) =
                take_frame(&mut self.buf, options.cluster_id, options.max_frame_bytes)?
            {
                frames += 1;
                let message = check_message(kind, payload, self.from, options.id)?;
                touch_heard(shared, self.from, &mut self.heard);
                if shared.is_isolated() {
                    shared.metrics.peer_messages_dropped.inc();
                } else {
                    step(message);
                }
                continue;
            }
            if drained && !self.read_closed {
                self.pending = false;
                return Ok(Turn::Open);
            }
            match self.read_some(scratch, &mut wire_left) {
                // This turn's TLS bytes are spent: come back next turn.
                Ok(None) => return Ok(Turn::Open),
                Ok(Some(0)) if self.buf.is_empty() => return Ok(Turn::Closed),
                Ok(Some(0)) => return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into())),
                Ok(Some(read)) => {
                    bytes += read;
                    // Over TLS a short read says only that the session had no more
                    // plaintext: the socket may still hold records.
                    drained = self.tls.is_none() && read < scratch.len();
                    self.buf.extend_from_slice(&scratch[..read]);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.pending = false;
                    return Ok(Turn::Open);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Reads what the connection holds into `scratch`, never blocking: the socket's bytes,
    /// or over TLS the plaintext of the records it holds (0: the peer's end, whether or not
    /// it closed the session first; a frame cut short is caught by the caller). Over TLS the
    /// bytes taken from the socket come off `wire_left`; `None` once it is spent.
    fn read_some(
        &mut self,
        scratch: &mut [u8],
        wire_left: &mut usize,
    ) -> io::Result<Option<usize>> {
        let Some(tls) = self.tls.as_mut() else {
            return self.stream.read(scratch).map(Some);
        };
        loop {
            match tls.reader().read(scratch) {
                Ok(read) => return Ok(Some(read)),
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(Some(0)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
            if *wire_left == 0 {
                return Ok(None);
            }
            // No plaintext left: take records from the socket (WouldBlock ends the turn).
            let read = tls.read_tls(&mut self.stream)?;
            *wire_left = wire_left.saturating_sub(read);
            if read > 0 {
                let processed = tls.process_new_packets();
                // What the session has to send (an alert for a bad record) is sent if the
                // socket takes it now, and otherwise left. rustls holds its answer to the
                // peer's key update until it next sends data, which this connection never
                // does: the dialling node does not read it.
                if tls.wants_write() {
                    let _ = tls.write_tls(&mut self.stream);
                }
                processed.map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
            }
        }
    }

    /// Logs and counts why the connection is closed, as the reader task does.
    pub fn refused(&self, shared: &Shared, error: &FrameError) {
        shared.metrics.error("peer_connection_refused");
        tracing::warn!(peer = %self.addr, %error, "closed a peer connection");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::transport::{put_hello, put_message, Hello};
    use skiff_raft::{Message, MessageBody, NodeId, Term};
    use tokio_rustls::rustls;

    pub(crate) const CLUSTER: u64 = 9;

    /// One frame per term in `terms`, back to back, as a peer writes them.
    fn framed_messages(terms: std::ops::RangeInclusive<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for term in terms {
            put_message(&mut out, CLUSTER, &message(term));
        }
        out
    }

    pub(crate) fn message(term: u64) -> Envelope {
        Envelope::new(
            7,
            skiff_node::PeerMessage::Raft(Message {
                from: NodeId(1),
                to: NodeId(2),
                term: Term(term),
                body: MessageBody::TimeoutNow,
            }),
        )
    }

    fn term_of(envelope: &Envelope) -> u64 {
        match &envelope.message {
            skiff_node::PeerMessage::Raft(m) => m.term.0,
            other => panic!("not a Raft message: {other:?}"),
        }
    }

    /// A connection from node 1 to node 2 as the driver holds it, and the peer's end.
    pub(crate) fn connection() -> (PeerSocket, std::net::TcpStream) {
        let (ours, addr, peer) = socket_pair();
        (held(ours, addr), peer)
    }

    /// Node 2's end of a new loopback connection, its address, and node 1's end.
    fn socket_pair() -> (std::net::TcpStream, SocketAddr, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, addr) = listener.accept().unwrap();
        (ours, addr, peer)
    }

    /// `ours` as the driver holds it: non-blocking, the peer's Hello already read.
    fn held(ours: std::net::TcpStream, addr: SocketAddr) -> PeerSocket {
        ours.set_nonblocking(true).unwrap();
        let options = Arc::new(TransportOptions {
            id: 2,
            cluster_id: CLUSTER,
            max_frame_bytes: 1 << 20,
            max_connections: 1,
            hello: Hello {
                from: 2,
                client_addr: String::new(),
                http_addr: String::new(),
                peer_addr: None,
            },
        });
        let slot = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .unwrap();
        PeerSocket::new(ours, BytesMut::new(), 1, addr, options, slot)
    }

    pub(crate) type TlsPeer = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

    /// A TLS connection from node 1 to node 2 as the driver holds it, with certificates made
    /// in `dir`, its handshake done; and the peer's end, its session over its socket.
    fn tls_connection(dir: &std::path::Path) -> (PeerSocket, TlsPeer) {
        let (ours, addr, session, peer) = tls_sessions(dir);
        (held(ours, addr).over_tls(session), peer)
    }

    /// Both ends of a loopback TLS connection with certificates made in `dir`, handshake
    /// done, blocking: the server's socket, its address and session, and the client's end.
    pub(crate) fn tls_sessions(
        dir: &std::path::Path,
    ) -> (std::net::TcpStream, SocketAddr, ServerConnection, TlsPeer) {
        crate::certs::generate(dir, 2, &[], None).unwrap();
        let configs = crate::tls::Tls::load(crate::tls::TlsFiles {
            cert: dir.join("node-1.crt"),
            key: dir.join("node-1.key"),
            ca: dir.join("ca.crt"),
        })
        .unwrap()
        .configs();
        let (mut ours, addr, peer) = socket_pair();
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let client = rustls::ClientConnection::new(configs.peer_client.clone(), name).unwrap();
        let mut peer = rustls::StreamOwned::new(client, peer);
        let handshake = std::thread::spawn(move || {
            while peer.conn.is_handshaking() {
                peer.conn.complete_io(&mut peer.sock)?;
            }
            Ok::<_, io::Error>(peer)
        });
        let mut session = ServerConnection::new(configs.peer_server.clone()).unwrap();
        while session.is_handshaking() {
            session.complete_io(&mut ours).unwrap();
        }
        let peer = handshake.join().unwrap().unwrap();
        (ours, addr, session, peer)
    }

    /// Reads turns until the socket is drained and nothing is pending; the messages of each.
    fn turns(socket: &mut PeerSocket, shared: &Shared) -> Vec<Vec<u64>> {
        let mut scratch = vec![0; READ_BYTES];
        let mut turns = Vec::new();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while Instant::now() < deadline {
            socket.mark_readable(false);
            let mut terms = Vec::new();
            let turn = socket.read_turn(shared, &mut scratch, MAX_FRAMES_PER_TURN, |m| {
                terms.push(term_of(&m))
            });
            assert!(matches!(turn, Ok(Turn::Open)));
            let pending = socket.pending();
            if !terms.is_empty() {
                turns.push(terms);
            } else if !pending {
                break;
            }
        }
        turns
    }

    /// Turns of at most `max_frames` each after one readiness event, for as long as the
    /// connection says bytes may be waiting; the messages of each.
    fn turns_while_pending(
        socket: &mut PeerSocket,
        shared: &Shared,
        max_frames: usize,
    ) -> Vec<Vec<u64>> {
        let mut scratch = vec![0; READ_BYTES];
        let mut turns = Vec::new();
        socket.mark_readable(false);
        while socket.pending() {
            let mut terms = Vec::new();
            let turn = socket.read_turn(shared, &mut scratch, max_frames, |m| {
                terms.push(term_of(&m))
            });
            assert!(matches!(turn, Ok(Turn::Open)));
            turns.push(terms);
        }
        turns
    }

    #[test]
    fn a_turn_takes_a_bounded_number_of_frames_in_the_order_sent() {
        let (mut socket, mut peer) = connection();
        let sent = (MAX_FRAMES_PER_TURN * 5 / 2) as u64;
        let out = framed_messages(1..=sent);
        // Written on a thread of its own, in case the socket buffers hold less; the peer's end
        // comes back open.
        let writer =
            std::thread::spawn(move || std::io::Write::write_all(&mut peer, &out).map(|()| peer));
        let shared = Shared::default();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut turns = turns(&mut socket, &shared);
        let _peer = writer.join().unwrap().unwrap();
        turns.extend(self::turns(&mut socket, &shared));
        assert!(
            turns.iter().all(|t| t.len() <= MAX_FRAMES_PER_TURN),
            "a turn took more than its budget: {:?}",
            turns.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert!(
            turns.iter().any(|t| t.len() == MAX_FRAMES_PER_TURN),
            "no turn was cut at the budget: {:?}",
            turns.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let all: Vec<u64> = turns.concat();
        assert_eq!(all, (1..=sent).collect::<Vec<u64>>());
    }

    /// Two or four peers each take a large share (a follower's forwarded writes share a
    /// batch); many connections share the turn, down to the floor each: a turn's total stays
    /// within max(2,048, 64 × connections).
    #[test]
    fn the_frames_of_a_turn_are_shared_among_the_connections() {
        assert_eq!(frames_per_connection(0), MAX_FRAMES_PER_TURN);
        assert_eq!(frames_per_connection(2), MAX_FRAMES_PER_TURN);
        assert_eq!(frames_per_connection(4), 512);
        assert_eq!(frames_per_connection(64), MIN_FRAMES_PER_TURN);
        for connections in 1..=1000 {
            let in_all = frames_per_connection(connections) * connections;
            assert!(
                in_all <= FRAMES_PER_TURN_IN_ALL.max(MIN_FRAMES_PER_TURN * connections),
                "{connections} connections may take {in_all} frames a turn"
            );
        }
    }

    /// Four busy connections beside four idle ones: the busy ones share the turn's frames
    /// (the idle ones take no share), each takes exactly its share while it has more, and
    /// every frame arrives in its connection's order over the turns.
    #[test]
    fn busy_connections_share_a_turn_and_idle_ones_take_no_share() {
        let shared = Shared::default();
        let mut scratch = vec![0; READ_BYTES];
        let (busy, sent) = (4u64, 1200u64);
        let mut connections = BTreeMap::new();
        let mut peers = Vec::new();
        for i in 0..busy * 2 {
            let (socket, peer) = connection();
            connections.insert(i, socket);
            peers.push(peer);
        }
        // A first turn finds every new connection empty: none is busy any more.
        read_turns(&mut connections, &shared, &mut scratch, |_| {
            panic!("nothing was sent yet")
        });
        let mut writers = Vec::new();
        for (i, mut peer) in (0..busy).zip(peers.drain(..busy as usize)) {
            let mut out = Vec::new();
            for n in 1..=sent {
                put_message(&mut out, CLUSTER, &message(i * 10_000 + n));
            }
            writers.push(std::thread::spawn(move || {
                std::io::Write::write_all(&mut peer, &out).map(|()| peer)
            }));
        }
        let _peers: Vec<_> = writers
            .into_iter()
            .map(|w| w.join().unwrap().unwrap())
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let share = frames_per_connection(busy as usize);
        assert_eq!(share, 512);
        let mut got: Vec<Vec<u64>> = vec![Vec::new(); busy as usize];
        for turn in 0.. {
            assert!(turn < 100, "the frames never all arrived");
            for (&i, socket) in connections.iter_mut() {
                // The poll would mark only the connections with bytes waiting.
                if i < busy {
                    socket.mark_readable(false);
                }
            }
            let mut this_turn = vec![0usize; busy as usize];
            read_turns(&mut connections, &shared, &mut scratch, |m| {
                let term = term_of(&m);
                let from = (term / 10_000) as usize;
                this_turn[from] += 1;
                got[from].push(term);
            });
            for (from, &taken) in this_turn.iter().enumerate() {
                let left = sent as usize - (got[from].len() - taken);
                assert_eq!(taken, share.min(left), "connection {from}, turn {turn}");
            }
            if got.iter().all(|g| g.len() == sent as usize) {
                break;
            }
        }
        for (from, terms) in got.iter().enumerate() {
            let base = from as u64 * 10_000;
            assert_eq!(*terms, (base + 1..=base + sent).collect::<Vec<u64>>());
        }
        assert_eq!(
            connections.len(),
            busy as usize * 2,
            "no connection was dropped"
        );
        drop(peers);
    }

    #[test]
    fn a_frame_split_across_reads_arrives_whole_and_the_end_between_frames_closes() {
        let (mut socket, mut peer) = connection();
        let mut out = Vec::new();
        put_message(&mut out, CLUSTER, &message(5));
        let shared = Shared::default();
        let mut scratch = vec![0; READ_BYTES];
        let mut got = Vec::new();
        for byte in &out {
            std::io::Write::write_all(&mut peer, &[*byte]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(1));
            socket.mark_readable(false);
            let turn =
                socket.read_turn(&shared, &mut scratch, MAX_FRAMES_PER_TURN, |m| got.push(m));
            assert!(matches!(turn, Ok(Turn::Open)));
        }
        assert_eq!(got, vec![message(5)]);
        drop(peer);
        std::thread::sleep(std::time::Duration::from_millis(20));
        socket.mark_readable(true);
        let turn = socket.read_turn(&shared, &mut scratch, MAX_FRAMES_PER_TURN, |_| {});
        assert!(matches!(turn, Ok(Turn::Closed)));
    }

    #[test]
    fn what_the_reader_task_refuses_the_driver_refuses() {
        let shared = Shared::default();
        let mut scratch = vec![0; READ_BYTES];
        let hello = Hello {
            from: 1,
            client_addr: "127.0.0.1:1".into(),
            http_addr: "127.0.0.1:2".into(),
            peer_addr: None,
        };
        // Bytes after a good message, and whether the error is the one the task gives.
        type Case = (Vec<u8>, fn(&FrameError) -> bool);
        let mut cases: Vec<Case> = Vec::new();
        let mut another_cluster = Vec::new();
        put_message(&mut another_cluster, CLUSTER + 1, &message(1));
        cases.push((another_cluster, |e| {
            matches!(
                e,
                FrameError::Header(skiff_node::wire::FrameError::WrongCluster { .. })
            )
        }));
        let mut second_hello = Vec::new();
        put_hello(&mut second_hello, CLUSTER, &hello);
        cases.push((second_hello, |e| matches!(e, FrameError::Kind(0))));
        let mut misaddressed = Vec::new();
        let mut to_another = message(1);
        if let skiff_node::PeerMessage::Raft(m) = &mut to_another.message {
            m.to = NodeId(3);
        }
        put_message(&mut misaddressed, CLUSTER, &to_another);
        cases.push((misaddressed, |e| matches!(e, FrameError::Payload(_))));
        let mut oversized = Vec::new();
        put_message(&mut oversized, CLUSTER, &message(1));
        oversized[..4].copy_from_slice(&(2u32 << 20).to_le_bytes());
        cases.push((oversized, |e| {
            matches!(
                e,
                FrameError::Header(skiff_node::wire::FrameError::TooLarge { .. })
            )
        }));
        let mut cut_short = Vec::new();
        put_message(&mut cut_short, CLUSTER, &message(1));
        cut_short.pop();
        cases.push((cut_short, |e| matches!(e, FrameError::Io(_))));
        for (bytes, expected) in cases {
            let (mut socket, mut peer) = connection();
            // A good message first: it is stepped before the bad frame ends the connection.
            let mut out = Vec::new();
            put_message(&mut out, CLUSTER, &message(1));
            out.extend_from_slice(&bytes);
            std::io::Write::write_all(&mut peer, &out).unwrap();
            drop(peer);
            std::thread::sleep(std::time::Duration::from_millis(20));
            socket.mark_readable(true);
            let mut stepped = 0;
            let turn =
                socket.read_turn(&shared, &mut scratch, MAX_FRAMES_PER_TURN, |_| stepped += 1);
            assert_eq!(stepped, 1);
            match turn {
                Err(error) => assert!(expected(&error), "{error}"),
                Ok(_) => panic!("accepted {bytes:?}"),
            }
        }
    }

    #[test]
    fn frames_over_tls_are_decrypted_and_taken_in_the_order_sent() {
        let dir = tempfile::tempdir().unwrap();
        let (mut socket, mut peer) = tls_connection(dir.path());
        let sent = 3000u64;
        let out = framed_messages(1..=sent);
        // Many records' worth, written on a thread of its own in case the socket buffers
        // hold less; the session stays open.
        let writer = std::thread::spawn(move || {
            std::io::Write::write_all(&mut peer, &out)
                .and_then(|()| std::io::Write::flush(&mut peer))
                .map(|()| peer)
        });
        let shared = Shared::default();
        let _peer = writer.join().unwrap().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        // One readiness event for everything: the turns go on only while the connection says
        // bytes may be waiting, so a turn that left plaintext in the session must say so.
        let turns = turns_while_pending(&mut socket, &shared, MAX_FRAMES_PER_TURN);
        assert!(turns.iter().all(|t| t.len() <= MAX_FRAMES_PER_TURN));
        assert!(turns.len() >= 3, "cut into turns by the budget");
        assert_eq!(turns.concat(), (1..=sent).collect::<Vec<u64>>());
    }

    #[test]
    fn bytes_that_are_not_tls_records_close_a_tls_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (mut socket, mut peer) = tls_connection(dir.path());
        // Plain text under the session: no record decrypts.
        std::io::Write::write_all(&mut peer.sock, b"*1\r\n$4\r\nPING\r\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (shared, mut scratch) = (Shared::default(), vec![0; READ_BYTES]);
        socket.mark_readable(false);
        let turn = socket.read_turn(&shared, &mut scratch, MAX_FRAMES_PER_TURN, |_| {
            panic!("nothing is a frame")
        });
        match turn {
            Err(FrameError::Io(error)) => assert_eq!(error.kind(), io::ErrorKind::InvalidData),
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(_) => panic!("the connection stayed open"),
        }
    }

    #[test]
    fn a_tls_peer_gone_between_frames_closes_and_one_gone_mid_frame_is_refused() {
        for cut in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (mut socket, mut peer) = tls_connection(dir.path());
            let mut out = Vec::new();
            put_message(&mut out, CLUSTER, &message(7));
            if cut {
                out.truncate(out.len() - 3);
            }
            std::io::Write::write_all(&mut peer, &out).unwrap();
            std::io::Write::flush(&mut peer).unwrap();
            // Its end of the connection closed without closing the session first (a FIN,
            // no close_notify).
            peer.sock.shutdown(std::net::Shutdown::Write).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            let (shared, mut scratch) = (Shared::default(), vec![0; READ_BYTES]);
            let mut terms = Vec::new();
            socket.mark_readable(true);
            let turn = socket.read_turn(&shared, &mut scratch, MAX_FRAMES_PER_TURN, |m| {
                terms.push(term_of(&m))
            });
            if cut {
                assert!(matches!(turn, Err(FrameError::Io(_))), "cut mid-frame");
                assert!(terms.is_empty());
            } else {
                let closed = matches!(turn, Ok(Turn::Closed));
                assert!(closed, "closed between frames: {:?}", turn.err());
                assert_eq!(terms, vec![7]);
            }
        }
    }

    #[test]
    fn a_flood_of_tiny_tls_records_is_read_a_bounded_amount_per_turn() {
        let dir = tempfile::tempdir().unwrap();
        let (mut socket, mut peer) = tls_connection(dir.path());
        let sent = 3000u64;
        let out = framed_messages(1..=sent);
        // One byte per record: over 20 bytes on the wire for each byte of plaintext.
        let writer = std::thread::spawn(move || {
            for byte in out.chunks(1) {
                std::io::Write::write_all(&mut peer, byte)?;
                std::io::Write::flush(&mut peer)?;
            }
            Ok::<_, io::Error>(peer)
        });
        let _peer = writer.join().unwrap().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        // No frame budget: only the bytes may end a turn.
        let turns = turns_while_pending(&mut socket, &Shared::default(), usize::MAX);
        // The plaintext (about 100 KiB) is far under a turn's 1 MiB, the records on the wire
        // far over it: the socket's bytes end the turn.
        assert!(
            turns.len() >= 2 && turns[0].len() < sent as usize * 3 / 4,
            "the first turn took {} of {sent} frames",
            turns[0].len()
        );
        assert_eq!(turns.concat(), (1..=sent).collect::<Vec<u64>>());
    }

    #[test]
    fn frames_the_session_decrypted_before_the_hand_over_are_read_first() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ours, addr, mut session, mut peer) = tls_sessions(dir.path());
        let out = framed_messages(1..=3);
        std::io::Write::write_all(&mut peer, &out).unwrap();
        std::io::Write::flush(&mut peer).unwrap();
        // The task's read took the records off the socket and decrypted them (as reading the
        // Hello does): the socket has nothing left, the session holds all three frames.
        while session
            .process_new_packets()
            .unwrap()
            .plaintext_bytes_to_read()
            < out.len()
        {
            session.read_tls(&mut ours).unwrap();
        }
        let mut socket = held(ours, addr).over_tls(session);
        let (shared, mut scratch) = (Shared::default(), vec![0; READ_BYTES]);
        let mut terms = Vec::new();
        // As `adopt` does: one readiness mark, though no event will come.
        socket.mark_readable(false);
        let turn = socket.read_turn(&shared, &mut scratch, MAX_FRAMES_PER_TURN, |m| {
            terms.push(term_of(&m))
        });
        assert!(matches!(turn, Ok(Turn::Open)));
        assert_eq!(terms, vec![1, 2, 3]);
    }

    #[test]
    fn a_tls_frame_claiming_gigabytes_is_refused_after_the_good_ones_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut socket, mut peer) = tls_connection(dir.path());
        // Pipelined in one write: two good messages, then a header claiming 4 GiB and a
        // megabyte of what would follow it.
        let mut out = Vec::new();
        put_message(&mut out, CLUSTER, &message(1));
        put_message(&mut out, CLUSTER, &message(2));
        let mut huge = Vec::new();
        put_message(&mut huge, CLUSTER, &message(3));
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        huge.resize(1 << 20, 0x5a);
        out.extend_from_slice(&huge);
        let writer = std::thread::spawn(move || {
            std::io::Write::write_all(&mut peer, &out)
                .and_then(|()| std::io::Write::flush(&mut peer))
                .map(|()| peer)
        });
        let _peer = writer.join().unwrap().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (shared, mut scratch) = (Shared::default(), vec![0; READ_BYTES]);
        let mut terms = Vec::new();
        socket.mark_readable(false);
        let turn = socket.read_turn(&shared, &mut scratch, MAX_FRAMES_PER_TURN, |m| {
            terms.push(term_of(&m))
        });
        assert_eq!(terms, vec![1, 2], "the messages before it, in order");
        assert!(
            matches!(
                turn,
                Err(FrameError::Header(
                    skiff_node::wire::FrameError::TooLarge { .. }
                ))
            ),
            "refused by its header"
        );
        // Refused from its first bytes: nothing near its claimed size was held.
        assert!(
            socket.buf.capacity() <= 2 * READ_BYTES,
            "{}",
            socket.buf.capacity()
        );
    }
}
