//! An incoming plain TCP peer connection read by the driver thread itself, once its Hello is
//! accepted ([`crate::driver::inbox`]): the same frames, checks, drops and logs as the reader
//! task's ([`super::relay_messages`]), read without ever blocking and a bounded amount per
//! turn, so a peer that floods frames cannot hold up the driver's other inputs or its ticks.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use skiff_node::Envelope;
use tokio::sync::OwnedSemaphorePermit;

use super::{check_message, take_frame, touch_heard, FrameError, TransportOptions};
use crate::shared::Shared;

/// Frames taken from one connection per turn of the driver at most.
pub const MAX_FRAMES_PER_TURN: usize = 64;
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

    /// A readiness event came.
    pub fn mark_readable(&mut self) {
        self.pending = true;
    }

    /// Reads what the socket holds, up to this turn's budget, never blocking, and hands each
    /// message to `step` in the order sent; while this node is cut off (the live view's
    /// fault injection) messages are dropped and counted instead. `scratch` is the driver's
    /// read buffer. An error means the connection must be closed; the caller logs it with
    /// [`PeerSocket::refused`].
    pub fn read_turn(
        &mut self,
        shared: &Shared,
        scratch: &mut [u8],
        mut step: impl FnMut(Envelope),
    ) -> Result<Turn, FrameError> {
        if !self.pending {
            return Ok(Turn::Open);
        }
        let (mut frames, mut bytes) = (0, 0);
        // A read that filled less than the scratch buffer took all the socket held: the
        // next byte to arrive raises a new readiness event (as tokio assumes on Linux), so
        // no further read is spent to see it fail.
        let mut drained = false;
        loop {
            if frames >= MAX_FRAMES_PER_TURN || bytes >= MAX_READ_BYTES_PER_TURN {
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
            if drained {
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
