//! The bytes on disk do not change with the code that writes them: a small log — entries of
//! each kind, a vote, a snapshot with a joint configuration and learners, a compaction —
//! written by the format as it stood before the shared codec, kept here as hex, must open
//! to the same log, and the same steps must write the same bytes today.

use std::path::PathBuf;

use skiff_raft::{Entry, EntryKind, LogIndex, LogStorage, NodeId, SnapshotMeta, Term};
use skiff_wal::{Disk, MemDisk, Wal, WalOptions};

mod common;
use common::*;

fn options() -> WalOptions {
    WalOptions {
        preallocate_bytes: 0,
        ..WalOptions::new(CLUSTER)
    }
}

fn meta() -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(2),
        term: Term(3),
        voters: vec![NodeId(1), NodeId(2)],
        voters_outgoing: vec![NodeId(3)],
        learners: vec![NodeId(9)],
    }
}

fn log_entries() -> Vec<Entry> {
    let entry = |index, kind, data: &[u8]| Entry {
        term: Term(3),
        index: LogIndex(index),
        kind,
        data: data.to_vec().into(),
    };
    vec![
        entry(1, EntryKind::Noop, b""),
        entry(2, EntryKind::Normal, b"set k v"),
        entry(3, EntryKind::ConfChange, &[1, 2, 0xff]),
    ]
}

/// The steps that wrote the golden files.
fn write_log() -> MemDisk {
    let (mut wal, _) = Wal::open(MemDisk::new(), dir(), options()).expect("open");
    wal.append_batch(&log_entries(), Some(hard_state(3, Some(1), 2)))
        .expect("append");
    wal.save_snapshot(meta(), b"snapshot data".to_vec())
        .expect("snapshot");
    wal.compact(LogIndex(2)).expect("compact");
    wal.into_disk()
}

fn files(disk: &MemDisk) -> Vec<(String, Vec<u8>)> {
    let mut names = disk.list(&dir()).expect("list");
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let bytes = disk.read_all(&dir().join(&name)).expect("read");
            (name, bytes)
        })
        .collect()
}

/// The segment: its header (cluster 0x5eed, first index 1), the three entries, the hard state
/// (term 3, vote 1, commit 2) closing the batch, then the log start record of the compaction.
const SEGMENT_HEX: &[&str] = &[
    "440000009c99a2f781534b49464657414c0100ed5e000000000000010000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000016000000b37a8695020300000000000000010000",
    "000000000001000000001d000000bcb1413b02030000000000000002000000000000000007000000736574206b207619",
    "000000fd07189c020300000000000000030000000000000002030000000102ff1a000000797c447e8303000000000000",
    "000101000000000000000200000000000000120000004ba7880d840200000000000000030000000000000001",
];

/// The snapshot file: header (magic, version 1, cluster, index 2, term 3, six members with
/// their separators, data length 13, data CRC, header CRC), then the data.
const SNAPSHOT_HEX: &[&str] = &[
    "534b494646534e500100ed5e000000000000020000000000000003000000000000000600000001000000000000000200",
    "00000000000000000000000000000300000000000000000000000000000009000000000000000d00000000000000ffdc",
    "497876bfe215736e617073686f742064617461",
];

/// The incarnation file: magic `SKIN`, version 1, incarnation 1 (the options' default), CRC.
const INCARNATION_HEX: &[&str] = &["534b494e010100000000000000fe5e2a65"];

fn from_hex(lines: &[&str]) -> Vec<u8> {
    let hex: String = lines.concat();
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).expect("hex"))
        .collect()
}

fn golden_files() -> Vec<(String, Vec<u8>)> {
    vec![
        ("incarnation".into(), from_hex(INCARNATION_HEX)),
        ("seg-00000000000000000001.wal".into(), from_hex(SEGMENT_HEX)),
        (
            "snap-00000000000000000002.snap".into(),
            from_hex(SNAPSHOT_HEX),
        ),
    ]
}

#[test]
fn todays_writer_writes_the_golden_bytes() {
    assert_eq!(files(&write_log()), golden_files());
}

#[test]
fn the_golden_bytes_open_to_the_same_log() {
    let mut disk = MemDisk::new();
    disk.create_dir_all(&dir()).expect("dir");
    for (name, bytes) in golden_files() {
        let path: PathBuf = dir().join(name);
        disk.create(&path).expect("create");
        disk.append(&path, &bytes).expect("append");
        disk.sync(&path).expect("sync");
    }
    let (wal, report) = Wal::open(disk, dir(), options()).expect("the golden log opens");
    assert_eq!(report.torn_tail, None);
    assert_eq!(wal.hard_state(), hard_state(3, Some(1), 2));
    assert_eq!(wal.snapshot_meta(), meta());
    assert_eq!(
        wal.snapshot_chunk(0, u64::MAX),
        Ok(b"snapshot data".to_vec())
    );
    assert_eq!(wal.first_index(), LogIndex(3));
    assert_eq!(all_entries(&wal), log_entries()[2..].to_vec());
}

