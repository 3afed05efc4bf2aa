//! A pipelining client (thesis §6.3; review W8): up to [`DEPTH`] `APPEND`s to a key of its
//! own in flight at once through one node, as a connection pipelines, each carrying its
//! session, its sequence and the lowest sequence it still waits for. An `APPEND` is
//! order-sensitive, and its reply (the new length) says where in the value it landed, so the
//! final value shows whether a write applied twice or out of order:
//!
//! - every token (`<client>.<sequence>,`) is in the value at most once;
//! - each session's tokens are in the order sent;
//! - every acknowledged `APPEND` is in the value, and the value's first `length` bytes (its
//!   reply) end with its token: it took effect exactly where it said.
//!
//! When its node is unreachable the client reconnects elsewhere, as a new session.

use std::collections::BTreeSet;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use skiff_kv::{Command, Reply};
use skiff_node::ClientSession;
use skiff_raft::NodeId;

use crate::checkers::Violation;
use crate::cluster::{Cluster, Submitted};

/// Writes in flight at most.
pub const DEPTH: usize = 3;

/// The key the pipelining client appends to.
pub const KEY: &[u8] = b"pipe";

/// The property its check names.
const PROPERTY: &str = "Exactly-once pipelined writes";

/// One `APPEND` in flight.
#[derive(Debug)]
struct Piped {
    client_id: u64,
    sequence: u64,
    request: u64,
    started_ms: u64,
}

/// The pipelining client.
#[derive(Debug)]
pub struct Pipeline {
    /// The session's client id (a new one at each reconnection).
    client_id: u64,
    /// The session's last sequence sent.
    sequence: u64,
    /// The node its connection goes to.
    node: Option<NodeId>,
    in_flight: Vec<Piped>,
    /// Each acknowledged token with the length its `APPEND` answered.
    acknowledged: Vec<(String, usize)>,
    /// Writes answered with an error or given up on (their outcome may be unknown).
    unanswered: u64,
}

impl Pipeline {
    /// A client whose first session is `client_id`.
    pub fn new(client_id: u64) -> Pipeline {
        Pipeline {
            client_id,
            sequence: 0,
            node: None,
            in_flight: Vec::new(),
            acknowledged: Vec::new(),
            unanswered: 0,
        }
    }

    /// How many `APPEND`s were acknowledged.
    pub fn acknowledged(&self) -> usize {
        self.acknowledged.len()
    }

    /// Collects replies and gives up on writes older than `timeout_ms`.
    pub fn collect(&mut self, cluster: &mut Cluster, timeout_ms: u64) {
        let now_ms = cluster.now_ms();
        let mut still = Vec::new();
        for piped in std::mem::take(&mut self.in_flight) {
            match cluster.take_reply(piped.request) {
                Some(reply) => self.answered(&piped, &reply),
                None if now_ms - piped.started_ms > timeout_ms => {
                    cluster.cancel(piped.request);
                    self.unanswered += 1;
                }
                None => still.push(piped),
            }
        }
        self.in_flight = still;
    }

    fn answered(&mut self, piped: &Piped, reply: &Reply) {
        match reply {
            Reply::Integer(length) => {
                let length = usize::try_from(*length).unwrap_or(0);
                let token = token(piped.client_id, piped.sequence);
                self.acknowledged.push((token, length));
            }
            _ => self.unanswered += 1,
        }
    }

    /// Sends the next `APPEND` if fewer than [`DEPTH`] are in flight, under request `request`
    /// (unique in the run); false if it sent nothing.
    pub fn issue(&mut self, cluster: &mut Cluster, request: u64, rng: &mut ChaCha8Rng) -> bool {
        if self.in_flight.len() >= DEPTH {
            return false;
        }
        let ids = cluster.ids().to_vec();
        let node = *self
            .node
            .get_or_insert_with(|| ids[rng.gen_range(0..ids.len())]);
        self.sequence += 1;
        let lowest_unanswered = self
            .in_flight
            .iter()
            .filter(|p| p.client_id == self.client_id)
            .map(|p| p.sequence)
            .min()
            .unwrap_or(self.sequence);
        let session = ClientSession {
            client_id: self.client_id,
            sequence: self.sequence,
            lowest_unanswered,
            resubmitted: false,
            proposed_after: 0,
        };
        let command = Command::Append {
            key: KEY.to_vec(),
            value: token(self.client_id, self.sequence).into_bytes(),
        };
        let piped = Piped {
            client_id: self.client_id,
            sequence: self.sequence,
            request,
            started_ms: cluster.now_ms(),
        };
        match cluster.submit_in_session(node, request, command, Some(session)) {
            Submitted::Pending => self.in_flight.push(piped),
            Submitted::Answered(reply) => self.answered(&piped, &reply),
            Submitted::Unreachable => {
                // A new connection to another node: a new session.
                self.unanswered += 1;
                self.node = None;
                self.client_id += 1;
                self.sequence = 0;
            }
        }
        true
    }

    /// Gives up on every write still in flight.
    pub fn finish(&mut self, cluster: &mut Cluster) {
        for piped in std::mem::take(&mut self.in_flight) {
            cluster.cancel(piped.request);
            self.unanswered += 1;
        }
    }

    /// Checks the key's final value (`None`: the key is missing) against what was sent and
    /// acknowledged.
    pub fn check(&self, value: Option<&[u8]>) -> Result<(), Violation> {
        let fail = |detail: String| {
            Err(Violation {
                property: PROPERTY,
                detail,
            })
        };
        let value = value.unwrap_or_default();
        let text = String::from_utf8_lossy(value);
        let mut seen = BTreeSet::new();
        let mut last_of: std::collections::BTreeMap<u64, u64> = Default::default();
        for token in text.split_terminator(',') {
            let Some((client, sequence)) = token
                .split_once('.')
                .and_then(|(c, s)| Some((c.parse::<u64>().ok()?, s.parse::<u64>().ok()?)))
            else {
                return fail(format!("{token:?} in {text:?} is no token a client sent"));
            };
            if !seen.insert((client, sequence)) {
                return fail(format!("{token} applied twice: {text:?}"));
            }
            let last = last_of.entry(client).or_insert(0);
            if sequence < *last {
                return fail(format!(
                    "{token} applied after {client}.{last}, sent later: {text:?}"
                ));
            }
            *last = sequence;
        }
        for (token, length) in &self.acknowledged {
            let prefix = value.get(..*length).unwrap_or_default();
            if !prefix.ends_with(token.as_bytes()) {
                return fail(format!(
                    "APPEND {token} answered length {length}, but the value's first {length} bytes do not end with it: {text:?}"
                ));
            }
        }
        Ok(())
    }
}

/// What `APPEND` `sequence` of `client_id` adds.
fn token(client_id: u64, sequence: u64) -> String {
    format!("{client_id}.{sequence},")
}
