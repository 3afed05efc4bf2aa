//! The backup file: one node snapshot with what a new cluster needs to start from it.
//!
//! ```text
//! backup file = header | data | file crc
//! header (integers little-endian):
//!   magic "SKIFFBAK" | version: u16 | cluster id: u64 | index: u64 | term: u64
//!   | voters: count u32, u64 × count | outgoing voters: count u32, u64 × count
//!   | learners: count u32, u64 × count | data length: u64 | header crc: u32
//! data: the node snapshot (`SKNS…`: the member book, then the store), as the node writes it
//! file crc: CRC-32C of every byte before it (header and data)
//! ```
//!
//! The header has a checksum of its own so that a damaged length is refused before anything
//! trusts it; the file checksum covers the whole file, so a backup that was cut short, padded
//! or flipped anywhere is refused. The cluster id is the one the backup was taken from, kept
//! for the operator: a restore makes a new cluster with an id of its own.
//!
//! Written with [`skiff_codec`], as the node's other forms are.

use std::io::Read;

use skiff_codec::{put, CodecError, Reader};
use skiff_raft::{LogIndex, NodeId, SnapshotMeta, Term};

/// The first bytes of every backup file.
pub const MAGIC: [u8; 8] = *b"SKIFFBAK";

/// The backup format version written and the only one read.
pub const VERSION: u16 = 1;

/// The versions read.
const VERSIONS: &[u16] = &[VERSION];

/// The most members one list of a header may hold; a larger count is refused.
pub const MAX_MEMBERS: u32 = 1 << 10;

/// The longest header there can be: every list full.
pub const MAX_HEADER_BYTES: u64 = 8 + 2 + 8 + 8 + 8 + 3 * (4 + 8 * MAX_MEMBERS as u64) + 8 + 4;

/// The bytes after the data: the file crc.
pub const TRAILER_BYTES: u64 = 4;

/// The piece size in which [`verify`] reads a file.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// What a backup is a picture of, and how long its data is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupHeader {
    /// The cluster the backup was taken from.
    pub cluster_id: u64,
    /// The snapshot's index, term and configuration.
    pub meta: SnapshotMeta,
    /// The length of the node snapshot after the header.
    pub data_len: u64,
}

/// Why a backup file is refused.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file does not begin with [`MAGIC`].
    #[error("not a Skiff backup (no SKIFFBAK magic at the start)")]
    BadMagic,
    /// A field of the header does not decode (a newer version among them).
    #[error("backup header: {0}")]
    Header(#[from] CodecError),
    /// A member list longer than [`MAX_MEMBERS`].
    #[error("backup header lists {count} members in one list; at most {MAX_MEMBERS} are read")]
    TooManyMembers {
        /// The count found.
        count: u32,
    },
    /// The header's own checksum does not match.
    #[error("backup header checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the header is damaged")]
    HeaderChecksum {
        /// What the header holds.
        stored: u32,
        /// What its bytes give.
        computed: u32,
    },
    /// The header's lengths add up to more than a file can hold.
    #[error("backup header claims {data_len} bytes of data: the file length would overflow")]
    LengthOverflow {
        /// The data length the header claims.
        data_len: u64,
    },
    /// The file is shorter or longer than its header says.
    #[error("backup is {actual} bytes but its header says {expected}: the file was cut short or has extra bytes")]
    WrongLength {
        /// What the header implies.
        expected: u64,
        /// The file's length.
        actual: u64,
    },
    /// The checksum over the whole file does not match.
    #[error("backup checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is damaged")]
    Checksum {
        /// What the file ends with.
        stored: u32,
        /// What its bytes give.
        computed: u32,
    },
    /// Reading the file failed.
    #[error("reading the backup: {0}")]
    Io(#[from] std::io::Error),
}

/// CRC-32C over bytes that arrive in pieces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum(u32);

impl Checksum {
    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0 = crc32c::crc32c_append(self.0, bytes);
    }

    /// The checksum of everything added.
    pub fn value(&self) -> u32 {
        self.0
    }
}

