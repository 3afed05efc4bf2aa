//! A simulated cluster: nodes, network, logical time and an event queue, all driven by one
//! seed. Scenario tests and randomized runs both use this API; the checkers watch every step.
//!
//! Each node is the real [`skiff_node::Node`] over a [`skiff_wal::MemDisk`]. The driver's two
//! halves are two events: `Drive` calls [`Node::begin`] (a Ready is taken and the messages
//! that may leave before the write go out), and `Persist`, a seeded disk delay later, calls
//! [`Node::finish`] (the batch is synced, then what needed durability goes out, committed
//! entries are applied and clients answered). A crash in between loses the batch.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use skiff_kv::{Command, Reply, StateMachine};
use skiff_node::{Event as NodeEvent, Node, NodeConfig, PeerMessage, RequestId};
use skiff_raft::{
    AppendResponse, ConfChange, ConfState, Config, Entry, HardState, LogIndex, LogStorage, Message,
    MessageBody, NodeId, RawNode, Role, Term,
};
use skiff_wal::{MemDisk, SnapshotWrite, Wal, WalOptions};

use crate::checkers::{Checkers, LogView, Violation};
use crate::network::{Network, NetworkOptions, Partition, Route};
use crate::node::{CrashKind, SimNode, SIM_CLUSTER_ID};
use crate::observer::{state_digest, Observed, Recorder};
use crate::trace::{Trace, TraceEvent};
use crate::values::{decode_value, value_command};

mod disk_faults;

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

/// A proposal a leader accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The client's value.
    pub value: u64,
    /// The leader that accepted it.
    pub node: NodeId,
    /// Where it went in the log.
    pub index: LogIndex,
    /// The leader's term.
    pub term: Term,
}

/// Why a node did not take a proposal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The node is down or paused: nothing reached it.
    #[error("{0} is unreachable")]
    Unreachable(NodeId),
    /// Only the leader takes proposals (a scenario's proposal is not forwarded).
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader the node knows of.
        leader_hint: Option<NodeId>,
    },
    /// The node answered with this error at once.
    #[error("refused: {0:?}")]
    Reply(Reply),
}

/// What became of a client request handed to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// The node is down or paused: the request never reached it, so it was not applied.
    Unreachable,
    /// The node answered at once, without forwarding the request anywhere.
    Answered(Reply),
    /// The reply will come later (see [`Cluster::take_reply`]).
    Pending,
}

/// How a read ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Served: the value read (`None`: absent).
    Value(Option<String>),
    /// Refused by the node or the leader: certainly not served.
    Refused,
}

