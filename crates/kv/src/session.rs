//! Client sessions: exactly-once writes (thesis §6.3).
//!
//! A client retries a request whose answer it did not get, and the first attempt may have
//! been committed and applied all the same. So each write carries a [`SessionRequest`]: the
//! client's id, a sequence number that grows with each new request, and the lowest sequence
//! the client still waits for (every request below it has had its answer). A client that
//! pipelines has several requests in flight, which may reach the log in another order than
//! sent (one is re-submitted after a leader change while a later one committed), so the
//! session table remembers, per client, the replies of a bounded window of sequences:
//!
//! - a sequence whose reply is remembered is a retry: the reply is returned again and nothing
//!   is applied a second time;
//! - a sequence at or below the highest applied one whose reply is not remembered is
//!   refused ([`STALE_REQUEST`]): the window dropped it, or the client gave up on it and a
//!   later one was applied; it is never applied now;
//! - a session applies its sequences in order: the next one is applied when every sequence
//!   below it is applied or below its floor (the client no longer waits for it); one that
//!   arrives ahead of a gap is refused ([`OUT_OF_ORDER`], not applied) and its node sends it
//!   again once the earlier ones are resolved. An applied request's reply is remembered, the
//!   window's floor rises to the lowest sequence the client waits for, and, past
//!   `session_window_requests` replies, the oldest go;
//! - a client the table does not know starts a session with a request sent for the first
//!   time (nothing below it awaited). A request its node sent again
//!   ([`SessionRequest::resubmitted`]) starts one too when no earlier copy can have been
//!   applied and then forgotten: every copy sits above the commit index its node knew when
//!   it first sent it ([`SessionRequest::proposed_after`], Leader Completeness, §5.4; 0,
//!   from an older request, says nothing), and the table forgot no session active after
//!   that index (it keeps the highest index of a forgotten session's last request).
//!   Otherwise it is refused ([`SESSION_EXPIRED`]):
//!   the table may have forgotten that client's session after applying an earlier copy,
//!   so its outcome is unknown.
//!
//! The table is bounded, and what it forgets is a function of the log alone, so every
//! replica forgets the same sessions at the same entry. Idleness is measured in log time
//! (the leaders' stamps, which never decrease along the log), not in entries, so a busy
//! cluster does not forget a quiet client sooner than an idle one:
//!
//! - a session whose last request is at least `session_expiry_ms` of log time before the
//!   entry being applied expires;
//! - opening a session when `max_sessions` are open evicts the least recently active one
//!   (the lowest log index of a last request; every entry touches at most one session, so
//!   that index names one session), but only if it has been idle at least
//!   `session_evict_idle_ms`: a client with a write in flight is never evicted by others'
//!   churn. When even the least recently active session is busier than that, the new
//!   session's first write is refused ([`TOO_MANY_SESSIONS`], not applied) and the table
//!   is unchanged.
//!
//! Remembered replies are bounded in bytes per session (`session_reply_bytes`) and in total
//! (`session_table_reply_bytes`): a reply that fits neither is remembered as "applied, reply
//! not kept": the empty error, which no command answers, replayed as [`REPLY_NOT_KEPT`].
//! The marker counts one word against both budgets; it is stored even when they are spent
//! (the sequence must stay known as applied), so a budget is exceeded by at most one word
//! per remembered sequence.
//!
//! [`OUT_OF_ORDER`]: crate::reply::errors::OUT_OF_ORDER
//! [`STALE_REQUEST`]: crate::reply::errors::STALE_REQUEST
//! [`SESSION_EXPIRED`]: crate::reply::errors::SESSION_EXPIRED
//! [`TOO_MANY_SESSIONS`]: crate::reply::errors::TOO_MANY_SESSIONS
//! [`REPLY_NOT_KEPT`]: crate::reply::errors::REPLY_NOT_KEPT

use std::collections::BTreeMap;
use std::sync::Arc;

use imbl::OrdMap;

use crate::reply::{errors, Reply};

mod replies;

pub use replies::Replies;

