//! TCP between nodes.
//!
//! Every frame is `length: u32 | version: u8 | cluster id: u64 | kind: u8 | payload` (see
//! [`skiff_node::wire`]), `length` counting the bytes after itself. A connection opens with a
//! `Hello` frame naming the sender and the client and HTTP addresses it serves; every later
//! frame carries one [`Envelope`] (the sender's incarnation and a `PeerMessage`). The Hello
//! also gives the sender's own peer address, so that a node can answer a sender it has no
//! address for (a leader that joined the cluster after it); the driver uses it only for ids
//! whose address the log does not record. A frame of
//! another version or cluster, a frame over the size limit, or bytes that do not decode close
//! the connection and are logged; the node keeps serving.
//!
//! What a connection may cost before it is trusted is bounded: version and cluster id are
//! checked in a frame's first 14 bytes, before its payload is read; the first frame (the
//! Hello) may be at most [`MAX_HELLO_BYTES`] and must come within 2 s; a frame's buffer grows
//! only with the bytes that arrive, never by its declared length; and at most
//! `max_connections` incoming connections are open at once.
//!
//! With TLS (`--tls-*-file`) the port is mutual TLS ([`crate::tls`]): a peer must present a
//! certificate the cluster's CA signed, and the id in its Hello must be the node id its
//! certificate names; a node dialling a peer checks that the certificate it is shown names
//! the node it meant to reach.
//!
//! Each peer has one long-lived outgoing connection fed by a bounded queue. When the queue is
//! full the message is dropped, as the network may drop it: Raft retransmits, and memory does
//! not grow with load. A lost connection is re-established with exponential backoff. While the
//! sender task is idle, the driver writes to the socket itself ([`lane`]), in the same order;
//! over TLS both seal through the one session the lane holds.
//!
//! Once a connection's Hello is accepted, its task hands the socket to the driver thread,
//! which reads and steps its frames itself ([`inbound`]), with the same checks: a frame
//! arriving while the driver waits then wakes the driver and no other thread. Over TLS the
//! session goes with the socket, and the driver decrypts what it reads.

use crossbeam_channel::TrySendError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use skiff_node::{wire, Envelope};
use skiff_raft::NodeId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::driver::{Input, ToDriver};
use crate::shared::{Advertised, Shared};
use crate::tls::Tls;

/// Messages queued per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 4096;
/// The largest frame a peer may send by default: every message fits in the core's 1 MiB
/// `max_message_bytes` (a snapshot chunk is 1 MiB) plus its framing.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// Incoming peer connections open at once, by default.
pub const DEFAULT_MAX_PEER_CONNECTIONS: usize = 64;
/// The largest Hello frame: an id and three socket addresses.
pub const MAX_HELLO_BYTES: usize = 1024;
/// The longest peer address a Hello may give: a bracketed IPv6 address with a scope and a
/// port fits.
const MAX_PEER_ADDR_CHARS: usize = 64;
/// The free room a peer connection's buffer has before each read, once its Hello is accepted
/// (a silent or refused connection holds none of it).
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// How long a new connection may take to send its Hello (a peer sends it at once): a
/// silent connection holds a connection slot no longer than this.
const HELLO_DEADLINE: Duration = Duration::from_secs(2);
/// Peers whose advertised addresses are kept even when they are not (yet) members.
const MAX_ADVERTISED: usize = 64;
/// How often a connection's messages mark its peer as heard from in the advertised map.
const HEARD_EVERY: Duration = Duration::from_secs(1);

pub mod inbound;
pub mod lane;
pub mod redial;

use lane::put_outgoing;
pub use lane::{peer_lane, PeerFeed, PeerLink, Sent};

mod kind {
    pub const HELLO: u8 = 0;
    pub const MESSAGE: u8 = 1;
}

/// Why a peer's bytes were refused.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The frame header is refused: too large or short, another version or cluster.
    #[error(transparent)]
    Header(#[from] wire::FrameError),
    /// Not the frame expected here.
    #[error("unexpected frame kind {0}")]
    Kind(u8),
    /// The payload is malformed.
    #[error("malformed payload: {0}")]
    Payload(String),
}

/// The first frame on a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The sender's id.
    pub from: u64,
    /// Its client address.
    pub client_addr: String,
    /// Its HTTP address.
    pub http_addr: String,
    /// The address its peer port is reached at, if it knows one.
    pub peer_addr: Option<SocketAddr>,
}

