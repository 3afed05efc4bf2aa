//! What the simulator, omniscient, knows of the key-value history besides the clients'
//! replies: the committed log as it was applied (each entry's term, log-time stamp and
//! commands), where each client write was proposed, and the applied index each read was
//! served at (at most). The timed checker ([`crate::timed_check`]) places every operation on
//! the log with it; nothing here is taken from the node's own account of what it did.

use std::collections::BTreeMap;

use skiff_kv::Command;
use skiff_node::payload::Payload;
use skiff_node::RequestId;
use skiff_raft::{Entry, EntryKind, Term};

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
            ledger_entry.commands = commands_of(request.command);
        }
        Some(ledger_entry)
    }
}

/// The commands one entry applies at one point of the log. A transaction's entry, once the
/// store has one, lists its queued commands here.
pub fn commands_of(command: Command) -> Vec<Command> {
    vec![command]
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
}

impl Ledger {
    /// Records committed entry `entry`, unless an earlier application recorded it.
    pub fn applied(&mut self, entry: &Entry) {
        if self.entries.contains_key(&entry.index.0) {
            return;
        }
        if let Some(ledger_entry) = LedgerEntry::of(entry) {
            self.entries.insert(entry.index.0, ledger_entry);
        }
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
    /// whose `(index, term)` is a committed entry.
    pub fn committed_at(&self, request: RequestId) -> Option<u64> {
        self.proposals
            .get(&request)?
            .iter()
            .filter(|(index, term)| self.entries.get(index).is_some_and(|e| e.term == *term))
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
