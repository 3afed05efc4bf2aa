//! The core benchmark: three `skiff-raft` nodes in one process, node 1 the fixed leader, closed-loop
//! clients writing empty payloads to it.
//!
//! It has the shape of openraft's `benchmarks/minimal`: an in-memory log ([`MemStorage`]), an
//! empty state machine, messages handed from node to node in memory, and a write done when it is
//! applied on the leader. Every write is replicated to both followers, committed by a majority
//! and applied on all three nodes; nothing is skipped.
//!
//! The nodes are driven by one deterministic loop on one thread, as `skiff-raft` is meant to be
//! driven (the core is sans-I/O: the application owns the loop). One round of the loop, for each
//! node in turn: deliver the messages addressed to it, then handle its [`Ready`](skiff_raft::Ready)
//! batches — append the entries to its log, keep the hard state, queue the outgoing messages,
//! apply the committed entries, and `advance`. On the leader, applying an entry answers the client
//! that proposed it, and that client proposes its next write at once; all the writes proposed
//! between two batches go out together in the next one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use skiff_raft::{
    Config, EntryKind, HardState, LogIndex, LogStorage, MemStorage, Message, NodeId, RawNode, Role,
    Term,
};

/// The number of nodes: three voters, as in openraft's benchmark.
pub const NODES: usize = 3;

/// What to run.
#[derive(Clone, Debug)]
pub struct CoreOptions {
    /// Closed-loop clients, each with one write outstanding at a time.
    pub clients: usize,
    /// Writes in all; each client makes `ops / clients` of them (at least one).
    pub ops: u64,
    /// Each node takes a snapshot (its data: the state machine's count of applied writes) and
    /// compacts its log every this many applied entries, keeping
    /// [`Config::snapshot_trailing_entries`]; `None` keeps the whole log. openraft's default
    /// policy, which its benchmark keeps, is a snapshot every 5000 entries with 1000 kept.
    pub snapshot_every: Option<u64>,
    /// Wall-clock time of one Raft tick (heartbeats go out every tick; elections time out after
    /// 10 to 20 ticks). `skiff serve` ticks every 10 ms.
    pub tick: Duration,
    /// How the nodes and the clients are run.
    pub shape: Shape,
    /// [`Shape::Threads`]: how many times a thread with nothing to do polls its channel,
    /// yielding the processor in between, before it blocks.
    pub poll_yields: u32,
}

/// How the three nodes and the clients share the machine: `skiff-bench core --shape loop|threads`.
/// (`help = None`: the variants' docs stay out of `--help`, which describes both shapes itself.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// One deterministic loop on one thread drives the nodes and the clients; a message is
    /// handed to its addressee in memory (`Vec` push), a write is a `propose` call.
    #[value(help = None::<&str>)]
    Loop,
    /// A thread per node and one for the clients, as openraft runs its nodes and its clients
    /// on separate runtimes: messages, writes and answers cross threads over channels, in
    /// batches (everything one batch of a node sends to one peer goes as one channel message).
    #[value(help = None::<&str>)]
    Threads,
}

impl CoreOptions {
    /// `clients` clients making `ops` writes in all, with the defaults for the rest.
    pub fn new(clients: usize, ops: u64) -> CoreOptions {
        CoreOptions {
            clients,
            ops,
            snapshot_every: Some(5000),
            tick: Duration::from_millis(10),
            shape: Shape::Loop,
            poll_yields: 20,
        }
    }
}

/// The outcome of one run.
#[derive(Debug)]
pub struct CoreRun {
    /// Closed-loop clients.
    pub clients: usize,
    /// Writes completed (applied on the leader and answered).
    pub ops: u64,
    /// From the first proposal to the moment the last write was applied on the leader.
    pub elapsed: Duration,
    /// Per-write latency in nanoseconds, from proposal to apply on the leader.
    pub latency_ns: Histogram<u64>,
    /// What each node did, for checking that the whole work was done.
    pub check: WorkDone,
}

