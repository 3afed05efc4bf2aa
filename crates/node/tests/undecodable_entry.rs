//! A committed entry this build cannot decode — a payload tag or a command version of a newer
//! build — stops the node's apply with an error naming its index, rather than being skipped:
//! skipped by this node only, it would make its state diverge from the others' (§5.3).

mod common;

use common::NodeCluster;
use skiff_kv::{Command, Reply, Request, COMMAND_FORMAT_VERSION, REQUEST_FORMAT_VERSION};
use skiff_node::payload::Stamped;
use skiff_node::{Envelope, NoObserver, NodeError, PeerMessage};
use skiff_raft::{Entry, EntryKind, LogIndex, Message, MessageBody, NodeId};

const T0: u64 = 1_700_000_000_000;

/// A client's `SET key value` as the leader stamps it for the log.
fn stamped_set(key: &str, value: &str) -> Vec<u8> {
    let request = Request {
        session: None,
        command: Command::Set {
            key: key.into(),
            value: value.into(),
            condition: Default::default(),
        },
    }
    .encode();
    Stamped {
        log_time_ms: T0,
        request: &request,
    }
    .encode()
}

/// Appends `payloads` as committed entries of the leader's term to node 2's log, as the
/// leader (node 1) would send them, and runs node 2: returns what the run said.
fn commit_on_follower(
    cluster: &mut NodeCluster,
    payloads: Vec<Vec<u8>>,
) -> (Result<(), NodeError>, LogIndex) {
    let incarnation = cluster.node(1).incarnation();
    let follower = cluster.nodes.get_mut(&NodeId(2)).expect("exists");
    let log = follower.raw().raft().log();
    let (prev_index, prev_term) = (log.last_index(), log.last_term());
    let term = follower.raw().raft().term();
    let entries: Vec<Entry> = payloads
        .into_iter()
        .zip(1..)
        .map(|(data, offset)| Entry {
            term,
            index: LogIndex(prev_index.0 + offset),
            kind: EntryKind::Normal,
            data: data.into(),
        })
        .collect();
    let last = entries.last().expect("some entries").index;
    let message = Message {
        from: NodeId(1),
        to: NodeId(2),
        term,
        body: MessageBody::AppendEntries {
            prev_log_index: prev_index,
            prev_log_term: prev_term,
            entries,
            leader_commit: last,
            read_round: 0,
        },
    };
    follower
        .step(Envelope::new(incarnation, PeerMessage::Raft(message)))
        .expect("the leader's append is taken");
    (follower.run(&mut NoObserver), prev_index)
}

/// Node 2 of a cluster led by node 1 that committed `a = 1` everywhere.
fn healthy() -> NodeCluster {
    let mut cluster = NodeCluster::new();
    cluster.set_clock(1, T0);
    cluster.elect(1);
    assert_eq!(cluster.write(1, "a", "1"), Some(Reply::Ok));
    cluster.tick(2);
    cluster
}

/// Checks that node 2 stopped at the entry after `prev` + 1 (the second of three): the first
/// is applied, the undecodable one and what follows are not.
fn assert_halted_at_second(
    cluster: &NodeCluster,
    outcome: Result<(), NodeError>,
    prev: LogIndex,
    why: &str,
) {
    let bad = LogIndex(prev.0 + 2);
    match outcome {
        Err(NodeError::UndecodableEntry { index, ref reason }) => {
            assert_eq!(index, bad);
            assert!(reason.contains(why), "{reason}");
        }
        other => panic!("the node went on: {other:?}"),
    }
    let message = outcome.unwrap_err().to_string();
    assert!(
        message.contains(&format!("index {bad}")) && message.contains("upgrade this node"),
        "{message}"
    );
    let node = cluster.node(2);
    assert_eq!(
        node.applied(),
        LogIndex(prev.0 + 1),
        "nothing after it applied"
    );
    assert_eq!(cluster.value(2, "before").as_deref(), Some(&b"1"[..]));
    assert_eq!(cluster.value(2, "after"), None);
    assert_eq!(cluster.value(2, "a").as_deref(), Some(&b"1"[..]));
}

#[test]
fn an_entry_with_an_unknown_payload_tag_halts_the_apply_at_its_index() {
    let mut cluster = healthy();
    let mut newer = vec![0x84];
    newer.extend_from_slice(&T0.to_le_bytes());
    newer.extend_from_slice(b"of a newer build");
    let (outcome, prev) = commit_on_follower(
        &mut cluster,
        vec![stamped_set("before", "1"), newer, stamped_set("after", "2")],
    );
    assert_halted_at_second(&cluster, outcome, prev, "");
}

#[test]
fn an_entry_with_a_newer_command_version_halts_the_apply_at_its_index() {
    let mut cluster = healthy();
    let mut request = Request {
        session: None,
        command: Command::Set {
            key: "k".into(),
            value: "v".into(),
            condition: Default::default(),
        },
    }
    .encode();
    assert_eq!(
        request[..3],
        [REQUEST_FORMAT_VERSION, 0, COMMAND_FORMAT_VERSION]
    );
    request[2] = COMMAND_FORMAT_VERSION + 1;
    let newer = Stamped {
        log_time_ms: T0,
        request: &request,
    }
    .encode();
    let (outcome, prev) = commit_on_follower(
        &mut cluster,
        vec![stamped_set("before", "1"), newer, stamped_set("after", "2")],
    );
    assert_halted_at_second(&cluster, outcome, prev, "version");
    assert_eq!(cluster.value(2, "k"), None);
}
