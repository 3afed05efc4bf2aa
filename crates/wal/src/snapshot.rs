//! Snapshot files: the format, their names, and finding the current one at start-up.
//!
//! ```text
//! snap-{index:020}.snap      the current snapshot (normally exactly one)
//! snap-{index:020}.snap.tmp  a snapshot being written; renamed to .snap once synced
//! snap-{index:020}.staging   the data of an incoming snapshot, chunk by chunk
//!
//! snapshot file = header | data
//! header (integers little-endian):
//!   magic "SKIFFSNP" | version: u16 | cluster id: u64 | index: u64 | term: u64
//!   | member count: u32 | members: u64 × count | data length: u64 | data crc: u32
//!   | header crc: u32
//!   data crc is CRC-32C of the data; header crc is CRC-32C of every header byte before it.
//!   members: the voters, then 0, the outgoing voters of a joint configuration, then 0, the
//!   learners (node id 0 means nobody, so it separates the lists; with no separator every
//!   member is a voter).
//! ```
//!
//! A snapshot file is only ever given its final name after its contents were synced
//! (temp file → sync → rename → directory sync), so a crash can tear only a `.tmp` file.
//!
//! Rules at start-up, kept simple on purpose:
//! - the complete snapshot file with the highest index is the current snapshot; it must be
//!   whole — header checksum, magic, version, cluster id, the index in its name, its length,
//!   and the data checksum — or the log refuses to start with [`WalError::Corrupt`] (or
//!   [`WalError::WrongCluster`]) naming the file. There is no fall-back to an older snapshot:
//!   the log may already be compacted past it;
//! - older complete snapshot files (left by a crash between the rename of a newer one and the
//!   removal of the older ones) are superseded and removed without being read;
//! - `.tmp` files (torn or not) and `.staging` files (a transfer cut short) are removed.
//!
//! The data is never held in memory as a whole: it is checksummed at start-up in pieces of
//! [`COPY_CHUNK_BYTES`], and read back chunk by chunk.

use std::path::{Path, PathBuf};

use skiff_codec::{put, Reader};
use skiff_raft::{LogIndex, NodeId, SnapshotMeta, Term};

use crate::disk::{Disk, DiskError};
use crate::error::{Corruption, WalError};

/// The first bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"SKIFFSNP";

/// The snapshot format version written and the only one read.
pub const VERSION: u16 = 1;

/// The most voters a snapshot header may list; a larger count is read as corruption.
pub const MAX_VOTERS: u32 = 1 << 16;

/// The piece size in which snapshot data is checksummed and copied.
pub const COPY_CHUNK_BYTES: u64 = 1 << 20;

/// Header bytes before the voters: magic, version, cluster id, index, term, voter count.
const FIXED_PREFIX_BYTES: u64 = 8 + 2 + 8 + 8 + 8 + 4;
/// Header bytes after the voters: data length, data crc, header crc.
const FIXED_SUFFIX_BYTES: u64 = 8 + 4 + 4;

/// The name of the snapshot file for `index`.
pub fn file_name(index: LogIndex) -> String {
    format!("snap-{:020}.snap", index.0)
}

/// The name of the temporary file a snapshot for `index` is written to.
pub fn temp_file_name(index: LogIndex) -> String {
    format!("snap-{:020}.snap.tmp", index.0)
}

/// The name of the file an incoming snapshot for `index` is staged in.
pub fn staging_file_name(index: LogIndex) -> String {
    format!("snap-{:020}.staging", index.0)
}

/// What kind of snapshot file a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A complete snapshot, for this index.
    Complete(LogIndex),
    /// A snapshot being written.
    Temp,
    /// Staged data of an incoming snapshot.
    Staging,
}

/// The kind of a snapshot file name, or `None` for any other file.
pub fn parse_file_name(name: &str) -> Option<FileKind> {
    let rest = name.strip_prefix("snap-")?;
    let (digits, kind) = if let Some(digits) = rest.strip_suffix(".snap") {
        (digits, None)
    } else if let Some(digits) = rest.strip_suffix(".snap.tmp") {
        (digits, Some(FileKind::Temp))
    } else {
        (rest.strip_suffix(".staging")?, Some(FileKind::Staging))
    };
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index = LogIndex(digits.parse().ok()?);
    Some(kind.unwrap_or(FileKind::Complete(index)))
}

