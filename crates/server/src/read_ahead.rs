//! Reading the log ahead at start-up, on a thread of its own: while the node applies one
//! batch of committed entries, this thread reads and checks the next ones from the segment
//! files (a restarting node has nothing else to do with its second core). The log plans each
//! read and checks what comes back ([`skiff_wal::read_ahead`]); at most `depth` batches are in
//! flight, so memory stays bounded whatever the log's size (each batch in flight also carries
//! its commands decoded, about as many bytes again). The thread also decodes the client
//! commands of each batch; once the log has checked and taken the batch, they are handed to
//! the replay ([`skiff_node::DecodedAhead`]), and those of a batch it refused never are.
//! Copying the values out of their entries is then off the thread that applies them.

use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};
use skiff_kv::{Command, StateMachine};
use skiff_node::{decode_ahead, DecodedAhead, DecodedCommand};
use skiff_raft::{Entry, StorageError};
use skiff_wal::{FsDisk, PlannedRead, ReadAhead};

/// Batches in flight: one being applied is not among them, so up to this many more are read.
pub const DEPTH: usize = 2;

/// A [`ReadAhead`] whose reads run on a thread it started; the thread ends when this is
/// dropped.
#[derive(Debug)]
pub struct ThreadReadAhead {
    reads: Sender<PlannedRead>,
    results: Receiver<ReadBatch>,
    /// Where each batch's commands are handed over when the log takes the batch.
    decoded: Arc<DecodedAhead<Command>>,
    /// The commands of the batch last finished, until the log takes it.
    finished: Vec<DecodedCommand<Command>>,
}

/// A batch read ahead (or why not), and the client commands decoded from it.
type ReadBatch = (
    Result<Vec<Entry>, StorageError>,
    Vec<DecodedCommand<Command>>,
);