impl BackupHeader {
    /// The encoded header, its checksum included.
    ///
    /// # Panics
    /// If a member list is longer than [`MAX_MEMBERS`]: configurations are far smaller.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&MAGIC);
        put::u16(&mut out, VERSION);
        put::u64(&mut out, self.cluster_id);
        put::u64(&mut out, self.meta.index.0);
        put::u64(&mut out, self.meta.term.0);
        for list in [
            &self.meta.voters,
            &self.meta.voters_outgoing,
            &self.meta.learners,
        ] {
            assert!(list.len() <= MAX_MEMBERS as usize, "{} members", list.len());
            put::count_u32(&mut out, list.len());
            for id in list {
                put::u64(&mut out, id.0);
            }
        }
        put::u64(&mut out, self.data_len);
        let crc = crc32c::crc32c(&out);
        put::u32(&mut out, crc);
        out
    }

    /// Decodes the header at the start of `bytes` (which may go on with the data); returns it
    /// and its length. Bytes that end inside the header are [`CodecError::Truncated`].
    pub fn decode(bytes: &[u8]) -> Result<(BackupHeader, usize), BackupError> {
        if bytes.len() >= MAGIC.len() && bytes[..MAGIC.len()] != MAGIC {
            return Err(BackupError::BadMagic);
        }
        let mut r = Reader::new(bytes);
        if r.array::<8>()? != MAGIC {
            return Err(BackupError::BadMagic);
        }
        r.version_u16("backup", VERSIONS)?;
        let cluster_id = r.u64()?;
        let index = LogIndex(r.u64()?);
        let term = Term(r.u64()?);
        let mut lists = [Vec::new(), Vec::new(), Vec::new()];
        for list in &mut lists {
            let count = r.u32()?;
            if count > MAX_MEMBERS {
                return Err(BackupError::TooManyMembers { count });
            }
            for _ in 0..count {
                list.push(NodeId(r.u64()?));
            }
        }
        let data_len = r.u64()?;
        let covered = r.offset();
        let stored = r.u32()?;
        let computed = crc32c::crc32c(&bytes[..covered]);
        if stored != computed {
            return Err(BackupError::HeaderChecksum { stored, computed });
        }
        let [voters, voters_outgoing, learners] = lists;
        let header = BackupHeader {
            cluster_id,
            meta: SnapshotMeta {
                index,
                term,
                voters,
                voters_outgoing,
                learners,
            },
            data_len,
        };
        header.file_len(r.offset() as u64)?;
        Ok((header, r.offset()))
    }

    /// The whole file's length for a header of `header_len` bytes, refused if it overflows.
    pub fn file_len(&self, header_len: u64) -> Result<u64, BackupError> {
        header_len
            .checked_add(self.data_len)
            .and_then(|len| len.checked_add(TRAILER_BYTES))
            .ok_or(BackupError::LengthOverflow {
                data_len: self.data_len,
            })
    }
}

/// The whole backup file of `header.meta` with `data` (the node snapshot).
pub fn encode(cluster_id: u64, meta: SnapshotMeta, data: &[u8]) -> Vec<u8> {
    let header = BackupHeader {
        cluster_id,
        meta,
        data_len: data.len() as u64,
    };
    let mut out = header.encode();
    out.extend_from_slice(data);
    let crc = crc32c::crc32c(&out);
    put::u32(&mut out, crc);
    out
}

/// Checks a whole backup file held in memory; returns its header and data.
pub fn decode(file: &[u8]) -> Result<(BackupHeader, &[u8]), BackupError> {
    let (header, header_len) = BackupHeader::decode(file)?;
    let expected = header.file_len(header_len as u64)?;
    if expected != file.len() as u64 {
        return Err(BackupError::WrongLength {
            expected,
            actual: file.len() as u64,
        });
    }
    let (covered, trailer) = file.split_at(file.len() - TRAILER_BYTES as usize);
    check_file_crc(crc32c::crc32c(covered), trailer)?;
    Ok((header, &covered[header_len..]))
}

