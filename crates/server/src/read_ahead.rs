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
use skiff_kv::{Command, ReplacedSink, ReplacedValues, StateMachine};
use skiff_node::{decode_ahead, DecodedAhead, DecodedCommand};
use skiff_raft::{Entry, StorageError};
use skiff_wal::{FsDisk, PlannedRead, ReadAhead};

/// Batches in flight: one being applied is not among them, so up to this many more are read.
pub const DEPTH: usize = 2;

/// Batches of replaced values queued to the thread; when they are this many, the replay
/// frees the next batch itself. As many again may wait on the thread ([`ToFree`]): with a
/// batch at most 1 MiB of values (`skiff_kv::replaced`), about 17 MiB are held apart at most.
const REPLACED_BATCHES: usize = 8;

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
    /// it decodes go to `decoded` batch by batch, as the log takes each batch. The sink
    /// returned takes the values the replay's writes replace to the thread, which frees one
    /// before each command it decodes: the memory of the values it decoded goes back to its
    /// own allocator cache, not across threads (`skiff_kv::replaced`).
    pub fn spawn(
        id: u64,
        depth: usize,
        decoded: Arc<DecodedAhead<Command>>,
    ) -> std::io::Result<(ThreadReadAhead, ReplacedSink)> {
        let (reads, planned) = bounded::<PlannedRead>(depth);
        let (done, results) = bounded(depth);
        let (to_free, replaced) = bounded::<ReplacedValues>(REPLACED_BATCHES);
        std::thread::Builder::new()
            .name(format!("skiff-read-ahead-{id}"))
            .spawn(move || {
                let disk = FsDisk::new();
                let mut buffer = Vec::new();
                let mut to_free = ToFree::default();
                for read in planned {
                    to_free.take(replaced.try_iter());
                    let entries = read.read(&disk, &mut buffer);
                    let commands = entries.as_ref().map_or_else(
                        |_| Vec::new(),
                        |entries| {
                            entries
                                .iter()
                                .filter_map(|entry| {
                                    to_free.free_one();
                                    decode_ahead::<StateMachine>(entry)
                                })
                                .collect()
                        },
                    );
                    if done.send((entries, commands)).is_err() {
                        return;
                    }
                }
            })?;
        let read_ahead = ThreadReadAhead {
            reads,
            results,
            decoded,
            finished: Vec::new(),
        };
        // A full queue, or a thread gone: the batch is freed where it was replaced.
        let sink: ReplacedSink = Box::new(move |values| drop(to_free.try_send(values)));
        Ok((read_ahead, sink))
    }
}

/// Replaced values waiting on the read-ahead thread to be freed: one before each command it
/// decodes, so that the allocator's thread cache hands the freed memory straight to the next
/// value (freeing a whole batch at once overflowed the cache into the shared bins, which is
/// the cost this avoids). At most [`REPLACED_BATCHES`] batches wait; more are freed at once.
#[derive(Default)]
struct ToFree(std::collections::VecDeque<ReplacedValues>);

impl ToFree {
    /// Takes the batches sent since the last read.
    fn take(&mut self, batches: impl Iterator<Item = ReplacedValues>) {
        self.0.extend(batches);
        while self.0.len() > REPLACED_BATCHES {
            self.0.pop_front();
        }
    }

    /// Frees one replaced value, if any waits.
    fn free_one(&mut self) {
        while let Some(batch) = self.0.front_mut() {
            if batch.free_one() {
                return;
            }
            self.0.pop_front();
        }
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

    /// Replaced values from a store's writes: `batches` full batches.
    fn replaced_batches(batches: usize) -> Vec<ReplacedValues> {
        let mut machine = StateMachine::new(skiff_kv::KvConfig::default()).unwrap();
        let (sink, out) = crossbeam_channel::unbounded();
        machine.set_replaced_sink(Some(Box::new(move |values| sink.send(values).unwrap())));
        let writes = batches * skiff_kv::replaced::REPLACED_BATCH;
        for index in 0..writes + 1 {
            let command = Command::Set {
                key: b"one key".to_vec(),
                value: vec![1; 16],
                condition: skiff_kv::SetCondition::Always,
            };
            machine.apply_at(index as u64 + 1, None, command, None);
        }
        out.try_iter().collect()
    }

    /// Values wait to be freed one at a time, across batches, and no more than
    /// `REPLACED_BATCHES` batches of them wait: the oldest beyond are freed at once.
    #[test]
    fn replaced_values_are_freed_one_at_a_time_and_at_most_a_few_batches_wait() {
        let mut to_free = ToFree::default();
        to_free.take(replaced_batches(2).into_iter());
        let mut freed = 0;
        while to_free.0.iter().any(|batch| !batch.is_empty()) {
            to_free.free_one();
            freed += 1;
        }
        assert_eq!(freed, 2 * skiff_kv::replaced::REPLACED_BATCH);
        to_free.free_one(); // nothing left: nothing happens

        to_free.take(replaced_batches(REPLACED_BATCHES + 3).into_iter());
        assert_eq!(to_free.0.len(), REPLACED_BATCHES);
    }

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
        let (reader, _) = ThreadReadAhead::spawn(1, DEPTH, decoded.clone()).unwrap();
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
            ThreadReadAhead::spawn(1, DEPTH, decoded).unwrap().0,
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
