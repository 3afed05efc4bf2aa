//! Looking at the cluster: nodes, their state and logs, the checkers' verdict and the trace.

use super::*;

impl Cluster {
    /// The node ids.
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    pub(super) fn raw(&self, node: NodeId) -> Option<&RawNode<Wal<MemDisk>>> {
        self.running(node).map(Node::raw)
    }

    /// Whether `node` is in the middle of a disk write.
    pub fn is_writing(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(SimNode::is_writing)
    }

    /// Whether `node` is running.
    pub fn is_up(&self, node: NodeId) -> bool {
        self.raw(node).is_some()
    }

    /// Whether `node` is down and may be restarted (its log did not refuse to open).
    pub fn is_down(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(SimNode::is_down)
    }

    /// Whether `node`'s durable log refused to open: it stays down for the rest of the run.
    pub fn is_refused(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(|n| n.refusal().is_some())
    }

    /// Running nodes that consider themselves leader, with their terms.
    pub fn leaders(&self) -> Vec<(NodeId, Term)> {
        self.ids
            .iter()
            .filter_map(|&id| self.raw(id).map(|raw| (id, raw.raft())))
            .filter(|(_, raft)| raft.role() == Role::Leader)
            .map(|(id, raft)| (id, raft.term()))
            .collect()
    }

    /// The leader of the highest term among running nodes, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .max_by_key(|&(_, term)| term)
            .map(|(id, _)| id)
    }

    /// `node`'s current term (its durable one while it is down).
    pub fn term(&self, node: NodeId) -> Term {
        match self.raw(node) {
            Some(raw) => raw.raft().term(),
            None => self.hard_state(node).term,
        }
    }

    /// The hard state `node` last made durable.
    pub fn hard_state(&self, node: NodeId) -> HardState {
        self.nodes
            .get(&node)
            .map(|n| n.durable().hard_state)
            .unwrap_or_default()
    }

    /// The first index `node`'s disk still holds (entries before it are in its snapshot).
    pub fn durable_first_index(&self, node: NodeId) -> LogIndex {
        self.nodes[&node].durable().first_index
    }

    /// The index of the snapshot on `node`'s disk (0: none).
    pub fn snapshot_index(&self, node: NodeId) -> LogIndex {
        self.nodes[&node].durable().snapshot_index
    }

    /// The bytes of log entries and snapshot on `node`'s disk.
    pub fn durable_bytes(&self, node: NodeId) -> u64 {
        self.nodes[&node].durable().bytes
    }

    /// The last index on `node`'s disk.
    pub fn durable_last_index(&self, node: NodeId) -> LogIndex {
        self.nodes[&node].durable().last_index
    }

    /// `node`'s role (follower while down).
    pub fn role(&self, node: NodeId) -> Role {
        self.raw(node)
            .map_or(Role::Follower, |raw| raw.raft().role())
    }

    /// `node`'s commit index (its durable one while it is down).
    pub fn commit(&self, node: NodeId) -> LogIndex {
        match self.raw(node) {
            Some(raw) => raw.raft().log().committed(),
            None => self.hard_state(node).commit,
        }
    }

    /// The last index `node` applied in its current life.
    pub fn applied(&self, node: NodeId) -> LogIndex {
        self.running(node).map_or(LogIndex(0), Node::applied)
    }

    /// `node`'s last log index.
    pub fn last_index(&self, node: NodeId) -> LogIndex {
        self.raw(node)
            .map_or(LogIndex(0), |raw| raw.raft().log().last_index())
    }

    /// The terms of `node`'s log entries, from index 1.
    pub fn log_terms(&self, node: NodeId) -> Vec<u64> {
        let Some(raw) = self.raw(node) else {
            return Vec::new();
        };
        let log = NodeLog(raw);
        (1..=log.last_index().0)
            .filter_map(|i| log.entry(LogIndex(i)))
            .map(|e| e.term.0)
            .collect()
    }

    /// The entry at `index` in `node`'s log.
    pub fn entry(&self, node: NodeId, index: LogIndex) -> Option<Entry> {
        self.raw(node).and_then(|raw| NodeLog(raw).entry(index))
    }

    /// The membership `node` has in force (empty while it is down).
    pub fn conf(&self, node: NodeId) -> ConfState {
        self.raw(node)
            .map(|raw| raw.raft().conf_state())
            .unwrap_or_default()
    }

    /// The numbered values `node` applied since it last started, in order.
    pub fn applied_values(&self, node: NodeId) -> &[u64] {
        self.checks
            .applied_values
            .get(&node)
            .map_or(&[], Vec::as_slice)
    }

    /// How many running nodes applied `value`.
    pub fn count_applied(&self, value: u64) -> usize {
        self.checks
            .applied_values
            .values()
            .filter(|values| values.contains(&value))
            .count()
    }

    /// The term of the entry known committed at `index`, as far as any node has applied it.
    pub fn committed_at(&self, index: LogIndex) -> Option<Term> {
        self.checks
            .checkers
            .committed_at(index)
            .map(|committed| committed.term)
    }

    /// The content digest of the entry known committed at `index`.
    pub fn committed_digest_at(&self, index: LogIndex) -> Option<u64> {
        self.checks
            .checkers
            .committed_at(index)
            .map(|committed| committed.digest)
    }

    /// The numbered value applied at `index`, if the entry there carried one.
    pub fn committed_value_at(&self, index: LogIndex) -> Option<u64> {
        self.checks.committed_values.get(&index).copied()
    }

    /// The term of the entry applied at `index`.
    pub fn committed_term_at(&self, index: LogIndex) -> Option<Term> {
        self.checks
            .checkers
            .committed_at(index)
            .map(|committed| committed.term)
    }

    /// Entries known committed (applied somewhere).
    pub fn committed_count(&self) -> usize {
        self.checks.checkers.committed_count()
    }

    /// The string `key` holds in `node`'s state machine (`None`: missing, or the node down).
    pub fn value(&self, node: NodeId, key: &[u8]) -> Option<Vec<u8>> {
        self.running(node)?
            .state_machine()
            .get(key)
            .map(<[u8]>::to_vec)
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The first broken property, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.checks.violation.as_ref()
    }

    /// The trace.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Records a note in the trace.
    pub fn note(&mut self, text: impl Into<String>) {
        self.trace
            .record(self.agenda.now_ms, TraceEvent::Note(text.into()));
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.options.seed
    }

    /// Draws from the cluster's seeded PRNG.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Panics with the trace if a property broke.
    pub fn assert_safe(&self) {
        if let Some(violation) = &self.checks.violation {
            panic!(
                "seed {}: {violation}\nlast events:\n{}",
                self.options.seed,
                self.trace.render_recent()
            );
        }
    }
}
