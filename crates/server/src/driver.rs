//! The driver thread: the one owner of the node. It takes client requests and peer messages
//! from a bounded queue, reads the peer connections handed to it, ticks on time, and
//! runs the node's persist → send → apply → advance loop; while it writes a batch, new
//! requests queue up and go into the next batch together (group commit). It waits for all of
//! these at once ([`inbox`]).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use skiff_kv::{Command, Reply};
use skiff_node::{
    Effect, Envelope, Event, Node, NodeError, Observer, PeerMessage, RequestId, SnapshotJob,
    SyncToken,
};
use skiff_raft::{ConfChange, ConfChangeStep, NodeId, Role};
use tokio::sync::oneshot;

use crate::admin;
use crate::client::{DirectReply, ReplyTo};
use crate::disk::TimedDisk;
use crate::metrics::Metrics;
use crate::peers::Peers;
use crate::shared::{MemberStatus, NodeStatus, Shared};
use crate::snapshotter::{Snapshotter, Written};
use crate::syncer::{sync_failed, writer_gone, Synced, Syncer};

mod inbox;
mod keyspace;
pub(crate) mod log_tail;
mod notes;
mod status;
pub(crate) mod traffic;

pub use inbox::{inbox, Bell, Inbox, ToDriver};

/// The most client requests in flight for the driver to write their replies to the sockets
/// itself. With one client waiting, the hand-off to its connection's task is most of what the
/// driver can save it; with many, the writes (each waking a client, which may take this
/// thread's core) would hold up the next batch for all of them, and stay on the runtime's
/// threads.
const MAX_IN_FLIGHT_FOR_DIRECT_REPLIES: usize = 4;

/// How many entries a leader applies before it answers their clients and goes on
/// ([`Driver::apply_durable_in_steps`]): about 0.2 ms of applying at 100,000 keys.
const APPLY_STEP: usize = 64;

/// Work for the driver thread.
#[derive(Debug)]
pub enum Input {
    /// A client command; the reply goes back on `reply`.
    Client {
        /// The command.
        command: Command,
        /// Where the reply goes.
        reply: oneshot::Sender<Reply>,
        /// The client's exactly-once session, for a write from a client connection: the
        /// node sends it again if a leader change loses its outcome (thesis §6.3).
        session: Option<skiff_node::ClientSession>,
    },
    /// A client connection's command, whose reply the driver may write to the connection's
    /// socket itself ([`crate::client::DirectReply`]).
    Connection {
        /// The command.
        command: Command,
        /// Where the reply goes.
        reply: DirectReply,
        /// The client's exactly-once session, for a write (thesis §6.3).
        session: Option<skiff_node::ClientSession>,
    },
    /// A message from another node.
    Peer(Envelope),
    /// A peer connection (plain, or TLS with its session) whose Hello was accepted: the
    /// driver reads it from now on.
    PeerSocket(Box<crate::transport::inbound::PeerSocket>),
    /// An operator's request.
    Admin {
        /// What to do.
        request: AdminRequest,
        /// The outcome, as text.
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// A backup, once the node has answered its linearizable read: the snapshot file that
    /// covers the applied index, opened.
    Backup(crate::backup::SourceReply),
}

/// Operator requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminRequest {
    /// Hand leadership to this node.
    TransferLeader(u64),
    /// Snapshot the state machine now.
    Snapshot,
    /// Record a new node's peer address, then add it as a learner.
    AddLearner {
        /// The new node's id.
        id: u64,
        /// Its peer address.
        peer_addr: String,
        /// Skip the check that a majority of the voters in force is reachable.
        force: bool,
    },
    /// Make a caught-up learner a voter.
    Promote {
        /// The learner's id.
        id: u64,
        /// Skip the check that a majority of the new voters is reachable.
        force: bool,
    },
    /// Start an election on this node now (demonstrations only).
    Campaign,
    /// Turn PreVote on or off for this node's next elections (demonstrations only).
    PreVote(bool),
    /// Remove a member.
    Remove {
        /// The member's id.
        id: u64,
        /// Skip the check that a majority of the remaining voters is reachable.
        force: bool,
    },
}

