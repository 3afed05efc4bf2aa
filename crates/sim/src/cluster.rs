//! A simulated cluster: nodes, network, logical time and an event queue, all driven by one
//! seed. Scenario tests and randomized runs both use this API; the checkers watch every step.
//!
//! Each node is the real [`skiff_node::Node`] over a [`skiff_wal::MemDisk`], driven through
//! its effects (`skiff_node::Effect`). Seven events drive it, one for each input and each
//! I/O step the node asks for:
//!
//! - `Tick`: one tick of a node's clock;
//! - `Deliver`: a message reaches its node (`Node::step`);
//! - `Drive`: the node takes its next batch (`Node::begin_batch`) and sends what may leave
//!   before the write;
//! - `Persist`, a seeded disk delay later: the batch is written (`Node::write_batch`) and what
//!   was durable before it is applied (`Node::apply_durable`: all of it, or with
//!   `apply_in_steps` a step that the sync's `batch_synced` finishes);
//! - `Synced`, a shorter delay later: the sync returns (`Node::sync_batch`); what needed
//!   durability is sent, the rest applied, clients answered; a snapshot the node asks for
//!   (its state machine frozen at the applied index) is serialized and written in line, or
//!   with `snapshot_off_thread` in a `SnapshotWritten` event;
//! - `SnapshotWritten`: the frozen state is serialized, the snapshot file written and
//!   installed (`Node::write_snapshot`), with every entry applied meanwhile left out of it;
//! - `Restart`: a crashed node starts again from its disk.
//!
//! A crash between `Drive` and `Synced` loses the batch, or tears it (`SimNode::crash`).
//!
//! This file holds the cluster's state and its construction; beside it, `options.rs`
//! (settings and counters), `events.rs` (the event loop, ticks, deliveries, pauses),
//! `driving.rs` (carrying out a node's effects), `messages.rs` (the network),
//! `checking.rs` (what the checkers see), `scenario.rs` (waiting for leaders and conditions),
//! `clients.rs` (proposals and key-value requests), `omniscience.rs` (the ledger of
//! committed entries, proposals and answers that the timed check reads), `faults.rs` (crashes, restarts, pauses,
//! partitions), `disk_faults.rs` (media damage) and `looking.rs` (accessors, the checkers'
//! verdict, the trace).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use skiff_kv::{Command, Reply, StateMachine};
use skiff_node::{
    Effect, Envelope, Event as NodeEvent, Node, NodeConfig, PeerMessage, RequestId, SnapshotJob,
};
use skiff_raft::{
    AppendResponse, ConfChange, ConfState, Config, Entry, HardState, LogIndex, LogStorage, Message,
    MessageBody, NodeId, RawNode, Role, Term,
};
use skiff_wal::{MemDisk, Wal, WalOptions};

use crate::checkers::{Checkers, LogView, Violation};
use crate::ledger::Ledger;
use crate::network::{Network, NetworkOptions, Partition, Route};
use crate::node::{BatchStep, CrashKind, SimNode, SIM_CLUSTER_ID};
use crate::observer::{state_digest, Observed, Recorder};
use crate::trace::{Trace, TraceEvent};
use crate::values::{decode_value, value_command};

mod checking;
mod clients;
mod disk_faults;
mod driving;
mod events;
mod faults;
mod looking;
mod messages;
mod omniscience;
mod options;
mod scenario;

use checking::NodeLog;
use events::{Scheduled, SimEvent};

pub use clients::{Proposal, ReadOutcome, Refused, Submitted};
pub use omniscience::InjectedBug;
pub use options::{ClusterOptions, Stats};

/// Request ids the cluster gives its own proposals (scenario values and commands), far above
/// those of clients.
const OWN_REQUEST_IDS: RequestId = 1 << 48;

