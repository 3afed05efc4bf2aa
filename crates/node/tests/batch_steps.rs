//! The optional steps a driver may take inside a batch: `apply_durable`, which applies what
//! was durable before the batch (in steps, answering clients as it goes), and
//! `sync_written` + `release_synced`, which hand out what the sync made true before anything
//! is applied. Each scenario drives one node's batch by hand, step by step.

use skiff_kv::{Command, Reply, StateMachine as Kv};
use skiff_node::{
    BatchToken, Effect, Envelope, Event, NoObserver, Node, Observer, PeerMessage, RequestId,
    SyncToken,
};
use skiff_raft::{
    AppendResponse, ConfChange, ConfChangeStep, Entry, HardState, MessageBody, NodeId,
};
use skiff_wal::MemDisk;

mod common;

use common::{outputs, NodeCluster};

fn incr() -> Command {
    Command::Incr { key: "n".into() }
}

fn set(key: &str, value: &str) -> Command {
    Command::Set {
        key: key.into(),
        value: value.into(),
        condition: Default::default(),
    }
}

/// Begins `node`'s next batch and takes its write token; the messages it hands out meanwhile
/// go to `sent`.
fn begin(node: &mut Node<MemDisk>, sent: &mut Vec<Envelope>) -> BatchToken {
    assert!(node.begin_batch(), "a batch begins");
    let mut token = None;
    for effect in node.take_effects() {
        match effect {
            Effect::WriteBatch(write) => token = Some(write),
            Effect::Send(message) => sent.push(message),
            _ => {}
        }
    }
    token.expect("a batch to write")
}

/// Writes the batch and takes its sync token.
fn write(node: &mut Node<MemDisk>, token: BatchToken) -> SyncToken {
    node.write_batch(token).expect("written");
    node.take_effects()
        .into_iter()
        .find_map(|effect| match effect {
            Effect::SyncBatch(sync) => Some(sync),
            _ => None,
        })
        .expect("a batch to sync")
}

/// The replies `node` handed out since the last look, in order.
fn replies(node: &mut Node<MemDisk>) -> Vec<(RequestId, Reply)> {
    outputs(node).replies
}

/// Whether `messages` hold an accepting append acknowledgement to `leader`.
fn acknowledges(messages: &[Envelope], leader: NodeId) -> bool {
    messages.iter().any(|envelope| {
        envelope.to() == leader
            && matches!(
                &envelope.message,
                PeerMessage::Raft(message) if matches!(
                    message.body,
                    MessageBody::AppendEntriesResponse { result: AppendResponse::Accepted { .. }, .. }
                )
            )
    })
}

/// Counts what the node reports durable.
#[derive(Default)]
struct Durable {
    reports: usize,
    entries: usize,
}

impl Observer<Kv> for Durable {
    fn persisted(&mut self, entries: &[Entry], _hard_state: Option<HardState>) {
        self.reports += 1;
        self.entries += entries.len();
    }
}

/// A follower's batch that stores a new entry and learns that an earlier one is committed:
/// once its sync is done, the acknowledgement is handed out before the committed entry is
/// applied (the leader's commitment waits for the acknowledgement, not for the apply; thesis
/// §3.8 asks only that it follow the sync), and the apply follows in `batch_synced`.
#[test]
fn a_followers_acknowledgement_is_released_before_its_batch_applies_anything() {
    let mut cluster = NodeCluster::with_snapshots_on_request();
    cluster.elect(1);
    cluster.write(1, "a", "1");
    // The leader's next append carries `b` and a commit index that covers `a`.
    let leader = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    leader.submit(100, set("b", "2"));
    let mut sent = Vec::new();
    let token = begin(leader, &mut sent);
    let sync = write(leader, token);
    leader.sync_batch(sync, &mut NoObserver).expect("synced");
    sent.extend(outputs(leader).messages);
    let append = sent
        .into_iter()
        .find(|message| message.to() == NodeId(2))
        .expect("an append to node 2");

    let follower = cluster.nodes.get_mut(&NodeId(2)).expect("exists");
    let applied_before = follower.state_machine().get(b"a").map(<[u8]>::to_vec);
    follower.step(append).expect("addressed to it");
    let token = begin(follower, &mut Vec::new());
    let sync = write(follower, token);
    follower.sync_written(&sync).expect("synced");
    let mut durable = Durable::default();
    follower
        .release_synced(&sync, &mut durable)
        .expect("released");
    assert_eq!((durable.reports, durable.entries), (1, 1), "b is durable");
    let released = outputs(follower).messages;
    assert!(
        acknowledges(&released, NodeId(1)),
        "the acknowledgement is out once the sync is done: {released:?}"
    );
    assert_eq!(applied_before, None, "a was not applied here before");
    assert_eq!(
        follower.state_machine().get(b"a"),
        None,
        "nothing is applied before the acknowledgement leaves"
    );
    // Released once: neither a second call nor the batch's end reports the batch durable
    // again or hands out a second acknowledgement.
    follower
        .release_synced(&sync, &mut durable)
        .expect("a second call does nothing");
    follower.batch_synced(sync, &mut durable).expect("done");
    assert_eq!(durable.reports, 1, "reported durable once");
    let rest = outputs(follower).messages;
    assert!(
        !acknowledges(&rest, NodeId(1)),
        "acknowledged twice: {rest:?}"
    );
    assert_eq!(follower.state_machine().get(b"a"), Some(&b"1"[..]));
}
// Reference: thesis §3.8 (an acknowledgement follows the sync; nothing waits for an apply).

