//! The key-value state machine applying client writes as a node does: each `SET` decoded
//! from the bytes a log entry carries, with the client's session, then applied at its index.
//! This is the work every replica does for every write. A restart's replay applies the
//! whole log on one thread too, but with its commands decoded on another (and the strings its
//! writes replace handed back there), so its path differs from this one.
//!
//! As a node does ([`skiff_node::APPLY_WINDOW`]), the store is told which keys the next
//! window of entries writes ([`StateMachine::prefetch`]) before the first of them is applied;
//! a window of 1 gives no hint. Here the windows follow each other through one unbroken run
//! of writes; a node's begin again at each batch (and each step of a leader's apply), so at
//! a light load many of its windows are shorter.
//!
//! Optionally a snapshot is frozen every `freeze_every` entries and serialized on another
//! thread while the writes go on, as a node's snapshot thread does: the writes then pay for
//! copying the shared parts of the store, and the other thread frees them.
//!
//! Reports nanoseconds per applied entry (the median of `rounds` rounds, each on a fresh store
//! filled with every key first, so a round measures overwrites of a store of `keys` keys).

use std::hint::black_box;
use std::thread::JoinHandle;
use std::time::Instant;

use skiff_kv::{Command, KvConfig, Request, SessionRequest, SetCondition, StateMachine};

/// What one run applies.
#[derive(Clone, Copy, Debug)]
pub struct ApplyOptions {
    /// Distinct keys (`key:000000000042`-shaped, as redis-benchmark's `-r`).
    pub keys: u64,
    /// Writes applied per round (after the fill).
    pub ops: u64,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Clients the writes come from, round robin, each with its own session.
    pub clients: u64,
    /// Freeze a snapshot every this many entries (0: never).
    pub freeze_every: u64,
    /// Rounds; the median is reported.
    pub rounds: usize,
    /// Entries whose written keys the store is shown before the first of them is applied.
    pub window: usize,
}

/// One run's result.
#[derive(Clone, Debug, PartialEq)]
pub struct ApplyResult {
    /// Median nanoseconds per applied write.
    pub median_ns: f64,
    /// Every round's nanoseconds per write, in the order run.
    pub rounds_ns: Vec<f64>,
    /// Median nanoseconds of the applying thread's CPU time per write (from
    /// `/proc/thread-self/schedstat`; `None` where that cannot be read): unlike the wall
    /// time, it does not count the time other processes held the processor.
    pub median_cpu_ns: Option<f64>,
    /// Snapshots due per round (one is skipped while the previous is still being written,
    /// as a node does).
    pub freezes_per_round: u64,
}

/// Runs `options.rounds` rounds.
pub fn run(options: ApplyOptions) -> ApplyResult {
    let (wall, cpu): (Vec<f64>, Vec<Option<f64>>) =
        (0..options.rounds).map(|_| round(options)).unzip();
    let cpu: Option<Vec<f64>> = cpu.into_iter().collect();
    ApplyResult {
        median_ns: median(wall.clone()),
        median_cpu_ns: cpu.map(median),
        rounds_ns: wall,
        freezes_per_round: options.ops.checked_div(options.freeze_every).unwrap_or(0),
    }
}

/// The median of `values` (not empty).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Nanoseconds this thread has run on a processor, if the kernel tells.
fn thread_cpu_ns() -> Option<u64> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    schedstat.split_whitespace().next()?.parse().ok()
}

/// The entries a round applies, encoded as the log holds them: the fill (one write per key,
/// in key order) then `ops` writes to keys in a scrambled order.
fn entries(options: ApplyOptions, fill: bool) -> Vec<Vec<u8>> {
    let count = if fill { options.keys } else { options.ops };
    let clients = options.clients.max(1);
    let mut sequences = vec![0u64; clients as usize];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..count)
        .map(|i| {
            let key_number = if fill {
                i
            } else {
                // xorshift: an even spread over the keys, the same every round.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state % options.keys.max(1)
            };
            let client = i % clients;
            sequences[client as usize] += 1;
            let sequence = sequences[client as usize];
            let session = SessionRequest {
                client_id: client + if fill { 1 << 32 } else { 1 },
                ..SessionRequest::sequential(0, sequence)
            };
            Request {
                session: Some(session),
                command: Command::Set {
                    key: format!("key:{key_number:012}").into_bytes(),
                    value: vec![b'x'; options.value_bytes],
                    condition: SetCondition::Always,
                },
            }
            .encode()
        })
        .collect()
}

/// Fills a store, then times applying `ops` writes to it: wall and CPU nanoseconds per write.
fn round(options: ApplyOptions) -> (f64, Option<f64>) {
    let mut store = StateMachine::new(KvConfig::default()).expect("the default configuration");
    let mut index = 0u64;
    for bytes in entries(options, true) {
        index += 1;
        apply(&mut store, index, &bytes);
    }
    let writes = entries(options, false);
    let mut serializer: Option<JoinHandle<usize>> = None;
    let start = Instant::now();
    let cpu_start = thread_cpu_ns();
    let window = options.window.max(1);
    for (i, bytes) in writes.iter().enumerate() {
        index += 1;
        if window > 1 && i % window == 0 {
            let next = writes[i..].iter().take(window);
            store.prefetch(next.filter_map(|bytes| Request::written_key(bytes)));
        }
        apply(&mut store, index, bytes);
        let due = options.freeze_every > 0 && (i as u64 + 1) % options.freeze_every == 0;
        // A node takes no snapshot while one is being written: nor does this loop wait.
        if due && serializer.as_ref().is_none_or(JoinHandle::is_finished) {
            if let Some(previous) = serializer.take() {
                black_box(previous.join().expect("the serializer thread"));
            }
            let frozen = store.freeze();
            serializer = Some(std::thread::spawn(move || {
                let mut out = Vec::new();
                frozen.snapshot_into(&mut out);
                out.len()
            }));
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu_start
        .zip(thread_cpu_ns())
        .map(|(start, end)| end.saturating_sub(start));
    if let Some(previous) = serializer.take() {
        black_box(previous.join().expect("the serializer thread"));
    }
    black_box(store.len());
    let per_write = |ns: f64| ns / options.ops.max(1) as f64;
    (
        per_write(elapsed.as_nanos() as f64),
        cpu.map(|ns| per_write(ns as f64)),
    )
}

/// Decodes one entry's request and applies it at `index`, as a node's driver does.
fn apply(store: &mut StateMachine, index: u64, bytes: &[u8]) {
    let request = Request::decode(bytes).expect("an entry this benchmark encoded");
    black_box(store.apply(index, request.command, request.session));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_overwrites_the_filled_keys_and_freezes_as_asked() {
        let options = ApplyOptions {
            keys: 50,
            ops: 200,
            value_bytes: 8,
            clients: 3,
            freeze_every: 64,
            rounds: 3,
            window: 16,
        };
        let result = run(options);
        assert_eq!(result.rounds_ns.len(), 3);
        assert_eq!(result.freezes_per_round, 3);
        assert!(result.median_ns > 0.0);
        // Every write decodes to a SET of one of the filled keys.
        for bytes in entries(options, false) {
            let request = Request::decode(&bytes).unwrap();
            let Command::Set { key, value, .. } = request.command else {
                panic!("not a SET");
            };
            let number: u64 = std::str::from_utf8(&key[4..]).unwrap().parse().unwrap();
            assert!(number < 50);
            assert_eq!(value.len(), 8);
        }
    }
}
