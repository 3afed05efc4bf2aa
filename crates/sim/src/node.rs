//! One simulated node: a [`MemDisk`] that outlives every crash, and the real
//! [`skiff_node::Node`] running over it while the process is up.
//!
//! A crash takes the disk back from the node ([`Node::into_disk`]) and applies the disk's
//! crash model: unsynced writes are lost, or a prefix of them survives (a torn write). A
//! restart opens the node again on the same disk and directory, so recovery sees exactly
//! what the crash left. A node whose durable log refuses to open stays down for good, as an
//! operator would replace it rather than start it on a damaged disk.

use std::path::{Path, PathBuf};

use rand::Rng;
use skiff_node::{BatchToken, Effect, NoObserver, Node, NodeConfig, NodeError, SyncToken};
use skiff_raft::{Entry, HardState, LogIndex, LogStorage};
use skiff_wal::{record, Disk, MemDisk, RecoveryReport, Wal, WalOptions};

/// Where each node keeps its durable log on its disk.
pub fn data_dir(id: u64) -> PathBuf {
    PathBuf::from(format!("/skiff/n{id}"))
}

/// Whether `name` is a WAL segment file.
fn is_segment(name: &str) -> bool {
    name.starts_with("seg-") && name.ends_with(".wal")
}

/// How a crash treats the write in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashKind {
    /// The process dies between two writes: a batch not yet written is simply lost.
    BetweenWrites,
    /// The process dies in the middle of writing its batch: the bytes reached the page cache
    /// but the sync never returned, so none of them is promised to be durable.
    MidWrite,
}

/// What the process of one simulated node is doing.
#[derive(Debug)]
enum Process {
    /// Running: the node owns the disk.
    Up(Box<Node<MemDisk>>),
    /// Crashed, waiting for a restart.
    Down(MemDisk),
    /// Its durable log refused to open: it stays down for the rest of the run.
    Refused {
        /// Why the log refused.
        error: String,
    },
}

/// The durable state a node's disk holds, as recovery would find it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    /// The last hard state written.
    pub hard_state: HardState,
    /// The first index the log holds (entries before it are in the snapshot).
    pub first_index: LogIndex,
    /// The last index the log holds.
    pub last_index: LogIndex,
    /// The snapshot's last included index (0: none).
    pub snapshot_index: LogIndex,
    /// The bytes of log entries and snapshot data.
    pub bytes: u64,
}

impl Durable {
    fn of(wal: &Wal<MemDisk>) -> Durable {
        let (first, last) = (wal.first_index(), wal.last_index());
        let entries = wal
            .entries(first, last.next(), u64::MAX)
            .unwrap_or_default();
        Durable {
            hard_state: wal.hard_state(),
            first_index: first,
            last_index: last,
            snapshot_index: wal.snapshot_meta().index,
            bytes: entries.iter().map(Entry::size_bytes).sum::<u64>() + wal.snapshot_len(),
        }
    }
}

/// The I/O step the batch in flight waits for, with the token that ends it.
#[derive(Debug)]
pub enum BatchStep {
    /// The batch is begun: it waits to be written.
    Write(BatchToken),
    /// The batch is written: it waits for its sync.
    Sync(SyncToken),
}

/// A simulated node: its disk and its process.
#[derive(Debug)]
pub struct SimNode {
    id: u64,
    process: Process,
    /// The running node's batch in flight, as its last effect asked.
    pub batch: Option<BatchStep>,
    /// Incremented at each start, so events scheduled for an earlier life are ignored.
    pub life: u64,
    /// Whether this node's durable log was damaged (media corruption): a restart may refuse.
    pub corrupted: bool,
    /// What the disk held durably before a segment was garbled or lost, if one was: a
    /// restart must refuse, or recover exactly this (a lost segment that a compaction had
    /// already covered changes nothing).
    pub durable_before_damage: Option<Durable>,
    /// The disk was replaced by an empty one while the node was down: its next start is a
    /// first start (a new log and a new incarnation).
    wiped: bool,
    /// The incarnation of the node's data directory when it last ran.
    pub dir_incarnation: u64,
}

/// Damage to a crashed node's segment files, outside what a crash can do (docs/TESTING.md,
/// "Disk faults").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskDamage {
    /// One bit flipped.
    BitFlip,
    /// A whole segment file overwritten by random bytes.
    GarbageSegment,
    /// A segment file lost: one before the last, or the only one.
    LostSegment,
}

impl SimNode {
    /// A node that has never run, started on an empty disk.
    pub fn start(id: u64, config: NodeConfig) -> Result<SimNode, NodeError> {
        let (node, _report) = Node::open(MemDisk::new(), data_dir(id), config)?;
        Ok(SimNode {
            wiped: false,
            dir_incarnation: node.incarnation(),
            id,
            process: Process::Up(Box::new(node)),
            batch: None,
            life: 0,
            corrupted: false,
            durable_before_damage: None,
        })
    }

