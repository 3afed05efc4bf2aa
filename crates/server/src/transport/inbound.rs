//! An incoming plain TCP peer connection read by the driver thread itself, once its Hello is
//! accepted ([`crate::driver::inbox`]): the same frames, checks, drops and logs as the reader
//! task's ([`super::relay_messages`]), read without ever blocking and a bounded amount per
//! turn, so a peer that floods frames cannot hold up the driver's other inputs or its ticks.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use skiff_node::Envelope;
use tokio::sync::OwnedSemaphorePermit;

use super::{check_message, take_frame, touch_heard, FrameError, TransportOptions};
use crate::shared::Shared;

/// Frames taken from one connection per turn of the driver at most. Everything read in one
/// turn goes into one batch (one fsync): a follower's forwarded writes arrive one frame each,
/// and at 64 a turn the leader wrote a batch per 60–80 of them instead of per ~400
/// (docs/BENCHMARKS.md, "Forwarded writes in one batch").
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

    /// The socket, the bytes read and not yet taken, and the connection's slot: for the
    /// reader task to go on with the connection when the driver cannot take it.
    pub fn into_parts(self) -> (std::net::TcpStream, BytesMut, OwnedSemaphorePermit) {
        (self.stream.into(), self.buf, self._slot)
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
                let message = check_message(kind, &payload, self.from, options.id)?;
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
            match self.stream.read(scratch) {
                Ok(0) if self.buf.is_empty() => return Ok(Turn::Closed),
                Ok(0) => return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into())),
                Ok(read) => {
                    bytes += read;
                    drained = read < scratch.len();
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

    pub(crate) const CLUSTER: u64 = 9;

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
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, addr) = listener.accept().unwrap();
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
        let socket = PeerSocket::new(ours, BytesMut::new(), 1, addr, options, slot);
        (socket, peer)
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

    #[test]
    fn a_turn_takes_a_bounded_number_of_frames_in_the_order_sent() {
        let (mut socket, mut peer) = connection();
        let sent = (MAX_FRAMES_PER_TURN * 5 / 2) as u64;
        let mut out = Vec::new();
        for term in 1..=sent {
            put_message(&mut out, CLUSTER, &message(term));
        }
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
}
