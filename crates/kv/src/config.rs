//! [`KvConfig`]: the state machine's limits.
//!
//! Every replica must run with the same configuration: the limits decide replies and which
//! client sessions are evicted, and those must be the same on every replica.

use crate::error::KvError;

/// The limits of a [`StateMachine`](crate::StateMachine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvConfig {
    /// The longest key a write may store. Longer keys are refused with an error reply.
    pub max_key_bytes: usize,
    /// The longest value a write may store. Longer values are refused with an error reply.
    pub max_value_bytes: usize,
    /// How many client sessions are remembered at most. Opening one more evicts the session
    /// least recently active (the one whose last request has the lowest log index) if it has
    /// been idle at least [`session_evict_idle_ms`](Self::session_evict_idle_ms); otherwise
    /// the new session's first write is refused
    /// ([`TOO_MANY_SESSIONS`](crate::reply::errors::TOO_MANY_SESSIONS), not applied).
    pub max_sessions: usize,
    /// A session whose last request is at least this many milliseconds of log time (the
    /// leaders' stamps, the same on every replica) before the entry being applied has
    /// expired, and is forgotten. Stretched by clock skew between leaders as TTLs are
    /// (docs/COORDINATION.md); a log whose entries carry no stamps never expires a session.
    pub session_expiry_ms: u64,
    /// How long (log time) a session must have been idle before a new session may evict it
    /// when the table is full; at most [`session_expiry_ms`](Self::session_expiry_ms). Keep
    /// it well above the nodes' request timeout: a write being sent again after a leader
    /// change then always finds its session.
    pub session_evict_idle_ms: u64,
    /// How many replies one session remembers at most, for a client with that many writes
    /// in flight (pipelined); past it the oldest are forgotten, and a retry of one of them is
    /// refused as stale.
    pub session_window_requests: usize,
    /// How many bytes of replies one session remembers at most: a reply that would take the
    /// session's remembered replies past it is remembered as "applied, reply not kept"
    /// ([`REPLY_NOT_KEPT`](crate::reply::errors::REPLY_NOT_KEPT)); that marker counts one
    /// word (8 bytes), and is stored even past the budget (one per remembered sequence).
    pub session_reply_bytes: usize,
    /// How many bytes of replies all sessions together remember at most: past it, a new
    /// reply is remembered as "applied, reply not kept" as past
    /// [`session_reply_bytes`](Self::session_reply_bytes). Bounds the table's replies
    /// whatever `max_sessions` is (markers count, and may exceed it by one word per
    /// remembered sequence).
    pub session_table_reply_bytes: usize,
    /// The largest reply a read may build (the values of an `MGET` added up); a larger one is
    /// refused with an error reply before any value is copied. Reads are served by one node,
    /// so this limit may differ between replicas; but it also holds the values a transaction
    /// (`EXEC`) reads, whose replies are replicated results, so replicas should agree on it.
    pub max_reply_bytes: usize,
    /// How many fields a hash may hold; a write that would add more is refused with an
    /// error reply and changes nothing. (Each field's value is bounded by `max_value_bytes`,
    /// each field name by `max_key_bytes`.)
    pub max_hash_fields: usize,
}

impl Default for KvConfig {
    /// 16 KiB keys, 1 MiB values, 100,000 sessions (every connection of a large cluster
    /// writing at once is a session), expiring after an hour of log time idle and evictable
    /// after five minutes idle, each remembering up to 1,024 replies (a connection's
    /// pipeline) and 64 KiB of them, 256 MiB of replies in all sessions together, 16 MiB
    /// replies, 100,000 fields a hash.
    fn default() -> Self {
        KvConfig {
            max_key_bytes: 16 * 1024,
            max_value_bytes: 1024 * 1024,
            max_sessions: 100_000,
            session_expiry_ms: 3_600_000,
            session_evict_idle_ms: 300_000,
            session_window_requests: 1024,
            session_reply_bytes: 64 * 1024,
            session_table_reply_bytes: 256 * 1024 * 1024,
            max_reply_bytes: 16 * 1024 * 1024,
            max_hash_fields: 100_000,
        }
    }
}

impl KvConfig {
    /// Checks that every limit is positive (the eviction bound may be 0: any session may then
    /// be evicted) and that sessions become evictable no later than they expire.
    pub fn validate(&self) -> Result<(), KvError> {
        if self.max_key_bytes == 0 {
            return Err(KvError::InvalidConfig("max_key_bytes must be positive"));
        }
        if self.max_value_bytes == 0 {
            return Err(KvError::InvalidConfig("max_value_bytes must be positive"));
        }
        if self.max_reply_bytes < self.max_value_bytes {
            return Err(KvError::InvalidConfig(
                "max_reply_bytes must be at least max_value_bytes",
            ));
        }
        if self.max_hash_fields == 0 {
            return Err(KvError::InvalidConfig("max_hash_fields must be positive"));
        }
        if self.max_sessions == 0 {
            return Err(KvError::InvalidConfig("max_sessions must be positive"));
        }
        if self.session_expiry_ms == 0 {
            return Err(KvError::InvalidConfig("session_expiry_ms must be positive"));
        }
        if self.session_evict_idle_ms > self.session_expiry_ms {
            return Err(KvError::InvalidConfig(
                "session_evict_idle_ms must be at most session_expiry_ms",
            ));
        }
        if self.session_reply_bytes == 0 {
            return Err(KvError::InvalidConfig(
                "session_reply_bytes must be positive",
            ));
        }
        if self.session_table_reply_bytes == 0 {
            return Err(KvError::InvalidConfig(
                "session_table_reply_bytes must be positive",
            ));
        }
        if self.session_window_requests == 0 {
            return Err(KvError::InvalidConfig(
                "session_window_requests must be positive",
            ));
        }
        Ok(())
    }
}
