//! A three-node cluster of real `Node`s over `MemDisk`, delivered by hand, with an attacker's
//! way in: [`NodeCluster::forge`] hands a message to a node as if a peer had sent it, through
//! the wire codec as a forged TCP frame would come. A node stopped by a committed entry it
//! cannot apply panics the test, unless the test allows such stops
//! ([`NodeCluster::allow_undecodable_stops`]): then it is recorded and no longer driven.

#![allow(dead_code)]

use std::collections::BTreeMap;

use bytes::Bytes;
use skiff_kv::{Command, Reply};
use skiff_node::{
    wire, Effect, Envelope, Event, NoObserver, Node, NodeConfig, NodeError, PeerMessage,
    PeerMessageError, RequestId, SnapshotJob, SnapshotToken,
};
use skiff_raft::{Config, HardState, LogIndex, LogStorage, Message, NodeId, Role};
use skiff_wal::{Disk, MemDisk};

/// What a node run by [`Node::run`] left for its driver, by kind.
#[derive(Default)]
pub struct Outputs {
    pub messages: Vec<Envelope>,
    pub replies: Vec<(RequestId, Reply)>,
    pub events: Vec<Event>,
}

pub fn outputs(node: &mut Node<MemDisk>) -> Outputs {
    let mut out = Outputs::default();
    for effect in node.take_effects() {
        match effect {
            Effect::Send(message) => out.messages.push(message),
            Effect::Reply(id, reply) => out.replies.push((id, reply)),
            Effect::Event(event) => out.events.push(event),
            other => panic!("run carries out its own I/O, yet {other:?} was left"),
        }
    }
    out
}

pub const DIR: &str = "/data";

/// Asks `node` for a snapshot and takes the job it hands out, if it hands one out.
pub fn requested_snapshot(node: &mut Node<MemDisk>) -> Option<SnapshotJob> {
    node.request_snapshot().expect("considered");
    node.take_effects()
        .into_iter()
        .find_map(|effect| match effect {
            Effect::WriteSnapshot(job) => Some(job),
            _ => None,
        })
}

/// Writes the snapshot file of `token` on `node`'s disk as a driver's own thread does: seals
/// its header over `data`, writes both, syncs.
pub fn write_snapshot_file(node: &mut Node<MemDisk>, token: &mut SnapshotToken, data: &[u8]) {
    let header = token.seal(data);
    let temp = token.write().temp_path().to_path_buf();
    let disk = node.disk_mut();
    disk.create(&temp).expect("create");
    disk.append(&temp, &header).expect("header");
    disk.append(&temp, data).expect("data");
    disk.sync(&temp).expect("sync");
}

pub fn config(id: u64) -> NodeConfig {
    let mut raft = Config::new(NodeId(id), [NodeId(1), NodeId(2), NodeId(3)]);
    raft.seed = id;
    raft.snapshot_trailing_entries = 2;
    // Snapshots travel in many chunks, so the check of a snapshot's last chunk reads the
    // earlier ones back from disk.
    raft.max_snapshot_chunk_bytes = 64;
    let mut config = NodeConfig::new(raft, 7);
    config.snapshot_every_entries = 8;
    // Snapshots by the entry schedule alone, frequent whatever the store's size.
    config.snapshot_expansion_factor = 0;
    config
}

pub struct NodeCluster {
    pub nodes: BTreeMap<NodeId, Node<MemDisk>>,
    pub replies: Vec<(NodeId, RequestId, Reply)>,
    next_id: RequestId,
    /// The durable hard state of each node when last seen, to check it never goes back.
    pub durable: BTreeMap<NodeId, HardState>,
    /// Nodes cut off: messages from or to them are dropped.
    pub isolated: Vec<NodeId>,
    /// Whether a node may stop on a committed entry it cannot apply
    /// ([`NodeError::UndecodableEntry`]) without failing the test.
    pub allow_undecodable_stops: bool,
    /// The nodes so stopped, with the error: no longer run, ticked or sent to.
    pub stopped: BTreeMap<NodeId, NodeError>,
}

impl NodeCluster {
    pub fn new() -> NodeCluster {
        NodeCluster::with_config(config)
    }

    /// A cluster whose nodes take a snapshot only when asked (`request_snapshot`); a node
    /// opened again takes them every 8 entries as usual.
    pub fn with_snapshots_on_request() -> NodeCluster {
        NodeCluster::with_config(|id| {
            let mut config = config(id);
            config.snapshot_every_entries = 0;
            config
        })
    }

    fn with_config(config: impl Fn(u64) -> NodeConfig) -> NodeCluster {
        let nodes = (1..=3)
            .map(|id| {
                let (node, _) =
                    Node::open(MemDisk::new(), DIR, config(id)).expect("a new node opens");
                (NodeId(id), node)
            })
            .collect();
        NodeCluster {
            nodes,
            replies: Vec::new(),
            next_id: 1,
            durable: BTreeMap::new(),
            isolated: Vec::new(),
            allow_undecodable_stops: false,
            stopped: BTreeMap::new(),
        }
    }

    /// Records that node `id`'s run ended with `error` if the test allows that kind of stop;
    /// panics otherwise.
    fn stopped_with(&mut self, id: NodeId, error: NodeError, context: &str) {
        match error {
            NodeError::UndecodableEntry { .. } if self.allow_undecodable_stops => {
                self.stopped.insert(id, error);
            }
            error => panic!("{id} stopped{context}: {error}"),
        }
    }

    pub fn node(&self, id: u64) -> &Node<MemDisk> {
        &self.nodes[&NodeId(id)]
    }