/// Checks a backup file of `file_len` bytes read from `file`, in pieces, without holding it
/// in memory; returns its header.
pub fn verify(mut file: impl Read, file_len: u64) -> Result<BackupHeader, BackupError> {
    let head_len = file_len.min(MAX_HEADER_BYTES) as usize;
    let mut head = vec![0; head_len];
    file.read_exact(&mut head)?;
    let (header, header_len) = BackupHeader::decode(&head)?;
    let expected = header.file_len(header_len as u64)?;
    if expected != file_len {
        return Err(BackupError::WrongLength {
            expected,
            actual: file_len,
        });
    }
    // The header's lengths add up to the file's: the trailer follows at least the header.
    let covered_len = file_len - TRAILER_BYTES;
    if head_len as u64 > covered_len {
        // The head read part of the trailer (a file with little or no data); the rest of the
        // trailer, if any, is still in the file.
        let covered = covered_len as usize;
        let mut crc = Checksum::default();
        crc.update(&head[..covered]);
        let mut trailer = head[covered..].to_vec();
        let missing = TRAILER_BYTES as usize - trailer.len();
        trailer.resize(TRAILER_BYTES as usize, 0);
        file.read_exact(&mut trailer[TRAILER_BYTES as usize - missing..])?;
        return check_file_crc(crc.value(), &trailer).map(|()| header);
    }
    let mut crc = Checksum::default();
    crc.update(&head);
    // Everything after the head but the trailer, in pieces.
    let mut left = covered_len - head_len as u64;
    let mut piece = vec![0; READ_CHUNK_BYTES];
    let mut trailer = [0; TRAILER_BYTES as usize];
    while left > 0 {
        let take = left.min(READ_CHUNK_BYTES as u64) as usize;
        file.read_exact(&mut piece[..take])?;
        crc.update(&piece[..take]);
        left -= take as u64;
    }
    file.read_exact(&mut trailer)?;
    check_file_crc(crc.value(), &trailer).map(|()| header)
}

