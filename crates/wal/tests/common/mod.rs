//! Helpers shared by the WAL's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use skiff_raft::{Entry, EntryKind, HardState, LogIndex, LogStorage, NodeId, Term};
use skiff_wal::{record, Disk, MemDisk, RecoveryReport, Wal, WalError, WalOptions};

pub const CLUSTER: u64 = 0x5eed;

pub fn dir() -> PathBuf {
    PathBuf::from("/node-1/wal")
}

pub fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: EntryKind::Normal,
        data: format!("entry {index} of term {term}").into_bytes().into(),
    }
}

pub fn entries(indexes: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    indexes.map(|index| entry(index, term)).collect()
}

pub fn hard_state(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState {
        term: Term(term),
        vote: vote.map(NodeId),
        commit: LogIndex(commit),
    }
}

pub fn small_segments() -> WalOptions {
    WalOptions {
        max_segment_bytes: 256,
        ..WalOptions::new(CLUSTER)
    }
}

pub fn open(disk: MemDisk, options: WalOptions) -> (Wal<MemDisk>, RecoveryReport) {
    Wal::open(disk, dir(), options).expect("open the log")
}

pub fn try_open(disk: MemDisk, options: WalOptions) -> Result<Wal<MemDisk>, WalError> {
    Wal::open(disk, dir(), options).map(|(wal, _)| wal)
}

/// Crashes the disk (losing everything unsynced) and reopens the log on it.
pub fn crash_and_reopen(wal: Wal<MemDisk>) -> (Wal<MemDisk>, RecoveryReport) {
    let options = *wal.options();
    let mut disk = wal.into_disk();
    disk.crash();
    open(disk, options)
}

/// Every entry the log holds.
pub fn all_entries<S: LogStorage>(log: &S) -> Vec<Entry> {
    log.entries(log.first_index(), log.last_index().next(), u64::MAX)
        .expect("read the whole log")
}

/// The byte offset of every record in `file`, with the record.
pub fn records_of<D: Disk>(disk: &D, file: &Path) -> Vec<(u64, record::Record)> {
    let bytes = disk.read_all(file).expect("read segment");
    let records: Vec<_> = record::segment_records(&bytes).collect();
    let end = records.last().map_or(0, |(at, d)| at + d.frame_bytes);
    let recycled = records.first().is_some_and(
        |(_, d)| matches!(d.record, record::Record::SegmentHeader(header) if header.mask != 0),
    );
    // Zeros written ahead of new batches end the records, or a recycled file's earlier life.
    assert!(
        recycled || bytes[end..].iter().all(|&b| b == 0),
        "every record of {} decodes",
        file.display()
    );
    records
        .into_iter()
        .map(|(at, decoded)| (at as u64, decoded.record))
        .collect()
}

/// The offset of the record of the entry at `index` in `file`.
pub fn offset_of_entry<D: Disk>(disk: &D, file: &Path, index: u64) -> u64 {
    records_of(disk, file)
        .into_iter()
        .find_map(|(offset, record)| match record {
            record::Record::Entry(e) if e.index == LogIndex(index) => Some(offset),
            _ => None,
        })
        .expect("the entry is in the file")
}
