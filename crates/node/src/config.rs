//! [`NodeConfig`]: how a node is set up.

use skiff_kv::KvConfig;
use skiff_raft::Config;
use skiff_wal::WalOptions;

/// How a node is set up.
#[derive(Clone, Debug)]
pub struct NodeConfig<C = KvConfig> {
    /// The Raft core's settings; `voters` is the cluster's initial membership, used until a
    /// snapshot or a configuration change in the log says otherwise.
    pub raft: Config,
    /// The state machine's settings: the same on every node.
    pub state_machine: C,
    /// The durable log's settings.
    pub wal: WalOptions,
    /// Take a snapshot about every this many applied entries (0: never): at this node's own
    /// phase of the period, between half and one and a half periods after the last one, and
    /// half a period after the last one finished.
    pub snapshot_every_entries: u64,
    /// A scheduled snapshot also waits until the log written since the last snapshot holds
    /// at least this many times that snapshot's bytes (thesis §5.1.2, the expansion factor):
    /// a large state is not written out again for a small log; for a state of steady size,
    /// snapshots write about 1 / (factor + 1) of the node's bytes. The log then replayed at
    /// a restart can reach this many times the snapshot. 0: the entry count alone decides.
    pub snapshot_expansion_factor: u64,
    /// Client requests that may wait on this node at once (proposed, forwarded or reading);
    /// more are refused with [`refusals::BUSY`](crate::refusals::BUSY).
    pub max_pending_requests: usize,
}

impl<C: Default> NodeConfig<C> {
    /// Defaults around `raft`: the state machine's default settings, 64 MiB segments, a
    /// snapshot every 100,000 entries once the log holds 4 times the last one's bytes, 10,000
    /// pending requests.
    pub fn new(raft: Config, cluster_id: u64) -> NodeConfig<C> {
        NodeConfig {
            raft,
            state_machine: C::default(),
            wal: WalOptions::new(cluster_id),
            snapshot_every_entries: 100_000,
            snapshot_expansion_factor: 4,
            max_pending_requests: 10_000,
        }
    }
}
