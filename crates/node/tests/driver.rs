//! The driver's contract, scenario by scenario, on a small cluster delivered by hand: every
//! message arrives at once and in order, so each test is about the driver, not the network.

use std::collections::BTreeMap;

use skiff_kv::{Command, Reply, StateMachine as Kv};
use skiff_node::{
    refusals, ClientSession, Effect, Envelope, Event, NoObserver, Node, NodeConfig, NodeError,
    PeerMessage, RequestId, SnapshotJob, StateMachine as _,
};
use skiff_raft::{Config, LogIndex, LogStorage, NodeId, Role};
use skiff_wal::MemDisk;

mod common;

use common::outputs;

const DIR: &str = "/data";

struct NodeCluster {
    nodes: BTreeMap<NodeId, Node<MemDisk>>,
    /// Nodes whose messages are dropped both ways.
    isolated: Vec<NodeId>,
    replies: Vec<(NodeId, RequestId, Reply)>,
    events: Vec<(NodeId, Event)>,
    next_id: RequestId,
}

fn config(id: u64, snapshot_every_entries: u64) -> NodeConfig {
    let mut raft = Config::new(NodeId(id), [NodeId(1), NodeId(2), NodeId(3)]);
    raft.seed = id;
    raft.snapshot_trailing_entries = 2;
    let mut config = NodeConfig::new(raft, 7);
    config.snapshot_every_entries = snapshot_every_entries;
    // The entry schedule alone; the expansion factor's scenario sets its own.
    config.snapshot_expansion_factor = 0;
    config
}

impl NodeCluster {
    fn new(snapshot_every_entries: u64) -> NodeCluster {
        NodeCluster::with_config(|id| config(id, snapshot_every_entries))
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
            isolated: Vec::new(),
            replies: Vec::new(),
            events: Vec::new(),
            next_id: 1,
        }
    }

    /// Drives every node until no message is left in flight.
    fn settle(&mut self) {
        loop {
            let mut messages = Vec::new();
            for (&id, node) in &mut self.nodes {
                node.run(&mut NoObserver).expect("the disk works");
                let output = outputs(node);
                messages.extend(output.messages);
                self.events
                    .extend(output.events.into_iter().map(|event| (id, event)));
                self.replies
                    .extend(output.replies.into_iter().map(|(r, reply)| (id, r, reply)));
            }
            if messages.is_empty() {
                return;
            }
            for message in messages {
                let (from, to) = (message.from(), message.to());
                if self.isolated.contains(&from) || self.isolated.contains(&to) {
                    continue;
                }
                if let Some(node) = self.nodes.get_mut(&to) {
                    node.step(message).expect("addressed to it");
                }
            }
        }
    }

    fn tick(&mut self, ticks: usize) {
        for _ in 0..ticks {
            for node in self.nodes.values_mut() {
                node.tick();
            }
            self.settle();
        }
    }

    fn elect(&mut self, id: u64) {
        // Node `id` times out first: ticking it alone to its election timeout and beyond.
        for _ in 0..40 {
            if self.leader() == Some(NodeId(id)) {
                return;
            }
            self.nodes.get_mut(&NodeId(id)).expect("exists").tick();
            self.settle();
        }
        panic!("node {id} did not become leader");
    }

    /// Ticks the nodes that are not isolated until one of them leads.
    fn elect_among_connected(&mut self) -> NodeId {
        for _ in 0..100 {
            if let Some(leader) = self.leader_among_connected() {
                return leader;
            }
            for (id, node) in &mut self.nodes {
                if !self.isolated.contains(id) {
                    node.tick();
                }
            }
            self.settle();
        }
        panic!("no leader among the connected nodes");
    }

    fn leader_among_connected(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .find(|(id, n)| !self.isolated.contains(id) && n.raw().raft().role() == Role::Leader)
            .map(|(&id, _)| id)
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .find(|(_, n)| n.raw().raft().role() == Role::Leader)
            .map(|(&id, _)| id)
    }

    fn submit(&mut self, at: u64, command: Command) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        self.nodes
            .get_mut(&NodeId(at))
            .expect("exists")
            .submit(id, command);
        id
    }

    fn submit_in_session(&mut self, at: u64, command: Command, sequence: u64) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        let session = ClientSession {
            client_id: 7,
            sequence,
            lowest_unanswered: 1,
            resubmitted: false,
            proposed_after: 0,
        };
        self.nodes
            .get_mut(&NodeId(at))
            .expect("exists")
            .submit_in_session(id, command, Some(session));
        id
    }

    /// Every reply to `request`, on whichever node.
    fn replies_to(&self, request: RequestId) -> Vec<&Reply> {
        self.replies
            .iter()
            .filter(|(_, r, _)| *r == request)
            .map(|(_, _, reply)| reply)
            .collect()
    }

    fn resubmissions(&self) -> usize {
        self.events
            .iter()
            .filter(|(_, event)| matches!(event, Event::WriteResubmitted { .. }))
            .count()
    }

    fn reply(&self, request: RequestId) -> Option<&Reply> {
        self.replies
            .iter()
            .find(|(_, r, _)| *r == request)
            .map(|(_, _, reply)| reply)
    }

    fn crash_and_restart(&mut self, id: u64) {
        let node = self.nodes.remove(&NodeId(id)).expect("exists");
        let mut disk = node.into_disk();
        disk.crash();
        let (node, _) = Node::open(disk, DIR, config(id, 0)).expect("recovers");
        self.nodes.insert(NodeId(id), node);
    }
}