    /// The running node, if the process is up.
    pub fn running(&self) -> Option<&Node<MemDisk>> {
        match &self.process {
            Process::Up(node) => Some(node),
            _ => None,
        }
    }

    /// The running node, mutably.
    pub fn running_mut(&mut self) -> Option<&mut Node<MemDisk>> {
        match &mut self.process {
            Process::Up(node) => Some(node),
            _ => None,
        }
    }

    /// Whether the process is running.
    pub fn is_up(&self) -> bool {
        matches!(self.process, Process::Up(_))
    }

    /// Why the node's durable log refused to open, if it did: it stays down for good.
    pub fn refusal(&self) -> Option<&str> {
        match &self.process {
            Process::Refused { error } => Some(error),
            _ => None,
        }
    }

    /// Whether a batch is in flight (begun and not yet synced).
    pub fn is_writing(&self) -> bool {
        self.running().is_some_and(Node::is_writing)
    }

    /// Crashes the process. With [`CrashKind::MidWrite`] and a batch in progress, the node's
    /// driver runs its write until the sync, which never returns; otherwise the batch is lost
    /// whole. Then the disk forgets what was not synced, keeping `keep(file, unsynced_bytes)`
    /// bytes of each file's unsynced tail (a torn write). Returns whether the process was up.
    pub fn crash(&mut self, kind: CrashKind, keep: impl FnMut(&Path, u64) -> u64) -> bool {
        let placeholder = Process::Refused {
            error: String::new(),
        };
        let mut node = match std::mem::replace(&mut self.process, placeholder) {
            Process::Up(node) => node,
            other => {
                self.process = other;
                return false;
            }
        };
        let batch = self.batch.take();
        if kind == CrashKind::MidWrite && node.is_writing() {
            node.disk_mut().set_syncs_fail(true);
            // The sync fails, so the driver stops before anything leaves or is applied; the
            // dying process's effects are discarded with it.
            write_until_the_sync(&mut node, batch);
        }
        let mut disk = node.into_disk();
        disk.set_syncs_fail(false);
        disk.crash_tearing(keep);
        self.process = Process::Down(disk);
        true
    }

    /// Starts the crashed process again on its disk with `config` (`None` unless it is down).
    /// If its durable log refuses to open, the node stays down for good and the error is
    /// returned.
    pub fn restart(&mut self, config: NodeConfig) -> Option<Result<RecoveryReport, String>> {
        let placeholder = Process::Refused {
            error: String::new(),
        };
        let disk = match std::mem::replace(&mut self.process, placeholder) {
            Process::Down(disk) => disk,
            other => {
                self.process = other;
                return None;
            }
        };
        self.life += 1;
        // The node has run, so its log must be there: a lost log must not read as a new one
        // at term 0 with no vote (thesis §3.8), as the server's identity file ensures.
        let mut config = config;
        config.wal.expect_existing_log = !std::mem::take(&mut self.wiped);
        self.batch = None;
        match Node::open(disk, data_dir(self.id), config) {
            Ok((node, report)) => {
                self.dir_incarnation = node.incarnation();
                self.process = Process::Up(Box::new(node));
                Some(Ok(report))
            }
            Err(error) => {
                let error = error.to_string();
                self.process = Process::Refused {
                    error: error.clone(),
                };
                Some(Err(error))
            }
        }
    }

    /// Replaces the disk of a crashed node by an empty one, as an operator who deleted its data
    /// directory (or replaced the machine) and started it again with its first-start settings
    /// would. Returns whether the node was down.
    pub fn wipe(&mut self) -> bool {
        let Process::Down(disk) = &mut self.process else {
            return false;
        };
        *disk = MemDisk::new();
        self.wiped = true;
        self.corrupted = false;
        self.durable_before_damage = None;
        true
    }

    /// Whether the node is down and may be restarted.
    pub fn is_down(&self) -> bool {
        matches!(self.process, Process::Down(_))
    }

    /// What the disk holds durably. For a running node that is its log (every write is
    /// synced before `finish` returns); for a crashed one, what recovery will find.
    pub fn durable(&self) -> Durable {
        match &self.process {
            Process::Up(node) => Durable::of(node.wal()),
            Process::Down(disk) => {
                let options = WalOptions::new(SIM_CLUSTER_ID);
                match Wal::open(disk.clone(), data_dir(self.id), options) {
                    Ok((wal, _)) => Durable::of(&wal),
                    Err(_) => Durable::default(),
                }
            }
            Process::Refused { .. } => Durable::default(),
        }
    }

