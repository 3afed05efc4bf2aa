//! A simulated cluster: nodes, network, logical time and an event queue, all driven by one
//! seed. Scenario tests and randomized runs both use this API; the checkers watch every step.
//!
//! Each node is the real [`skiff_node::Node`] over a [`skiff_wal::MemDisk`]. Seven events
//! drive it: `Tick`; `Deliver` (a message reaches its node); `Drive` takes a Ready and sends
//! what may leave before the write; `Persist`, a seeded disk delay later, writes the batch;
//! `Synced` makes it durable, sends what needed durability, applies and answers clients;
//! `SnapshotWritten` installs a snapshot whose file was written meanwhile; `Restart` brings a
//! crashed node back. A crash between `Drive` and `Synced` loses the batch.
//!
//! This file holds the options, the event loop and the driver steps; beside it,
//! `scenario.rs` (waiting for leaders and conditions), `clients.rs` (proposals and key-value
//! requests), `faults.rs` (crashes, restarts, pauses, partitions), `disk_faults.rs` (media
//! damage) and `looking.rs` (accessors, the checkers' verdict, the trace).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use skiff_kv::{Command, Reply, StateMachine};
use skiff_node::{
    Effect, Event as NodeEvent, Node, NodeConfig, PeerMessage, RequestId, SnapshotJob,
};
use skiff_raft::{
    AppendResponse, ConfChange, ConfState, Config, Entry, HardState, LogIndex, LogStorage, Message,
    MessageBody, NodeId, RawNode, Role, Term,
};
use skiff_wal::{MemDisk, Wal, WalOptions};

use crate::checkers::{Checkers, LogView, Violation};
use crate::network::{Network, NetworkOptions, Partition, Route};
use crate::node::{BatchStep, CrashKind, SimNode, SIM_CLUSTER_ID};
use crate::observer::{state_digest, Observed, Recorder};
use crate::trace::{Trace, TraceEvent};
use crate::values::{decode_value, value_command};

mod clients;
mod disk_faults;
mod faults;
mod looking;
mod scenario;

pub use clients::{Proposal, ReadOutcome, Refused, Submitted};

/// How a simulated cluster is set up.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of voters (ids 1..=nodes).
    pub nodes: usize,
    /// The seed every random choice derives from.
    pub seed: u64,
    /// How the network misbehaves.
    pub network: NetworkOptions,
    /// Simulated milliseconds per tick.
    pub tick_ms: u64,
    /// Election timeout in ticks (randomized in [T, 2T)).
    pub election_timeout_ticks: u64,
    /// Heartbeat interval in ticks.
    pub heartbeat_interval_ticks: u64,
    /// PreVote on or off.
    pub pre_vote: bool,
    /// CheckQuorum on or off.
    pub check_quorum: bool,
    /// Lease reads on or off (needs CheckQuorum).
    pub read_lease: bool,
    /// Each node snapshots its state after applying this many entries past its last snapshot
    /// (0: never).
    pub snapshot_every_entries: u64,
    /// Snapshots are prepared by the node (the state machine serialized) and their file
    /// written and installed in a later event, as the server's snapshot thread does, so that
    /// messages, batches, crashes and snapshots from the leader come in between; otherwise a
    /// node takes each snapshot in line.
    pub snapshot_off_thread: bool,
    /// Entries kept in the log below a snapshot.
    pub snapshot_trailing_entries: u64,
    /// Bytes of snapshot data per InstallSnapshot message.
    pub max_snapshot_chunk_bytes: u64,
    /// How long a batch takes to become durable, in milliseconds (uniform in the range).
    pub disk_delay_ms: (u64, u64),
    /// Entries per AppendEntries.
    pub max_append_entries: usize,
    /// A WAL segment file that reaches this size is closed and the next batch starts a new
    /// one (small sizes exercise rollover and the removal of compacted segments).
    pub max_segment_bytes: u64,
    /// Probability that a crash of a node in the middle of a disk write comes while the
    /// batch's bytes are being written (they may survive in part: a torn write) rather than
    /// before the write started.
    pub mid_write_crash_probability: f64,
    /// Node ids up to this may join the cluster through membership changes (ids above
    /// `nodes` start only when added).
    pub pool_size: usize,
    /// Events kept for the report of a violation.
    pub trace_keep: usize,
    /// Print every event as it happens.
    pub print_trace: bool,
}

