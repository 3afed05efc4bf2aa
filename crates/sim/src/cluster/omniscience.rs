//! What the cluster records for the timed check beyond the clients' view (see
//! [`crate::ledger`]): where each client write was proposed, and what a node had applied when
//! it answered. Committed entries are recorded where the checkers see them applied.

use super::*;

impl Cluster {
    /// The committed log with its stamps, the proposals and the answers seen so far.
    pub fn ledger(&self) -> &Ledger {
        &self.checks.ledger
    }

    /// Records the client requests `node` appended to its log for `request` after index
    /// `before` (it proposed the write as leader).
    pub(super) fn note_proposals(&mut self, node: NodeId, request: RequestId, before: LogIndex) {
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
                && matches!(
                    skiff_node::payload::Payload::decode(&entry.data),
                    Ok(skiff_node::payload::Payload::Stamped {
                        request: Some(_),
                        ..
                    } | skiff_node::payload::Payload::Request(_))
                )
            {
                self.checks
                    .ledger
                    .proposed(request, entry.index.0, entry.term);
            }
        }
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
            InjectedBug::LocalReads => {
                let wall_clock_ms = self.wall_clock_ms(node);
                let running = self.client_node(node)?;
                let reply = running.state_machine().read_at(command, wall_clock_ms);
                let applied = running.applied().0;
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
