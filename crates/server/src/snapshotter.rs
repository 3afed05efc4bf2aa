//! Writing a snapshot file off the driver thread. The driver serializes the state machine
//! (the part that needs it frozen), and a thread of its own writes the file and syncs it —
//! for a large store most of the time — while the driver goes on ticking, heartbeating and
//! serving. The driver then installs the file (a rename) and compacts the log.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::thread;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use skiff_wal::SnapshotWrite;

/// A finished write: the file, whether it was written and synced, and when it began.
pub struct Written {
    /// The file, to install.
    pub write: SnapshotWrite,
    /// The outcome of writing and syncing it.
    pub result: io::Result<()>,
    /// When the snapshot was begun (before serializing).
    pub started: Instant,
}

/// The driver's side: at most one snapshot file is written at a time.
pub struct Snapshotter {
    done_tx: Sender<Written>,
    /// Each write's outcome.
    pub done: Receiver<Written>,
    in_flight: bool,
}

impl Snapshotter {
    /// A snapshotter with nothing in flight.
    pub fn new() -> Snapshotter {
        let (done_tx, done) = bounded(1);
        Snapshotter {
            done_tx,
            done,
            in_flight: false,
        }
    }

    /// Whether a snapshot file is being written.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Writes `data` to the prepared file on a new thread; the outcome arrives on `done`.
    pub fn write(
        &mut self,
        node: u64,
        write: SnapshotWrite,
        data: Vec<u8>,
        started: Instant,
    ) -> io::Result<()> {
        let done = self.done_tx.clone();
        thread::Builder::new()
            .name(format!("skiff-snapshot-{node}"))
            .spawn(move || {
                let result = write_file(write.temp_path(), &write.header_bytes(), &data);
                drop(data);
                let _ = done.send(Written {
                    write,
                    result,
                    started,
                });
            })?;
        self.in_flight = true;
        Ok(())
    }

    /// The driver took the outcome from `done`.
    pub fn finished(&mut self) {
        self.in_flight = false;
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
