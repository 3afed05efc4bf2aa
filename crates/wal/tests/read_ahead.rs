//! Batches of committed entries read ahead ([`Wal::start_read_ahead`]) stand in only for the
//! very reads the log would make: a batch asked for out of turn, a reader that fails, or
//! entries that are not the log's, and the log reads for itself — the caller always gets the
//! log's own entries.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{entries, hard_state, open, small_segments};
use skiff_raft::{Entry, LogIndex, LogStorage, Term};
use skiff_wal::{MemDisk, PlannedRead, ReadAhead, Wal};

/// What a test reader does with the reads it is given.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Behaviour {
    Read,
    Fail,
    /// Reads, then says each entry is of another term.
    Forge,
}

/// Reads on its own copy of the disk, when asked for the result.
#[derive(Debug)]
struct CopyReader {
    disk: MemDisk,
    started: VecDeque<PlannedRead>,
    behaviour: Behaviour,
    finished: Arc<AtomicUsize>,
}

impl ReadAhead for CopyReader {
    fn start(&mut self, read: PlannedRead) {
        self.started.push_back(read);
    }

    fn finish(&mut self) -> Result<Vec<Entry>, String> {
        let read = self.started.pop_front().expect("a read was started");
        if self.behaviour == Behaviour::Fail {
            return Err("the reader failed".to_owned());
        }
        self.finished.fetch_add(1, Ordering::Relaxed);
        let mut read = read
            .read(&self.disk, &mut Vec::new())
            .map_err(|e| e.to_string())?;
        if self.behaviour == Behaviour::Forge {
            read.iter_mut().for_each(|entry| entry.term = Term(7));
        }
        Ok(read)
    }
}

const BATCH_BYTES: u64 = 200;

/// A log of 60 committed entries over many small segments, reading them ahead.
fn log_reading_ahead(behaviour: Behaviour) -> (Wal<MemDisk>, Arc<AtomicUsize>) {
    let (mut wal, _) = open(MemDisk::new(), small_segments());
    for low in (1..=60).step_by(10) {
        wal.append_batch(
            &entries(low..=low + 9, 1),
            Some(hard_state(1, None, low + 9)),
        )
        .unwrap();
    }
    let (mut wal, _) = open(wal.into_disk(), small_segments());
    assert!(wal.segment_paths().len() > 5, "batches span segments");
    let reader = CopyReader {
        disk: wal.disk().clone(),
        started: VecDeque::new(),
        behaviour,
        finished: Arc::default(),
    };
    let finished = reader.finished.clone();
    wal.start_read_ahead(Box::new(reader), LogIndex(1), LogIndex(61), BATCH_BYTES, 2);
    (wal, finished)
}

/// Asks for the entries from `low` batch by batch, as a node applying them does.
fn take_all(wal: &Wal<MemDisk>, low: u64) -> Vec<Entry> {
    let mut taken = Vec::new();
    let mut next = LogIndex(low);
    while next <= LogIndex(60) {
        let batch = wal.entries(next, LogIndex(61), BATCH_BYTES).unwrap();
        next = batch.last().unwrap().index.next();
        taken.extend(batch);
    }
    taken
}

#[test]
fn every_batch_read_ahead_is_the_one_the_log_reads() {
    let (mut wal, finished) = log_reading_ahead(Behaviour::Read);
    assert_eq!(take_all(&wal, 1), entries(1..=60, 1));
    assert_eq!(wal.stop_read_ahead(), Ok(()));
    // 60 entries of ~40 bytes in batches of 200 bytes: every one of them read ahead.
    assert_eq!(finished.load(Ordering::Relaxed), 15);
}

#[test]
fn a_batch_asked_for_out_of_turn_is_read_by_the_log_itself() {
    let (mut wal, _) = log_reading_ahead(Behaviour::Read);
    assert_eq!(take_all(&wal, 5), entries(5..=60, 1));
    assert_eq!(wal.stop_read_ahead(), Ok(()), "not a failure");
}

#[test]
fn a_failed_reader_is_reported_once_the_log_read_every_entry_itself() {
    let (mut wal, _) = log_reading_ahead(Behaviour::Fail);
    assert_eq!(take_all(&wal, 1), entries(1..=60, 1));
    assert_eq!(wal.stop_read_ahead(), Err("the reader failed".to_owned()));
}

#[test]
fn entries_read_ahead_that_are_not_the_logs_are_refused() {
    let (mut wal, _) = log_reading_ahead(Behaviour::Forge);
    assert_eq!(take_all(&wal, 1), entries(1..=60, 1));
    let reason = wal.stop_read_ahead().unwrap_err();
    assert!(reason.contains("not the log's"), "{reason}");
}
