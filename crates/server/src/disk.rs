//! The real disk, with each fsync timed for `/metrics`, and a read handle kept open on the file
//! last written: the node reads each entry back from the tail segment to apply it, and a fresh
//! open, stat, seek and close for every entry were four of the leader's ~34 syscalls per
//! one-client write.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use skiff_wal::{Disk, DiskError, FsDisk};

use crate::metrics::Metrics;

/// [`FsDisk`] whose `sync` and `sync_dir` are timed into `skiff_fsync_duration_seconds`.
pub struct TimedDisk {
    inner: FsDisk,
    metrics: Arc<Metrics>,
    /// The file last written and its read handle (reads take `&self`).
    kept: Mutex<Kept>,
}

/// The file this disk wrote last, which only this disk changes (the same file [`FsDisk`] keeps
/// its write handle for), and a read handle on it once it is read. Other files (a snapshot the
/// snapshot thread writes, say) are opened afresh for each read.
#[derive(Default)]
struct Kept {
    written: Option<PathBuf>,
    reader: Option<Reader>,
}

/// An open read handle and the file's length as this disk's own writes left it.
struct Reader {
    path: PathBuf,
    file: File,
    /// Bytes known to be in the file: a read within them needs no `stat`. Every write to the
    /// file goes through this disk, which keeps it up to date; a read past it stats again.
    len_bytes: u64,
}

impl TimedDisk {
    /// The real file system, timed into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> TimedDisk {
        TimedDisk {
            inner: FsDisk::new(),
            metrics,
            kept: Mutex::new(Kept::default()),
        }
    }
}

