//! [`SnapshotWrite`]: a snapshot file its caller writes itself (on another thread, say), which
//! the [`Wal`](crate::Wal) then installs.

use std::path::{Path, PathBuf};

use skiff_raft::SnapshotMeta;

use crate::snapshot::SnapshotHeader;

/// A snapshot file that the caller writes itself: see [`Wal::prepare_snapshot_write`](crate::Wal::prepare_snapshot_write).
#[derive(Debug)]
pub struct SnapshotWrite {
    pub(crate) temp: PathBuf,
    pub(crate) header: SnapshotHeader,
    /// Whether `header` holds the data's length and checksum ([`SnapshotWrite::seal`]).
    pub(crate) sealed: bool,
}

impl SnapshotWrite {
    /// The file to create and write: the header bytes, then the data; then sync it.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Records the length and checksum of `data`, the bytes that follow the header, and
    /// returns the header's bytes, to write first. The checksum is taken over the very bytes
    /// written, wherever they were serialized; sealing again (other data) replaces it.
    pub fn seal(&mut self, data: &[u8]) -> Vec<u8> {
        self.seal_streamed(data.len() as u64, crc32c::crc32c(data))
    }

    /// [`seal`](Self::seal) for a caller that streamed the data to the file after
    /// [`header_len`](Self::header_len) bytes left for the header: the data's length and
    /// CRC-32C, taken over the very bytes it wrote. It then writes the returned header's bytes
    /// at the file's start, and syncs.
    pub fn seal_streamed(&mut self, data_len: u64, data_crc: u32) -> Vec<u8> {
        self.header.data_len = data_len;
        self.header.data_crc = data_crc;
        self.sealed = true;
        self.header.encode()
    }

    /// The length of the header, whatever the data: where the data start in the file.
    pub fn header_len(&self) -> u64 {
        self.header.encoded_len()
    }

    /// What the snapshot covers.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.header.meta
    }
}
