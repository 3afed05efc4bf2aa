//! Writing a snapshot file off the driver thread. The node freezes the state machine (a clone
//! of its persistent maps, O(1) in the store's size) when it hands out
//! `Effect::WriteSnapshot`, and a thread of its own serializes the frozen state, seals the
//! file's header over the bytes (their length and checksum), writes the file and syncs it —
//! for a large store all of the time a snapshot takes — while the driver goes on applying,
//! ticking, heartbeating and serving. The node then installs the file (a rename) and compacts
//! the log. If the thread fails or panics midway, the outcome is an error: the driver
//! abandons the snapshot, and the log and the old snapshot stay as they were.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::thread;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use skiff_node::{SnapshotJob, SnapshotToken};

/// A finished write: the file, whether it was written and synced, and when it began.
pub struct Written {
    /// The file's token, to install it.
    pub token: SnapshotToken,
    /// The outcome of writing and syncing it.
    pub result: io::Result<()>,
    /// When the snapshot was begun (before serializing).
    pub started: Instant,
}

/// The driver's side. The node hands out one snapshot file at a time.
pub struct Snapshotter {
    done_tx: Sender<Written>,
    /// Each write's outcome.
    pub done: Receiver<Written>,
}

impl Snapshotter {
    /// A snapshotter with nothing in flight.
    pub fn new() -> Snapshotter {
        let (done_tx, done) = bounded(1);
        Snapshotter { done_tx, done }
    }

    /// Writes the job's file on a new thread; the outcome arrives on `done`. If the thread
    /// cannot start, the token comes back with the error.
    pub fn write(
        &self,
        node: u64,
        job: SnapshotJob,
        started: Instant,
    ) -> Result<(), Box<(SnapshotToken, io::Error)>> {
        let done = self.done_tx.clone();
        // The job travels through a slot the driver can take it back from if no thread starts.
        let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(job)));
        let theirs = slot.clone();
        let spawned = thread::Builder::new()
            .name(format!("skiff-snapshot-{node}"))
            .spawn(move || {
                let Some(SnapshotJob { mut token, data }) =
                    theirs.lock().ok().and_then(|mut job| job.take())
                else {
                    return;
                };
                // A panic while serializing or writing ends in an error, not in a node that
                // waits for this snapshot forever; the token stays out of the closure.
                let result = panic::catch_unwind(AssertUnwindSafe(|| {
                    let data = data.serialize();
                    let header = token.seal(&data);
                    write_file(token.write().temp_path(), &header, &data)
                }))
                .unwrap_or_else(|_| Err(io::Error::other("the snapshot thread panicked")));
                let _ = done.send(Written {
                    token,
                    result,
                    started,
                });
            });
        let Err(error) = spawned else {
            return Ok(());
        };
        // A failed spawn dropped the closure unrun: the job is still in the slot.
        match slot.lock().ok().and_then(|mut job| job.take()) {
            Some(job) => Err(Box::new((job.token, error))),
            None => Ok(()),
        }
    }
}

/// Creates `temp` afresh with `header` then `data`, and syncs it.
fn write_file(temp: &Path, header: &[u8], data: &[u8]) -> io::Result<()> {
    match fs::remove_file(temp) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = OpenOptions::new().write(true).create_new(true).open(temp)?;
    file.write_all(header)?;
    file.write_all(data)?;
    file.sync_data()
}
