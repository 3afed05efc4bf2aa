//! Snapshots serialized off the driver: the node hands out its state machine frozen at the
//! snapshot's index and goes on applying; whenever the driver serializes it, the bytes are
//! those of that index, and a snapshot whose serialization never finishes leaves the log and
//! the old snapshot as they were.

mod common;

use common::NodeCluster;
use skiff_kv::{Command, Deadline, Expiry, KvConfig, SetOptions};
use skiff_node::{payload, ClientSession, Node, SnapshotJob};
use skiff_raft::{LogIndex, LogStorage, NodeId};
use skiff_wal::{Disk, MemDisk};

const T0: u64 = 1_700_000_000_000;

fn set_expiring(key: &str, value: &str, in_ms: i64) -> Command {
    Command::SetWith {
        key: key.into(),
        value: value.into(),
        options: SetOptions {
            expiry: Expiry::Until(Deadline::In(in_ms)),
            ..SetOptions::default()
        },
    }
}

fn hset(key: &str, pairs: &[(&str, &str)]) -> Command {
    Command::HSet {
        key: key.into(),
        pairs: pairs.iter().map(|&(f, v)| (f.into(), v.into())).collect(),
    }
}

fn incr(key: &str) -> Command {
    Command::Incr { key: key.into() }
}

/// Submits `command` to node 1 in client `client_id`'s session, with several requests in
/// flight (nothing answered below `lowest_unanswered`), and settles.
fn in_session(cluster: &mut NodeCluster, client_id: u64, sequence: u64, command: Command) {
    let pipelined = ClientSession {
        lowest_unanswered: 1,
        client_id,
        sequence,
        resubmitted: false,
        proposed_after: 0,
    };
    let id = 1_000_000 + client_id * 1_000 + sequence;
    let leader = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    leader.submit_in_session(id, command, Some(pipelined));
    cluster.settle();
}

/// Asks `node` for a snapshot and takes the job it hands out.
fn snapshot_job(node: &mut Node<MemDisk>) -> SnapshotJob {
    common::requested_snapshot(node).expect("a snapshot handed out")
}

/// A cluster led by node 1 whose store holds strings, a hash, keys with deadlines (one of
/// which passes later) and a session with a window of pipelined replies.
fn populated() -> NodeCluster {
    let mut cluster = NodeCluster::with_snapshots_on_request();
    for id in 1..=3 {
        cluster.set_clock(id, T0);
    }
    cluster.elect(1);
    for i in 0..20 {
        cluster.write(1, &format!("k{i:02}"), "v");
    }
    cluster.run_command(1, hset("h", &[("f1", "v1"), ("f2", "v2")]));
    cluster.run_command(1, set_expiring("soon", "x", 1_000));
    cluster.run_command(1, set_expiring("later", "y", 600_000));
    for sequence in 1..=3 {
        in_session(&mut cluster, 7, sequence, incr("counter"));
    }
    cluster
}

