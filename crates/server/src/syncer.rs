//! The writer thread: it syncs each batch's segment file while the driver thread goes on
//! stepping acknowledgements, ticking, taking requests and answering clients (thesis
//! §10.2.1: the leader's disk write runs in parallel with the rest of the work).
//!
//! The driver writes a batch into the file (a `write(2)` into the page cache) and hands the
//! file here; `fdatasync` on another handle of the same file makes those bytes durable. One
//! batch is in flight at a time: the node begins no new batch until this one is synced.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use skiff_node::{NodeError, SyncToken};
use skiff_wal::DiskError;

use crate::driver::Bell;
use crate::metrics::Metrics;

/// The outcome of one sync: the batch's token, and the error if it failed.
pub type Synced = (SyncToken, Result<(), DiskError>);

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
                    // Opened afresh each time (a microsecond beside the sync), so a handle
                    // can never outlive the file it was opened on.
                    let result = token.file().map_or(Ok(()), skiff_wal::fs_disk::sync_file);
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

/// The node error for a batch sync that failed.
pub(crate) fn sync_failed(error: DiskError) -> NodeError {
    NodeError::Wal(skiff_wal::WalError::from(error))
}

/// The error for a batch sync of `file` that could not be asked for: the writer thread is gone.
pub(crate) fn writer_gone(file: Option<&Path>) -> DiskError {
    DiskError::Io {
        op: "fdatasync",
        path: file.map(Into::into).unwrap_or_default(),
        source: io::Error::other("writer thread gone"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment that cannot be opened to sync (a directory under its name) is reported by
    /// the file's own error, naming the path once, not as `fdatasync` of it around the same
    /// words; a sync that could not be asked for is `fdatasync` of the path.
    #[test]
    fn a_failed_sync_names_the_file_once_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("seg-00000000000000000001.wal");
        std::fs::create_dir(&segment).unwrap();
        let error = skiff_wal::fs_disk::sync_file(&segment).unwrap_err();
        let text = sync_failed(error).to_string();
        let path = segment.display().to_string();
        assert_eq!(text.matches(&path).count(), 1, "{text}");
        assert!(text.contains("not a regular file"), "{text}");

        let text = sync_failed(writer_gone(Some(&segment))).to_string();
        assert_eq!(text.matches(&path).count(), 1, "{text}");
        assert!(
            text.contains("fdatasync") && text.contains("writer thread gone"),
            "{text}"
        );
    }
}
