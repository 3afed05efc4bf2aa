//! The byte codecs on the hot path, timed one operation at a time: a peer message carrying
//! AppendEntries (encode then decode), a client write as a log entry carries it (encode then
//! decode), a WAL write batch appended to the in-memory disk, and recovery's search of a
//! recycled segment's earlier life for a record of this one (per MiB searched).
//!
//! Each case runs `rounds` times for a fixed number of operations and reports the median
//! nanoseconds per operation, so one slow round on a shared machine does not move the result.
//! To compare two builds, run their binaries in turn, several times: `bench/codec.sh OLD NEW`.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;

use skiff_kv::{Command, Request, SessionRequest, SetCondition};
use skiff_node::wire::{self, PeerMessage};
use skiff_raft::{Entry, EntryKind, HardState, LogIndex, Message, MessageBody, NodeId, Term};
use skiff_wal::{record, MemDisk, Wal, WalOptions};

/// The size of every entry's value, in bytes.
pub const VALUE_BYTES: usize = 100;

/// One case's result.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseResult {
    /// What was timed, e.g. `wire_append_entries_64`.
    pub name: String,
    /// The median over the rounds of nanoseconds per operation.
    pub median_ns: f64,
}

/// Runs every case `rounds` times with `ops` operations per round.
pub fn run(rounds: usize, ops: usize) -> Vec<CaseResult> {
    let mut results = Vec::new();
    for entries in [1, 8, 64] {
        let message = append_entries(entries);
        let per_message = (ops / entries).max(1);
        results.push(median(
            format!("wire_append_entries_{entries}"),
            rounds,
            per_message,
            || wire_round_trip(&message, per_message),
        ));
    }
    let request = client_write();
    results.push(median("kv_request_set".into(), rounds, ops, || {
        request_round_trip(&request, ops)
    }));
    for entries in [1, 64] {
        // A batch costs mostly the disk's bookkeeping, not the codec: a tenth as many.
        let batches = (ops / entries / 10).max(1);
        results.push(median(
            format!("wal_append_batch_{entries}"),
            rounds,
            batches,
            || wal_batches(entries, batches),
        ));
    }
    for (name, bytes) in [
        (
            "wal_search_earlier_life_per_mib",
            earlier_life(SEARCHED_MIB),
        ),
        (
            "wal_search_crafted_frames_per_mib",
            crafted_frames(SEARCHED_MIB),
        ),
    ] {
        results.push(median(name.into(), rounds, SEARCHED_MIB, || search(&bytes)));
    }
    results
}

/// How much of an earlier life recovery's search goes through per round.
const SEARCHED_MIB: usize = 16;

/// This life's mask in the search cases; the earlier life's records were masked otherwise.
const THIS_LIFE: u64 = 0x5eed_0002_c0ff_ee02;

/// `mib` MiB of an earlier life: entry records of [`VALUE_BYTES`], under another mask.
fn earlier_life(mib: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(mib << 20);
    let mut index = 1;
    while bytes.len() < mib << 20 {
        for entry in entries(index, 64) {
            record::encode_entry(&entry, false, &mut bytes).expect("a small entry encodes");
        }
        index += 64;
    }
    bytes.truncate(mib << 20);
    record::mask_frames(&mut bytes, 0x5eed_0001_c0ff_ee01);
    bytes
}

/// `mib` MiB of a client's values built to look like records: an entry frame every 32 bytes,
/// each claiming a megabyte, with a checksum made for no mask (the mask is not known).
fn crafted_frames(mib: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; mib << 20];
    let data_len: u32 = 1 << 20;
    for frame in bytes.chunks_exact_mut(32) {
        frame[..4].copy_from_slice(&(22 + data_len).to_le_bytes());
        frame[4..8].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        frame[8] = 2;
        frame[26..30].copy_from_slice(&data_len.to_le_bytes());
    }
    bytes
}

fn search(bytes: &[u8]) -> u128 {
    let start = Instant::now();
    let found = record::any_record_after(black_box(bytes), 0, THIS_LIFE);
    assert!(!found, "no record of this life is there");
    start.elapsed().as_nanos()
}

/// The median over `rounds` of `round()`'s nanoseconds divided by `ops`.
fn median(name: String, rounds: usize, ops: usize, mut round: impl FnMut() -> u128) -> CaseResult {
    let mut per_op: Vec<f64> = (0..rounds.max(1))
        .map(|_| round() as f64 / ops as f64)
        .collect();
    per_op.sort_by(f64::total_cmp);
    CaseResult {
        name,
        median_ns: per_op[per_op.len() / 2],
    }
}

/// A leader's AppendEntries with `count` entries of [`VALUE_BYTES`] each.
pub fn append_entries(count: usize) -> PeerMessage {
    PeerMessage::Raft(Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(7),
        body: MessageBody::AppendEntries {
            prev_log_index: LogIndex(1_000),
            prev_log_term: Term(7),
            entries: entries(1_001, count),
            leader_commit: LogIndex(999),
            read_round: 42,
        },
    })
}

fn entries(first: u64, count: usize) -> Vec<Entry> {
    (first..first + count as u64)
        .map(|index| Entry {
            term: Term(7),
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: vec![index as u8; VALUE_BYTES].into(),
        })
        .collect()
}

/// A `SET` of a 16-byte key to a [`VALUE_BYTES`] value in a client session.
pub fn client_write() -> Request {
    Request {
        session: Some(SessionRequest {
            client_id: 12_345,
            sequence: 678,
            lowest_unanswered: 670,
            resubmitted: false,
            proposed_after: 0,
        }),
        command: Command::Set {
            key: b"user:0000001234:".to_vec(),
            value: vec![b'v'; VALUE_BYTES],
            condition: SetCondition::Always,
        },
    }
}

/// Each frame is decoded from its own buffer, as a frame taken off a peer connection is: the
/// entries' data are shared with it.
fn wire_round_trip(message: &PeerMessage, ops: usize) -> u128 {
    let start = Instant::now();
    for _ in 0..ops {
        let mut buffer = Vec::new();
        wire::encode(black_box(message), &mut buffer);
        let frame = Bytes::from(buffer);
        black_box(wire::decode(&frame).expect("a message just encoded decodes"));
    }
    start.elapsed().as_nanos()
}

fn request_round_trip(request: &Request, ops: usize) -> u128 {
    let start = Instant::now();
    for _ in 0..ops {
        let bytes = black_box(request).encode();
        black_box(Request::decode(&bytes).expect("a request just encoded decodes"));
    }
    start.elapsed().as_nanos()
}

fn wal_batches(entries_per_batch: usize, batches: usize) -> u128 {
    let (mut wal, _) = Wal::open(MemDisk::new(), "/bench", WalOptions::new(1))
        .expect("an empty in-memory log opens");
    let mut next = 1;
    let prepared: Vec<Vec<Entry>> = (0..batches)
        .map(|_| {
            let batch = entries(next, entries_per_batch);
            next += entries_per_batch as u64;
            batch
        })
        .collect();
    let start = Instant::now();
    for (number, batch) in prepared.iter().enumerate() {
        let hard_state = HardState {
            term: Term(7),
            vote: Some(NodeId(1)),
            commit: LogIndex(number as u64),
        };
        wal.append_batch(batch, Some(hard_state))
            .expect("the in-memory disk takes every batch");
    }
    start.elapsed().as_nanos()
}