impl TimedDisk {
    /// Reads `len_bytes` at `offset` through the kept handle, opening `file` if the handle is
    /// for another one. The length check comes before the buffer grows, as in [`FsDisk`].
    fn read_kept(
        &self,
        file: &Path,
        offset: u64,
        len_bytes: u64,
        buffer: &mut Vec<u8>,
    ) -> Result<(), DiskError> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.written.as_deref() != Some(file) {
            drop(kept);
            return self.inner.read_into(file, offset, len_bytes, buffer);
        }
        let reader = match kept.reader.take().filter(|r| r.path == file) {
            Some(reader) => kept.reader.insert(reader),
            None => {
                let handle = File::open(file).map_err(|e| io_error("open for read", file, e))?;
                kept.reader.insert(Reader {
                    path: file.to_path_buf(),
                    file: handle,
                    len_bytes: 0,
                })
            }
        };
        let end = offset.checked_add(len_bytes);
        if end.is_none_or(|end| end > reader.len_bytes) {
            reader.len_bytes = reader
                .file
                .metadata()
                .map_err(|e| io_error("stat", file, e))?
                .len();
        }
        let file_len_bytes = reader.len_bytes;
        let short_read = || DiskError::ShortRead {
            path: file.to_path_buf(),
            offset,
            len_bytes,
            file_len_bytes,
        };
        let len = usize::try_from(len_bytes)
            .ok()
            .filter(|_| end.is_some_and(|end| end <= file_len_bytes))
            .ok_or_else(short_read)?;
        // Bytes left from the last read are overwritten, not zeroed first: only growth is.
        buffer.resize(len, 0);
        reader
            .file
            .read_exact_at(buffer, offset)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => short_read(),
                _ => io_error("read", file, e),
            })
    }

    /// This disk wrote `file`, up to `end` if that is known: it is the file reads keep a
    /// handle on, and a kept handle knows the bytes are there.
    fn wrote(&self, file: &Path, end: Option<u64>) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.written.as_deref() != Some(file) {
            *kept = Kept {
                written: Some(file.to_path_buf()),
                reader: None,
            };
        }
        if let (Some(reader), Some(end)) = (kept.reader.as_mut(), end) {
            reader.len_bytes = reader.len_bytes.max(end);
        }
    }

    /// `file` is replaced, removed or cut: the kept handle on it, if any, is closed.
    fn forget(&self, file: &Path) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.written.as_deref() == Some(file) {
            *kept = Kept::default();
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
        self.forget(file);
        self.inner.create(file)
    }
    fn append(&mut self, file: &Path, bytes: &[u8]) -> Result<(), DiskError> {
        self.inner.append(file, bytes)?;
        // Where the bytes landed is not known here without a stat: the next read past the
        // known length stats again.
        self.wrote(file, None);
        Ok(())
    }
    fn write_at(&mut self, file: &Path, offset: u64, bytes: &[u8]) -> Result<(), DiskError> {
        self.inner.write_at(file, offset, bytes)?;
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        self.wrote(file, Some(offset.saturating_add(len)));
        Ok(())
    }
    fn read(&self, file: &Path, offset: u64, len_bytes: u64) -> Result<Vec<u8>, DiskError> {
        let mut buffer = Vec::new();
        self.read_kept(file, offset, len_bytes, &mut buffer)?;
        Ok(buffer)
    }
    fn read_into(
        &self,
        file: &Path,
        offset: u64,
        len_bytes: u64,
        buffer: &mut Vec<u8>,
    ) -> Result<(), DiskError> {
        self.read_kept(file, offset, len_bytes, buffer)
    }
    fn read_all(&self, file: &Path) -> Result<Vec<u8>, DiskError> {
        self.inner.read_all(file)
    }
    fn read_all_into(&self, file: &Path, buffer: &mut Vec<u8>) -> Result<(), DiskError> {
        self.inner.read_all_into(file, buffer)
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
        self.forget(from);
        self.forget(to);
        self.inner.rename(from, to)
    }
    fn remove(&mut self, file: &Path) -> Result<(), DiskError> {
        self.forget(file);
        self.inner.remove(file)
    }
    fn truncate(&mut self, file: &Path, len_bytes: u64) -> Result<(), DiskError> {
        self.forget(file);
        self.inner.truncate(file, len_bytes)
    }
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> DiskError {
    let path = path.to_path_buf();
    match source.kind() {
        io::ErrorKind::NotFound => DiskError::NotFound { path },
        _ => DiskError::Io { op, path, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk() -> TimedDisk {
        TimedDisk::new(Arc::new(Metrics::new()))
    }

    #[test]
    fn reads_through_the_kept_handle_see_what_this_disk_wrote_since() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("seg");
        let mut disk = disk();
        disk.create(&segment).unwrap();
        disk.write_at(&segment, 0, b"first").unwrap();
        assert_eq!(disk.read(&segment, 0, 5).unwrap(), b"first");
        // The handle is kept; the next entry lands past the length it knew.
        disk.write_at(&segment, 5, b"second").unwrap();
        assert_eq!(disk.read(&segment, 5, 6).unwrap(), b"second");
        disk.append(&segment, b"third").unwrap();
        let mut buffer = Vec::new();
        disk.read_into(&segment, 11, 5, &mut buffer).unwrap();
        assert_eq!(buffer, b"third");
    }

    #[test]
    fn a_file_replaced_or_removed_is_not_read_through_its_old_handle() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, staged) = (dir.path().join("seg"), dir.path().join("staged"));
        let mut disk = disk();
        disk.create(&segment).unwrap();
        disk.write_at(&segment, 0, b"old bytes").unwrap();
        assert_eq!(disk.read(&segment, 0, 3).unwrap(), b"old");
        disk.create(&staged).unwrap();
        disk.write_at(&staged, 0, b"new bytes").unwrap();
        disk.rename(&staged, &segment).unwrap();
        assert_eq!(disk.read(&segment, 0, 3).unwrap(), b"new");
        disk.remove(&segment).unwrap();
        assert!(matches!(
            disk.read(&segment, 0, 3),
            Err(DiskError::NotFound { .. })
        ));
    }

    #[test]
    fn a_file_this_disk_did_not_write_last_is_read_afresh_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, snapshot) = (dir.path().join("seg"), dir.path().join("snap.tmp"));
        let mut disk = disk();
        std::fs::write(&snapshot, b"first snapshot").unwrap();
        assert_eq!(disk.read(&snapshot, 0, 5).unwrap(), b"first");
        disk.create(&segment).unwrap();
        disk.write_at(&segment, 0, b"entry").unwrap();
        assert_eq!(disk.read(&segment, 0, 5).unwrap(), b"entry");
        // Replaced behind this disk's back, as the snapshot thread does with its file.
        std::fs::remove_file(&snapshot).unwrap();
        std::fs::write(&snapshot, b"later snapshot").unwrap();
        assert_eq!(disk.read(&snapshot, 0, 5).unwrap(), b"later");
        assert_eq!(disk.read(&segment, 0, 5).unwrap(), b"entry");
    }

    #[test]
    fn reads_past_the_end_fail_without_growing_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("seg");
        let mut disk = disk();
        disk.create(&segment).unwrap();
        disk.write_at(&segment, 0, b"0123456789").unwrap();
        assert_eq!(disk.read(&segment, 0, 10).unwrap(), b"0123456789");
        let mut buffer = Vec::new();
        for (offset, len) in [(8, 3), (0, u64::MAX), (u64::MAX, 1), (11, 0)] {
            let read = disk.read_into(&segment, offset, len, &mut buffer);
            assert!(
                matches!(
                    read,
                    Err(DiskError::ShortRead {
                        file_len_bytes: 10,
                        ..
                    })
                ),
                "{offset}+{len}: {read:?}"
            );
            assert!(buffer.capacity() < 1024);
        }
        // Cut under the kept handle: the bytes past the cut are gone.
        disk.truncate(&segment, 4).unwrap();
        assert!(disk.read(&segment, 2, 4).is_err());
        assert_eq!(disk.read(&segment, 0, 4).unwrap(), b"0123");
    }
}