fn check_file_crc(computed: u32, trailer: &[u8]) -> Result<(), BackupError> {
    let mut r = Reader::new(trailer);
    let stored = r.u32()?;
    if stored != computed {
        return Err(BackupError::Checksum { stored, computed });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            index: LogIndex(7),
            term: Term(2),
            voters: vec![NodeId(1), NodeId(2), NodeId(3)],
            voters_outgoing: Vec::new(),
            learners: vec![NodeId(4)],
        }
    }

    fn to_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn verify_bytes(file: &[u8]) -> Result<BackupHeader, BackupError> {
        verify(file, file.len() as u64)
    }

    #[test]
    fn the_format_is_pinned_by_its_bytes() {
        let file = encode(0x0102, meta(), b"SKNS");
        // A change here is a new format version: old backups must still read.
        assert_eq!(
            to_hex(&file),
            concat!(
                "534b49464642414b", // SKIFFBAK
                "0100",             // version 1
                "0201000000000000", // cluster id
                "0700000000000000", // index 7
                "0200000000000000", // term 2
                "03000000",
                "0100000000000000",
                "0200000000000000",
                "0300000000000000",
                "00000000", // no outgoing voters
                "01000000",
                "0400000000000000", // learner 4
                "0400000000000000", // data length 4
                "bfab05da",         // header crc
                "534b4e53",         // data
                "afd66bf0",         // file crc
            )
        );
        let (header, data) = decode(&file).unwrap();
        assert_eq!(header.meta, meta());
        assert_eq!(header.cluster_id, 0x0102);
        assert_eq!(data, b"SKNS");
        assert_eq!(verify_bytes(&file).unwrap(), header);
    }

    #[test]
    fn a_large_file_is_verified_in_pieces_like_the_whole() {
        let data: Vec<u8> = (0..3 * READ_CHUNK_BYTES + 17).map(|i| i as u8).collect();
        let file = encode(9, meta(), &data);
        let (header, read) = decode(&file).unwrap();
        assert_eq!(read, &data[..]);
        assert_eq!(verify_bytes(&file).unwrap(), header);
        let empty = encode(9, meta(), b"");
        assert_eq!(decode(&empty).unwrap().1, b"");
        assert!(verify_bytes(&empty).is_ok());
    }

    #[test]
    fn a_file_whose_trailer_straddles_the_longest_header_is_verified() {
        // The head read is at most MAX_HEADER_BYTES: files of MAX_HEADER_BYTES + 1 to + 3 bytes
        // hold the first bytes of their trailer in it, and the rest after it.
        let header_len = encode(9, meta(), b"").len() as u64 - TRAILER_BYTES;
        for file_len in MAX_HEADER_BYTES - 8..=MAX_HEADER_BYTES + 8 {
            let data_len = file_len - header_len - TRAILER_BYTES;
            let data: Vec<u8> = (0..data_len).map(|i| (i * 7) as u8).collect();
            let file = encode(9, meta(), &data);
            assert_eq!(file.len() as u64, file_len);
            let header = verify_bytes(&file)
                .unwrap_or_else(|error| panic!("a good file of {file_len} bytes: {error}"));
            assert_eq!(header.data_len, data_len);
            let mut flipped = file.clone();
            *flipped.last_mut().unwrap() ^= 1;
            assert!(
                matches!(verify_bytes(&flipped), Err(BackupError::Checksum { .. })),
                "{file_len}"
            );
        }
    }

    #[test]
    fn every_cut_short_file_is_refused() {
        let file = encode(9, meta(), b"some node snapshot bytes");
        for len in 0..file.len() {
            assert!(decode(&file[..len]).is_err(), "cut to {len}");
            assert!(verify_bytes(&file[..len]).is_err(), "cut to {len}");
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(matches!(
            decode(&longer),
            Err(BackupError::WrongLength { .. })
        ));
        assert!(matches!(
            verify_bytes(&longer),
            Err(BackupError::WrongLength { .. })
        ));
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let file = encode(9, meta(), b"node snapshot");
        for at in 0..file.len() {
            for bit in 0..8 {
                let mut bad = file.clone();
                bad[at] ^= 1 << bit;
                assert!(decode(&bad).is_err(), "byte {at} bit {bit}");
                assert!(verify_bytes(&bad).is_err(), "byte {at} bit {bit}");
            }
        }
    }

    #[test]
    fn another_file_or_a_newer_version_is_named_as_such() {
        let file = encode(9, meta(), b"x");
        let mut snapshot = file.clone();
        snapshot[..8].copy_from_slice(b"SKIFFSNP");
        assert!(matches!(decode(&snapshot), Err(BackupError::BadMagic)));
        assert!(matches!(
            verify_bytes(b"hello"),
            Err(BackupError::Header(_))
        ));
        assert!(matches!(decode(b"hello"), Err(BackupError::Header(_))));
        assert!(matches!(
            decode(b"hello, world"),
            Err(BackupError::BadMagic)
        ));
        let mut newer = file.clone();
        newer[8] = 2;
        let error = decode(&newer).unwrap_err();
        assert!(
            matches!(
                error,
                BackupError::Header(CodecError::UnsupportedVersion { found: 2, .. })
            ),
            "{error}"
        );
        assert!(error.to_string().contains("unsupported format version 2"));
    }

    /// A header made whole again (its crc recomputed) around hostile fields.
    fn resealed(mut header: Vec<u8>) -> Vec<u8> {
        let covered = header.len() - 4;
        let crc = crc32c::crc32c(&header[..covered]);
        header[covered..].copy_from_slice(&crc.to_le_bytes());
        header
    }

    #[test]
    fn lengths_and_counts_that_cannot_be_are_refused_before_use() {
        let header = BackupHeader {
            cluster_id: 9,
            meta: meta(),
            data_len: u64::MAX - 3,
        };
        let bytes = header.encode();
        assert!(matches!(
            BackupHeader::decode(&bytes),
            Err(BackupError::LengthOverflow { .. })
        ));
        // A sealed header claiming a terabyte, on a short file.
        let huge = BackupHeader {
            data_len: 1 << 40,
            ..header
        };
        let mut file = huge.encode();
        file.extend_from_slice(&[0; 8]);
        assert!(matches!(
            decode(&file),
            Err(BackupError::WrongLength { .. })
        ));
        assert!(matches!(
            verify_bytes(&file),
            Err(BackupError::WrongLength { .. })
        ));
        // A voter count past the bound, with the header's crc made right.
        let mut counted = BackupHeader {
            cluster_id: 9,
            meta: SnapshotMeta::default(),
            data_len: 0,
        }
        .encode();
        counted[34..38].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            BackupHeader::decode(&resealed(counted)),
            Err(BackupError::TooManyMembers { count: u32::MAX })
        ));
    }
}