fn set(key: &str, value: &str) -> Command {
    Command::Set {
        key: key.into(),
        value: value.into(),
        condition: Default::default(),
    }
}

fn get(key: &str) -> Command {
    Command::Get { key: key.into() }
}

#[test]
fn a_write_is_answered_once_committed_and_applied_everywhere() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    let write = cluster.submit(1, set("k", "v"));
    cluster.settle();
    assert_eq!(cluster.reply(write), Some(&Reply::Ok));
    // The commit index reaches the followers with the next heartbeat.
    cluster.tick(2);
    for node in cluster.nodes.values() {
        assert_eq!(node.state_machine().get(b"k"), Some(&b"v"[..]));
    }
}

#[test]
fn a_write_is_not_answered_before_a_majority_stores_it() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    cluster.isolated = vec![NodeId(2), NodeId(3)];
    let write = cluster.submit(1, set("k", "v"));
    cluster.settle();
    assert_eq!(cluster.reply(write), None, "no majority stored it yet");
    cluster.isolated.clear();
    cluster.tick(2);
    assert_eq!(cluster.reply(write), Some(&Reply::Ok));
}

#[test]
fn a_follower_forwards_writes_and_serves_reads_through_read_index() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    let write = cluster.submit(2, set("k", "from-follower"));
    cluster.settle();
    assert_eq!(cluster.reply(write), Some(&Reply::Ok));
    // Node 3 has not yet heard that the write committed, but its read waits for the
    // leader's commit index, so it sees the write.
    let read = cluster.submit(3, get("k"));
    cluster.settle();
    assert_eq!(
        cluster.reply(read),
        Some(&Reply::Bulk(b"from-follower".to_vec()))
    );
}

#[test]
fn without_a_leader_requests_fail_fast_with_clusterdown() {
    let mut cluster = NodeCluster::new(0);
    let write = cluster.submit(1, set("k", "v"));
    let read = cluster.submit(2, get("k"));
    cluster.settle();
    assert_eq!(
        cluster.reply(write),
        Some(&Reply::error(refusals::NO_LEADER))
    );
    assert_eq!(
        cluster.reply(read),
        Some(&Reply::error(refusals::NO_LEADER))
    );
}

#[test]
fn a_deposed_leaders_uncommitted_write_fails_as_not_applied() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    cluster.isolated = vec![NodeId(1)];
    let lost = cluster.submit(1, set("k", "lost"));
    cluster.settle();
    let new_leader = cluster.elect_among_connected();
    let kept = cluster.submit(new_leader.0, set("k", "kept"));
    cluster.settle();
    cluster.isolated.clear();
    cluster.tick(3);
    assert_eq!(cluster.reply(kept), Some(&Reply::Ok));
    assert_eq!(
        cluster.reply(lost),
        Some(&Reply::error(refusals::LEADER_CHANGED)),
        "the old leader's entry was replaced, so its client learns it was not applied"
    );
    assert_eq!(
        cluster.nodes[&NodeId(1)].state_machine().get(b"k"),
        Some(&b"kept"[..])
    );
}

