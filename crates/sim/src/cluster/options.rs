//! How a simulated cluster is set up, and the counters of a run.

use super::*;

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
    /// A scheduled snapshot also waits until the log applied since the last one holds this
    /// many times its bytes (thesis §5.1.2; 0: the entry count alone decides).
    pub snapshot_expansion_factor: u64,
    /// The state machine's limits on every node.
    pub kv: skiff_kv::KvConfig,
    /// Snapshots are prepared by the node (the state machine serialized) and their file
    /// written and installed in a later event, as the server's snapshot thread does, so that
    /// messages, batches, crashes and snapshots from the leader come in between; otherwise a
    /// node takes each snapshot in line.
    pub snapshot_off_thread: bool,
    /// A node applies what was durable before its batch in a step of 1–64 entries after the
    /// write (and `batch_synced` the rest), as the server's leader applies in steps, rather
    /// than all of it at once.
    pub apply_in_steps: bool,
    /// Entries kept in the log below a snapshot.
    pub snapshot_trailing_entries: u64,
    /// Bytes of snapshot data per InstallSnapshot message.
    pub max_snapshot_chunk_bytes: u64,
    /// How long a batch takes to become durable, in milliseconds (uniform in the range).
    pub disk_delay_ms: (u64, u64),
    /// Entries per AppendEntries.
    pub max_append_entries: usize,
    /// Entry bytes a leader streams ahead of a follower's answers.
    pub max_inflight_bytes: u64,
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
    /// Each node's wall clock (which a leader stamps entries with) is simulated time plus
    /// a skew drawn from the seed in `[-max, +max]` milliseconds.
    pub max_clock_skew_ms: u64,
    /// A deliberate bug, for tests that show the checkers catch it (`None` in every real run).
    pub injected_bug: Option<InjectedBug>,
}

impl ClusterOptions {
    /// `nodes` voters on a reliable network: 10 ms ticks, 50 ms heartbeats, elections after
    /// 300–600 ms, PreVote and CheckQuorum on, 16 KiB WAL segments, wall clocks up to 500 ms
    /// apart.
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
            snapshot_expansion_factor: 0,
            kv: skiff_kv::KvConfig::default(),
            snapshot_off_thread: false,
            apply_in_steps: false,
            snapshot_trailing_entries: 5,
            max_snapshot_chunk_bytes: 1024 * 1024,
            disk_delay_ms: (0, 3),
            max_append_entries: 64,
            max_inflight_bytes: 8 * 1024 * 1024,
            max_segment_bytes: 16 * 1024,
            mid_write_crash_probability: 0.5,
            pool_size: nodes,
            trace_keep: 200,
            print_trace: false,
            max_clock_skew_ms: 500,
            injected_bug: None,
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
    /// Recycled segment files read by recoveries (each holds an earlier life's bytes after
    /// its own records).
    pub recycled_segments_read: u64,
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
    /// Forwarded requests that reached a node which no longer led (or never did) but knew
    /// the leader: not proposed there (refused `TRYAGAIN` naming it, unless refused sooner
    /// as busy or malformed).
    pub forwards_redirected: u64,
    /// Session writes a node sent again after a leader change lost their outcome.
    pub resubmissions: u64,
    /// First writes of new sessions refused for a table full of busy sessions (each entry
    /// counted once).
    pub session_refusals: u64,
    /// Sessions node 1's state machine forgot as its applied index moved on (evictions, on
    /// the seeds whose sessions outlive the run).
    pub sessions_evicted: u64,
    /// Disks replaced by empty ones, the node restarted under the same id (a wipe).
    pub wipes: u64,
    /// Notices sent to a node whose data directory is not the one recorded.
    pub incarnation_notices: u64,
    /// Messages refused because their sender's incarnation is not the one recorded.
    pub incarnation_refusals: u64,
    /// Entries carrying only the log time applied (on any node), each proposed by a leader
    /// once a key's deadline had passed on its clock.
    pub time_entries_applied: u64,
}