fn put_frame(out: &mut Vec<u8>, cluster_id: u64, kind: u8, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    wire::encode_frame_header(out, cluster_id, kind, 0);
    payload(out);
    wire::finish_frame(out, start);
}

/// Appends a Hello frame.
pub fn put_hello(out: &mut Vec<u8>, cluster_id: u64, hello: &Hello) {
    put_frame(out, cluster_id, kind::HELLO, |out| {
        wire::Hello {
            from: hello.from,
            client_addr: &hello.client_addr,
            http_addr: &hello.http_addr,
            peer_addr: &hello.peer_addr.map(|a| a.to_string()).unwrap_or_default(),
        }
        .encode(out)
    });
}

/// Appends a message frame, encoding the message straight into the outgoing buffer.
pub fn put_message(out: &mut Vec<u8>, cluster_id: u64, message: &Envelope) {
    put_frame(out, cluster_id, kind::MESSAGE, |out| {
        wire::encode_envelope(message, out)
    });
}

/// Takes the first frame out of `buf` if it is whole: its kind and payload. Version, cluster
/// and length are checked as soon as the header is there, before the payload is waited for:
/// bytes from elsewhere are refused within 14 of them.
fn take_frame(
    buf: &mut BytesMut,
    cluster_id: u64,
    max_frame_bytes: usize,
) -> Result<Option<(u8, BytesMut)>, FrameError> {
    if let Some(header) = wire::parse_frame_header(buf, cluster_id, max_frame_bytes)? {
        if buf.len() >= header.frame_bytes() {
            let mut frame = buf.split_to(header.frame_bytes());
            frame.advance(wire::FRAME_HEADER_BYTES);
            return Ok(Some((header.kind, frame)));
        }
    }
    Ok(None)
}

/// Reads one frame: its kind and payload, after checking version and cluster.
async fn read_frame(
    stream: &mut (impl AsyncReadExt + Unpin),
    buf: &mut BytesMut,
    cluster_id: u64,
    max_frame_bytes: usize,
) -> Result<Option<(u8, BytesMut)>, FrameError> {
    loop {
        if let Some(frame) = take_frame(buf, cluster_id, max_frame_bytes)? {
            return Ok(Some(frame));
        }
        if stream.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()))
            };
        }
    }
}

fn parse_hello(payload: BytesMut) -> Result<Hello, FrameError> {
    let hello = wire::Hello::decode(&payload).map_err(|e| FrameError::Payload(e.to_string()))?;
    let (from, client_addr, http_addr) = (hello.from, hello.client_addr, hello.http_addr);
    let peer_addr = parse_peer_addr(hello.peer_addr)?;
    if from == 0 {
        return Err(FrameError::Payload("hello from node id 0".into()));
    }
    // Nodes advertise the socket addresses they listen on; anything else (markup, say) is
    // refused here, before the live view or a status page could show it.
    for (what, addr) in [("client", &client_addr), ("http", &http_addr)] {
        if addr.parse::<SocketAddr>().is_err() {
            return Err(FrameError::Payload(format!(
                "hello advertises a {what} address that is not HOST:PORT: {:?}",
                addr.chars().take(64).collect::<String>()
            )));
        }
    }
    Ok(Hello {
        from,
        client_addr: client_addr.to_string(),
        http_addr: http_addr.to_string(),
        peer_addr,
    })
}

/// The peer address a Hello gives: empty for none, else a socket address another node could
/// dial (not unspecified, multicast or port 0), since the driver may send to it.
fn parse_peer_addr(text: &str) -> Result<Option<SocketAddr>, FrameError> {
    if text.is_empty() {
        return Ok(None);
    }
    let shown = || text.chars().take(MAX_PEER_ADDR_CHARS).collect::<String>();
    if text.len() > MAX_PEER_ADDR_CHARS {
        return Err(FrameError::Payload(format!(
            "hello gives a peer address of {} bytes, over {MAX_PEER_ADDR_CHARS}: {:?}",
            text.len(),
            shown()
        )));
    }
    let Ok(addr) = text.parse::<SocketAddr>() else {
        return Err(FrameError::Payload(format!(
            "hello gives a peer address that is not HOST:PORT: {:?}",
            shown()
        )));
    };
    if addr.ip().is_unspecified() || addr.ip().is_multicast() || addr.port() == 0 {
        return Err(FrameError::Payload(format!(
            "hello gives a peer address no node can be reached at: {addr}"
        )));
    }
    Ok(Some(addr))
}