/// An operator request waiting for its entry to be applied.
enum AdminWait {
    /// Answer when this entry is applied, with the configuration it leaves in words.
    Done(oneshot::Sender<Result<String, String>>, String),
    /// The address is recorded: now add the node as a learner.
    ThenAddLearner {
        id: u64,
        reply: oneshot::Sender<Result<String, String>>,
        outcome: String,
    },
}

/// How the driver runs.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// Time per Raft tick.
    pub tick: Duration,
    /// How long a client request may wait for its reply.
    pub request_timeout: Duration,
    /// The cluster id.
    pub cluster_id: u64,
    /// The initial members' peer addresses.
    pub peer_addrs: BTreeMap<u64, SocketAddr>,
    /// Sync each batch on a dedicated writer thread, overlapping the fsync with stepping,
    /// ticking and (on a leader) applying, instead of on the driver thread.
    pub sync_thread: bool,
    /// The most bytes per second a snapshot file is written at (0: unpaced).
    pub snapshot_write_bytes_per_second: u64,
}

pub use crate::peers::ConnectPeer;

/// A request waiting for its reply.
struct Waiting {
    reply: ReplyTo,
    started: Instant,
    deadline: Instant,
    read: bool,
}

impl Waiting {
    /// Sends the reply and records how long it took; `direct`: the driver may write it to
    /// the client's socket itself.
    fn answer(self, reply: Reply, metrics: &Metrics, direct: bool) {
        let kind = if self.read {
            &metrics.reads
        } else {
            &metrics.writes
        };
        let duration = if reply.is_error() {
            &kind.error
        } else {
            &kind.ok
        };
        duration.observe(self.started.elapsed().as_secs_f64());
        if direct {
            self.reply.send(reply);
        } else {
            self.reply.send_to_writer(reply);
        }
    }
}

/// Records each durable batch's size, and its entries' kinds for the live view.
struct BatchSizes<'a>(&'a Metrics, &'a mut log_tail::RecentKinds);

impl Observer<skiff_kv::StateMachine> for BatchSizes<'_> {
    fn persisted(&mut self, entries: &[skiff_raft::Entry], _: Option<skiff_raft::HardState>) {
        if !entries.is_empty() {
            self.0.append_batch_entries.observe(entries.len() as f64);
            self.1.persisted(entries);
        }
    }
}

/// The driver thread's state.
pub struct Driver {
    node: Node<TimedDisk>,
    options: DriverOptions,
    /// The input queue, and the peer connections this thread reads.
    inbox: Inbox,
    /// Where a peer connection's bytes are read into.
    scratch: Vec<u8>,
    /// A queue per peer.
    peers: Peers,
    shared: Arc<Shared>,
    /// Client requests waiting for their reply, by id (ids grow with arrival).
    waiting: BTreeMap<RequestId, Waiting>,
    admin_waiting: HashMap<RequestId, (AdminWait, Instant)>,
    next_request: RequestId,
    last_leader: Option<NodeId>,
    /// The term at the last dispatch, to notice each new election.
    last_term: u64,
    /// The writer thread that syncs each batch, if the driver does not sync them itself.
    syncer: Option<Syncer>,
    /// Operators waiting for the snapshot they asked the node for.
    snapshot_requests: Vec<oneshot::Sender<Result<String, String>>>,
    /// Writes snapshot files off this thread.
    snapshotter: Snapshotter,
    /// Operators waiting for the snapshot being written.
    snapshot_waiting: Vec<oneshot::Sender<Result<String, String>>>,
    /// Peers refused for their incarnation, logged once each.
    refused_peers: std::collections::BTreeSet<u64>,
    /// Backups waiting for a snapshot that covers them.
    backups: crate::backup::Pending,
    /// The kinds of the last durable entries, for the live view.
    recent_kinds: log_tail::RecentKinds,
    /// Messages sent to and received from each peer, for the live view.
    traffic: traffic::Traffic,
}

