//! The real disk, with each fsync timed for `/metrics` and segments read ahead at recovery
//! ([`WholeReads`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use skiff_wal::{Disk, DiskError, FsDisk};

use crate::metrics::Metrics;
use crate::prefetch::WholeReads;

/// [`FsDisk`] whose `sync` and `sync_dir` are timed into `skiff_fsync_duration_seconds`.
pub struct TimedDisk {
    inner: FsDisk,
    metrics: Arc<Metrics>,
    whole_reads: WholeReads,
}

impl TimedDisk {
    /// The real file system, timed into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> TimedDisk {
        TimedDisk {
            inner: FsDisk::new(),
            metrics,
            whole_reads: WholeReads::default(),
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
        self.whole_reads.forget(file);
        self.inner.append(file, bytes)
    }
    fn write_at(&mut self, file: &Path, offset: u64, bytes: &[u8]) -> Result<(), DiskError> {
        self.whole_reads.forget(file);
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
    fn read_all_into(&self, file: &Path, buffer: &mut Vec<u8>) -> Result<(), DiskError> {
        self.whole_reads.read_all_into(&self.inner, file, buffer)
    }
    fn read_all_ahead(&self, next: Option<&Path>) {
        self.whole_reads.read_ahead(next)
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
        self.whole_reads.forget(from);
        self.whole_reads.forget(to);
        self.inner.rename(from, to)
    }
    fn remove(&mut self, file: &Path) -> Result<(), DiskError> {
        self.whole_reads.forget(file);
        self.inner.remove(file)
    }
    fn truncate(&mut self, file: &Path, len_bytes: u64) -> Result<(), DiskError> {
        self.whole_reads.forget(file);
        self.inner.truncate(file, len_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file read ahead and then changed through this disk — written, cut, replaced — is read
    /// as it is after the change, never as the read ahead saw it.
    #[test]
    fn a_file_changed_after_it_was_read_ahead_is_read_as_it_is_now() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, staged) = (dir.path().join("seg"), dir.path().join("staged"));
        let mut disk = TimedDisk::new(Arc::new(Metrics::new()));
        let mut buffer = Vec::new();
        disk.create(&segment).unwrap();
        disk.write_at(&segment, 0, b"torn tail!").unwrap();

        disk.read_all_ahead(Some(&segment));
        disk.truncate(&segment, 4).unwrap();
        disk.read_all_into(&segment, &mut buffer).unwrap();
        assert_eq!(buffer, b"torn");

        disk.read_all_ahead(Some(&segment));
        disk.write_at(&segment, 4, b" mended").unwrap();
        disk.read_all_into(&segment, &mut buffer).unwrap();
        assert_eq!(buffer, b"torn mended");

        disk.create(&staged).unwrap();
        disk.write_at(&staged, 0, b"replaced").unwrap();
        disk.read_all_ahead(Some(&segment));
        disk.rename(&staged, &segment).unwrap();
        disk.read_all_into(&segment, &mut buffer).unwrap();
        assert_eq!(buffer, b"replaced");

        disk.read_all_ahead(Some(&segment));
        disk.remove(&segment).unwrap();
        assert!(matches!(
            disk.read_all_into(&segment, &mut buffer),
            Err(DiskError::NotFound { .. })
        ));
    }
}
