//! The real disk, with each fsync timed for `/metrics`, and the space of large removed files
//! freed on a thread of its own ([`Freer`]).
//!
//! A large file's name is gone when `remove` returns but its blocks come back a moment later,
//! once the freer has closed it: a disk filled to the last segment may see a write refused
//! (`ENOSPC`, which stops the node) that the removal just before would otherwise have made
//! room for.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use skiff_wal::{Disk, DiskError, FsDisk, WholeFile};

use crate::metrics::Metrics;

/// [`FsDisk`] whose `sync` and `sync_dir` are timed into `skiff_fsync_duration_seconds`, and
/// whose large removed files are freed apart.
pub struct TimedDisk {
    inner: FsDisk,
    metrics: Arc<Metrics>,
    freer: Freer,
}

impl TimedDisk {
    /// The real file system, timed into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> TimedDisk {
        TimedDisk {
            inner: FsDisk::new(),
            metrics,
            freer: Freer::default(),
        }
    }

    fn observe_sync(&self, started: Instant) {
        self.metrics
            .fsync_duration
            .observe(started.elapsed().as_secs_f64());
    }
}

impl std::fmt::Debug for TimedDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TimedDisk")
    }
}

impl Disk for TimedDisk {
    fn create_dir_all(&mut self, dir: &Path) -> Result<(), DiskError> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>, DiskError> {
        self.inner.list(dir)
    }
    fn create(&mut self, file: &Path) -> Result<(), DiskError> {
        self.inner.create(file)
    }
    fn append(&mut self, file: &Path, bytes: &[u8]) -> Result<(), DiskError> {
        self.inner.append(file, bytes)
    }
    fn write_at(&mut self, file: &Path, offset: u64, bytes: &[u8]) -> Result<(), DiskError> {
        self.inner.write_at(file, offset, bytes)
    }
    fn read(&self, file: &Path, offset: u64, len_bytes: u64) -> Result<Vec<u8>, DiskError> {
        self.inner.read(file, offset, len_bytes)
    }
    fn read_into(
        &self,
        file: &Path,
        offset: u64,
        len_bytes: u64,
        buffer: &mut Vec<u8>,
    ) -> Result<(), DiskError> {
        self.inner.read_into(file, offset, len_bytes, buffer)
    }
    fn read_all(&self, file: &Path) -> Result<Vec<u8>, DiskError> {
        self.inner.read_all(file)
    }
    fn read_whole(&self, file: &Path) -> Result<WholeFile, DiskError> {
        self.inner.read_whole(file)
    }
    fn read_whole_ahead(&self, next: &Path) {
        self.inner.read_whole_ahead(next)
    }
    fn len(&self, file: &Path) -> Result<u64, DiskError> {
        self.inner.len(file)
    }
    fn sync(&mut self, file: &Path) -> Result<(), DiskError> {
        let started = Instant::now();
        let result = self.inner.sync(file);
        self.observe_sync(started);
        result
    }
    fn sync_dir(&mut self, dir: &Path) -> Result<(), DiskError> {
        let started = Instant::now();
        let result = self.inner.sync_dir(dir);
        self.observe_sync(started);
        result
    }
    fn rename(&mut self, from: &Path, to: &Path) -> Result<(), DiskError> {
        self.inner.rename(from, to)
    }
    fn remove(&mut self, file: &Path) -> Result<(), DiskError> {
        // A large regular file is held open across the unlink: the name goes now, and its
        // blocks are freed when the last handle closes, on the freer's thread.
        let held = is_large_file(file).then(|| open_to_free(file)).flatten();
        self.inner.remove(file)?;
        if let Some(handle) = held {
            self.freer.free(handle);
        }
        Ok(())
    }
    fn truncate(&mut self, file: &Path, len_bytes: u64) -> Result<(), DiskError> {
        self.inner.truncate(file, len_bytes)
    }
}

/// Removed files at least this large have their space freed off the calling thread: ext4
/// frees a file's blocks when its last handle closes, and unlinking a 64 MiB segment took
/// 28 ms on the driver thread (a 30 MB snapshot file 4–6 ms), a stall every client waited out.
const FREE_APART_BYTES: u64 = 1 << 20;

/// Handles of removed files waiting to be closed; when it is full, the caller closes its own.
const FREE_QUEUE: usize = 16;

/// Whether `file` is a regular file (not a link, a FIFO or a device) of at least
/// [`FREE_APART_BYTES`].
fn is_large_file(file: &Path) -> bool {
    std::fs::symlink_metadata(file)
        .is_ok_and(|meta| meta.file_type().is_file() && meta.len() >= FREE_APART_BYTES)
}