impl Driver {
    /// A driver for `node`, reaching peers through queues that `connect_peer` opens.
    pub fn new(
        node: Node<TimedDisk>,
        options: DriverOptions,
        inbox: Inbox,
        connect_peer: ConnectPeer,
        shared: Arc<Shared>,
    ) -> std::io::Result<Driver> {
        let syncer = if options.sync_thread {
            let metrics = shared.metrics.clone();
            Some(Syncer::spawn(node.id().0, metrics, inbox.bell())?)
        } else {
            None
        };
        let peer_addrs = options.peer_addrs.clone();
        let snapshotter = Snapshotter::new(inbox.bell(), options.snapshot_write_bytes_per_second);
        let mut driver = Driver {
            node,
            options,
            snapshotter,
            inbox,
            scratch: vec![0; crate::transport::inbound::READ_BYTES],
            peers: Peers::new(connect_peer, peer_addrs, shared.clone()),
            shared,
            waiting: BTreeMap::new(),
            admin_waiting: HashMap::new(),
            next_request: 1,
            last_leader: None,
            last_term: 0,
            syncer,
            snapshot_requests: Vec::new(),
            snapshot_waiting: Vec::new(),
            refused_peers: Default::default(),
            backups: Default::default(),
            recent_kinds: Default::default(),
            traffic: Default::default(),
        };
        driver.shared.set_tick(driver.options.tick);
        driver.refresh_peers();
        Ok(driver)
    }

    /// Connects to every member, as [`Peers::refresh`] does.
    fn refresh_peers(&mut self) {
        let conf = self.node.raw().raft().conf_state();
        let members: Vec<NodeId> = conf
            .voters
            .iter()
            .chain(&conf.voters_outgoing)
            .chain(&conf.learners)
            .copied()
            .collect();
        self.peers
            .refresh(self.node.id(), &members, self.node.member_addresses());
        self.traffic.retain(&members);
    }

    fn next_request_id(&mut self) -> RequestId {
        let id = self.next_request;
        self.next_request += 1;
        id
    }

    /// Runs until every input sender is gone, or the disk fails.
    pub fn run(mut self) -> Result<(), NodeError> {
        let mut next_tick = Instant::now() + self.shared.tick();
        self.publish_status();
        loop {
            // The live view may slow the node down (or speed it up) while it runs.
            let tick = self.shared.tick();
            next_tick = next_tick.min(Instant::now() + tick);
            let wait = next_tick.saturating_duration_since(Instant::now());
            let (written, synced) = (&self.snapshotter.done, self.syncer.as_ref());
            self.inbox.wait(wait, || {
                !written.is_empty() || synced.is_some_and(|s| !s.done.is_empty())
            });
            // Take everything already queued, so it shares one batch (and one fsync).
            for _ in 0..16_384 {
                match self.inbox.try_recv() {
                    Ok(Some(input)) => self.handle(input),
                    Ok(None) => break,
                    Err(()) => return Ok(()),
                }
            }
            self.read_peers();
            if let Ok(written) = self.snapshotter.done.try_recv() {
                self.snapshot_written(written)?;
            }
            if let Some(Ok(synced)) = self.syncer.as_ref().map(|s| s.done.try_recv()) {
                self.synced(synced)?;
            }
            let now = Instant::now();
            if now >= next_tick {
                self.node.set_wall_clock_ms(wall_clock_ms());
                self.node.tick();
                next_tick += tick;
                if next_tick < now {
                    // The thread fell behind (a long fsync, a paused process): do not replay
                    // the missed ticks in a burst.
                    next_tick = now + tick;
                }
                self.expire_requests(now);
                self.publish_status();
                if self.peers.refresh_due(now) {
                    // A Hello may have given a new address for a node the log does not know.
                    self.refresh_peers();
                }
            }
            self.process()?;
        }
    }

