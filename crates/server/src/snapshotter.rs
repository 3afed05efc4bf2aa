//! Writing a snapshot file off the driver thread. The node freezes the state machine (a clone
//! of its persistent maps, O(1) in the store's size) when it hands out
//! `Effect::WriteSnapshot`, and a thread of its own streams the frozen state into the file a
//! chunk at a time (so the store's bytes are never held whole: memory stays near the store's
//! size, not twice it), seals the file's header over the bytes written (their length and
//! checksum), writes it at the file's start and syncs —
//! for a large store all of the time a snapshot takes — while the driver goes on applying,
//! ticking, heartbeating and serving. The node then installs the file (a rename) and compacts
//! the log. If the thread fails or panics midway, the outcome is an error: the driver
//! abandons the snapshot, and the log and the old snapshot stay as they were.
//!
//! The snapshot is background work that every replica does at about the same index, so it
//! yields to the work clients wait for: the thread runs at a lower scheduling priority (its
//! nice value [`SNAPSHOT_NICE_STEP`] above the node's), so that on a busy machine the drivers, the syncers and the network
//! tasks go first. Unpaced (`--snapshot-write-mib-per-second 0`), it starts the file's writeback every
//! [`WRITEBACK_EVERY_BYTES`] as it serializes, so that the final sync does not put the whole
//! store on the disk at once. Paced (32 MiB a second by default), it serializes into the
//! page cache at full speed (the frozen state, which keeps every value replaced meanwhile
//! alive, goes as soon as it is done; at most [`DIRTY_WINDOW_BYTES`] wait in the page cache)
//! and then puts the file on the disk at the rate, each [`CHUNK_BYTES`] written back before the
//! next: a sync of the log asks the disk for everything written before it, and a snapshot put
//! on the disk at full speed rides on the log syncs in flight. Only the last
//! [`DIRTY_WINDOW_BYTES`] (or less) of a file are paced, so that a large store's snapshot does
//! not leave the log uncompacted for long: the rest went back as it was serialized. Pacing
//! takes about 2 ms off the `-c 50 -P 16` SET p99 on leader and follower in the cluster
//! benchmark's sequence; it was off by default until the log's index shrank to 8 bytes an
//! entry, because the longer stretch without compaction raised the peak RSS
//! (docs/benchmarks/rounds-7-to-11.md, "Round eleven", and rounds-12-and-later.md, "Round
//! twelve"). A snapshot an operator or a backup waits for is never paced, nor one already in
//! flight when they ask. Elsewhere than Linux only the rate applies (no early writeback).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use skiff_node::{SnapshotData, SnapshotJob, SnapshotToken};

use crate::driver::Bell;

/// A finished write: the file, whether it was written and synced, and when it began.
pub struct Written {
    /// The file's token, to install it.
    pub token: SnapshotToken,
    /// The outcome of writing and syncing it.
    pub result: io::Result<()>,
    /// When the snapshot was begun (before serializing).
    pub started: Instant,
}

/// The driver's side. The node hands out one snapshot file at a time.
pub struct Snapshotter {
    done_tx: Sender<Written>,
    /// Each write's outcome.
    pub done: Receiver<Written>,
    /// Wakes the driver when an outcome is there.
    bell: Arc<Bell>,
    /// The most bytes per second a snapshot file is written back at (0: no sleeping).
    write_bytes_per_second: u64,
    /// Set when someone waits for the snapshot in flight: its writeback stops sleeping.
    hurry: Arc<AtomicBool>,
}