/// A snapshot file's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The cluster the snapshot belongs to.
    pub cluster_id: u64,
    /// What the snapshot is a picture of.
    pub meta: SnapshotMeta,
    /// The length of the data after the header.
    pub data_len: u64,
    /// CRC-32C of the data.
    pub data_crc: u32,
}

impl SnapshotHeader {
    /// The encoded header.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len() as usize);
        out.extend_from_slice(&MAGIC);
        put::u16(&mut out, VERSION);
        put::u64(&mut out, self.cluster_id);
        put::u64(&mut out, self.meta.index.0);
        put::u64(&mut out, self.meta.term.0);
        let members = encode_members(&self.meta);
        put::count_u32(&mut out, members.len());
        for &member in &members {
            put::u64(&mut out, member);
        }
        put::u64(&mut out, self.data_len);
        put::u32(&mut out, self.data_crc);
        let crc = crc32c::crc32c(&out);
        put::u32(&mut out, crc);
        out
    }

    /// The length of the encoded header.
    pub fn encoded_len(&self) -> u64 {
        FIXED_PREFIX_BYTES + 8 * encode_members(&self.meta).len() as u64 + FIXED_SUFFIX_BYTES
    }
}

/// Voters, 0, outgoing voters, 0, learners (the separators only when needed).
fn encode_members(meta: &SnapshotMeta) -> Vec<u64> {
    let mut members: Vec<u64> = meta.voters.iter().map(|id| id.0).collect();
    if !meta.voters_outgoing.is_empty() || !meta.learners.is_empty() {
        members.push(0);
        members.extend(meta.voters_outgoing.iter().map(|id| id.0));
        members.push(0);
        members.extend(meta.learners.iter().map(|id| id.0));
    }
    members
}

/// The three member lists of an encoded header.
fn decode_members(members: &[u64]) -> (Vec<NodeId>, Vec<NodeId>, Vec<NodeId>) {
    let mut lists = members
        .split(|&id| id == 0)
        .map(|list| list.iter().map(|&id| NodeId(id)).collect::<Vec<_>>());
    let voters = lists.next().unwrap_or_default();
    let outgoing = lists.next().unwrap_or_default();
    let learners = lists.next().unwrap_or_default();
    (voters, outgoing, learners)
}

/// The current snapshot: its metadata in memory, its data on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotFile {
    /// The file.
    pub path: PathBuf,
    /// What it is a picture of.
    pub meta: SnapshotMeta,
    /// Where the data begins (the header's length).
    pub data_offset: u64,
    /// The data's length.
    pub data_len: u64,
}

/// An incoming snapshot being staged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Staging {
    /// The snapshot being received.
    pub meta: SnapshotMeta,
    /// The staging file, holding the data received so far (synced).
    pub path: PathBuf,
    /// How many bytes are staged.
    pub len: u64,
    /// CRC-32C of the staged bytes.
    pub crc: u32,
}

/// What [`scan`] found in the directory.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    /// The current snapshot, checked whole.
    pub current: Option<SnapshotFile>,
    /// Files to remove: temp files, staging files, superseded snapshots.
    pub leftovers: Vec<PathBuf>,
}

/// Finds and checks the current snapshot in `dir`, and lists the leftovers to remove. Reads
/// only: a refusal leaves every file as it is.
pub(crate) fn scan<D: Disk>(disk: &D, dir: &Path, cluster_id: u64) -> Result<Scanned, WalError> {
    let mut complete = Vec::new();
    let mut leftovers = Vec::new();
    for name in disk.list(dir)? {
        match parse_file_name(&name) {
            Some(FileKind::Complete(index)) => complete.push((index, dir.join(name))),
            Some(FileKind::Temp | FileKind::Staging) => leftovers.push(dir.join(name)),
            None => {}
        }
    }
    complete.sort();
    let Some((index, path)) = complete.pop() else {
        return Ok(Scanned {
            current: None,
            leftovers,
        });
    };
    leftovers.extend(complete.into_iter().map(|(_, path)| path));
    leftovers.sort();
    let current = check_file(disk, &path, index, cluster_id)?;
    Ok(Scanned {
        current: Some(current),
        leftovers,
    })
}

/// Reads and checks a whole snapshot file, named for `index`.
pub(crate) fn check_file<D: Disk>(
    disk: &D,
    path: &Path,
    index: LogIndex,
    cluster_id: u64,
) -> Result<SnapshotFile, WalError> {
    let file_len = disk.len(path)?;
    let header_len = header_len(disk, path, file_len)?;
    let header = disk.read(path, 0, header_len)?;
    let header = decode_header(path, &header, index, cluster_id)?;
    check_data(disk, path, file_len, header_len, &header)?;
    Ok(SnapshotFile {
        path: path.to_path_buf(),
        meta: header.meta,
        data_offset: header_len,
        data_len: header.data_len,
    })
}

