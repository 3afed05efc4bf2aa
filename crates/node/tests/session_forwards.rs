//! A follower's session writes whose forward no reply will come for: a leader that restarted
//! and won the next term without this follower seeing a leader change, a Forward or a
//! ForwardReply the network dropped, and an `EXEC` caught by either. Each is sent again by
//! the follower and applied once, and its client hears the write's own reply, never "may or
//! may not have been applied". Messages go through a hand-driven network whose test decides
//! what it drops.

use std::collections::BTreeMap;

use skiff_kv::{Command, Reply, Transaction, Watched};
use skiff_node::{ClientSession, Envelope, NoObserver, Node, PeerMessage, RequestId};
use skiff_raft::{Config, NodeId, Role};
use skiff_wal::MemDisk;

mod common;

use common::{outputs, DIR};

/// The follower whose client writes in a session.
const FOLLOWER: NodeId = NodeId(2);
const CLIENT: u64 = 7;

/// Three nodes without CheckQuorum, so that a restarted leader's campaign is granted at
/// once by a node that heard from it a moment ago.
fn config(id: u64) -> skiff_node::NodeConfig {
    let mut raft = Config::new(NodeId(id), [NodeId(1), NodeId(2), NodeId(3)]);
    raft.seed = id;
    raft.check_quorum = false;
    skiff_node::NodeConfig::new(raft, 7)
}

struct Network {
    nodes: BTreeMap<NodeId, Node<MemDisk>>,
    replies: Vec<(RequestId, Reply)>,
    next_request: RequestId,
}

impl Network {
    fn new() -> Network {
        let nodes = (1..=3)
            .map(|id| {
                let (node, _) = Node::open(MemDisk::new(), DIR, config(id)).expect("opens");
                (NodeId(id), node)
            })
            .collect();
        Network {
            nodes,
            replies: Vec::new(),
            next_request: 1,
        }
    }

    fn node(&mut self, id: NodeId) -> &mut Node<MemDisk> {
        self.nodes.get_mut(&id).expect("a member")
    }

    /// Runs every node and delivers what they send until nothing is left, dropping the
    /// messages `drop` picks.
    fn deliver(&mut self, mut drop: impl FnMut(&Envelope) -> bool) {
        for _round in 0..200 {
            let mut in_flight: Vec<Envelope> = Vec::new();
            for node in self.nodes.values_mut() {
                node.run(&mut NoObserver).expect("the disk works");
                let output = outputs(node);
                in_flight.extend(output.messages);
                self.replies.extend(output.replies);
            }
            if in_flight.is_empty() {
                return;
            }
            for message in in_flight.into_iter().filter(|m| !drop(m)) {
                let to = message.to();
                let _ = self.node(to).step(message);
            }
        }
        panic!("the network never went quiet");
    }

    fn settle(&mut self) {
        self.deliver(|_| false);
    }