    fn handle(&mut self, input: Input) {
        // Log time: a leader stamps what it proposes with the wall clock.
        self.node.set_wall_clock_ms(wall_clock_ms());
        match input {
            Input::Client {
                command,
                reply,
                session,
            } => self.handle_client(command, ReplyTo::Channel(reply), session),
            Input::Connection {
                command,
                reply,
                session,
            } => self.handle_client(command, ReplyTo::Connection(reply), session),
            Input::Peer(message) => self.handle_peer(message),
            Input::PeerSocket(socket) => {
                // Closed on a refusal; the peer dials again.
                if self.inbox.adopt(*socket).is_err() {
                    self.shared.metrics.error("peer_unwatched");
                }
            }
            Input::Admin { request, reply } => self.handle_admin(request, reply),
            Input::Backup(reply) => {
                // Everything applied now is in the snapshot the backup gets; one in flight
                // is now waited for, so it stops sleeping.
                self.backups.push(self.node.applied(), reply);
                self.snapshotter.hurry();
                if let Err(error) = self.node.request_snapshot() {
                    self.backups
                        .fail(&format!("could not take a snapshot: {error}"));
                }
            }
        }
    }

    /// Reads the peer connections this thread took over, a bounded amount from each
    /// ([`crate::transport::inbound`]), stepping their messages in the order sent; a
    /// connection that closed or sent what the reader task would refuse is dropped.
    fn read_peers(&mut self) {
        let mut peers = self.inbox.take_peers();
        let mut scratch = std::mem::take(&mut self.scratch);
        let shared = self.shared.clone();
        crate::transport::inbound::read_turns(&mut peers, &shared, &mut scratch, |message| {
            self.handle(Input::Peer(message))
        });
        self.scratch = scratch;
        self.inbox.put_back(peers);
    }

    /// A client's command: counted, timed, and handed to the node.
    fn handle_client(
        &mut self,
        command: Command,
        reply: ReplyTo,
        session: Option<skiff_node::ClientSession>,
    ) {
        let id = self.next_request_id();
        let metrics = &self.shared.metrics;
        let read = command.is_read_only();
        if read {
            metrics.reads.requests.inc();
        } else {
            metrics.writes.requests.inc();
            if self.node.raw().raft().role() == Role::Leader {
                metrics.proposals.inc();
            }
        }
        let now = Instant::now();
        self.waiting.insert(
            id,
            Waiting {
                reply,
                started: now,
                deadline: now + self.options.request_timeout,
                read,
            },
        );
        self.node.submit_in_session(id, command, session);
    }

    /// A peer's message: stepped, or refused and counted.
    fn handle_peer(&mut self, message: Envelope) {
        if matches!(message.message, PeerMessage::Forward { .. }) {
            self.shared.metrics.proposals.inc();
        }
        let peer = message.from().0;
        self.traffic.received(&message);
        match self.node.step(message) {
            Ok(()) => {}
            // The last chunk of a snapshot came before the chunks it completes were
            // staged: honest reordering, resent with the next heartbeat.
            Err(error @ skiff_node::PeerMessageError::SnapshotNotStaged { .. }) => {
                tracing::debug!(node = self.node.id().0, peer, %error, "a snapshot's last chunk came early");
            }
            // §3.8: a wiped peer forgot its votes; every message of it is refused, logged once.
            Err(error @ skiff_node::PeerMessageError::WrongIncarnation { .. }) => {
                self.shared.metrics.error("wrong_incarnation");
                if self.refused_peers.insert(peer) {
                    tracing::error!(node = self.node.id().0, peer, "{error}");
                }
            }
            Err(error) => {
                // Refused before it reached the core's state or the disk.
                self.shared.metrics.error("peer_message_refused");
                tracing::warn!(node = self.node.id().0, peer, %error, "refused a message from a peer");
            }
        }
    }