#[test]
fn requests_beyond_the_pending_limit_are_refused() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    cluster.isolated = vec![NodeId(2), NodeId(3)];
    let node = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    let limit = 10_000;
    for id in 0..limit as u64 {
        node.submit(1_000_000 + id, set("k", "v"));
    }
    assert_eq!(node.pending_requests(), limit);
    node.submit(42, set("k", "v"));
    let output = outputs(node);
    assert_eq!(output.replies, vec![(42, Reply::error(refusals::BUSY))]);
}

#[test]
fn a_restarted_node_recovers_its_log_and_state_from_disk() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    for i in 0..5 {
        cluster.submit(1, set(&format!("k{i}"), "v"));
    }
    cluster.settle();
    cluster.tick(2);
    cluster.crash_and_restart(2);
    let restarted = &cluster.nodes[&NodeId(2)];
    assert!(
        restarted.raw().raft().log().last_index() >= LogIndex(6),
        "the no-op and the five writes were durable before they were acknowledged"
    );
    // The commit index is not synced on its own, so the restarted node may know less of it
    // than it did; the leader's next heartbeat tells it again. Committed entries are then
    // applied again from the log.
    cluster.tick(2);
    assert_eq!(
        cluster.nodes[&NodeId(2)].state_machine().len(),
        5,
        "every committed write is back"
    );
}

#[test]
fn snapshots_are_taken_on_schedule_and_a_restart_resumes_from_one() {
    let mut cluster = NodeCluster::new(4);
    cluster.elect(1);
    for i in 0..10 {
        cluster.submit(1, set(&format!("k{i}"), "v"));
        cluster.settle();
    }
    cluster.tick(2);
    let snapshot_index = cluster.nodes[&NodeId(1)].wal().snapshot_meta().index;
    assert!(
        snapshot_index >= LogIndex(8),
        "snapshot at {snapshot_index}"
    );
    assert!(cluster.events.contains(&(
        NodeId(1),
        Event::SnapshotTaken {
            index: snapshot_index
        }
    )));
    cluster.crash_and_restart(1);
    let restarted = &cluster.nodes[&NodeId(1)];
    assert!(restarted.applied() >= snapshot_index);
    // Entry 1 is the leader's no-op; every later entry up to the snapshot wrote one key or
    // recorded a member's incarnation (the snapshot's header holds those records; the node
    // also takes in, at open, the records its durable commit covers after the snapshot).
    let wal = restarted.wal();
    let snapshot = wal
        .snapshot_chunk(0, wal.snapshot_len())
        .expect("the snapshot reads");
    let (members, _) = skiff_node::payload::decode_snapshot(&snapshot).expect("it decodes");
    assert_eq!(
        restarted.state_machine().len() as u64 + members.incarnations.len() as u64,
        snapshot_index.0 - 1,
        "the state machine is the snapshot's"
    );
    cluster.tick(20);
    assert_eq!(cluster.nodes[&NodeId(1)].state_machine().len(), 10);
}