/// The simulated cluster.
pub struct Cluster {
    options: ClusterOptions,
    /// Logical time and the events due.
    agenda: Agenda,
    /// The node ids started so far, in order.
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, SimNode>,
    network: Network,
    rng: ChaCha8Rng,
    /// A stream of its own for how crashes hit the disk, so that scenarios drawing their
    /// faults from [`Cluster::rng`] see the same draws whatever the disk faults drew.
    disk_rng: ChaCha8Rng,
    /// Each node's driver: pauses, drives scheduled, snapshot files being written.
    timing: Timing,
    /// What the checkers were shown, and what they found.
    checks: Checks,
    trace: Trace,
    stats: Stats,
    /// Client requests and the cluster's own proposals.
    clients: ClientBook,
    /// Messages a scenario holds back.
    holding: Holding,
    /// The bootstrap configuration every node starts from (later changes come from the log).
    initial_voters: Vec<NodeId>,
}

/// Logical time and the event queue.
struct Agenda {
    now_ms: u64,
    queue: BinaryHeap<Scheduled>,
    /// The order of events scheduled for the same time.
    seq: u64,
}

/// The simulated timing of each node's driver.
#[derive(Default)]
struct Timing {
    paused_until_ms: BTreeMap<NodeId, u64>,
    /// Ticks a paused node missed; it catches up on them before anything else when it wakes,
    /// as a process whose timer follows a monotonic clock does.
    missed_ticks: BTreeMap<NodeId, u64>,
    drive_scheduled: BTreeSet<NodeId>,
    /// Snapshot files the nodes asked for and not yet written (`snapshot_off_thread`): one
    /// per node at most, kept across a crash until its event comes.
    pending_snapshots: BTreeMap<NodeId, SnapshotJob>,
}

/// The checkers, and the history they are judged against.
#[derive(Default)]
struct Checks {
    checkers: Checkers,
    violation: Option<Violation>,
    roles: BTreeMap<NodeId, Role>,
    applied_values: BTreeMap<NodeId, Vec<u64>>,
    /// Every numbered value applied anywhere, by index: what a snapshot at an index contains.
    committed_values: BTreeMap<LogIndex, u64>,
    /// The committed log with its stamps, proposals and answers, for the timed check.
    ledger: Ledger,
    /// Reads in flight, kept only while a bug is injected (it rewrites their answers).
    injected_reads: BTreeMap<RequestId, Command>,
    /// Per leader, the term and the last index of its log already noted in the ledger.
    appends_seen: BTreeMap<NodeId, (Term, u64)>,
    /// Per node, the last index the simulator saw it apply or install in its current life
    /// (from the snapshot on its disk at a restart): what a read it answers was served at.
    applied_seen: BTreeMap<NodeId, u64>,
    /// Node 1's applied index and client sessions when last looked at.
    sessions_seen: (u64, BTreeSet<u64>),
}

/// Requests waiting on nodes, and what came back.
struct ClientBook {
    /// Client requests waiting for a reply: request id → the node it was handed to.
    waiting: BTreeMap<RequestId, NodeId>,
    /// Replies to those requests.
    replies: BTreeMap<RequestId, Reply>,
    /// Which of the waiting requests are reads.
    reads: BTreeSet<RequestId>,
    next_own_request: RequestId,
    proposals: Vec<Proposal>,
}

/// Raft messages a scenario keeps back instead of sending, and client writes forwarded late.
#[derive(Default)]
struct Holding {
    filter: Option<MessageFilter>,
    held: Vec<Message>,
    /// Writes forwarded to this node arrive no earlier than this time (ms).
    late_forwards: Option<(NodeId, u64)>,
}

/// Chooses Raft messages for a scenario to hold back.
pub type MessageFilter = Box<dyn FnMut(&Message) -> bool>;