/// Settings the transport needs.
#[derive(Clone, Debug)]
pub struct TransportOptions {
    /// This node's id.
    pub id: u64,
    /// The cluster id in every frame.
    pub cluster_id: u64,
    /// The largest frame accepted.
    pub max_frame_bytes: usize,
    /// Incoming connections open at once.
    pub max_connections: usize,
    /// What this node advertises in its Hello.
    pub hello: Hello,
}

/// Accepts peer connections and feeds their messages to the driver.
pub async fn serve_peers(
    listener: TcpListener,
    options: Arc<TransportOptions>,
    driver: ToDriver,
    shared: Arc<Shared>,
    tls: Option<Arc<Tls>>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections));
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a peer connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            shared.metrics.error("max_peer_connections");
            tracing::debug!(peer = %addr, "closed a peer connection over the connection limit");
            continue;
        };
        let options = options.clone();
        let driver = driver.clone();
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let received = match &tls {
                None => receive_plain(stream, addr, slot, &options, &driver, &shared).await,
                Some(tls) => match tls.accept_peer(stream, addr).await {
                    None => {
                        shared.metrics.error("tls_handshake");
                        return;
                    }
                    Some((_, Err(why))) => Err(FrameError::Payload(why)),
                    Some((stream, Ok(named))) => {
                        receive_tls(stream, named, addr, slot, &options, &driver, &shared).await
                    }
                },
            };
            if let Err(error) = received {
                shared.metrics.error("peer_connection_refused");
                tracing::warn!(peer = %addr, %error, "closed a peer connection");
            }
        });
    }
}

/// Reads a plain connection's Hello, then hands the socket (and the slot it holds) to the
/// driver, which reads the rest itself ([`hand_off`]).
async fn receive_plain(
    mut stream: TcpStream,
    addr: SocketAddr,
    slot: tokio::sync::OwnedSemaphorePermit,
    options: &Arc<TransportOptions>,
    driver: &ToDriver,
    shared: &Shared,
) -> Result<(), FrameError> {
    let mut buf = BytesMut::new();
    let Some(from) = accept_hello(&mut stream, &mut buf, None, options, shared).await? else {
        return Ok(());
    };
    // Non-blocking (the runtime leaves it so; said again, since the driver must never wait
    // on it).
    let socket = stream.into_std()?;
    socket.set_nonblocking(true)?;
    let socket = inbound::PeerSocket::new(socket, buf, from, addr, options.clone(), slot);
    hand_off(driver, socket).await
}

/// Reads a TLS connection's Hello (from the node its certificate names, `certified`), then
/// hands the socket and its session to the driver, which reads and decrypts the rest itself
/// ([`hand_off`]).
async fn receive_tls(
    mut stream: tokio_rustls::server::TlsStream<TcpStream>,
    certified: u64,
    addr: SocketAddr,
    slot: tokio::sync::OwnedSemaphorePermit,
    options: &Arc<TransportOptions>,
    driver: &ToDriver,
    shared: &Shared,
) -> Result<(), FrameError> {
    let mut buf = BytesMut::new();
    let hello = accept_hello(&mut stream, &mut buf, Some(certified), options, shared).await?;
    let Some(from) = hello else {
        return Ok(());
    };
    // The session keeps what it decrypted past the Hello; `buf` what was read of it.
    let (stream, session) = stream.into_inner();
    let socket = stream.into_std()?;
    socket.set_nonblocking(true)?;
    let socket =
        inbound::PeerSocket::new(socket, buf, from, addr, options.clone(), slot).over_tls(session);
    hand_off(driver, socket).await
}

/// Gives an accepted connection to the driver. A full queue is overload: the hand-off is tried
/// again for a while, then the connection is closed and its peer dials again. It is never
/// read here meanwhile: the runtime's threads (one, on two cores) are the clients' too.
async fn hand_off(driver: &ToDriver, socket: inbound::PeerSocket) -> Result<(), FrameError> {
    let mut input = Input::PeerSocket(Box::new(socket));
    for _ in 0..HAND_OFF_TRIES {
        match driver.try_send(input) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => return Ok(()),
            Err(TrySendError::Full(back)) => input = back,
        }
        tokio::time::sleep(HAND_OFF_RETRY).await;
    }
    Err(FrameError::Payload(
        "the node's input queue stayed full; the peer dials again".into(),
    ))
}

