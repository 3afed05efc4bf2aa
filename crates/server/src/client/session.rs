//! A connection's exactly-once session (thesis §6.3): the connection's writes carry a client
//! id and numbers 1, 2, 3…, so the node can send a write again after a leader change and the
//! state machine applies it once. Reads carry none.
//!
//! The id is 64 random bits from the operating system, so it is unique across the cluster
//! and across restarts without coordination. With each write goes the lowest sequence whose
//! reply the connection still waits for: replies come back in request order, so a write is
//! answered once as many driver requests as came up to it are answered.
//!
//! The state machine remembers the replies of a session's last `session_window_requests`
//! writes, so a copy the node sends again is answered from that window only while the
//! write is among them: a connection never has more writes in flight than the window holds
//! (the next one waits for the oldest to be answered, which keeps the connection's order).
//! With more, a write applied and then pushed out of the window by the writes behind it
//! would be answered "stale" when its node sent it again after a leader change.
//!
//! A connection keeps its session however long it is idle: a write sent with nothing
//! before it awaited starts the session afresh if the state machine forgot it meanwhile
//! (idle past its expiry, or evicted), so that is not a refusal the client meets. Only a
//! write its node had to send again, whose session the state machine forgot in the
//! meantime, is refused, because an earlier copy may have been applied before the session
//! was forgotten: the client hears [`SESSION_LOST`] (the outcome is unknown), and the
//! connection's next write starts a new session.

use std::collections::VecDeque;

use skiff_kv::reply::errors;
use skiff_kv::Reply;
use skiff_node::ClientSession;

/// What a client hears when the cluster forgot its session while its node sent a write
/// again: an earlier copy may have been applied.
pub(super) const SESSION_LOST: &str = "ERR the cluster forgot this connection's session while the write was sent again after a leader change; the write may or may not have been applied";

/// The session of one connection.
#[derive(Debug)]
pub(super) struct WriteSession {
    client_id: u64,
    /// The sequence of the last write sent (0: none yet).
    last_sequence: u64,
    /// The writes not known to be answered: the number of the driver request that carried
    /// each (counted from 0 on the connection) and its sequence, oldest first. At most the
    /// connection's requests in flight, and never more than `window`.
    in_flight: VecDeque<(u64, u64)>,
    /// How many replies of a session the state machine keeps (its
    /// `session_window_requests`).
    window: usize,
}

impl Default for WriteSession {
    fn default() -> Self {
        WriteSession {
            client_id: rand::random(),
            last_sequence: 0,
            in_flight: VecDeque::new(),
            window: skiff_kv::KvConfig::default().session_window_requests,
        }
    }
}

impl WriteSession {
    /// Forgets the writes among the first `answered` driver requests.
    fn forget_answered(&mut self, answered: u64) {
        while self
            .in_flight
            .front()
            .is_some_and(|&(sent_as, _)| sent_as < answered)
        {
            self.in_flight.pop_front();
        }
    }

    /// How many driver requests must be answered before another write may go, when
    /// `answered` have been: `None` while fewer writes than the window are in flight,
    /// otherwise up to and including the oldest write's.
    pub(super) fn must_wait_for(&mut self, answered: u64) -> Option<u64> {
        self.forget_answered(answered);
        if self.in_flight.len() < self.window {
            return None;
        }
        self.in_flight.front().map(|&(sent_as, _)| sent_as + 1)
    }

    /// The session of the write sent as driver request `request` (counted from 0), when
    /// `answered` driver requests of the connection have been answered; `lost` when the
    /// cluster refused a write for not knowing the session.
    /// The caller waited while [`WriteSession::must_wait_for`] said so.
    pub(super) fn next(&mut self, request: u64, answered: u64, lost: bool) -> ClientSession {
        self.forget_answered(answered);
        if lost {
            *self = WriteSession {
                window: self.window,
                ..WriteSession::default()
            };
        }
        debug_assert!(
            self.in_flight.len() < self.window,
            "a write sent with the session window full"
        );
        self.last_sequence += 1;
        self.in_flight.push_back((request, self.last_sequence));
        let lowest_unanswered = self.in_flight.front().map_or(self.last_sequence, |w| w.1);
        ClientSession {
            client_id: self.client_id,
            sequence: self.last_sequence,
            lowest_unanswered,
            resubmitted: false,
            proposed_after: 0,
        }
    }
}

/// Whether [`explain`] rewrites `reply`.
pub(super) fn explain_changes(reply: &Reply) -> bool {
    matches!(reply, Reply::Error(text) if text == errors::SESSION_EXPIRED)
}

/// The client's reply for what the driver answered: a session the cluster does not know in
/// plain words, and whether that was the answer.
pub(super) fn explain(reply: Reply) -> (Reply, bool) {
    if explain_changes(&reply) {
        (Reply::error(SESSION_LOST), true)
    } else {
        (reply, false)
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
        let first = session.next(0, 0, false);
        assert_eq!((first.sequence, first.lowest_unanswered), (1, 1));
        // A read went as request 1; writes as 2 and 3, nothing answered yet.
        assert_eq!(session.next(2, 0, false).lowest_unanswered, 1);
        let third = session.next(3, 0, false);
        assert_eq!((third.sequence, third.lowest_unanswered), (3, 1));
        // Requests 0 to 2 answered: write 3 (request 3) is the lowest still waited for.
        let fourth = session.next(4, 3, false);
        assert_eq!((fourth.sequence, fourth.lowest_unanswered), (4, 3));
        assert_eq!(fourth.client_id, first.client_id);
    }

    /// A connection with nothing in flight keeps its session: its next write waits for
    /// nothing below it, so it starts the session afresh if the cluster forgot it.
    #[test]
    fn an_idle_connection_keeps_its_session() {
        let mut session = WriteSession::default();
        let first = session.next(0, 0, false);
        let next = session.next(1, 1, false);
        assert_eq!(next.client_id, first.client_id);
        assert_eq!((next.sequence, next.lowest_unanswered), (2, 2));
    }

    /// With the window full, the next write waits for the oldest write in flight to be
    /// answered, whatever was answered before it; once it is, the write goes with the next
    /// sequence and the window holds the newest `window` writes again.
    #[test]
    fn no_more_writes_are_in_flight_than_the_window_keeps() {
        let mut session = WriteSession {
            window: 3,
            ..WriteSession::default()
        };
        // A read as request 0, then writes as requests 1, 2 and 3.
        for request in 1..=3 {
            assert_eq!(session.must_wait_for(0), None);
            session.next(request, 0, false);
        }
        assert_eq!(session.must_wait_for(0), Some(2));
        // The read answered: the oldest write (request 1) still is not.
        assert_eq!(session.must_wait_for(1), Some(2));
        assert_eq!(session.must_wait_for(2), None);
        let fourth = session.next(4, 2, false);
        assert_eq!((fourth.sequence, fourth.lowest_unanswered), (4, 2));
        assert_eq!(session.must_wait_for(2), Some(3));
    }

    /// The window the connection keeps to is the state machine's, so a connection's whole
    /// pipeline of writes can be answered from it.
    #[test]
    fn the_connection_keeps_to_the_state_machines_window() {
        let session = WriteSession::default();
        assert_eq!(
            session.window,
            skiff_kv::KvConfig::default().session_window_requests
        );
        assert!(session.window > 0);
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
        let first = session.next(0, 0, false);
        session.next(1, 0, false);
        let renewed = session.next(2, 1, true);
        assert_ne!(renewed.client_id, first.client_id);
        assert_eq!((renewed.sequence, renewed.lowest_unanswered), (1, 1));
    }
}
