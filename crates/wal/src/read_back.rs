//! Reading entries back from the segments: one disk read per segment touched, into one buffer
//! that every read reuses, each record's checksum checked again (the bytes came from the disk
//! again, not from what recovery checked).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use skiff_raft::{Entry, LogIndex, StorageError};

use crate::disk::Disk;
use crate::entry_index::Slot;
use crate::record::{self, Record};
use crate::segment::Segment;

/// A buffer larger than this after a read (one huge entry) is dropped rather than kept.
const KEEP_BUFFER_BYTES: usize = 16 * 1024 * 1024;

/// Reads entries back, reusing one buffer: a fresh one per read would be zeroed by the kernel
/// page by page before the read filled it (a restart reads the whole log back this way).
#[derive(Debug, Default)]
pub(crate) struct EntryReader {
    buffer: RefCell<Vec<u8>>,
}

impl EntryReader {
    /// The entries in `[low, low + count)`, whose places `slot` gives (or refuses), from
    /// `segments` on `disk`.
    pub(crate) fn read<D: Disk>(
        &self,
        disk: &D,
        segments: &BTreeMap<LogIndex, Segment>,
        low: LogIndex,
        count: u64,
        slot: impl Fn(LogIndex) -> Result<Slot, StorageError>,
    ) -> Result<Vec<Entry>, StorageError> {
        let plan = plan_read(segments, low, count, slot)?;
        let mut buffer = self.buffer.borrow_mut();
        let entries = plan.read(disk, &mut buffer);
        if buffer.capacity() > KEEP_BUFFER_BYTES {
            *buffer = Vec::new();
        }
        entries
    }
}

/// Where the entries `[low, low + count)` are: one run of records per segment touched.
pub(crate) fn plan_read(
    segments: &BTreeMap<LogIndex, Segment>,
    low: LogIndex,
    count: u64,
    slot: impl Fn(LogIndex) -> Result<Slot, StorageError>,
) -> Result<PlannedRead, StorageError> {
    let end = low.plus(count);
    let mut runs = Vec::new();
    let mut next = low;
    while next < end {
        let first = slot(next)?;
        let mut slots = vec![first];
        let mut run_end = next.next();
        while run_end < end {
            let at = slot(run_end)?;
            if at.segment != first.segment {
                break;
            }
            slots.push(at);
            run_end = run_end.next();
        }
        let segment = segments.get(&first.segment).ok_or_else(|| {
            StorageError::Backend(format!("segment {} is not open", first.segment))
        })?;
        runs.push(Run {
            path: segment.path.clone(),
            mask: segment.mask,
            first_index: next,
            slots,
        });
        next = run_end;
    }
    Ok(PlannedRead { runs })
}

/// A read of entries planned from the log's index, to be carried out later, on this thread
/// or another (see [`ReadAhead`](crate::ReadAhead)): the same checks either way.
#[derive(Clone, Debug)]
pub struct PlannedRead {
    runs: Vec<Run>,
}

/// Consecutive entries in one segment file.
#[derive(Clone, Debug)]
struct Run {
    path: PathBuf,
    /// The segment's mask (see [`crate::record`]).
    mask: u64,
    first_index: LogIndex,
    /// Where each entry's record is, in index order (all in `path`).
    slots: Vec<Slot>,
}

impl PlannedRead {
    /// Reads the entries from `disk` through `buffer` (one read per segment), checking each
    /// record's checksum and that it holds the entry (index and term) the index expects.
    pub fn read<D: Disk>(
        &self,
        disk: &D,
        buffer: &mut Vec<u8>,
    ) -> Result<Vec<Entry>, StorageError> {
        let mut entries = Vec::with_capacity(self.runs.iter().map(|run| run.slots.len()).sum());
        for run in &self.runs {
            let (Some(first), Some(last)) = (run.slots.first(), run.slots.last()) else {
                continue;
            };
            let span = last.offset + last.frame_bytes - first.offset;
            disk.read_into(&run.path, first.offset, span, buffer)
                .map_err(|e| StorageError::Backend(e.to_string()))?;
            let mut index = run.first_index;
            for at in &run.slots {
                entries.push(decode_entry_at(run, buffer, first, at, index)?);
                index = index.next();
            }
        }
        Ok(entries)
    }
}

/// Decodes the entry record of `slot` from `bytes`, which were read starting at `first`'s
/// offset, and checks that it is the entry the index expects.
fn decode_entry_at(
    run: &Run,
    bytes: &[u8],
    first: &Slot,
    slot: &Slot,
    index: LogIndex,
) -> Result<Entry, StorageError> {
    let corrupt = |what: String| {
        StorageError::Backend(format!(
            "{}: corrupt at offset {}: {what}",
            run.path.display(),
            slot.offset
        ))
    };
    let at = usize::try_from(slot.offset - first.offset)
        .map_err(|_| corrupt("offset out of range".to_owned()))?;
    let decoded = record::decode(bytes.get(at..).unwrap_or_default(), run.mask)
        .map_err(|error| corrupt(error.to_string()))?;
    match decoded.record {
        Record::Entry(entry) if entry.index == index && entry.term == slot.term => Ok(entry),
        other => Err(corrupt(format!(
            "expected entry {index} with term {}, found {other:?}",
            slot.term
        ))),
    }
}