impl ReadOutcome {
    /// The outcome a `GET`'s reply tells.
    pub fn of(reply: &Reply) -> ReadOutcome {
        match reply {
            Reply::Bulk(bytes) => ReadOutcome::Value(Some(String::from_utf8_lossy(bytes).into())),
            Reply::Nil => ReadOutcome::Value(None),
            _ => ReadOutcome::Refused,
        }
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
    /// Snapshots prepared and not yet written (`snapshot_off_thread`): one per node at most.
    pending_snapshots: BTreeMap<NodeId, (SnapshotWrite, Vec<u8>)>,
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
        config.snapshot_every_entries = if self.options.snapshot_off_thread {
            0 // the cluster takes them (`maybe_prepare_snapshot`)
        } else {
            self.options.snapshot_every_entries
        };
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

    /// First half of a driver pass: take a Ready, send what may go at once, start the write.
    fn on_drive(&mut self, node: NodeId, life: u64) {
        if !self.runs_now(node, life, Event::Drive { node, life }) {
            return;
        }
        self.drive_scheduled.remove(&node);
        let began = self.running_mut(node).is_some_and(Node::begin);
        if !began {
            return;
        }
        self.drain(node);
        self.check_log_settled(node);
        let (low, high) = self.options.disk_delay_ms;
        let delay = self.rng.gen_range(low..=high);
        self.schedule(self.now_ms + delay, Event::Persist { node, life });
    }

    /// Second half, when the disk write reaches the file: the batch is written, and the
    /// entries durable before it are applied. Its sync completes in a later event, as on a
    /// server that syncs on a writer thread; other events may come in between.
    fn on_persist(&mut self, node: NodeId, life: u64) {
        if !self.runs_now(node, life, Event::Persist { node, life }) {
            return;
        }
        let mut recorder = Recorder::default();
        let Some(running) = self.running_mut(node) else {
            return;
        };
        if let Err(error) = running.write(&mut recorder) {
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
    /// clients, advance.
    fn on_synced(&mut self, node: NodeId, life: u64) {
        if !self.runs_now(node, life, Event::Synced { node, life }) {
            return;
        }
        let mut recorder = Recorder::default();
        let Some(running) = self.running_mut(node) else {
            return;
        };
        let finished = running
            .sync_written()
            .and_then(|()| running.finish_synced(&mut recorder));
        if let Err(error) = finished {
            // The simulated disk fails only when a fault asks it to; none is asked here.
            self.record_violation(Violation {
                property: "Durable Log",
                detail: format!("{node} could not finish a batch: {error}"),
            });
            return;
        }
        self.observe(node, recorder.observed);
        self.drain(node);
        self.check_log_settled(node);
        self.maybe_prepare_snapshot(node, life);
        self.mark_dirty(node);
    }

    /// With `snapshot_off_thread`: once `node` applied enough entries past its snapshot and
    /// has no batch in flight, it serializes its state machine now, and the file is written
    /// and installed in a later event.
    fn maybe_prepare_snapshot(&mut self, node: NodeId, life: u64) {
        let every = self.options.snapshot_every_entries;
        if !self.options.snapshot_off_thread || every == 0 {
            return;
        }
        if self.pending_snapshots.contains_key(&node) {
            return;
        }
        let Some(running) = self.running_mut(node) else {
            return;
        };
        if running.entries_since_snapshot() < every {
            return;
        }
        match running.prepare_snapshot() {
            Ok(Some((write, data))) => {
                self.pending_snapshots.insert(node, (write, data));
                let (low, high) = self.options.disk_delay_ms;
                let delay = self.rng.gen_range(low..=high);
                self.schedule(self.now_ms + delay, Event::SnapshotWritten { node, life });
            }
            Ok(None) => {}
            Err(error) => self.record_violation(Violation {
                property: "Durable Log",
                detail: format!("{node} could not prepare a snapshot: {error}"),
            }),
        }
    }

    /// The snapshot file prepared earlier is written and synced: install it.
    fn on_snapshot_written(&mut self, node: NodeId, life: u64) {
        if !self.is_current_life(node, life) {
            // The node crashed meanwhile: the write never happened.
            self.pending_snapshots.remove(&node);
            return;
        }
        if !self.runs_now(node, life, Event::SnapshotWritten { node, life }) {
            return;
        }
        let Some((write, data)) = self.pending_snapshots.remove(&node) else {
            return;
        };
        let Some(running) = self.running_mut(node) else {
            return;
        };
        let installed = running
            .write_snapshot_file(&write, &data)
            .and_then(|()| running.snapshot_written(write));
        if let Err(error) = installed {
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

    /// Takes what `node` produced: events are noted and checked, messages go on the network,
    /// replies go to the clients waiting for them.
    fn drain(&mut self, node: NodeId) {
        let Some(running) = self.running_mut(node) else {
            return;
        };
        let output = running.take_output();
        for event in output.events {
            self.on_node_event(node, event);
        }
        for message in output.messages {
            self.send(message);
        }
        for (id, reply) in output.replies {
            if self.waiting.get(&id) == Some(&node) {
                self.waiting.remove(&id);
                if self.reads.remove(&id) && !reply.is_error() {
                    self.stats.reads += 1;
                }
                self.replies.insert(id, reply);
            }
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
            NodeEvent::SnapshotChunkReceived { .. } => {}
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

    // ---- scenario helpers ----

    /// Waits up to `budget_ms` for a [`stable_leader`](Cluster::stable_leader); returns it.
    pub fn await_leader(&mut self, budget_ms: u64) -> Option<NodeId> {
        self.run_until(budget_ms, |c| c.stable_leader().is_some());
        self.stable_leader()
    }

    /// The leader of the highest term among running nodes, when a majority of nodes it can
    /// reach are up and share its term.
    pub fn stable_leader(&self) -> Option<NodeId> {
        let leader = self.leader()?;
        let term = self.term(leader);
        let connected = |id: NodeId| id == leader || self.network.connected(leader, id);
        let agreeing = self
            .ids
            .iter()
            .filter(|&&id| self.is_up(id) && connected(id) && self.term(id) == term)
            .count();
        let majority = self.ids.len() / 2 + 1;
        (agreeing >= majority).then_some(leader)
    }

    /// Like the lab's `one()`: proposes `value` to whichever node leads (retrying as leaders
    /// change) until at least `expected_nodes` nodes have applied it, within `budget_ms`.
    /// Returns the index it committed at.
    pub fn one(&mut self, value: u64, expected_nodes: usize, budget_ms: u64) -> Option<LogIndex> {
        let end = self.now_ms + budget_ms;
        while self.now_ms < end && self.violation.is_none() {
            let proposal = self
                .leader()
                .and_then(|leader| self.propose_to(leader, value, 0).ok());
            if let Some(proposal) = proposal {
                let applied = self.run_until(2_000.min(end - self.now_ms), |c| {
                    c.count_applied(value) >= expected_nodes
                });
                if applied {
                    return Some(proposal.index);
                }
                if self.count_applied(value) > 0 {
                    // Committed on too few nodes: wait for the rest rather than propose twice.
                    let rest = end.saturating_sub(self.now_ms);
                    return self
                        .run_until(rest, |c| c.count_applied(value) >= expected_nodes)
                        .then_some(proposal.index);
                }
            } else {
                self.run_for(50);
            }
        }
        None
    }

    /// Asks the current leader to hand leadership to `to`. Returns whether a transfer started.
    pub fn transfer_leadership(&mut self, to: NodeId) -> bool {
        let Some(leader) = self.leader() else {
            return false;
        };
        if self.paused_until(leader).is_some() {
            return false;
        }
        let Some(running) = self.running_mut(leader) else {
            return false;
        };
        if running.transfer_leadership(to).is_err() {
            return false;
        }
        self.stats.transfers += 1;
        self.trace.record(
            self.now_ms,
            TraceEvent::Note(format!("{leader} hands leadership to {to}")),
        );
        self.mark_dirty(leader);
        true
    }

    /// Starts node `id` of the pool for the first time, with an empty log: it is not a member
    /// until a configuration change adds it. Returns whether it was started.
    pub fn start_node(&mut self, id: NodeId) -> bool {
        if self.nodes.contains_key(&id) || id.0 == 0 || id.0 > self.options.pool_size as u64 {
            return false;
        }
        self.start_fresh(id);
        self.trace
            .record(self.now_ms, TraceEvent::Fault(format!("start {id}")));
        true
    }

    /// The ids of the pool that were never started.
    pub fn dormant_ids(&self) -> Vec<NodeId> {
        (1..=self.options.pool_size as u64)
            .map(NodeId)
            .filter(|id| !self.nodes.contains_key(id))
            .collect()
    }

    /// The running node `node`, as a client reaches it: a paused process does not answer,
    /// and a process that was paused first notices the time that passed.
    fn client_node(&mut self, node: NodeId) -> Option<&mut Node<MemDisk>> {
        if self.paused_until(node).is_some() {
            return None;
        }
        self.catch_up(node);
        self.running_mut(node)
    }

    /// A fresh id for one of the cluster's own requests.
    fn own_request(&mut self) -> RequestId {
        self.next_own_request += 1;
        self.next_own_request
    }

    /// Proposes a membership change to `node`, which must lead.
    pub fn propose_conf_change(
        &mut self,
        node: NodeId,
        change: ConfChange,
    ) -> Result<(LogIndex, Term), Refused> {
        let text = format!("{change:?}");
        let id = self.own_request();
        let accepted =
            self.propose_on_leader(node, id, |running| running.propose_conf_change(id, change))?;
        self.stats.conf_changes += 1;
        self.trace.record(
            self.now_ms,
            TraceEvent::Note(format!(
                "{node} accepted {text} at {}/{}",
                accepted.0, accepted.1
            )),
        );
        Ok(accepted)
    }

    /// Hands a proposal to `node` through `propose`, if `node` leads; the proposal is
    /// accepted when the leader's log grew by one entry, and refused when the node answered
    /// request `id` at once.
    fn propose_on_leader(
        &mut self,
        node: NodeId,
        id: RequestId,
        propose: impl FnOnce(&mut Node<MemDisk>),
    ) -> Result<(LogIndex, Term), Refused> {
        let Some(running) = self.client_node(node) else {
            return Err(Refused::Unreachable(node));
        };
        let raft = running.raw().raft();
        if raft.role() != Role::Leader {
            return Err(Refused::NotLeader {
                leader_hint: raft.leader(),
            });
        }
        let before = raft.log().last_index();
        propose(running);
        let raft = running.raw().raft();
        let (last, term) = (raft.log().last_index(), raft.term());
        self.waiting.insert(id, node);
        self.drain(node);
        self.mark_dirty(node);
        let answered = self.replies.remove(&id);
        if last == before.next() {
            self.waiting.remove(&id);
            return Ok((last, term));
        }
        self.waiting.remove(&id);
        Err(Refused::Reply(answered.unwrap_or_else(|| {
            Reply::error("the leader neither accepted nor refused the proposal")
        })))
    }

    /// Makes `node` start an election now, as if its timer had fired.
    pub fn campaign_now(&mut self, node: NodeId) {
        if let Some(running) = self.running_mut(node) {
            running.campaign();
            self.mark_dirty(node);
        }
    }

    // ---- clients ----

    /// Proposes `value` to the current leader. Returns the accepted proposal, if any leader took it.
    pub fn propose(&mut self, value: u64) -> Option<Proposal> {
        self.propose_padded(value, 0)
    }

    /// Proposes `value` followed by `padding` zero bytes to the current leader.
    pub fn propose_padded(&mut self, value: u64, padding: usize) -> Option<Proposal> {
        let leader = self.leader()?;
        self.propose_to(leader, value, padding).ok()
    }

    /// Proposes `value` (with `padding` more bytes) to `node`, which must lead: the write
    /// `SET last-value <value>` through [`Node::submit`].
    pub fn propose_to(
        &mut self,
        node: NodeId,
        value: u64,
        padding: usize,
    ) -> Result<Proposal, Refused> {
        let id = self.own_request();
        let command = value_command(value, padding);
        let (index, term) =
            self.propose_on_leader(node, id, |running| running.submit(id, command))?;
        let proposal = Proposal {
            value,
            node,
            index,
            term,
        };
        self.stats.proposals += 1;
        self.trace.record(
            self.now_ms,
            TraceEvent::Proposed {
                node,
                value,
                index: index.0,
                term,
            },
        );
        self.proposals.push(proposal.clone());
        Ok(proposal)
    }

    /// Proposes a key-value `command` to `node`, which must lead; its reply is kept for
    /// [`take_reply`](Cluster::take_reply) under the returned request id.
    pub fn propose_command(
        &mut self,
        node: NodeId,
        command: Command,
    ) -> Result<(RequestId, LogIndex, Term), Refused> {
        let id = self.own_request();
        let text = format!("{command:?}");
        let (index, term) =
            self.propose_on_leader(node, id, |running| running.submit(id, command))?;
        self.waiting.insert(id, node);
        self.stats.proposals += 1;
        self.trace.record(
            self.now_ms,
            TraceEvent::Note(format!("{node} accepted {text} at {index}/{term}")),
        );
        Ok((id, index, term))
    }

    /// A client hands `command` to `node` (leader or follower) under request `id`, which the
    /// caller keeps unique. A follower forwards a write to its leader; reads are served by
    /// `node` through ReadIndex.
    pub fn submit(&mut self, node: NodeId, id: RequestId, command: Command) -> Submitted {
        let Some(running) = self.client_node(node) else {
            return Submitted::Unreachable;
        };
        let text = format!("{command:?}");
        let is_read = command.is_read_only();
        running.submit(id, command);
        self.waiting.insert(id, node);
        if is_read {
            self.reads.insert(id);
        }
        self.trace.record(
            self.now_ms,
            TraceEvent::Note(format!("client request {id} to {node}: {text}")),
        );
        self.drain(node);
        self.mark_dirty(node);
        match self.replies.remove(&id) {
            Some(reply) => Submitted::Answered(reply),
            None => Submitted::Pending,
        }
    }

    /// The reply to request `id`, once there is one.
    pub fn take_reply(&mut self, id: RequestId) -> Option<Reply> {
        self.replies.remove(&id)
    }

    /// The reply to request `id`, if there is one, without taking it.
    pub fn peek_reply(&self, id: RequestId) -> Option<&Reply> {
        self.replies.get(&id)
    }

    /// The client stops waiting for request `id` (it timed out): the node forgets it too.
    pub fn cancel(&mut self, id: RequestId) {
        self.replies.remove(&id);
        self.reads.remove(&id);
        if let Some(node) = self.waiting.remove(&id) {
            if let Some(running) = self.running_mut(node) {
                running.cancel(id);
            }
        }
    }

    /// Asks `node` for a linearizable read of `key`, identified by `ctx`. If the node
    /// refuses at once, returns the leader it knows of.
    pub fn read(&mut self, node: NodeId, ctx: u64, key: &str) -> Result<(), Option<NodeId>> {
        let command = Command::Get {
            key: key.as_bytes().to_vec(),
        };
        match self.submit(node, ctx, command) {
            Submitted::Pending => Ok(()),
            Submitted::Unreachable => Err(None),
            Submitted::Answered(reply) => {
                // Anything but a refusal answers the read at once; keep it for the caller.
                if ReadOutcome::of(&reply) != ReadOutcome::Refused {
                    self.replies.insert(ctx, reply);
                    return Ok(());
                }
                Err(self
                    .running(node)
                    .and_then(|running| running.raw().raft().leader())
                    .filter(|&leader| leader != node))
            }
        }
    }

    /// The answer to read `ctx`, once there is one.
    pub fn take_read_reply(&mut self, ctx: u64) -> Option<ReadOutcome> {
        self.take_reply(ctx).as_ref().map(ReadOutcome::of)
    }

    /// The answer to read `ctx`, if there is one, without taking it.
    pub fn peek_read_reply(&self, ctx: u64) -> Option<ReadOutcome> {
        self.peek_reply(ctx).map(ReadOutcome::of)
    }

    /// Stops waiting for read `ctx`.
    pub fn forget_read(&mut self, ctx: u64) {
        self.cancel(ctx);
    }

    /// `node`'s key-value state machine (`None` while it is down).
    pub fn state_machine(&self, node: NodeId) -> Option<&StateMachine> {
        self.running(node).map(Node::state_machine)
    }

    /// Every proposal a leader accepted, in order.
    pub fn proposals(&self) -> &[Proposal] {
        &self.proposals
    }

    // ---- faults ----

    /// Crashes `node`: everything it had not made durable is lost. A crash while a batch is
    /// being written comes, by a seeded choice, before the write started (the batch is lost
    /// whole) or during it (the sync never returns; the disk may keep any prefix of the
    /// batch's bytes: a torn write).
    pub fn crash(&mut self, node: NodeId) {
        let Some(sim_node) = self.nodes.get(&node) else {
            return;
        };
        if !sim_node.is_up() {
            return;
        }
        let writing = sim_node.is_writing();
        let kind = if writing
            && self
                .disk_rng
                .gen_bool(self.options.mid_write_crash_probability)
        {
            self.stats.mid_write_crashes += 1;
            CrashKind::MidWrite
        } else {
            CrashKind::BetweenWrites
        };
        let tear = self.disk_rng.gen_bool(0.5);
        let mut choices = ChaCha8Rng::seed_from_u64(self.disk_rng.gen());
        let sim_node = self.nodes.get_mut(&node).expect("checked above");
        sim_node.crash(kind, |_, unsynced| {
            if tear {
                choices.gen_range(0..=unsynced)
            } else {
                0
            }
        });
        self.checkers.crashed(node);
        self.roles.insert(node, Role::Follower);
        self.applied_values.remove(&node);
        self.drive_scheduled.remove(&node);
        self.paused_until_ms.remove(&node);
        self.missed_ticks.remove(&node);
        self.stats.crashes += 1;
        let how = match kind {
            CrashKind::MidWrite => " in the middle of a write",
            CrashKind::BetweenWrites if writing => " before its write",
            CrashKind::BetweenWrites => "",
        };
        self.trace
            .record(self.now_ms, TraceEvent::Fault(format!("crash {node}{how}")));
    }

    /// Restarts a crashed `node` from its disk. If its durable log refuses to open, it stays
    /// down for the rest of the run.
    pub fn restart(&mut self, node: NodeId) {
        let Some(sim_node) = self.nodes.get(&node) else {
            return;
        };
        if !sim_node.is_down() {
            return;
        }
        let life = sim_node.incarnation + 1;
        let config = self.config_for(node, life);
        let sim_node = self.nodes.get_mut(&node).expect("checked above");
        let corrupted = sim_node.corrupted;
        let report = match sim_node.restart(config) {
            Some(Ok(report)) => report,
            Some(Err(error)) => {
                self.stats.refused_starts += 1;
                self.trace.record(
                    self.now_ms,
                    TraceEvent::Fault(format!("{node} refuses to start and stays down: {error}")),
                );
                if !corrupted {
                    // Only media corruption may stop a log from opening: a crash, torn write
                    // or not, must always recover.
                    self.record_violation(Violation {
                        property: "Durable Log Recovery",
                        detail: format!("{node}'s log refused to open after a crash: {error}"),
                    });
                }
                return;
            }
            None => return,
        };
        self.check_restart_after_damage(node);
        if let Some(torn) = &report.torn_tail {
            self.stats.torn_tails += 1;
            self.trace.record(
                self.now_ms,
                TraceEvent::Fault(format!(
                    "{node}'s recovery cut a torn write: {} bytes at {}:{}",
                    torn.bytes_dropped,
                    torn.file.display(),
                    torn.offset
                )),
            );
        }
        let running = self.nodes[&node].running().expect("just restarted");
        let commit = running.wal().hard_state().commit;
        let snapshot = running.wal().snapshot_meta().index;
        let raw = running.raw();
        let mut result = self.checkers.restarted(node, commit, &NodeLog(raw));
        // The state machine restarts from the snapshot on disk.
        if snapshot.0 > 0 {
            let state = state_digest(running.state_machine());
            result = result.and(self.checkers.restored(node, snapshot, state));
        }
        if let Err(violation) = result {
            self.record_violation(violation);
        }
        self.restore_values(node, snapshot);
        self.trace.record(
            self.now_ms,
            TraceEvent::Fault(format!("restart {node} (durable commit {commit})")),
        );
        self.start_ticking(node, life);
        self.mark_dirty(node);
    }

    /// Crashes `node` and restarts it `down_ms` later (a process bounce).
    pub fn bounce(&mut self, node: NodeId, down_ms: u64) {
        if self.is_up(node) {
            self.crash(node);
            self.schedule(self.now_ms + down_ms, Event::Restart { node });
        }
    }

    /// Pauses `node` for `ms`: it handles nothing meanwhile, then catches up.
    pub fn pause(&mut self, node: NodeId, ms: u64) {
        self.paused_until_ms.insert(node, self.now_ms + ms);
        self.trace.record(
            self.now_ms,
            TraceEvent::Fault(format!("pause {node} for {ms} ms")),
        );
    }

    /// Ends a pause of `node` now.
    pub fn resume(&mut self, node: NodeId) {
        if self
            .paused_until_ms
            .remove(&node)
            .is_some_and(|until| until > self.now_ms)
        {
            self.trace
                .record(self.now_ms, TraceEvent::Fault(format!("resume {node}")));
        }
    }

    /// Cuts the network into `partition`.
    pub fn partition(&mut self, partition: Partition) {
        self.trace.record(
            self.now_ms,
            TraceEvent::Fault(format!("partition {partition:?}")),
        );
        self.network.partition(&self.ids, &partition);
    }

    /// Cuts `node` off from every other node.
    pub fn isolate(&mut self, node: NodeId) {
        self.partition(Partition::Isolate(node));
    }

    /// Restores every link to and from `node`.
    pub fn reconnect(&mut self, node: NodeId) {
        self.trace
            .record(self.now_ms, TraceEvent::Fault(format!("reconnect {node}")));
        self.network.reconnect(node);
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.trace.record(
            self.now_ms,
            TraceEvent::Fault("heal partitions".to_string()),
        );
        self.network.heal();
    }

    /// Replaces how the network misbehaves.
    pub fn set_network(&mut self, options: NetworkOptions) {
        self.network.options = options;
    }

    // ---- looking ----

    /// The node ids.
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    fn raw(&self, node: NodeId) -> Option<&RawNode<Wal<MemDisk>>> {
        self.running(node).map(Node::raw)
    }

    /// Whether `node` is in the middle of a disk write.
    pub fn is_writing(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(SimNode::is_writing)
    }

    /// Whether `node` is running.
    pub fn is_up(&self, node: NodeId) -> bool {
        self.raw(node).is_some()
    }

    /// Whether `node` is down and may be restarted (its log did not refuse to open).
    pub fn is_down(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(SimNode::is_down)
    }

    /// Whether `node`'s durable log refused to open: it stays down for the rest of the run.
    pub fn is_refused(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(|n| n.refusal().is_some())
    }

    /// Running nodes that consider themselves leader, with their terms.
    pub fn leaders(&self) -> Vec<(NodeId, Term)> {
        self.ids
            .iter()
            .filter_map(|&id| self.raw(id).map(|raw| (id, raw.raft())))
            .filter(|(_, raft)| raft.role() == Role::Leader)
            .map(|(id, raft)| (id, raft.term()))
            .collect()
    }

    /// The leader of the highest term among running nodes, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .max_by_key(|&(_, term)| term)
            .map(|(id, _)| id)
    }

    /// `node`'s current term (its durable one while it is down).
    pub fn term(&self, node: NodeId) -> Term {
        match self.raw(node) {
            Some(raw) => raw.raft().term(),
            None => self.hard_state(node).term,
        }
    }

    /// The hard state `node` last made durable.
    pub fn hard_state(&self, node: NodeId) -> HardState {
        self.nodes
            .get(&node)
            .map(|n| n.durable().hard_state)
            .unwrap_or_default()
    }

    /// The first index `node`'s disk still holds (entries before it are in its snapshot).
    pub fn durable_first_index(&self, node: NodeId) -> LogIndex {
        self.nodes[&node].durable().first_index
    }

    /// The index of the snapshot on `node`'s disk (0: none).
    pub fn snapshot_index(&self, node: NodeId) -> LogIndex {
        self.nodes[&node].durable().snapshot_index
    }

    /// The bytes of log entries and snapshot on `node`'s disk.
    pub fn durable_bytes(&self, node: NodeId) -> u64 {
        self.nodes[&node].durable().bytes
    }

    /// The last index on `node`'s disk.
    pub fn durable_last_index(&self, node: NodeId) -> LogIndex {
        self.nodes[&node].durable().last_index
    }

    /// `node`'s role (follower while down).
    pub fn role(&self, node: NodeId) -> Role {
        self.raw(node)
            .map_or(Role::Follower, |raw| raw.raft().role())
    }

    /// `node`'s commit index (its durable one while it is down).
    pub fn commit(&self, node: NodeId) -> LogIndex {
        match self.raw(node) {
            Some(raw) => raw.raft().log().committed(),
            None => self.hard_state(node).commit,
        }
    }

    /// The last index `node` applied in its current life.
    pub fn applied(&self, node: NodeId) -> LogIndex {
        self.running(node).map_or(LogIndex(0), Node::applied)
    }

    /// `node`'s last log index.
    pub fn last_index(&self, node: NodeId) -> LogIndex {
        self.raw(node)
            .map_or(LogIndex(0), |raw| raw.raft().log().last_index())
    }

    /// The terms of `node`'s log entries, from index 1.
    pub fn log_terms(&self, node: NodeId) -> Vec<u64> {
        let Some(raw) = self.raw(node) else {
            return Vec::new();
        };
        let log = NodeLog(raw);
        (1..=log.last_index().0)
            .filter_map(|i| log.entry(LogIndex(i)))
            .map(|e| e.term.0)
            .collect()
    }

    /// The entry at `index` in `node`'s log.
    pub fn entry(&self, node: NodeId, index: LogIndex) -> Option<Entry> {
        self.raw(node).and_then(|raw| NodeLog(raw).entry(index))
    }

    /// The membership `node` has in force (empty while it is down).
    pub fn conf(&self, node: NodeId) -> ConfState {
        self.raw(node)
            .map(|raw| raw.raft().conf_state())
            .unwrap_or_default()
    }

    /// The numbered values `node` applied since it last started, in order.
    pub fn applied_values(&self, node: NodeId) -> &[u64] {
        self.applied_values.get(&node).map_or(&[], Vec::as_slice)
    }

    /// How many running nodes applied `value`.
    pub fn count_applied(&self, value: u64) -> usize {
        self.applied_values
            .values()
            .filter(|values| values.contains(&value))
            .count()
    }

    /// The term of the entry known committed at `index`, as far as any node has applied it.
    pub fn committed_at(&self, index: LogIndex) -> Option<Term> {
        self.checkers
            .committed_at(index)
            .map(|committed| committed.term)
    }

    /// The content digest of the entry known committed at `index`.
    pub fn committed_digest_at(&self, index: LogIndex) -> Option<u64> {
        self.checkers
            .committed_at(index)
            .map(|committed| committed.digest)
    }

    /// Entries known committed (applied somewhere).
    pub fn committed_count(&self) -> usize {
        self.checkers.committed_count()
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The first broken property, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// The trace.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Records a note in the trace.
    pub fn note(&mut self, text: impl Into<String>) {
        self.trace
            .record(self.now_ms, TraceEvent::Note(text.into()));
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.options.seed
    }

    /// Draws from the cluster's seeded PRNG.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Panics with the trace if a property broke.
    pub fn assert_safe(&self) {
        if let Some(violation) = &self.violation {
            panic!(
                "seed {}: {violation}\nlast events:\n{}",
                self.options.seed,
                self.trace.render_recent()
            );
        }
    }
}