impl Snapshotter {
    /// A snapshotter with nothing in flight, ringing `bell` when a write is done, writing
    /// files at most at `write_bytes_per_second` (0: unpaced).
    pub fn new(bell: Arc<Bell>, write_bytes_per_second: u64) -> Snapshotter {
        let (done_tx, done) = bounded(1);
        Snapshotter {
            done_tx,
            done,
            bell,
            write_bytes_per_second,
            hurry: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Someone (an operator, a backup) now waits for the snapshot in flight, if any: the
    /// rest of its file is written back without sleeping.
    pub fn hurry(&self) {
        self.hurry.store(true, Ordering::Relaxed);
    }

    /// Writes the job's file on a new thread, at the configured rate if `paced` and
    /// unpaced otherwise; the outcome arrives on `done`. If the thread cannot start, the
    /// token comes back with the error.
    pub fn write(
        &self,
        node: u64,
        job: SnapshotJob,
        started: Instant,
        paced: bool,
    ) -> Result<(), Box<(SnapshotToken, io::Error)>> {
        let done = self.done_tx.clone();
        let bell = self.bell.clone();
        // One snapshot is in flight at a time: the flag is this one's from now on.
        self.hurry.store(false, Ordering::Relaxed);
        let pace = Pace {
            rate: if paced {
                self.write_bytes_per_second
            } else {
                0
            },
            hurry: self.hurry.clone(),
        };
        // The job travels through a slot the driver can take it back from if no thread starts.
        let slot = Arc::new(std::sync::Mutex::new(Some(job)));
        let theirs = slot.clone();
        let spawned = thread::Builder::new()
            .name(format!("skiff-snapshot-{node}"))
            .spawn(move || {
                let Some(SnapshotJob { mut token, data }) =
                    theirs.lock().ok().and_then(|mut job| job.take())
                else {
                    return;
                };
                lower_priority();
                // A panic while serializing or writing ends in an error, not in a node that
                // waits for this snapshot forever; the token stays out of the closure.
                let result =
                    panic::catch_unwind(AssertUnwindSafe(|| write_file(&mut token, data, &pace)))
                        .unwrap_or_else(|_| Err(io::Error::other("the snapshot thread panicked")));
                let _ = done.send(Written {
                    token,
                    result,
                    started,
                });
                bell.ring();
            });
        let Err(error) = spawned else {
            return Ok(());
        };
        // A failed spawn dropped the closure unrun: the job is still in the slot.
        match slot.lock().ok().and_then(|mut job| job.take()) {
            Some(job) => Err(Box::new((job.token, error))),
            None => Ok(()),
        }
    }
}

/// Creates the token's temporary file afresh, streams the data into it after room for the
/// header (serializing the frozen state a chunk at a time, never holding it whole), seals the
/// header over the bytes written (length and CRC-32C) and writes it at the start; then lets
/// the frozen state go, puts the rest of the file on the disk at `pace`, and syncs.
fn write_file(token: &mut SnapshotToken, data: SnapshotData, pace: &Pace) -> io::Result<()> {
    let temp = token.write().temp_path().to_path_buf();
    match fs::remove_file(&temp) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)?;
    let header_len = token.write().header_len();
    file.seek(SeekFrom::Start(header_len))?;
    // The serializing runs at full speed into the page cache, and the frozen state goes as
    // soon as it is done: every value the node replaced meanwhile stays alive until then, so
    // holding it through the paced writeback would cost memory
    // (docs/benchmarks/rounds-7-to-11.md, "Round eleven").
    let Serialized {
        mut file,
        len,
        crc,
        written_back,
    } = serialize(file, header_len, data, pace.rate > 0)?;
    let header = token.seal_streamed(len, crc);
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&header)?;
    if pace.rate > 0 {
        write_back_paced(&file, written_back, header_len.saturating_add(len), pace);
    }
    file.sync_data()
}

/// How a snapshot file is written back once serialized.
struct Pace {
    /// Bytes a second (0: no sleeping).
    rate: u64,
    /// Set when someone waits for the snapshot: no more sleeping.
    hurry: Arc<AtomicBool>,
}

/// A file serialized: its bytes past the header (how many, their CRC-32C), and how far from
/// the file's start it is written back already.
struct Serialized {
    file: File,
    len: u64,
    crc: u32,
    written_back: u64,
}

/// Streams `data` into `file` from `start`. For a paced writeback afterwards, it writes back
/// (without sleeping) whatever would leave more than [`DIRTY_WINDOW_BYTES`] of the file only in
/// the page cache; otherwise it starts the writeback every [`WRITEBACK_EVERY_BYTES`].
fn serialize(file: File, start: u64, data: SnapshotData, paced: bool) -> io::Result<Serialized> {
    let mut digest = Digest {
        out: BufWriter::with_capacity(CHUNK_BYTES, file),
        start,
        len: 0,
        crc: 0,
        written_back: 0,
        paced,
        writeback_at: WRITEBACK_EVERY_BYTES,
    };
    data.write_to(&mut digest)?;
    let Digest {
        out,
        len,
        crc,
        written_back,
        ..
    } = digest;
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    Ok(Serialized {
        file,
        len,
        crc,
        written_back,
    })
}

/// The bytes between the file and the serializer, and what is written back at a time.
const CHUNK_BYTES: usize = 512 * 1024;

/// The most of a snapshot file left only in the page cache while it is serialized: a large
/// store's file is written back as it goes past this, so that its dirty pages stay bounded
/// (the kernel would otherwise flush them at full speed itself, past its dirty limits).
const DIRTY_WINDOW_BYTES: u64 = 64 * 1024 * 1024;