    /// An operator's request: checked, then done at once or proposed.
    fn handle_admin(
        &mut self,
        request: AdminRequest,
        reply: oneshot::Sender<Result<String, String>>,
    ) {
        let deadline = Instant::now() + self.options.request_timeout;
        let change = |step| ConfChange { steps: vec![step] };
        let mut addresses: BTreeMap<u64, String> = self
            .options
            .peer_addrs
            .iter()
            .map(|(id, addr)| (*id, addr.to_string()))
            .collect();
        addresses.extend(
            self.node
                .member_addresses()
                .iter()
                .map(|(id, addr)| (id.0, addr.clone())),
        );
        let view = admin::ClusterView::of(self.node.raw().raft(), addresses);
        let outcome = match admin::check(&view, &request) {
            Ok(outcome) => outcome.map(|o| o.to_string()).unwrap_or_default(),
            Err(error) => {
                let _ = reply.send(Err(error.to_string()));
                return;
            }
        };
        let voter_change = match &request {
            AdminRequest::Promote { id, .. } => Some(ConfChangeStep::AddVoter(NodeId(*id))),
            AdminRequest::Remove { id, .. } => Some(ConfChangeStep::Remove(NodeId(*id))),
            _ => None,
        };
        if let Some(step) = voter_change {
            self.propose_admin_change(change(step), reply, outcome, deadline);
            return;
        }
        let answer = match request {
            AdminRequest::AddLearner { id, peer_addr, .. } => {
                let request = self.next_request_id();
                let wait = AdminWait::ThenAddLearner { id, reply, outcome };
                self.admin_waiting.insert(request, (wait, deadline));
                self.node
                    .propose_member_address(request, NodeId(id), peer_addr);
                return;
            }
            // Proposed above.
            AdminRequest::Promote { .. } | AdminRequest::Remove { .. } => return,
            AdminRequest::TransferLeader(to) => self
                .node
                .transfer_leadership(NodeId(to))
                .map(|()| format!("transferring leadership to {to}"))
                .map_err(|e| e.to_string()),
            AdminRequest::Campaign => {
                self.node.campaign();
                Ok("campaigning".to_string())
            }
            AdminRequest::PreVote(on) => {
                self.node.set_pre_vote(on);
                let text = format!("PreVote {}", if on { "on" } else { "off" });
                self.shared
                    .publish(self.node.raw().raft().term().0, "pre-vote", text.clone());
                Ok(text)
            }
            AdminRequest::Snapshot => {
                // The node hands it out once no batch or snapshot is in flight; one in flight
                // is now waited for, so it stops sleeping.
                self.snapshot_requests.push(reply);
                self.snapshotter.hurry();
                if let Err(error) = self.node.request_snapshot() {
                    tracing::warn!(node = self.node.id().0, %error, "could not take a snapshot");
                    for reply in self.snapshot_requests.drain(..) {
                        let _ = reply.send(Err(format!("could not take a snapshot: {error}")));
                    }
                }
                return;
            }
        };
        let _ = reply.send(answer);
    }

    fn propose_admin_change(
        &mut self,
        change: ConfChange,
        reply: oneshot::Sender<Result<String, String>>,
        outcome: String,
        deadline: Instant,
    ) {
        let request = self.next_request_id();
        self.admin_waiting
            .insert(request, (AdminWait::Done(reply, outcome), deadline));
        self.node.propose_conf_change(request, change);
    }

    /// An operator request's entry was applied (or refused).
    fn admin_replied(&mut self, wait: AdminWait, deadline: Instant, reply: Reply) {
        let outcome = match reply {
            Reply::Error(error) => Err(error),
            _ => Ok(()),
        };
        match (wait, outcome) {
            (AdminWait::Done(sender, summary), outcome) => {
                let _ = sender.send(outcome.map(|()| format!("done: {summary}")));
            }
            (AdminWait::ThenAddLearner { id, reply, outcome }, Ok(())) => {
                let request = self.next_request_id();
                self.admin_waiting
                    .insert(request, (AdminWait::Done(reply, outcome), deadline));
                let change = ConfChange {
                    steps: vec![ConfChangeStep::AddLearner(NodeId(id))],
                };
                self.node.propose_conf_change(request, change);
            }
            (AdminWait::ThenAddLearner { reply, .. }, Err(error)) => {
                let _ = reply.send(Err(error));
            }
        }
    }

