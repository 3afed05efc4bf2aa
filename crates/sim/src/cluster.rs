//! A simulated cluster: nodes, network, logical time and an event queue, all driven by one
//! seed. Scenario tests and randomized runs both use this API; the checkers watch every step.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use skiff_raft::{
    AppendResponse, ConfChange, ConfState, Config, Entry, EntryKind, HardState, LogIndex,
    LogStorage, Message, MessageBody, NodeId, ProposeError, RawNode, Role, Term,
};

use crate::checkers::{Checkers, LogView, Violation};
use crate::kv::{Command, KvStore, Reply};
use crate::network::{Network, NetworkOptions, Partition, Route};
use crate::node::{SimNode, SimStorage};
use crate::trace::{Trace, TraceEvent};

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
    /// Entries kept in the log below a snapshot.
    pub snapshot_trailing_entries: u64,
    /// Bytes of snapshot data per InstallSnapshot message.
    pub max_snapshot_chunk_bytes: u64,
    /// How long a batch takes to become durable, in milliseconds (uniform in the range).
    pub disk_delay_ms: (u64, u64),
    /// Entries per AppendEntries.
    pub max_append_entries: usize,
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
    /// 300–600 ms, PreVote and CheckQuorum on.
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
            snapshot_trailing_entries: 5,
            max_snapshot_chunk_bytes: 1024 * 1024,
            disk_delay_ms: (0, 3),
            max_append_entries: 64,
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
}

#[derive(Debug)]
enum Event {
    Tick { node: NodeId, life: u64 },
    Deliver(Message),
    Drive { node: NodeId, life: u64 },
    Persist { node: NodeId, life: u64 },
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

/// A read a client waits for.
#[derive(Clone, Debug)]
struct ReadWait {
    node: NodeId,
    key: String,
    /// Set once the leader confirmed the read: serve when the node has applied this far.
    index: Option<LogIndex>,
}

/// How a read ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Served: the value read (`None`: absent).
    Value(Option<String>),
    /// Refused by the node or the leader: certainly not served.
    Refused,
}

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
    paused_until_ms: BTreeMap<NodeId, u64>,
    /// Ticks a paused node missed; it catches up on them before anything else when it wakes,
    /// as a process whose timer follows a monotonic clock does.
    missed_ticks: BTreeMap<NodeId, u64>,
    drive_scheduled: BTreeSet<NodeId>,
    checkers: Checkers,
    violation: Option<Violation>,
    trace: Trace,
    stats: Stats,
    roles: BTreeMap<NodeId, Role>,
    applied_values: BTreeMap<NodeId, Vec<u64>>,
    /// Every bare value applied anywhere, by index: what a snapshot at an index contains.
    committed_values: BTreeMap<LogIndex, u64>,
    kv: BTreeMap<NodeId, KvStore>,
    /// Key-value writes a client waits for: operation id → the node that accepted it.
    write_waiters: BTreeMap<u64, NodeId>,
    /// Replies to those writes, once that node applied them.
    write_replies: BTreeMap<u64, Reply>,
    /// Reads a client waits for: request id → where and what.
    read_waiters: BTreeMap<u64, ReadWait>,
    /// Answers to those reads.
    read_replies: BTreeMap<u64, ReadOutcome>,
    proposals: Vec<Proposal>,
    hold: Option<MessageFilter>,
    held: Vec<Message>,
    /// The bootstrap configuration every node starts from (later changes come from the log).
    initial_voters: Vec<NodeId>,
}

/// Chooses messages for a scenario to hold back.
pub type MessageFilter = Box<dyn FnMut(&Message) -> bool>;

struct NodeLog<'a>(&'a RawNode<SimStorage>);

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

/// The payload a client value is written as: a [`Command::Value`], then padding.
pub fn encode_value(value: u64, padding: usize) -> Vec<u8> {
    Command::Value(value).encode(padding)
}

/// The client value in an entry, if it carries one.
pub fn decode_value(entry: &Entry) -> Option<u64> {
    if entry.kind != EntryKind::Normal {
        return None;
    }
    match Command::decode(&entry.data)? {
        Command::Value(value) => Some(value),
        _ => None,
    }
}

