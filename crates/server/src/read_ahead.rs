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
