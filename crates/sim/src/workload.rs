//! Key-value clients for randomized runs: sequential clients issue get, put, delete and
//! compare-and-set on a small key space through whichever node they believe leads, and every
//! operation is recorded in the shared history format for the linearizability checker.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use skiff_raft::{NodeId, ProposeError};

use crate::cluster::{Cluster, ReadOutcome};
use crate::history::{OpKind, Operation};
use crate::kv::{Command, Reply};

/// How clients behave.
#[derive(Clone, Debug)]
pub struct WorkloadOptions {
    /// Concurrent (sequential) clients.
    pub clients: usize,
    /// Keys they share.
    pub keys: usize,
    /// Operations in all, at most (bounds the checker's work).
    pub max_operations: usize,
    /// A client gives up on an operation after this long: its outcome is unknown.
    pub timeout_ms: u64,
}

impl Default for WorkloadOptions {
    fn default() -> WorkloadOptions {
        WorkloadOptions {
            clients: 4,
            keys: 3,
            max_operations: 400,
            timeout_ms: 1_500,
        }
    }
}

#[derive(Debug)]
enum Waiting {
    Write { op: u64 },
    Read { ctx: u64 },
}

#[derive(Debug)]
struct InFlight {
    record: Operation,
    node: NodeId,
    waiting: Waiting,
    started_ms: u64,
}

#[derive(Debug)]
struct Client {
    id: u64,
    leader_hint: Option<NodeId>,
    in_flight: Option<InFlight>,
    idle_until_ms: u64,
}

/// The clients and the history they recorded.
#[derive(Debug)]
pub struct Workload {
    options: WorkloadOptions,
    clients: Vec<Client>,
    history: Vec<Operation>,
    next_client_id: u64,
    next_op: u64,
    issued: usize,
    stopped: bool,
}

const NS_PER_MS: u64 = 1_000_000;

impl Workload {
    /// Clients as `options` say.
    pub fn new(options: WorkloadOptions) -> Workload {
        let clients = (0..options.clients as u64)
            .map(|id| Client {
                id,
                leader_hint: None,
                in_flight: None,
                idle_until_ms: 0,
            })
            .collect();
        Workload {
            next_client_id: options.clients as u64,
            options,
            clients,
            history: Vec::new(),
            next_op: 1,
            issued: 0,
            stopped: false,
        }
    }

    /// Every completed (or abandoned) operation so far.
    pub fn history(&self) -> &[Operation] {
        &self.history
    }

    /// How many operations completed with a known outcome.
    pub fn known_outcomes(&self) -> usize {
        self.history.iter().filter(|op| op.ok.is_some()).count()
    }

    /// Collects replies, gives up on stale operations and issues new ones.
    pub fn step(&mut self, cluster: &mut Cluster, rng: &mut ChaCha8Rng) {
        let now_ms = cluster.now_ms();
        let ids = cluster.ids().to_vec();
        for k in 0..self.clients.len() {
            self.collect(k, cluster, now_ms);
            let client = &self.clients[k];
            if self.stopped
                || client.in_flight.is_some()
                || client.idle_until_ms > now_ms
                || self.issued >= self.options.max_operations
            {
                continue;
            }
            let node = client
                .leader_hint
                .filter(|_| rng.gen_bool(0.8))
                .unwrap_or_else(|| ids[rng.gen_range(0..ids.len())]);
            self.issue(k, node, cluster, rng);
        }
    }

    /// No new operations from now on; those in flight may still complete.
    pub fn stop_issuing(&mut self) {
        self.stopped = true;
    }

    /// Gives up on every operation still in flight (their outcomes are unknown).
    pub fn finish(&mut self, cluster: &mut Cluster) {
        let now_ms = cluster.now_ms();
        for k in 0..self.clients.len() {
            if let Some(in_flight) = self.clients[k].in_flight.take() {
                self.abandon(k, in_flight, cluster, now_ms);
            }
        }
    }