/// The node hands out its store frozen at the snapshot's index; the leader then applies
/// overwrites, deletions, hash changes, a passed deadline and more session writes before the
/// driver serializes it. The bytes are exactly those an in-line snapshot gave at the index
/// (the node's header, then the store's snapshot format), they restore to the store as it was at
/// the index, not as it is, and the file installs and serves a restart.
#[test]
fn a_snapshot_serialized_after_later_writes_is_the_state_at_its_index() {
    let mut cluster = populated();
    let node = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    let at_index = node.state_machine().clone();
    assert!(at_index.session(7).is_some_and(|s| s.replies.len() == 3));
    assert!(at_index.deadline_ms(b"soon").is_some());
    assert!(at_index.hash_get(b"h", b"f1").is_some());
    let job = snapshot_job(node);
    let index = job.token.meta().index;
    assert_eq!(index, node.applied());
    assert_eq!(index.0, at_index.applied_index());
    assert!(
        job.data.is_frozen(),
        "the store freezes; the driver serializes it"
    );

    // Writes applied on the driver while the snapshot waits to be serialized.
    cluster.write(1, "k00", "overwritten");
    cluster.run_command(
        1,
        Command::Del {
            keys: vec!["k01".into()],
        },
    );
    cluster.run_command(1, hset("h", &[("f1", "changed"), ("f3", "new")]));
    cluster.set_clock(1, T0 + 2_000);
    cluster.write(1, "fresh", "z");
    for sequence in 4..=6 {
        in_session(&mut cluster, 7, sequence, incr("counter"));
    }
    in_session(&mut cluster, 8, 1, incr("counter"));
    let node = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    let live = node.state_machine().clone();
    assert!(
        node.applied() > index,
        "the leader applied past the snapshot"
    );
    assert_eq!(live.get(b"soon"), None, "its deadline passed");
    assert_eq!(live.session(7).map(|s| s.last_sequence()), Some(6));

    let SnapshotJob { mut token, data } = job;
    let data = data.serialize();
    let (_, store) = payload::decode_snapshot(&data).expect("the node's snapshot layout");
    assert_eq!(store, at_index.snapshot(), "the in-line bytes of the index");
    let restored = skiff_kv::StateMachine::restore(KvConfig::default(), store).expect("restores");
    assert_eq!(restored, at_index);
    assert_ne!(restored, live);

    // Written and synced, it is installed; a restart from it and the log has every write.
    common::write_snapshot_file(node, &mut token, &data);
    assert_eq!(
        node.snapshot_written(token).expect("installed"),
        Some(index)
    );
    assert_eq!(node.wal().snapshot_meta().index, index);
    cluster.reopen(1);
    cluster.tick(20);
    assert_eq!(cluster.node(1).state_machine(), &live);
}

/// The snapshot's serialization dies midway (the thread that held the frozen state is gone
/// and left a partial file): the driver abandons it. The log and the old snapshot are as
/// they were, the node goes on applying and answering, the next snapshot is taken at a later
/// index, and a restart recovers every write.
#[test]
fn a_snapshot_whose_serialization_dies_is_abandoned_and_the_node_carries_on() {
    let mut cluster = populated();
    let node = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    let first = snapshot_job(node);
    let first_index = first.token.meta().index;
    let written = node.write_snapshot(first).expect("written in line");
    assert_eq!(written, Some(first_index));
    cluster.write(1, "k00", "after the first snapshot");

    let node = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    let dying = snapshot_job(node);
    let SnapshotJob { token, data } = dying;
    let temp = token.write().temp_path().to_path_buf();
    let serializer = std::thread::spawn(move || {
        let _frozen = data;
        panic!("the snapshot thread dies while serializing");
    });
    assert!(serializer.join().is_err(), "the thread died");
    let disk = node.disk_mut();
    disk.create(&temp).expect("create");
    disk.append(&temp, b"half a header")
        .expect("a partial file");
    node.snapshot_abandoned(token).expect("its own token");
    assert_eq!(
        node.wal().snapshot_meta().index,
        first_index,
        "the old snapshot stays current"
    );
    assert!(
        node.wal().first_index() <= LogIndex(first_index.0 + 1),
        "the log behind it stays"
    );

    cluster.write(1, "k01", "after the dead snapshot");
    in_session(&mut cluster, 7, 4, incr("counter"));
    assert_eq!(
        cluster.value(1, "k01").as_deref(),
        Some(&b"after the dead snapshot"[..])
    );
    let node = cluster.nodes.get_mut(&NodeId(1)).expect("exists");
    let next = snapshot_job(node);
    let next_index = next.token.meta().index;
    assert!(next_index > first_index);
    assert_eq!(
        node.write_snapshot(next).expect("written"),
        Some(next_index)
    );

    let live = cluster.node(1).state_machine().clone();
    cluster.reopen(1);
    cluster.tick(20);
    assert_eq!(cluster.node(1).state_machine(), &live);
}