/// A snapshot file refused for `problem`, found in its header.
fn corrupt(path: &Path, problem: Corruption) -> WalError {
    WalError::Corrupt {
        file: path.to_path_buf(),
        offset: 0,
        problem,
    }
}

/// A snapshot file refused for a header that cannot be read, for `reason`.
fn header_bad(path: &Path, reason: &'static str) -> WalError {
    corrupt(path, Corruption::BadSnapshotHeader { reason })
}

/// How long the header of a `file_len`-byte snapshot file says it is. The prefix says how
/// long the header is; nothing in it is trusted before the checksum but the magic and a
/// possible member count.
fn header_len<D: Disk>(disk: &D, path: &Path, file_len: u64) -> Result<u64, WalError> {
    if file_len < FIXED_PREFIX_BYTES + FIXED_SUFFIX_BYTES {
        return Err(header_bad(path, "the file is shorter than a header"));
    }
    let prefix = disk.read(path, 0, FIXED_PREFIX_BYTES)?;
    let mut r = Reader::new(&prefix);
    let cut = |_| header_bad(path, "the header is shorter than its fields");
    if r.take(MAGIC.len()).map_err(cut)? != MAGIC {
        return Err(header_bad(path, "bad magic"));
    }
    r.take(FIXED_PREFIX_BYTES as usize - MAGIC.len() - 4)
        .map_err(cut)?;
    let member_count = r.u32().map_err(cut)?;
    if member_count > MAX_VOTERS {
        return Err(header_bad(path, "impossible voter count"));
    }
    let header_len = FIXED_PREFIX_BYTES + 8 * u64::from(member_count) + FIXED_SUFFIX_BYTES;
    if file_len < header_len {
        return Err(header_bad(path, "the file is shorter than its header"));
    }
    Ok(header_len)
}

/// The header of a snapshot file named for `index`: its checksum, then its fields, which
/// must be of a version read here, of this cluster and for the index in the name.
fn decode_header(
    path: &Path,
    header: &[u8],
    index: LogIndex,
    cluster_id: u64,
) -> Result<SnapshotHeader, WalError> {
    let cut = |_| header_bad(path, "the header is shorter than its fields");
    let (body, stored_crc) = header.split_at(header.len() - 4);
    let stored_crc = Reader::new(stored_crc).u32().map_err(cut)?;
    if crc32c::crc32c(body) != stored_crc {
        return Err(header_bad(path, "bad header checksum"));
    }
    let mut r = Reader::new(body);
    r.take(MAGIC.len()).map_err(cut)?;
    // The header's checksum held: another version is a newer build's file, not damage.
    let found = r.u16().map_err(cut)?;
    if found != VERSION {
        return Err(WalError::UnsupportedVersion {
            file: path.to_path_buf(),
            what: "snapshot file",
            found,
            supported: &[VERSION],
        });
    }
    let found_cluster = r.u64().map_err(cut)?;
    if found_cluster != cluster_id {
        return Err(WalError::WrongCluster {
            file: path.to_path_buf(),
            expected: cluster_id,
            found: found_cluster,
        });
    }
    let snapshot_index = LogIndex(r.u64().map_err(cut)?);
    let term = Term(r.u64().map_err(cut)?);
    let member_count = r.count_u32(8).map_err(cut)?;
    let members = (0..member_count)
        .map(|_| r.u64())
        .collect::<Result<Vec<u64>, _>>()
        .map_err(cut)?;
    let (voters, voters_outgoing, learners) = decode_members(&members);
    let meta = SnapshotMeta {
        index: snapshot_index,
        term,
        voters,
        voters_outgoing,
        learners,
    };
    if meta.index != index {
        return Err(corrupt(
            path,
            Corruption::NameMismatch {
                in_name: index,
                in_header: meta.index,
            },
        ));
    }
    let data_len = r.u64().map_err(cut)?;
    let data_crc = r.u32().map_err(cut)?;
    r.finish().map_err(cut)?;
    Ok(SnapshotHeader {
        cluster_id: found_cluster,
        meta,
        data_len,
        data_crc,
    })
}

