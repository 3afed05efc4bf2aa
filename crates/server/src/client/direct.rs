//! The driver writing a reply to the client's socket itself. While a plain TCP connection's
//! writer has written everything before a request's reply and waits for that reply alone, it
//! names the request on the connection's [`ReplyLane`]; the driver, answering that request,
//! writes the reply to the socket with a write that never blocks, and the client has it
//! without a wake-up of the connection's task in between (one thread hand-off less on every
//! request's path). The writer still learns of the reply afterwards, to count it answered and
//! to write whatever part the socket did not take, before anything else.
//!
//! Order is kept (Redis's contract: replies come in the order the commands were sent): the
//! driver writes only the reply the writer names, and the writer names one only with nothing
//! of its own to write; both decide under the lane's lock. Over TLS, in subscribed mode, for a
//! transaction's spliced reply, or for a reply the writer rewrites (a lost session's), the
//! reply goes through the writer as before.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use skiff_kv::Reply;
use tokio::sync::oneshot;

use crate::resp;

/// The largest reply the driver writes itself: a larger one is encoded and written by the
/// connection's writer, off the driver thread.
const MAX_DIRECT_REPLY_BYTES: usize = 256 * 1024;

/// The most of a connection's encode buffer kept between replies: a larger reply's memory is
/// given back once written, so idle connections hold little.
const KEPT_ENCODE_BYTES: usize = 16 * 1024;

/// How the driver hands back one request's reply.
#[derive(Debug)]
pub enum ReplyTo {
    /// Through a channel to whoever waits for it.
    Channel(oneshot::Sender<Reply>),
    /// To a client connection, written by the driver itself when the connection allows it.
    Connection(DirectReply),
}

impl ReplyTo {
    /// Hands `reply` back; a receiver that is gone is no error (the client left).
    pub fn send(self, reply: Reply) {
        match self {
            ReplyTo::Channel(sender) => {
                let _ = sender.send(reply);
            }
            ReplyTo::Connection(direct) => direct.send(reply),
        }
    }

    /// Hands `reply` back for the connection's writer to write, never to the socket here.
    pub fn send_to_writer(self, reply: Reply) {
        match self {
            ReplyTo::Channel(sender) => {
                let _ = sender.send(reply);
            }
            ReplyTo::Connection(direct) => {
                let _ = direct.answer.send(Answer::Reply(reply));
            }
        }
    }
}

/// What the writer learns of a reply the driver was asked for.
#[derive(Debug)]
pub(super) enum Answer {
    /// The reply, for the writer to write.
    Reply(Reply),
    /// The driver wrote the reply; the socket did not take these bytes of it (often none).
    Written(Vec<u8>),
}

/// One request's way back to its connection.
#[derive(Debug)]
pub struct DirectReply {
    lane: Arc<ReplyLane>,
    request: u64,
    answer: oneshot::Sender<Answer>,
}

/// A connection's shortcut from the driver to its socket.
#[derive(Debug, Default)]
pub(super) struct ReplyLane {
    state: Mutex<LaneState>,
    /// How many requests were handed to the driver this way: the next one's number (kept
    /// outside the lock, which every request would otherwise take).
    requests: AtomicU64,
}

#[derive(Debug, Default)]
struct LaneState {
    /// A handle on the connection's socket (the same socket, another descriptor); none over
    /// TLS, and none once the connection is closing.
    socket: Option<std::net::TcpStream>,
    /// The request whose reply the writer waits for with nothing else to write.
    waiting_for: Option<u64>,
    /// The encoded reply (kept to reuse its memory).
    out: BytesMut,
}

/// A request handed to the driver through the lane, as the writer waits for it.
pub(super) struct Pending {
    pub(super) request: u64,
    pub(super) answer: oneshot::Receiver<Answer>,
}

impl ReplyLane {
    /// The connection is plain TCP: the driver may write to `socket`, a handle on it.
    pub(super) fn attach(&self, socket: std::net::TcpStream) {
        if let Ok(mut state) = self.state.lock() {
            state.socket = Some(socket);
        }
    }

    /// A request's way back, and what the writer waits on.
    pub(super) fn request(self: &Arc<Self>) -> (DirectReply, Pending) {
        let request = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let (answer, receiver) = oneshot::channel();
        let direct = DirectReply {
            lane: self.clone(),
            request,
            answer,
        };
        let pending = Pending {
            request,
            answer: receiver,
        };
        (direct, pending)
    }

    /// The writer waits for `request`'s reply with nothing else to write.
    pub(super) fn wait_for(&self, request: u64) {
        if let Ok(mut state) = self.state.lock() {
            state.waiting_for = Some(request);
        }
    }

    /// The writer has `request`'s answer, or stopped waiting for it.
    pub(super) fn stop_waiting(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.waiting_for = None;
        }
    }

    /// The connection is closing: the driver's handle must not keep its socket open.
    pub(super) fn close(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.socket = None;
            state.waiting_for = None;
        }
    }
}

impl DirectReply {
    /// Writes the reply to the socket if the writer waits for exactly it, else hands it to
    /// the writer.
    fn send(self, reply: Reply) {
        let answer = match self.write(&reply) {
            Some(rest) => Answer::Written(rest),
            None => Answer::Reply(reply),
        };
        let _ = self.answer.send(answer);
    }