impl ClusterOptions {
    /// `nodes` voters on a reliable network: 10 ms ticks, 50 ms heartbeats, elections after
    /// 300–600 ms, PreVote and CheckQuorum on, 16 KiB WAL segments.
    pub fn new(nodes: usize) -> ClusterOptions {
        ClusterOptions {
            nodes,
            seed: 1,
            network: NetworkOptions::reliable(),
            tick_ms: 10,
            election_timeout_ticks: 30,
            heartbeat_interval_ticks: 5,
            pre_vote: true,
            check_quorum: true,
            read_lease: false,
            snapshot_every_entries: 0,
            snapshot_off_thread: false,
            snapshot_trailing_entries: 5,
            max_snapshot_chunk_bytes: 1024 * 1024,
            disk_delay_ms: (0, 3),
            max_append_entries: 64,
            max_segment_bytes: 16 * 1024,
            mid_write_crash_probability: 0.5,
            pool_size: nodes,
            trace_keep: 200,
            print_trace: false,
        }
    }

    /// The same with another seed.
    pub fn seed(mut self, seed: u64) -> ClusterOptions {
        self.seed = seed;
        self
    }

    /// The same on the unreliable network of the fault model.
    pub fn unreliable(mut self) -> ClusterOptions {
        self.network = NetworkOptions::unreliable();
        self
    }
}

/// Counters over a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Ticks delivered to running nodes.
    pub ticks: u64,
    /// Times a node became candidate.
    pub elections: u64,
    /// Times a node became leader.
    pub leaders_elected: u64,
    /// Messages put on the network.
    pub messages: u64,
    /// Of those, requests (PreVote, RequestVote, AppendEntries).
    pub requests: u64,
    /// Payload bytes of entries carried by AppendEntries.
    pub entry_bytes_sent: u64,
    /// Messages lost to loss or partitions.
    pub dropped: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Proposals accepted by a leader.
    pub proposals: u64,
    /// AppendEntries rejected by a follower (log mismatch).
    pub append_rejections: u64,
    /// Linearizable reads served.
    pub reads: u64,
    /// Leadership transfers started.
    pub transfers: u64,
    /// Snapshots taken.
    pub snapshots: u64,
    /// Membership changes accepted by a leader.
    pub conf_changes: u64,
    /// Snapshots received from a leader and installed.
    pub snapshot_installs: u64,
    /// Crashes that came in the middle of a disk write (the sync never returned).
    pub mid_write_crashes: u64,
    /// Restarts whose recovery cut a torn write off the log.
    pub torn_tails: u64,
    /// Bits flipped in durable segment files.
    pub bit_flips: u64,
    /// Segment files overwritten by garbage.
    pub segments_garbled: u64,
    /// Segment files lost.
    pub segments_lost: u64,
    /// Restarts refused by the durable log (the node stays down for good).
    pub refused_starts: u64,
    /// Client requests forwarded by a follower to the leader.
    pub forwards: u64,
}

#[derive(Debug)]
enum Event {
    Tick { node: NodeId, life: u64 },
    Deliver(PeerMessage),
    Drive { node: NodeId, life: u64 },
    Persist { node: NodeId, life: u64 },
    Synced { node: NodeId, life: u64 },
    SnapshotWritten { node: NodeId, life: u64 },
    Restart { node: NodeId },
}

