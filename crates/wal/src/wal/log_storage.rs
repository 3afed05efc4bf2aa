//! [`Wal`] as the core's [`LogStorage`]: the log's bounds and terms, entries read back (from
//! the recent ones, read ahead, or the disk), appends, snapshots and compaction.

use skiff_raft::{Entry, LogIndex, LogStorage, SnapshotMeta, StorageError, Term};

use super::Wal;
use crate::disk::Disk;
use crate::error::WalError;
use crate::read_ahead;
use crate::snapshot::{self, SnapshotHeader, Staging};

impl<D: Disk> LogStorage for Wal<D> {
    fn first_index(&self) -> LogIndex {
        self.index.first_index()
    }

    fn last_index(&self) -> LogIndex {
        self.index.last_index()
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        if index == self.index.start.index {
            return Ok(self.index.start.term);
        }
        self.check_readable(index)?;
        self.index
            .term(index)
            .ok_or_else(|| super::missing_from_index(index))
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low >= high {
            return Ok(Vec::new());
        }
        self.check_readable(low)?;
        self.check_readable(high.prev())?;
        // Decide how many entries fit from the sizes kept in memory, then read only those.
        let count = read_ahead::batch_len(low, high, max_bytes, |index| self.index.slot(index));
        if let Some(entries) = self.take_read_ahead(low, count) {
            return Ok(entries);
        }
        let term_at = |index| self.index.term(index);
        if let Some(entries) = self.recent.get(low, count, term_at) {
            return Ok(entries);
        }
        self.read_entries(low, count)
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        Ok(self.append_batch(entries, None)?)
    }

    fn snapshot_meta(&self) -> SnapshotMeta {
        self.snapshot
            .as_ref()
            .map(|current| current.meta.clone())
            .unwrap_or_default()
    }

    fn snapshot_len(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |current| current.data_len)
    }

    /// Reads the chunk from the snapshot file (the data was checksummed whole when the file
    /// was written and when the log was opened).
    fn snapshot_chunk(&self, offset: u64, max_bytes: u64) -> Result<Vec<u8>, StorageError> {
        let Some(current) = &self.snapshot else {
            return Ok(Vec::new());
        };
        let start = offset.min(current.data_len);
        let len = max_bytes.min(current.data_len - start);
        if len == 0 {
            return Ok(Vec::new());
        }
        self.disk
            .read(&current.path, current.data_offset + start, len)
            .map_err(|error| StorageError::Backend(error.to_string()))
    }

    /// Writes `snap-{index}.snap` (temp file, sync, rename, directory sync) and removes the
    /// older snapshot file. The log is not compacted: that is [`LogStorage::compact`].
    fn save_snapshot(&mut self, meta: SnapshotMeta, data: Vec<u8>) -> Result<(), StorageError> {
        let mut write = self.prepare_snapshot_write(meta)?;
        self.write_snapshot_file(&mut write, &data)?;
        Ok(self.publish_written_snapshot(write.header)?)
    }

    /// Compacts through [`Wal::compact_to`], but never past the snapshot or the log's end.
    fn compact(&mut self, upto: LogIndex) -> Result<(), StorageError> {
        if upto <= self.index.start.index {
            return Ok(());
        }
        let covered = self
            .snapshot
            .as_ref()
            .map_or(LogIndex(0), |current| current.meta.index);
        if upto > covered || upto > self.index.last_index() {
            return Err(StorageError::Snapshot(format!(
                "cannot compact to {upto}: the snapshot covers {covered} and the log ends at {}",
                self.index.last_index()
            )));
        }
        let term = self.term(upto)?;
        Ok(self.compact_to(upto, term)?)
    }

    /// Appends the chunk to `snap-{index}.staging` and syncs it (a new staging file's name is
    /// made durable too). Offset 0, or another snapshot, starts afresh; a chunk that does not
    /// continue the staged bytes is refused with [`StorageError::Snapshot`]. A failed write
    /// drops what was staged.
    fn stage_snapshot_chunk(
        &mut self,
        meta: &SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> Result<(), StorageError> {
        self.check_usable()?;
        let (staging, new_file) = match self.staging.take() {
            Some(staging) if offset != 0 && staging.meta == *meta => (staging, false),
            previous => {
                if let Some(previous) = previous {
                    self.remove_if_exists(&previous.path)
                        .map_err(WalError::from)?;
                }
                let path = self.dir.join(snapshot::staging_file_name(meta.index));
                let staging = Staging {
                    meta: meta.clone(),
                    path,
                    len: 0,
                    crc: 0,
                };
                (staging, true)
            }
        };
        if staging.len != offset {
            let staged = staging.len;
            if !new_file {
                self.staging = Some(staging);
            }
            return Err(StorageError::Snapshot(format!(
                "chunk at {offset}, but {staged} bytes are staged"
            )));
        }
        self.append_staged(&staging, data, new_file)
            .map_err(WalError::from)?;
        self.staging = Some(Staging {
            len: staging.len + data.len() as u64,
            crc: crc32c::crc32c_append(staging.crc, data),
            ..staging
        });
        Ok(())
    }

    /// Writes the staged data as `snap-{index}.snap` (temp file, sync, rename, directory
    /// sync), then compacts the log to the snapshot with [`Wal::compact_to`], which keeps the
    /// entries after it only if the log holds `meta.index` with `meta.term` (Figure 13). A
    /// crash between the two is finished by [`Wal::open`]. A snapshot older than the current
    /// one is refused.
    fn install_staged_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), StorageError> {
        self.check_usable()?;
        let Some(staging) = self.staging.clone().filter(|staging| staging.meta == *meta) else {
            return Err(StorageError::Snapshot(format!(
                "no staged snapshot at {}",
                meta.index
            )));
        };
        self.check_not_older(meta.index)?;
        let header = SnapshotHeader {
            cluster_id: self.options.cluster_id,
            meta: meta.clone(),
            data_len: staging.len,
            data_crc: staging.crc,
        };
        self.publish_snapshot(header, |disk, temp| {
            snapshot::copy_staged(disk, &staging.path, temp, staging.len, staging.crc)
        })?;
        self.staging = None;
        // Best effort, not synced: start-up removes a staging file left behind.
        let _ = self.remove_if_exists(&staging.path);
        Ok(self.compact_to(meta.index, meta.term)?)
    }
}