    /// The bytes of the reply the socket did not take, if the driver wrote it.
    fn write(&self, reply: &Reply) -> Option<Vec<u8>> {
        // The writer rewrites this one (and marks the session lost).
        if super::session::explain_changes(reply) || resp::reply_len(reply) > MAX_DIRECT_REPLY_BYTES
        {
            return None;
        }
        let mut state = self.lane.state.lock().ok()?;
        let state = &mut *state;
        if state.waiting_for != Some(self.request) {
            return None;
        }
        let socket = state.socket.as_ref()?;
        state.out.clear();
        resp::write_reply(&mut state.out, reply);
        // The socket is non-blocking (tokio's): a full send buffer answers WouldBlock, and
        // the writer writes the reply instead.
        let written = (&*socket).write(&state.out);
        let rest = written.ok().map(|written| state.out[written..].to_vec());
        // Ten thousand connections must not each keep their largest reply's memory.
        if state.out.capacity() > KEPT_ENCODE_BYTES {
            state.out = BytesMut::new();
        }
        let rest = rest?;
        state.waiting_for = None;
        Some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A lane to one end of a loopback connection (non-blocking, as tokio leaves it), and
    /// the other end.
    fn lane() -> (Arc<ReplyLane>, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (theirs, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let lane = Arc::new(ReplyLane::default());
        lane.attach(ours);
        (lane, theirs)
    }

    fn read(socket: &mut std::net::TcpStream, n: usize) -> Vec<u8> {
        let mut got = vec![0; n];
        socket.read_exact(&mut got).unwrap();
        got
    }

    #[test]
    fn only_the_reply_the_writer_waits_for_is_written_by_the_driver() {
        let (lane, mut client) = lane();
        let (first, mut first_pending) = lane.request();
        let (second, mut second_pending) = lane.request();
        // The writer waits for the first: the second, answered early, goes to the writer.
        lane.wait_for(first_pending.request);
        ReplyTo::Connection(second).send(Reply::Integer(2));
        assert!(matches!(
            second_pending.answer.try_recv(),
            Ok(Answer::Reply(Reply::Integer(2)))
        ));
        ReplyTo::Connection(first).send(Reply::Ok);
        assert!(
            matches!(first_pending.answer.try_recv(), Ok(Answer::Written(rest)) if rest.is_empty())
        );
        assert_eq!(read(&mut client, 5), b"+OK\r\n");
        // Written once: the writer must name the next request before the driver writes again.
        let (third, mut third_pending) = lane.request();
        ReplyTo::Connection(third).send(Reply::Nil);
        assert!(matches!(
            third_pending.answer.try_recv(),
            Ok(Answer::Reply(Reply::Nil))
        ));
    }

    #[test]
    fn a_reply_sent_to_the_writer_is_not_written_even_when_it_is_awaited() {
        let (lane, mut client) = lane();
        let (direct, mut pending) = lane.request();
        lane.wait_for(pending.request);
        ReplyTo::Connection(direct).send_to_writer(Reply::Ok);
        assert!(matches!(
            pending.answer.try_recv(),
            Ok(Answer::Reply(Reply::Ok))
        ));
        client.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        assert!(client.read(&mut byte).is_err(), "nothing was written");
    }

    #[test]
    fn a_closing_connection_and_a_lost_session_go_through_the_writer() {
        let (lane, _client) = lane();
        let (lost, mut lost_pending) = lane.request();
        lane.wait_for(lost_pending.request);
        let expired = Reply::error(skiff_kv::reply::errors::SESSION_EXPIRED);
        ReplyTo::Connection(lost).send(expired.clone());
        assert!(matches!(lost_pending.answer.try_recv(), Ok(Answer::Reply(r)) if r == expired));
        let (late, mut late_pending) = lane.request();
        lane.wait_for(late_pending.request);
        lane.close();
        ReplyTo::Connection(late).send(Reply::Ok);
        assert!(matches!(
            late_pending.answer.try_recv(),
            Ok(Answer::Reply(Reply::Ok))
        ));
    }

    /// Shrinks a socket's buffer, so that a reply of a few hundred KiB does not fit.
    fn small_buffer(socket: &std::net::TcpStream, option: libc::c_int) {
        use std::os::fd::AsRawFd;
        let bytes: libc::c_int = 4096;
        // SAFETY: a valid descriptor, and a pointer to an int of the size given.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                std::ptr::addr_of!(bytes).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0);
    }

    #[test]
    fn what_the_socket_does_not_take_is_left_to_the_writer_and_a_large_reply_to_its_task() {
        let (lane, mut client) = lane();
        if let Some(socket) = &lane.state.lock().unwrap().socket {
            small_buffer(socket, libc::SO_SNDBUF);
        }
        small_buffer(&client, libc::SO_RCVBUF);
        let big = vec![7u8; MAX_DIRECT_REPLY_BYTES - 64];
        let (direct, mut pending) = lane.request();
        lane.wait_for(pending.request);
        ReplyTo::Connection(direct).send(Reply::Bulk(big.clone()));
        let Ok(Answer::Written(rest)) = pending.answer.try_recv() else {
            panic!("the driver began the reply");
        };
        assert!(!rest.is_empty(), "a small send buffer took all of it");
        let mut expected = BytesMut::new();
        resp::write_reply(&mut expected, &Reply::Bulk(big));
        let taken = expected.len() - rest.len();
        let mut got = read(&mut client, taken);
        got.extend_from_slice(&rest);
        assert_eq!(got, &expected[..]);
        // Larger than the driver writes itself.
        let (direct, mut pending) = lane.request();
        lane.wait_for(pending.request);
        let huge = Reply::Bulk(vec![7u8; MAX_DIRECT_REPLY_BYTES]);
        ReplyTo::Connection(direct).send(huge.clone());
        assert!(matches!(pending.answer.try_recv(), Ok(Answer::Reply(r)) if r == huge));
    }
}