/// How often, and how far apart, a TLS connection's hand-off to a full driver queue is tried.
const HAND_OFF_TRIES: usize = 50;
const HAND_OFF_RETRY: Duration = Duration::from_millis(20);

/// Reads the connection's first frame, which must be a Hello within [`HELLO_DEADLINE`] from a
/// node other than this one, and the one its certificate names (with TLS); records the
/// addresses it advertises. The peer's id, or `None` if the connection closed first.
async fn accept_hello(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    certified: Option<u64>,
    options: &TransportOptions,
    shared: &Shared,
) -> Result<Option<u64>, FrameError> {
    let first = tokio::time::timeout(
        HELLO_DEADLINE,
        read_frame(
            stream,
            buf,
            options.cluster_id,
            MAX_HELLO_BYTES.min(options.max_frame_bytes),
        ),
    )
    .await
    .map_err(|_| FrameError::Payload(format!("no hello within {HELLO_DEADLINE:?}")))?;
    let hello = match first? {
        None => return Ok(None),
        Some((kind::HELLO, payload)) => parse_hello(payload)?,
        Some((other, _)) => return Err(FrameError::Kind(other)),
    };
    if hello.from == options.id {
        return Err(FrameError::Payload(
            "a connection from this node's own id".into(),
        ));
    }
    // A peer speaks only for the node its certificate names: a stolen or misissued node
    // certificate cannot vote or append as another node.
    if let Some(named) = certified.filter(|&named| named != hello.from) {
        return Err(FrameError::Payload(format!(
            "hello from node {} over a certificate naming node {named}",
            hello.from
        )));
    }
    record_hello(shared, options.id, &hello, Instant::now())?;
    // It is up: if this node is waiting to dial it again, it dials now.
    shared.redials.peer_is_back(hello.from);
    Ok(Some(hello.from))
}

/// Records the addresses a Hello advertises. The map is bounded: when it is full, a Hello
/// from a node that is neither a member nor in it takes the place of the non-member heard
/// from least recently (so strangers cannot fill it for good and shut out a leader that joined
/// after this node); members and this node's own entry are never evicted.
fn record_hello(shared: &Shared, me: u64, hello: &Hello, now: Instant) -> Result<(), FrameError> {
    let members: Vec<u64> = shared.status().members.iter().map(|m| m.id).collect();
    let Ok(mut advertised) = shared.advertised.write() else {
        return Ok(());
    };
    if !advertised.contains_key(&hello.from) && advertised.len() >= MAX_ADVERTISED {
        let evictable = advertised
            .iter()
            .filter(|(id, _)| **id != me && !members.contains(id))
            .min_by_key(|(_, entry)| entry.heard)
            .map(|(id, _)| *id);
        match evictable {
            Some(id) => {
                advertised.remove(&id);
            }
            // Every place is a member's: another member is recorded too (members are few).
            None if members.contains(&hello.from) => {}
            None => {
                return Err(FrameError::Payload(format!(
                    "hello from node {}, which is not a member, with every place held by members",
                    hello.from
                )))
            }
        }
    }
    advertised.insert(
        hello.from,
        Advertised {
            client_addr: hello.client_addr.clone(),
            http_addr: hello.http_addr.clone(),
            peer_addr: hello.peer_addr,
            heard: Some(now),
        },
    );
    Ok(())
}

/// Marks node `from` as heard from now, if [`HEARD_EVERY`] has passed since `last`.
fn touch_heard(shared: &Shared, from: u64, last: &mut Instant) {
    let now = Instant::now();
    if now.duration_since(*last) < HEARD_EVERY {
        return;
    }
    // Never waits behind a reader (the driver thread calls this): if the table is busy, the
    // next message tries again.
    let Ok(mut advertised) = shared.advertised.try_write() else {
        return;
    };
    *last = now;
    if let Some(entry) = advertised.get_mut(&from) {
        entry.heard = Some(now);
    }
}

/// A frame's bytes, which the entries it carries will share (`wire::decode_envelope`). A large
/// frame keeps sharing the connection's buffer: it fills most of what it holds. A small one is
/// copied out, since an entry kept for a while (the log keeps its recent entries) would hold
/// the whole buffer, with every frame read into it, for a few bytes of its own.
fn frame_bytes(payload: BytesMut) -> Bytes {
    if payload.len() >= SHARED_FRAME_BYTES {
        payload.freeze()
    } else {
        Bytes::copy_from_slice(&payload)
    }
}

