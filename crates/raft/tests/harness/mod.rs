//! A small deterministic in-memory cluster for the core's own tests, in the spirit of
//! etcd's `network` (raft_test.go); `single` holds the helpers to drive one node by hand.
//!
//! Every node runs the Ready loop exactly as the contract says: append `entries` and keep
//! `hard_state` (both durable at once in memory), then send `messages` and
//! `persisted_messages`, apply `committed_entries`, and `advance`.
#![allow(dead_code)]

mod single;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use single::*;

use skiff_raft::{
    Config, Entry, EntryKind, HardState, LogIndex, MemStorage, Message, NodeId, RawNode, ReadState,
    Role, Term,
};

/// Sees a message before delivery; returns false to drop it.
type Hook = Box<dyn FnMut(&Message) -> bool>;

/// N nodes, a FIFO network that can drop messages between pairs, and crash/restart.
#[derive(Default)]
pub struct CoreCluster {
    pub configs: BTreeMap<NodeId, Config>,
    nodes: BTreeMap<NodeId, RawNode<MemStorage>>,
    /// What survives a crash: the durable log and the last persisted hard state.
    durable: BTreeMap<NodeId, (MemStorage, HardState)>,
    pub hard_states: BTreeMap<NodeId, HardState>,
    /// The entries each node handed to its state machine, in order.
    pub applied: BTreeMap<NodeId, Vec<Entry>>,
    /// The reads each node's Readies confirmed, in order.
    pub read_states: BTreeMap<NodeId, Vec<ReadState>>,
    /// The reads each node's Readies refused, in order.
    pub failed_reads: BTreeMap<NodeId, Vec<u64>>,
    pub outbox: VecDeque<Message>,
    /// Every message that reached its recipient, in order.
    pub delivered: Vec<Message>,
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Sees every message about to be delivered; returns false to drop it.
    intercept: Option<Hook>,
}

impl CoreCluster {
    /// `n` fresh nodes with the default configuration.
    pub fn new(n: u64) -> CoreCluster {
        CoreCluster::with_config(n, |_| {})
    }

    /// `n` fresh nodes, each configuration adjusted by `adjust`.
    pub fn with_config(n: u64, adjust: impl Fn(&mut Config)) -> CoreCluster {
        let mut cluster = CoreCluster::default();
        for id in ids(n) {
            let mut config = config(id.0, n);
            config.seed = 1000 + id.0;
            adjust(&mut config);
            let node = RawNode::new(config.clone(), MemStorage::new(), HardState::default());
            cluster.configs.insert(id, config);
            cluster.nodes.insert(id, node.unwrap());
            cluster.hard_states.insert(id, HardState::default());
            cluster.applied.insert(id, Vec::new());
        }
        cluster
    }

