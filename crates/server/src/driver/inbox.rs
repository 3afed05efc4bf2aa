//! How the driver thread waits: for its bounded input queue, for the threads that report back
//! to it (snapshot writer, batch syncer), and for the peer connections it reads
//! itself, all at once in one `epoll` set ([`mio::Poll`]).
//!
//! A frame that arrives from a peer while the driver waits wakes the driver itself, which
//! reads and steps it: no reader task is woken first to hand it over (a thread hand-off,
//! tens of microseconds on a busy machine, on every write's path). Whoever queues an input
//! rings the [`Bell`], which writes to the poll's eventfd only while the driver is parked, so
//! a busy driver costs its senders one atomic load per input.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use mio::{Events, Interest, Poll, Token, Waker};

use super::Input;
use crate::transport::inbound::PeerSocket;

/// The waker's token; peer connections count from 1.
const WAKER: Token = Token(0);
/// Readiness events taken per wait.
const EVENTS: usize = 256;

/// Wakes the driver thread when it is parked.
pub struct Bell {
    /// True while the driver is (about to be) parked in `poll`.
    parked: AtomicBool,
    waker: Waker,
}

impl Bell {
    /// Called after something was queued for the driver: wakes it if it is parked (once per
    /// park, whoever rings first).
    pub fn ring(&self) {
        // Pairs with the fence in [`Inbox::wait`]: either the driver sees what was queued
        // before it parks, or this sees it parked.
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::Relaxed) {
            // A failed wake leaves the driver to its tick's timeout, at most one tick late.
            let _ = self.waker.wake();
        }
    }
}

/// The sending side of the driver's input queue: bounded, and rings the driver's [`Bell`].
#[derive(Clone)]
pub struct ToDriver {
    inputs: Sender<Input>,
    bell: Arc<Bell>,
}

impl ToDriver {
    /// Queues `input` unless the queue is full (or the driver gone), as
    /// [`crossbeam_channel::Sender::try_send`].
    // The same signature as the channel's, so that a refused input comes back to its sender
    // whole (the queue's own `try_send` returns the same value).
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, input: Input) -> Result<(), TrySendError<Input>> {
        self.inputs.try_send(input)?;
        self.bell.ring();
        Ok(())
    }
}

/// The driver's side: its input queue, its poll, and the peer connections it reads.
pub struct Inbox {
    inputs: Receiver<Input>,
    bell: Arc<Bell>,
    poll: Poll,
    events: Events,
    /// The peer connections the driver reads, by token.
    peers: BTreeMap<usize, PeerSocket>,
    next_token: usize,
}

/// A bounded input queue of `capacity` for a driver, and its sending side.
pub fn inbox(capacity: usize) -> io::Result<(ToDriver, Inbox)> {
    let poll = Poll::new()?;
    let bell = Arc::new(Bell {
        parked: AtomicBool::new(false),
        waker: Waker::new(poll.registry(), WAKER)?,
    });
    let (inputs_tx, inputs) = crossbeam_channel::bounded(capacity);
    Ok((
        ToDriver {
            inputs: inputs_tx,
            bell: bell.clone(),
        },
        Inbox {
            inputs,
            bell,
            poll,
            events: Events::with_capacity(EVENTS),
            peers: BTreeMap::new(),
            next_token: 1,
        },
    ))
}

impl Inbox {
    /// The bell, for the threads that report back to the driver on channels of their own.
    pub fn bell(&self) -> Arc<Bell> {
        self.bell.clone()
    }