/// Frames at least this large, a read's free room, share the connection's read buffer (see
/// [`frame_bytes`]).
const SHARED_FRAME_BYTES: usize = READ_CHUNK_BYTES;

/// The message a frame of node `from`'s connection carries: a frame of another kind, bytes
/// that do not decode, or a message not from `from` to this node (`me`) are refused.
fn check_message(kind: u8, payload: BytesMut, from: u64, me: u64) -> Result<Envelope, FrameError> {
    if kind != kind::MESSAGE {
        return Err(FrameError::Kind(kind));
    }
    let message = wire::decode_envelope(&frame_bytes(payload))
        .map_err(|e| FrameError::Payload(e.to_string()))?;
    if message.from() != NodeId(from) || message.to() != NodeId(me) {
        return Err(FrameError::Payload(format!(
            "message from {} to {} on the connection of node {from}",
            message.from(),
            message.to(),
        )));
    }
    Ok(message)
}

/// The least time between the starts of two attempts to connect to a peer, whatever wakes
/// the sender task: a peer's Hellos, or connections lost as soon as they are made.
const MIN_DIAL_GAP: Duration = Duration::from_millis(20);

/// Keeps one connection to the peer at `addr` and writes the queued messages to it,
/// several per write when they queue up, and lets the driver write to the socket itself
/// while nothing is queued ([`lane`]; over TLS both seal through the lane's session). `back`
/// ends a wait between attempts when the peer connects to this node ([`redial`]); the task
/// ends when the driver drops the queue.
pub async fn send_to_peer(
    peer: NodeId,
    addr: SocketAddr,
    options: Arc<TransportOptions>,
    mut feed: PeerFeed,
    tls: Option<Arc<Tls>>,
    back: redial::Redial,
) {
    let mut backoff = Duration::from_millis(20);
    let mut out = Vec::with_capacity(64 * 1024);
    // The last reason a TLS connection was refused: logged when it changes, not every retry.
    let mut refused: Option<String> = None;
    let mut connection = 0;
    let mut last_dial: Option<tokio::time::Instant> = None;
    loop {
        if let Some(last) = last_dial {
            tokio::time::sleep_until(last + MIN_DIAL_GAP).await;
        }
        last_dial = Some(tokio::time::Instant::now());
        let stream =
            match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(_)) | Err(_) => None,
            };
        connection += 1;
        let stream = match (stream, &tls) {
            (Some(stream), None) => {
                let _ = stream.set_nodelay(true);
                shared_with_driver(stream, connection, &feed, None).ok_or(())
            }
            (Some(stream), Some(tls)) => {
                let _ = stream.set_nodelay(true);
                match tls.connect_peer(stream, peer.0, addr).await {
                    Ok(stream) => {
                        let (stream, session) = stream.into_inner();
                        shared_with_driver(stream, connection, &feed, Some(session)).ok_or(())
                    }
                    Err(why) => {
                        if refused.as_ref() != Some(&why) {
                            tracing::warn!(peer = %addr, %why, "refused the TLS connection to a peer");
                            refused = Some(why);
                        }
                        Err(())
                    }
                }
            }
            (None, _) => Err(()),
        };
        let Ok(stream) = stream else {
            if !wait_to_dial_again(&mut feed, backoff, &back).await {
                return;
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
            continue;
        };
        backoff = Duration::from_millis(20);
        let sealed = tls.is_some();
        let ended = pump(stream, &options, &mut feed, &mut out, connection, sealed).await;
        feed.detach();
        match ended {
            Pumped::QueueClosed => return,
            Pumped::Lost(error) => {
                tracing::debug!(peer = %addr, %error, "peer connection lost; reconnecting")
            }
        }
    }
}

/// Waits `backoff` before the next attempt to reach an unreachable peer, or less if the peer
/// connects to this node meanwhile (`back`). Messages queued while the peer is unreachable are
/// stale by the time it returns: they are dropped rather than replayed. `false` when the driver
/// dropped the queue (the peer left the configuration, or moved): the task is to end.
async fn wait_to_dial_again(feed: &mut PeerFeed, backoff: Duration, back: &redial::Redial) -> bool {
    let waited = tokio::time::sleep(backoff);
    tokio::pin!(waited);
    loop {
        tokio::select! {
            () = &mut waited => return true,
            () = back.peer_back() => return true,
            queued = feed.queue.recv() => {
                if queued.is_none() {
                    return false;
                }
            }
        }
    }
}