    /// Drives every node until no message is left in flight. Honest messages may be refused
    /// too (a TimeoutNow that arrives after the leader changed): they are dropped.
    pub fn settle(&mut self) {
        for _round in 0..200 {
            let mut messages = Vec::new();
            let running: Vec<NodeId> = self
                .nodes
                .keys()
                .filter(|id| !self.stopped.contains_key(id))
                .copied()
                .collect();
            for id in running {
                let node = self.nodes.get_mut(&id).expect("exists");
                if let Err(error) = node.run(&mut NoObserver) {
                    self.stopped_with(id, error, "");
                    continue;
                }
                let output = outputs(node);
                messages.extend(output.messages);
                self.replies
                    .extend(output.replies.into_iter().map(|(r, reply)| (id, r, reply)));
            }
            if messages.is_empty() {
                return;
            }
            for message in messages {
                if self.isolated.contains(&message.from())
                    || self.isolated.contains(&message.to())
                    || self.stopped.contains_key(&message.to())
                {
                    continue;
                }
                if let Some(node) = self.nodes.get_mut(&message.to()) {
                    let _ = node.step(message);
                }
            }
        }
    }

    pub fn tick(&mut self, ticks: usize) {
        for _ in 0..ticks {
            for (id, node) in &mut self.nodes {
                if !self.stopped.contains_key(id) {
                    node.tick();
                }
            }
            self.settle();
        }
    }

    /// Ticks node `id` alone until it leads.
    pub fn elect(&mut self, id: u64) {
        for _ in 0..100 {
            if self.leader() == Some(NodeId(id)) {
                return;
            }
            self.nodes.get_mut(&NodeId(id)).expect("exists").tick();
            self.settle();
        }
        panic!("node {id} did not become leader");
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .find(|(_, n)| n.raw().raft().role() == Role::Leader)
            .map(|(&id, _)| id)
    }

    /// The value of `key` in node `id`'s state machine.
    pub fn value(&self, id: u64, key: &str) -> Option<Vec<u8>> {
        self.node(id)
            .state_machine()
            .get(key.as_bytes())
            .map(<[u8]>::to_vec)
    }

    /// Writes `key = value` through node `at` and settles; returns the reply.
    pub fn write(&mut self, at: u64, key: &str, value: &str) -> Option<Reply> {
        let command = Command::Set {
            key: key.into(),
            value: value.into(),
            condition: Default::default(),
        };
        self.run_command(at, command)
    }

    /// Submits `command` through node `at` and settles; returns the reply.
    pub fn run_command(&mut self, at: u64, command: Command) -> Option<Reply> {
        let id = self.next_id;
        self.next_id += 1;
        self.nodes
            .get_mut(&NodeId(at))
            .expect("exists")
            .submit(id, command);
        self.settle();
        self.replies
            .iter()
            .find(|(_, r, _)| *r == id)
            .map(|(_, _, reply)| reply.clone())
    }

    /// Sets node `id`'s wall clock (Unix milliseconds).
    pub fn set_clock(&mut self, id: u64, now_ms: u64) {
        self.nodes
            .get_mut(&NodeId(id))
            .expect("exists")
            .set_wall_clock_ms(now_ms);
    }

    /// Hands `message` to its addressee as a forged frame: encoded, decoded, stepped; the
    /// node then runs its batches. Returns what `step` said. A stopped node is not there to
    /// receive it: nothing happens.
    pub fn forge(&mut self, message: Message) -> Result<(), PeerMessageError> {
        if self.stopped.contains_key(&message.to) {
            return Ok(());
        }
        let mut frame = Vec::new();
        let incarnation = self
            .nodes
            .get(&message.from)
            .map_or(1, |sender| sender.incarnation());
        wire::encode_envelope(
            &Envelope::new(incarnation, PeerMessage::Raft(message)),
            &mut frame,
        );
        let decoded =
            wire::decode_envelope(&Bytes::copy_from_slice(&frame)).expect("the codec round-trips");
        let to = decoded.to();
        let node = self.nodes.get_mut(&to).expect("addressed to a member");
        let result = node.step(decoded);
        if let Err(error) = node.run(&mut NoObserver) {
            self.stopped_with(to, error, " after a forged message");
        }
        result
    }

    /// Stops node `id` and opens it again from its disk, as a restart does.
    pub fn reopen(&mut self, id: u64) {
        let node = self.nodes.remove(&NodeId(id)).expect("exists");
        let disk = node.into_disk();
        let (node, _) = Node::open(disk, DIR, config(id))
            .unwrap_or_else(|error| panic!("{id} does not start again: {error}"));
        self.nodes.insert(NodeId(id), node);
    }

    /// The invariants every node keeps whatever it was sent: `applied <= committed <= last
    /// index`, and a durable term and vote that never go back (§5.2: one vote per term).
    pub fn check_invariants(&mut self, after: &str) {
        for (&id, node) in &self.nodes {
            let log = node.raw().raft().log();
            assert!(
                node.applied() <= log.committed(),
                "{after}: {id} applied {} past committed {}",
                node.applied(),
                log.committed()
            );
            assert!(
                log.committed() <= log.last_index(),
                "{after}: {id} committed past its log"
            );
            let durable = node.wal().hard_state();
            assert!(
                durable.commit <= node.wal().last_index().max(LogIndex(0)),
                "{after}: {id} durable commit {} past its durable log {}",
                durable.commit,
                node.wal().last_index()
            );
            if let Some(before) = self.durable.get(&id) {
                assert!(
                    durable.term >= before.term,
                    "{after}: {id} durable term went back from {} to {}",
                    before.term,
                    durable.term
                );
                if durable.term == before.term && before.vote.is_some() {
                    assert_eq!(
                        durable.vote, before.vote,
                        "{after}: {id} voted twice in {}",
                        durable.term
                    );
                }
            }
            self.durable.insert(id, durable);
        }
    }
}