    /// Runs the node's batches until it has nothing left to do, or a batch waits for its sync
    /// on the writer thread (one batch at a time: the next begins once this one is durable).
    fn process(&mut self) -> Result<(), NodeError> {
        loop {
            self.carry_out()?;
            if !self.node.begin_batch() {
                return Ok(());
            }
        }
    }

    /// Carries out what the node asked for, until it asks for nothing more on this thread.
    fn carry_out(&mut self) -> Result<(), NodeError> {
        loop {
            // What the last round applied is published before its clients are answered.
            self.publish_keyspace_events();
            let effects = self.node.take_effects();
            if effects.is_empty() {
                return Ok(());
            }
            let mut messages = Vec::new();
            let mut replies = Vec::new();
            let mut events = Vec::new();
            let mut io = Vec::new();
            for effect in effects {
                match effect {
                    Effect::Send(message) => messages.push(message),
                    Effect::Reply(id, reply) => replies.push((id, reply)),
                    Effect::Event(event) => events.push(event),
                    other => io.push(other),
                }
            }
            // Messages that may leave go first, so followers write in parallel with the
            // leader (thesis §10.2.1).
            self.send(messages);
            self.note(events);
            self.answer(replies);
            for effect in io {
                self.run_io(effect)?;
            }
        }
    }

    /// Carries out one I/O step of the node's: the batch is written here, synced on the
    /// writer thread (or here), and a snapshot file is written on a thread of its own.
    fn run_io(&mut self, effect: Effect) -> Result<(), NodeError> {
        match effect {
            // The batch goes into the file; its sync follows as the next effect.
            Effect::WriteBatch(token) => self.node.write_batch(token),
            // A leader applies what was durable before the batch, answering its clients
            // step by step, while the writer thread syncs the batch, or before syncing it
            // here. A follower applies nothing before its acknowledgement has left
            // ([`Driver::finish_synced`]): the leader's commitment waits for that.
            Effect::SyncBatch(token) => match &self.syncer {
                Some(syncer) if token.file().is_some() => {
                    syncer
                        .sync(token)
                        .map_err(|token| sync_failed(writer_gone(token.file())))?;
                    self.apply_durable_in_steps()
                }
                _ => {
                    self.apply_durable_in_steps()?;
                    self.node.sync_written(&token)?;
                    self.finish_synced(token)
                }
            },
            Effect::WriteSnapshot(job) => self.write_snapshot(job),
            Effect::Send(_) | Effect::Reply(..) | Effect::Event(_) => Ok(()),
        }
    }

    /// Has the frozen state serialized into the snapshot file, and the file synced, on a
    /// thread of its own: for a large store that is all of the time a snapshot takes, and the
    /// driver goes on applying, ticking and heartbeating meanwhile.
    fn write_snapshot(&mut self, job: SnapshotJob) -> Result<(), NodeError> {
        let id = self.node.id().0;
        self.snapshot_waiting.append(&mut self.snapshot_requests);
        // A snapshot someone waits for (an operator's, a backup's) is written at full speed:
        // only the scheduled ones are background work.
        let paced = self.snapshot_waiting.is_empty() && !self.backups.is_waiting();
        if let Err(failed) = self.snapshotter.write(id, job, Instant::now(), paced) {
            let (token, error) = *failed;
            tracing::warn!(node = id, %error, "could not start writing a snapshot");
            for reply in self.snapshot_waiting.drain(..) {
                let _ = reply.send(Err(format!("could not write the snapshot: {error}")));
            }
            self.backups
                .fail(&format!("could not write the snapshot: {error}"));
            self.node.snapshot_abandoned(token)?;
        }
        Ok(())
    }