/// The client session a write carries (thesis §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionRequest {
    /// Which client sent the request.
    pub client_id: u64,
    /// The client's request number: 1 for its first request, then increasing; a retry reuses
    /// the number of the request it retries.
    pub sequence: u64,
    /// The lowest sequence whose answer the client still waits for (at most `sequence`):
    /// the replies of every request below it may be forgotten.
    pub lowest_unanswered: u64,
    /// An earlier copy of this request may already be in the log (the node sends it again
    /// after a leader change lost its outcome): a client the table does not know is then
    /// one whose session was forgotten, and the request is not applied as a first one.
    pub resubmitted: bool,
    /// A log index committed before the request was first sent (the commit index its node
    /// knew then; copies sent again keep it): every copy of the request sits above it
    /// (§5.4), so a table that forgot no session active after it never applied one. 0 says
    /// nothing: such a copy never starts a session.
    pub proposed_after: u64,
}

impl SessionRequest {
    /// The request of a client with nothing else in flight: it waits only for `sequence`.
    pub fn sequential(client_id: u64, sequence: u64) -> SessionRequest {
        SessionRequest {
            client_id,
            sequence,
            lowest_unanswered: sequence,
            resubmitted: false,
            proposed_after: 0,
        }
    }

    /// [`lowest_unanswered`](Self::lowest_unanswered) as the table takes it: never above the
    /// sequence itself (a client waits at least for the request it sends).
    fn floor(&self) -> u64 {
        self.lowest_unanswered.min(self.sequence)
    }
}

/// What the state machine remembers of one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The replies of the requests applied at or above `lowest_kept`, by sequence.
    /// Invariant: never empty, every sequence at least `lowest_kept`, at most
    /// `session_window_requests` of them.
    pub replies: Replies,
    /// The window's floor: a request below it is stale.
    pub lowest_kept: u64,
    /// The log index of the client's last request (applied or retried): the session's
    /// place in the eviction order.
    pub last_active_index: u64,
    /// The log time (Unix ms) of the client's last request: where its idleness, which
    /// decides expiry and whether it may be evicted, is counted from.
    pub last_active_ms: u64,
}

impl Session {
    /// The highest sequence applied for this client.
    pub fn last_sequence(&self) -> u64 {
        self.replies.last_sequence().unwrap_or(self.lowest_kept)
    }

    /// Raises the floor to `floor` and keeps at most `window` replies, dropping the oldest;
    /// returns the bytes of the replies dropped.
    fn slide(&mut self, floor: u64, window: usize) -> usize {
        let mut dropped_bytes = 0usize;
        if floor > self.lowest_kept {
            self.lowest_kept = floor;
            // One by one from the front: the usual case is a single reply (the client's
            // previous request).
            while let Some((_, reply)) = self.replies.pop_first_below(floor) {
                dropped_bytes = dropped_bytes.saturating_add(reply_bytes(&reply));
            }
        }
        while self.replies.len() > window.max(1) {
            let (dropped, reply) = self.replies.pop_first().expect("longer than the window");
            self.lowest_kept = dropped + 1;
            dropped_bytes = dropped_bytes.saturating_add(reply_bytes(&reply));
        }
        dropped_bytes
    }

    /// The bytes its remembered replies are counted as.
    fn reply_bytes(&self) -> usize {
        self.replies.values().map(reply_bytes).sum()
    }
}

/// What to do with a request that carries a session.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Apply it, then [`SessionTable::record`] its reply.
    Apply,
    /// A retry of a request whose reply is in the window: answer this, apply nothing.
    Replay(Reply),
    /// Refuse it with this error reply; apply nothing.
    Refuse(Reply),
}

/// The bounds of the session table, from [`KvConfig`](crate::KvConfig).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SessionLimits {
    /// At most this many sessions.
    pub max_sessions: usize,
    /// Replies one session remembers at most.
    pub window: usize,
    /// A session idle this long (log time) may be evicted for a new one.
    pub evict_idle_ms: u64,
}