    fn collect(&mut self, k: usize, cluster: &mut Cluster, now_ms: u64) {
        let Some(in_flight) = self.clients[k].in_flight.as_ref() else {
            return;
        };
        let done = match in_flight.waiting {
            Waiting::Write { op } => cluster.take_write_reply(op).map(|reply| (reply, None)),
            Waiting::Read { ctx } => match cluster.take_read_reply(ctx) {
                Some(ReadOutcome::Value(value)) => Some((Reply::Done, Some(value))),
                Some(ReadOutcome::Refused) => {
                    // Refused: certainly not served. Recorded, and ignored by the checker.
                    let mut in_flight = self.clients[k].in_flight.take().expect("checked above");
                    in_flight.record.ok = Some(false);
                    in_flight.record.return_ns = now_ms * NS_PER_MS;
                    self.history.push(in_flight.record);
                    self.clients[k].leader_hint = None;
                    return;
                }
                None => None,
            },
        };
        let Some((reply, read_value)) = done else {
            if now_ms - in_flight.started_ms > self.options.timeout_ms {
                let in_flight = self.clients[k].in_flight.take().expect("checked above");
                self.abandon(k, in_flight, cluster, now_ms);
            }
            return;
        };
        let mut in_flight = self.clients[k].in_flight.take().expect("checked above");
        let record = &mut in_flight.record;
        record.return_ns = now_ms * NS_PER_MS;
        record.ok = Some(true);
        match reply {
            Reply::Deleted { existed } => record.existed = Some(existed),
            Reply::Swapped(swapped) => record.ok = Some(swapped),
            Reply::Done | Reply::Value => {}
        }
        if let Some(value) = read_value {
            record.value = value;
        }
        self.clients[k].leader_hint = Some(in_flight.node);
        self.history.push(in_flight.record);
    }

    /// The client stops waiting: the outcome is unknown, and it continues as a new client.
    fn abandon(&mut self, k: usize, in_flight: InFlight, cluster: &mut Cluster, now_ms: u64) {
        match in_flight.waiting {
            Waiting::Write { op } => cluster.forget_write(op),
            Waiting::Read { ctx } => cluster.forget_read(ctx),
        }
        let mut record = in_flight.record;
        record.ok = None;
        record.return_ns = now_ms * NS_PER_MS;
        self.history.push(record);
        let client = &mut self.clients[k];
        client.id = self.next_client_id;
        client.leader_hint = None;
        self.next_client_id += 1;
    }

    fn issue(&mut self, k: usize, node: NodeId, cluster: &mut Cluster, rng: &mut ChaCha8Rng) {
        let now_ms = cluster.now_ms();
        let key = format!("k{}", rng.gen_range(0..self.options.keys));
        let op = self.next_op;
        self.next_op += 1;
        self.issued += 1;
        let client_id = self.clients[k].id;
        let value = format!("c{client_id}-{op}");
        let mut record = Operation {
            client: client_id,
            op: OpKind::Get,
            key: key.clone(),
            value: None,
            expected: None,
            existed: None,
            ok: None,
            call_ns: now_ms * NS_PER_MS,
            return_ns: 0,
        };
        let roll = rng.gen_range(0..10);
        let result = if roll < 4 {
            cluster
                .read(node, op, &key)
                .map(|()| Waiting::Read { ctx: op })
        } else {
            let command = match roll {
                4..=6 => {
                    record.op = OpKind::Put;
                    record.value = Some(value.clone());
                    Command::Put { op, key, value }
                }
                7 => {
                    record.op = OpKind::Delete;
                    Command::Delete { op, key }
                }
                _ => {
                    // Expect what some client wrote recently, or absence.
                    let expected = self
                        .history
                        .iter()
                        .rev()
                        .find(|h| h.key == key && h.value.is_some())
                        .and_then(|h| h.value.clone());
                    let expected = if rng.gen_bool(0.2) { None } else { expected };
                    record.op = OpKind::Cas;
                    record.expected = expected.clone();
                    record.value = Some(value.clone());
                    Command::Cas {
                        op,
                        key,
                        expected,
                        value,
                    }
                }
            };
            cluster
                .propose_command(node, &command)
                .map(|_| Waiting::Write { op })
                .map_err(|err| match err {
                    ProposeError::NotLeader { leader_hint } => leader_hint,
                    _ => None,
                })
        };
        match result {
            Ok(waiting) => {
                self.clients[k].in_flight = Some(InFlight {
                    record,
                    node,
                    waiting,
                    started_ms: now_ms,
                })
            }
            Err(hint) => {
                // Refused at once: certainly not applied. Try the hinted leader a little later.
                record.ok = Some(false);
                record.return_ns = now_ms * NS_PER_MS;
                if record.op != OpKind::Cas {
                    self.history.push(record);
                }
                let client = &mut self.clients[k];
                client.leader_hint = hint;
                client.idle_until_ms = now_ms + 10;
            }
        }
    }
}
