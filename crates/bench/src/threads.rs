//! The threaded shape of the core benchmark: a thread per node and one for the clients.
//!
//! openraft's `benchmarks/minimal` runs its nodes as tasks on one multi-threaded tokio runtime
//! and its clients on another, so every write crosses from a client thread to the leader and
//! back, and every append crosses from the leader to a follower and back. This shape does the
//! same with OS threads and `std::sync::mpsc` channels:
//! - the clients' thread sends the writes it has ready to the leader in one channel message and
//!   waits for answers; an answer carries the time its write was issued, so a latency covers
//!   both crossings;
//! - each node's thread waits for its channel (with a timeout, for ticks), steps everything
//!   that has arrived, proposes the writes that arrived, handles its batches, and sends each peer
//!   what those batches hold for it in one channel message, and the clients their answers;
//! - a thread with nothing to do (a node's or the clients') polls its channel a few times,
//!   yielding the processor in between, before it blocks on it.
//!
//! Node 1 is elected by the single-threaded loop first (as openraft's benchmark waits for its
//! leader before starting the clients); the nodes then move to their threads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use skiff_raft::{LogIndex, Message, Role};

use crate::core::{slot, BenchCluster, Clients, CoreOptions, CoreRun, NodeDriver, NODES};

/// What a node's thread receives.
enum ToNode {
    /// Messages from one peer, in the order it sent them.
    Messages(Vec<Message>),
    /// Client writes to propose (leader only).
    Writes(Vec<Write>),
    /// The run is over: give the node back.
    Stop,
}

/// One client write on its way: who made it and when.
#[derive(Clone, Copy)]
struct Write {
    client: u32,
    issued: Instant,
}

/// What the nodes publish for the clients' thread to see the end of the run.
#[derive(Default)]
struct Progress {
    applied: [AtomicU64; NODES],
    leader_committed: AtomicU64,
}

/// A node's thread hands back its node and what it counted.
struct NodeOutcome {
    driver: NodeDriver,
    delivered: u64,
    leader_fixed: bool,
}

struct NodeThread {
    index: usize,
    driver: NodeDriver,
    inbox: Receiver<ToNode>,
    peers: Vec<Sender<ToNode>>,
    /// Leader only: where answers go.
    answers: Option<Sender<Vec<Write>>>,
    tick: Duration,
    poll_yields: u32,
    progress: Arc<Progress>,
}

impl NodeThread {
    fn run(mut self) -> NodeOutcome {
        let is_leader = self.answers.is_some();
        let mut outboxes: Vec<Vec<Message>> = (0..NODES).map(|_| Vec::new()).collect();
        let mut pending: VecDeque<(LogIndex, Write)> = VecDeque::new();
        let mut answered: Vec<Write> = Vec::new();
        let mut delivered = 0;
        let mut leader_fixed = true;
        let mut last_tick = Instant::now();
        'run: loop {
            let mut next = poll(&self.inbox, self.poll_yields);
            if next.is_none() {
                let wait = self.tick.saturating_sub(last_tick.elapsed());
                next = match self.inbox.recv_timeout(wait) {
                    Ok(item) => Some(item),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
            }
            // Everything that has arrived goes into the node before its next batch.
            if !self.take_arrivals(next, &mut pending, &mut delivered) {
                break 'run;
            }
            if last_tick.elapsed() >= self.tick {
                self.driver.node.tick();
                last_tick = Instant::now();
            }
            while self.driver.node.has_ready() {
                self.driver.handle_ready(
                    |message| outboxes[slot(message.to)].push(message),
                    |index| {
                        if is_leader {
                            let (proposed, write) = pending
                                .pop_front()
                                .unwrap_or_else(|| panic!("write {index} applied, none waiting"));
                            assert_eq!(proposed, index, "writes apply in proposal order");
                            answered.push(write);
                        }
                    },
                );
            }
            self.publish(&mut outboxes, &mut answered, &mut leader_fixed);
        }
        NodeOutcome {
            driver: self.driver,
            delivered,
            leader_fixed,
        }
    }

    /// Steps the messages and proposes the writes that arrived, starting with `next`.
    /// Returns `false` once told to stop.
    fn take_arrivals(
        &mut self,
        mut next: Option<ToNode>,
        pending: &mut VecDeque<(LogIndex, Write)>,
        delivered: &mut u64,
    ) -> bool {
        while let Some(item) = next {
            match item {
                ToNode::Messages(messages) => {
                    *delivered += messages.len() as u64;
                    for message in messages {
                        self.driver
                            .node
                            .step(message)
                            .expect("messages are addressed correctly");
                    }
                }
                ToNode::Writes(writes) => {
                    for write in writes {
                        let (index, _term) = self
                            .driver
                            .node
                            .propose(Vec::new())
                            .expect("the fixed leader accepts every write");
                        pending.push_back((index, write));
                    }
                }
                ToNode::Stop => return false,
            }
            next = self.inbox.try_recv().ok();
        }
        true
    }

