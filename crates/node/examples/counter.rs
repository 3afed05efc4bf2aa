//! A replicated counter on `skiff-node`: an application brings its own state machine and
//! runs it on Skiff's driver and durable log. Three nodes over in-memory disks elect a
//! leader, apply additions on every replica, and a node restarted from its disk catches up
//! on what it missed. Run it with `cargo run --release -p skiff-node --example counter`.

use std::collections::BTreeMap;

use skiff_node::{ClientSession, Effect, Envelope, NoObserver, Node, NodeConfig, StateMachine};
use skiff_raft::{Config, LogIndex, NodeId, Role};
use skiff_wal::MemDisk;

/// The replicated state: a sum, and the last log index it reflects.
#[derive(Debug, Default)]
struct Counter {
    value: i64,
    applied: LogIndex,
}

/// What clients ask.
#[derive(Debug)]
enum Op {
    Add(i64),
    Get,
}

/// Bytes that are not an `Op`, a reply or a snapshot.
#[derive(Debug)]
struct Malformed;

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed counter bytes")
    }
}

impl std::error::Error for Malformed {}

fn i64_at(bytes: &[u8]) -> Result<i64, Malformed> {
    Ok(i64::from_le_bytes(bytes.try_into().map_err(|_| Malformed)?))
}

impl StateMachine for Counter {
    type Command = Op;
    type Reply = Result<i64, String>;
    type Config = ();
    type Error = Malformed;

    fn new(_: &()) -> Result<Counter, Malformed> {
        Ok(Counter::default())
    }
    fn is_read_only(op: &Op) -> bool {
        matches!(op, Op::Get)
    }
    fn encode_command(op: Op, _: Option<ClientSession>) -> Vec<u8> {
        match op {
            Op::Add(n) => [&[b'+'][..], &n.to_le_bytes()].concat(),
            Op::Get => vec![b'?'],
        }
    }
    fn decode_command(bytes: &[u8]) -> Result<(Op, Option<ClientSession>), Malformed> {
        match bytes.split_first() {
            Some((b'+', n)) => Ok((Op::Add(i64_at(n)?), None)),
            Some((b'?', [])) => Ok((Op::Get, None)),
            _ => Err(Malformed),
        }
    }
    fn apply(
        &mut self,
        index: LogIndex,
        op: Op,
        _: Option<ClientSession>,
        _log_time_ms: Option<u64>,
    ) -> Result<i64, String> {
        self.applied = index;
        if let Op::Add(n) = op {
            self.value = self.value.checked_add(n).ok_or("overflow")?;
        }
        Ok(self.value)
    }
    fn read(&self, _: &Op) -> Result<i64, String> {
        Ok(self.value)
    }
    fn applied_index(&self) -> LogIndex {
        self.applied
    }
    fn snapshot_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.value.to_le_bytes());
        out.extend_from_slice(&self.applied.0.to_le_bytes());
    }
    fn restore(_: &(), bytes: &[u8]) -> Result<Counter, Malformed> {
        if bytes.len() != 16 {
            return Err(Malformed);
        }
        let applied = LogIndex(i64_at(&bytes[8..])? as u64);
        Ok(Counter {
            value: i64_at(&bytes[..8])?,
            applied,
        })
    }
    fn encode_reply(reply: &Result<i64, String>) -> Vec<u8> {
        match reply {
            Ok(value) => [&[0][..], &value.to_le_bytes()].concat(),
            Err(text) => [&[1][..], text.as_bytes()].concat(),
        }
    }
    fn decode_reply(bytes: &[u8]) -> Result<Result<i64, String>, Malformed> {
        match bytes.split_first() {
            Some((0, value)) => Ok(Ok(i64_at(value)?)),
            Some((1, text)) => Ok(Err(String::from_utf8_lossy(text).into_owned())),
            _ => Err(Malformed),
        }
    }
    fn refused(text: String) -> Result<i64, String> {
        Err(text)
    }
    fn refusal_text(reply: &Result<i64, String>) -> Option<&str> {
        reply.as_ref().err().map(String::as_str)
    }

    fn done() -> Result<i64, String> {
        Ok(0)
    }
}

const DIR: &str = "/counter";

fn config(id: u64) -> NodeConfig<()> {
    let mut raft = Config::new(NodeId(id), [NodeId(1), NodeId(2), NodeId(3)]);
    raft.seed = id;
    let mut config = NodeConfig::new(raft, 42);
    config.snapshot_every_entries = 4;
    config
}

/// Three counters delivered by hand: every message arrives at once.
struct Cluster {
    nodes: BTreeMap<NodeId, Node<MemDisk, Counter>>,
    replies: Vec<Result<i64, String>>,
}

impl Cluster {
    /// Runs every node's batches in line and delivers their messages until none is left.
    fn settle(&mut self) {
        loop {
            let mut messages: Vec<Envelope> = Vec::new();
            for node in self.nodes.values_mut() {
                node.run(&mut NoObserver).expect("the in-memory disk works");
                for effect in node.take_effects() {
                    match effect {
                        Effect::Send(message) => messages.push(message),
                        Effect::Reply(_, reply) => self.replies.push(reply),
                        _ => {}
                    }
                }
            }
            if messages.is_empty() {
                return;
            }
            for message in messages {
                if let Some(node) = self.nodes.get_mut(&message.to()) {
                    let _ = node.step(message);
                }
            }
        }
    }

    fn tick_until_leader(&mut self) -> NodeId {
        loop {
            for node in self.nodes.values_mut() {
                node.tick();
            }
            self.settle();
            let leader = self
                .nodes
                .values()
                .find(|n| n.raw().raft().role() == Role::Leader);
            if let Some(leader) = leader {
                return leader.id();
            }
        }
    }
}

/// The whole story; returns each node's counter at the end.
fn demo() -> Vec<i64> {
    let open = |id, disk| Node::open(disk, DIR, config(id)).expect("opens").0;
    let nodes = (1..=3)
        .map(|id| (NodeId(id), open(id, MemDisk::new())))
        .collect();
    let mut cluster = Cluster {
        nodes,
        replies: Vec::new(),
    };
    let leader = cluster.tick_until_leader();
    for n in 1..=10 {
        cluster
            .nodes
            .get_mut(&leader)
            .expect("leads")
            .submit(n, Op::Add(n as i64));
    }
    cluster.settle();
    // A node stops (its disk keeps only what was synced), the others go on without it.
    let down = NodeId(if leader == NodeId(3) { 2 } else { 3 });
    let mut disk = cluster.nodes.remove(&down).expect("exists").into_disk();
    disk.crash();
    cluster
        .nodes
        .get_mut(&leader)
        .expect("leads")
        .submit(11, Op::Add(100));
    cluster.settle();
    // It restarts from its disk and catches up from the leader.
    cluster.nodes.insert(down, open(down.0, disk));
    for _ in 0..10 {
        for node in cluster.nodes.values_mut() {
            node.tick();
        }
        cluster.settle();
    }
    cluster
        .nodes
        .values()
        .map(|n| n.state_machine().value)
        .collect()
}

#[cfg_attr(test, allow(dead_code))]
fn main() {
    println!("counters after restart and catch-up: {:?}", demo());
}

#[test]
fn three_counters_agree_after_a_restart() {
    assert_eq!(demo(), vec![155, 155, 155]);
}
