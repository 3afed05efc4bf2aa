//! Why the WAL failed: [`WalError`], and the kinds of damage that stop recovery
//! ([`Corruption`]).

use std::path::PathBuf;

use skiff_raft::{LogIndex, StorageError};

use crate::disk::DiskError;
use crate::record::RecordError;

/// Why a WAL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The disk failed.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// The log on disk is damaged where a crash cannot have damaged it; the WAL refuses to
    /// start rather than lose data that may be committed. The same for a damaged snapshot file.
    #[error("{}: corrupt at offset {offset}: {problem}", .file.display())]
    Corrupt {
        /// The segment or snapshot file.
        file: PathBuf,
        /// The byte offset of the damaged record (0 for a whole-file problem).
        offset: u64,
        /// What is wrong.
        problem: Corruption,
    },
    /// A segment or snapshot file whose checksum holds but whose format version this build
    /// does not read: a newer build wrote it. Not damage, so nothing is truncated or dropped.
    #[error(
        "{}: written in {what} format version {found}, which this build does not read (it \
         reads {supported:?}): start this data directory with the build that wrote it, or a \
         newer one",
        .file.display()
    )]
    UnsupportedVersion {
        /// The segment or snapshot file.
        file: PathBuf,
        /// Which format.
        what: &'static str,
        /// The version the file declares.
        found: u16,
        /// The versions this build reads.
        supported: &'static [u16],
    },
    /// A segment or snapshot belongs to another cluster: the directory was mixed up.
    #[error("{}: belongs to cluster {found}, not to cluster {expected}", .file.display())]
    WrongCluster {
        /// The segment or snapshot file.
        file: PathBuf,
        /// The cluster id this WAL was opened with.
        expected: u64,
        /// The cluster id in the segment header.
        found: u64,
    },
    /// An append would leave a gap or go back into the compacted prefix.
    #[error("append at {first} does not continue a log spanning {first_index}..={last_index}")]
    NotContiguous {
        /// The first index of the rejected append.
        first: LogIndex,
        /// The first index available.
        first_index: LogIndex,
        /// The last index in the log.
        last_index: LogIndex,
    },
    /// The entries of one append do not have consecutive indexes.
    #[error("entries of one append must have consecutive indexes: {previous} then {next}")]
    NotConsecutive {
        /// An entry's index.
        previous: LogIndex,
        /// The index of the entry after it.
        next: LogIndex,
    },
    /// An entry is too large to be written as one record.
    #[error("entry {index} cannot be written: {source}")]
    EntryTooLarge {
        /// The entry's index.
        index: LogIndex,
        /// The encoder's refusal.
        source: RecordError,
    },
    /// A snapshot file written by the caller was handed back to be installed before its
    /// header was sealed over its data (`SnapshotWrite::seal`): a driver's mistake, refused
    /// rather than install a header that does not describe the file.
    #[error("the snapshot file at {0} was never sealed over its data")]
    SnapshotNotSealed(LogIndex),
    /// An earlier write or sync failed, so what is on disk is unknown; the WAL accepts no
    /// more writes. Reopening it recovers from what is durable.
    #[error("an earlier write failed ({0}); reopen the log to recover")]
    Failed(String),
}

