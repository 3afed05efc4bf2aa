//! What the checkers see: durable and applied history, the node's events, and violations.

use super::*;

pub(super) struct NodeLog<'a>(pub(super) &'a RawNode<Wal<MemDisk>>);

impl LogView for NodeLog<'_> {
    fn first_index(&self) -> LogIndex {
        self.0.raft().log().first_index()
    }
    fn last_index(&self) -> LogIndex {
        self.0.raft().log().last_index()
    }
    fn entry(&self, index: LogIndex) -> Option<Entry> {
        if index.0 == 0 {
            return None;
        }
        self.0
            .raft()
            .log()
            .entries(index, index.next(), u64::MAX)
            .ok()?
            .pop()
    }
}

/// A node's durable log: what its disk holds, without the core's unstable tail (which may
/// already have been rewritten while a batch was being written).
pub(super) struct DurableLog<'a>(pub(super) &'a Wal<MemDisk>);

impl LogView for DurableLog<'_> {
    fn first_index(&self) -> LogIndex {
        self.0.first_index()
    }
    fn last_index(&self) -> LogIndex {
        self.0.last_index()
    }
    fn entry(&self, index: LogIndex) -> Option<Entry> {
        if index.0 == 0 {
            return None;
        }
        self.0.entries(index, index.next(), u64::MAX).ok()?.pop()
    }
}

impl Cluster {
    /// Feeds the checkers what `node` reported durable and applied during one `finish`.
    pub(super) fn observe(&mut self, node: NodeId, observed: Vec<Observed>) {
        let Some(running) = self.nodes.get(&node).and_then(SimNode::running) else {
            return;
        };
        let raw = running.raw();
        // A batch is judged against the log it was written to: the durable one.
        let log = DurableLog(running.wal());
        let term_now = raw.raft().term();
        let mut result = Ok(());
        let mut installed = None;
        let mut applied = Vec::new();
        for fact in &observed {
            match fact {
                Observed::SnapshotInstalled { meta, state } => {
                    result = result.and(self.checks.checkers.restored(node, meta.index, *state));
                    installed = Some(meta.index);
                    self.checks.applied_seen.insert(node, meta.index.0);
                }
                Observed::Persisted {
                    entries,
                    hard_state,
                } => {
                    if !entries.is_empty() {
                        result =
                            result.and(self.checks.checkers.persisted_entries(node, entries, &log));
                    }
                    if let Some(hard_state) = hard_state {
                        result = result.and(
                            self.checks
                                .checkers
                                .persisted_commit(node, hard_state.commit),
                        );
                    }
                }
                Observed::Applied {
                    entry,
                    state,
                    reply,
                } => {
                    result =
                        result.and(self.checks.checkers.applied(node, term_now, entry, *state));
                    applied.push((entry, reply.as_ref()));
                    self.checks.applied_seen.insert(node, entry.index.0);
                }
            }
        }
        if let Some(index) = installed {
            self.trace.record(
                self.agenda.now_ms,
                TraceEvent::Note(format!("{node} installed the snapshot at {index}")),
            );
            self.restore_values(node, index);
        }
        for (entry, reply) in applied {
            let first = !self.checks.ledger.entries().contains_key(&entry.index.0);
            let too_many = Some(&Reply::error(skiff_kv::reply::errors::TOO_MANY_SESSIONS));
            self.stats.session_refusals += u64::from(first && reply == too_many);
            self.checks.ledger.applied(entry, reply, self.agenda.now_ms);
            if matches!(skiff_node::payload::Stamped::split(&entry.data), Some(Ok(s)) if s.request.is_empty())
            {
                self.stats.time_entries_applied += 1;
            }
            if let Some(value) = decode_value(entry) {
                self.checks.committed_values.insert(entry.index, value);
                self.checks
                    .applied_values
                    .entry(node)
                    .or_default()
                    .push(value);
            }
        }
        if let Err(violation) = result {
            self.record_violation(violation);
        }
        if node == NodeId(1) {
            self.count_forgotten_sessions(node);
        }
    }

    /// Counts the sessions `node`'s state machine forgot since the last look, if its applied
    /// index moved on (after a restart it starts over from what it recovered).
    fn count_forgotten_sessions(&mut self, node: NodeId) {
        let Some(machine) = self.running(node).map(Node::state_machine) else {
            return;
        };
        let applied = machine.applied_index();
        let now: BTreeSet<u64> = machine.sessions().map(|(id, _)| id).collect();
        let (seen_applied, seen) = &self.checks.sessions_seen;
        if applied > *seen_applied {
            self.stats.sessions_evicted += seen.difference(&now).count() as u64;
        }
        self.checks.sessions_seen = (applied, now);
    }

