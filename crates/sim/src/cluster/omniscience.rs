//! What the cluster records for the timed check beyond the clients' view (see
//! [`crate::ledger`]): where each client write was proposed, and what a node had applied when
//! it answered. Committed entries are recorded where the checkers see them applied.

use super::*;

impl Cluster {
    /// The committed log with its stamps, the proposals and the answers seen so far.
    pub fn ledger(&self) -> &Ledger {
        &self.checks.ledger
    }

    /// Closes the history once the cluster converged and the clients heard back: the timed
    /// check may then ask that keys due long ago are gone.
    pub fn close_ledger(&mut self) {
        self.checks.ledger.close(self.agenda.now_ms);
    }

    /// Records the client requests `node` appended to its log for `request` after index
    /// `before` (it proposed the write as leader): the entries of `request`'s session
    /// (`(client_id, sequence)`, or none). A session write the node sent again on its own
    /// may be appended in the same call; it is another request's, and is credited to that
    /// one where the node reports it ([`Cluster::note_resubmission`]).
    pub(super) fn note_proposals(
        &mut self,
        node: NodeId,
        request: RequestId,
        before: LogIndex,
        session: Option<(u64, u64)>,
    ) {
        let Some(raw) = self.raw(node) else {
            return;
        };
        if raw.raft().role() != Role::Leader {
            return;
        }
        let log = raw.raft().log();
        let Ok(entries) = log.entries(before.next(), log.last_index().next(), u64::MAX) else {
            return;
        };
        for entry in entries {
            if entry.kind == skiff_raft::EntryKind::Normal
                && request_session(&entry.data).is_some_and(|of_entry| of_entry == session)
            {
                self.checks
                    .ledger
                    .proposed(request, entry.index.0, entry.term);
            }
        }
    }

    /// Records that `node` proposed session write `request` again, by itself, at
    /// `(index, term)` (its first attempt's outcome was lost to a leader change).
    pub(super) fn note_resubmission(
        &mut self,
        request: RequestId,
        (index, term): (LogIndex, Term),
    ) {
        self.checks.ledger.proposed(request, index.0, term);
    }
}

/// The session of the client request an entry's payload carries: `None` for an entry with
/// no request, `Some(None)` for a request without a session.
fn request_session(data: &[u8]) -> Option<Option<(u64, u64)>> {
    use skiff_node::payload::Payload;
    let request = match Payload::decode(data).ok()? {
        Payload::Stamped {
            request: Some(request),
            ..
        }
        | Payload::Request(request) => request,
        _ => return None,
    };
    Some(
        request
            .session
            .map(|session| (session.client_id, session.sequence)),
    )
}

/// The session of a forwarded request's bytes (`None`: none, or bytes that do not decode).
pub(super) fn forwarded_session(request: &[u8]) -> Option<(u64, u64)> {
    skiff_kv::Request::decode(request)
        .ok()?
        .session
        .map(|session| (session.client_id, session.sequence))
}

impl Cluster {
    /// Notes in the ledger each stamped entry `node`, leading, appended since the last look,
    /// with the wall clock it should have read while doing so. Called after every input a
    /// node handles, at the simulated time it handled it (the leader appends only then).
    pub(super) fn note_appends(&mut self, node: NodeId) {
        let clock_ms = self.wall_clock_ms(node);
        let Some(raw) = self
            .nodes
            .get(&node)
            .and_then(SimNode::running)
            .map(Node::raw)
        else {
            return;
        };
        let raft = raw.raft();
        if raft.role() != Role::Leader {
            return;
        }
        let (term, log) = (raft.term(), raft.log());
        let last = log.last_index().0;
        let from = match self.checks.appends_seen.get(&node) {
            Some(&(seen_term, seen)) if seen_term == term => seen + 1,
            // §5.3: a new leader's own entries follow what it held when elected.
            _ => log.committed().0.max(log.first_index().0.saturating_sub(1)) + 1,
        };
        self.checks.appends_seen.insert(node, (term, last));
        if from > last {
            return;
        }
        let Ok(entries) = log.entries(LogIndex(from), LogIndex(last + 1), u64::MAX) else {
            return;
        };
        for entry in entries.iter().filter(|e| e.term == term) {
            if skiff_node::payload::Stamped::split(&entry.data).is_some() {
                self.checks
                    .ledger
                    .appended(entry.index.0, entry.term, clock_ms);
            }
        }
    }