/// Gives the driver a handle on a connection's socket (the same socket, another descriptor),
/// so that it can write while the sender task is idle; without a descriptor to spare the
/// connection goes on without the shortcut. A TLS connection's `session` goes to the lane,
/// through which both seal what they write. `None` if the socket could not be moved out of
/// the runtime's reactor and back (then it is closed, and dialled again).
fn shared_with_driver(
    stream: TcpStream,
    connection: u64,
    feed: &PeerFeed,
    session: Option<tokio_rustls::rustls::ClientConnection>,
) -> Option<TcpStream> {
    let std = stream.into_std().ok()?;
    // Kept non-blocking whatever the runtime leaves: the driver must never wait on it.
    std.set_nonblocking(true).ok()?;
    let handle = std.try_clone();
    if let Err(error) = &handle {
        tracing::debug!(%error, "peer connection without the driver's shortcut");
    }
    feed.attach(connection, handle.ok(), session);
    TcpStream::from_std(std).ok()
}

/// Why [`pump`] stopped.
enum Pumped {
    /// The driver dropped the queue: the peer is gone.
    QueueClosed,
    /// The connection failed.
    Lost(std::io::Error),
}

/// Writes the Hello and then the queued messages to connection number `connection` until it
/// fails.
async fn pump(
    mut stream: TcpStream,
    options: &TransportOptions,
    feed: &mut PeerFeed,
    out: &mut Vec<u8>,
    connection: u64,
    sealed: bool,
) -> Pumped {
    // Over TLS, what goes on the wire: the frames sealed through the lane's session.
    let mut wire = sealed.then(Vec::new);
    out.clear();
    put_hello(out, options.cluster_id, &options.hello);
    if let Err(error) = write_frames(&mut stream, feed, out, wire.as_mut()).await {
        return Pumped::Lost(error);
    }
    loop {
        let Some(item) = feed.next().await else {
            return Pumped::QueueClosed;
        };
        out.clear();
        let mut count = put_outgoing(out, options.cluster_id, connection, item);
        while out.len() < 1024 * 1024 {
            match feed.try_next() {
                Some(item) => count += put_outgoing(out, options.cluster_id, connection, item),
                None => break,
            }
        }
        let written = match write_frames(&mut stream, feed, out, wire.as_mut()).await {
            Ok(written) => written,
            Err(error) => return Pumped::Lost(error),
        };
        feed.sent().messages.inc_by(count);
        feed.sent().bytes.inc_by(written as u64);
    }
}

