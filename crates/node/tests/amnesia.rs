//! The amnesia guard: a member restarted on an empty disk (a new incarnation) is refused as
//! the member the cluster recorded, so its votes and acknowledgements never count.
//! Reference: §3.8 (a server must not forget its vote; Figure 2's persistent state).

mod common;

use common::*;
use skiff_kv::Reply;
use skiff_node::{Envelope, Event, Node, PeerMessage, PeerMessageError};
use skiff_raft::{Message, MessageBody, NodeId, Role};
use skiff_wal::MemDisk;

const WIPED_INCARNATION: u64 = 0x5eed_0003;

fn recorded_cluster() -> NodeCluster {
    let mut cluster = NodeCluster::new();
    cluster.elect(1);
    assert_eq!(cluster.write(1, "a", "1"), Some(Reply::Ok));
    cluster.tick(5);
    for id in 1..=3 {
        let recorded = cluster.node(id).member_incarnations();
        assert_eq!(
            recorded.keys().copied().collect::<Vec<_>>(),
            [NodeId(1), NodeId(2), NodeId(3)],
            "node {id} knows every member's incarnation"
        );
    }
    cluster
}

/// Node `id` loses its disk and starts again under the same id with its first-start config.
fn wipe(cluster: &mut NodeCluster, id: u64) {
    cluster.nodes.remove(&NodeId(id)).expect("exists");
    let mut config = config(id);
    config.wal.new_incarnation = WIPED_INCARNATION;
    let (node, report) = Node::open(MemDisk::new(), DIR, config).expect("a new log opens");
    assert!(report.created);
    assert_eq!(node.incarnation(), WIPED_INCARNATION);
    cluster.nodes.insert(NodeId(id), node);
}

fn vote_from(from: u64, to: u64, cluster: &NodeCluster) -> Envelope {
    let term = cluster.node(to).raw().raft().term();
    Envelope::new(
        cluster.node(from).incarnation(),
        PeerMessage::Raft(Message {
            from: NodeId(from),
            to: NodeId(to),
            term,
            body: MessageBody::RequestVoteResponse { reject: false },
        }),
    )
}

#[test]
fn every_message_of_a_wiped_member_is_refused_and_it_is_told() {
    let mut cluster = recorded_cluster();
    wipe(&mut cluster, 3);
    let vote = vote_from(3, 1, &cluster);
    let refused = cluster
        .nodes
        .get_mut(&NodeId(1))
        .expect("exists")
        .step(vote);
    match refused {
        Err(PeerMessageError::WrongIncarnation {
            from,
            found,
            recorded,
        }) => {
            assert_eq!((from, found, recorded), (NodeId(3), WIPED_INCARNATION, 1));
        }
        other => panic!("the wiped node's message must be refused, got {other:?}"),
    }
    let line = refused_line(&cluster);
    assert!(
        line.contains("node 3's data directory is not the one the cluster knows")
            && line.contains("skiff admin remove --id 3")
            && line.contains("adding `--force` if fewer than three voters would remain"),
        "{line}"
    );
    // The leader's notice reaches node 3, which then stays out of elections.
    cluster.tick(3);
    assert!(cluster.node(3).is_refused());
    assert!(!cluster.node(1).is_refused() && !cluster.node(2).is_refused());
    // The cluster keeps serving with its two intact members.
    assert_eq!(cluster.write(1, "b", "2"), Some(Reply::Ok));
    cluster.tick(2);
    assert_eq!(cluster.value(2, "b"), Some(b"2".to_vec()));
    assert_eq!(
        cluster.value(3, "b"),
        None,
        "the wiped node is not caught up as a member"
    );
}

fn refused_line(cluster: &NodeCluster) -> String {
    PeerMessageError::WrongIncarnation {
        from: NodeId(3),
        found: cluster.node(3).incarnation(),
        recorded: 1,
    }
    .to_string()
}

#[test]
fn the_notice_is_sent_at_most_once_per_election_timeout() {
    let mut cluster = recorded_cluster();
    wipe(&mut cluster, 3);
    let leader = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    let _ = leader.take_effects();
    let mut notices = 0;
    for _ in 0..5 {
        let vote = Envelope::new(
            WIPED_INCARNATION,
            PeerMessage::Raft(Message {
                from: NodeId(3),
                to: NodeId(1),
                term: leader.raw().raft().term(),
                body: MessageBody::RequestVoteResponse { reject: false },
            }),
        );
        assert!(leader.step(vote).is_err());
        notices += outputs(leader)
            .messages
            .iter()
            .filter(|m| matches!(m.message, PeerMessage::IncarnationRefused { .. }))
            .count();
    }
    assert_eq!(
        notices, 1,
        "one notice for five refused messages in one timeout"
    );
}

