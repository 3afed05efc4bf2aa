//! Segment files: their names and what the log knows of each.

use std::path::PathBuf;

use skiff_raft::LogIndex;

/// The file name of the segment created when the next entry had index `first_index`.
pub fn file_name(first_index: LogIndex) -> String {
    format!("seg-{:020}.wal", first_index.0)
}

/// The first index in a segment file name, or `None` for any other file.
pub fn parse_file_name(name: &str) -> Option<LogIndex> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogIndex)
}

/// The name a compacted segment file is kept under as a spare, to be written over as a later
/// segment (see [`crate::wal`]): named after the segment it was, so names never collide.
pub fn spare_file_name(first_index: LogIndex) -> String {
    format!("spare-{:020}.wal", first_index.0)
}

/// Whether `name` is a spare segment file's.
pub fn is_spare_file_name(name: &str) -> bool {
    name.strip_prefix("spare-")
        .and_then(|rest| rest.strip_suffix(".wal"))
        .is_some_and(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// One segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The file.
    pub path: PathBuf,
    /// The bytes written to it (all durable, outside a failed write).
    pub len_bytes: u64,
    /// The file's length: `len_bytes`, then zeros written ahead of the next batches (or, in
    /// a recycled file, an earlier life's bytes).
    pub allocated_bytes: u64,
    /// The mask of the file's records (its header's): 0 unless the file was recycled.
    pub mask: u64,
    /// The size its header gives (0 unless the file was recycled): the log moves on from it
    /// only once it holds this much, whatever the options say now, since recovery refuses a
    /// recycled segment that is not the last and ends before it.
    pub max_segment_bytes: u64,
    /// Whether each batch is followed by its seal (a recycled segment of format version 3;
    /// one of version 2, from a build before seals, is continued without them).
    pub sealed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_sort_by_index() {
        assert_eq!(file_name(LogIndex(42)), "seg-00000000000000000042.wal");
        assert_eq!(
            parse_file_name(&file_name(LogIndex(u64::MAX))),
            Some(LogIndex(u64::MAX))
        );
        assert!(file_name(LogIndex(9)) < file_name(LogIndex(10)));
        for other in [
            "seg-42.wal",
            "seg-0000000000000000004x.wal",
            "seg-00000000000000000042.wal.tmp",
            "x",
        ] {
            assert_eq!(parse_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn spare_names_are_not_segment_names() {
        let spare = spare_file_name(LogIndex(42));
        assert_eq!(spare, "spare-00000000000000000042.wal");
        assert!(is_spare_file_name(&spare));
        assert_eq!(parse_file_name(&spare), None);
        for other in [
            &file_name(LogIndex(42)),
            "spare-42.wal",
            "spare-00000000000000000042.wal.tmp",
        ] {
            assert!(!is_spare_file_name(other), "{other}");
        }
    }
}