/// The sessions of all known clients, bounded in number and age.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SessionTable {
    /// What a snapshot records: the sessions and how far the table forgot.
    recorded: RecordedSessions,
    /// Eviction order: `last_active_index → client_id`. Every request moves one session
    /// from near the front to the back, so this is an ordinary B-tree, cheap at both ends;
    /// a snapshot does not need it (it is each session's `last_active_index`, read back).
    /// Invariant: exactly one entry per session, keyed by that session's
    /// `last_active_index`, holding its `last_active_ms` too, so that expiry and eviction,
    /// which look at the front on every entry, read no session.
    by_activity: BTreeMap<u64, Active>,
    /// The bytes of every session's remembered replies, markers included.
    /// Invariant: the sum of [`reply_bytes`] over every remembered reply.
    reply_bytes: usize,
}

/// A session's place in the eviction order: whose it is and when, in log time, it was last
/// active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Active {
    client_id: u64,
    at_ms: u64,
}

/// The part of a [`SessionTable`] a snapshot records; a copy of it
/// ([`SessionTable::freeze`]) is O(1) and stays as it was while the table goes on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecordedSessions {
    /// Sessions by client id. A persistent map, as the keyspace's: a copy for a snapshot is
    /// O(1), and a session changed afterwards is copied once (its window of replies), the
    /// map nodes on its path too.
    sessions: OrdMap<u64, Arc<Session>>,
    /// The highest `last_active_index` of any session the table forgot (expired, evicted or
    /// dropped at restore), 0 if none: a session active only after it was never forgotten.
    forgotten_through: u64,
}

impl RecordedSessions {
    /// Every session, by client id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &Session)> {
        self.sessions
            .iter()
            .map(|(&id, session)| (id, session.as_ref()))
    }

    /// How many sessions there are.
    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    /// The highest log index at which a session the table forgot was last active (0 if it
    /// forgot none).
    pub(crate) fn forgotten_through(&self) -> u64 {
        self.forgotten_through
    }
}

/// The byte budgets of remembered replies, from [`KvConfig`](crate::KvConfig).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReplyBudgets {
    /// Bytes one session's replies the client still waits for may take.
    pub session_bytes: usize,
    /// Bytes every session's replies may take together.
    pub table_bytes: usize,
}

impl SessionTable {
    /// The sessions as they are now, for a snapshot: O(1).
    pub(crate) fn freeze(&self) -> RecordedSessions {
        self.recorded.clone()
    }

    /// The sessions and how far the table forgot, as a snapshot records them.
    pub(crate) fn recorded(&self) -> &RecordedSessions {
        &self.recorded
    }

    /// The session of `client_id`.
    pub(crate) fn get(&self, client_id: u64) -> Option<&Session> {
        self.recorded.sessions.get(&client_id).map(Arc::as_ref)
    }

    /// How many sessions are open.
    pub(crate) fn len(&self) -> usize {
        self.recorded.len()
    }

    /// Raises [`forgotten_through`](RecordedSessions::forgotten_through) to `index` (a restored
    /// snapshot's, or for a snapshot that did not record it, its applied index).
    pub(crate) fn forgot_through(&mut self, index: u64) {
        self.recorded.forgotten_through = self.recorded.forgotten_through.max(index);
    }

    /// The bytes of every remembered reply, markers included.
    pub(crate) fn reply_bytes(&self) -> usize {
        self.reply_bytes
    }

    /// Forgets every session idle for at least `expiry_ms` of log time at `now_ms`. The
    /// eviction order is also the order of last activity in log time (stamps never decrease
    /// along the log), so the idlest come first.
    pub(crate) fn expire(&mut self, now_ms: u64, expiry_ms: u64) {
        while let Some((&last_active, &active)) = self.by_activity.first_key_value() {
            if now_ms.saturating_sub(active.at_ms) < expiry_ms {
                break;
            }
            self.remove(last_active, active.client_id);
        }
    }

    /// Whether a new session may open at `now_ms`: there is room, or the least recently
    /// active session has been idle long enough to be evicted for it.
    fn has_room(&self, limits: SessionLimits, now_ms: u64) -> bool {
        if self.recorded.sessions.len() < limits.max_sessions {
            return true;
        }
        self.by_activity
            .first_key_value()
            .is_some_and(|(_, active)| now_ms.saturating_sub(active.at_ms) >= limits.evict_idle_ms)
    }

