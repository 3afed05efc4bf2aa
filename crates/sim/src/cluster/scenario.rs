//! Scenario helpers: waiting for a stable leader, running until a condition holds, proposing
//! and reading through the cluster as the lab scenarios do.

use super::*;

impl Cluster {
    /// Waits up to `budget_ms` for a [`stable_leader`](Cluster::stable_leader); returns it.
    pub fn await_leader(&mut self, budget_ms: u64) -> Option<NodeId> {
        self.run_until(budget_ms, |c| c.stable_leader().is_some());
        self.stable_leader()
    }

    /// The leader of the highest term among running nodes, when a majority of nodes it can
    /// reach are up and share its term.
    pub fn stable_leader(&self) -> Option<NodeId> {
        let leader = self.leader()?;
        let term = self.term(leader);
        let connected = |id: NodeId| id == leader || self.network.connected(leader, id);
        let agreeing = self
            .ids
            .iter()
            .filter(|&&id| self.is_up(id) && connected(id) && self.term(id) == term)
            .count();
        let majority = self.ids.len() / 2 + 1;
        (agreeing >= majority).then_some(leader)
    }

    /// Like the lab's `one()`: proposes `value` to whichever node leads (retrying as leaders
    /// change) until at least `expected_nodes` nodes have applied it, within `budget_ms`.
    /// Returns the index it committed at.
    pub fn one(&mut self, value: u64, expected_nodes: usize, budget_ms: u64) -> Option<LogIndex> {
        let end = self.agenda.now_ms + budget_ms;
        while self.agenda.now_ms < end && self.checks.violation.is_none() {
            let proposal = self
                .leader()
                .and_then(|leader| self.propose_to(leader, value, 0).ok());
            if let Some(proposal) = proposal {
                let applied = self.run_until(2_000.min(end - self.agenda.now_ms), |c| {
                    c.count_applied(value) >= expected_nodes
                });
                if applied {
                    return Some(proposal.index);
                }
                if self.count_applied(value) > 0 {
                    // Committed on too few nodes: wait for the rest rather than propose twice.
                    let rest = end.saturating_sub(self.agenda.now_ms);
                    return self
                        .run_until(rest, |c| c.count_applied(value) >= expected_nodes)
                        .then_some(proposal.index);
                }
            } else {
                self.run_for(50);
            }
        }
        None
    }

    /// Asks the current leader to hand leadership to `to`. Returns whether a transfer started.
    pub fn transfer_leadership(&mut self, to: NodeId) -> bool {
        let Some(leader) = self.leader() else {
            return false;
        };
        if self.paused_until(leader).is_some() {
            return false;
        }
        let Some(running) = self.running_mut(leader) else {
            return false;
        };
        if running.transfer_leadership(to).is_err() {
            return false;
        }
        self.stats.transfers += 1;
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Note(format!("{leader} hands leadership to {to}")),
        );
        self.mark_dirty(leader);
        true
    }

    /// Starts node `id` of the pool for the first time, with an empty log: it is not a member
    /// until a configuration change adds it. Returns whether it was started.
    pub fn start_node(&mut self, id: NodeId) -> bool {
        if self.nodes.contains_key(&id) || id.0 == 0 || id.0 > self.options.pool_size as u64 {
            return false;
        }
        self.start_fresh(id);
        self.trace
            .record(self.agenda.now_ms, TraceEvent::Fault(format!("start {id}")));
        true
    }

    /// The ids of the pool that were never started.
    pub fn dormant_ids(&self) -> Vec<NodeId> {
        (1..=self.options.pool_size as u64)
            .map(NodeId)
            .filter(|id| !self.nodes.contains_key(id))
            .collect()
    }

    /// The running node `node`, as a client reaches it: a paused process does not answer,
    /// and a process that was paused first notices the time that passed.
    pub(super) fn client_node(&mut self, node: NodeId) -> Option<&mut Node<MemDisk>> {
        if self.paused_until(node).is_some() {
            return None;
        }
        self.catch_up(node);
        self.running_mut(node)
    }

    /// A fresh id for one of the cluster's own requests.
    pub(super) fn own_request(&mut self) -> RequestId {
        self.clients.next_own_request += 1;
        self.clients.next_own_request
    }

    /// Proposes a membership change to `node`, which must lead.
    pub fn propose_conf_change(
        &mut self,
        node: NodeId,
        change: ConfChange,
    ) -> Result<(LogIndex, Term), Refused> {
        let text = format!("{change:?}");
        let id = self.own_request();
        let accepted =
            self.propose_on_leader(node, id, |running| running.propose_conf_change(id, change))?;
        self.stats.conf_changes += 1;
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Note(format!(
                "{node} accepted {text} at {}/{}",
                accepted.0, accepted.1
            )),
        );
        Ok(accepted)
    }

    /// Hands a proposal to `node` through `propose`, if `node` leads; the proposal is
    /// accepted when the leader's log grew by one entry, and refused when the node answered
    /// request `id` at once.
    pub(super) fn propose_on_leader(
        &mut self,
        node: NodeId,
        id: RequestId,
        propose: impl FnOnce(&mut Node<MemDisk>),
    ) -> Result<(LogIndex, Term), Refused> {
        let Some(running) = self.client_node(node) else {
            return Err(Refused::Unreachable(node));
        };
        let raft = running.raw().raft();
        if raft.role() != Role::Leader {
            return Err(Refused::NotLeader {
                leader_hint: raft.leader(),
            });
        }
        let before = raft.log().last_index();
        propose(running);
        let raft = running.raw().raft();
        let (last, term) = (raft.log().last_index(), raft.term());
        self.clients.waiting.insert(id, node);
        self.drain(node);
        self.mark_dirty(node);
        let answered = self.clients.replies.remove(&id);
        if last == before.next() {
            self.clients.waiting.remove(&id);
            return Ok((last, term));
        }
        self.clients.waiting.remove(&id);
        Err(Refused::Reply(answered.unwrap_or_else(|| {
            Reply::error("the leader neither accepted nor refused the proposal")
        })))
    }

    /// Makes `node` start an election now, as if its timer had fired.
    pub fn campaign_now(&mut self, node: NodeId) {
        if let Some(running) = self.running_mut(node) {
            running.campaign();
            self.mark_dirty(node);
        }
    }
}
