//! Reading the log ahead at start-up, on a thread of its own: while the node applies one
//! batch of committed entries, this thread reads and checks the next ones from the segment
//! files (a restarting node has nothing else to do with its second core). The log plans each
//! read and checks what comes back ([`skiff_wal::read_ahead`]); at most `depth` batches are in
//! flight, so memory stays bounded whatever the log's size.

use crossbeam_channel::{bounded, Receiver, Sender};
use skiff_raft::{Entry, StorageError};
use skiff_wal::{FsDisk, PlannedRead, ReadAhead};

/// Batches in flight: one being applied is not among them, so up to this many more are read.
pub const DEPTH: usize = 2;

/// A [`ReadAhead`] whose reads run on a thread it started; the thread ends when this is
/// dropped.
#[derive(Debug)]
pub struct ThreadReadAhead {
    reads: Sender<PlannedRead>,
    results: Receiver<Result<Vec<Entry>, StorageError>>,
}

impl ThreadReadAhead {
    /// Starts the thread for node `id`, with room for `depth` reads in flight.
    pub fn spawn(id: u64, depth: usize) -> std::io::Result<ThreadReadAhead> {
        let (reads, planned) = bounded::<PlannedRead>(depth);
        let (done, results) = bounded(depth);
        std::thread::Builder::new()
            .name(format!("skiff-read-ahead-{id}"))
            .spawn(move || {
                let disk = FsDisk::new();
                let mut buffer = Vec::new();
                for read in planned {
                    if done.send(read.read(&disk, &mut buffer)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(ThreadReadAhead { reads, results })
    }
}

impl ReadAhead for ThreadReadAhead {
    fn start(&mut self, read: PlannedRead) {
        // A thread gone is found out at `finish`.
        let _ = self.reads.send(read);
    }

    fn finish(&mut self) -> Result<Vec<Entry>, String> {
        match self.results.recv() {
            Ok(read) => read.map_err(|e| e.to_string()),
            Err(_) => Err("the read-ahead thread stopped (it panicked)".to_owned()),
        }
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
            data: vec![index as u8; 100],
        };
        let written: Vec<Entry> = (1..=300).map(entry).collect();
        let (mut wal, _) = Wal::open(FsDisk::new(), dir.path(), options).unwrap();
        for batch in written.chunks(30) {
            let commit = batch.last().unwrap().index;
            let hard_state = HardState {
                term: Term(1),
                vote: None,
                commit,
            };
            wal.append_batch(batch, Some(hard_state)).unwrap();
        }
        let (mut wal, _) = Wal::open(FsDisk::new(), dir.path(), options).unwrap();
        let batches = Arc::new(AtomicUsize::new(0));
        let reader = Counting(ThreadReadAhead::spawn(1, DEPTH).unwrap(), batches.clone());
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