    /// Evicts the least recently used sessions until at most `max_sessions` remain.
    pub(crate) fn shrink_to(&mut self, max_sessions: usize) {
        while self.recorded.sessions.len() > max_sessions {
            let Some((&last_active, &active)) = self.by_activity.first_key_value() else {
                break;
            };
            self.remove(last_active, active.client_id);
        }
    }

    /// Keeps at most `window` replies in every session, dropping the oldest.
    pub(crate) fn shrink_windows(&mut self, window: usize) {
        let clients: Vec<u64> = self.recorded.sessions.keys().copied().collect();
        for client_id in clients {
            if let Some(session) = self.recorded.sessions.get_mut(&client_id) {
                let session = Arc::make_mut(session);
                let dropped = session.slide(session.lowest_kept, window);
                self.reply_bytes = self.reply_bytes.saturating_sub(dropped);
            }
        }
    }

    /// Forgets `client_id`'s session, last active at `last_active`.
    fn remove(&mut self, last_active: u64, client_id: u64) {
        self.by_activity.remove(&last_active);
        let removed = self.recorded.sessions.remove(&client_id);
        let Some(removed) = removed else {
            panic!("session table out of step: client {client_id} listed at index {last_active} has no session");
        };
        self.reply_bytes = self.reply_bytes.saturating_sub(removed.reply_bytes());
        self.recorded.forgotten_through = self.recorded.forgotten_through.max(last_active);
    }

    /// Decides what to do with `request` (§6.3), changing nothing. A session applies its
    /// requests in sequence order: `s` only once every sequence below it is applied or below
    /// the request's floor (the client stopped waiting for it).
    pub(crate) fn admit(
        &self,
        request: SessionRequest,
        index: u64,
        limits: SessionLimits,
        now_ms: u64,
    ) -> Admission {
        // §6.3: sequences start at 1; 0 is no client's request.
        if request.sequence == 0 {
            return Admission::Refuse(Reply::error(errors::STALE_REQUEST));
        }
        let in_order = |highest_applied: u64| {
            request.sequence == highest_applied + 1 || request.floor() == request.sequence
        };
        match self.recorded.sessions.get(&request.client_id) {
            Some(session) => {
                // §6.3: a retry of an applied request gets its first reply, applies nothing.
                if let Some(reply) = session.replies.get(request.sequence) {
                    Admission::Replay(if *reply == not_kept() {
                        Reply::error(errors::REPLY_NOT_KEPT)
                    } else {
                        reply.clone()
                    })
                } else if request.sequence <= session.last_sequence() {
                    // Below the window: applied before, or given up on by the client and
                    // passed over; either way it is never applied now.
                    Admission::Refuse(Reply::error(errors::STALE_REQUEST))
                } else if in_order(session.last_sequence()) {
                    Admission::Apply
                } else {
                    Admission::Refuse(Reply::error(errors::OUT_OF_ORDER))
                }
            }
            // §6.3, §5.4: any copy of a re-sent request sits above `proposed_after` (Leader
            // Completeness), so an unknown client's copy may have been applied only if the
            // table forgot a session active after it: applying it then could apply it twice.
            // 0 says nothing (an older request, or nothing committed yet), and a copy at or
            // below its own `proposed_after` was not sent by a node (forged or damaged):
            // never a first one.
            None if request.resubmitted
                && (request.proposed_after == 0
                    || request.proposed_after >= index
                    || self.recorded.forgotten_through > request.proposed_after) =>
            {
                Admission::Refuse(Reply::error(errors::SESSION_EXPIRED))
            }
            // §6.3: the table is bounded; a busy client's session is never evicted for a
            // new one, so the new one waits (not applied) until a session is idle or expires.
            None if in_order(0) && !self.has_room(limits, now_ms) => {
                Admission::Refuse(Reply::error(errors::TOO_MANY_SESSIONS))
            }
            // A first copy, or one no earlier copy of was applied: nothing of the client is
            // remembered, so it starts a session when it waits for nothing below it.
            None if in_order(0) => Admission::Apply,
            None => Admission::Refuse(Reply::error(errors::OUT_OF_ORDER)),
        }
    }