impl Cluster {
    /// A new cluster; every node starts as a follower at term 0 with an empty log.
    pub fn new(options: ClusterOptions) -> Cluster {
        let ids: Vec<NodeId> = (1..=options.nodes as u64).map(NodeId).collect();
        let mut cluster = Cluster {
            rng: ChaCha8Rng::seed_from_u64(options.seed),
            disk_rng: ChaCha8Rng::seed_from_u64(options.seed ^ 0xD15C_FA17_D15C_FA17),
            network: Network::new(options.network.clone()),
            trace: Trace::new(options.trace_keep, options.print_trace),
            agenda: Agenda {
                now_ms: 0,
                queue: BinaryHeap::new(),
                seq: 0,
            },
            nodes: BTreeMap::new(),
            timing: Timing::default(),
            checks: Checks::default(),
            stats: Stats::default(),
            clients: ClientBook {
                waiting: BTreeMap::new(),
                replies: BTreeMap::new(),
                reads: BTreeSet::new(),
                next_own_request: OWN_REQUEST_IDS,
                proposals: Vec::new(),
            },
            holding: Holding::default(),
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
        self.checks.roles.insert(id, Role::Follower);
        let skew_ms = clock_skew_ms(self.options.seed, id, self.options.max_clock_skew_ms);
        self.checks.ledger.set_clock(id, SIM_EPOCH_MS, skew_ms);
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
        raft.max_inflight_bytes = self.options.max_inflight_bytes;
        raft.seed = self.options.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ (id.0 << 32) ^ life;
        let mut config = NodeConfig::new(raft, SIM_CLUSTER_ID);
        config.wal = WalOptions {
            max_segment_bytes: self.options.max_segment_bytes,
            // Used only when the log is new: a first start, or a disk replaced by an empty one.
            new_incarnation: incarnation_for(self.options.seed, id, life),
            // Each life of the node draws other masks for the segments it recycles.
            mask_seed: incarnation_for(self.options.seed ^ 0x6d61_736b, id, life),
            ..WalOptions::new(SIM_CLUSTER_ID)
        };
        config.snapshot_every_entries = self.options.snapshot_every_entries;
        config.snapshot_expansion_factor = self.options.snapshot_expansion_factor;
        config.state_machine = self.options.kv.clone();
        config
    }

    /// The running node, its wall clock set to now (each input it handles may stamp).
    pub(super) fn running_mut(&mut self, node: NodeId) -> Option<&mut Node<MemDisk>> {
        let wall_clock_ms = self.clock_told_ms(node);
        let running = self.nodes.get_mut(&node).and_then(SimNode::running_mut)?;
        running.set_wall_clock_ms(wall_clock_ms);
        Some(running)
    }

    /// What node `node`'s wall clock reads now: simulated time from [`SIM_EPOCH_MS`], plus
    /// the node's skew.
    pub fn wall_clock_ms(&self, node: NodeId) -> u64 {
        let skew = clock_skew_ms(self.options.seed, node, self.options.max_clock_skew_ms);
        (SIM_EPOCH_MS + self.agenda.now_ms).saturating_add_signed(skew)
    }

    pub(super) fn running(&self, node: NodeId) -> Option<&Node<MemDisk>> {
        self.nodes.get(&node).and_then(SimNode::running)
    }
}

/// Where simulated wall clocks start (Unix milliseconds, 2023-11-14): far from zero, so a
/// clock skewed back stays positive.
pub const SIM_EPOCH_MS: u64 = 1_700_000_000_000;

/// Node `id`'s clock skew, drawn from the seed (a SplitMix64 step) in `[-max, +max]`.
fn clock_skew_ms(seed: u64, id: NodeId, max_ms: u64) -> i64 {
    let mut z = seed ^ id.0.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ 0x5EED_C10C;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let span = max_ms.saturating_mul(2).saturating_add(1);
    i64::try_from(z % span).unwrap_or(0) - i64::try_from(max_ms).unwrap_or(0)
}

/// The incarnation a node's data directory gets if its log is new in life `life`: drawn from
/// the seed (a SplitMix64 step), nonzero, and different for each life.
fn incarnation_for(seed: u64, id: NodeId, life: u64) -> u64 {
    let mut z = seed ^ id.0.rotate_left(40) ^ life.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).max(1)
}