    /// The snapshot file is written: the node installs it and compacts the log; the
    /// operators are answered.
    fn snapshot_written(&mut self, written: Written) -> Result<(), NodeError> {
        let Written {
            token,
            result,
            started,
        } = written;
        let outcome = match result {
            Ok(()) => match self.node.snapshot_written(token)? {
                Some(index) => {
                    self.shared
                        .metrics
                        .snapshot_duration
                        .observe(started.elapsed().as_secs_f64());
                    Ok(format!("snapshot at index {index}"))
                }
                None => Ok(format!(
                    "a newer snapshot arrived meanwhile, at index {}",
                    skiff_raft::LogStorage::snapshot_meta(self.node.wal()).index
                )),
            },
            Err(error) => {
                // The log is untouched: the next snapshot tries again.
                let _ = std::fs::remove_file(token.write().temp_path());
                tracing::warn!(node = self.node.id().0, %error, "writing a snapshot failed");
                self.node.snapshot_abandoned(token)?;
                Err(format!("writing the snapshot failed: {error}"))
            }
        };
        for reply in self.snapshot_waiting.drain(..) {
            let _ = reply.send(outcome.clone());
        }
        let (wal, cluster_id) = (self.node.wal(), self.options.cluster_id);
        self.backups.settle(wal, cluster_id, outcome.is_err());
        // The run loop carries out what the node asks next.
        Ok(())
    }

    /// The writer thread synced the batch in flight: finish it.
    fn synced(&mut self, (token, result): Synced) -> Result<(), NodeError> {
        // A failed fsync may have dropped the pages it was to write: the node stops, and
        // recovery finds out on restart what the disk holds.
        result.map_err(sync_failed)?;
        self.finish_synced(token)
    }

    /// Ends a synced batch: what the sync released (a follower's acknowledgement, a vote)
    /// is sent before the batch's entries are applied, since the leader's commitment waits
    /// for it and an apply of hundreds of entries takes milliseconds; then the batch is
    /// applied and the core advanced.
    fn finish_synced(&mut self, token: SyncToken) -> Result<(), NodeError> {
        let metrics = self.shared.metrics.clone();
        self.node
            .release_synced(&token, &mut BatchSizes(&metrics, &mut self.recent_kinds))?;
        self.carry_out()?;
        self.node
            .batch_synced(token, &mut BatchSizes(&metrics, &mut self.recent_kinds))
    }

    /// On a leader, applies the committed entries that were durable before the batch in
    /// flight [`APPLY_STEP`] at a time, and answers each step's clients before the next: the
    /// first replies of a batch of hundreds go out, and their clients' next requests come
    /// in, while the rest is applied.
    fn apply_durable_in_steps(&mut self) -> Result<(), NodeError> {
        if self.node.raw().raft().role() != Role::Leader {
            return Ok(());
        }
        let metrics = self.shared.metrics.clone();
        loop {
            let more = self.node.apply_durable(
                &mut BatchSizes(&metrics, &mut self.recent_kinds),
                APPLY_STEP,
            )?;
            self.carry_out()?;
            if !more {
                return Ok(());
            }
        }
    }