impl CoreRun {
    /// A latency quantile in microseconds.
    pub fn latency_us(&self, quantile: f64) -> f64 {
        self.latency_ns.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// Counts kept while the benchmark runs, so that a test can check nothing was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkDone {
    /// Writes each client made (proposed), by client.
    pub proposed_per_client: Vec<u64>,
    /// Answers each client received (its write applied on the leader), by client.
    pub answered_per_client: Vec<u64>,
    /// Each node's state machine at the end (node 1 first): the count of client writes it
    /// applied from the committed entries it was handed, or restored from a snapshot and then
    /// applied. An index applied twice would be counted in `reapplied` instead.
    pub applied_writes: [u64; NODES],
    /// Entries each node applied whose index was not above the one it applied before.
    pub reapplied: [u64; NODES],
    /// Client writes each node appended to its own log (node 1 first).
    pub stored_writes: [u64; NODES],
    /// Each node's last log index at the end.
    pub last_index: [LogIndex; NODES],
    /// Each node's first log index at the end (above 1 once the log was compacted).
    pub first_index: [LogIndex; NODES],
    /// Each node's commit index at the end.
    pub committed: [LogIndex; NODES],
    /// The commit index of each node's last hard state written.
    pub durable_commit: [LogIndex; NODES],
    /// The term node 1 led in when the clients started, and the term at the end.
    pub leader_terms: (Term, Term),
    /// Node 1 was leader at every proposal.
    pub leader_fixed: bool,
    /// Messages delivered from node to node.
    pub messages: u64,
    /// Snapshots taken on each node.
    pub snapshots: [u64; NODES],
    /// Snapshots each node received from the leader (it fell too far behind) and restored its
    /// state machine from.
    pub snapshot_installs: [u64; NODES],
}

/// One write waiting to be applied on the leader.
struct Pending {
    index: LogIndex,
    client: u32,
    issued: Instant,
}

/// The closed-loop clients, as the leader's application sees them.
pub(crate) struct Clients {
    /// Writes each client still has to make after the one outstanding.
    remaining: Vec<u64>,
    /// Writes waiting for apply, in proposal (= log index) order.
    pending: VecDeque<Pending>,
    /// Clients that were just answered and make their next write.
    ready_to_issue: Vec<u32>,
    /// Writes answered so far.
    pub(crate) completed: u64,
    pub(crate) latency_ns: Histogram<u64>,
    proposed: Vec<u64>,
    answered: Vec<u64>,
}

impl Clients {
    pub(crate) fn new(clients: usize, per_client: u64) -> Clients {
        Clients {
            remaining: vec![per_client; clients],
            pending: VecDeque::with_capacity(clients),
            ready_to_issue: (0..clients as u32).collect(),
            completed: 0,
            // Up to a minute, three significant digits.
            latency_ns: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("valid histogram bounds"),
            proposed: vec![0; clients],
            answered: vec![0; clients],
        }
    }

    /// The write at `index` was applied on the leader at `now`: answer its client.
    fn answer(&mut self, index: LogIndex, now: Instant) {
        let pending = self
            .pending
            .pop_front()
            .unwrap_or_else(|| panic!("write {index} applied, but no client is waiting"));
        assert_eq!(
            pending.index, index,
            "writes must be applied in the order they were proposed"
        );
        self.answered(pending.client, pending.issued, now);
    }

    /// `client`'s write issued at `issued` was answered at `now`: it makes its next one, if any.
    pub(crate) fn answered(&mut self, client: u32, issued: Instant, now: Instant) {
        let nanos = now.saturating_duration_since(issued).as_nanos() as u64;
        self.latency_ns.saturating_record(nanos.max(1));
        self.completed += 1;
        let c = client as usize;
        self.answered[c] += 1;
        if self.remaining[c] > 0 {
            self.ready_to_issue.push(client);
        }
    }

    /// The clients waiting to make a write make it now: their counts are kept here, and
    /// `write(client)` sends it.
    pub(crate) fn issue(&mut self, mut write: impl FnMut(u32)) {
        for client in self.ready_to_issue.drain(..) {
            let c = client as usize;
            self.remaining[c] -= 1;
            self.proposed[c] += 1;
            write(client);
        }
    }
}

/// One node and what its application keeps: the durable hard state and the counts of the work
/// done. Both shapes drive nodes through it.
pub(crate) struct NodeDriver {
    pub(crate) node: RawNode<MemStorage>,
    /// What the node last made durable (kept as a disk would keep it, as openraft's log store
    /// keeps its vote).
    hard_state: HardState,
    snapshot_every: Option<u64>,
    last_snapshot: LogIndex,
    last_applied: LogIndex,
    applied_writes: u64,
    reapplied: u64,
    stored_writes: u64,
    snapshots: u64,
    snapshot_installs: u64,
}

pub(crate) fn slot(id: NodeId) -> usize {
    id.0 as usize - 1
}

impl NodeDriver {
    fn new(id: u64, snapshot_every: Option<u64>) -> NodeDriver {
        let mut config = Config::new(NodeId(id), (1..=NODES as u64).map(NodeId));
        config.seed = id;
        NodeDriver {
            node: RawNode::new(config, MemStorage::new(), HardState::default())
                .expect("a valid configuration"),
            hard_state: HardState::default(),
            snapshot_every,
            last_snapshot: LogIndex(0),
            last_applied: LogIndex(0),
            applied_writes: 0,
            reapplied: 0,
            stored_writes: 0,
            snapshots: 0,
            snapshot_installs: 0,
        }
    }

