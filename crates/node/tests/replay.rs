//! A restarting node applies its committed log again before it steps a message
//! ([`Node::open_to_replay`]), its batches read ahead by a reader the caller lends: the state
//! it reaches is the one a node opened and run the plain way reaches, and a reader that fails
//! stops the start instead of leaving it half done. Client commands the reader decoded ahead
//! stand in for their entries' own bytes, but only for the entry with their index and term.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{NodeCluster, DIR};
use skiff_kv::{Command, Reply, StateMachine as Kv};
use skiff_node::{
    decode_ahead, DecodedAhead, DecodedCommand, NoObserver, Node, NodeConfig, NodeError,
    StateMachine,
};
use skiff_raft::{Entry, EntryKind, LogIndex, Term};
use skiff_wal::{MemDisk, PlannedRead, ReadAhead};

/// Carries out each read on its own copy of the disk, when it is finished; counts them.
#[derive(Debug)]
struct CopyReader {
    disk: MemDisk,
    started: VecDeque<PlannedRead>,
    finished: Arc<AtomicUsize>,
    fail: bool,
    /// Where it hands over the commands it decodes ahead, if it does, and what it decodes.
    ahead: Option<(Arc<DecodedAhead<Command>>, Decoding)>,
    /// The commands of the batch last finished, handed over once the log takes it.
    decoded: Vec<DecodedCommand<Command>>,
}

/// What a reader decodes ahead for each client command it reads.
#[derive(Clone, Copy, Debug)]
enum Decoding {
    /// The entry's own command.
    Faithful,
    /// Another command (`SET forged-INDEX`), claimed for the entry's index in `term + shift`.
    Forged { term_shift: u64 },
}

impl CopyReader {
    fn new(disk: MemDisk, finished: Arc<AtomicUsize>) -> CopyReader {
        CopyReader {
            disk,
            started: VecDeque::new(),
            finished,
            fail: false,
            ahead: None,
            decoded: Vec::new(),
        }
    }

    /// Decodes the client commands of `entries` as `decoding` says.
    fn decode(entries: &[Entry], decoding: Decoding) -> Vec<DecodedCommand<Command>> {
        entries
            .iter()
            .filter(|entry| decode_ahead::<Kv>(entry).is_some())
            .filter_map(|entry| match decoding {
                Decoding::Faithful => decode_ahead::<Kv>(entry),
                Decoding::Forged { term_shift } => {
                    let forged = Command::Set {
                        key: format!("forged-{}", entry.index.0).into_bytes(),
                        value: b"x".to_vec(),
                        condition: Default::default(),
                    };
                    decode_ahead::<Kv>(&Entry {
                        term: Term(entry.term.0 + term_shift),
                        index: entry.index,
                        kind: EntryKind::Normal,
                        data: Kv::encode_command(forged, None).into(),
                    })
                }
            })
            .collect()
    }
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
        let entries = read
            .read(&self.disk, &mut Vec::new())
            .map_err(|e| e.to_string())?;
        if let Some((_, decoding)) = &self.ahead {
            self.decoded = CopyReader::decode(&entries, *decoding);
        }
        Ok(entries)
    }

    fn taken(&mut self) {
        if let Some((ahead, _)) = &self.ahead {
            ahead.hand_over(std::mem::take(&mut self.decoded));
        }
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
    let reader = CopyReader::new(disk, finished.clone());
    let replayed = replay.run(Box::new(reader), 2, None).expect("replays");

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
        fail: true,
        ..CopyReader::new(disk, Arc::default())
    };
    match replay.run(Box::new(reader), 2, None) {
        Err(error @ NodeError::Storage(_)) => {
            assert!(
                error.to_string().contains("the reader's disk failed"),
                "{error}"
            )
        }
        other => panic!("the start went on: {:?}", other.map(|node| node.applied())),
    }
}

/// Replays node 2's log with a reader that decodes ahead as `decoding` says.
fn replay_decoding_ahead(decoding: Decoding) -> Node<MemDisk> {
    let (disk, config, committed) = written_log();
    let (replay, _) =
        Node::<MemDisk>::open_to_replay(disk.clone(), DIR, config, &mut |_| {}).expect("opens");
    let ahead = Arc::new(DecodedAhead::default());
    let reader = CopyReader {
        ahead: Some((ahead.clone(), decoding)),
        ..CopyReader::new(disk, Arc::default())
    };
    let replayed = replay
        .run(Box::new(reader), 2, Some(ahead))
        .expect("replays");
    assert_eq!(replayed.applied(), committed);
    replayed
}

/// The state a node opened and run the plain way reaches on node 2's log.
fn plainly_applied() -> Node<MemDisk> {
    let (disk, config, _) = written_log();
    let (mut plain, _) = Node::<MemDisk>::open(disk, DIR, config).expect("opens");
    plain.run(&mut NoObserver).expect("applies");
    plain
}

#[test]
fn commands_decoded_ahead_reach_the_state_their_entries_do() {
    let replayed = replay_decoding_ahead(Decoding::Faithful);
    assert_eq!(replayed.state_machine(), plainly_applied().state_machine());
}

#[test]
fn a_command_decoded_ahead_stands_in_for_the_entry_of_its_index_and_term() {
    // The replay applies what was decoded ahead, not the entry's bytes: the forged keys
    // appear, and the entries' own writes do not.
    let replayed = replay_decoding_ahead(Decoding::Forged { term_shift: 0 });
    let machine = replayed.state_machine();
    let forged = (1..=replayed.applied().0)
        .filter(|index| {
            let key = format!("forged-{index}").into_bytes();
            machine.read(&Command::Get { key }) == Reply::Bulk(b"x".to_vec())
        })
        .count();
    assert!(forged >= 40, "each of the 40 writes replaced: {forged}");
    let own = machine.read(&Command::Get {
        key: b"key0".to_vec(),
    });
    assert_eq!(own, Reply::Nil, "the entries' own writes were replaced");
}

#[test]
fn a_command_decoded_ahead_for_another_term_is_not_applied() {
    // §5.3: only the same index and term is the same entry; a command claimed for the
    // entry's index in another term is left, and the entry's own bytes are applied.
    let replayed = replay_decoding_ahead(Decoding::Forged { term_shift: 1 });
    assert_eq!(replayed.state_machine(), plainly_applied().state_machine());
}