/// Checks that the data after a `header_len`-byte header fills the rest of the file exactly
/// and matches the header's checksum.
fn check_data<D: Disk>(
    disk: &D,
    path: &Path,
    file_len: u64,
    header_len: u64,
    header: &SnapshotHeader,
) -> Result<(), WalError> {
    let SnapshotHeader {
        data_len, data_crc, ..
    } = *header;
    if header_len.checked_add(data_len) != Some(file_len) {
        return Err(corrupt(
            path,
            Corruption::SnapshotLength {
                expected_bytes: header_len.saturating_add(data_len),
                found_bytes: file_len,
            },
        ));
    }
    let computed = crc_of(disk, path, header_len, data_len)?;
    if computed != data_crc {
        return Err(WalError::Corrupt {
            file: path.to_path_buf(),
            offset: header_len,
            problem: Corruption::SnapshotChecksum {
                stored: data_crc,
                computed,
            },
        });
    }
    Ok(())
}

/// CRC-32C of `len` bytes of `file` from `offset`, read in pieces.
pub(crate) fn crc_of<D: Disk>(
    disk: &D,
    file: &Path,
    offset: u64,
    len: u64,
) -> Result<u32, DiskError> {
    let mut crc = 0;
    let mut done = 0;
    while done < len {
        let piece = COPY_CHUNK_BYTES.min(len - done);
        crc = crc32c::crc32c_append(crc, &disk.read(file, offset + done, piece)?);
        done += piece;
    }
    Ok(crc)
}

/// Appends the `len` staged bytes of `from` to `to`, in pieces, and checks that they are the
/// bytes whose checksum was computed as they were staged.
pub(crate) fn copy_staged<D: Disk>(
    disk: &mut D,
    from: &Path,
    to: &Path,
    len: u64,
    expected_crc: u32,
) -> Result<(), WalError> {
    let mut crc = 0;
    let mut done = 0;
    while done < len {
        let piece = COPY_CHUNK_BYTES.min(len - done);
        let bytes = disk.read(from, done, piece)?;
        crc = crc32c::crc32c_append(crc, &bytes);
        disk.append(to, &bytes)?;
        done += piece;
    }
    if crc != expected_crc {
        return Err(WalError::Corrupt {
            file: from.to_path_buf(),
            offset: 0,
            problem: Corruption::SnapshotChecksum {
                stored: expected_crc,
                computed: crc,
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemDisk;

    #[test]
    fn file_names_parse_by_kind() {
        let index = LogIndex(42);
        assert_eq!(
            parse_file_name(&file_name(index)),
            Some(FileKind::Complete(index))
        );
        assert_eq!(
            parse_file_name(&temp_file_name(index)),
            Some(FileKind::Temp)
        );
        assert_eq!(
            parse_file_name(&staging_file_name(index)),
            Some(FileKind::Staging)
        );
        for other in [
            "snap-42.snap",
            "snap-0000000000000000004x.snap",
            "seg-00000000000000000042.wal",
            "snap-00000000000000000042.snapx",
        ] {
            assert_eq!(parse_file_name(other), None, "{other}");
        }
        assert!(file_name(LogIndex(9)) < file_name(LogIndex(10)));
    }

    #[test]
    fn a_written_header_reads_back() {
        let header = SnapshotHeader {
            cluster_id: 7,
            meta: SnapshotMeta {
                index: LogIndex(12),
                term: Term(3),
                voters: vec![NodeId(1), NodeId(2), NodeId(3)],
                voters_outgoing: vec![NodeId(4)],
                learners: vec![NodeId(5)],
            },
            data_len: 5,
            data_crc: crc32c::crc32c(b"hello"),
        };
        let mut bytes = header.encode();
        assert_eq!(bytes.len() as u64, header.encoded_len());
        bytes.extend_from_slice(b"hello");
        let mut disk = MemDisk::new();
        let path = Path::new("/d").join(file_name(LogIndex(12)));
        disk.create(&path).unwrap();
        disk.append(&path, &bytes).unwrap();
        let file = check_file(&disk, &path, LogIndex(12), 7).unwrap();
        assert_eq!(file.meta, header.meta);
        assert_eq!(file.data_offset, header.encoded_len());
        assert_eq!(file.data_len, 5);

        for at in 0..bytes.len() as u64 {
            let mut damaged = disk.clone();
            damaged.flip_bit(&path, at).unwrap();
            assert!(
                check_file(&damaged, &path, LogIndex(12), 7).is_err(),
                "a flipped bit at {at} goes unnoticed"
            );
        }
    }
}