/// Thesis §5.1.2: a snapshot writes the whole state, so a scheduled one also waits until the
/// log written since the last one holds the expansion factor times that snapshot's bytes, and
/// is then taken at the node's next phase point. A store of one large key, overwritten again
/// and again, is snapshotted every few overwrites rather than every period; a follower that
/// was sent the leader's snapshot weighs its log from that one.
#[test]
fn a_large_state_is_snapshotted_again_only_once_the_log_outgrows_it_by_the_factor() {
    const EVERY: u64 = 3;
    let big = |round: usize| format!("{round:08}").repeat(1024); // 8 KiB
    let mut cluster = NodeCluster::with_config(|id| {
        let mut config = config(id, EVERY);
        config.snapshot_expansion_factor = 4;
        config
    });
    cluster.elect(1);
    let write = |cluster: &mut NodeCluster, key: &str, value: String| {
        cluster.submit(1, set(key, &value));
        cluster.settle();
    };
    let taken = |cluster: &NodeCluster, node: u64| -> Vec<u64> {
        let events = cluster.events.iter().filter(|(id, _)| *id == NodeId(node));
        events
            .filter_map(|(_, event)| match event {
                Event::SnapshotTaken { index } => Some(index.0),
                _ => None,
            })
            .collect()
    };
    // Once the store holds the value, every snapshot holds about one value's bytes.
    write(&mut cluster, "big", big(0));
    cluster.events.clear();
    for round in 1..41 {
        write(&mut cluster, "big", big(round));
    }
    let leader = taken(&cluster, 1);
    // The log between two snapshots holds at least four values (one entry each), and the
    // next waits for the node's phase point.
    assert!((5..=10).contains(&leader.len()), "{leader:?}");
    for pair in leader.windows(2) {
        assert!(
            pair[1] - pair[0] >= 4,
            "too soon after the last: {leader:?}"
        );
        assert_eq!(
            pair[0] % EVERY,
            pair[1] % EVERY,
            "off its phase: {leader:?}"
        );
    }

    // Node 3 is cut off three values after its own last snapshot (not enough for its next),
    // misses the leader's snapshots and is sent one when it returns.
    let mut round = 41;
    while cluster.nodes[&NodeId(3)].applied().0 != taken(&cluster, 3).last().map_or(0, |i| i + 3) {
        write(&mut cluster, "big", big(round));
        round += 1;
        assert!(round < 100, "node 3 never three values past its snapshot");
    }
    cluster.isolated = vec![NodeId(3)];
    for _ in 0..20 {
        write(&mut cluster, "big", big(round));
        round += 1;
    }
    cluster.isolated.clear();
    let before = taken(&cluster, 3).len();
    cluster.tick(2);
    let installed = cluster
        .events
        .iter()
        .any(|(id, event)| *id == NodeId(3) && matches!(event, Event::SnapshotInstalled { .. }));
    assert!(installed, "node 3 was sent the leader's snapshot");
    // Two values and three small writes since that snapshot: node 3 takes none, though with
    // the three values before it, five have been applied since its own last snapshot.
    for _ in 0..2 {
        write(&mut cluster, "big", big(round));
        round += 1;
    }
    for small in 0..3 {
        write(&mut cluster, &format!("small{small}"), "v".into());
    }
    cluster.tick(2);
    assert_eq!(taken(&cluster, 3).len(), before, "{:?}", taken(&cluster, 3));
    // Factor 0: the entry schedule alone, a snapshot at every phase point.
    let mut by_entries = NodeCluster::new(EVERY);
    by_entries.elect(1);
    for round in 0..40 {
        write(&mut by_entries, "big", big(round));
    }
    assert!(
        taken(&by_entries, 1).len() >= 12,
        "{:?}",
        taken(&by_entries, 1)
    );
}

/// A driver may write the snapshot file on another thread: the node freezes the data when it
/// hands out `Effect::WriteSnapshot` and goes on committing while the file is written;
/// `snapshot_written` with the job's token installs it, and no second snapshot is handed out
/// meanwhile.
#[test]
fn a_snapshot_written_off_the_driver_is_installed_and_a_restart_resumes_from_it() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    for i in 0..5 {
        cluster.submit(1, set(&format!("k{i}"), "v"));
    }
    cluster.settle();
    let node = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    node.request_snapshot().expect("considered");
    let mut jobs: Vec<SnapshotJob> = node
        .take_effects()
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::WriteSnapshot(job) => Some(job),
            _ => None,
        })
        .collect();
    assert_eq!(jobs.len(), 1, "one snapshot handed out");
    let job = jobs.pop().expect("one");
    let index = job.token.meta().index;
    assert_eq!(index, node.applied());
    node.request_snapshot().expect("considered");
    assert!(
        !node
            .take_effects()
            .iter()
            .any(|effect| matches!(effect, Effect::WriteSnapshot(_))),
        "one snapshot in flight at a time"
    );

    // Meanwhile the cluster goes on.
    cluster.submit(1, set("later", "v"));
    cluster.settle();
    let node = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    let SnapshotJob { mut token, data } = job;
    assert!(
        data.is_frozen(),
        "the store is frozen, serialized by the driver"
    );
    let data = data.serialize();
    common::write_snapshot_file(node, &mut token, &data);
    assert_eq!(
        node.snapshot_written(token).expect("installed"),
        Some(index)
    );
    assert_eq!(node.wal().snapshot_meta().index, index);

    cluster.crash_and_restart(1);
    let restarted = &cluster.nodes[&NodeId(1)];
    assert!(restarted.applied() >= index);
    cluster.tick(20);
    assert_eq!(cluster.nodes[&NodeId(1)].state_machine().len(), 6);
}

