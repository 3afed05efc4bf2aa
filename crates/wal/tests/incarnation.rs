//! The incarnation file: a new log gets the caller's incarnation, an existing log keeps its
//! own, a log that lost its segments gets a new one, and a damaged file refuses to open.
//! Reference: §3.8 (a server must not forget its vote).

mod common;

use common::*;
use skiff_raft::{LogStorage, Term};
use skiff_wal::incarnation::INCARNATION_FILE;
use skiff_wal::{Corruption, Disk, MemDisk, WalError, WalOptions};

fn with_incarnation(incarnation: u64) -> WalOptions {
    WalOptions {
        new_incarnation: incarnation,
        ..small_segments()
    }
}

#[test]
fn a_new_log_takes_the_callers_incarnation_and_keeps_it_across_restarts() {
    let (mut wal, report) = open(MemDisk::new(), with_incarnation(0xfeed));
    assert!(report.created && report.incarnation_created);
    assert_eq!(wal.incarnation(), 0xfeed);
    wal.append_batch(&entries(1..=3, 1), Some(hard_state(1, Some(2), 0)))
        .unwrap();
    let mut disk = wal.into_disk();
    disk.crash();
    // The incarnation was synced before the log's first header.
    let (wal, report) = open(disk, with_incarnation(0xbeef));
    assert!(!report.created && !report.incarnation_created);
    assert_eq!(wal.incarnation(), 0xfeed, "an existing log keeps its own");
    assert_eq!(wal.hard_state().term, Term(1));
}

#[test]
fn a_wiped_disk_or_lost_segments_give_a_new_incarnation() {
    let (mut wal, _) = open(MemDisk::new(), with_incarnation(11));
    wal.append_batch(&entries(1..=40, 1), Some(hard_state(1, Some(2), 0)))
        .unwrap();
    let mut disk = wal.into_disk();
    // A wiped disk: nothing of the old directory.
    let (fresh, _) = open(MemDisk::new(), with_incarnation(12));
    assert_eq!(fresh.incarnation(), 12);
    // Every segment lost, the incarnation file kept: the votes are gone all the same.
    for name in disk.list(&dir()).unwrap() {
        if name != INCARNATION_FILE {
            disk.lose_file(&dir().join(name)).unwrap();
        }
    }
    let (wal, report) = open(disk, with_incarnation(13));
    assert!(report.created && report.incarnation_created);
    assert_eq!(wal.incarnation(), 13);
    assert_eq!(wal.last_index().0, 0);
}

#[test]
fn a_log_without_an_incarnation_file_is_given_one() {
    let (mut wal, _) = open(MemDisk::new(), with_incarnation(21));
    wal.append_batch(&entries(1..=3, 1), Some(hard_state(1, None, 0)))
        .unwrap();
    let mut disk = wal.into_disk();
    disk.lose_file(&dir().join(INCARNATION_FILE)).unwrap();
    let (wal, report) = open(disk, with_incarnation(22));
    assert!(!report.created && report.incarnation_created);
    assert_eq!(wal.incarnation(), 22);
    assert_eq!(wal.last_index().0, 3, "the log itself is kept");
}

#[test]
fn a_damaged_incarnation_file_refuses_to_open_and_is_left_alone() {
    let (wal, _) = open(MemDisk::new(), with_incarnation(31));
    let mut disk = wal.into_disk();
    let file = dir().join(INCARNATION_FILE);
    disk.flip_bit(&file, 7).unwrap();
    let before = disk.read_all(&file).unwrap();
    match try_open(disk.clone(), with_incarnation(32)) {
        Err(WalError::Corrupt {
            file: named,
            problem: Corruption::BadIncarnation { reason },
            ..
        }) => {
            assert_eq!(named, file);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("a damaged incarnation file must be refused, got {other:?}"),
    }
    assert_eq!(disk.read_all(&file).unwrap(), before);
}

#[test]
fn an_incarnation_file_of_the_wrong_size_is_refused_naming_its_size_and_left_alone() {
    // A damaged directory may hold a huge file under the name: it is refused, naming its
    // size (which `incarnation::read` checks before reading it), and left as it was.
    let (wal, _) = open(MemDisk::new(), with_incarnation(41));
    let mut disk = wal.into_disk();
    let file = dir().join(INCARNATION_FILE);
    disk.remove(&file).unwrap();
    disk.create(&file).unwrap();
    disk.append(&file, &vec![0xAB; 4 << 20]).unwrap();
    match try_open(disk.clone(), with_incarnation(42)) {
        Err(WalError::Corrupt {
            file: named,
            problem: Corruption::BadIncarnation { reason },
            ..
        }) => {
            assert_eq!(named, file);
            assert!(reason.contains(&format!("{} bytes", 4 << 20)), "{reason}");
        }
        other => panic!("an oversized incarnation file must be refused, got {other:?}"),
    }
    assert_eq!(disk.len(&file).unwrap(), 4 << 20);
}