/// Stores `commands` on node 1 (the leader) and on both followers, and has the leader learn
/// from their acknowledgements that they are committed: its next batch carries them, durable.
fn commit_unapplied(cluster: &mut NodeCluster, commands: Vec<Command>) {
    let leader = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    for (id, command) in (1..).zip(commands) {
        leader.submit(id, command);
    }
    let mut sent = Vec::new();
    let token = begin(leader, &mut sent);
    let sync = write(leader, token);
    leader.sync_batch(sync, &mut NoObserver).expect("synced");
    let mut acknowledgements = Vec::new();
    for append in sent {
        let follower = cluster.nodes.get_mut(&append.to()).expect("exists");
        follower.step(append).expect("addressed to it");
        follower.run(&mut NoObserver).expect("runs");
        acknowledgements.extend(outputs(follower).messages);
    }
    let leader = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    assert!(
        replies(leader).is_empty(),
        "nothing was committed before the acknowledgements"
    );
    for acknowledgement in acknowledgements {
        leader.step(acknowledgement).expect("addressed to it");
    }
}

/// A leader's batch that carries five committed, durable increments: `apply_durable` applies
/// them two at a time with their replies, while the batch is still in flight, until none is
/// left; `batch_synced` then applies none again: the counter ends at 5 and each client has
/// one reply, in order.
#[test]
fn a_leader_applies_what_was_durable_in_steps_and_each_entry_once() {
    let mut cluster = NodeCluster::with_snapshots_on_request();
    cluster.elect(1);
    commit_unapplied(&mut cluster, vec![incr(), incr(), incr(), incr(), incr()]);
    let leader = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    let token = begin(leader, &mut Vec::new());
    let sync = write(leader, token);
    assert!(
        leader.apply_durable(&mut NoObserver, 2).expect("applied"),
        "three are left"
    );
    let first = replies(leader);
    assert_eq!(first, [(1, Reply::Integer(1)), (2, Reply::Integer(2))]);
    assert!(leader.is_writing(), "the batch is still in flight");
    assert!(leader.apply_durable(&mut NoObserver, 2).expect("applied"));
    let second = replies(leader);
    assert_eq!(second, [(3, Reply::Integer(3)), (4, Reply::Integer(4))]);
    assert!(
        !leader.apply_durable(&mut NoObserver, 2).expect("applied"),
        "the fifth was the last"
    );
    let last = replies(leader);
    assert_eq!(last, [(5, Reply::Integer(5))]);
    leader.sync_batch(sync, &mut NoObserver).expect("synced");
    assert!(
        replies(leader).is_empty(),
        "the batch's end applied nothing twice"
    );
    assert_eq!(leader.state_machine().get(b"n"), Some(&b"5"[..]));
    assert!(
        !leader.apply_durable(&mut NoObserver, 2).expect("no batch"),
        "with no batch in flight nothing is applied"
    );
}

/// A committed configuration change takes effect in the core when the batch advances, so
/// `apply_durable` stops before it: the write ahead of it is applied early, the change and the
/// write after it only by `batch_synced`, in order.
#[test]
fn what_is_applied_early_stops_at_a_configuration_change() {
    let mut cluster = NodeCluster::with_snapshots_on_request();
    cluster.elect(1);
    let leader = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    leader.submit(40, set("a", "1"));
    let change = ConfChange {
        steps: vec![ConfChangeStep::AddLearner(NodeId(4))],
    };
    leader.propose_conf_change(50, change);
    leader.submit(60, set("b", "2"));
    commit_unapplied(&mut cluster, Vec::new());
    let leader = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    let token = begin(leader, &mut Vec::new());
    let sync = write(leader, token);
    assert!(
        !leader
            .apply_durable(&mut NoObserver, usize::MAX)
            .expect("applied"),
        "nothing more may be applied early"
    );
    let early = outputs(leader).events;
    assert!(
        !early
            .iter()
            .any(|event| matches!(event, Event::ConfChangeApplied { .. })),
        "the change waits for the batch's end: {early:?}"
    );
    assert_eq!(
        leader.state_machine().get(b"a"),
        Some(&b"1"[..]),
        "a comes before it"
    );
    assert_eq!(leader.state_machine().get(b"b"), None, "b comes after it");
    leader.sync_batch(sync, &mut NoObserver).expect("synced");
    let rest = outputs(leader).events;
    assert!(rest
        .iter()
        .any(|event| matches!(event, Event::ConfChangeApplied { .. })));
    assert_eq!(leader.state_machine().get(b"b"), Some(&b"2"[..]));
}