#[derive(Debug)]
struct Scheduled {
    at_ms: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // Reversed: the earliest event is the greatest, for a max-heap.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

/// Request ids the cluster gives its own proposals (scenario values and commands), far above
/// those of clients.
const OWN_REQUEST_IDS: RequestId = 1 << 48;

/// The simulated cluster.
pub struct Cluster {
    options: ClusterOptions,
    now_ms: u64,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, SimNode>,
    network: Network,
    rng: ChaCha8Rng,
    /// A stream of its own for how crashes hit the disk, so that scenarios drawing their
    /// faults from [`Cluster::rng`] see the same draws whatever the disk faults drew.
    disk_rng: ChaCha8Rng,
    paused_until_ms: BTreeMap<NodeId, u64>,
    /// Ticks a paused node missed; it catches up on them before anything else when it wakes,
    /// as a process whose timer follows a monotonic clock does.
    missed_ticks: BTreeMap<NodeId, u64>,
    drive_scheduled: BTreeSet<NodeId>,
    /// Snapshot files the nodes asked for and not yet written (`snapshot_off_thread`): one
    /// per node at most, kept across a crash until its event comes.
    pending_snapshots: BTreeMap<NodeId, SnapshotJob>,
    checkers: Checkers,
    violation: Option<Violation>,
    trace: Trace,
    stats: Stats,
    roles: BTreeMap<NodeId, Role>,
    applied_values: BTreeMap<NodeId, Vec<u64>>,
    /// Every numbered value applied anywhere, by index: what a snapshot at an index contains.
    committed_values: BTreeMap<LogIndex, u64>,
    /// Client requests waiting for a reply: request id → the node it was handed to.
    waiting: BTreeMap<RequestId, NodeId>,
    /// Replies to those requests.
    replies: BTreeMap<RequestId, Reply>,
    /// Which of the waiting requests are reads.
    reads: BTreeSet<RequestId>,
    next_own_request: RequestId,
    proposals: Vec<Proposal>,
    hold: Option<MessageFilter>,
    held: Vec<Message>,
    /// The bootstrap configuration every node starts from (later changes come from the log).
    initial_voters: Vec<NodeId>,
}

/// Chooses Raft messages for a scenario to hold back.
pub type MessageFilter = Box<dyn FnMut(&Message) -> bool>;

struct NodeLog<'a>(&'a RawNode<Wal<MemDisk>>);

impl LogView for NodeLog<'_> {
    fn first_index(&self) -> LogIndex {
        self.0.raft().log().first_index()
    }
    fn last_index(&self) -> LogIndex {
        self.0.raft().log().last_index()
    }
    fn entry(&self, index: LogIndex) -> Option<Entry> {
        if index.0 == 0 {
            return None;
        }
        self.0
            .raft()
            .log()
            .entries(index, index.next(), u64::MAX)
            .ok()?
            .pop()
    }
}

/// A node's durable log: what its disk holds, without the core's unstable tail (which may
/// already have been rewritten while a batch was being written).
struct DurableLog<'a>(&'a Wal<MemDisk>);

impl LogView for DurableLog<'_> {
    fn first_index(&self) -> LogIndex {
        self.0.first_index()
    }
    fn last_index(&self) -> LogIndex {
        self.0.last_index()
    }
    fn entry(&self, index: LogIndex) -> Option<Entry> {
        if index.0 == 0 {
            return None;
        }
        self.0.entries(index, index.next(), u64::MAX).ok()?.pop()
    }
}

impl Cluster {
    /// A new cluster; every node starts as a follower at term 0 with an empty log.
    pub fn new(options: ClusterOptions) -> Cluster {
        let ids: Vec<NodeId> = (1..=options.nodes as u64).map(NodeId).collect();
        let mut cluster = Cluster {
            rng: ChaCha8Rng::seed_from_u64(options.seed),
            disk_rng: ChaCha8Rng::seed_from_u64(options.seed ^ 0xD15C_FA17_D15C_FA17),
            network: Network::new(options.network.clone()),
            trace: Trace::new(options.trace_keep, options.print_trace),
            now_ms: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            nodes: BTreeMap::new(),
            paused_until_ms: BTreeMap::new(),
            missed_ticks: BTreeMap::new(),
            drive_scheduled: BTreeSet::new(),
            pending_snapshots: BTreeMap::new(),
            checkers: Checkers::default(),
            violation: None,
            stats: Stats::default(),
            roles: BTreeMap::new(),
            applied_values: BTreeMap::new(),
            committed_values: BTreeMap::new(),
            waiting: BTreeMap::new(),
            replies: BTreeMap::new(),
            reads: BTreeSet::new(),
            next_own_request: OWN_REQUEST_IDS,
            proposals: Vec::new(),
            hold: None,
            held: Vec::new(),
            initial_voters: ids.clone(),
            ids: Vec::new(),
            options,
        };
        for id in ids {
            cluster.start_fresh(id);
        }
        cluster
    }

    /// Starts node `id` for the first time, on an empty disk.
    fn start_fresh(&mut self, id: NodeId) {
        let node = SimNode::start(id.0, self.config_for(id, 0))
            .expect("the simulator's configuration is valid");
        self.nodes.insert(id, node);
        self.roles.insert(id, Role::Follower);
        self.ids.push(id);
        self.start_ticking(id, 0);
    }

