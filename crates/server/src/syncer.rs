//! The writer thread: it syncs each batch's segment file while the driver thread goes on
//! stepping acknowledgements, ticking, taking requests and answering clients (thesis
//! §10.2.1: the leader's disk write runs in parallel with the rest of the work).
//!
//! The driver writes a batch into the file (a `write(2)` into the page cache) and hands the
//! file here; `fdatasync` on another handle of the same file makes those bytes durable. One
//! batch is in flight at a time: the node begins no new batch until this one is synced.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use skiff_node::SyncToken;

use crate::driver::Bell;
use crate::metrics::Metrics;

/// The outcome of one sync: the batch's token, and the error if it failed.
pub type Synced = (SyncToken, io::Result<()>);

/// The driver's handle on its writer thread. Dropping it stops the thread.
pub struct Syncer {
    requests: Sender<SyncToken>,
    /// Each requested sync's outcome, in order.
    pub done: Receiver<Synced>,
}

impl Syncer {
    /// Starts the writer thread of node `id`, which rings `bell` after each sync; each sync is
    /// timed into `skiff_fsync_duration_seconds`.
    pub fn spawn(id: u64, metrics: Arc<Metrics>, bell: Arc<Bell>) -> io::Result<Syncer> {
        // One batch in flight: a queue of one never blocks the driver.
        let (requests, requested) = bounded::<SyncToken>(1);
        let (finished, done) = bounded::<Synced>(1);
        thread::Builder::new()
            .name(format!("skiff-sync-{id}"))
            .spawn(move || {
                for token in requested {
                    let started = Instant::now();
                    let result = token.file().map_or(Ok(()), sync_data);
                    metrics
                        .fsync_duration
                        .observe(started.elapsed().as_secs_f64());
                    if finished.send((token, result)).is_err() {
                        return;
                    }
                    bell.ring();
                }
            })?;
        Ok(Syncer { requests, done })
    }

    /// Asks the thread to sync the file of the batch `token` names; its outcome arrives on
    /// [`Syncer::done`].
    pub fn sync(&self, token: SyncToken) -> Result<(), SyncToken> {
        self.requests.send(token).map_err(|error| error.0)
    }
}

/// `fdatasync` of `path`. The file is opened afresh each time (a microsecond beside the sync),
/// so a handle can never outlive the file it was opened on.
fn sync_data(path: &Path) -> io::Result<()> {
    skiff_wal::fs_disk::open_regular(path, OpenOptions::new().write(true), "open for sync")
        .map_err(io::Error::other)?
        .sync_data()
}
