//! What the simulator, omniscient, knows of the key-value history besides the clients'
//! replies: the committed log as it was applied (each entry's term, log-time stamp and
//! commands), where each client write was proposed, and the applied index each read was
//! served at (at most), when each entry was first seen applied (so it was committed by then),
//! and each node's wall clock with the clock its leader read when it appended each stamped
//! entry. The timed checker ([`crate::timed_check`]) places every operation on the log with
//! it. The entries are what the nodes' logs hold; the applied index an answer left at is the
//! one the simulator saw the node reach (its applications, installs and the snapshot on its
//! disk at a restart), checked against the node's own count at every answer.

use std::collections::BTreeMap;

use skiff_kv::reply::errors;
use skiff_kv::transaction::Watched;
use skiff_kv::{Command, Reply};
use skiff_node::payload::Payload;
use skiff_node::RequestId;
use skiff_raft::{Entry, EntryKind, NodeId, Term};

/// A committed entry, as first applied on any node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Its term: with the index, it names the entry (Log Matching, §5.3).
    pub term: Term,
    /// The leader's log-time stamp (`None`: an entry with no stamp — a configuration change,
    /// a member record, a leader's empty entry).
    pub log_time_ms: Option<u64>,
    /// The commands it applies at one point of the log, in order (one for a client write;
    /// a transaction's would be several). Empty for an entry that carries only the time.
    pub commands: Vec<Command>,
    /// The client session it was written under (`client_id`, `sequence`), if any: a
    /// request seen before in the same session is answered, not applied again (§6.3).
    pub session: Option<(u64, u64)>,
    /// For a transaction (`MULTI … EXEC`), the keys watched with their revisions then: the
    /// commands apply only if every one is unchanged.
    pub watched: Vec<Watched>,
    /// The state machine refused the request for its session (an earlier write of the session
    /// not applied yet, a sequence it passed over, a session it forgot, no room for a new
    /// session): nothing of it was
    /// applied. Refusing never breaks safety (the node sends it again, or its client hears
    /// the outcome is unknown); what the check judges is that nothing applies twice or out of
    /// order.
    pub session_refused: bool,
}

impl LedgerEntry {
    /// The entry as a committed log entry says; `None` for one whose payload does not decode
    /// (the node refuses it too).
    pub fn of(entry: &Entry) -> Option<LedgerEntry> {
        let mut ledger_entry = LedgerEntry {
            term: entry.term,
            log_time_ms: None,
            commands: Vec::new(),
            session: None,
            watched: Vec::new(),
            session_refused: false,
        };
        if entry.kind != EntryKind::Normal || entry.data.is_empty() {
            return Some(ledger_entry);
        }
        let request = match Payload::decode(&entry.data).ok()? {
            Payload::Request(request) => Some(request),
            Payload::Stamped {
                log_time_ms,
                request,
            } => {
                ledger_entry.log_time_ms = Some(log_time_ms);
                request
            }
            Payload::MemberAddress(_) | Payload::MemberIncarnation(_) => None,
        };
        if let Some(request) = request {
            ledger_entry.session = request
                .session
                .map(|session| (session.client_id, session.sequence));
            if let Command::Exec(transaction) = &request.command {
                ledger_entry.watched = transaction.watched.clone();
            }
            ledger_entry.commands = commands_of(request.command);
        }
        Some(ledger_entry)
    }
}

/// The commands one entry applies at one point of the log: a transaction's (`MULTI … EXEC`)
/// queued commands, in order, or the one command.
pub fn commands_of(command: Command) -> Vec<Command> {
    match command {
        Command::Exec(transaction) => transaction.commands,
        command => vec![command],
    }
}

/// Whether `text` is the state machine's refusal of a request for its session: nothing of
/// the request was applied.
fn is_session_refusal(text: &str) -> bool {
    [
        errors::OUT_OF_ORDER,
        errors::STALE_REQUEST,
        errors::SESSION_EXPIRED,
        errors::TOO_MANY_SESSIONS,
    ]
    .contains(&text)
}

/// The omniscient record.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Committed entries by index, as first applied.
    entries: BTreeMap<u64, LedgerEntry>,
    /// Where each client request was proposed: `(index, term)`, once per proposal.
    proposals: BTreeMap<RequestId, Vec<(u64, Term)>>,
    /// For each answered request, the answering node's applied index when the answer left:
    /// a read was served at or before it.
    answered_at: BTreeMap<RequestId, u64>,
    /// The highest index first seen applied at or before each simulated time (ms): every
    /// entry up to it was committed by then.
    committed_by_ms: BTreeMap<u64, u64>,
    /// For each stamped `(index, term)`, the wall clock (Unix ms) of the term's leader when it
    /// appended the entry, as the simulator keeps it (not as the node was told it).
    appended: BTreeMap<(u64, Term), u64>,
    /// Each node's clock: simulated time plus `epoch_ms` plus its skew.
    clocks: BTreeMap<NodeId, i64>,
    epoch_ms: u64,
    /// The simulated time the history was closed at, when the run converged.
    closed_at_ms: Option<u64>,
}