    /// A retry of `request` answered at `index`, log time `now_ms`: the session moves there
    /// in the eviction order (a retry is activity) and its window slides to what the client
    /// still waits for.
    pub(crate) fn replayed(
        &mut self,
        request: SessionRequest,
        (index, now_ms): (u64, u64),
        window: usize,
    ) {
        if let Some(session) = self.recorded.sessions.get_mut(&request.client_id) {
            let dropped = Arc::make_mut(session).slide(request.floor(), window);
            self.reply_bytes = self.reply_bytes.saturating_sub(dropped);
        }
        self.touch(request.client_id, index, now_ms);
    }

    /// Moves `client_id`'s session to `index` in the eviction order, active at `now_ms`.
    fn touch(&mut self, client_id: u64, index: u64, now_ms: u64) {
        if let Some(session) = self.recorded.sessions.get_mut(&client_id) {
            let session = Arc::make_mut(session);
            move_to_back(&mut self.by_activity, (client_id, session), (index, now_ms));
        }
    }

    /// Remembers the reply to `request`, applied at `index`, log time `now_ms` (the reply
    /// itself or, past a budget, the "not kept" marker: [`to_remember`]), and slides the
    /// window (at most `limits.window` replies); opening a session when `max_sessions` are
    /// open first evicts the least recently active one, which [`admit`](Self::admit) found
    /// idle enough.
    pub(crate) fn record(
        &mut self,
        request: SessionRequest,
        (index, now_ms): (u64, u64),
        reply: &Reply,
        (limits, budgets): (SessionLimits, ReplyBudgets),
    ) {
        let table_bytes = self.reply_bytes;
        if let Some(session) = self.recorded.sessions.get_mut(&request.client_id) {
            let session = Arc::make_mut(session);
            let reply = to_remember(Some(session), table_bytes, request, reply, budgets);
            self.reply_bytes = self.reply_bytes.saturating_add(reply_bytes(&reply));
            if let Some(replaced) = session.replies.insert(request.sequence, reply) {
                self.reply_bytes = self.reply_bytes.saturating_sub(reply_bytes(&replaced));
            }
            let dropped = session.slide(request.floor(), limits.window);
            self.reply_bytes = self.reply_bytes.saturating_sub(dropped);
            let client = (request.client_id, session);
            move_to_back(&mut self.by_activity, client, (index, now_ms));
            return;
        }
        let reply = to_remember(None, table_bytes, request, reply, budgets);
        self.shrink_to(limits.max_sessions.saturating_sub(1));
        let mut session = Session {
            replies: Replies::one(request.sequence, reply),
            lowest_kept: 1,
            last_active_index: index,
            last_active_ms: now_ms,
        };
        session.slide(request.floor(), limits.window);
        self.insert(request.client_id, session);
    }

    /// Adds or replaces a session as it is (also used by snapshot restore).
    pub(crate) fn insert(&mut self, client_id: u64, session: Session) {
        if let Some(old) = self.recorded.sessions.get(&client_id) {
            self.by_activity.remove(&old.last_active_index);
            self.reply_bytes = self.reply_bytes.saturating_sub(old.reply_bytes());
        }
        self.reply_bytes = self.reply_bytes.saturating_add(session.reply_bytes());
        let active = Active {
            client_id,
            at_ms: session.last_active_ms,
        };
        let previous = self
            .by_activity
            .insert(session.last_active_index, active)
            .map(|previous| previous.client_id);
        assert!(
            previous.is_none() || previous == Some(client_id),
            "two sessions active at index {}: clients {previous:?} and {client_id}",
            session.last_active_index
        );
        self.recorded.sessions.insert(client_id, Arc::new(session));
    }

    /// Whether the sessions' last activity in log time never decreases along the eviction
    /// order, as stamps never decrease along the log.
    pub(crate) fn activity_in_time_order(&self) -> bool {
        let times: Vec<u64> = self
            .by_activity
            .values()
            .map(|active| self.recorded.sessions[&active.client_id].last_active_ms)
            .collect();
        times.windows(2).all(|pair| pair[0] <= pair[1])
    }

    /// Whether an entry at `index` already names a session in the eviction order.
    pub(crate) fn is_active_at(&self, index: u64) -> bool {
        self.by_activity.contains_key(&index)
    }