    /// The node's settings for its `life`-th start.
    fn config_for(&self, id: NodeId, life: u64) -> NodeConfig {
        let mut raft = Config::new(id, self.initial_voters.iter().copied());
        raft.election_timeout_ticks = self.options.election_timeout_ticks;
        raft.heartbeat_interval_ticks = self.options.heartbeat_interval_ticks;
        raft.pre_vote = self.options.pre_vote;
        raft.check_quorum = self.options.check_quorum;
        raft.read_lease = self.options.read_lease;
        raft.snapshot_trailing_entries = self.options.snapshot_trailing_entries;
        raft.max_snapshot_chunk_bytes = self.options.max_snapshot_chunk_bytes;
        raft.max_append_entries = self.options.max_append_entries;
        raft.seed = self.options.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ (id.0 << 32) ^ life;
        let mut config = NodeConfig::new(raft, SIM_CLUSTER_ID);
        config.wal = WalOptions {
            max_segment_bytes: self.options.max_segment_bytes,
            ..WalOptions::new(SIM_CLUSTER_ID)
        };
        config.snapshot_every_entries = self.options.snapshot_every_entries;
        config
    }

    fn start_ticking(&mut self, id: NodeId, life: u64) {
        let phase = self.rng.gen_range(0..self.options.tick_ms);
        self.schedule(self.now_ms + phase + 1, Event::Tick { node: id, life });
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at_ms,
            seq: self.seq,
            event,
        });
    }

    // ---- running ----

    /// Simulated milliseconds since the start.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Runs for `ms` simulated milliseconds (stops early on a violation).
    pub fn run_for(&mut self, ms: u64) {
        let end = self.now_ms + ms;
        while self.violation.is_none() && self.step_until(end) {}
        self.now_ms = self.now_ms.max(end);
    }

    /// Runs until `done` holds (checked after every event) or `budget_ms` passes.
    /// Returns whether `done` held.
    pub fn run_until(&mut self, budget_ms: u64, mut done: impl FnMut(&Cluster) -> bool) -> bool {
        let end = self.now_ms + budget_ms;
        loop {
            if done(self) {
                return true;
            }
            if self.violation.is_some() || !self.step_until(end) {
                self.now_ms = self.now_ms.max(end);
                return done(self);
            }
        }
    }

    /// Handles the next event if it is due by `end_ms`. Returns whether one was handled.
    fn step_until(&mut self, end_ms: u64) -> bool {
        match self.queue.peek() {
            Some(next) if next.at_ms <= end_ms => {}
            _ => return false,
        }
        let Scheduled { at_ms, event, .. } = self.queue.pop().expect("peeked");
        self.now_ms = at_ms;
        match event {
            Event::Tick { node, life } => self.on_tick(node, life),
            Event::Deliver(message) => self.on_deliver(message),
            Event::Drive { node, life } => self.on_drive(node, life),
            Event::Persist { node, life } => self.on_persist(node, life),
            Event::Synced { node, life } => self.on_synced(node, life),
            Event::SnapshotWritten { node, life } => self.on_snapshot_written(node, life),
            Event::Restart { node } => self.restart(node),
        }
        true
    }

    fn paused_until(&self, node: NodeId) -> Option<u64> {
        self.paused_until_ms
            .get(&node)
            .copied()
            .filter(|&until| until > self.now_ms)
    }

    fn is_current_life(&self, node: NodeId, life: u64) -> bool {
        self.nodes
            .get(&node)
            .is_some_and(|n| n.is_up() && n.incarnation == life)
    }

    fn running_mut(&mut self, node: NodeId) -> Option<&mut Node<MemDisk>> {
        self.nodes.get_mut(&node).and_then(SimNode::running_mut)
    }

    fn running(&self, node: NodeId) -> Option<&Node<MemDisk>> {
        self.nodes.get(&node).and_then(SimNode::running)
    }

    fn on_tick(&mut self, node: NodeId, life: u64) {
        if !self.is_current_life(node, life) {
            return;
        }
        self.schedule(
            self.now_ms + self.options.tick_ms,
            Event::Tick { node, life },
        );
        if self.paused_until(node).is_some() {
            *self.missed_ticks.entry(node).or_insert(0) += 1;
            return;
        }
        self.catch_up(node);
        if let Some(running) = self.running_mut(node) {
            running.tick();
            self.stats.ticks += 1;
            self.mark_dirty(node);
        }
    }

    /// A node that was paused first notices the time that passed.
    fn catch_up(&mut self, node: NodeId) {
        let Some(missed) = self.missed_ticks.remove(&node) else {
            return;
        };
        if let Some(running) = self.running_mut(node) {
            for _ in 0..missed {
                running.tick();
            }
            self.stats.ticks += missed;
            self.mark_dirty(node);
        }
    }

    fn on_deliver(&mut self, message: PeerMessage) {
        let to = message.to();
        if let Some(until) = self.paused_until(to) {
            self.schedule(until, Event::Deliver(message));
            return;
        }
        self.catch_up(to);
        let Some(running) = self.running_mut(to) else {
            self.trace
                .record(self.now_ms, TraceEvent::Drop(message, "receiver down"));
            self.stats.dropped += 1;
            return;
        };
        let result = running.step(message.clone());
        self.trace.record(self.now_ms, TraceEvent::Deliver(message));
        if let Err(err) = result {
            self.trace.record(
                self.now_ms,
                TraceEvent::Note(format!("{to} refused a message: {err}")),
            );
        }
        self.drain(to);
        self.mark_dirty(to);
    }

    /// The core has work: take its next Ready now, unless a batch is still being written
    /// (then the end of that write looks again).
    fn mark_dirty(&mut self, node: NodeId) {
        let Some(sim_node) = self.nodes.get(&node) else {
            return;
        };
        if !sim_node.is_writing() && self.drive_scheduled.insert(node) {
            let life = sim_node.incarnation;
            self.schedule(self.now_ms, Event::Drive { node, life });
        }
    }

    /// First step of a batch: take a Ready, send what may go at once; the write comes a
    /// seeded disk delay later.
    fn on_drive(&mut self, node: NodeId, life: u64) {
        if !self.runs_now(node, life, Event::Drive { node, life }) {
            return;
        }
        self.drive_scheduled.remove(&node);
        let began = self.running_mut(node).is_some_and(Node::begin_batch);
        if !began {
            return;
        }
        self.drain(node);
        self.check_log_settled(node);
        let (low, high) = self.options.disk_delay_ms;
        let delay = self.rng.gen_range(low..=high);
        self.schedule(self.now_ms + delay, Event::Persist { node, life });
    }

    /// Second step, when the disk write reaches the file: the batch is written, and the
    /// entries durable before it are applied. Its sync completes in a later event, as on a
    /// server that syncs on a writer thread; other events may come in between.
    fn on_persist(&mut self, node: NodeId, life: u64) {
        if !self.runs_now(node, life, Event::Persist { node, life }) {
            return;
        }
        let Some(BatchStep::Write(token)) = self.take_batch_step(node) else {
            return;
        };
        let mut recorder = Recorder::default();
        let Some(running) = self.running_mut(node) else {
            return;
        };
        if let Err(error) = running.write_batch(token, &mut recorder) {
            self.record_violation(Violation {
                property: "Durable Log",
                detail: format!("{node} could not write a batch: {error}"),
            });
            return;
        }
        self.observe(node, recorder.observed);
        self.drain(node);
        let (low, high) = self.options.disk_delay_ms;
        let delay = self.rng.gen_range(0..=(high - low) / 2);
        self.schedule(self.now_ms + delay, Event::Synced { node, life });
    }

    /// The batch's sync completed: send what needed durability, apply the rest, answer
    /// clients, advance; then write the snapshot the node asked for, in line or (with
    /// `snapshot_off_thread`) in a later event.
    fn on_synced(&mut self, node: NodeId, life: u64) {
        if !self.runs_now(node, life, Event::Synced { node, life }) {
            return;
        }
        let Some(BatchStep::Sync(token)) = self.take_batch_step(node) else {
            return;
        };
        let in_line = !self.options.snapshot_off_thread;
        let mut recorder = Recorder::default();
        let Some(running) = self.running_mut(node) else {
            return;
        };
        let mut effects = Vec::new();
        let finished = running.sync_batch(token, &mut recorder).and_then(|()| {
            effects = running.take_effects();
            match take_snapshot_job(&mut effects) {
                // A node without a snapshot thread writes it before anything else.
                Some(job) if in_line => {
                    running.write_snapshot(job)?;
                    effects.extend(running.take_effects());
                    Ok(None)
                }
                job => Ok(job),
            }
        });
        let job = match finished {
            Ok(job) => job,
            Err(error) => {
                // The simulated disk fails only when a fault asks it to; none is asked here.
                self.record_violation(Violation {
                    property: "Durable Log",
                    detail: format!("{node} could not finish a batch: {error}"),
                });
                return;
            }
        };
        self.observe(node, recorder.observed);
        self.carry_out(node, effects);
        self.check_log_settled(node);
        if let Some(job) = job {
            self.schedule_snapshot_write(node, life, job);
        }
        self.mark_dirty(node);
    }

    /// With `snapshot_off_thread`: the snapshot file is written and installed in a later
    /// event, as the server's snapshot thread does, so that messages, batches, crashes and
    /// snapshots from the leader come in between. One is written at a time: while a file
    /// of an earlier life is still pending, the node's new one is abandoned.
    fn schedule_snapshot_write(&mut self, node: NodeId, life: u64, job: SnapshotJob) {
        if self.pending_snapshots.contains_key(&node) {
            if let Some(running) = self.running_mut(node) {
                let _ = running.snapshot_abandoned(job.token);
            }
            return;
        }
        self.pending_snapshots.insert(node, job);
        let (low, high) = self.options.disk_delay_ms;
        let delay = self.rng.gen_range(low..=high);
        self.schedule(self.now_ms + delay, Event::SnapshotWritten { node, life });
    }

    /// The snapshot file the node asked for is written and synced: install it.
    fn on_snapshot_written(&mut self, node: NodeId, life: u64) {
        if !self.is_current_life(node, life) {
            // The node crashed meanwhile: the write never happened.
            self.pending_snapshots.remove(&node);
            return;
        }
        if !self.runs_now(node, life, Event::SnapshotWritten { node, life }) {
            return;
        }
        let Some(job) = self.pending_snapshots.remove(&node) else {
            return;
        };
        let Some(running) = self.running_mut(node) else {
            return;
        };
        if let Err(error) = running.write_snapshot(job) {
            self.record_violation(Violation {
                property: "Durable Log",
                detail: format!(
                    "{node} could not install a snapshot written off its driver: {error}"
                ),
            });
            return;
        }
        self.drain(node);
        self.mark_dirty(node);
    }

    /// The I/O step `node`'s batch waits for, taken to be carried out.
    fn take_batch_step(&mut self, node: NodeId) -> Option<BatchStep> {
        self.nodes.get_mut(&node).and_then(|n| n.batch.take())
    }

    /// Whether an event of `node`'s `life` runs now: not if the node crashed since, and not
    /// yet if it is paused (`again` is scheduled for when it wakes). A node that runs first
    /// catches up on the ticks it missed.
    fn runs_now(&mut self, node: NodeId, life: u64, again: Event) -> bool {
        if !self.is_current_life(node, life) {
            return false;
        }
        if let Some(until) = self.paused_until(node) {
            self.schedule(until, again);
            return false;
        }
        self.catch_up(node);
        true
    }

    /// Feeds the checkers what `node` reported durable and applied during one `finish`.
    fn observe(&mut self, node: NodeId, observed: Vec<Observed>) {
        let Some(running) = self.nodes.get(&node).and_then(SimNode::running) else {
            return;
        };
        let raw = running.raw();
        // A batch is judged against the log it was written to: the durable one.
        let log = DurableLog(running.wal());
        let term_now = raw.raft().term();
        let mut result = Ok(());
        let mut installed = None;
        let mut applied = Vec::new();
        for fact in &observed {
            match fact {
                Observed::SnapshotInstalled { meta, state } => {
                    result = result.and(self.checkers.restored(node, meta.index, *state));
                    installed = Some(meta.index);
                }
                Observed::Persisted {
                    entries,
                    hard_state,
                } => {
                    if !entries.is_empty() {
                        result = result.and(self.checkers.persisted_entries(node, entries, &log));
                    }
                    if let Some(hard_state) = hard_state {
                        result =
                            result.and(self.checkers.persisted_commit(node, hard_state.commit));
                    }
                }
                Observed::Applied { entry, state, .. } => {
                    result = result.and(self.checkers.applied(node, term_now, entry, *state));
                    applied.push(entry);
                }
            }
        }
        if let Some(index) = installed {
            self.trace.record(
                self.now_ms,
                TraceEvent::Note(format!("{node} installed the snapshot at {index}")),
            );
            self.restore_values(node, index);
        }
        for entry in applied {
            if let Some(value) = decode_value(entry) {
                self.committed_values.insert(entry.index, value);
                self.applied_values.entry(node).or_default().push(value);
            }
        }
        if let Err(violation) = result {
            self.record_violation(violation);
        }
    }

    /// After a driver pass: a sitting leader's log only grew.
    fn check_log_settled(&mut self, node: NodeId) {
        let Some(running) = self.nodes.get(&node).and_then(SimNode::running) else {
            return;
        };
        let raw = running.raw();
        let (term, is_leader) = (raw.raft().term(), raw.raft().role() == Role::Leader);
        if let Err(violation) = self
            .checkers
            .log_settled(node, term, is_leader, &NodeLog(raw))
        {
            self.record_violation(violation);
        }
    }

    /// Carries out what `node` asked for since the last time.
    fn drain(&mut self, node: NodeId) {
        let Some(running) = self.running_mut(node) else {
            return;
        };
        let effects = running.take_effects();
        self.carry_out(node, effects);
    }

    /// Carries out `node`'s effects: events are noted and checked, then messages go on the
    /// network, then replies go to the clients waiting for them; the batch's next I/O step
    /// is kept for the event that runs it.
    fn carry_out(&mut self, node: NodeId, effects: Vec<Effect>) {
        let mut messages = Vec::new();
        let mut replies = Vec::new();
        for effect in effects {
            match effect {
                Effect::Event(event) => self.on_node_event(node, event),
                Effect::Send(message) => messages.push(message),
                Effect::Reply(id, reply) => replies.push((id, reply)),
                Effect::WriteBatch(token) => self.keep_batch_step(node, BatchStep::Write(token)),
                Effect::SyncBatch(token) => self.keep_batch_step(node, BatchStep::Sync(token)),
                Effect::WriteSnapshot(job) => {
                    // Only the end of a batch hands one out, and `on_synced` takes it there.
                    if let Some(running) = self.running_mut(node) {
                        let _ = running.snapshot_abandoned(job.token);
                    }
                }
            }
        }
        for message in messages {
            self.send(message);
        }
        for (id, reply) in replies {
            if self.waiting.get(&id) == Some(&node) {
                self.waiting.remove(&id);
                if self.reads.remove(&id) && !reply.is_error() {
                    self.stats.reads += 1;
                }
                self.replies.insert(id, reply);
            }
        }
    }

    fn keep_batch_step(&mut self, node: NodeId, step: BatchStep) {
        if let Some(sim_node) = self.nodes.get_mut(&node) {
            sim_node.batch = Some(step);
        }
    }

    fn on_node_event(&mut self, node: NodeId, event: NodeEvent) {
        match event {
            NodeEvent::RoleChanged { soft_state, term } => {
                let previous = self.roles.insert(node, soft_state.role);
                self.trace.record(
                    self.now_ms,
                    TraceEvent::Role {
                        node,
                        term,
                        role: soft_state.role,
                        leader: soft_state.leader,
                    },
                );
                if previous == Some(Role::Leader) && soft_state.role != Role::Leader {
                    self.checkers.left_leadership(node);
                }
                match soft_state.role {
                    Role::Candidate if previous != Some(Role::Candidate) => {
                        self.stats.elections += 1
                    }
                    Role::Leader if previous != Some(Role::Leader) => {
                        self.stats.leaders_elected += 1;
                        let Some(running) = self.nodes.get(&node).and_then(SimNode::running) else {
                            return;
                        };
                        let log = NodeLog(running.raw());
                        if let Err(violation) = self.checkers.became_leader(node, term, &log) {
                            self.record_violation(violation);
                        }
                    }
                    _ => {}
                }
            }
            NodeEvent::SnapshotTaken { index } => {
                self.stats.snapshots += 1;
                self.trace.record(
                    self.now_ms,
                    TraceEvent::Note(format!("{node} took a snapshot at {index}")),
                );
            }
            NodeEvent::SnapshotInstalled { .. } => self.stats.snapshot_installs += 1,
            NodeEvent::ConfChangeApplied { index } => self.trace.record(
                self.now_ms,
                TraceEvent::Note(format!(
                    "{node} applied the configuration change at {index}"
                )),
            ),
            NodeEvent::SnapshotChunkReceived { .. } | NodeEvent::SnapshotSkipped { .. } => {}
            NodeEvent::MemberAddressRecorded { id } => self.trace.record(
                self.now_ms,
                TraceEvent::Note(format!("{node} recorded the address of {id}")),
            ),
        }
    }

    /// `node`'s state machine restarted from a snapshot at `index`: it holds the effect of
    /// every numbered value applied up to `index`.
    fn restore_values(&mut self, node: NodeId, index: LogIndex) {
        let values = self
            .committed_values
            .range(..=index)
            .map(|(_, &value)| value)
            .collect();
        self.applied_values.insert(node, values);
    }

    /// Records a violation found outside the checkers (liveness, end-of-run checks).
    pub fn report_violation(&mut self, violation: Violation) {
        self.record_violation(violation);
    }

    fn record_violation(&mut self, violation: Violation) {
        self.trace.record(
            self.now_ms,
            TraceEvent::Note(format!("VIOLATION {violation}")),
        );
        if self.violation.is_none() {
            self.violation = Some(violation);
        }
    }

    fn send(&mut self, message: PeerMessage) {
        if let PeerMessage::Raft(raft) = &message {
            if let Err(violation) = self.checkers.sent(raft) {
                self.record_violation(violation);
            }
        }
        if let (Some(hold), PeerMessage::Raft(raft)) = (self.hold.as_mut(), &message) {
            if hold(raft) {
                self.trace
                    .record(self.now_ms, TraceEvent::Note(format!("held back: {raft}")));
                self.held.push(raft.clone());
                return;
            }
        }
        self.stats.messages += 1;
        let is_request = match &message {
            PeerMessage::Raft(raft) => {
                if matches!(
                    raft.body,
                    MessageBody::AppendEntriesResponse {
                        result: AppendResponse::Rejected { .. },
                        ..
                    }
                ) {
                    self.stats.append_rejections += 1;
                }
                if raft.body.is_request() {
                    self.stats.requests += 1;
                }
                self.stats.entry_bytes_sent += raft.entries_bytes();
                raft.body.is_request()
            }
            PeerMessage::Forward { .. } => {
                self.stats.forwards += 1;
                true
            }
            PeerMessage::ForwardReply { .. } => false,
        };
        // Raft tolerates duplicated messages; a forwarded write carries no client session, so
        // forwards travel as on one connection, which never delivers a message twice.
        let may_duplicate = matches!(message, PeerMessage::Raft(_));
        let route = self.network.route(
            message.from(),
            message.to(),
            is_request,
            may_duplicate,
            &mut self.rng,
        );
        match route {
            Route::Lost(why) => {
                self.stats.dropped += 1;
                self.trace
                    .record(self.now_ms, TraceEvent::Drop(message, why));
            }
            Route::Deliver(delays) => {
                for delay in delays {
                    self.schedule(self.now_ms + delay, Event::Deliver(message.clone()));
                }
            }
        }
    }

    /// From now on, Raft messages for which `filter` holds are kept back instead of sent.
    pub fn hold_messages(&mut self, filter: impl FnMut(&Message) -> bool + 'static) {
        self.hold = Some(Box::new(filter));
    }

    /// Stops holding messages back; returns those held so far.
    pub fn stop_holding(&mut self) -> Vec<Message> {
        self.hold = None;
        std::mem::take(&mut self.held)
    }

    /// Delivers `message` after `delay_ms`, bypassing loss and partitions (a late arrival).
    pub fn deliver_later(&mut self, message: Message, delay_ms: u64) {
        self.schedule(
            self.now_ms + delay_ms,
            Event::Deliver(PeerMessage::Raft(message)),
        );
    }
}

/// Takes the snapshot file a node asked for out of its effects.
fn take_snapshot_job(effects: &mut Vec<Effect>) -> Option<SnapshotJob> {
    let at = effects
        .iter()
        .position(|effect| matches!(effect, Effect::WriteSnapshot(_)))?;
    match effects.remove(at) {
        Effect::WriteSnapshot(job) => Some(job),
        _ => unreachable!("found above"),
    }
}