#[test]
fn a_garbage_forwarded_request_gets_an_error_reply_and_changes_nothing() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    let leader = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    leader
        .step(Envelope::new(
            1,
            PeerMessage::Forward {
                from: NodeId(2),
                to: NodeId(1),
                id: 9,
                request: vec![0xff, 0x00],
            },
        ))
        .expect("accepted for handling");
    let output = outputs(leader);
    assert!(matches!(
        &output.messages[..],
        [Envelope {
            message: PeerMessage::ForwardReply {
                to: NodeId(2),
                id: 9,
                ..
            },
            ..
        }]
    ));
    assert_eq!(leader.pending_requests(), 0);
}

/// A write forwarded to a node that has since stopped leading, and knows who leads now
/// (leadership moved while the write was on its way), is not proposed there and is answered
/// `TRYAGAIN` naming the leader: the cluster is not down, and the client retries.
#[test]
fn a_write_forwarded_to_a_node_that_no_longer_leads_is_answered_tryagain() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    let follower = cluster.nodes.get_mut(&NodeId(3)).expect("exists");
    follower
        .step(Envelope::new(
            1,
            PeerMessage::Forward {
                from: NodeId(2),
                to: NodeId(3),
                id: 9,
                request: Kv::encode_command(set("k", "v"), None),
            },
        ))
        .expect("accepted for handling");
    let output = outputs(follower);
    let [Envelope {
        message: PeerMessage::ForwardReply { to, id, reply, .. },
        ..
    }] = &output.messages[..]
    else {
        panic!("one reply to the forward: {:?}", output.messages)
    };
    assert_eq!((*to, *id), (NodeId(2), 9));
    let expected = Kv::encode_reply(&Reply::error(refusals::transferring(NodeId(1))));
    assert_eq!(
        reply, &expected,
        "TRYAGAIN naming the leader, not CLUSTERDOWN"
    );
    assert_eq!(follower.pending_requests(), 0, "nothing was proposed");
}

#[test]
fn a_write_forwarded_to_a_leader_that_is_lost_fails_at_once_as_unknown() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    cluster.isolated = vec![NodeId(1)];
    let write = cluster.submit(2, set("k", "v"));
    cluster.settle();
    assert_eq!(
        cluster.reply(write),
        None,
        "the forward is lost with the leader"
    );
    cluster.elect_among_connected();
    assert_eq!(
        cluster.reply(write),
        Some(&Reply::error(refusals::OUTCOME_UNKNOWN)),
        "a new leader is known: the client need not wait for its timeout"
    );
}

#[test]
fn a_member_address_is_replicated_and_survives_a_snapshot_and_restart() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    let leader = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    leader.propose_member_address(77, NodeId(4), "10.0.0.4:7101".into());
    cluster.settle();
    assert_eq!(cluster.reply(77), Some(&Reply::Ok));
    cluster.tick(2);
    for node in cluster.nodes.values() {
        assert_eq!(
            node.member_addresses().get(&NodeId(4)).map(String::as_str),
            Some("10.0.0.4:7101")
        );
    }
    cluster
        .nodes
        .get_mut(&NodeId(2))
        .expect("exists")
        .request_snapshot()
        .expect("snapshot");
    cluster.settle();
    cluster.crash_and_restart(2);
    assert_eq!(
        cluster.nodes[&NodeId(2)]
            .member_addresses()
            .get(&NodeId(4))
            .map(String::as_str),
        Some("10.0.0.4:7101"),
        "restored from the snapshot, not replayed"
    );
}

#[test]
fn a_follower_refuses_to_record_member_addresses() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    let follower = cluster.nodes.get_mut(&NodeId(2)).expect("exists");
    follower.propose_member_address(5, NodeId(4), "x:1".into());
    assert_eq!(
        outputs(follower).replies,
        vec![(5, Reply::error(refusals::NO_LEADER))]
    );
}

#[test]
fn a_follower_far_behind_is_sent_a_snapshot_and_restores_store_and_addresses_from_it() {
    let mut cluster = NodeCluster::new(4);
    cluster.elect(1);
    cluster
        .nodes
        .get_mut(&NodeId(1))
        .expect("exists")
        .propose_member_address(500, NodeId(4), "10.0.0.4:7101".into());
    cluster.settle();
    cluster.isolated = vec![NodeId(3)];
    for i in 0..12 {
        cluster.submit(1, set(&format!("k{i}"), "v"));
        cluster.settle();
    }
    cluster.tick(2);
    let leader_log_start = skiff_raft::LogStorage::first_index(cluster.nodes[&NodeId(1)].wal());
    assert!(
        leader_log_start > LogIndex(3),
        "the leader compacted past what node 3 has"
    );
    cluster.isolated.clear();
    cluster.tick(10);
    let node3 = &cluster.nodes[&NodeId(3)];
    assert!(cluster
        .events
        .iter()
        .any(|(id, e)| *id == NodeId(3) && matches!(e, Event::SnapshotInstalled { .. })));
    assert_eq!(node3.state_machine().len(), 12);
    assert_eq!(
        node3.member_addresses().get(&NodeId(4)).map(String::as_str),
        Some("10.0.0.4:7101")
    );
}