impl Cluster {
    /// A new cluster; every node starts as a follower at term 0 with an empty log.
    pub fn new(options: ClusterOptions) -> Cluster {
        let ids: Vec<NodeId> = (1..=options.nodes as u64).map(NodeId).collect();
        let mut cluster = Cluster {
            rng: ChaCha8Rng::seed_from_u64(options.seed),
            network: Network::new(options.network.clone()),
            trace: Trace::new(options.trace_keep, options.print_trace),
            now_ms: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            nodes: BTreeMap::new(),
            paused_until_ms: BTreeMap::new(),
            missed_ticks: BTreeMap::new(),
            drive_scheduled: BTreeSet::new(),
            checkers: Checkers::default(),
            violation: None,
            stats: Stats::default(),
            roles: BTreeMap::new(),
            applied_values: BTreeMap::new(),
            committed_values: BTreeMap::new(),
            kv: BTreeMap::new(),
            write_waiters: BTreeMap::new(),
            write_replies: BTreeMap::new(),
            read_waiters: BTreeMap::new(),
            read_replies: BTreeMap::new(),
            proposals: Vec::new(),
            hold: None,
            held: Vec::new(),
            initial_voters: ids.clone(),
            ids: ids.clone(),
            options,
        };
        for &id in &ids {
            let node = SimNode::new(cluster.config_for(id, 0));
            cluster.nodes.insert(id, node);
            cluster.roles.insert(id, Role::Follower);
            cluster.start_ticking(id, 0);
        }
        cluster
    }

    /// The node's Raft settings for its `life`-th start.
    fn config_for(&self, id: NodeId, life: u64) -> Config {
        let mut config = Config::new(id, self.initial_voters.iter().copied());
        config.election_timeout_ticks = self.options.election_timeout_ticks;
        config.heartbeat_interval_ticks = self.options.heartbeat_interval_ticks;
        config.pre_vote = self.options.pre_vote;
        config.check_quorum = self.options.check_quorum;
        config.read_lease = self.options.read_lease;
        config.snapshot_trailing_entries = self.options.snapshot_trailing_entries;
        config.max_snapshot_chunk_bytes = self.options.max_snapshot_chunk_bytes;
        config.max_append_entries = self.options.max_append_entries;
        config.seed = self.options.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ (id.0 << 32) ^ life;
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
        if let Some(raw) = self.nodes.get_mut(&node).and_then(|n| n.raw.as_mut()) {
            raw.tick();
            self.stats.ticks += 1;
            self.mark_dirty(node);
        }
    }

    /// A node that was paused first notices the time that passed.
    fn catch_up(&mut self, node: NodeId) {
        let Some(missed) = self.missed_ticks.remove(&node) else {
            return;
        };
        if let Some(raw) = self.nodes.get_mut(&node).and_then(|n| n.raw.as_mut()) {
            for _ in 0..missed {
                raw.tick();
            }
            self.stats.ticks += missed;
            self.mark_dirty(node);
        }
    }

    fn on_deliver(&mut self, message: Message) {
        let to = message.to;
        if let Some(until) = self.paused_until(to) {
            self.schedule(until, Event::Deliver(message));
            return;
        }
        self.catch_up(to);
        let Some(raw) = self.nodes.get_mut(&to).and_then(|n| n.raw.as_mut()) else {
            self.trace
                .record(self.now_ms, TraceEvent::Drop(message, "receiver down"));
            self.stats.dropped += 1;
            return;
        };
        let result = raw.step(message.clone());
        self.trace.record(self.now_ms, TraceEvent::Deliver(message));
        if let Err(err) = result {
            self.trace.record(
                self.now_ms,
                TraceEvent::Note(format!("{to} refused a message: {err}")),
            );
        }
        self.mark_dirty(to);
    }

    /// The core has work: take its next Ready now, unless a batch is still being written
    /// (then the end of that write looks again).
    fn mark_dirty(&mut self, node: NodeId) {
        let writing = self.nodes.get(&node).is_some_and(SimNode::is_writing);
        if !writing && self.drive_scheduled.insert(node) {
            let life = self.nodes[&node].incarnation;
            self.schedule(self.now_ms, Event::Drive { node, life });
        }
    }

