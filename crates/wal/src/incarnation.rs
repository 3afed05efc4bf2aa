//! The incarnation file: a random nonzero id given to a data directory when its log is
//! created, so that the cluster can tell a node that kept its log from one whose disk was
//! wiped or replaced (a node that forgot its votes must not vote again: thesis §3.8).
//!
//! The file `incarnation` holds `SKIN | version: u8 | incarnation: u64 | crc32c: u32` (the
//! checksum covers the 13 bytes before it), little-endian. It is written to
//! `incarnation.tmp`, synced, renamed into place and the directory synced, so that it is
//! whole or absent. A new log always gets a new incarnation, even if an old file is still
//! there: a directory whose segments are gone has forgotten its votes, whatever else it kept.

use std::path::Path;

use skiff_codec::{put, Reader};

use crate::disk::{Disk, DiskError};
use crate::error::{Corruption, WalError};

/// The name of the incarnation file in the log's directory.
pub const INCARNATION_FILE: &str = "incarnation";

/// The temporary name it is written under before the rename.
const INCARNATION_TEMP_FILE: &str = "incarnation.tmp";

/// The magic bytes that open the file.
const MAGIC: &[u8; 4] = b"SKIN";

/// The file's format version.
pub const INCARNATION_VERSION: u8 = 1;

/// The file's length: magic, version, incarnation, checksum.
const FILE_BYTES: usize = 4 + 1 + 8 + 4;

/// The file's bytes for `incarnation`.
pub fn encode(incarnation: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(FILE_BYTES);
    out.extend_from_slice(MAGIC);
    put::u8(&mut out, INCARNATION_VERSION);
    put::u64(&mut out, incarnation);
    let crc = crc32c::crc32c(&out);
    put::u32(&mut out, crc);
    out
}

/// Decodes the file's bytes, refusing anything but a whole, checksummed, nonzero id of a
/// known version.
pub fn decode(bytes: &[u8]) -> Result<u64, Corruption> {
    let bad = |reason: String| Corruption::BadIncarnation { reason };
    if bytes.len() != FILE_BYTES {
        return Err(bad(format!("{} bytes, expected {FILE_BYTES}", bytes.len())));
    }
    let (body, stored) = bytes.split_at(FILE_BYTES - 4);
    let mut r = Reader::new(stored);
    let stored = r.u32().map_err(|e| bad(e.to_string()))?;
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(bad(format!(
            "checksum {stored:#010x}, computed {computed:#010x}"
        )));
    }
    let Some(rest) = body.strip_prefix(MAGIC) else {
        return Err(bad("bad magic".into()));
    };
    let mut r = Reader::new(rest);
    r.version("incarnation file", &[INCARNATION_VERSION as u16])
        .map_err(|e| bad(e.to_string()))?;
    let incarnation = r.u64().map_err(|e| bad(e.to_string()))?;
    if incarnation == 0 {
        return Err(bad("incarnation 0".into()));
    }
    Ok(incarnation)
}

/// The directory's incarnation, and whether it was written now: for a new log (`is_new`),
/// `new_incarnation` (0 taken as 1) is written, even over an old file; an existing log keeps
/// its file's, or gets `new_incarnation` if it was written before incarnations existed.
/// Called before a new log's first segment is written.
pub(crate) fn settle<D: Disk>(
    disk: &mut D,
    dir: &Path,
    is_new: bool,
    new_incarnation: u64,
) -> Result<(u64, bool), WalError> {
    let existing = read(disk, dir);
    match existing {
        // §3.8: a new log has no vote to remember, so it is not the node the cluster knows.
        _ if is_new => {}
        Ok(Some(incarnation)) => return Ok((incarnation, false)),
        Ok(None) => {}
        Err(error) => return Err(error),
    }
    let incarnation = new_incarnation.max(1);
    write(disk, dir, incarnation)?;
    Ok((incarnation, true))
}

/// Reads the directory's incarnation: `None` if there is no file.
pub(crate) fn read<D: Disk>(disk: &D, dir: &Path) -> Result<Option<u64>, WalError> {
    let file = dir.join(INCARNATION_FILE);
    // Sized before it is read: a damaged directory may hold anything under this name.
    match disk.len(&file) {
        Ok(len) if len != FILE_BYTES as u64 => {
            return Err(WalError::Corrupt {
                file,
                offset: 0,
                problem: Corruption::BadIncarnation {
                    reason: format!("{len} bytes, expected {FILE_BYTES}"),
                },
            });
        }
        Ok(_) => {}
        Err(DiskError::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error.into()),
    }
    match disk.read_all(&file) {
        Ok(bytes) => decode(&bytes)
            .map(Some)
            .map_err(|problem| WalError::Corrupt {
                file,
                offset: 0,
                problem,
            }),
        Err(DiskError::NotFound { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Writes `incarnation` durably as the directory's incarnation, replacing any there.
pub(crate) fn write<D: Disk>(disk: &mut D, dir: &Path, incarnation: u64) -> Result<(), WalError> {
    let temp = dir.join(INCARNATION_TEMP_FILE);
    match disk.remove(&temp) {
        Ok(()) | Err(DiskError::NotFound { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    disk.create(&temp)?;
    disk.append(&temp, &encode(incarnation))?;
    disk.sync(&temp)?;
    disk.rename(&temp, &dir.join(INCARNATION_FILE))?;
    disk.sync_dir(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_refuses_damage() {
        let bytes = encode(0x0123_4567_89ab_cdef);
        assert_eq!(bytes.len(), FILE_BYTES);
        assert_eq!(&bytes[..5], b"SKIN\x01");
        assert_eq!(decode(&bytes), Ok(0x0123_4567_89ab_cdef));
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert!(decode(&flipped).is_err(), "a flip at byte {at} is refused");
        }
        assert!(decode(&bytes[..FILE_BYTES - 1]).is_err());
        assert!(decode(&[]).is_err());
        assert!(decode(&encode(0)).is_err(), "incarnations are nonzero");
        let mut v2 = encode(7);
        v2[4] = 2;
        let crc = crc32c::crc32c(&v2[..13]);
        v2[13..].copy_from_slice(&crc.to_le_bytes());
        let refused = decode(&v2).unwrap_err().to_string();
        assert!(refused.contains("version"), "{refused}");
    }
}