/// Each I/O step ends with the token its effect carried. A token of another step — here one
/// node's sync token handed to another whose batch is not written yet — is refused with
/// `OutOfStep`, not taken for the step in progress (which used to fall back silently to
/// writing and syncing the batch).
#[test]
fn a_completion_for_another_step_is_refused() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    cluster.submit(1, set("k", "v"));
    let take_io = |node: &mut Node<MemDisk>| {
        node.take_effects()
            .into_iter()
            .find(|effect| matches!(effect, Effect::WriteBatch(_) | Effect::SyncBatch(_)))
    };
    let leader = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    assert!(leader.begin_batch());
    let Some(Effect::WriteBatch(token)) = take_io(leader) else {
        panic!("a batch to write");
    };
    leader.write_batch(token).expect("written");
    let Some(Effect::SyncBatch(foreign)) = take_io(leader) else {
        panic!("a batch to sync");
    };

    let follower = cluster.nodes.get_mut(&NodeId(2)).expect("exists");
    follower.tick();
    follower.campaign();
    assert!(follower.begin_batch());
    let durable = follower.wal().last_index();
    assert!(matches!(
        follower.batch_synced(foreign, &mut NoObserver),
        Err(NodeError::OutOfStep(_))
    ));
    assert!(follower.is_writing(), "its own batch is still in flight");
    assert_eq!(follower.wal().last_index(), durable, "nothing was written");
    let Some(Effect::WriteBatch(own)) = take_io(follower) else {
        panic!("its own batch to write");
    };
    follower.write_batch(own).expect("its own token works");
}

/// A client's session travels with its write through forwarding and the log to the state
/// machine: the same `(client, sequence)` submitted again — here first through a follower,
/// then retried on the leader — is applied once, and the retry gets the first reply.
/// Reference: thesis §6.3.
#[test]
fn a_duplicate_submission_in_a_session_is_applied_once() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    let session = Some(ClientSession {
        client_id: 7,
        sequence: 1,
        lowest_unanswered: 1,
        resubmitted: false,
        proposed_after: 0,
    });
    let incr = || Command::Incr { key: "n".into() };
    cluster
        .nodes
        .get_mut(&NodeId(2))
        .expect("exists")
        .submit_in_session(100, incr(), session);
    cluster.settle();
    cluster
        .nodes
        .get_mut(&NodeId(1))
        .expect("exists")
        .submit_in_session(101, incr(), session);
    cluster.settle();
    assert_eq!(cluster.reply(100), Some(&Reply::Integer(1)));
    assert_eq!(
        cluster.reply(101),
        Some(&Reply::Integer(1)),
        "the first reply again"
    );
    let read = cluster.submit(3, get("n"));
    cluster.settle();
    assert_eq!(
        cluster.reply(read),
        Some(&Reply::Bulk(b"1".to_vec())),
        "applied once on every replica"
    );
}

/// A snapshot file the driver could not write is abandoned with its token: the log keeps
/// its old snapshot, and the next request hands out a new file. A request with nothing
/// applied past the last snapshot is answered with `SnapshotSkipped`.
#[test]
fn an_abandoned_snapshot_leaves_the_log_alone_and_the_next_request_tries_again() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    cluster.submit(1, set("k", "v"));
    cluster.settle();
    let node = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    let job = common::requested_snapshot;
    let before = node.wal().snapshot_meta().index;
    let first = job(node).expect("a snapshot to write");
    node.snapshot_abandoned(first.token).expect("its own token");
    assert_eq!(
        node.wal().snapshot_meta().index,
        before,
        "nothing installed"
    );

    let second = job(node).expect("asked again, handed out again");
    let index = second.token.meta().index;
    assert_eq!(node.write_snapshot(second).expect("written"), Some(index));
    assert_eq!(node.wal().snapshot_meta().index, index);

    node.request_snapshot().expect("considered");
    assert!(node.take_effects().iter().any(|effect| matches!(
        effect,
        Effect::Event(Event::SnapshotSkipped { applied }) if *applied == index
    )));
}