    fn tick(&mut self, ticks: u64) {
        for _ in 0..ticks {
            for node in self.nodes.values_mut() {
                node.tick();
            }
            self.settle();
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .find(|(_, node)| node.raw().raft().role() == Role::Leader)
            .map(|(&id, _)| id)
    }

    /// Node 1 campaigns (its timer fired first) and leads.
    fn elect_node_1(&mut self) {
        self.node(NodeId(1)).campaign();
        self.settle();
        assert_eq!(self.leader(), Some(NodeId(1)));
    }

    /// The follower's client sends `command` as write `sequence` of its session.
    fn write(&mut self, command: Command, sequence: u64) -> RequestId {
        let id = self.next_request;
        self.next_request += 1;
        let session = ClientSession {
            client_id: CLIENT,
            sequence,
            lowest_unanswered: sequence,
            resubmitted: false,
            proposed_after: 0,
        };
        self.node(FOLLOWER)
            .submit_in_session(id, command, Some(session));
        id
    }

    fn replies_to(&self, request: RequestId) -> Vec<&Reply> {
        self.replies
            .iter()
            .filter(|(r, _)| *r == request)
            .map(|(_, reply)| reply)
            .collect()
    }

    /// Write `request` was answered once, with `reply`, and every node holds `key = value`.
    fn assert_answered_once(&self, request: RequestId, reply: &Reply, key: &str, value: &str) {
        assert_eq!(self.replies_to(request), [reply]);
        assert_eq!(self.values(key), vec![Some(value.as_bytes().to_vec()); 3]);
    }

    /// Key `key` on every node, once the cluster settled.
    fn values(&self, key: &str) -> Vec<Option<Vec<u8>>> {
        self.nodes
            .values()
            .map(|node| node.state_machine().get(key.as_bytes()).map(<[u8]>::to_vec))
            .collect()
    }

    /// Kills node `id` and starts it again from what it synced: its volatile state (the
    /// writes it was asked to propose, who waits for them) is gone.
    fn restart(&mut self, id: NodeId) {
        let node = self.nodes.remove(&id).expect("a member");
        let mut disk = node.into_disk();
        disk.crash();
        let (node, _) = Node::open(disk, DIR, config(id.0)).expect("recovers");
        self.nodes.insert(id, node);
    }

    /// Node 1 leads, and the follower's session is known to the cluster: its first write
    /// is applied.
    fn with_session() -> Network {
        let mut network = Network::new();
        network.elect_node_1();
        let first = network.write(incr("first"), 1);
        network.settle();
        assert_eq!(network.replies_to(first), [&Reply::Integer(1)]);
        network
    }

    /// The leader (node 1) appends the follower's pending forward, then restarts before any
    /// of its appends leaves, and wins the next term with node 3's vote while the follower
    /// hears nothing of the election: the follower's leader stays node 1, only its term
    /// moves, when node 1's first append of the new term arrives.
    fn leader_restarts_and_wins_the_next_term(&mut self) {
        let leader = NodeId(1);
        self.deliver(|m| m.from() == leader);
        let term = self.nodes[&leader].raw().raft().term();
        self.restart(leader);
        self.node(leader).campaign();
        self.deliver(|m| m.to() == FOLLOWER || m.from() == FOLLOWER);
        assert_eq!(self.leader(), Some(leader));
        assert!(self.nodes[&leader].raw().raft().term() > term);
        assert_eq!(self.nodes[&FOLLOWER].raw().raft().leader(), Some(leader));
    }
}

fn incr(key: &str) -> Command {
    Command::Incr { key: key.into() }
}

fn is_forward(message: &Envelope) -> bool {
    matches!(message.message, PeerMessage::Forward { .. })
}

fn is_forward_reply(message: &Envelope) -> bool {
    matches!(message.message, PeerMessage::ForwardReply { .. })
}

/// A forward to a leader that restarts and wins the next term is answered with its value:
/// the leader forgot who waits for the entry, so the follower sends the write again when its
/// term moves, though its leader did not change; the copy is answered from the session's
/// window and the write is applied once. Reference: thesis §6.3.
#[test]
fn a_forward_to_a_leader_that_restarts_and_wins_the_next_term_is_answered() {
    let mut network = Network::with_session();
    let write = network.write(incr("n"), 2);
    network.leader_restarts_and_wins_the_next_term();
    network.tick(3);
    network.assert_answered_once(write, &Reply::Integer(1), "n", "1");
}

/// A dropped Forward is sent again a few election timeouts later and applied once.
/// Reference: thesis §6.3.
#[test]
fn a_dropped_forward_is_sent_again_and_applied_once() {
    let mut network = Network::with_session();
    let write = network.write(incr("n"), 2);
    network.deliver(is_forward);
    network.tick(10);
    assert!(network.replies_to(write).is_empty(), "no reply yet");
    assert_eq!(network.values("n"), vec![None; 3], "never proposed");
    network.tick(40);
    network.assert_answered_once(write, &Reply::Integer(1), "n", "1");
}

/// A dropped ForwardReply leaves an applied write unanswered: its copy, sent again, is
/// answered from the session's window with the first reply, not applied a second time.
/// Reference: thesis §6.3.
#[test]
fn a_dropped_forward_reply_is_answered_from_the_window() {
    let mut network = Network::with_session();
    let write = network.write(incr("n"), 2);
    network.deliver(is_forward_reply);
    assert!(network.replies_to(write).is_empty());
    let leader = network.node(NodeId(1)).state_machine().get(b"n");
    assert_eq!(leader, Some(&b"1"[..]), "applied by the leader");
    network.tick(50);
    network.assert_answered_once(write, &Reply::Integer(1), "n", "1");
}

/// An `EXEC` whose leader applied it and then restarted, winning the next term, is sent
/// again and answered with the array it first answered: its `INCR` ran once. Reference:
/// thesis §6.3.
#[test]
fn an_exec_sent_again_across_a_leader_change_applies_once_with_its_first_array() {
    let mut network = Network::with_session();
    let exec = Command::Exec(Transaction {
        watched: vec![],
        commands: vec![incr("n"), incr("n")],
    });
    let write = network.write(exec, 2);
    network.leader_restarts_and_wins_the_next_term();
    network.tick(3);
    let first = Reply::Array(vec![Reply::Integer(1), Reply::Integer(2)]);
    network.assert_answered_once(write, &first, "n", "2");
}

/// An `EXEC` aborted by `WATCH` (the watched key changed after it was watched) and sent
/// again after its ForwardReply was dropped is answered with the nil array again, and its
/// commands never run. Reference: thesis §6.3.
#[test]
fn an_exec_aborted_by_watch_and_sent_again_answers_the_nil_array() {
    let mut network = Network::with_session();
    // The client watched "w" while it was missing; its own next write creates it.
    let other = network.write(incr("w"), 2);
    network.settle();
    assert_eq!(network.replies_to(other), [&Reply::Integer(1)]);
    let exec = Command::Exec(Transaction {
        watched: vec![Watched {
            key: b"w".to_vec(),
            revision: None,
        }],
        commands: vec![incr("n")],
    });
    let write = network.write(exec, 3);
    network.deliver(is_forward_reply);
    assert!(network.replies_to(write).is_empty());
    network.tick(50);
    assert_eq!(network.replies_to(write), [&Reply::NilArray]);
    assert_eq!(
        network.values("n"),
        vec![None; 3],
        "the aborted EXEC ran nothing"
    );
}

/// A new client's first write is lost with its leader's uncommitted tail: the leader
/// appended it, and crashed before the entry left it; node 3 wins the next term without it.
/// The follower sends it again flagged as possibly in the log, and the new leader's state
/// machine never knew the session. The copy was first sent after the follower knew the
/// election's entry committed, and no session was ever forgotten, so no copy can have been
/// applied: it starts the session, is applied once, and its client hears its value, not
/// "may or may not have been applied". Reference: thesis §6.3, §5.4.
#[test]
fn a_first_write_lost_with_its_leaders_uncommitted_tail_is_applied_once() {
    let mut network = Network::new();
    network.elect_node_1();
    let old_leader = NodeId(1);
    let write = network.write(incr("n"), 1);
    network.deliver(|m| m.from() == old_leader);
    assert!(
        network.nodes[&old_leader].raw().raft().log().last_index()
            > network.nodes[&FOLLOWER].raw().raft().log().last_index(),
        "the old leader appended the write, and nobody else has it"
    );
    network.restart(old_leader);
    network.node(NodeId(3)).campaign();
    network.deliver(|m| m.from() == old_leader || m.to() == old_leader);
    assert_eq!(
        network.nodes[&FOLLOWER].raw().raft().leader(),
        Some(NodeId(3))
    );
    network.tick(3);
    network.assert_answered_once(write, &Reply::Integer(1), "n", "1");
}