    pub fn node(&self, id: u64) -> &RawNode<MemStorage> {
        &self.nodes[&NodeId(id)]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut RawNode<MemStorage> {
        self.nodes.get_mut(&NodeId(id)).expect("node is up")
    }

    /// The payloads node `id` applied, no-ops left out.
    pub fn applied_data(&self, id: u64) -> Vec<Vec<u8>> {
        self.applied[&NodeId(id)]
            .iter()
            .filter(|e| e.kind == EntryKind::Normal)
            .map(|e| e.data.to_vec())
            .collect()
    }

    /// Runs node `id`'s Ready loop until it has nothing left: persist, send, apply, advance.
    pub fn drive(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        for _batch in 0..100 {
            if !node.has_ready() {
                return;
            }
            let ready = node.ready();
            persist(node.storage_mut(), &ready);
            if let Some(hs) = ready.hard_state {
                self.hard_states.insert(id, hs);
            }
            self.outbox.extend(ready.messages.iter().cloned());
            self.outbox.extend(ready.persisted_messages.iter().cloned());
            let applied = self.applied.get_mut(&id).unwrap();
            applied.extend(ready.committed_entries.iter().cloned());
            let reads = self.read_states.entry(id).or_default();
            reads.extend(ready.read_states.iter().copied());
            let failed = self.failed_reads.entry(id).or_default();
            failed.extend(ready.failed_reads.iter().copied());
            node.advance(ready);
        }
        panic!("node {id} never ran out of work");
    }

    pub fn drive_all(&mut self) {
        let live: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in live {
            self.drive(id);
        }
    }

    /// Delivers messages (in FIFO order) until the network is quiet.
    pub fn deliver_all(&mut self) {
        for _step in 0..100_000 {
            self.drive_all();
            let Some(m) = self.outbox.pop_front() else {
                return;
            };
            self.deliver(m);
        }
        panic!("the network never became quiet");
    }

    fn deliver(&mut self, m: Message) {
        if self.cut.contains(&(m.from, m.to)) {
            return;
        }
        if let Some(intercept) = self.intercept.as_mut() {
            if !intercept(&m) {
                return;
            }
        }
        if let Some(node) = self.nodes.get_mut(&m.to) {
            self.delivered.push(m.clone());
            node.step(m).unwrap();
        }
    }

    /// Installs a hook that sees each message before delivery; it returns false to drop it.
    pub fn intercept(&mut self, hook: impl FnMut(&Message) -> bool + 'static) {
        self.intercept = Some(Box::new(hook));
    }

    /// Drops every message between `a` and `b`, both ways.
    pub fn cut(&mut self, a: u64, b: u64) {
        self.cut.insert((NodeId(a), NodeId(b)));
        self.cut.insert((NodeId(b), NodeId(a)));
    }

    /// Cuts node `id` off from every other node.
    pub fn isolate(&mut self, id: u64) {
        for other in self.configs.keys().map(|n| n.0).collect::<Vec<_>>() {
            if other != id {
                self.cut(id, other);
            }
        }
    }

    /// Restores every link and removes the intercept hook.
    pub fn heal(&mut self) {
        self.cut.clear();
        self.intercept = None;
    }

    /// One tick for every live node, then delivery until quiet.
    pub fn tick_all(&mut self) {
        for node in self.nodes.values_mut() {
            node.tick();
        }
        self.deliver_all();
    }

    /// The leader of the highest term among live nodes, if there is one.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.raft().role() == Role::Leader)
            .max_by_key(|n| n.raft().term())
            .map(|n| n.raft().id())
    }

    /// Ticks everyone until a leader is elected; returns its id.
    pub fn tick_until_leader(&mut self) -> u64 {
        for _tick in 0..1_000 {
            if let Some(leader) = self.leader() {
                return leader.0;
            }
            self.tick_all();
        }
        panic!("no leader after 1000 ticks");
    }

    /// Proposes `data` at node `id` and delivers until quiet.
    pub fn propose(&mut self, id: u64, data: &[u8]) -> (LogIndex, Term) {
        let at = self.node_mut(id).propose(data.to_vec()).unwrap();
        self.deliver_all();
        at
    }

    /// Stops node `id`: its volatile state is lost, its durable log and hard state are kept.
    /// Messages already queued from it stay on the wire.
    pub fn crash(&mut self, id: u64) {
        let id = NodeId(id);
        let node = self.nodes.remove(&id).expect("node is up");
        let storage = node.storage().clone();
        self.durable.insert(id, (storage, self.hard_states[&id]));
    }

    /// Starts node `id` again from what it persisted; its state machine keeps what it applied.
    pub fn restart(&mut self, id: u64) {
        let id = NodeId(id);
        let (storage, hard_state) = self.durable.remove(&id).expect("node is down");
        let mut config = self.configs[&id].clone();
        config.applied = self.applied[&id]
            .last()
            .map(|e| e.index)
            .unwrap_or_default();
        let node = RawNode::new(config, storage, hard_state).unwrap();
        self.nodes.insert(id, node);
    }

    /// The terms of node `id`'s durable log, in index order.
    pub fn log_terms(&self, id: u64) -> Vec<u64> {
        let entries = self.node(id).storage().all_entries();
        entries.iter().map(|e| e.term.0).collect()
    }
}