    /// Persists, sends (through `send`) and applies one batch, then advances. `applied_write`
    /// is called with the index of each client write applied, in log order.
    pub(crate) fn handle_ready(
        &mut self,
        mut send: impl FnMut(Message),
        mut applied_write: impl FnMut(LogIndex),
    ) {
        let mut ready = self.node.ready();
        // 1. persist: the in-memory log is the durable log here.
        ready
            .write_log(self.node.storage_mut())
            .expect("the in-memory log accepts the leader's entries");
        self.stored_writes += ready
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Normal)
            .count() as u64;
        if let Some(hard_state) = ready.hard_state {
            self.hard_state = hard_state;
        }
        if let Some(meta) = &ready.snapshot {
            // A follower too far behind got the leader's snapshot: the state machine (its count
            // of writes) is restored from it.
            let storage = self.node.storage();
            let data = storage
                .snapshot_chunk(0, storage.snapshot_len())
                .expect("the installed snapshot is readable");
            self.applied_writes = u64::from_le_bytes(data.try_into().expect("an 8-byte count"));
            self.last_applied = meta.index;
            self.last_snapshot = meta.index;
            self.snapshot_installs += 1;
        }
        // 2. send.
        for message in ready
            .messages
            .drain(..)
            .chain(ready.persisted_messages.drain(..))
        {
            send(message);
        }
        // 3. apply: the state machine is a count of the writes applied; a client write is
        //    answered on the leader.
        for entry in &ready.committed_entries {
            if entry.index <= self.last_applied {
                self.reapplied += 1;
                continue;
            }
            self.last_applied = entry.index;
            if entry.kind == EntryKind::Normal {
                self.applied_writes += 1;
                applied_write(entry.index);
            }
        }
        // 4. done.
        self.node.advance(ready);
        self.maybe_snapshot();
    }

    fn maybe_snapshot(&mut self) {
        let Some(every) = self.snapshot_every else {
            return;
        };
        let applied = self.node.raft().log().applied();
        if applied.0 >= self.last_snapshot.0 + every {
            let data = self.applied_writes.to_le_bytes().to_vec();
            self.node
                .take_snapshot(applied, data)
                .expect("a snapshot of applied entries");
            self.last_snapshot = applied;
            self.snapshots += 1;
        }
    }
}

/// Three nodes and the messages in flight between them, driven by one loop.
pub(crate) struct BenchCluster {
    pub(crate) drivers: Vec<NodeDriver>,
    /// Messages waiting for each node.
    inboxes: Vec<Vec<Message>>,
    /// A reused buffer for the messages being delivered.
    delivering: Vec<Message>,
    pub(crate) messages: u64,
}

impl BenchCluster {
    pub(crate) fn new(snapshot_every: Option<u64>) -> BenchCluster {
        BenchCluster {
            drivers: (1..=NODES as u64)
                .map(|id| NodeDriver::new(id, snapshot_every))
                .collect(),
            inboxes: (0..NODES).map(|_| Vec::with_capacity(1024)).collect(),
            delivering: Vec::with_capacity(1024),
            messages: 0,
        }
    }

    pub(crate) fn leader(&self) -> &RawNode<MemStorage> {
        &self.drivers[0].node
    }

    fn tick_all(&mut self) {
        for driver in &mut self.drivers {
            driver.node.tick();
        }
    }

    fn idle(&self) -> bool {
        self.inboxes.iter().all(Vec::is_empty) && self.drivers.iter().all(|d| !d.node.has_ready())
    }

    fn all_applied(&self, index: LogIndex) -> bool {
        self.drivers
            .iter()
            .all(|d| d.node.raft().log().applied() >= index)
    }

    /// One round: each node in turn takes its messages and handles its batches.
    fn round(&mut self, mut clients: Option<&mut Clients>) {
        for i in 0..NODES {
            std::mem::swap(&mut self.inboxes[i], &mut self.delivering);
            self.messages += self.delivering.len() as u64;
            for message in self.delivering.drain(..) {
                self.drivers[i]
                    .node
                    .step(message)
                    .expect("messages are addressed correctly");
            }
            while self.drivers[i].node.has_ready() {
                self.handle_ready(i, clients.as_deref_mut());
            }
        }
    }

    /// Handles one batch of node `i`, delivering its messages straight into the addressees'
    /// inboxes; on the leader, answers the clients whose writes were applied and proposes their
    /// next writes.
    fn handle_ready(&mut self, i: usize, clients: Option<&mut Clients>) {
        let inboxes = &mut self.inboxes;
        let mut clients = clients.filter(|_| i == 0);
        let mut answered_at = None;
        self.drivers[i].handle_ready(
            |message| inboxes[slot(message.to)].push(message),
            |index| {
                if let Some(clients) = clients.as_deref_mut() {
                    let now = *answered_at.get_or_insert_with(Instant::now);
                    clients.answer(index, now);
                }
            },
        );
        // The clients that were answered make their next write at once; it goes out with the
        // next batch, together with every other write proposed meanwhile.
        if let (Some(clients), Some(now)) = (clients, answered_at) {
            propose_ready_clients(&mut self.drivers[0].node, clients, now);
        }
    }