impl ThreadReadAhead {
    /// Starts the thread for node `id`, with room for `depth` reads in flight; the commands
    /// it decodes go to `decoded` batch by batch, as the log takes each batch.
    pub fn spawn(
        id: u64,
        depth: usize,
        decoded: Arc<DecodedAhead<Command>>,
    ) -> std::io::Result<ThreadReadAhead> {
        let (reads, planned) = bounded::<PlannedRead>(depth);
        let (done, results) = bounded(depth);
        std::thread::Builder::new()
            .name(format!("skiff-read-ahead-{id}"))
            .spawn(move || {
                let disk = FsDisk::new();
                let mut buffer = Vec::new();
                for read in planned {
                    let entries = read.read(&disk, &mut buffer);
                    let commands = entries.as_ref().map_or_else(
                        |_| Vec::new(),
                        |entries| {
                            entries
                                .iter()
                                .filter_map(decode_ahead::<StateMachine>)
                                .collect()
                        },
                    );
                    if done.send((entries, commands)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(ThreadReadAhead {
            reads,
            results,
            decoded,
            finished: Vec::new(),
        })
    }
}

impl ReadAhead for ThreadReadAhead {
    fn start(&mut self, read: PlannedRead) {
        // A thread gone is found out at `finish`.
        let _ = self.reads.send(read);
    }

    fn finish(&mut self) -> Result<Vec<Entry>, String> {
        match self.results.recv() {
            Ok((read, commands)) => {
                self.finished = commands;
                read.map_err(|e| e.to_string())
            }
            Err(_) => {
                self.finished.clear();
                Err("the read-ahead thread stopped (it panicked)".to_owned())
            }
        }
    }

    fn taken(&mut self) {
        self.decoded.hand_over(std::mem::take(&mut self.finished));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_raft::{EntryKind, HardState, LogIndex, LogStorage, Term};
    use skiff_wal::{Wal, WalOptions};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// The thread's reader, counting the batches it gave.
    #[derive(Debug)]
    struct Counting(ThreadReadAhead, Arc<AtomicUsize>);

    impl ReadAhead for Counting {
        fn start(&mut self, read: PlannedRead) {
            self.0.start(read);
        }
        fn finish(&mut self) -> Result<Vec<Entry>, String> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.finish()
        }
        fn taken(&mut self) {
            self.0.taken();
        }
    }

    /// A log in `dir` of `entries` written 30 to a batch, each committed.
    fn written_log(dir: &std::path::Path, options: WalOptions, entries: &[Entry]) {
        let (mut wal, _) = Wal::open(FsDisk::new(), dir, options).unwrap();
        for batch in entries.chunks(30) {
            let commit = batch.last().unwrap().index;
            let hard_state = HardState {
                term: Term(1),
                vote: None,
                commit,
            };
            wal.append_batch(batch, Some(hard_state)).unwrap();
        }
    }

    #[test]
    fn the_commands_of_a_batch_the_log_took_are_handed_over_and_no_others() {
        use skiff_node::StateMachine as _;
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions::new(1);
        let set = |index: u64| Entry {
            term: Term(1),
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: StateMachine::encode_command(
                Command::Set {
                    key: format!("key-{index}").into_bytes(),
                    value: vec![b'v'; 40],
                    condition: Default::default(),
                },
                None,
            )
            .into(),
        };
        let written: Vec<Entry> = (1..=60).map(set).collect();
        written_log(dir.path(), options, &written);
        let (mut wal, _) = Wal::open(FsDisk::new(), dir.path(), options).unwrap();
        let decoded = Arc::new(DecodedAhead::default());
        let reader = ThreadReadAhead::spawn(1, DEPTH, decoded.clone()).unwrap();
        wal.start_read_ahead(Box::new(reader), LogIndex(1), LogIndex(61), 1000, DEPTH);
        assert_eq!(decoded.held(), 0, "nothing before the log takes a batch");
        let first = wal.entries(LogIndex(1), LogIndex(61), 1000).unwrap();
        assert!(first.len() > 1 && first.len() < 60, "{}", first.len());
        assert_eq!(
            decoded.held(),
            first.len(),
            "the batch's commands, each decoded"
        );
        // Asked for another range than the one read ahead: the log reads it itself, and the
        // batch read ahead in its place is not taken, so its commands are not handed over.
        let other = wal.entries(LogIndex(2), LogIndex(61), 1000).unwrap();
        assert_eq!(other.first().map(|e| e.index), Some(LogIndex(2)));
        assert_eq!(decoded.held(), first.len(), "still the first batch's");
        let _ = wal.stop_read_ahead();
    }

    #[test]
    fn a_log_read_ahead_on_the_thread_gives_every_committed_entry_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions {
            max_segment_bytes: 4096,
            ..WalOptions::new(1)
        };
        let entry = |index: u64| Entry {
            term: Term(1),
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: vec![index as u8; 100].into(),
        };
        let written: Vec<Entry> = (1..=300).map(entry).collect();
        written_log(dir.path(), options, &written);
        let (mut wal, _) = Wal::open(FsDisk::new(), dir.path(), options).unwrap();
        let batches = Arc::new(AtomicUsize::new(0));
        let decoded = Arc::new(DecodedAhead::default());
        let reader = Counting(
            ThreadReadAhead::spawn(1, DEPTH, decoded).unwrap(),
            batches.clone(),
        );
        wal.start_read_ahead(Box::new(reader), LogIndex(1), LogIndex(301), 1000, DEPTH);
        let mut read = Vec::new();
        while read.len() < written.len() {
            let next = LogIndex(read.len() as u64 + 1);
            read.extend(wal.entries(next, LogIndex(301), 1000).unwrap());
        }
        assert_eq!(read, written);
        assert_eq!(wal.stop_read_ahead(), Ok(()));
        // About 117 bytes an entry in batches of 1000: 8 entries each, all read on the thread.
        assert_eq!(batches.load(Ordering::Relaxed), 300_usize.div_ceil(8));
    }
}