    /// Flips one bit of the durable contents of a segment file of a crashed node: the byte
    /// at `pick(total)` of the `total` bytes that may be hit, taken in file order. With
    /// `spare_final_batch`, the last segment's final write batch is never hit unless the
    /// segment is sealed (see docs/TESTING.md: in a file written new, recovery cannot tell
    /// damage there from a torn write). Returns the file and offset.
    pub fn flip_segment_bit(
        &mut self,
        spare_final_batch: bool,
        pick: impl FnOnce(u64) -> u64,
    ) -> Option<(PathBuf, u64)> {
        let Process::Down(disk) = &mut self.process else {
            return None;
        };
        let dir = data_dir(self.id);
        let mut names = disk.list(&dir).ok()?;
        names.retain(|name| is_segment(name));
        names.sort();
        let last = names.len().checked_sub(1)?;
        let mut files: Vec<(PathBuf, u64)> = Vec::with_capacity(names.len());
        for (k, name) in names.iter().enumerate() {
            let path = dir.join(name);
            let len = if k == last && spare_final_batch {
                spared_from(&disk.read_all(&path).ok()?)
            } else {
                disk.len(&path).ok()?
            };
            files.push((path, len));
        }
        let total: u64 = files.iter().map(|(_, len)| len).sum();
        if total == 0 {
            return None;
        }
        let mut offset = pick(total);
        for (path, len) in files {
            if offset < len {
                disk.flip_bit(&path, offset).ok()?;
                self.corrupted = true;
                return Some((path, offset));
            }
            offset -= len;
        }
        None
    }

    /// The segment files of a crashed node, oldest first, with its disk.
    fn down_segments(&mut self) -> Option<(&mut MemDisk, Vec<PathBuf>)> {
        let Process::Down(disk) = &mut self.process else {
            return None;
        };
        let dir = data_dir(self.id);
        let mut names = disk.list(&dir).ok()?;
        names.retain(|name| is_segment(name));
        names.sort();
        let files = names.iter().map(|name| dir.join(name)).collect();
        Some((disk, files))
    }

    /// Overwrites one segment file of a crashed node — any of them, the last included — with
    /// random bytes of the same length. Returns the file.
    pub fn garble_segment(&mut self, rng: &mut impl Rng) -> Option<PathBuf> {
        let before = self.durable();
        let (disk, files) = self.down_segments()?;
        let file = files.get(rng.gen_range(0..files.len().max(1)))?.clone();
        let mut garbage = vec![0; disk.len(&file).ok()?.max(1) as usize];
        rng.fill(&mut garbage[..]);
        // Random bytes, but never all zeros (which read as a segment never written).
        garbage[0] |= 1;
        disk.replace_contents(&file, &garbage).ok()?;
        self.corrupted = true;
        self.durable_before_damage = Some(before);
        Some(file)
    }

    /// Loses one segment file of a crashed node: one before the last, or the only one. (A
    /// lost last segment of several cannot be seen by the log alone and is outside the fault
    /// model: see the WAL's `recovery` module and docs/TESTING.md.) Returns the file.
    pub fn lose_segment(&mut self, rng: &mut impl Rng) -> Option<PathBuf> {
        let before = self.durable();
        let (disk, files) = self.down_segments()?;
        let candidates = files.len().saturating_sub(1).max(1);
        let file = files.get(rng.gen_range(0..candidates))?.clone();
        disk.lose_file(&file).ok()?;
        self.corrupted = true;
        self.durable_before_damage = Some(before);
        Some(file)
    }
}

/// Runs the batch in flight of a dying node up to its sync (written first if it was only
/// begun); the sync is made to fail, so the node stops there.
fn write_until_the_sync(node: &mut Node<MemDisk>, batch: Option<BatchStep>) {
    let sync = match batch {
        Some(BatchStep::Write(token)) => {
            if node.write_batch(token).is_err() {
                return;
            }
            node.take_effects()
                .into_iter()
                .find_map(|effect| match effect {
                    Effect::SyncBatch(token) => Some(token),
                    _ => None,
                })
        }
        Some(BatchStep::Sync(token)) => Some(token),
        None => None,
    };
    if let Some(token) = sync {
        let _ = node.sync_batch(token, &mut NoObserver);
    }
}

/// Where the bytes a flip must spare begin in a last segment's `bytes`: its last complete
/// write batch, which recovery cannot tell from a torn write in a file written new (0 when
/// the segment holds a single batch, its header). A sealed (recycled) segment spares none of
/// this life's bytes: the seal after each batch shows that its write completed, so a flipped
/// bit in a record is refused, and one in a seal is harmless (the earlier life's bytes after
/// them, harmless too, are left out so that flips land on this life's).
fn spared_from(bytes: &[u8]) -> u64 {
    let mut seal = None;
    let (mut batch_start, mut final_start, mut records_end) = (0usize, 0usize, 0usize);
    for (at, decoded) in record::segment_records(bytes) {
        if let record::Record::SegmentHeader(header) = &decoded.record {
            if at == 0 && header.sealed {
                seal = Some(record::batch_seal(header.mask));
            }
        }
        records_end = at + decoded.frame_bytes;
        if decoded.ends_batch {
            final_start = batch_start;
            batch_start = records_end;
        }
    }
    match seal {
        Some(seal) if bytes[records_end..].starts_with(&seal) => (records_end + seal.len()) as u64,
        Some(_) => records_end as u64,
        None => final_start as u64,
    }
}

/// The cluster id every simulated node's log is written with.
pub const SIM_CLUSTER_ID: u64 = 0x5eed;
