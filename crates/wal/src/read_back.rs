//! Reading entries back from the segments: one disk read per segment touched, into one buffer
//! that every read reuses, each record's checksum checked again (the bytes came from the disk
//! again, not from what recovery checked).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use skiff_raft::{Entry, LogIndex, StorageError};

use crate::disk::Disk;
use crate::record::{self, Record};
use crate::segment::{Segment, Slot};

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
        let end = low.plus(count);
        let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        let mut buffer = self.buffer.borrow_mut();
        let mut next = low;
        while next < end {
            let first = slot(next)?;
            let mut run_end = next.next();
            while run_end < end && slot(run_end)?.segment == first.segment {
                run_end = run_end.next();
            }
            let last = slot(run_end.prev())?;
            let segment = segments.get(&first.segment).ok_or_else(|| {
                StorageError::Backend(format!("segment {} is not open", first.segment))
            })?;
            let span = last.offset + last.frame_bytes - first.offset;
            disk.read_into(&segment.path, first.offset, span, &mut buffer)
                .map_err(|e| StorageError::Backend(e.to_string()))?;
            while next < run_end {
                let at = slot(next)?;
                entries.push(decode_entry_at(&segment.path, &buffer, &first, &at, next)?);
                next = next.next();
            }
        }
        if buffer.capacity() > KEEP_BUFFER_BYTES {
            *buffer = Vec::new();
        }
        Ok(entries)
    }
}

/// Decodes the entry record of `slot` from `bytes`, which were read starting at `first`'s
/// offset, and checks that it is the entry the index expects.
fn decode_entry_at(
    path: &Path,
    bytes: &[u8],
    first: &Slot,
    slot: &Slot,
    index: LogIndex,
) -> Result<Entry, StorageError> {
    let corrupt = |what: String| {
        StorageError::Backend(format!(
            "{}: corrupt at offset {}: {what}",
            path.display(),
            slot.offset
        ))
    };
    let at = usize::try_from(slot.offset - first.offset)
        .map_err(|_| corrupt("offset out of range".to_owned()))?;
    let decoded = record::decode(bytes.get(at..).unwrap_or_default())
        .map_err(|error| corrupt(error.to_string()))?;
    match decoded.record {
        Record::Entry(entry) if entry.index == index && entry.term == slot.term => Ok(entry),
        other => Err(corrupt(format!(
            "expected entry {index} with term {}, found {other:?}",
            slot.term
        ))),
    }
}