/// `file` opened to be held across its removal: read-only, never following a link or waiting
/// on a FIFO put there since it was looked at, and only if it is still a regular file.
fn open_to_free(file: &Path) -> Option<File> {
    skiff_wal::fs_disk::open_regular(file, std::fs::OpenOptions::new().read(true), "open").ok()
}

/// Closes the handles of removed files on a thread of its own, started at the first.
#[derive(Default)]
struct Freer {
    queue: Option<SyncSender<File>>,
    /// The thread could not be started: every handle is closed by the caller.
    refused: bool,
    /// Handles the thread has closed.
    closed: Arc<AtomicU64>,
}

impl Freer {
    /// Has `handle`, whose file's name is gone, closed on the thread; closes it here if
    /// the thread cannot start or is behind.
    fn free(&mut self, handle: File) {
        if self.queue.is_none() && !self.refused {
            let (queue, handles) = sync_channel::<File>(FREE_QUEUE);
            let closed = self.closed.clone();
            let spawned = thread::Builder::new()
                .name("skiff-free".into())
                .spawn(move || {
                    for handle in handles {
                        drop(handle);
                        closed.fetch_add(1, Ordering::Relaxed);
                    }
                });
            match spawned {
                Ok(_) => self.queue = Some(queue),
                Err(error) => {
                    self.refused = true;
                    tracing::warn!(%error, "removed files are freed on the driver");
                }
            }
        }
        let Some(queue) = &self.queue else {
            return;
        };
        match queue.try_send(handle) {
            Ok(()) => {}
            Err(TrySendError::Full(handle) | TrySendError::Disconnected(handle)) => drop(handle),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A large file's name is gone when `remove` returns, and its handle is closed on the
    /// freer's thread, never touching a new file made under the same name meanwhile; a small
    /// file is removed with no thread at all.
    #[test]
    fn a_large_removed_file_is_freed_apart_and_its_name_is_free_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("seg");
        let mut disk = TimedDisk::new(Arc::new(Metrics::new()));
        disk.create(&segment).unwrap();
        disk.write_at(&segment, 0, b"small").unwrap();
        disk.remove(&segment).unwrap();
        assert!(!segment.exists());
        assert!(disk.freer.queue.is_none(), "a small file needs no thread");

        disk.create(&segment).unwrap();
        let large = vec![7u8; FREE_APART_BYTES as usize];
        disk.write_at(&segment, 0, &large).unwrap();
        disk.remove(&segment).unwrap();
        assert!(!segment.exists(), "the name is gone when remove returns");
        disk.create(&segment).unwrap();
        disk.write_at(&segment, 0, b"the new file").unwrap();

        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while disk.freer.closed.load(Ordering::Relaxed) < 1 {
            assert!(
                Instant::now() < deadline,
                "the freer never closed the handle"
            );
            thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(disk.read_all(&segment).unwrap(), b"the new file");
    }

    /// A FIFO, or a link to a large file, under a name the log removes is unlinked as any
    /// small file: never opened (opening a FIFO waits for a writer), the link's target left
    /// whole and not held; a directory there is refused as before.
    #[test]
    fn a_fifo_or_a_link_under_a_removed_name_is_unlinked_without_being_opened() {
        let dir = tempfile::tempdir().unwrap();
        let (fifo, link, target) = (
            dir.path().join("seg-fifo"),
            dir.path().join("seg-link"),
            dir.path().join("target"),
        );
        let path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        std::fs::write(&target, vec![1u8; 2 * FREE_APART_BYTES as usize]).unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();

        let (done, removed) = std::sync::mpsc::channel();
        let (fifo_, link_) = (fifo.clone(), link.clone());
        let remover = thread::spawn(move || {
            let mut disk = TimedDisk::new(Arc::new(Metrics::new()));
            disk.remove(&fifo_).unwrap();
            disk.remove(&link_).unwrap();
            // A directory under the name: an error, as ever, and nothing held.
            std::fs::create_dir(&fifo_).unwrap();
            assert!(disk.remove(&fifo_).is_err());
            std::fs::remove_dir(&fifo_).unwrap();
            let _ = done.send(disk.freer.queue.is_none());
        });
        let no_thread = removed
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("removing a FIFO hung");
        remover.join().unwrap();
        assert!(no_thread, "nothing was held open to be freed apart");
        assert!(std::fs::symlink_metadata(&fifo).is_err());
        assert!(std::fs::symlink_metadata(&link).is_err());
        assert_eq!(
            std::fs::metadata(&target).unwrap().len(),
            2 * FREE_APART_BYTES
        );
    }
}
