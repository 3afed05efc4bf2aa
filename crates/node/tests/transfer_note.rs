//! A node that heard a planned transfer's election answers `TRYAGAIN` while the transfer may
//! still finish, and the plain no-quorum refusal once it is abandoned: thesis §3.10 gives a
//! transfer one election timeout, and PreVote keeps a lonely node's term from moving on.

mod common;

use common::*;
use skiff_kv::Reply;
use skiff_node::{refusals, NoObserver, Node};
use skiff_raft::{NodeId, Role};
use skiff_wal::MemDisk;

/// Runs node `from` and hands node `to` only the messages addressed to it; the rest are lost.
fn deliver(cluster: &mut NodeCluster, from: u64, to: u64) {
    let node = cluster.nodes.get_mut(&NodeId(from)).expect("exists");
    node.run(&mut NoObserver).expect("runs");
    let messages = outputs(node).messages;
    let addressee: &mut Node<MemDisk> = cluster.nodes.get_mut(&NodeId(to)).expect("exists");
    for message in messages.into_iter().filter(|m| m.to() == NodeId(to)) {
        let _ = addressee.step(message);
    }
}

fn refusal(reply: Option<Reply>) -> String {
    match reply {
        Some(Reply::Error(text)) => text,
        other => panic!("a write without a leader must be refused, got {other:?}"),
    }
}

#[test]
fn a_transfer_note_gives_way_to_the_no_quorum_refusal_after_an_election_timeout() {
    let mut cluster = NodeCluster::new();
    cluster.elect(1);
    assert_eq!(cluster.write(1, "a", "1"), Some(Reply::Ok));
    cluster.tick(3);

    // 1 hands leadership to 2; 2's transfer election reaches 3, and then 1 and 2 fall silent.
    cluster
        .nodes
        .get_mut(&NodeId(1))
        .expect("exists")
        .transfer_leadership(NodeId(2))
        .expect("2 is caught up");
    deliver(&mut cluster, 1, 2);
    deliver(&mut cluster, 2, 3);
    cluster.isolated = vec![NodeId(1), NodeId(2)];
    cluster.settle();
    assert_eq!(cluster.node(3).raw().raft().role(), Role::Follower);
    assert_eq!(cluster.node(3).raw().raft().leader(), None);

    let moving = refusal(cluster.write(3, "b", "2"));
    assert_eq!(
        moving,
        refusals::transferring(NodeId(2)),
        "the transfer may still finish"
    );

    let term = cluster.node(3).raw().raft().term();
    let timeout = config(3).raft.election_timeout_ticks as usize;
    cluster.tick(2 * timeout);
    assert_eq!(cluster.node(3).raw().raft().leader(), None);

    let refused = refusal(cluster.write(3, "c", "3"));
    assert_eq!(
        refused,
        refusals::NO_LEADER,
        "after an election timeout the transfer is abandoned and the quorum may be lost"
    );
    assert_eq!(
        cluster.node(3).raw().raft().term(),
        term,
        "PreVote kept the term: the note did not go because the term moved"
    );
}