/// The safety property: with one intact member down, the two left (one of them wiped) must
/// not elect a leader or commit — the wiped node's vote is not the vote its id gave before.
#[test]
fn a_wiped_member_cannot_complete_a_quorum() {
    let mut cluster = recorded_cluster();
    wipe(&mut cluster, 3);
    cluster.tick(3);
    // The leader stops; node 2 and the wiped node 3 are left.
    cluster.nodes.remove(&NodeId(1));
    cluster.tick(200);
    assert_eq!(cluster.leader(), None, "no leader from a forgotten vote");
    assert!(cluster.node(3).raw().raft().role() != Role::Leader);
    assert_ne!(
        cluster.write(2, "c", "3"),
        Some(Reply::Ok),
        "nothing commits"
    );
    assert_eq!(cluster.value(2, "c"), None);
    cluster.check_invariants("after the wipe");
}

#[test]
fn the_wiped_node_logs_the_refusal_once() {
    let mut cluster = recorded_cluster();
    wipe(&mut cluster, 3);
    let mut refusals = Vec::new();
    for _ in 0..100 {
        for node in cluster.nodes.values_mut() {
            node.tick();
        }
        for (&id, node) in cluster.nodes.iter_mut() {
            node.run(&mut skiff_node::NoObserver).expect("runs");
            let output = outputs(node);
            refusals.extend(output.events.into_iter().filter_map(|event| match event {
                Event::IncarnationRefused(notice) => Some((id, notice)),
                _ => None,
            }));
            for message in output.messages {
                // Delivered below, in a second pass.
                cluster_deliver_later(message);
            }
        }
        for message in take_later() {
            if let Some(node) = cluster.nodes.get_mut(&message.to()) {
                let _ = node.step(message);
            }
        }
    }
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    let (id, notice) = refusals[0];
    assert_eq!(id, NodeId(3));
    assert_eq!(notice.incarnation, WIPED_INCARNATION);
    assert_eq!(notice.recorded, 1);
}

thread_local! {
    static LATER: std::cell::RefCell<Vec<Envelope>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn cluster_deliver_later(message: Envelope) {
    LATER.with(|later| later.borrow_mut().push(message));
}

fn take_later() -> Vec<Envelope> {
    LATER.with(|later| std::mem::take(&mut *later.borrow_mut()))
}

#[test]
fn a_refusal_notice_from_a_stranger_keeps_no_node_out_of_elections() {
    // A peer that is not a member (or bytes forged as one) names node 2's own incarnation,
    // which every member sees on its messages: the notice is ignored, node 2 stays eligible.
    let mut cluster = recorded_cluster();
    let incarnation = cluster.node(2).incarnation();
    let notice = |from: u64| {
        Envelope::new(
            0x5eed_0009,
            PeerMessage::IncarnationRefused {
                from: NodeId(from),
                to: NodeId(2),
                incarnation,
                recorded: 7,
            },
        )
    };
    let node2 = cluster.nodes.get_mut(&NodeId(2)).expect("exists");
    let _ = node2.step(notice(9));
    assert!(!cluster.node(2).is_refused(), "a stranger's notice counts");
    // The same notice from a member, under its recorded incarnation, does count.
    let member = Envelope {
        incarnation: cluster.node(1).incarnation(),
        ..notice(1)
    };
    let node2 = cluster.nodes.get_mut(&NodeId(2)).expect("exists");
    node2.step(member).expect("a member's notice is taken");
    assert!(cluster.node(2).is_refused());
}

/// A member that applied the records and then crashed, its disk keeping only what was
/// synced, knows them again as soon as it starts — before its first batch — and refuses the
/// wiped member's vote: a record takes effect only once a durable commit index covers it.
/// Reference: §3.8 (a server must not forget what it acted on).
#[test]
fn a_member_that_crashed_after_applying_the_records_still_refuses_a_wiped_member() {
    let mut cluster = recorded_cluster();
    let recorded = cluster.node(2).member_incarnations().clone();
    let node = cluster.nodes.remove(&NodeId(2)).expect("exists");
    let mut disk = node.into_disk();
    disk.crash();
    let (node, _) = Node::open(disk, DIR, config(2)).expect("node 2 starts again");
    assert_eq!(
        node.member_incarnations(),
        &recorded,
        "node 2 forgot records it had applied"
    );
    cluster.nodes.insert(NodeId(2), node);
    wipe(&mut cluster, 3);
    let vote = vote_from(3, 2, &cluster);
    let node2 = cluster.nodes.get_mut(&NodeId(2)).expect("exists");
    assert!(
        matches!(
            node2.step(vote),
            Err(PeerMessageError::WrongIncarnation {
                from: NodeId(3),
                ..
            })
        ),
        "the wiped member's vote reaches node 2's core"
    );
}
