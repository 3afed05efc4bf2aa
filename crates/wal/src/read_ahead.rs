//! Reading ahead: the log plans the reads of the batches of committed entries its caller will
//! ask for next (a restart applies the whole log again, batch after batch), and a
//! [`ReadAhead`] the caller gave it carries them out meanwhile — on another thread, say, while
//! the caller applies the batch before. The log starts no thread for it; it only plans, and
//! checks what comes back.
//!
//! A read ahead only ever stands in for a read the log would make itself: a batch is taken
//! only if it is exactly the range asked for, and each entry's index and term must still be
//! the index's (the Log Matching Property, §5.3: same index and term, same entry). Anything
//! else — another range, an error, a reader gone — ends the read-ahead, and the log reads for
//! itself as it would have without it.

use std::collections::VecDeque;

use skiff_raft::types::ENTRY_HEADER_BYTES;
use skiff_raft::{Entry, LogIndex, StorageError};

use crate::entry_index::Slot;
use crate::read_back::PlannedRead;

/// Carries out [`PlannedRead`]s for a [`Wal`](crate::Wal), in the order started, for example
/// on a thread of its own (each with [`PlannedRead::read`] on its own [`Disk`](crate::Disk)).
pub trait ReadAhead: Send + std::fmt::Debug {
    /// Starts `read`, after those started before it. The log keeps at most the `depth` it was
    /// given in flight, so this need not block.
    fn start(&mut self, read: PlannedRead);
    /// The result of the oldest read started and not yet finished, waiting for it; an `Err`
    /// with the reason if the reader can no longer give one (it stopped or failed).
    fn finish(&mut self) -> Result<Vec<Entry>, String>;
    /// The batch the last [`finish`](ReadAhead::finish) gave was checked and taken: the log
    /// hands exactly those entries to its caller. Not called for a batch it refused. By
    /// default nothing happens.
    fn taken(&mut self) {}
}

/// How far a read-ahead went, and why it ended early if it did.
#[derive(Debug)]
pub(crate) struct Ahead {
    reader: Box<dyn ReadAhead>,
    /// The reads started and not finished: their first index and entry count, in order.
    in_flight: VecDeque<(LogIndex, u64)>,
    /// The first index not planned yet.
    next: LogIndex,
    /// Reading ahead stops before this index.
    end: LogIndex,
    /// The batch size the caller asks for (as in `LogStorage::entries`).
    max_bytes: u64,
    /// How many reads may be in flight.
    depth: usize,
}

/// What asking a read-ahead for a batch gave.
pub(crate) enum Taken {
    /// The batch, read ahead.
    Entries(Vec<Entry>),
    /// Not read ahead (another range was asked for): the read-ahead goes on.
    NotAhead,
    /// The read-ahead cannot go on, for this reason: the caller reads for itself.
    Ended(String),
}

impl Ahead {
    /// A read-ahead of the entries `[next, end)` in batches of `max_bytes`, `depth` in flight.
    pub(crate) fn new(
        reader: Box<dyn ReadAhead>,
        next: LogIndex,
        end: LogIndex,
        max_bytes: u64,
        depth: usize,
    ) -> Ahead {
        Ahead {
            reader,
            in_flight: VecDeque::new(),
            next,
            end,
            max_bytes,
            depth: depth.max(1),
        }
    }

    /// Whether every batch was planned and taken.
    pub(crate) fn is_done(&self) -> bool {
        self.next >= self.end && self.in_flight.is_empty()
    }

    /// Plans and starts batches until `depth` are in flight. `slot` gives each entry's place,
    /// `plan` turns a range into a read.
    pub(crate) fn fill(
        &mut self,
        slot: impl Fn(LogIndex) -> Option<Slot>,
        plan: impl Fn(LogIndex, u64) -> Result<PlannedRead, StorageError>,
    ) -> Result<(), String> {
        while self.in_flight.len() < self.depth && self.next < self.end {
            let count = batch_len(self.next, self.end, self.max_bytes, &slot);
            if count == 0 {
                return Err(format!("entry {} is not in the log", self.next));
            }
            let read = plan(self.next, count).map_err(|e| e.to_string())?;
            self.reader.start(read);
            self.in_flight.push_back((self.next, count));
            self.next = self.next.plus(count);
        }
        Ok(())
    }

    /// The batch `[low, low + count)` if it is the next one read ahead, each entry checked
    /// against `term_at` (the index's term now).
    pub(crate) fn take(
        &mut self,
        low: LogIndex,
        count: u64,
        term_at: impl Fn(LogIndex) -> Option<skiff_raft::Term>,
    ) -> Taken {
        match self.in_flight.front() {
            Some(&front) if front == (low, count) => {}
            _ => return Taken::NotAhead,
        }
        self.in_flight.pop_front();
        let entries = match self.reader.finish() {
            Ok(entries) => entries,
            Err(reason) => return Taken::Ended(reason),
        };
        let expected = (0..count).map(|k| low.plus(k));
        let matches = entries.len() as u64 == count
            && entries
                .iter()
                .zip(expected)
                .all(|(entry, index)| entry.index == index && term_at(index) == Some(entry.term));
        if matches {
            self.reader.taken();
            Taken::Entries(entries)
        } else {
            Taken::Ended(format!(
                "the entries read ahead from {low} are not the log's"
            ))
        }
    }
}

/// How many entries from `low` (before `end`) one batch of `max_bytes` takes: at least one,
/// then as many as fit — the rule of `LogStorage::entries`. 0 if `low` is not in the index.
pub(crate) fn batch_len(
    low: LogIndex,
    end: LogIndex,
    max_bytes: u64,
    slot: impl Fn(LogIndex) -> Option<Slot>,
) -> u64 {
    let mut total_bytes = 0;
    let mut count = 0;
    let mut index = low;
    while index < end {
        let Some(slot) = slot(index) else {
            break;
        };
        total_bytes += ENTRY_HEADER_BYTES + slot.data_len();
        if count > 0 && total_bytes > max_bytes {
            break;
        }
        count += 1;
        index = index.next();
    }
    count
}