    /// First half of a driver pass: take a Ready, send what may go at once, start the write.
    fn on_drive(&mut self, node: NodeId, life: u64) {
        if !self.is_current_life(node, life) {
            return;
        }
        if let Some(until) = self.paused_until(node) {
            self.schedule(until, Event::Drive { node, life });
            return;
        }
        self.catch_up(node);
        self.drive_scheduled.remove(&node);
        let sim_node = self.nodes.get_mut(&node).expect("known node");
        if !sim_node.can_begin() {
            return;
        }
        let out = sim_node.begin();
        let raw = sim_node.raw.as_ref().expect("a running node was driven");
        let term = raw.raft().term();
        let log = NodeLog(raw);
        let mut result = Ok(());
        if let Some(soft) = out.soft_state {
            let previous = self.roles.insert(node, soft.role);
            self.trace.record(
                self.now_ms,
                TraceEvent::Role {
                    node,
                    term,
                    role: soft.role,
                    leader: soft.leader,
                },
            );
            if previous == Some(Role::Leader) && soft.role != Role::Leader {
                self.checkers.left_leadership(node);
            }
            match soft.role {
                Role::Candidate if previous != Some(Role::Candidate) => self.stats.elections += 1,
                Role::Leader if previous != Some(Role::Leader) => {
                    self.stats.leaders_elected += 1;
                    result = result.and(self.checkers.became_leader(node, term, &log));
                }
                _ => {}
            }
        }
        let (term_now, is_leader) = (raw.raft().term(), raw.raft().role() == Role::Leader);
        result = result.and(self.checkers.log_settled(node, term_now, is_leader, &log));
        if let Err(violation) = result {
            self.record_violation(violation);
        }
        for message in out.messages {
            self.send(message);
        }
        for read in out.read_states {
            if let Some(wait) = self
                .read_waiters
                .get_mut(&read.ctx)
                .filter(|wait| wait.node == node)
            {
                wait.index = Some(read.index);
            }
        }
        for ctx in out.failed_reads {
            if self
                .read_waiters
                .get(&ctx)
                .is_some_and(|wait| wait.node == node)
            {
                self.read_waiters.remove(&ctx);
                self.read_replies.insert(ctx, ReadOutcome::Refused);
            }
        }
        self.serve_reads(node);
        let (low, high) = self.options.disk_delay_ms;
        let delay = self.rng.gen_range(low..=high);
        self.schedule(self.now_ms + delay, Event::Persist { node, life });
    }

    /// Second half, when the disk write completes: persist, send what needed durability,
    /// apply, advance.
    fn on_persist(&mut self, node: NodeId, life: u64) {
        if !self.is_current_life(node, life) {
            return;
        }
        if let Some(until) = self.paused_until(node) {
            self.schedule(until, Event::Persist { node, life });
            return;
        }
        self.catch_up(node);
        let out = self.nodes.get_mut(&node).expect("known node").finish();
        let mut result = Ok(());
        if let Some((meta, data)) = &out.installed_snapshot {
            self.trace.record(
                self.now_ms,
                TraceEvent::Note(format!("{node} installed the snapshot at {}", meta.index)),
            );
            self.stats.snapshot_installs += 1;
            result = self.restore_state_machine(node, meta.index, data);
        }
        let raw = self.nodes[&node]
            .raw
            .as_ref()
            .expect("a running node was driven");
        let log = NodeLog(raw);
        let (term_now, is_leader) = (raw.raft().term(), raw.raft().role() == Role::Leader);
        if !out.persisted_entries.is_empty() {
            result = result.and(self.checkers.persisted_entries(
                node,
                &out.persisted_entries,
                &log,
            ));
        }
        if let Some(hard_state) = out.persisted_hard_state {
            result = result.and(self.checkers.persisted_commit(node, hard_state.commit));
        }

        for entry in &out.applied {
            let command = (entry.kind == EntryKind::Normal)
                .then(|| Command::decode(&entry.data))
                .flatten();
            let kv = self.kv.entry(node).or_default();
            let reply = command.as_ref().map(|command| kv.apply(command));
            result = result.and(self.checkers.applied(node, term_now, entry, kv.digest()));
            match (command, reply) {
                (Some(Command::Value(value)), _) => {
                    self.committed_values.insert(entry.index, value);
                    self.applied_values.entry(node).or_default().push(value)
                }
                (Some(command), Some(reply)) => {
                    let op = command
                        .op_id()
                        .expect("key-value commands carry an operation id");
                    if self.write_waiters.get(&op) == Some(&node) {
                        self.write_waiters.remove(&op);
                        self.write_replies.insert(op, reply);
                    }
                }
                _ => {}
            }
        }
        result = result.and(self.checkers.log_settled(node, term_now, is_leader, &log));
        if let Err(violation) = result {
            self.record_violation(violation);
        }
        for message in out.persisted_messages {
            self.send(message);
        }
        self.maybe_take_snapshot(node);
        self.serve_reads(node);
        self.mark_dirty(node);
    }

