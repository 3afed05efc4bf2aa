//! A connection's exactly-once session (thesis §6.3): the connection's writes carry a client
//! id and numbers 1, 2, 3…, so the node can send a write again after a leader change and the
//! state machine applies it once. Reads carry none.
//!
//! The id is 64 random bits from the operating system, so it is unique across the cluster
//! and across restarts without coordination. With each write goes the lowest sequence whose
//! reply the connection still waits for: replies come back in request order, so a write is
//! answered once as many driver requests as came up to it are answered.
//!
//! A connection that has no write in flight and sent none for [`QUIET_RENEW`] starts a new
//! session at its next write: nothing of the old one can be retried any more, and a session
//! the state machine forgot meanwhile (idle past its expiry, or evicted) is not a refusal
//! the client meets. A write the state machine refuses because it does not know the session
//! — forgotten while writes were in flight, which takes more clients than the table's
//! `max_sessions` or a write in flight across its expiry, or never known because every
//! earlier write was refused before it reached the log — is not applied, rather than
//! applied twice: the client hears [`SESSION_LOST`], and the connection's next write starts
//! a new session.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use skiff_kv::reply::errors;
use skiff_kv::Reply;
use skiff_node::ClientSession;

/// How long a connection with nothing in flight waits before its next write starts a new
/// session.
pub(super) const QUIET_RENEW: Duration = Duration::from_secs(1);

/// What a client hears when the cluster forgot its session with writes in flight.
pub(super) const SESSION_LOST: &str = "ERR the cluster does not know this connection's session (forgotten, or never reached by an earlier write); the write was not applied; retry it";

/// The session of one connection.
#[derive(Debug)]
pub(super) struct WriteSession {
    client_id: u64,
    /// The sequence of the last write sent (0: none yet).
    last_sequence: u64,
    /// The writes not known to be answered: the number of the driver request that carried
    /// each (counted from 0 on the connection) and its sequence, oldest first. At most the
    /// connection's requests in flight, plus the one being sent.
    in_flight: VecDeque<(u64, u64)>,
    /// When the last write was sent.
    last_sent: Option<Instant>,
}

impl Default for WriteSession {
    fn default() -> Self {
        WriteSession {
            client_id: rand::random(),
            last_sequence: 0,
            in_flight: VecDeque::new(),
            last_sent: None,
        }
    }
}

impl WriteSession {
    /// The session of the write sent as driver request `request` (counted from 0), when
    /// `answered` driver requests of the connection have been answered; `lost` when the
    /// cluster refused a write for not knowing the session.
    pub(super) fn next(
        &mut self,
        request: u64,
        answered: u64,
        lost: bool,
        now: Instant,
    ) -> ClientSession {
        while self
            .in_flight
            .front()
            .is_some_and(|&(sent_as, _)| sent_as < answered)
        {
            self.in_flight.pop_front();
        }
        let quiet = self
            .last_sent
            .is_some_and(|at| now.saturating_duration_since(at) >= QUIET_RENEW);
        if lost || self.in_flight.is_empty() && quiet {
            *self = WriteSession::default();
        }
        self.last_sequence += 1;
        self.last_sent = Some(now);
        self.in_flight.push_back((request, self.last_sequence));
        let lowest_unanswered = self.in_flight.front().map_or(self.last_sequence, |w| w.1);
        ClientSession {
            client_id: self.client_id,
            sequence: self.last_sequence,
            lowest_unanswered,
        }
    }
}

/// The client's reply for what the driver answered: a session the cluster does not know in
/// plain words, and whether that was the answer.
pub(super) fn explain(reply: Reply) -> (Reply, bool) {
    match &reply {
        Reply::Error(text) if text == errors::SESSION_EXPIRED => (Reply::error(SESSION_LOST), true),
        _ => (reply, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pipelined writes carry increasing sequences and the lowest one still unanswered; as
    /// replies come back (in order) the lowest moves up.
    #[test]
    fn pipelined_writes_carry_the_lowest_unanswered_sequence() {
        let mut session = WriteSession::default();
        let now = Instant::now();
        let first = session.next(0, 0, false, now);
        assert_eq!((first.sequence, first.lowest_unanswered), (1, 1));
        // A read went as request 1; writes as 2 and 3, nothing answered yet.
        assert_eq!(session.next(2, 0, false, now).lowest_unanswered, 1);
        let third = session.next(3, 0, false, now);
        assert_eq!((third.sequence, third.lowest_unanswered), (3, 1));
        // Requests 0 to 2 answered: write 3 (request 3) is the lowest still waited for.
        let fourth = session.next(4, 3, false, now);
        assert_eq!((fourth.sequence, fourth.lowest_unanswered), (4, 3));
        assert_eq!(fourth.client_id, first.client_id);
    }

    /// A connection quiet for QUIET_RENEW with nothing in flight starts a new session at 1;
    /// one with a write still in flight keeps its session however long it waits.
    #[test]
    fn a_quiet_connection_starts_a_new_session() {
        let mut session = WriteSession::default();
        let start = Instant::now();
        let first = session.next(0, 0, false, start);
        let later = start + QUIET_RENEW * 2;
        let waiting = session.next(1, 0, false, later);
        assert_eq!(waiting.client_id, first.client_id, "write 1 is in flight");
        let renewed = session.next(2, 2, false, later + QUIET_RENEW);
        assert_ne!(renewed.client_id, first.client_id);
        assert_eq!((renewed.sequence, renewed.lowest_unanswered), (1, 1));
    }

    /// A write refused for an unknown session is explained, and the next write, even with
    /// others in flight, starts a new session at 1.
    #[test]
    fn a_session_the_cluster_does_not_know_is_explained_and_replaced() {
        let (reply, lost) = explain(Reply::error(errors::SESSION_EXPIRED));
        assert_eq!(reply, Reply::error(SESSION_LOST));
        assert!(lost);
        assert_eq!(explain(Reply::Integer(3)), (Reply::Integer(3), false));
        let mut session = WriteSession::default();
        let now = Instant::now();
        let first = session.next(0, 0, false, now);
        session.next(1, 0, false, now);
        let renewed = session.next(2, 1, true, now);
        assert_ne!(renewed.client_id, first.client_id);
        assert_eq!((renewed.sequence, renewed.lowest_unanswered), (1, 1));
    }
}