impl Ledger {
    /// Records committed entry `entry`, first applied at simulated time `now_ms` with the
    /// state machine's `reply`, unless an earlier application recorded it.
    pub fn applied(&mut self, entry: &Entry, reply: Option<&Reply>, now_ms: u64) {
        if self.entries.contains_key(&entry.index.0) {
            return;
        }
        if let Some(mut ledger_entry) = LedgerEntry::of(entry) {
            ledger_entry.session_refused = ledger_entry.session.is_some()
                && matches!(reply, Some(Reply::Error(text)) if is_session_refusal(text));
            self.entries.insert(entry.index.0, ledger_entry);
        }
        self.committed_by(entry.index.0, now_ms);
    }

    /// Records that entry `index` had been committed by simulated time `now_ms`.
    pub fn committed_by(&mut self, index: u64, now_ms: u64) {
        let known = self.committed_before(now_ms.saturating_add(1));
        if index > known {
            self.committed_by_ms.insert(now_ms, index);
        }
    }

    /// The highest index known committed strictly before simulated time `ms` (0: none).
    pub fn committed_before(&self, ms: u64) -> u64 {
        self.committed_by_ms
            .range(..ms)
            .map(|(_, &index)| index)
            .max()
            .unwrap_or(0)
    }

    /// Records that the leader of `term`, whose clock read `leader_clock_ms`, appended
    /// stamped entry `index` (the first sighting counts).
    pub fn appended(&mut self, index: u64, term: Term, leader_clock_ms: u64) {
        self.appended
            .entry((index, term))
            .or_insert(leader_clock_ms);
    }

    /// The clock of the leader that appended `(index, term)`, if the simulator saw it.
    pub fn appended_clock_ms(&self, index: u64, term: Term) -> Option<u64> {
        self.appended.get(&(index, term)).copied()
    }

    /// Sets `node`'s clock: it reads `epoch_ms + simulated time + skew_ms`.
    pub fn set_clock(&mut self, node: NodeId, epoch_ms: u64, skew_ms: i64) {
        self.epoch_ms = epoch_ms;
        self.clocks.insert(node, skew_ms);
    }

    /// What `node`'s clock read at simulated time `sim_ms`; `None` for a node of unknown clock.
    pub fn clock_ms(&self, node: NodeId, sim_ms: u64) -> Option<u64> {
        let skew = *self.clocks.get(&node)?;
        Some(
            self.epoch_ms
                .saturating_add(sim_ms)
                .saturating_add_signed(skew),
        )
    }

    /// The slowest clock at simulated time `sim_ms` (`None`: no clock known).
    pub fn slowest_clock_ms(&self, sim_ms: u64) -> Option<u64> {
        self.clocks
            .keys()
            .filter_map(|&node| self.clock_ms(node, sim_ms))
            .min()
    }

    /// Closes the history at simulated time `now_ms` after the cluster converged: from then
    /// on the check may ask that idle keys have expired.
    pub fn close(&mut self, now_ms: u64) {
        self.closed_at_ms = Some(now_ms);
    }

    /// When the converged history was closed.
    pub fn closed_at_ms(&self) -> Option<u64> {
        self.closed_at_ms
    }

    /// Records that `request` was proposed at `index` in `term`.
    pub fn proposed(&mut self, request: RequestId, index: u64, term: Term) {
        self.proposals
            .entry(request)
            .or_default()
            .push((index, term));
    }

    /// Records that `request`'s answer left a node whose applied index was `applied`.
    pub fn answered(&mut self, request: RequestId, applied: u64) {
        self.answered_at.insert(request, applied);
    }

    /// The committed entries, by index.
    pub fn entries(&self) -> &BTreeMap<u64, LedgerEntry> {
        &self.entries
    }

    /// The first committed index where `request` took effect: the lowest of its proposals
    /// whose `(index, term)` is a committed entry its session did not refuse.
    pub fn committed_at(&self, request: RequestId) -> Option<u64> {
        self.proposals
            .get(&request)?
            .iter()
            .filter(|(index, term)| {
                self.entries
                    .get(index)
                    .is_some_and(|e| e.term == *term && !e.session_refused)
            })
            .map(|(index, _)| *index)
            .min()
    }

    /// The applied index of the node when `request`'s answer left it.
    pub fn answered_at(&self, request: RequestId) -> Option<u64> {
        self.answered_at.get(&request).copied()
    }

    /// Adds a committed entry by hand (for tests of the checker).
    pub fn insert(&mut self, index: u64, entry: LedgerEntry) {
        self.entries.insert(index, entry);
    }
}