    /// `node`'s state machine restarts from snapshot `data` taken at `index` (received from the
    /// leader, or read from its disk at restart). It then holds the effect of every value
    /// applied up to `index`.
    fn restore_state_machine(
        &mut self,
        node: NodeId,
        index: LogIndex,
        data: &[u8],
    ) -> Result<(), Violation> {
        let kv = KvStore::decode(data).expect("the simulator's snapshots decode");
        let result = if index.0 > 0 {
            self.checkers.restored(node, index, kv.digest())
        } else {
            Ok(())
        };
        self.kv.insert(node, kv);
        let values = self
            .committed_values
            .range(..=index)
            .map(|(_, &value)| value)
            .collect();
        self.applied_values.insert(node, values);
        result
    }

    /// Snapshots `node`'s state machine once it applied `snapshot_every_entries` past its last
    /// snapshot.
    fn maybe_take_snapshot(&mut self, node: NodeId) {
        let every = self.options.snapshot_every_entries;
        if every == 0 {
            return;
        }
        let applied = self.applied(node);
        let Some(raw) = self.nodes.get_mut(&node).and_then(|n| n.raw.as_mut()) else {
            return;
        };
        if applied.0 < raw.storage().snapshot_meta().index.0 + every {
            return;
        }
        let data = self.kv.get(&node).map(KvStore::encode).unwrap_or_default();
        if raw.take_snapshot(applied, data).is_ok() {
            self.stats.snapshots += 1;
            self.trace.record(
                self.now_ms,
                TraceEvent::Note(format!("{node} took a snapshot at {applied}")),
            );
        }
    }

