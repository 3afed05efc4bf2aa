//! What a hostile `EXEC` entry makes a replica allocate: at apply, no more than the reply
//! limit however many oversized reads it queues; at decode, no reservation for items the
//! entry only claims to hold, nor for a forged reply array or snapshot window. And what a
//! plain `SET` allocates: no copy of its key when no one listens for keyspace events. Memory
//! is counted by this test binary's allocator, per thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use skiff_kv::{Command, KvConfig, Reply, SetCondition, StateMachine, Transaction};

/// The system allocator, counting the bytes each thread asks of it.
struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    // `try_with`: the counter may already be gone while the thread exits.
    let _ = ALLOCATED.try_with(|total| total.set(total.get().saturating_add(bytes)));
}

// SAFETY: every call is passed to `System` unchanged; counting touches only a thread-local
// `Cell` of a plain integer, which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bytes this thread allocated while `f` ran, with what `f` returned.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATED.with(Cell::get);
    let result = f();
    (ALLOCATED.with(Cell::get) - before, result)
}

const VALUE_BYTES: usize = 64 * 1024;
const REPLY_LIMIT_BYTES: usize = 16 * VALUE_BYTES;

#[test]
fn an_exec_of_many_oversized_reads_allocates_about_the_reply_limit_not_each_read() {
    let mut kv = StateMachine::new(KvConfig {
        max_value_bytes: VALUE_BYTES,
        max_reply_bytes: REPLY_LIMIT_BYTES,
        ..KvConfig::default()
    })
    .expect("valid config");
    kv.apply(
        1,
        Command::Set {
            key: b"k".to_vec(),
            value: vec![b'v'; VALUE_BYTES],
            condition: SetCondition::Always,
        },
        None,
    );
    // Each MGET alone reads exactly the limit; 2,000 of them would copy 2 GiB if each
    // reply were built before it was measured. GETs after them are as hostile.
    let mget = Command::MGet {
        keys: vec![b"k".to_vec(); 16],
    };
    let get = Command::Get { key: b"k".to_vec() };
    let mut commands = vec![mget; 2000];
    commands.extend(vec![get; 2000]);
    let queued = commands.len();
    let entry = Command::Exec(Transaction {
        watched: vec![],
        commands,
    });
    let (allocated, reply) = allocated_by(|| kv.apply(2, entry, None));
    let Reply::Array(replies) = reply else {
        panic!("an array, got {reply:?}")
    };
    assert_eq!(replies.len(), queued);
    assert!(matches!(&replies[0], Reply::Array(values) if values.len() == 16));
    assert!(replies[1..].iter().all(Reply::is_error));
    // One reply's values, plus a short error (formatted, so grown a few times) and a slot
    // for each command.
    let bound = REPLY_LIMIT_BYTES + queued * 512;
    assert!(
        allocated <= bound,
        "applying the EXEC allocated {allocated} bytes, more than {bound}"
    );
}

#[test]
fn decoding_reserves_nothing_for_items_an_entry_only_claims() {
    // Version 3, EXEC, no watched key, then a count of 300,000 commands and 900,000 zero
    // bytes: within the count's sanity check (three bytes an item), yet every item is empty
    // and refused. An in-memory command is many times three bytes.
    let claimed = 300_000u64;
    let mut entry = vec![3, 60, 0];
    let mut n = claimed;
    while n >= 0x80 {
        entry.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    entry.push(n as u8);
    entry.resize(entry.len() + 3 * claimed as usize, 0);
    let (allocated, decoded) = allocated_by(|| Command::decode(&entry));
    assert!(decoded.is_err());
    assert!(
        allocated < entry.len(),
        "decoding {} bytes allocated {allocated}",
        entry.len()
    );
}

/// A SET over a key already there moves its key and value into the store: with no one
/// listening for keyspace events, nothing as large as the key is allocated (the key was
/// once copied only to name it in an event nobody recorded). With a listener, the copy
/// names the event.
#[test]
fn a_set_copies_its_key_only_for_a_listener() {
    let mut kv = StateMachine::new(KvConfig::default()).unwrap();
    let key = vec![b'k'; 16 * 1024];
    let set = |value: &[u8]| Command::Set {
        key: key.clone(),
        value: value.to_vec(),
        condition: SetCondition::Always,
    };
    kv.apply(1, set(b"a"), None);
    let command = set(b"b");
    let (deaf_bytes, reply) = allocated_by(|| kv.apply(2, command, None));
    assert_eq!(reply, Reply::Ok);
    assert!(deaf_bytes < key.len(), "{deaf_bytes} bytes allocated");
    kv.record_events(true);
    let command = set(b"c");
    let (listening_bytes, _) = allocated_by(|| kv.apply(3, command, None));
    assert!(listening_bytes >= key.len(), "the event names the key");
    assert_eq!(kv.take_events().events.len(), 1);
}

/// The unsigned LEB128 varint the codec writes.
fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[test]
fn a_forwarded_reply_claiming_a_huge_array_is_refused_without_reserving_it() {
    // An array that claims 300,000 items (one byte each passes the count's sanity check),
    // whose first item has a tag no reply has: a peer's ForwardReply can carry this.
    let claimed = 300_000u64;
    let mut reply = vec![4];
    varint(&mut reply, claimed);
    reply.resize(reply.len() + claimed as usize, 99);
    let (allocated, decoded) = allocated_by(|| Reply::decode(&reply));
    assert!(decoded.is_err(), "a forged reply decoded: {decoded:?}");
    // Reserving the claimed items would take 300,000 in-memory replies, many times the input.
    assert!(
        allocated < reply.len(),
        "decoding {} bytes allocated {allocated}",
        reply.len()
    );
}

#[test]
fn a_snapshot_window_claiming_a_huge_count_is_refused_without_reserving_it() {
    // Version 4, applied 5, log time 0, no keys, no session forgotten, one session (client
    // 7, floor 2, active at index 5 and log time 0) whose window claims 150,000 replies (two bytes each passes the count's sanity
    // check): sequence 2, then a reply tag that does not exist, then zeros. The checksum is
    // valid, as a peer's forged snapshot's would be.
    let claimed = 150_000u64;
    let mut body = skiff_kv::SNAPSHOT_MAGIC.to_vec();
    body.extend_from_slice(&[4, 5, 0, 0, 0, 1, 7, 2, 5, 0]);
    varint(&mut body, claimed);
    body.extend_from_slice(&[2, 99]);
    body.resize(body.len() + 2 * claimed as usize, 0);
    body.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    let (allocated, restored) =
        allocated_by(|| StateMachine::restore(KvConfig::default(), &body).map(|_| ()));
    assert!(
        matches!(restored, Err(skiff_kv::KvError::UnknownTag { tag: 99, .. })),
        "a forged window was restored or refused for another reason: {restored:?}"
    );
    // Reserving the claimed window would take 150,000 (sequence, reply) pairs: 20 times the
    // input.
    assert!(
        allocated < body.len(),
        "restoring {} bytes allocated {allocated}",
        body.len()
    );
}