fn incr(key: &str) -> Command {
    Command::Incr { key: key.into() }
}

/// A deposed leader's write in a session is not answered "not applied": the node sends it
/// again to the new leader, where it is applied once, and the client gets its real reply.
/// Reference: thesis §6.3.
#[test]
fn a_deposed_leaders_session_write_is_sent_again_and_applied_once() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    // The session's first write is applied, so the cluster knows the session.
    let first = cluster.submit_in_session(1, incr("first"), 1);
    cluster.settle();
    assert_eq!(cluster.reply(first), Some(&Reply::Integer(1)));
    cluster.isolated = vec![NodeId(1)];
    let write = cluster.submit_in_session(1, incr("n"), 2);
    cluster.settle();
    let new_leader = cluster.elect_among_connected();
    let other = cluster.submit(new_leader.0, incr("n"));
    cluster.settle();
    cluster.isolated.clear();
    cluster.tick(4);
    assert_eq!(cluster.reply(other), Some(&Reply::Integer(1)));
    assert_eq!(
        cluster.replies_to(write),
        [&Reply::Integer(2)],
        "one reply, the write's own, after its entry was replaced"
    );
    assert!(cluster.resubmissions() >= 1);
    for node in cluster.nodes.values() {
        assert_eq!(node.state_machine().get(b"n"), Some(&b"2"[..]));
    }
}

/// A session write forwarded to a leader that took it and was then cut off is sent again to
/// the new leader once the follower learns of it: the client gets the write's reply instead
/// of "may or may not have been applied", and when the old leader comes back its copy is
/// replaced, never applied a second time. Reference: thesis §6.3.
#[test]
fn a_session_write_forwarded_to_a_lost_leader_is_sent_to_the_new_one() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    let first = cluster.submit_in_session(2, incr("first"), 1);
    cluster.settle();
    assert_eq!(cluster.reply(first), Some(&Reply::Integer(1)));
    let write = cluster.submit_in_session(2, incr("n"), 2);
    // The follower's forward reaches the leader, which appends the write; then the leader
    // is cut off before it can replicate it.
    let follower = cluster.nodes.get_mut(&NodeId(2)).expect("exists");
    follower.run(&mut NoObserver).expect("the disk works");
    for message in outputs(follower).messages {
        if matches!(message.message, PeerMessage::Forward { .. }) {
            let to = message.to();
            cluster
                .nodes
                .get_mut(&to)
                .expect("exists")
                .step(message)
                .expect("taken");
        }
    }
    cluster.isolated = vec![NodeId(1)];
    cluster.settle();
    assert_eq!(cluster.reply(write), None, "the leader is cut off");
    cluster.elect_among_connected();
    cluster.tick(2);
    assert_eq!(cluster.replies_to(write), [&Reply::Integer(1)]);
    cluster.isolated.clear();
    cluster.tick(4);
    assert_eq!(cluster.replies_to(write).len(), 1, "answered once");
    for node in cluster.nodes.values() {
        assert_eq!(node.state_machine().get(b"n"), Some(&b"1"[..]));
    }
}

/// With no leader known, a session write whose forward was lost waits (parked) for one,
/// counted among the pending requests; cancelling it forgets it.
#[test]
fn a_parked_session_write_waits_for_a_leader_until_cancelled() {
    let mut cluster = NodeCluster::new(0);
    cluster.elect(1);
    cluster.isolated = vec![NodeId(1), NodeId(3)];
    let write = cluster.submit_in_session(2, incr("n"), 1);
    cluster.settle();
    // Node 2 times out and campaigns, forgetting the leader; no one answers.
    for _ in 0..40 {
        cluster.nodes.get_mut(&NodeId(2)).expect("exists").tick();
        cluster.settle();
    }
    let follower = &cluster.nodes[&NodeId(2)];
    assert_eq!(follower.raw().raft().leader(), None);
    assert_eq!(cluster.reply(write), None, "parked, not answered");
    assert_eq!(follower.pending_requests(), 1);
    cluster
        .nodes
        .get_mut(&NodeId(2))
        .expect("exists")
        .cancel(write);
    assert_eq!(cluster.nodes[&NodeId(2)].pending_requests(), 0);
}