    /// Answers the confirmed reads on `node` whose index it has applied.
    fn serve_reads(&mut self, node: NodeId) {
        let applied = self.applied(node);
        let ready: Vec<u64> = self
            .read_waiters
            .iter()
            .filter(|(_, wait)| {
                wait.node == node && wait.index.is_some_and(|index| index <= applied)
            })
            .map(|(&ctx, _)| ctx)
            .collect();
        for ctx in ready {
            let wait = self.read_waiters.remove(&ctx).expect("listed above");
            let value = self.kv.get(&node).and_then(|kv| kv.get(&wait.key)).cloned();
            self.trace.record(
                self.now_ms,
                TraceEvent::Note(format!(
                    "{node} served read {ctx} of {}: {value:?}",
                    wait.key
                )),
            );
            self.stats.reads += 1;
            self.read_replies.insert(ctx, ReadOutcome::Value(value));
        }
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

    fn send(&mut self, message: Message) {
        if let Some(hold) = self.hold.as_mut() {
            if hold(&message) {
                self.trace.record(
                    self.now_ms,
                    TraceEvent::Note(format!("held back: {message}")),
                );
                self.held.push(message);
                return;
            }
        }
        self.stats.messages += 1;
        if matches!(
            message.body,
            MessageBody::AppendEntriesResponse {
                result: AppendResponse::Rejected { .. },
                ..
            }
        ) {
            self.stats.append_rejections += 1;
        }
        if message.body.is_request() {
            self.stats.requests += 1;
        }
        self.stats.entry_bytes_sent += message.entries_bytes();
        match self.network.route(&message, &mut self.rng) {
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

    /// From now on, messages for which `filter` holds are kept back instead of sent.
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
        self.schedule(self.now_ms + delay_ms, Event::Deliver(message));
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
        let Some(raw) = self.nodes.get_mut(&leader).and_then(|n| n.raw.as_mut()) else {
            return false;
        };
        if raw.transfer_leadership(to).is_err() {
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
        let node = SimNode::new(self.config_for(id, 0));
        self.nodes.insert(id, node);
        self.roles.insert(id, Role::Follower);
        self.ids.push(id);
        self.start_ticking(id, 0);
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

    /// The running core of `node`, as a client reaches it: a paused process does not answer,
    /// and a process that was paused first notices the time that passed.
    fn client_node(&mut self, node: NodeId) -> Option<&mut RawNode<SimStorage>> {
        if self.paused_until(node).is_some() {
            return None;
        }
        self.catch_up(node);
        self.nodes.get_mut(&node).and_then(|n| n.raw.as_mut())
    }

    /// Proposes a membership change to `node`.
    pub fn propose_conf_change(
        &mut self,
        node: NodeId,
        change: ConfChange,
    ) -> Result<(LogIndex, Term), ProposeError> {
        let Some(raw) = self.client_node(node) else {
            return Err(ProposeError::NotLeader { leader_hint: None });
        };
        let text = format!("{change:?}");
        let accepted = raw.propose_conf_change(change)?;
        self.stats.conf_changes += 1;
        self.trace.record(
            self.now_ms,
            TraceEvent::Note(format!(
                "{node} accepted {text} at {}/{}",
                accepted.0, accepted.1
            )),
        );
        self.mark_dirty(node);
        Ok(accepted)
    }

    /// The membership `node` has in force (empty while it is down).
    pub fn conf(&self, node: NodeId) -> ConfState {
        self.raw(node)
            .map(|raw| raw.raft().conf_state())
            .unwrap_or_default()
    }

    /// Makes `node` start an election now, as if its timer had fired.
    pub fn campaign_now(&mut self, node: NodeId) {
        if let Some(raw) = self.nodes.get_mut(&node).and_then(|n| n.raw.as_mut()) {
            raw.campaign();
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

    /// Proposes `value` to `node`, whatever its role.
    pub fn propose_to(
        &mut self,
        node: NodeId,
        value: u64,
        padding: usize,
    ) -> Result<Proposal, ProposeError> {
        let Some(raw) = self.client_node(node) else {
            return Err(ProposeError::NotLeader { leader_hint: None });
        };
        let (index, term) = raw.propose(encode_value(value, padding))?;
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
        self.mark_dirty(node);
        Ok(proposal)
    }

    /// Proposes a key-value `command` to `node`; once `node` applies it, its reply is kept for
    /// [`take_write_reply`](Cluster::take_write_reply).
    pub fn propose_command(
        &mut self,
        node: NodeId,
        command: &Command,
    ) -> Result<(LogIndex, Term), ProposeError> {
        let Some(raw) = self.client_node(node) else {
            return Err(ProposeError::NotLeader { leader_hint: None });
        };
        let (index, term) = raw.propose(command.encode(0))?;
        if let Some(op) = command.op_id() {
            self.write_waiters.insert(op, node);
        }
        self.stats.proposals += 1;
        self.trace.record(
            self.now_ms,
            TraceEvent::Note(format!("{node} accepted {command:?} at {index}/{term}")),
        );
        self.mark_dirty(node);
        Ok((index, term))
    }

    /// Asks `node` for a linearizable read of `key`, identified by `ctx`. On refusal, returns
    /// the leader the node knows of.
    pub fn read(&mut self, node: NodeId, ctx: u64, key: &str) -> Result<(), Option<NodeId>> {
        let Some(raw) = self.client_node(node) else {
            return Err(None);
        };
        let leader = raw.raft().leader();
        raw.read_index(ctx)
            .map_err(|_| leader.filter(|&l| l != node))?;
        self.read_waiters.insert(
            ctx,
            ReadWait {
                node,
                key: key.to_string(),
                index: None,
            },
        );
        self.mark_dirty(node);
        Ok(())
    }

    /// The answer to read `ctx`, once there is one.
    pub fn take_read_reply(&mut self, ctx: u64) -> Option<ReadOutcome> {
        self.read_replies.remove(&ctx)
    }

    /// The answer to read `ctx`, if there is one, without taking it.
    pub fn peek_read_reply(&self, ctx: u64) -> Option<ReadOutcome> {
        self.read_replies.get(&ctx).cloned()
    }

    /// Stops waiting for read `ctx`.
    pub fn forget_read(&mut self, ctx: u64) {
        self.read_waiters.remove(&ctx);
        self.read_replies.remove(&ctx);
    }

    /// The reply to write `op`, if the node that accepted it has applied it.
    pub fn take_write_reply(&mut self, op: u64) -> Option<Reply> {
        self.write_replies.remove(&op)
    }

    /// Stops waiting for write `op` (the client gave up).
    pub fn forget_write(&mut self, op: u64) {
        self.write_waiters.remove(&op);
        self.write_replies.remove(&op);
    }

    /// `node`'s key-value state.
    pub fn kv(&self, node: NodeId) -> Option<&KvStore> {
        self.kv.get(&node)
    }

    /// Every proposal a leader accepted, in order.
    pub fn proposals(&self) -> &[Proposal] {
        &self.proposals
    }

    // ---- faults ----

    /// Crashes `node`: everything it had not persisted is lost.
    pub fn crash(&mut self, node: NodeId) {
        let Some(sim_node) = self.nodes.get_mut(&node) else {
            return;
        };
        if !sim_node.is_up() {
            return;
        }
        sim_node.crash();
        self.checkers.crashed(node);
        self.roles.insert(node, Role::Follower);
        self.applied_values.remove(&node);
        self.kv.remove(&node);
        self.read_waiters.retain(|_, wait| wait.node != node);
        self.drive_scheduled.remove(&node);
        self.paused_until_ms.remove(&node);
        self.missed_ticks.remove(&node);
        self.stats.crashes += 1;
        self.trace
            .record(self.now_ms, TraceEvent::Fault(format!("crash {node}")));
    }

    /// Restarts a crashed `node` from its durable state.
    pub fn restart(&mut self, node: NodeId) {
        let Some(sim_node) = self.nodes.get(&node) else {
            return;
        };
        if sim_node.is_up() {
            return;
        }
        let life = sim_node.incarnation + 1;
        let config = self.config_for(node, life);
        let sim_node = self.nodes.get_mut(&node).expect("checked above");
        let (snapshot, data) = match sim_node.restart(config) {
            Ok(snapshot) => snapshot,
            Err(err) => {
                self.record_violation(Violation {
                    property: "Restart",
                    detail: format!("{node} failed to restart: {err}"),
                });
                return;
            }
        };
        let commit = sim_node.hard_state.commit;
        let raw = sim_node.raw.as_ref().expect("just restarted");
        let restarted = self.checkers.restarted(node, commit, &NodeLog(raw));
        // The state machine restarts from the snapshot on disk.
        let result = restarted.and(self.restore_state_machine(node, snapshot.index, &data));
        if let Err(violation) = result {
            self.record_violation(violation);
        }
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

    fn raw(&self, node: NodeId) -> Option<&RawNode<SimStorage>> {
        self.nodes.get(&node).and_then(|n| n.raw.as_ref())
    }

    /// Whether `node` is in the middle of a disk write.
    pub fn is_writing(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(SimNode::is_writing)
    }

    /// Whether `node` is running.
    pub fn is_up(&self, node: NodeId) -> bool {
        self.raw(node).is_some()
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
            None => self.nodes[&node].hard_state.term,
        }
    }

    /// The hard state `node` last made durable.
    pub fn hard_state(&self, node: NodeId) -> HardState {
        self.nodes[&node].hard_state
    }

    /// The first index `node`'s disk still holds (entries before it are in its snapshot).
    pub fn durable_first_index(&self, node: NodeId) -> LogIndex {
        self.nodes[&node].storage.first_index()
    }

    /// The index of the snapshot on `node`'s disk (0: none).
    pub fn snapshot_index(&self, node: NodeId) -> LogIndex {
        self.nodes[&node].storage.snapshot_meta().index
    }

    /// The bytes of log entries and snapshot on `node`'s disk.
    pub fn durable_bytes(&self, node: NodeId) -> u64 {
        let storage = &self.nodes[&node].storage;
        let (first, last) = (storage.first_index(), storage.last_index());
        let entries = storage
            .entries(first, last.next(), u64::MAX)
            .unwrap_or_default();
        entries.iter().map(Entry::size_bytes).sum::<u64>() + storage.snapshot_len()
    }

    /// The last index on `node`'s disk.
    pub fn durable_last_index(&self, node: NodeId) -> LogIndex {
        self.nodes[&node].storage.last_index()
    }

    /// `node`'s role (follower while down).
    pub fn role(&self, node: NodeId) -> Role {
        self.raw(node)
            .map_or(Role::Follower, |raw| raw.raft().role())
    }

    /// `node`'s commit index.
    pub fn commit(&self, node: NodeId) -> LogIndex {
        self.raw(node)
            .map_or(self.nodes[&node].hard_state.commit, |raw| {
                raw.raft().log().committed()
            })
    }

    /// The last index `node` applied in its current life.
    pub fn applied(&self, node: NodeId) -> LogIndex {
        self.nodes
            .get(&node)
            .filter(|n| n.is_up())
            .map_or(LogIndex(0), |n| n.applied_index)
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

    /// The client values `node` applied since it last started, in order.
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

    /// The value committed at `index`, as far as any node has applied it.
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
