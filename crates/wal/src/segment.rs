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

/// One segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The file.
    pub path: PathBuf,
    /// The bytes written to it (all durable, outside a failed write).
    pub len_bytes: u64,
    /// The file's length: `len_bytes`, then zeros written ahead of the next batches.
    pub allocated_bytes: u64,
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
}