/// Unpaced, how many bytes of the file are written between two starts of its writeback (so
/// that the final sync does not put the whole store on the disk at once).
const WRITEBACK_EVERY_BYTES: u64 = 8 * 1024 * 1024;

/// How much the snapshot thread's nice value is raised above the node's: its other threads
/// take the CPU first, yet not to the lowest (19) from the default, so that a machine busy
/// with writes still finishes a snapshot in a few times its quiet duration rather than never.
const SNAPSHOT_NICE_STEP: libc::c_int = 10;

/// The highest nice value Linux has.
const LOWEST_PRIORITY_NICE: libc::c_int = 19;

/// Raises the calling thread's nice value by [`SNAPSHOT_NICE_STEP`] (at most to 19): on
/// Linux a nice value is per thread. A refusal only leaves the thread at the node's priority.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: gettid has no preconditions; getpriority and setpriority only read their
    // arguments, and errno is this thread's own.
    let refused = unsafe {
        let thread = libc::gettid() as libc::id_t;
        // -1 is a valid nice value: only errno tells an error.
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, thread);
        if now == -1 && *libc::__errno_location() != 0 {
            true
        } else {
            let lowered = now
                .saturating_add(SNAPSHOT_NICE_STEP)
                .min(LOWEST_PRIORITY_NICE);
            libc::setpriority(libc::PRIO_PROCESS, thread, lowered) != 0
        }
    };
    if refused {
        tracing::debug!(
            error = %io::Error::last_os_error(),
            "the snapshot thread keeps the node's priority"
        );
    }
}

/// Elsewhere a priority may be the whole process's: the thread keeps the node's.
#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// Writes `file`'s bytes from `from` to `to` back to the disk a [`CHUNK_BYTES`] at a time,
/// waiting for each before the next, and sleeps while it is ahead of the pace's rate (never
/// at rate 0 or once hurried). The final `sync_data` is still what makes the file durable.
fn write_back_paced(file: &File, from: u64, to: u64, pace: &Pace) {
    let began = Instant::now();
    let mut offset = from;
    while offset < to {
        let chunk = (to - offset).min(CHUNK_BYTES as u64);
        write_back(file, offset, chunk);
        offset += chunk;
        if pace.hurry.load(Ordering::Relaxed) {
            continue;
        }
        if let Some(ahead) = ahead_of(pace.rate, offset - from, began) {
            thread::sleep(ahead);
        }
    }
}

/// How far ahead of `rate` bytes a second a writer that has written `written` bytes since
/// `began` is (never, at rate 0).
fn ahead_of(rate: u64, written: u64, began: Instant) -> Option<Duration> {
    if rate == 0 {
        return None;
    }
    let due = Duration::from_secs_f64(written as f64 / rate as f64);
    due.checked_sub(began.elapsed())
}

/// Writes `len` bytes of `file` at `offset` back to the disk and waits for them, so that the
/// snapshot reaches the disk at the pace it is written. Only a hint: a refusal is logged.
#[cfg(target_os = "linux")]
fn write_back(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: the descriptor is open for as long as `file` is borrowed; the range is in
    // bounds of what was just written, and the call only writes back dirty pages.
    let refused = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) != 0 };
    if refused {
        tracing::debug!(
            error = %io::Error::last_os_error(),
            "the snapshot file's writeback was refused"
        );
    }
}

/// Elsewhere the final sync writes the whole file.
#[cfg(not(target_os = "linux"))]
fn write_back(_file: &File, _offset: u64, _len: u64) {}

/// Starts the writeback of what `file` holds so far, without waiting for it: the disk then
/// takes the snapshot in steps rather than all at the final sync. Only a hint; the final
/// `sync_data` is what makes the file durable.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File) {
    // SAFETY: the descriptor is open for as long as `file` is borrowed; offset 0 and length 0
    // name the whole file, and SYNC_FILE_RANGE_WRITE only starts writing dirty pages.
    let refused =
        unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) != 0 };
    if refused {
        tracing::debug!(
            error = %io::Error::last_os_error(),
            "the snapshot file's early writeback was refused"
        );
    }
}

/// Elsewhere the final sync writes the whole file.
#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File) {}