    /// Node 1 campaigns; returns once it leads and its first entry (the no-op of its term) is
    /// applied on every node, as openraft's benchmark waits for its first entries on every node.
    pub(crate) fn elect_node_1(&mut self) {
        self.drivers[0].node.campaign();
        let mut ticks = 0;
        loop {
            self.round(None);
            let leader = self.leader().raft();
            let committed = leader.log().committed();
            if leader.role() == Role::Leader
                && committed > LogIndex(0)
                && self.all_applied(committed)
            {
                return;
            }
            if self.idle() {
                // The commit index reaches the followers with the next heartbeat.
                self.tick_all();
                ticks += 1;
                assert!(ticks < 1000, "node 1 did not become leader");
            }
        }
    }

    /// The outcome of a run whose clients started when node 1 led in `leader_term` and took
    /// `elapsed`.
    pub(crate) fn outcome(
        &self,
        clients: Clients,
        elapsed: Duration,
        leader_term: Term,
        leader_fixed: bool,
    ) -> CoreRun {
        let check = self.work_done(
            &clients,
            (leader_term, self.leader().raft().term()),
            leader_fixed,
        );
        CoreRun {
            clients: clients.proposed.len(),
            ops: clients.completed,
            elapsed,
            latency_ns: clients.latency_ns,
            check,
        }
    }

    fn work_done(
        &self,
        clients: &Clients,
        leader_terms: (Term, Term),
        leader_fixed: bool,
    ) -> WorkDone {
        let d = &self.drivers;
        WorkDone {
            proposed_per_client: clients.proposed.clone(),
            answered_per_client: clients.answered.clone(),
            applied_writes: std::array::from_fn(|i| d[i].applied_writes),
            reapplied: std::array::from_fn(|i| d[i].reapplied),
            stored_writes: std::array::from_fn(|i| d[i].stored_writes),
            last_index: std::array::from_fn(|i| d[i].node.raft().log().last_index()),
            first_index: std::array::from_fn(|i| d[i].node.raft().log().first_index()),
            committed: std::array::from_fn(|i| d[i].node.raft().log().committed()),
            durable_commit: std::array::from_fn(|i| d[i].hard_state.commit),
            leader_terms,
            leader_fixed,
            messages: self.messages,
            snapshots: std::array::from_fn(|i| d[i].snapshots),
            snapshot_installs: std::array::from_fn(|i| d[i].snapshot_installs),
        }
    }
}

/// Proposes the next write of every client waiting to make one.
fn propose_ready_clients(leader: &mut RawNode<MemStorage>, clients: &mut Clients, now: Instant) {
    let mut pending = std::mem::take(&mut clients.pending);
    clients.issue(|client| {
        let (index, _term) = leader
            .propose(Vec::new())
            .expect("the fixed leader accepts every write");
        pending.push_back(Pending {
            index,
            client,
            issued: now,
        });
    });
    clients.pending = pending;
}

/// Runs the core benchmark once, in the shape `options.shape` says.
pub fn run(options: &CoreOptions) -> CoreRun {
    match options.shape {
        Shape::Loop => run_loop(options),
        Shape::Threads => crate::threads::run(options),
    }
}

fn run_loop(options: &CoreOptions) -> CoreRun {
    assert!(options.clients > 0, "at least one client");
    let per_client = (options.ops / options.clients as u64).max(1);
    let total = per_client * options.clients as u64;
    let mut cluster = BenchCluster::new(options.snapshot_every);
    cluster.elect_node_1();
    let leader_term = cluster.leader().raft().term();

    let mut clients = Clients::new(options.clients, per_client);
    let start = Instant::now();
    let mut last_tick = start;
    let mut leader_fixed = true;
    propose_ready_clients(&mut cluster.drivers[0].node, &mut clients, start);
    while clients.completed < total {
        cluster.round(Some(&mut clients));
        leader_fixed &= cluster.leader().raft().role() == Role::Leader;
        assert!(leader_fixed, "node 1 lost leadership during the run");
        let now = Instant::now();
        if now.duration_since(last_tick) >= options.tick {
            cluster.tick_all();
            last_tick = now;
        }
    }
    let elapsed = start.elapsed();

    // Let the followers learn the final commit index (it rides on the next heartbeat) and
    // apply everything, so the check sees the whole work.
    let final_commit = cluster.leader().raft().log().committed();
    for _ in 0..100 {
        if cluster.all_applied(final_commit) {
            break;
        }
        cluster.tick_all();
        while !cluster.idle() {
            cluster.round(Some(&mut clients));
        }
    }
    cluster.outcome(clients, elapsed, leader_term, leader_fixed)
}