    /// Waits at most `timeout` for an input, a reader's frame or what `reported` says is
    /// there; at once if a peer connection still has bytes to read.
    pub fn wait(&mut self, timeout: Duration, reported: impl Fn() -> bool) {
        let mut timeout = if self.peers.values().any(PeerSocket::pending) {
            Duration::ZERO
        } else {
            timeout
        };
        if !timeout.is_zero() {
            self.bell.parked.store(true, Ordering::SeqCst);
            // Pairs with the fence in [`Bell::ring`].
            fence(Ordering::SeqCst);
            if !self.inputs.is_empty() || reported() {
                // Not parked after all: a sender needs not ring for what it queues now.
                self.bell.parked.store(false, Ordering::SeqCst);
                timeout = Duration::ZERO;
            }
        }
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                // Not expected of epoll_wait on a valid set; waiting a little instead keeps
                // the loop from spinning, and the inputs are still taken in turn.
                tracing::warn!(%error, "the driver's poll failed");
                std::thread::sleep(timeout.min(Duration::from_millis(1)));
            }
        }
        self.bell.parked.store(false, Ordering::SeqCst);
        for event in self.events.iter() {
            if let Some(peer) = self.peers.get_mut(&event.token().0) {
                peer.mark_readable(event.is_read_closed() || event.is_error());
            }
        }
    }

    /// The next queued input, `Ok(None)` when none is, `Err` once every sender is gone.
    pub fn try_recv(&self) -> Result<Option<Input>, ()> {
        match self.inputs.try_recv() {
            Ok(input) => Ok(Some(input)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(()),
        }
    }

    /// Takes over a peer connection: its frames are read by this thread from now on. A
    /// connection the poll refuses is closed (its peer dials again), and the refusal returned
    /// for the driver to count.
    pub fn adopt(&mut self, mut peer: PeerSocket) -> io::Result<()> {
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(1);
        if let Err(error) =
            self.poll
                .registry()
                .register(peer.stream_mut(), Token(token), Interest::READABLE)
        {
            tracing::warn!(peer = peer.from(), %error, "could not watch a peer connection");
            return Err(error);
        }
        // Bytes may have come before it was registered (registering reports them too, as
        // epoll adds a ready descriptor to its ready list): read it once in any case.
        peer.mark_readable(false);
        self.peers.insert(token, peer);
        Ok(())
    }

    /// The connections, taken out to be read (and given back with [`Inbox::put_back`]).
    pub fn take_peers(&mut self) -> BTreeMap<usize, PeerSocket> {
        std::mem::take(&mut self.peers)
    }

    /// Gives back the connections still open; a closed one's descriptor leaves the poll set as
    /// it is dropped.
    pub fn put_back(&mut self, peers: BTreeMap<usize, PeerSocket>) {
        debug_assert!(self.peers.is_empty());
        self.peers = peers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::AdminRequest;
    use std::time::Instant;

    fn input() -> Input {
        Input::Admin {
            request: AdminRequest::Campaign,
            reply: tokio::sync::oneshot::channel().0,
        }
    }

    #[test]
    fn an_input_wakes_a_parked_driver_and_one_sent_while_it_works_costs_no_wake_up() {
        let (to_driver, mut inbox) = inbox(4).unwrap();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            to_driver.try_send(input()).unwrap();
            to_driver
        });
        let started = Instant::now();
        inbox.wait(Duration::from_secs(60), || false);
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(matches!(inbox.try_recv(), Ok(Some(Input::Admin { .. }))));
        let to_driver = sender.join().unwrap();

        // Sent while the driver is not parked: taken at the next wait without sleeping, and
        // it leaves no wake-up behind, so the wait after that sleeps its full timeout.
        to_driver.try_send(input()).unwrap();
        let started = Instant::now();
        inbox.wait(Duration::from_secs(60), || false);
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(matches!(inbox.try_recv(), Ok(Some(Input::Admin { .. }))));
        let started = Instant::now();
        inbox.wait(Duration::from_millis(100), || false);
        assert!(started.elapsed() >= Duration::from_millis(90));
        assert!(matches!(inbox.try_recv(), Ok(None)));

        // What another thread reported counts as work: no sleep.
        let started = Instant::now();
        inbox.wait(Duration::from_secs(60), || true);
        assert!(started.elapsed() < Duration::from_secs(30));

        drop(to_driver);
        assert!(inbox.try_recv().is_err());
    }

    /// A connection the poll refuses to watch (here: its descriptor is in the set already)
    /// is not kept, and the refusal comes back for the driver to count.
    #[test]
    fn a_peer_connection_the_poll_refuses_is_closed_and_reported() {
        use crate::transport::inbound::tests::connection;
        let (_to_driver, mut inbox) = inbox(4).unwrap();
        let (mut socket, _peer) = connection();
        inbox
            .poll
            .registry()
            .register(socket.stream_mut(), Token(999), Interest::READABLE)
            .expect("registered once");
        assert!(inbox.adopt(socket).is_err());
        assert!(inbox.take_peers().is_empty(), "not kept");
        let (socket, _peer) = connection();
        inbox.adopt(socket).expect("another one is watched");
        assert_eq!(inbox.take_peers().len(), 1);
    }

    /// The peer sent a message, half a frame and its end while the driver was parked: one
    /// readiness event reports all of it, and the read that takes the bytes leaves room in
    /// the buffer, yet the driver reads on to the end (no further event will come) and
    /// drops the connection.
    #[test]
    fn a_peer_that_sends_and_closes_at_once_is_read_to_its_end() {
        use crate::transport::inbound::tests::{connection, message, CLUSTER};
        use crate::transport::inbound::{Turn, MAX_FRAMES_PER_TURN, READ_BYTES};
        let (_to_driver, mut inbox) = inbox(4).unwrap();
        let (socket, mut peer) = connection();
        inbox.adopt(socket).expect("watched");
        let shared = crate::shared::Shared::default();
        let mut scratch = vec![0; READ_BYTES];
        let mut peers = inbox.take_peers();
        for peer in peers.values_mut() {
            assert!(matches!(
                peer.read_turn(&shared, &mut scratch, MAX_FRAMES_PER_TURN, |_| {}),
                Ok(Turn::Open)
            ));
        }
        inbox.put_back(peers);
        inbox.wait(Duration::from_millis(50), || false);
        let mut out = Vec::new();
        crate::transport::put_message(&mut out, CLUSTER, &message(1));
        crate::transport::put_message(&mut out, CLUSTER, &message(2));
        out.pop();
        std::io::Write::write_all(&mut peer, &out).unwrap();
        drop(peer);
        std::thread::sleep(Duration::from_millis(20));
        let mut stepped = 0;
        let mut ended = None;
        for _ in 0..10 {
            inbox.wait(Duration::from_millis(200), || false);
            let mut peers = inbox.take_peers();
            peers.retain(|_, peer| {
                match peer.read_turn(&shared, &mut scratch, MAX_FRAMES_PER_TURN, |_| stepped += 1) {
                    Ok(Turn::Open) => true,
                    Ok(Turn::Closed) => false,
                    Err(error) => {
                        ended = Some(error);
                        false
                    }
                }
            });
            inbox.put_back(peers);
            if ended.is_some() {
                break;
            }
        }
        assert_eq!(stepped, 1);
        assert!(
            matches!(&ended, Some(crate::transport::FrameError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof),
            "{ended:?}"
        );
    }
}