/// A writer that counts and checksums the bytes it passes on (what the header is sealed
/// over), and writes the file back as it passes [`DIRTY_WINDOW_BYTES`] unwritten.
struct Digest {
    out: BufWriter<File>,
    /// Where in the file the bytes passed on begin (after the header).
    start: u64,
    len: u64,
    crc: u32,
    /// How far from the file's start it is written back.
    written_back: u64,
    /// Whether a paced writeback follows (else the writeback is started as it goes).
    paced: bool,
    /// Unpaced, the length at which to start the writeback next.
    writeback_at: u64,
}

impl Write for Digest {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.out.write(bytes)?;
        let passed = &bytes[..written.min(bytes.len())];
        self.crc = crc32c::crc32c_append(self.crc, passed);
        self.len = self.len.saturating_add(passed.len() as u64);
        if !self.paced {
            if self.len >= self.writeback_at {
                self.writeback_at = self.len.saturating_add(WRITEBACK_EVERY_BYTES);
                start_writeback(self.out.get_ref());
            }
            return Ok(written);
        }
        // What the buffer holds is not in the file yet.
        let in_file = self
            .start
            .saturating_add(self.len)
            .saturating_sub(self.out.buffer().len() as u64);
        while in_file.saturating_sub(self.written_back) > DIRTY_WINDOW_BYTES {
            write_back(self.out.get_ref(), self.written_back, CHUNK_BYTES as u64);
            self.written_back += CHUNK_BYTES as u64;
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use skiff_kv::Command;
    use skiff_node::{Effect, NoObserver, Node, NodeConfig};
    use skiff_raft::{Config, LogStorage, NodeId, Role};
    use skiff_wal::FsDisk;

    use super::*;

    /// A one-node cluster over `dir`, leading, with `keys` keys written (reopened if `dir`
    /// holds one already).
    fn node_with(dir: &Path, keys: u64) -> Node<FsDisk> {
        let mut config = NodeConfig::new(Config::new(NodeId(1), [NodeId(1)]), 7);
        config.snapshot_every_entries = 0;
        let (mut node, _) = Node::open(FsDisk::new(), dir, config).expect("opens");
        for _ in 0..100 {
            if node.raw().raft().role() == Role::Leader {
                break;
            }
            node.tick();
            node.run(&mut NoObserver).expect("runs");
        }
        for i in 0..keys {
            let (key, value) = (format!("key:{i}").into_bytes(), vec![b'v'; 300]);
            let condition = Default::default();
            node.submit(
                i,
                Command::Set {
                    key,
                    value,
                    condition,
                },
            );
            node.run(&mut NoObserver).expect("runs");
        }
        node.take_effects();
        node
    }

    /// Asks for a snapshot, hands it to the snapshot thread and waits for the outcome.
    fn snapshot(node: &mut Node<FsDisk>, snapshotter: &Snapshotter) -> Written {
        node.request_snapshot().expect("considered");
        let job = node
            .take_effects()
            .into_iter()
            .find_map(|effect| match effect {
                Effect::WriteSnapshot(job) => Some(job),
                _ => None,
            });
        let job = job.expect("a snapshot handed out");
        assert!(job.data.is_frozen());
        let _ = snapshotter.write(1, job, Instant::now(), true);
        let timeout = Duration::from_secs(30);
        snapshotter.done.recv_timeout(timeout).expect("an outcome")
    }

    /// The snapshot thread yields to the node's other threads: its nice value is raised by
    /// SNAPSHOT_NICE_STEP from the node's (at most to 19), and only its own (the thread that
    /// asked keeps its priority).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_snapshot_thread_runs_at_a_lower_priority_than_the_node() {
        let nice_of_this_thread = || {
            // SAFETY: as in lower_priority; getpriority only reads its arguments.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        };
        let before = nice_of_this_thread();
        let lowered = thread::spawn(move || {
            lower_priority();
            nice_of_this_thread()
        })
        .join()
        .unwrap();
        let expected = (before + SNAPSHOT_NICE_STEP).min(LOWEST_PRIORITY_NICE);
        assert_eq!(lowered, expected);
        assert_eq!(nice_of_this_thread(), before);
    }

    /// The paced writeback takes at least the file's length over the rate, and changes no
    /// byte of it; hurried, it no longer sleeps, however slow the rate.
    #[test]
    fn a_paced_writeback_takes_its_time_unless_hurried_and_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paced");
        let bytes: Vec<u8> = (0..(5 * CHUNK_BYTES / 2))
            .map(|k| (k % 253) as u8)
            .collect();
        fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let (len, rate) = (bytes.len() as u64, 8 << 20);
        let pace = |rate, hurry| Pace {
            rate,
            hurry: Arc::new(AtomicBool::new(hurry)),
        };
        let began = Instant::now();
        write_back_paced(&file, 0, len, &pace(rate, false));
        let due = Duration::from_secs_f64(len as f64 / rate as f64);
        assert!(began.elapsed() >= due, "{:?} < {due:?}", began.elapsed());
        assert_eq!(fs::read(&path).unwrap(), bytes);
        assert_eq!(ahead_of(0, len, Instant::now()), None);
        assert!(ahead_of(rate, len, Instant::now()).is_some_and(|ahead| ahead <= due));

        // At one byte a second the first chunk alone would sleep six days: hurried, the
        // whole file is written back at once (a thread and a minute's limit turn a sleep into
        // a failure).
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            write_back_paced(&file, 0, len, &pace(1, true));
            let _ = done.send(());
        });
        outcome
            .recv_timeout(Duration::from_secs(60))
            .expect("a hurried writeback slept");
    }

    /// While serializing, no more than DIRTY_WINDOW_BYTES of the file wait in the page
    /// cache: past it, the file is written back a chunk at a time, in order, from the start.
    #[test]
    fn serializing_writes_back_what_passes_the_dirty_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = File::create(dir.path().join("large")).unwrap();
        file.seek(SeekFrom::Start(100)).unwrap();
        let mut digest = Digest {
            out: BufWriter::with_capacity(CHUNK_BYTES, file),
            start: 100,
            len: 0,
            crc: 0,
            written_back: 0,
            paced: true,
            writeback_at: WRITEBACK_EVERY_BYTES,
        };
        let piece = vec![7u8; 1 << 20];
        for _ in 0..(DIRTY_WINDOW_BYTES >> 20) - 1 {
            digest.write_all(&piece).unwrap();
        }
        assert_eq!(
            digest.written_back, 0,
            "within the window, nothing written back"
        );
        for _ in 0..7 {
            digest.write_all(&piece).unwrap();
        }
        let in_file = 100 + digest.len - digest.out.buffer().len() as u64;
        assert!(digest.written_back > 0);
        assert_eq!(digest.written_back % CHUNK_BYTES as u64, 0);
        assert!(in_file - digest.written_back <= DIRTY_WINDOW_BYTES);
        assert!(digest.written_back <= in_file);
    }

    /// The thread streams the frozen store into the file (many write buffers long) and
    /// seals its header over what it wrote: installed, the node opens again from it. A write
    /// that fails (the temporary file's name is taken by a directory) comes back as an error;
    /// the node abandons it, keeps its old snapshot, goes on, and the next one is written.
    #[test]
    fn a_streamed_snapshot_installs_and_a_failed_one_is_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let (_, inbox) = crate::driver::inbox(1).unwrap();
        let rate = 16 << 20;
        let snapshotter = Snapshotter::new(inbox.bell(), rate);
        let mut node = node_with(dir.path(), 5_000);
        let began = Instant::now();
        let written = snapshot(&mut node, &snapshotter);
        let took = began.elapsed();
        written.result.expect("written and synced");
        let first = node.snapshot_written(written.token).expect("installs");
        assert!(first.is_some());
        let len = node.wal().snapshot_len();
        assert!(len > 2 * CHUNK_BYTES as u64);
        // Paced: the file's bytes past its header took at least their time at the rate.
        let due = Duration::from_secs_f64(len.saturating_sub(4096) as f64 / rate as f64);
        assert!(took >= due, "{len} bytes in {took:?}, {due:?} at the rate");

        node = node_with(dir.path(), 0);
        assert_eq!(
            node.state_machine().len(),
            5_000,
            "reopened from the snapshot"
        );
        node.submit(
            9_999,
            skiff_kv::Command::Del {
                keys: vec![b"key:0".to_vec()],
            },
        );
        node.run(&mut NoObserver).expect("runs");
        node.take_effects();
        let blocked = dir
            .path()
            .join(skiff_wal::snapshot::temp_file_name(node.applied()));
        fs::create_dir(&blocked).unwrap();
        let failed = snapshot(&mut node, &snapshotter);
        assert!(failed.result.is_err());
        node.snapshot_abandoned(failed.token).expect("its token");
        assert_eq!(Some(node.wal().snapshot_meta().index), first);

        fs::remove_dir(&blocked).unwrap();
        let written = snapshot(&mut node, &snapshotter);
        written.result.expect("written and synced");
        assert_eq!(
            node.snapshot_written(written.token).unwrap(),
            Some(node.applied())
        );
        assert_eq!(node_with(dir.path(), 0).state_machine().len(), 4_999);
    }
}
