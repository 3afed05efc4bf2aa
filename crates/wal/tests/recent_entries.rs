//! The entries a log last wrote are handed back from memory: the right ones after a suffix is
//! replaced, and older ones still from the disk, checked as before.

mod common;

use common::*;
use skiff_raft::{Entry, LogIndex, LogStorage, StorageError};
use skiff_wal::{MemDisk, Wal, WalOptions};

/// Damages entry `index`'s record on the disk (one segment holds the whole log here), so
/// that only a read from memory can succeed.
fn damage_on_disk(wal: &mut Wal<MemDisk>, index: u64) {
    let segment = wal.segment_paths()[0].clone();
    let offset = offset_of_entry(wal.disk(), &segment, index);
    wal.disk_mut().flip_bit(&segment, offset + 20).unwrap(); // inside the payload
}

fn read(wal: &Wal<MemDisk>, low: u64, high: u64) -> Result<Vec<Entry>, StorageError> {
    wal.entries(LogIndex(low), LogIndex(high), u64::MAX)
}

#[test]
fn a_replaced_suffix_is_read_as_the_new_entries_from_memory() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(CLUSTER));
    wal.append_batch(&entries(1..=5, 1), None).unwrap();
    // A new leader's entries replace 3..=5 (§5.3).
    let replacing = entries(3..=4, 2);
    wal.append_batch(&replacing, None).unwrap();
    damage_on_disk(&mut wal, 3);

    let mut expected = entries(1..=2, 1);
    expected.extend(replacing);
    assert_eq!(read(&wal, 1, 5).unwrap(), expected);
    assert!(read(&wal, 5, 6).is_err(), "entry 5 was replaced away");
}

#[test]
fn entries_no_longer_kept_are_read_from_the_disk_and_checked() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(CLUSTER));
    // Six entries of 1 MiB: the oldest are no longer kept in memory (4 MiB).
    let big: Vec<Entry> = (1..=6)
        .map(|index| Entry {
            data: vec![index as u8; 1024 * 1024].into(),
            ..entry(index, 1)
        })
        .collect();
    for one in &big {
        wal.append_batch(std::slice::from_ref(one), None).unwrap();
    }
    assert_eq!(read(&wal, 1, 7).unwrap(), big);

    // The newest come from memory; the oldest from the disk, whose damage is caught.
    damage_on_disk(&mut wal, 1);
    assert_eq!(read(&wal, 6, 7).unwrap(), big[5..]);
    assert!(
        read(&wal, 1, 2).is_err(),
        "a damaged record read from the disk is refused"
    );
}

#[test]
fn after_the_log_is_dropped_for_a_snapshot_new_entries_are_read() {
    let (mut wal, _) = open(MemDisk::new(), WalOptions::new(CLUSTER));
    wal.append_batch(&entries(1..=5, 1), None).unwrap();
    // A snapshot at 4 in a term the log does not hold there drops the whole log (§7).
    wal.compact_to(LogIndex(4), skiff_raft::Term(3)).unwrap();
    assert!(matches!(
        read(&wal, 3, 4),
        Err(StorageError::Compacted { .. })
    ));
    let after = entries(5..=6, 3);
    wal.append_batch(&after, None).unwrap();
    assert_eq!(read(&wal, 5, 7).unwrap(), after);
}
