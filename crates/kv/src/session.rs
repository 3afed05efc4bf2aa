//! Client sessions: exactly-once writes (thesis §6.3).
//!
//! A client retries a request whose answer it did not get, and the first attempt may have
//! been committed and applied all the same. So each write carries a [`SessionRequest`]: the
//! client's id and a sequence number that grows by at least one with each new request. The
//! session table remembers, per client, the last sequence applied and its reply:
//!
//! - the same sequence again is a retry: the remembered reply is returned and nothing is
//!   applied a second time;
//! - an older sequence is refused ([`STALE_REQUEST`]): its reply is no longer known;
//! - a newer sequence is applied and becomes the remembered one;
//! - a client the table does not know starts a session with sequence 1; any other sequence
//!   is refused ([`SESSION_EXPIRED`]), because the table may have forgotten (expired or
//!   evicted) that client's session, and applying the request could apply it twice.
//!
//! The table is bounded, and what it forgets is a function of the log alone, so every
//! replica forgets the same sessions at the same entry: a session whose last request is more
//! than `session_expiry_entries` entries behind the entry being applied expires, and opening
//! a session when `max_sessions` are open evicts the one whose last request has the lowest
//! log index. (Every entry touches at most one session, so that index names one session.)
//!
//! A client's very first request is the one case this cannot protect: if its session is
//! forgotten before a retry of sequence 1 arrives, the retry opens a new session and is
//! applied again. Limits much longer than a client's retry period make that impossible in
//! practice.
//!
//! [`STALE_REQUEST`]: crate::reply::errors::STALE_REQUEST
//! [`SESSION_EXPIRED`]: crate::reply::errors::SESSION_EXPIRED

use std::collections::BTreeMap;

use crate::reply::{errors, Reply};

/// The client session a write carries (thesis §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionRequest {
    /// Which client sent the request.
    pub client_id: u64,
    /// The client's request number: 1 for its first request, then increasing; a retry reuses
    /// the number of the request it retries.
    pub sequence: u64,
}

/// What the state machine remembers of one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The highest sequence applied for this client.
    pub last_sequence: u64,
    /// The reply to that request, returned again if the client retries it.
    pub last_reply: Reply,
    /// The log index of the client's last request (applied or retried): the session's
    /// place in the eviction order and the start of its expiry.
    pub last_active_index: u64,
}

/// What to do with a request that carries a session.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Apply it, then [`SessionTable::record`] its reply.
    Apply,
    /// A retry of the last request: answer this, apply nothing.
    Replay(Reply),
    /// Refuse it with this error reply; apply nothing.
    Refuse(Reply),
}

/// The sessions of all known clients, bounded in number and age.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SessionTable {
    /// Sessions by client id.
    sessions: BTreeMap<u64, Session>,
    /// Eviction order: `last_active_index → client_id`.
    /// Invariant: exactly one entry per session, keyed by that session's
    /// `last_active_index`.
    by_activity: BTreeMap<u64, u64>,
}

impl SessionTable {
    /// The session of `client_id`.
    pub(crate) fn get(&self, client_id: u64) -> Option<&Session> {
        self.sessions.get(&client_id)
    }

    /// Every session, by client id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &Session)> {
        self.sessions.iter().map(|(&id, session)| (id, session))
    }

    /// How many sessions are open.
    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Forgets every session idle for more than `expiry_entries` entries before `index`.
    pub(crate) fn expire(&mut self, index: u64, expiry_entries: u64) {
        while let Some((&last_active, &client_id)) = self.by_activity.first_key_value() {
            if index.saturating_sub(last_active) <= expiry_entries {
                break;
            }
            self.remove(last_active, client_id);
        }
    }

    /// Evicts the least recently used sessions until at most `max_sessions` remain.
    pub(crate) fn shrink_to(&mut self, max_sessions: usize) {
        while self.sessions.len() > max_sessions {
            let Some((&last_active, &client_id)) = self.by_activity.first_key_value() else {
                break;
            };
            self.remove(last_active, client_id);
        }
    }

    fn remove(&mut self, last_active: u64, client_id: u64) {
        self.by_activity.remove(&last_active);
        let removed = self.sessions.remove(&client_id);
        assert!(
            removed.is_some(),
            "session table out of step: client {client_id} listed at index {last_active} has no session"
        );
    }

    /// Decides what to do with `request` (§6.3), changing nothing.
    pub(crate) fn admit(&self, request: SessionRequest) -> Admission {
        match self.sessions.get(&request.client_id) {
            Some(session) if request.sequence == session.last_sequence => {
                Admission::Replay(session.last_reply.clone())
            }
            Some(session) if request.sequence < session.last_sequence => {
                Admission::Refuse(Reply::error(errors::STALE_REQUEST))
            }
            Some(_) => Admission::Apply,
            None if request.sequence == 1 => Admission::Apply,
            None => Admission::Refuse(Reply::error(errors::SESSION_EXPIRED)),
        }
    }

    /// Moves `client_id`'s session to `index` in the eviction order (a retry is activity).
    pub(crate) fn touch(&mut self, client_id: u64, index: u64) {
        if let Some(session) = self.sessions.get_mut(&client_id) {
            self.by_activity.remove(&session.last_active_index);
            session.last_active_index = index;
            self.by_activity.insert(index, client_id);
        }
    }

    /// Remembers the reply to `request`, applied at `index`; opening a session when
    /// `max_sessions` are open first evicts the least recently used one.
    pub(crate) fn record(
        &mut self,
        request: SessionRequest,
        index: u64,
        reply: Reply,
        max_sessions: usize,
    ) {
        if !self.sessions.contains_key(&request.client_id) {
            self.shrink_to(max_sessions.saturating_sub(1));
        }
        self.insert(
            request.client_id,
            Session {
                last_sequence: request.sequence,
                last_reply: reply,
                last_active_index: index,
            },
        );
    }

    /// Adds or replaces a session as it is (also used by snapshot restore).
    pub(crate) fn insert(&mut self, client_id: u64, session: Session) {
        if let Some(old) = self.sessions.get(&client_id) {
            self.by_activity.remove(&old.last_active_index);
        }
        let previous = self
            .by_activity
            .insert(session.last_active_index, client_id);
        assert!(
            previous.is_none() || previous == Some(client_id),
            "two sessions active at index {}: clients {previous:?} and {client_id}",
            session.last_active_index
        );
        self.sessions.insert(client_id, session);
    }

    /// Whether an entry at `index` already names a session in the eviction order.
    pub(crate) fn is_active_at(&self, index: u64) -> bool {
        self.by_activity.contains_key(&index)
    }

    /// Checks the invariant on `by_activity`; panics with context if it is broken.
    pub(crate) fn check_invariants(&self, applied_index: u64) {
        assert_eq!(
            self.sessions.len(),
            self.by_activity.len(),
            "session table out of step at applied index {applied_index}"
        );
        for (&index, &client_id) in &self.by_activity {
            let session = self.sessions.get(&client_id);
            assert!(
                session.is_some_and(|s| s.last_active_index == index),
                "client {client_id} listed at index {index} disagrees with its session {session:?}"
            );
            assert!(
                index <= applied_index,
                "client {client_id} active at {index}, after the applied index {applied_index}"
            );
        }
    }
}
