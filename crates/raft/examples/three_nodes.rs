//! Three Raft nodes in one process, over `MemStorage` and an in-memory network.
//!
//! Each node is a [`RawNode`]; the loop below is the whole application: it ticks the nodes,
//! carries messages between them, and handles every `Ready` in the documented order —
//! persist, send, apply, then `advance`. The story: a leader is elected, commits three
//! entries that every node applies in the same order, is cut off, and a new leader takes over
//! and commits a fourth, which the old leader applies too once it is back.
//!
//! Run it with `cargo run --release -p skiff-raft --example three_nodes`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use skiff_raft::{Config, EntryKind, HardState, MemStorage, Message, NodeId, RawNode, Role};

/// Three nodes and the messages travelling between them.
#[derive(Default)]
struct ThreeNodes {
    nodes: BTreeMap<NodeId, RawNode<MemStorage>>,
    /// Each node's last durable hard state (what it would restart from).
    hard_states: BTreeMap<NodeId, HardState>,
    /// What each node's state machine applied, in order.
    applied: BTreeMap<NodeId, Vec<String>>,
    in_flight: VecDeque<Message>,
    /// A node whose messages, both ways, are lost.
    cut_off: Option<NodeId>,
    /// Every node seen leading, by term.
    leaders_by_term: BTreeMap<u64, BTreeSet<NodeId>>,
    /// What happened, line by line.
    story: Vec<String>,
}

impl ThreeNodes {
    fn new() -> ThreeNodes {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let nodes = ids.map(|id| {
            let node = RawNode::new(Config::new(id, ids), MemStorage::new(), Default::default());
            (id, node.expect("a valid configuration"))
        });
        ThreeNodes {
            nodes: nodes.into_iter().collect(),
            applied: BTreeMap::from(ids.map(|id| (id, Vec::new()))),
            ..ThreeNodes::default()
        }
    }

    /// One tick of logical time on every node, then everything it sets off.
    fn tick(&mut self) {
        for node in self.nodes.values_mut() {
            node.tick();
        }
        self.settle();
    }

    /// Handles Readies and delivers messages until nothing is left to do.
    fn settle(&mut self) {
        loop {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            let mut busy = false;
            for id in ids {
                busy |= self.handle_ready(id);
            }
            while let Some(message) = self.in_flight.pop_front() {
                busy = true;
                let node = self.nodes.get_mut(&message.to).expect("a known node");
                // A message the core refuses is dropped, as a real transport would.
                let _ = node.step(message);
            }
            if !busy {
                return;
            }
        }
    }

    /// One Ready of node `id`, in the documented order. Returns whether there was one.
    fn handle_ready(&mut self, id: NodeId) -> bool {
        let node = self.nodes.get_mut(&id).expect("a known node");
        if !node.has_ready() {
            return false;
        }
        let ready = node.ready();
        // 1. Persist: entries (and any snapshot), then the hard state.
        ready.write_log(node.storage_mut()).expect("memory storage");
        if let Some(hard_state) = ready.hard_state {
            self.hard_states.insert(id, hard_state);
        }
        // 2. Send: the messages that may leave at once, then those that promise durability.
        // The network loses what the cut-off node sends or is sent.
        let cut = self.cut_off;
        let reaches = |m: &&Message| cut.is_none_or(|cut| cut != m.from && cut != m.to);
        let outgoing = ready.messages.iter().chain(&ready.persisted_messages);
        self.in_flight.extend(outgoing.filter(reaches).cloned());
        // 3. Apply: committed client entries go to the state machine, in log order.
        for entry in &ready.committed_entries {
            if entry.kind == EntryKind::Normal {
                let command = String::from_utf8_lossy(&entry.data).into_owned();
                let index = entry.index.0;
                self.story
                    .push(format!("  {id} applies #{index} {command}"));
                self.applied.entry(id).or_default().push(command);
            }
        }
        // 4. Advance: the batch is done.
        node.advance(ready);
        let (role, term) = (node.raft().role(), node.raft().term().0);
        if role == Role::Leader && self.leaders_by_term.entry(term).or_default().insert(id) {
            let line = format!("{id} is the leader of term {term}");
            self.story.push(line);
        }
        true
    }

    /// The leader no node is cut off from, if one is known.
    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .find(|(&id, node)| node.raft().role() == Role::Leader && self.cut_off != Some(id))
            .map(|(&id, _)| id)
    }

    /// Ticks until `done` holds; panics if it never does.
    fn tick_until(&mut self, what: &str, done: impl Fn(&ThreeNodes) -> bool) {
        for _ in 0..1_000 {
            if done(self) {
                return;
            }
            self.tick();
        }
        panic!("{what} did not happen within 1,000 ticks");
    }

    fn propose(&mut self, leader: NodeId, command: &str) {
        self.story.push(format!("  {leader} proposes {command}"));
        let node = self.nodes.get_mut(&leader).expect("a known node");
        node.propose(command.into()).expect("the leader accepts");
        self.settle();
    }

    fn applied_everywhere(&self, count: usize, nodes: &[NodeId]) -> bool {
        nodes.iter().all(|id| self.applied[id].len() >= count)
    }
}

/// Runs the story; returns the finished cluster for the caller to check.
fn run_story() -> ThreeNodes {
    let all = [NodeId(1), NodeId(2), NodeId(3)];
    let mut nodes = ThreeNodes::new();
    nodes.tick_until("a first election", |n| n.leader().is_some());
    let first = nodes.leader().expect("elected");
    for command in ["x=1", "x=2", "x=3"] {
        nodes.propose(first, command);
    }
    nodes.tick_until("three commits", |n| n.applied_everywhere(3, &all));

    nodes.story.push(format!("{first} is cut off"));
    nodes.cut_off = Some(first);
    nodes.tick_until("a new election", |n| n.leader().is_some());
    let second = nodes.leader().expect("elected");
    let others: Vec<NodeId> = all.into_iter().filter(|&id| id != first).collect();
    nodes.propose(second, "x=4");
    nodes.tick_until("a commit of two", |n| n.applied_everywhere(4, &others));

    nodes.story.push(format!("{first} is reconnected"));
    nodes.cut_off = None;
    nodes.tick_until("a catch-up", |n| n.applied_everywhere(4, &all));
    for id in all {
        let line = format!("{id} applied {:?}", nodes.applied[&id]);
        nodes.story.push(line);
    }
    nodes
}

fn main() {
    for line in run_story().story {
        println!("{line}");
    }
}

#[test]
fn every_node_applies_the_same_commands_and_each_term_has_one_leader() {
    let nodes = run_story();
    let expected: Vec<String> = ["x=1", "x=2", "x=3", "x=4"].map(String::from).to_vec();
    for id in nodes.nodes.keys() {
        assert_eq!(nodes.applied[id], expected, "{id} applied another order");
    }
    // §5.2 Election Safety: at most one leader per term.
    for (term, leaders) in &nodes.leaders_by_term {
        assert_eq!(leaders.len(), 1, "term {term} had leaders {leaders:?}");
    }
    let leaders: BTreeSet<NodeId> = nodes.leaders_by_term.values().flatten().copied().collect();
    assert!(leaders.len() >= 2, "a new leader took over");
    for (id, node) in &nodes.nodes {
        let (durable, committed) = (nodes.hard_states[id].commit, node.raft().log().committed());
        assert_eq!(durable, committed, "{id}'s commit is durable");
    }
}