    /// After a driver pass: a sitting leader's log only grew.
    pub(super) fn check_log_settled(&mut self, node: NodeId) {
        let Some(running) = self.nodes.get(&node).and_then(SimNode::running) else {
            return;
        };
        let raw = running.raw();
        let (term, is_leader) = (raw.raft().term(), raw.raft().role() == Role::Leader);
        if let Err(violation) =
            self.checks
                .checkers
                .log_settled(node, term, is_leader, &NodeLog(raw))
        {
            self.record_violation(violation);
        }
    }

    pub(super) fn on_node_event(&mut self, node: NodeId, event: NodeEvent) {
        match event {
            NodeEvent::RoleChanged { soft_state, term } => {
                let previous = self.checks.roles.insert(node, soft_state.role);
                self.trace.record(
                    self.agenda.now_ms,
                    TraceEvent::Role {
                        node,
                        term,
                        role: soft_state.role,
                        leader: soft_state.leader,
                    },
                );
                if previous == Some(Role::Leader) && soft_state.role != Role::Leader {
                    self.checks.checkers.left_leadership(node);
                }
                match soft_state.role {
                    Role::Candidate if previous != Some(Role::Candidate) => {
                        self.stats.elections += 1
                    }
                    Role::Leader if previous != Some(Role::Leader) => {
                        self.stats.leaders_elected += 1;
                        let Some(running) = self.nodes.get(&node).and_then(SimNode::running) else {
                            return;
                        };
                        let log = NodeLog(running.raw());
                        if let Err(violation) = self.checks.checkers.became_leader(node, term, &log)
                        {
                            self.record_violation(violation);
                        }
                    }
                    _ => {}
                }
            }
            NodeEvent::SnapshotTaken { index } => {
                self.stats.snapshots += 1;
                self.trace.record(
                    self.agenda.now_ms,
                    TraceEvent::Note(format!("{node} took a snapshot at {index}")),
                );
            }
            NodeEvent::SnapshotInstalled { .. } => self.stats.snapshot_installs += 1,
            NodeEvent::ConfChangeApplied { index } => self.trace.record(
                self.agenda.now_ms,
                TraceEvent::Note(format!(
                    "{node} applied the configuration change at {index}"
                )),
            ),
            NodeEvent::SnapshotChunkReceived { .. } | NodeEvent::SnapshotSkipped { .. } => {}
            NodeEvent::WriteResubmitted { id, proposed_at } => {
                self.stats.resubmissions += 1;
                if let Some(at) = proposed_at {
                    self.note_resubmission(id, at);
                }
            }
            NodeEvent::MemberAddressRecorded { id } => self.trace.record(
                self.agenda.now_ms,
                TraceEvent::Note(format!("{node} recorded the address of {id}")),
            ),
            NodeEvent::MemberIncarnationRecorded { id, incarnation } => self.trace.record(
                self.agenda.now_ms,
                TraceEvent::Note(format!(
                    "{node} recorded incarnation {incarnation:#x} of {id}"
                )),
            ),
            NodeEvent::IncarnationRefused(notice) => self.trace.record(
                self.agenda.now_ms,
                TraceEvent::Note(format!(
                    "{node} learned from {} that its data directory is not the recorded one",
                    notice.by
                )),
            ),
        }
    }

    /// `node`'s state machine restarted from a snapshot at `index`: it holds the effect of
    /// every numbered value applied up to `index`.
    pub(super) fn restore_values(&mut self, node: NodeId, index: LogIndex) {
        let values = self
            .checks
            .committed_values
            .range(..=index)
            .map(|(_, &value)| value)
            .collect();
        self.checks.applied_values.insert(node, values);
    }

    /// Records a violation found outside the checkers (liveness, end-of-run checks).
    pub fn report_violation(&mut self, violation: Violation) {
        self.record_violation(violation);
    }

    pub(super) fn record_violation(&mut self, violation: Violation) {
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Note(format!("VIOLATION {violation}")),
        );
        if self.checks.violation.is_none() {
            self.checks.violation = Some(violation);
        }
    }
}