    /// Sends messages to their peers, each peer's in one write when its link is idle
    /// ([`crate::transport::lane`]) and through its queue otherwise ([`Peers::queue`] opens
    /// one to a node that sent to this one without being a member in its view).
    fn send(&mut self, messages: Vec<Envelope>) {
        let metrics = self.shared.metrics.clone();
        if self.shared.is_isolated() {
            metrics.peer_messages_dropped.inc_by(messages.len() as u64);
            return;
        }
        // Each peer's messages, in the order the node sent them.
        let mut by_peer: Vec<(NodeId, Vec<Envelope>)> = Vec::new();
        for message in messages {
            if matches!(message.message, PeerMessage::Forward { .. }) {
                metrics.forwarded_requests.inc();
            }
            let to = message.to();
            match by_peer.iter_mut().find(|(peer, _)| *peer == to) {
                Some((_, batch)) => batch.push(message),
                None => by_peer.push((to, vec![message])),
            }
        }
        for (to, batch) in by_peer {
            let Some(link) = self.peers.queue(to, self.node.member_addresses()) else {
                metrics.peer_messages_dropped.inc_by(batch.len() as u64);
                continue;
            };
            // Counted before they are sent; a full queue un-counts nothing, as the view shows
            // what the node tried to send.
            for message in &batch {
                self.traffic.sent(message);
            }
            // A full queue drops the message: Raft retransmits, and memory stays bounded.
            let dropped = link.send(batch);
            metrics.peer_messages_dropped.inc_by(dropped as u64);
        }
    }

    /// Logs and publishes what happened. Events go before replies: the status a client may
    /// ask for right after its reply already shows what the reply reports (an operator's
    /// membership change, say).
    fn note(&mut self, events: Vec<Event>) {
        self.note_elections();
        let changed = !events.is_empty();
        let mut membership = false;
        for event in events {
            membership |= matches!(
                event,
                Event::ConfChangeApplied { .. }
                    | Event::MemberAddressRecorded { .. }
                    | Event::SnapshotInstalled { .. }
            );
            if let Event::SnapshotSkipped { applied } = event {
                for reply in self.snapshot_requests.drain(..) {
                    let _ = reply.send(Ok(format!("snapshot at index {applied}")));
                }
                let (wal, cluster_id) = (self.node.wal(), self.options.cluster_id);
                self.backups.settle(wal, cluster_id, true);
            }
            self.log_event(&event);
        }
        if membership {
            self.refresh_peers();
        }
        if changed {
            self.publish_status();
        }
    }

    /// Answers the clients and operators whose requests the node completed: with few
    /// requests in flight this thread may write the replies to the clients' sockets itself
    /// ([`MAX_IN_FLIGHT_FOR_DIRECT_REPLIES`]); otherwise their connections' writers write them.
    fn answer(&mut self, replies: Vec<(RequestId, Reply)>) {
        let metrics = self.shared.metrics.clone();
        let direct = self.waiting.len() <= MAX_IN_FLIGHT_FOR_DIRECT_REPLIES;
        for (id, reply) in replies {
            if let Some(waiting) = self.waiting.remove(&id) {
                waiting.answer(reply, &metrics, direct);
            } else if let Some((wait, deadline)) = self.admin_waiting.remove(&id) {
                self.admin_replied(wait, deadline, reply);
            }
        }
    }

    /// Answers requests that waited too long. A write may still be applied later.
    fn expire_requests(&mut self, now: Instant) {
        let expired: Vec<RequestId> = self
            .admin_waiting
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.node.cancel(id);
            if let Some((AdminWait::Done(reply, _) | AdminWait::ThenAddLearner { reply, .. }, _)) =
                self.admin_waiting.remove(&id)
            {
                let _ = reply.send(Err("no answer within the request timeout".to_string()));
            }
        }
        // Ids grow with arrival and every request gets the same timeout, so the expired ones
        // are the oldest: a prefix of the map, found without looking at the rest.
        while let Some(entry) = self.waiting.first_entry() {
            if entry.get().deadline > now {
                break;
            }
            let (id, waiting) = entry.remove_entry();
            self.node.cancel(id);
            self.shared.metrics.error("request_timeout");
            waiting.answer(Reply::error(format!(
                "TRYAGAIN no answer within {} ms: the cluster may have no quorum; a write may or may not have been applied",
                self.options.request_timeout.as_millis()
            )), &self.shared.metrics, false);
        }
    }
}

/// The wall clock in Unix milliseconds, for log time (0 for a clock before 1970).
pub(crate) fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