    /// Checks the invariant on `by_activity`; panics with context if it is broken.
    pub(crate) fn check_invariants(&self, applied_index: u64) {
        assert_eq!(
            self.recorded.sessions.len(),
            self.by_activity.len(),
            "session table out of step at applied index {applied_index}"
        );
        for (&index, &Active { client_id, at_ms }) in &self.by_activity {
            let session = self.recorded.sessions.get(&client_id);
            assert!(
                session.is_some_and(|s| s.last_active_index == index && s.last_active_ms == at_ms),
                "client {client_id} listed at index {index}, active at {at_ms} ms, disagrees with its session {session:?}"
            );
            assert!(
                index <= applied_index,
                "client {client_id} active at {index}, after the applied index {applied_index}"
            );
        }
        assert!(
            self.activity_in_time_order(),
            "sessions' last activity goes back in log time along the log at applied index {applied_index}"
        );
        let counted: usize = self
            .recorded
            .sessions
            .values()
            .map(|s| s.reply_bytes())
            .sum();
        assert_eq!(
            self.reply_bytes, counted,
            "remembered reply bytes out of step at applied index {applied_index}"
        );
        for (client_id, session) in &self.recorded.sessions {
            assert!(
                session
                    .replies
                    .first_sequence()
                    .is_some_and(|lowest| lowest >= session.lowest_kept),
                "client {client_id}'s window is empty or reaches below its floor: {session:?}"
            );
        }
    }
}

/// Moves the session of a client to `index` in the eviction order `by_activity`, active at
/// `now_ms`.
fn move_to_back(
    by_activity: &mut BTreeMap<u64, Active>,
    (client_id, session): (u64, &mut Session),
    (index, now_ms): (u64, u64),
) {
    by_activity.remove(&session.last_active_index);
    session.last_active_index = index;
    session.last_active_ms = now_ms;
    let active = Active {
        client_id,
        at_ms: now_ms,
    };
    by_activity.insert(index, active);
}

/// What to remember of `reply` to `request`, given the client's `session` and the bytes
/// `table_bytes` every session's replies take now: the reply itself, or, if it would take the
/// session's remembered replies the client still waits for past the session's budget, or
/// every session's remembered replies past the table's, the "not kept" marker (replayed as
/// [`REPLY_NOT_KEPT`](errors::REPLY_NOT_KEPT)). A function of the log alone, as the table
/// must be.
fn to_remember(
    session: Option<&Session>,
    table_bytes: usize,
    request: SessionRequest,
    reply: &Reply,
    budgets: ReplyBudgets,
) -> Reply {
    // The bytes on each side of the request's floor, in one pass over the window.
    let floor = request.floor();
    let (waited_for, below_floor) = session.map_or((0, 0), |session| {
        session
            .replies
            .iter()
            .fold((0usize, 0usize), |(above, below), (sequence, kept)| {
                let bytes = reply_bytes(kept);
                if sequence >= floor {
                    (above.saturating_add(bytes), below)
                } else {
                    (above, below.saturating_add(bytes))
                }
            })
    });
    let bytes = reply_bytes(reply);
    // The table as it will be once the session's window slides to the request's floor.
    let table = table_bytes.saturating_sub(below_floor);
    if waited_for.saturating_add(bytes) <= budgets.session_bytes
        && table.saturating_add(bytes) <= budgets.table_bytes
    {
        reply.clone()
    } else {
        not_kept()
    }
}

/// How a reply that was not kept is remembered: the empty error, which no command answers
/// (every error names its cause), one word where the full text would take ten.
fn not_kept() -> Reply {
    Reply::Error(String::new())
}

/// The bytes a remembered reply is counted as: its strings and a word per element.
fn reply_bytes(reply: &Reply) -> usize {
    const WORD: usize = 8;
    match reply {
        Reply::Ok | Reply::Nil | Reply::NilArray | Reply::Integer(_) => WORD,
        Reply::Bulk(bytes) => WORD.saturating_add(bytes.len()),
        Reply::Error(text) | Reply::Simple(text) => WORD.saturating_add(text.len()),
        Reply::Array(items) => items
            .iter()
            .map(reply_bytes)
            .fold(WORD, usize::saturating_add),
    }
}