/// What recovery found wrong in a segment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// A record does not decode (bad length, checksum, type or payload) and is not the torn
    /// tail of the last segment.
    #[error("{0}")]
    Record(RecordError),
    /// Bytes after the last complete write batch of the last segment that a crash cannot
    /// have left: not a prefix of one record followed by zeros (for instance garbage at the
    /// start of the file).
    #[error("{record}, and this is not a torn final write: {reason}")]
    NotATornWrite {
        /// Why the record there does not decode.
        record: RecordError,
        /// Why the bytes cannot be a crash's partial write.
        reason: &'static str,
    },
    /// The file does not start with a segment header.
    #[error("the file does not start with a segment header")]
    NoSegmentHeader,
    /// A segment header appears after the start of a file.
    #[error("a segment header in the middle of a segment")]
    HeaderInTheMiddle,
    /// The header's first index is not the one in the file name.
    #[error("the header says first index {in_header}, the file name {in_name}")]
    NameMismatch {
        /// The first index in the file name.
        in_name: LogIndex,
        /// The first index in the header.
        in_header: LogIndex,
    },
    /// The segment does not continue the one before it: a segment in between is missing.
    #[error("expected a segment starting at {expected}, found one starting at {found}: a segment is missing")]
    MissingSegment {
        /// The first index the next segment must have.
        expected: LogIndex,
        /// The first index this one has.
        found: LogIndex,
    },
    /// The header's copy of the log start or hard state disagrees with the segments before it.
    #[error("the header's {what} disagrees with the segments before it")]
    HeaderDisagrees {
        /// Which field.
        what: &'static str,
    },
    /// An entry record does not continue the log: a gap, or an index at or before the start.
    #[error("entry {index} does not continue a log spanning {first_index}..={last_index}")]
    EntryOutOfPlace {
        /// The entry's index.
        index: LogIndex,
        /// The first index of the log at that point.
        first_index: LogIndex,
        /// The last index of the log at that point.
        last_index: LogIndex,
    },
    /// A log start record that goes backwards or keeps entries the log does not have.
    #[error("log start at {index} is impossible here")]
    ImpossibleLogStart {
        /// The start index recorded.
        index: LogIndex,
    },
    /// A segment other than the last ends in the middle of a write batch.
    #[error("the segment ends in the middle of a write batch")]
    UnfinishedBatch,
    /// A recycled segment that is not the last ends before the size at which the log moved on
    /// from it: what follows is not an earlier life's bytes but damage to this life's records.
    #[error("a recycled segment the log moved on from ends at byte {end}, before its size of {size} bytes")]
    EndsBeforeItsSize {
        /// Where its records end.
        end: u64,
        /// The size its header gives.
        size: u64,
    },
    /// In a sealed recycled segment, records stop verifying before the seal of a write that
    /// completed: they are damaged, not a torn final write.
    #[error("records stop verifying before the seal at byte {seal_at} of a write that completed: damage, not a torn write")]
    SealAfterDamage {
        /// Where the seal is.
        seal_at: u64,
    },
    /// A sealed recycled segment the log moved on from does not end with its last write's
    /// seal: its end is damaged.
    #[error("a sealed segment the log moved on from does not end with its last write's seal")]
    MissingSeal,
    /// A snapshot file's header is damaged or is not a snapshot header.
    #[error("the snapshot header is invalid: {reason}")]
    BadSnapshotHeader {
        /// What is wrong.
        reason: &'static str,
    },
    /// A snapshot file is not as long as its header says.
    #[error("the snapshot file should be {expected_bytes} bytes long, but is {found_bytes}")]
    SnapshotLength {
        /// Header plus data length, from the header.
        expected_bytes: u64,
        /// The file's length.
        found_bytes: u64,
    },
    /// A snapshot's data does not match the checksum in its header.
    #[error("snapshot data checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    SnapshotChecksum {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the data read.
        computed: u32,
    },
    /// A snapshot file but no segment: the node has run, and its log (with its term and
    /// vote) is gone.
    #[error(
        "a snapshot is here but no log segment: the segments holding the term and vote are missing"
    )]
    SegmentsMissing,
    /// The incarnation file is damaged: it is not whole, its checksum fails, or its version
    /// is unknown. The directory's identity cannot be trusted, so the log does not open.
    #[error("damaged incarnation file: {reason}")]
    BadIncarnation {
        /// What is wrong.
        reason: String,
    },
    /// Entries that no remaining segment holds and no compaction covers.
    #[error("entries {from}..={to} are in no segment: a segment is missing")]
    LostEntries {
        /// The first missing index.
        from: LogIndex,
        /// The last missing index.
        to: LogIndex,
    },
}

impl From<WalError> for StorageError {
    fn from(error: WalError) -> StorageError {
        match error {
            WalError::NotContiguous {
                first,
                first_index,
                last_index,
            } => StorageError::NotContiguous {
                first,
                first_index,
                last_index,
            },
            other => StorageError::Backend(other.to_string()),
        }
    }
}
