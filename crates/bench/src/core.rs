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
    /// Each node takes a snapshot (with empty data: the state machine holds nothing) and
    /// compacts its log every this many applied entries, keeping
    /// [`Config::snapshot_trailing_entries`]; `None` keeps the whole log. openraft's default
    /// policy, which its benchmark keeps, is a snapshot every 5000 entries with 1000 kept.
    pub snapshot_every: Option<u64>,
    /// Wall-clock time of one Raft tick (heartbeats go out every tick; elections time out after
    /// 10 to 20 ticks). `skiff serve` ticks every 10 ms.
    pub tick: Duration,
}

impl CoreOptions {
    /// `clients` clients making `ops` writes in all, with the defaults for the rest.
    pub fn new(clients: usize, ops: u64) -> CoreOptions {
        CoreOptions {
            clients,
            ops,
            snapshot_every: Some(5000),
            tick: Duration::from_millis(10),
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
    /// Writes per second: completed writes over elapsed time.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

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
    /// Client writes applied on each node (node 1 first), counted from the committed entries
    /// each node was handed; an index applied twice would be counted in `reapplied`.
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
    /// The term node 1 led in when the clients started, and the term at the end.
    pub leader_terms: (Term, Term),
    /// Node 1 was leader at every proposal.
    pub leader_fixed: bool,
    /// Messages delivered from node to node.
    pub messages: u64,
    /// Snapshots taken on each node.
    pub snapshots: [u64; NODES],
}

/// One write waiting to be applied on the leader.
struct Pending {
    index: LogIndex,
    client: u32,
    issued: Instant,
}

/// The closed-loop clients, as the leader's application sees them.
struct Clients {
    /// Writes each client still has to make after the one outstanding.
    remaining: Vec<u64>,
    /// Writes waiting for apply, in proposal (= log index) order.
    pending: VecDeque<Pending>,
    /// Clients that were just answered and make their next write.
    ready_to_issue: Vec<u32>,
    /// Writes answered so far.
    completed: u64,
    latency_ns: Histogram<u64>,
    proposed: Vec<u64>,
    answered: Vec<u64>,
}

impl Clients {
    fn new(clients: usize, per_client: u64) -> Clients {
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
        let nanos = now.saturating_duration_since(pending.issued).as_nanos() as u64;
        self.latency_ns.saturating_record(nanos.max(1));
        self.completed += 1;
        let client = pending.client as usize;
        self.answered[client] += 1;
        if self.remaining[client] > 0 {
            self.ready_to_issue.push(pending.client);
        }
    }
}

/// Three nodes and the messages in flight between them.
struct Cluster {
    nodes: Vec<RawNode<MemStorage>>,
    /// What each node last made durable (kept as a disk would keep it).
    hard_states: [HardState; NODES],
    /// Messages waiting for each node.
    inboxes: Vec<Vec<Message>>,
    /// A reused buffer for the messages being delivered.
    delivering: Vec<Message>,
    snapshot_every: Option<u64>,
    last_snapshot: [LogIndex; NODES],
    last_applied: [LogIndex; NODES],
    applied_writes: [u64; NODES],
    reapplied: [u64; NODES],
    stored_writes: [u64; NODES],
    messages: u64,
    snapshots: [u64; NODES],
}

fn slot(id: NodeId) -> usize {
    id.0 as usize - 1
}

impl Cluster {
    fn new(snapshot_every: Option<u64>) -> Cluster {
        let voters = (1..=NODES as u64).map(NodeId);
        let nodes = (1..=NODES as u64)
            .map(|id| {
                let mut config = Config::new(NodeId(id), voters.clone());
                config.seed = id;
                RawNode::new(config, MemStorage::new(), HardState::default())
                    .expect("a valid configuration")
            })
            .collect();
        Cluster {
            nodes,
            hard_states: [HardState::default(); NODES],
            inboxes: (0..NODES).map(|_| Vec::with_capacity(1024)).collect(),
            delivering: Vec::with_capacity(1024),
            snapshot_every,
            last_snapshot: [LogIndex(0); NODES],
            last_applied: [LogIndex(0); NODES],
            applied_writes: [0; NODES],
            reapplied: [0; NODES],
            stored_writes: [0; NODES],
            messages: 0,
            snapshots: [0; NODES],
        }
    }

    fn tick_all(&mut self) {
        for node in &mut self.nodes {
            node.tick();
        }
    }

    fn idle(&self) -> bool {
        self.inboxes.iter().all(Vec::is_empty) && self.nodes.iter().all(|n| !n.has_ready())
    }

    /// One round: each node in turn takes its messages and handles its batches.
    fn round(&mut self, mut clients: Option<&mut Clients>) {
        for i in 0..NODES {
            std::mem::swap(&mut self.inboxes[i], &mut self.delivering);
            self.messages += self.delivering.len() as u64;
            for message in self.delivering.drain(..) {
                self.nodes[i]
                    .step(message)
                    .expect("messages are addressed correctly");
            }
            while self.nodes[i].has_ready() {
                self.handle_ready(i, clients.as_deref_mut());
            }
        }
    }

    /// Persists, sends and applies one batch of node `i`; on the leader, answers the clients
    /// whose writes were applied and proposes their next writes.
    fn handle_ready(&mut self, i: usize, clients: Option<&mut Clients>) {
        let node = &mut self.nodes[i];
        let mut ready = node.ready();
        // 1. persist: the in-memory log is the durable log here.
        ready
            .write_log(node.storage_mut())
            .expect("the in-memory log accepts the leader's entries");
        self.stored_writes[i] += ready
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Normal)
            .count() as u64;
        if let Some(hard_state) = ready.hard_state {
            self.hard_states[i] = hard_state;
        }
        // 2. send: straight into the addressee's inbox.
        for message in ready
            .messages
            .drain(..)
            .chain(ready.persisted_messages.drain(..))
        {
            self.inboxes[slot(message.to)].push(message);
        }
        // 3. apply: the state machine holds nothing; a client write is answered on the leader.
        let mut answered_at = None;
        let mut clients = clients.filter(|_| i == 0);
        for entry in &ready.committed_entries {
            if entry.index <= self.last_applied[i] {
                self.reapplied[i] += 1;
                continue;
            }
            self.last_applied[i] = entry.index;
            if entry.kind != EntryKind::Normal {
                continue;
            }
            self.applied_writes[i] += 1;
            if let Some(clients) = clients.as_deref_mut() {
                let now = *answered_at.get_or_insert_with(Instant::now);
                clients.answer(entry.index, now);
            }
        }
        // 4. done.
        node.advance(ready);
        // The clients that were answered make their next write at once; it goes out with the
        // next batch, together with every other write proposed meanwhile.
        if let (Some(clients), Some(now)) = (clients, answered_at) {
            propose_ready_clients(node, clients, now);
        }
        self.maybe_snapshot(i);
    }

    fn maybe_snapshot(&mut self, i: usize) {
        let Some(every) = self.snapshot_every else {
            return;
        };
        let applied = self.nodes[i].raft().log().applied();
        if applied.0 >= self.last_snapshot[i].0 + every {
            self.nodes[i]
                .take_snapshot(applied, Vec::new())
                .expect("a snapshot of applied entries");
            self.last_snapshot[i] = applied;
            self.snapshots[i] += 1;
        }
    }
}

/// Proposes the next write of every client waiting to make one.
fn propose_ready_clients(leader: &mut RawNode<MemStorage>, clients: &mut Clients, now: Instant) {
    for client in clients.ready_to_issue.drain(..) {
        let c = client as usize;
        let (index, _term) = leader
            .propose(Vec::new())
            .expect("the fixed leader accepts every write");
        clients.remaining[c] -= 1;
        clients.proposed[c] += 1;
        clients.pending.push_back(Pending {
            index,
            client,
            issued: now,
        });
    }
}

/// Runs the core benchmark once.
pub fn run(options: &CoreOptions) -> CoreRun {
    assert!(options.clients > 0, "at least one client");
    let per_client = (options.ops / options.clients as u64).max(1);
    let total = per_client * options.clients as u64;
    let mut cluster = Cluster::new(options.snapshot_every);

    // Node 1 campaigns; the run starts once its first entry (the no-op of its term) is applied
    // on every node, as openraft's benchmark waits for its initial entry on every node.
    cluster.nodes[0].campaign();
    let mut ticks = 0;
    loop {
        cluster.round(None);
        let leader = &cluster.nodes[0];
        let ready = leader.raft().role() == Role::Leader
            && cluster
                .nodes
                .iter()
                .all(|n| n.raft().log().applied() >= leader.raft().log().committed())
            && leader.raft().log().committed() > LogIndex(0);
        if ready {
            break;
        }
        if cluster.idle() {
            // The commit index reaches the followers with the next heartbeat.
            cluster.tick_all();
            ticks += 1;
            assert!(ticks < 1000, "node 1 did not become leader");
        }
    }
    let leader_term = cluster.nodes[0].raft().term();

    let mut clients = Clients::new(options.clients, per_client);
    let start = Instant::now();
    let mut last_tick = start;
    let mut leader_fixed = true;
    propose_ready_clients(&mut cluster.nodes[0], &mut clients, start);
    while clients.completed < total {
        cluster.round(Some(&mut clients));
        leader_fixed &= cluster.nodes[0].raft().role() == Role::Leader;
        assert!(leader_fixed, "node 1 lost leadership during the run");
        let now = Instant::now();
        if now.duration_since(last_tick) >= options.tick {
            cluster.tick_all();
            last_tick = now;
        }
    }
    let elapsed = start.elapsed();

    // Let the followers learn the final commit index (it rides on the next heartbeat) and
    // apply everything, so the check below sees the whole work.
    let final_commit = cluster.nodes[0].raft().log().committed();
    for _ in 0..100 {
        if cluster
            .nodes
            .iter()
            .all(|n| n.raft().log().applied() >= final_commit)
        {
            break;
        }
        cluster.tick_all();
        while !cluster.idle() {
            cluster.round(Some(&mut clients));
        }
    }

    let check = WorkDone {
        proposed_per_client: clients.proposed.clone(),
        answered_per_client: clients.answered.clone(),
        applied_writes: cluster.applied_writes,
        reapplied: cluster.reapplied,
        stored_writes: cluster.stored_writes,
        last_index: std::array::from_fn(|i| cluster.nodes[i].raft().log().last_index()),
        first_index: std::array::from_fn(|i| cluster.nodes[i].raft().log().first_index()),
        committed: std::array::from_fn(|i| cluster.nodes[i].raft().log().committed()),
        leader_terms: (leader_term, cluster.nodes[0].raft().term()),
        leader_fixed,
        messages: cluster.messages,
        snapshots: cluster.snapshots,
    };
    debug_assert_eq!(
        cluster.nodes[0].storage().last_index(),
        check.last_index[0],
        "the leader's log is durable"
    );
    CoreRun {
        clients: options.clients,
        ops: clients.completed,
        elapsed,
        latency_ns: clients.latency_ns,
        check,
    }
}