    /// The last index the simulator saw `node` apply in its current life — not the node's
    /// own count, which must agree (a node that over-reports what it applied would widen a
    /// read's window to indices it never reached).
    pub(super) fn applied_seen(&mut self, node: NodeId) -> u64 {
        let seen = self.checks.applied_seen.get(&node).copied().unwrap_or(0);
        let own = self.applied(node).0;
        if own != seen {
            self.record_violation(Violation {
                property: "Applied index",
                detail: format!(
                    "{node} says it applied up to {own}; the simulator saw it apply up to {seen}"
                ),
            });
        }
        seen
    }

    /// The wall clock `node` is told it reads: its own, unless a bug is injected.
    pub(super) fn clock_told_ms(&self, node: NodeId) -> u64 {
        let clock_ms = self.wall_clock_ms(node);
        // A candidate may win within the input it is handling, and stamp at once.
        let follows = self
            .running(node)
            .is_some_and(|running| running.raw().raft().role() == Role::Follower);
        match self.options.injected_bug {
            Some(InjectedBug::StampAhead) => clock_ms.saturating_add(3_600_000),
            Some(InjectedBug::FrozenClock) => self.wall_clock_at_start_ms(node),
            Some(InjectedBug::FollowerClockAhead) if follows => clock_ms.saturating_add(5_000),
            _ => clock_ms,
        }
    }

    fn wall_clock_at_start_ms(&self, node: NodeId) -> u64 {
        self.ledger().clock_ms(node, 0).unwrap_or(SIM_EPOCH_MS)
    }
}

/// A deliberate bug in how nodes answer reads, for tests that show the timed check catches
/// what it is meant to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectedBug {
    /// Every node answers a read at once from what it has applied, skipping ReadIndex
    /// (thesis §6.4): a lagging follower or a deposed leader serves the past.
    LocalReads,
    /// Reads judge expiry by the serving node's own skewed wall clock instead of log time
    /// (docs/COORDINATION.md): a node whose clock runs ahead reports keys expired early.
    WallClockExpiry,
    /// Every node is told a wall clock an hour ahead: leaders stamp an hour late, so every
    /// TTL runs out at its first stamp.
    StampAhead,
    /// Every node is told the wall clock it read at the start, forever: log time stands
    /// still, keys never expire and no time entry is proposed.
    FrozenClock,
    /// Followers are told a clock 5 s ahead: the `TTL`/`PTTL` they answer
    /// shrink by 5 s, beyond any skew.
    FollowerClockAhead,
}

impl Cluster {
    /// With [`InjectedBug::LocalReads`], `node` answers read `command` at once from its own
    /// state; with [`InjectedBug::WallClockExpiry`], the read is remembered so that its answer
    /// can be rewritten. `None`: submit as usual.
    pub(super) fn injected_submit(
        &mut self,
        node: NodeId,
        id: RequestId,
        command: &Command,
    ) -> Option<Submitted> {
        if !command.is_read_only() {
            return None;
        }
        match self.options.injected_bug? {
            InjectedBug::WallClockExpiry => {
                self.checks.injected_reads.insert(id, command.clone());
                None
            }
            InjectedBug::StampAhead
            | InjectedBug::FrozenClock
            | InjectedBug::FollowerClockAhead => None,
            InjectedBug::LocalReads => {
                let wall_clock_ms = self.wall_clock_ms(node);
                let running = self.client_node(node)?;
                let reply = running.state_machine().read_at(command, wall_clock_ms);
                let _ = running;
                let applied = self.applied_seen(node);
                self.checks.ledger.answered(id, applied);
                Some(Submitted::Answered(reply))
            }
        }
    }

    /// With [`InjectedBug::WallClockExpiry`], the answer to read `id` as `node` would give it
    /// if it let keys expire by its own clock; otherwise `reply` as it is.
    pub(super) fn injected_reply(&mut self, node: NodeId, id: RequestId, reply: Reply) -> Reply {
        let Some(command) = self.checks.injected_reads.remove(&id) else {
            return reply;
        };
        let Some(running) = self.running(node) else {
            return reply;
        };
        if reply.is_error() {
            return reply;
        }
        let wall_clock_ms = self.wall_clock_ms(node);
        let mut state = running.state_machine().clone();
        state.pass_time(state.applied_index() + 1, wall_clock_ms);
        state.read_at(&command, wall_clock_ms)
    }
}