    /// Sends the messages of the last batches, publishes progress, and answers the clients —
    /// in that order, so that whoever has every answer also sees the commit index that
    /// covers them (the run's end waits for the followers to apply up to it).
    fn publish(
        &mut self,
        outboxes: &mut [Vec<Message>],
        answered: &mut Vec<Write>,
        leader_fixed: &mut bool,
    ) {
        for (to, outbox) in outboxes.iter_mut().enumerate() {
            if !outbox.is_empty() {
                // A peer that stopped first no longer listens; nothing is lost that counts.
                let _ = self.peers[to].send(ToNode::Messages(std::mem::take(outbox)));
            }
        }
        let applied = self.driver.node.raft().log().applied().0;
        self.progress.applied[self.index].store(applied, Ordering::Release);
        if let Some(answers) = &self.answers {
            *leader_fixed &= self.driver.node.raft().role() == Role::Leader;
            let committed = self.driver.node.raft().log().committed().0;
            self.progress
                .leader_committed
                .store(committed, Ordering::Release);
            if !answered.is_empty() {
                let _ = answers.send(std::mem::take(answered));
            }
        }
    }
}

/// Polls `inbox` up to `yields` times, yielding the processor between polls, before the caller
/// blocks on it: a thread about to be answered is then seldom put to sleep and woken again
/// (a wake-up costs several microseconds), and a thread that yields gives its core to the
/// others.
fn poll<T>(inbox: &Receiver<T>, yields: u32) -> Option<T> {
    for _ in 0..yields {
        if let Ok(item) = inbox.try_recv() {
            return Some(item);
        }
        thread::yield_now();
    }
    inbox.try_recv().ok()
}

/// Runs the core benchmark once with a thread per node and one for the clients.
pub(crate) fn run(options: &CoreOptions) -> CoreRun {
    assert!(options.clients > 0, "at least one client");
    let per_client = (options.ops / options.clients as u64).max(1);
    let total = per_client * options.clients as u64;
    let mut cluster = BenchCluster::new(options.snapshot_every);
    cluster.elect_node_1();
    let leader_term = cluster.leader().raft().term();

    let progress = Arc::new(Progress::default());
    let (senders, inboxes): (Vec<_>, Vec<_>) = (0..NODES).map(|_| channel::<ToNode>()).unzip();
    let (answers_tx, answers) = channel::<Vec<Write>>();
    let threads = spawn_nodes(
        &mut cluster,
        inboxes,
        &senders,
        answers_tx,
        options,
        &progress,
    );

    // This thread is the clients'.
    let mut clients = Clients::new(options.clients, per_client);
    let start = Instant::now();
    let leader = &senders[0];
    let send_writes = |clients: &mut Clients, now: Instant| {
        let mut writes = Vec::new();
        clients.issue(|client| {
            writes.push(Write {
                client,
                issued: now,
            })
        });
        if !writes.is_empty() {
            leader
                .send(ToNode::Writes(writes))
                .expect("the leader's thread runs");
        }
    };
    send_writes(&mut clients, start);
    while clients.completed < total {
        let mut batch = match poll(&answers, options.poll_yields) {
            Some(batch) => batch,
            None => answers.recv().expect("the leader's thread runs"),
        };
        let now = Instant::now();
        loop {
            for write in batch {
                clients.answered(write.client, write.issued, now);
            }
            match answers.try_recv() {
                Ok(more) => batch = more,
                Err(_) => break,
            }
        }
        send_writes(&mut clients, now);
    }
    let elapsed = start.elapsed();

    stop_once_applied(&progress, &senders);
    let mut leader_fixed = true;
    for handle in threads {
        let outcome = handle.join().expect("a node thread panicked");
        leader_fixed &= outcome.leader_fixed;
        cluster.messages += outcome.delivered;
        cluster.drivers.push(outcome.driver);
    }
    cluster.outcome(clients, elapsed, leader_term, leader_fixed)
}

/// Lets the followers learn the final commit index and apply everything (for up to 10 s),
/// then stops every node's thread.
fn stop_once_applied(progress: &Progress, senders: &[Sender<ToNode>]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let final_commit = progress.leader_committed.load(Ordering::Acquire);
    while Instant::now() < deadline
        && progress
            .applied
            .iter()
            .any(|a| a.load(Ordering::Acquire) < final_commit)
    {
        thread::sleep(Duration::from_millis(1));
    }
    for sender in senders {
        let _ = sender.send(ToNode::Stop);
    }
}

/// Starts a thread per node, each with its inbox; node 1's answers its clients on `answers`.
fn spawn_nodes(
    cluster: &mut BenchCluster,
    inboxes: Vec<Receiver<ToNode>>,
    senders: &[Sender<ToNode>],
    answers: Sender<Vec<Write>>,
    options: &CoreOptions,
    progress: &Arc<Progress>,
) -> Vec<thread::JoinHandle<NodeOutcome>> {
    let mut answers_tx = Some(answers);
    cluster
        .drivers
        .drain(..)
        .zip(inboxes)
        .enumerate()
        .map(|(index, (driver, inbox))| {
            let node = NodeThread {
                index,
                driver,
                inbox,
                peers: senders.to_vec(),
                answers: if index == 0 { answers_tx.take() } else { None },
                tick: options.tick,
                poll_yields: options.poll_yields,
                progress: progress.clone(),
            };
            thread::Builder::new()
                .name(format!("node-{}", index + 1))
                .spawn(move || node.run())
                .expect("spawn a node thread")
        })
        .collect()
}