/// A recycled segment's start: its header (version 2: cluster 0x5eed, first index 7, log start
/// 5 at term 3, hard state term 3, vote 1, commit 5, life 3, mask 0x0a0b0c0d01020304, size
/// 4096), then an entry (term 3, index 7, "v") whose stored length is its length XOR the
/// mask's high half, and whose stored checksum is its CRC-32C XOR the low half.
const RECYCLED_HEX: &[&str] = &[
    "58000000646e4bc381534b49464657414c0200ed5e000000000000070000000000000005000000000000000300000000",
    "0000000300000000000000010100000000000000050000000000000003000000040302010d0c0b0a0010000000000000",
    "1a0c0b0a7d9e42a18203000000000000000700000000000000000100000076",
];

#[test]
fn a_recycled_segment_writes_its_life_and_masks_its_records() {
    use skiff_wal::record::{self, LogStart, Record, SegmentHeader};
    let mask = 0x0a0b_0c0d_0102_0304;
    let mut bytes = Vec::new();
    let header = SegmentHeader {
        cluster_id: CLUSTER,
        first_index: LogIndex(7),
        log_start: LogStart {
            index: LogIndex(5),
            term: Term(3),
        },
        hard_state: hard_state(3, Some(1), 5),
        life: 3,
        mask,
        max_segment_bytes: 4096,
        sealed: false,
    };
    record::encode(&Record::SegmentHeader(header), true, &mut bytes).expect("header");
    let header_bytes = bytes.len();
    let mut entry = Vec::new();
    record::encode_entry(
        &Entry {
            term: Term(3),
            index: LogIndex(7),
            kind: EntryKind::Normal,
            data: b"v".to_vec().into(),
        },
        true,
        &mut entry,
    )
    .expect("entry");
    record::mask_frames(&mut entry, mask);
    bytes.extend_from_slice(&entry);
    assert_eq!(bytes, from_hex(RECYCLED_HEX));
    // The entry's length and checksum, computed apart: its type and payload are 23 bytes.
    let stored_len = u32::from_le_bytes(entry[0..4].try_into().unwrap());
    assert_eq!(stored_len, 23 ^ 0x0a0b_0c0d);
    let stored_crc = u32::from_le_bytes(entry[4..8].try_into().unwrap());
    assert_eq!(stored_crc, crc32c::crc32c(&entry[8..]) ^ 0x0102_0304);
    let read: Vec<_> = record::segment_records(&bytes)
        .map(|(at, d)| (at, d.record))
        .collect();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].1, Record::SegmentHeader(header));
    assert_eq!(read[1].0, header_bytes);
    assert!(
        matches!(&read[1].1, Record::Entry(entry) if entry.index == LogIndex(7) && entry.term == Term(3) && entry.data.as_ref() == b"v")
    );
}

/// A sealed recycled segment (version 3) has version 2's fields; its batches are each
/// followed by the life's seal: the mask XOR "SEALSEAL" (little-endian), times
/// 0x9e3779b97f4a7c15, little-endian. For the mask above that is `23e9bc6a5f5bc62d`.
#[test]
fn a_sealed_segment_writes_version_3_and_its_seal_is_fixed_by_its_mask() {
    use skiff_wal::record::{self, Record};
    let version_2 = from_hex(RECYCLED_HEX);
    let Some((_, decoded)) = record::segment_records(&version_2).next() else {
        panic!("the version 2 header reads");
    };
    let Record::SegmentHeader(mut header) = decoded.record else {
        panic!("a segment header");
    };
    assert!(!header.sealed, "version 2 is not sealed");
    header.sealed = true;
    let mut bytes = Vec::new();
    record::encode(&Record::SegmentHeader(header), true, &mut bytes).expect("header");
    let header_len = bytes.len();
    assert_eq!(
        header_len, decoded.frame_bytes,
        "the same fields as version 2"
    );
    // The version (after len, crc, type and magic) is 3; the checksum changes with it; the
    // rest is version 2's.
    assert_eq!(bytes[17..19], [3, 0]);
    assert_eq!(bytes[8..17], version_2[8..17]);
    assert_eq!(bytes[19..header_len], version_2[19..header_len]);
    assert_eq!(
        u32::from_le_bytes(bytes[4..8].try_into().unwrap()),
        crc32c::crc32c(&bytes[8..header_len])
    );
    let Some((_, read)) = record::segment_records(&bytes).next() else {
        panic!("the version 3 header reads");
    };
    assert_eq!(read.record, Record::SegmentHeader(header));
    assert_eq!(
        record::batch_seal(header.mask),
        from_hex(&["23e9bc6a5f5bc62d"])[..]
    );
}