/// Writes the frames in `out`, on a TLS connection sealed into `wire` first. The bytes
/// written.
async fn write_frames(
    stream: &mut TcpStream,
    feed: &PeerFeed,
    out: &[u8],
    wire: Option<&mut Vec<u8>>,
) -> std::io::Result<usize> {
    let bytes = match wire {
        None => out,
        Some(wire) => {
            wire.clear();
            if !feed.seal(out, wire)? {
                return Err(std::io::Error::other(
                    "the connection's TLS session is gone",
                ));
            }
            wire
        }
    };
    stream.write_all(bytes).await?;
    Ok(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_raft::{Message, MessageBody, Term};

    #[test]
    fn a_small_frame_is_copied_out_of_the_connection_buffer_and_a_large_one_shares_it() {
        let mut buf = BytesMut::from(&vec![1u8; 3 * SHARED_FRAME_BYTES][..]);
        let small = buf.split_to(100);
        let in_buffer = small.as_ptr();
        assert_ne!(
            frame_bytes(small).as_ptr(),
            in_buffer,
            "a small frame holds its own copy"
        );
        let large = buf.split_to(SHARED_FRAME_BYTES);
        let in_buffer = large.as_ptr();
        assert_eq!(
            frame_bytes(large).as_ptr(),
            in_buffer,
            "a large frame is not copied"
        );
    }

    fn heartbeat() -> Envelope {
        Envelope::new(
            7,
            skiff_node::PeerMessage::Raft(Message {
                from: NodeId(1),
                to: NodeId(2),
                term: Term(3),
                body: MessageBody::TimeoutNow,
            }),
        )
    }

    async fn read_all(
        bytes: &[u8],
        cluster_id: u64,
        max: usize,
    ) -> Result<Vec<(u8, BytesMut)>, FrameError> {
        let mut stream = bytes;
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        while let Some(frame) = read_frame(&mut stream, &mut buf, cluster_id, max).await? {
            frames.push(frame);
        }
        Ok(frames)
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let mut out = Vec::new();
        let hello = Hello {
            from: 1,
            client_addr: "127.0.0.1:7001".into(),
            http_addr: "127.0.0.1:7201".into(),
            peer_addr: Some("10.0.0.1:7101".parse().unwrap()),
        };
        put_hello(&mut out, 9, &hello);
        put_message(&mut out, 9, &heartbeat());
        let frames = read_all(&out, 9, 1 << 20).await.unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(parse_hello(frames[0].1.clone()).unwrap(), hello);
        assert_eq!(frames[1].0, kind::MESSAGE);
        assert_eq!(
            wire::decode_envelope(&frames[1].1.clone().freeze()).unwrap(),
            heartbeat()
        );
        // A node that knows no address of its own to give says so.
        let mut out = Vec::new();
        let unknown = Hello {
            peer_addr: None,
            ..hello
        };
        put_hello(&mut out, 9, &unknown);
        let frames = read_all(&out, 9, 1 << 20).await.unwrap();
        assert_eq!(parse_hello(frames[0].1.clone()).unwrap(), unknown);
    }

    #[tokio::test]
    async fn another_clusters_frames_are_refused() {
        let mut out = Vec::new();
        put_message(&mut out, 9, &heartbeat());
        assert!(matches!(
            read_all(&out, 10, 1 << 20).await,
            Err(FrameError::Header(wire::FrameError::WrongCluster {
                found: 9,
                expected: 10
            }))
        ));
    }

    #[tokio::test]
    async fn oversized_and_garbage_frames_are_refused() {
        let mut out = Vec::new();
        put_message(&mut out, 9, &heartbeat());
        assert!(matches!(
            read_all(&out, 9, 8).await,
            Err(FrameError::Header(wire::FrameError::TooLarge { .. }))
        ));
        assert!(matches!(
            read_all(b"GET / HTTP/1.1\r\n\r\n", 9, 1 << 20).await,
            Err(FrameError::Header(
                wire::FrameError::TooLarge { .. } | wire::FrameError::Version(_)
            ))
        ));
        assert!(matches!(
            read_all(&[1, 0, 0, 0, wire::WIRE_VERSION], 9, 1 << 20).await,
            Err(FrameError::Header(wire::FrameError::TooShort(1)))
        ));
        let mut truncated = Vec::new();
        put_message(&mut truncated, 9, &heartbeat());
        truncated.truncate(truncated.len() - 1);
        assert!(matches!(
            read_all(&truncated, 9, 1 << 20).await,
            Err(FrameError::Io(_))
        ));
    }

    /// A Hello whose own peer address is `peer_addr`, as the bytes a stranger could send.
    fn hello_giving(peer_addr: &str) -> Result<Hello, FrameError> {
        let mut payload = Vec::new();
        wire::Hello {
            from: 4,
            client_addr: "127.0.0.1:7004",
            http_addr: "127.0.0.1:7204",
            peer_addr,
        }
        .encode(&mut payload);
        parse_hello(BytesMut::from(&payload[..]))
    }

    #[test]
    fn a_hello_giving_a_peer_address_no_node_can_be_reached_at_is_refused() {
        assert_eq!(
            hello_giving("[::1]:7104").unwrap().peer_addr,
            Some("[::1]:7104".parse().unwrap())
        );
        for hostile in [
            "0.0.0.0:7104",
            "[::]:7104",
            "127.0.0.1:0",
            "224.0.0.1:7104",
            "node-4:7104",
            "127.0.0.1",
            "<script>alert(1)</script>",
            &format!("127.0.0.1:7104{}", " ".repeat(100)),
            &"9".repeat(60_000),
        ] {
            let refused = hello_giving(hostile);
            assert!(
                matches!(&refused, Err(FrameError::Payload(why)) if why.contains("peer address")),
                "{hostile:.80}: {refused:?}"
            );
        }
    }

    /// A peer connection whose Hello is accepted while the driver's queue is full waits for
    /// room and is handed over; one that meets a queue full for a second is closed (its peer
    /// dials again), never read by the runtime meanwhile. On tokio's paused clock.
    #[tokio::test(start_paused = true)]
    async fn a_peer_connection_met_by_a_full_driver_queue_waits_for_room_then_is_given_up() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap();
        let options = Arc::new(TransportOptions {
            id: 1,
            cluster_id: 9,
            max_frame_bytes: 1 << 20,
            max_connections: 8,
            hello: Hello {
                from: 1,
                client_addr: "127.0.0.1:7001".into(),
                http_addr: "127.0.0.1:7201".into(),
                peer_addr: None,
            },
        });
        let (to_driver, inbox) = crate::driver::inbox(1).unwrap();
        let shared = Arc::new(Shared::default());
        let serving = tokio::spawn(serve_peers(listener, options, to_driver, shared, None));
        let connect = |from: u64| async move {
            let mut out = Vec::new();
            let hello = Hello {
                from,
                client_addr: "127.0.0.1:7002".into(),
                http_addr: "127.0.0.1:7202".into(),
                peer_addr: None,
            };
            put_hello(&mut out, 9, &hello);
            let mut peer = tokio::net::TcpStream::connect(port).await.unwrap();
            peer.write_all(&out).await.unwrap();
            peer
        };
        let handed = |input: Option<Input>| match input {
            Some(Input::PeerSocket(socket)) => socket.from(),
            _ => panic!("no connection was handed over"),
        };
        // Node 2's connection fills the queue; node 3's waits for room.
        let _two = connect(2).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _three = connect(3).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(handed(inbox.try_recv().unwrap()), 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Node 3's is in the queue now, and nobody takes it: node 4's is given up.
        let mut four = connect(4).await;
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), four.read(&mut byte)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "node 4's connection was not closed: {closed:?}"
        );
        assert_eq!(handed(inbox.try_recv().unwrap()), 3);
        assert!(
            inbox.try_recv().unwrap().is_none(),
            "node 4's was handed over"
        );
        serving.abort();
    }

    fn hello_from(from: u64) -> Hello {
        Hello {
            from,
            client_addr: String::new(),
            http_addr: String::new(),
            peer_addr: Some(SocketAddr::from(([10, 0, 0, 1], 7000 + from as u16))),
        }
    }

    #[test]
    fn strangers_filling_the_advertised_map_give_way_to_a_new_leader() {
        let shared = Shared::default();
        let me = 9;
        if let Ok(mut status) = shared.status.write() {
            status.members = [1, 2, me]
                .map(|id| crate::shared::MemberStatus {
                    id,
                    kind: "voter".into(),
                    ..Default::default()
                })
                .into();
        }
        shared
            .advertised
            .write()
            .unwrap()
            .insert(me, Advertised::default());
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        record_hello(&shared, me, &hello_from(1), at(0)).unwrap();
        // Strangers fill every other place, then one of them speaks again.
        for id in 100..100 + MAX_ADVERTISED as u64 - 2 {
            record_hello(&shared, me, &hello_from(id), at(id)).unwrap();
        }
        record_hello(&shared, me, &hello_from(100), at(1000)).unwrap();
        // A leader that joined after this node: it is recorded, in place of the stranger
        // heard from least recently (101), and the map stays bounded.
        record_hello(&shared, me, &hello_from(500), at(1001)).unwrap();
        let advertised = shared.advertised.read().unwrap();
        assert!(advertised[&500].peer_addr.is_some());
        assert!(!advertised.contains_key(&101));
        assert_eq!(advertised.len(), MAX_ADVERTISED);
        // Members and this node's own entry are never evicted.
        assert!(advertised.contains_key(&1) && advertised.contains_key(&me));
        assert!(advertised.contains_key(&100));
        drop(advertised);
        // A stranger too many once every place is a member's is refused.
        let full: Vec<u64> = (1..=MAX_ADVERTISED as u64).collect();
        let shared_full = Shared::default();
        shared_full.status.write().unwrap().members = full
            .iter()
            .map(|&id| crate::shared::MemberStatus {
                id,
                ..Default::default()
            })
            .collect();
        for &id in &full {
            record_hello(&shared_full, me, &hello_from(id), at(id)).unwrap();
        }
        assert!(record_hello(&shared_full, me, &hello_from(600), at(2000)).is_err());
    }
}
