//! The node's logical clock and its timers: ticks since start (the clock leases are measured
//! on), the election timer with its randomized timeout (§5.2), and the leader's heartbeat timer.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::types::NodeId;

/// Logical time as one node counts it.
#[derive(Clone, Debug)]
pub(crate) struct Timers {
    /// Ticks since this node started. Invariant: never decreases.
    now_ticks: u64,
    /// Ticks since the election timer was last reset (for a leader: since the last
    /// CheckQuorum).
    election_elapsed_ticks: u64,
    /// Leader only: ticks since the last heartbeat round.
    heartbeat_elapsed_ticks: u64,
    /// §5.2: drawn in `[timeout, 2 * timeout)` at each reset, so that split votes are rare.
    randomized_election_timeout_ticks: u64,
    /// The only source of randomness, seeded from the configuration and the node's id.
    rng: ChaCha8Rng,
}

impl Timers {
    /// Timers at tick 0; draw a timeout with [`reset`](Timers::reset) before the first tick.
    pub(crate) fn new(seed: u64, id: NodeId) -> Timers {
        Timers {
            now_ticks: 0,
            election_elapsed_ticks: 0,
            heartbeat_elapsed_ticks: 0,
            randomized_election_timeout_ticks: 0,
            rng: ChaCha8Rng::seed_from_u64(seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        }
    }

    /// Both timers restart, with a new randomized election timeout drawn from `timeout`.
    pub(crate) fn reset(&mut self, timeout_ticks: u64) {
        self.election_elapsed_ticks = 0;
        self.heartbeat_elapsed_ticks = 0;
        self.randomized_election_timeout_ticks =
            self.rng.gen_range(timeout_ticks..2 * timeout_ticks);
    }

    /// One tick of the clock.
    pub(crate) fn advance_clock(&mut self) {
        self.now_ticks += 1;
    }

    /// Ticks since the node started.
    pub(crate) fn now(&self) -> u64 {
        self.now_ticks
    }

    /// One tick of the election timer; returns whether the randomized timeout has passed.
    pub(crate) fn tick_election(&mut self) -> bool {
        self.election_elapsed_ticks += 1;
        self.election_elapsed_ticks >= self.randomized_election_timeout_ticks
    }

    /// One tick of a leader's timers: the heartbeat, and the election timer that paces
    /// CheckQuorum.
    pub(crate) fn tick_leader(&mut self) {
        self.heartbeat_elapsed_ticks += 1;
        self.election_elapsed_ticks += 1;
    }

    /// Whether `timeout_ticks` passed since the election timer was reset; if so it restarts.
    pub(crate) fn take_election_timeout(&mut self, timeout_ticks: u64) -> bool {
        if self.election_elapsed_ticks < timeout_ticks {
            return false;
        }
        self.election_elapsed_ticks = 0;
        true
    }

    /// Whether `interval_ticks` passed since the last heartbeat; if so the timer restarts.
    pub(crate) fn take_heartbeat_due(&mut self, interval_ticks: u64) -> bool {
        if self.heartbeat_elapsed_ticks < interval_ticks {
            return false;
        }
        self.heartbeat_elapsed_ticks = 0;
        true
    }

    /// The node heard from its leader or granted a vote: the election timer restarts, with the
    /// same timeout.
    pub(crate) fn restart_election(&mut self) {
        self.election_elapsed_ticks = 0;
    }

    /// Ticks since the election timer was last reset.
    pub(crate) fn election_elapsed_ticks(&self) -> u64 {
        self.election_elapsed_ticks
    }

    /// The current randomized election timeout.
    pub(crate) fn randomized_election_timeout_ticks(&self) -> u64 {
        self.randomized_election_timeout_ticks
    }
}
