//! A restarting node applies its committed log again before it steps a message
//! ([`Node::open_to_replay`]), its batches read ahead by a reader the caller lends: the state
//! it reaches is the one a node opened and run the plain way reaches, and a reader that fails
//! stops the start instead of leaving it half done.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{NodeCluster, DIR};
use skiff_kv::Reply;
use skiff_node::{NoObserver, Node, NodeConfig, NodeError};
use skiff_raft::{Entry, LogIndex};
use skiff_wal::{MemDisk, PlannedRead, ReadAhead};

/// Carries out each read on its own copy of the disk, when it is finished; counts them.
#[derive(Debug)]
struct CopyReader {
    disk: MemDisk,
    started: VecDeque<PlannedRead>,
    finished: Arc<AtomicUsize>,
    fail: bool,
}

impl ReadAhead for CopyReader {
    fn start(&mut self, read: PlannedRead) {
        self.started.push_back(read);
    }

    fn finish(&mut self) -> Result<Vec<Entry>, String> {
        let read = self.started.pop_front().expect("a read was started");
        if self.fail {
            return Err("the reader's disk failed".to_owned());
        }
        self.finished.fetch_add(1, Ordering::Relaxed);
        read.read(&self.disk, &mut Vec::new())
            .map_err(|e| e.to_string())
    }
}

/// Node 2's disk after 40 writes committed everywhere (no snapshot: the whole log replays),
/// and a configuration that applies it in batches of a few entries.
fn written_log() -> (MemDisk, NodeConfig, LogIndex) {
    let mut cluster = NodeCluster::with_snapshots_on_request();
    cluster.elect(1);
    for k in 0..40 {
        let value = format!("value {k} {}", "x".repeat(k));
        assert_eq!(
            cluster.write(1, &format!("key{}", k % 25), &value),
            Some(Reply::Ok)
        );
    }
    cluster.tick(2);
    let node = cluster.node(2);
    let committed = node.raw().raft().log().committed();
    assert!(committed.0 > 40, "the writes are committed on node 2");
    let mut config = common::config(2);
    config.snapshot_every_entries = 0;
    config.raft.max_apply_bytes = 300;
    (node.wal().disk().clone(), config, committed)
}

#[test]
fn a_replayed_node_reaches_the_state_a_plainly_opened_one_does() {
    let (disk, config, committed) = written_log();
    let (mut plain, _) = Node::<MemDisk>::open(disk.clone(), DIR, config.clone()).expect("opens");
    plain.run(&mut NoObserver).expect("applies");

    let (replay, _) =
        Node::<MemDisk>::open_to_replay(disk.clone(), DIR, config, &mut |_| {}).expect("opens");
    assert_eq!(replay.entries_to_apply(), committed.0);
    assert_eq!(
        replay.node().applied(),
        LogIndex(0),
        "nothing applied before the replay"
    );
    let finished = Arc::new(AtomicUsize::new(0));
    let reader = CopyReader {
        disk,
        started: VecDeque::new(),
        finished: finished.clone(),
        fail: false,
    };
    let replayed = replay.run(Box::new(reader), 2).expect("replays");

    assert_eq!(replayed.applied(), committed);
    assert_eq!(plain.applied(), committed);
    assert_eq!(replayed.state_machine(), plain.state_machine());
    // Every batch came from the reader: many of them, at 300 bytes each.
    assert!(finished.load(Ordering::Relaxed) > 5, "{finished:?}");
}

#[test]
fn a_reader_that_fails_refuses_the_start() {
    let (disk, config, _) = written_log();
    let (replay, _) =
        Node::<MemDisk>::open_to_replay(disk.clone(), DIR, config, &mut |_| {}).expect("opens");
    let reader = CopyReader {
        disk,
        started: VecDeque::new(),
        finished: Arc::default(),
        fail: true,
    };
    match replay.run(Box::new(reader), 2) {
        Err(error @ NodeError::Storage(_)) => {
            assert!(
                error.to_string().contains("the reader's disk failed"),
                "{error}"
            )
        }
        other => panic!("the start went on: {:?}", other.map(|node| node.applied())),
    }
}
