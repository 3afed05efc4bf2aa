//! One randomized run: every option derived from one seed, a fault phase, then a healing phase
//! in which the cluster must recover (liveness).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use skiff_raft::{ConfChange, ConfChangeStep, ConfState, LogIndex, NodeId};

use crate::checkers::Violation;
use crate::cluster::{Cluster, ClusterOptions, InjectedBug, Stats};
use crate::history::Operation;
use crate::linearizability::{self, Verdict};
use crate::network::{NetworkOptions, Partition};
use crate::node::DiskDamage;
use crate::timed_check::{self, TimedSummary};
use crate::values::decode_value;
use crate::workload::{Workload, WorkloadOptions};

/// Which faults a run may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultSwitches {
    /// Lose messages.
    pub loss: bool,
    /// Hold responses back for a long time.
    pub reorder: bool,
    /// Deliver messages twice.
    pub duplication: bool,
    /// Partitions of every shape.
    pub partitions: bool,
    /// Crash and restart nodes.
    pub crashes: bool,
    /// Pause nodes.
    pub pauses: bool,
    /// Flip a bit in the durable log of one crashed node (media corruption).
    pub bit_flips: bool,
    /// Let a flipped bit land in the final write batch of a new segment file too, which
    /// recovery can take for a torn write and cut off (off by default: see docs/TESTING.md;
    /// a sealed recycled segment is hit anywhere either way).
    pub final_batch_flips: bool,
    /// Overwrite a whole segment file of one crashed node with random bytes.
    pub segment_garbage: bool,
    /// Lose a segment file of one crashed node (one before the last, or the only one).
    pub lost_segments: bool,
    /// Replace the disk of one crashed node by an empty one and restart it under the same id
    /// (a wipe), once the cluster has recorded its incarnation everywhere.
    pub wipes: bool,
}

impl FaultSwitches {
    /// The kinds of disk damage switched on.
    fn disk_damage(&self) -> Vec<DiskDamage> {
        [
            (self.bit_flips, DiskDamage::BitFlip),
            (self.segment_garbage, DiskDamage::GarbageSegment),
            (self.lost_segments, DiskDamage::LostSegment),
        ]
        .into_iter()
        .filter_map(|(on, damage)| on.then_some(damage))
        .collect()
    }
}

impl Default for FaultSwitches {
    fn default() -> FaultSwitches {
        FaultSwitches {
            loss: true,
            reorder: true,
            duplication: true,
            partitions: true,
            crashes: true,
            pauses: true,
            bit_flips: true,
            final_batch_flips: false,
            segment_garbage: true,
            lost_segments: true,
            wipes: true,
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The seed.
    pub seed: u64,
    /// Cluster size; drawn from {3, 5, 7} when unset.
    pub nodes: Option<usize>,
    /// Length of the fault phase in ticks; drawn from 1000..4000 when unset.
    pub fault_ticks: Option<u64>,
    /// The healing phase's budget in simulated milliseconds.
    pub heal_budget_ms: u64,
    /// Faults allowed.
    pub faults: FaultSwitches,
    /// Events kept for a failure report.
    pub trace_keep: usize,
    /// Print every event.
    pub print_trace: bool,
    /// A deliberate bug, for tests that show the checkers catch it.
    pub injected_bug: Option<InjectedBug>,
}

impl RunOptions {
    /// Defaults for `seed`.
    pub fn new(seed: u64) -> RunOptions {
        RunOptions {
            seed,
            nodes: None,
            fault_ticks: None,
            heal_budget_ms: 30_000,
            faults: FaultSwitches::default(),
            trace_keep: 200,
            print_trace: false,
            injected_bug: None,
        }
    }
}

/// The outcome of one run.
#[derive(Debug)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The options the seed chose, one line.
    pub derived: String,
    /// Counters.
    pub stats: Stats,
    /// Entries known committed at the end.
    pub commits: u64,
    /// The first broken property.
    pub violation: Option<Violation>,
    /// The last events, readable.
    pub trace_tail: String,
    /// Hash of the whole trace.
    pub trace_hash: u64,
    /// Linearizability checks run (one per run with a client history).
    pub linearizability_checks: u64,
    /// The client history, kept only when it failed the linearizability check.
    pub failed_history: Option<Vec<Operation>>,
    /// What the timed check (TTLs at log time, revisions, fencing tokens) covered.
    pub timed: TimedSummary,
    /// `APPEND`s the pipelining client had acknowledged (0 on seeds without one).
    pub pipelined_acks: u64,
    /// Writes the clients were answered "may or may not have been applied" after a leader
    /// change ([`OUTCOME_UNKNOWN`](skiff_node::refusals::OUTCOME_UNKNOWN)).
    pub outcome_unknown: u64,
}

/// Everything a seed decides before the run starts.
#[derive(Clone, Debug)]
struct Plan {
    nodes: usize,
    fault_ticks: u64,
    network: NetworkOptions,
    pre_vote: bool,
    check_quorum: bool,
    propose_probability: f64,
    fault_probability: f64,
    disk_delay_ms: (u64, u64),
    read_lease: bool,
    pool_size: usize,
    snapshot_every_entries: u64,
    /// From the seed, not drawn: the expansion factor (thesis §5.1.2) a node's scheduled
    /// snapshots wait for, 0 (off), 1 or the server's default, 4.
    snapshot_expansion_factor: u64,
    snapshot_trailing_entries: u64,
    max_snapshot_chunk_bytes: u64,
    max_segment_bytes: u64,
    /// Entry bytes a leader streams ahead of a follower's answers (the core's
    /// `max_inflight_bytes`): small values pause pipelines by bytes rather than by count.
    max_inflight_bytes: u64,
    /// The one node whose durable log is damaged, the first time it is down, and how.
    corrupted_node: Option<(NodeId, DiskDamage)>,
    /// The one node whose disk is replaced by an empty one, once it is down and recorded.
    wiped_node: Option<NodeId>,
}

fn plan(options: &RunOptions, rng: &mut ChaCha8Rng) -> Plan {
    let faults = options.faults;
    let damage = faults.disk_damage();
    let nodes = options
        .nodes
        .unwrap_or_else(|| [3, 3, 5, 5, 7][rng.gen_range(0..5)]);
    let fault_ticks = options
        .fault_ticks
        .unwrap_or_else(|| rng.gen_range(1000..4000));
    let mut network = NetworkOptions::unreliable();
    network.request_loss = if faults.loss {
        rng.gen_range(0.0..0.2)
    } else {
        0.0
    };
    network.response_loss = if faults.loss {
        rng.gen_range(0.0..0.2)
    } else {
        0.0
    };
    network.long_delay_probability = if faults.reorder {
        rng.gen_range(0.0..0.7)
    } else {
        0.0
    };
    network.duplicate_probability = if faults.duplication {
        rng.gen_range(0.0..0.05)
    } else {
        0.0
    };
    let pool_size = if rng.gen_bool(0.7) { 7 } else { nodes };
    Plan {
        nodes,
        fault_ticks,
        network,
        // Mostly the defaults, sometimes the classic protocol: safety must hold either way.
        pre_vote: rng.gen_bool(0.8),
        check_quorum: rng.gen_bool(0.8),
        propose_probability: rng.gen_range(0.2..0.9),
        fault_probability: rng.gen_range(0.02..0.15),
        disk_delay_ms: (0, [1, 3, 10, 40][rng.gen_range(0..4)]),
        read_lease: rng.gen_bool(0.3),
        pool_size,
        snapshot_every_entries: [0, 5, 20, 60][rng.gen_range(0..4)],
        snapshot_expansion_factor: [0, 1, 4][(options.seed / 11 % 3) as usize],
        snapshot_trailing_entries: [0, 3, 10][rng.gen_range(0..3)],
        // Small chunks split a snapshot into several (tens at 64 bytes; each one round trip
        // and one sync, one at a time, §7), and the healing budget still covers two transfers.
        max_snapshot_chunk_bytes: [64, 512, 1024 * 1024][rng.gen_range(0..3)],
        max_segment_bytes: [512, 4096, 64 * 1024][rng.gen_range(0..3)],
        // From the seed, not drawn, so that the plan's other draws stay what they were.
        max_inflight_bytes: [64, 1024, 8 * 1024 * 1024][(options.seed / 7 % 3) as usize],
        // One node at most — a minority — and in few runs: a cluster survives losing one
        // disk, not a majority of them. Not in runs with membership changes: a voter lost for
        // good in the middle of a change can leave no node able to win an election (see
        // docs/TESTING.md, "Disk faults").
        // The kind of damage comes from the seed, not from a draw, so that the draws after
        // it are what they were before there were several kinds.
        corrupted_node: (faults.crashes
            && !damage.is_empty()
            && pool_size == nodes
            && rng.gen_bool(0.15))
        .then(|| {
            let kind = damage[(options.seed / 2 % damage.len() as u64) as usize];
            (NodeId(rng.gen_range(1..=nodes as u64)), kind)
        }),
        wiped_node: None,
    }
    .with_wiped_node(options, faults)
}

impl Plan {
    /// One seed in five wipes a node's disk: a minority, in a run without other disk damage
    /// or membership changes (as for `corrupted_node`). Chosen from the seed, not drawn, so
    /// the plan's other draws stay what they were.
    fn with_wiped_node(mut self, options: &RunOptions, faults: FaultSwitches) -> Plan {
        if faults.wipes
            && faults.crashes
            && self.corrupted_node.is_none()
            && self.pool_size == self.nodes
            && options.seed % 5 == 2
        {
            let id = 1 + (options.seed / 5) % self.nodes as u64;
            self.wiped_node = Some(NodeId(id));
        }
        self
    }
}

/// Runs one seed to the end and reports.
pub fn run_seed(options: &RunOptions) -> RunReport {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let plan = plan(options, &mut rng);
    // Half the seeds write snapshots off the driver, as the server does (from the seed, so
    // that the plan's other draws stay as they were).
    let snapshot_off_thread = options.seed % 2 == 1;
    // A third of the seeds apply what was durable before a batch in steps (from the seed
    // too).
    let apply_in_steps = (options.seed / 7) % 3 == 0;
    let derived = describe(&plan, snapshot_off_thread, apply_in_steps);
    let mut cluster_options = cluster_options(options, &plan, snapshot_off_thread);
    cluster_options.apply_in_steps = apply_in_steps;
    let fault_ms = plan.fault_ticks * cluster_options.tick_ms;
    let mut cluster = Cluster::new(cluster_options);
    cluster.note(format!("seed {} plan: {derived}", options.seed));

    let mut next_value = 1;
    // A third of the seeds have a pipelining client (from the seed, so that the plan's
    // draws stay as they were).
    let mut workload = Workload::new(WorkloadOptions {
        pipelined_writes: if options.seed % 3 == 0 { 150 } else { 0 },
        ..WorkloadOptions::default()
    });
    fault_phase(
        &mut cluster,
        &plan,
        options.faults,
        fault_ms,
        &mut rng,
        &mut next_value,
        &mut workload,
    );
    if cluster.violation().is_none() {
        healing_phase(
            &mut cluster,
            options.heal_budget_ms,
            plan.check_quorum,
            &mut next_value,
            &mut workload,
        );
    }
    let timed = check_timed(&mut cluster, &workload);
    check_pipeline(&mut cluster, &workload);
    let (linearizability_checks, failed_history) = check_linearizability(&mut cluster, &workload);

    RunReport {
        seed: options.seed,
        derived,
        stats: cluster.stats().clone(),
        commits: cluster.committed_count() as u64,
        violation: cluster.violation().cloned(),
        trace_tail: cluster.trace().render_recent(),
        trace_hash: cluster.trace().hash(),
        linearizability_checks,
        failed_history,
        timed,
        pipelined_acks: workload.pipelined_acknowledged(),
        outcome_unknown: workload.outcome_unknown_replies(),
    }
}

/// The plan's choices, in one line for the report.
fn describe(plan: &Plan, snapshot_off_thread: bool, apply_in_steps: bool) -> String {
    format!(
        "nodes={} disk_ms={:?} segment_bytes={} inflight_bytes={} corrupted_node={} wiped_node={} fault_ticks={} request_loss={:.2} response_loss={:.2} long_delay={:.2} duplicate={:.3} pre_vote={} check_quorum={} read_lease={} pool={} snapshot_every={} expansion_factor={} snapshot_off_thread={} apply_in_steps={} trailing={} chunk_bytes={} propose_p={:.2} fault_p={:.3}",
        plan.nodes,
        plan.disk_delay_ms,
        plan.max_segment_bytes,
        plan.max_inflight_bytes,
        plan.corrupted_node
            .map_or("none".to_string(), |(id, kind)| format!("{id}:{kind:?}")),
        plan.wiped_node.map_or("none".to_string(), |id| id.to_string()),
        plan.fault_ticks,
        plan.network.request_loss,
        plan.network.response_loss,
        plan.network.long_delay_probability,
        plan.network.duplicate_probability,
        plan.pre_vote,
        plan.check_quorum,
        plan.read_lease && plan.check_quorum,
        plan.pool_size,
        plan.snapshot_every_entries,
        plan.snapshot_expansion_factor,
        snapshot_off_thread,
        apply_in_steps,
        plan.snapshot_trailing_entries,
        plan.max_snapshot_chunk_bytes,
        plan.propose_probability,
        plan.fault_probability,
    )
}

/// The cluster's settings from the seed's plan.
fn cluster_options(options: &RunOptions, plan: &Plan, snapshot_off_thread: bool) -> ClusterOptions {
    let mut cluster_options = ClusterOptions::new(plan.nodes).seed(options.seed);
    cluster_options.network = plan.network.clone();
    cluster_options.pre_vote = plan.pre_vote;
    cluster_options.check_quorum = plan.check_quorum;
    cluster_options.disk_delay_ms = plan.disk_delay_ms;
    cluster_options.read_lease = plan.read_lease && plan.check_quorum;
    cluster_options.pool_size = plan.pool_size.max(plan.nodes);
    cluster_options.snapshot_every_entries = plan.snapshot_every_entries;
    cluster_options.snapshot_expansion_factor = plan.snapshot_expansion_factor;
    // A quarter of the seeds (from the seed) keep 3 sessions at most, evictable after 300 ms
    // idle, and never expire them within the run: the workload's clients (4, and the
    // pipelining one, each a new session when it gives up) meet eviction and refusal.
    if options.seed % 4 == 3 {
        cluster_options.kv = skiff_kv::KvConfig {
            max_sessions: 3,
            session_evict_idle_ms: 300,
            session_expiry_ms: 600_000,
            ..skiff_kv::KvConfig::default()
        };
    }
    cluster_options.snapshot_off_thread = snapshot_off_thread;

    cluster_options.snapshot_trailing_entries = plan.snapshot_trailing_entries;
    cluster_options.max_snapshot_chunk_bytes = plan.max_snapshot_chunk_bytes;
    cluster_options.max_segment_bytes = plan.max_segment_bytes;
    cluster_options.max_inflight_bytes = plan.max_inflight_bytes;
    cluster_options.trace_keep = options.trace_keep;
    cluster_options.print_trace = options.print_trace;
    cluster_options.injected_bug = options.injected_bug;
    cluster_options
}

/// Checks the workload's history for a linearization (one check per seed); returns the
/// number of checks and, if it failed, the history.
fn check_linearizability(
    cluster: &mut Cluster,
    workload: &Workload,
) -> (u64, Option<Vec<Operation>>) {
    let mut linearizability_checks = 0;
    let mut failed_history = None;
    if cluster.violation().is_none() && !workload.history().is_empty() {
        linearizability_checks = 1;
        match linearizability::check(workload.history()) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable { key, operations } => {
                fail(
                    cluster,
                    "Linearizability",
                    format!("the {operations} operations on key {key} have no linearization"),
                );
                failed_history = Some(workload.history().to_vec());
            }
            Verdict::Inconclusive { key } => {
                fail(
                    cluster,
                    "Linearizability",
                    format!("the search for key {key} ran out of steps"),
                );
                failed_history = Some(workload.history().to_vec());
            }
        }
    }
    (linearizability_checks, failed_history)
}

/// Checks the timed operations against the committed log the simulator saw (one check per
/// seed, before the plain one).
fn check_timed(cluster: &mut Cluster, workload: &Workload) -> TimedSummary {
    if cluster.violation().is_some() {
        return TimedSummary::default();
    }
    match timed_check::check(workload.timed_history(), cluster.ledger()) {
        Ok(summary) => summary,
        Err(failure) => {
            fail(cluster, failure.property, failure.detail);
            TimedSummary::default()
        }
    }
}

fn fault_phase(
    cluster: &mut Cluster,
    plan: &Plan,
    faults: FaultSwitches,
    fault_ms: u64,
    rng: &mut ChaCha8Rng,
    next_value: &mut u64,
    workload: &mut Workload,
) {
    let ids: Vec<NodeId> = cluster.ids().to_vec();
    let mut corrupted = false;
    while cluster.now_ms() < fault_ms && cluster.violation().is_none() {
        cluster.run_for(rng.gen_range(1..40));
        if let Some((victim, damage)) = plan
            .corrupted_node
            .filter(|&(id, _)| !corrupted && cluster.is_down(id))
        {
            corrupted = cluster.damage_disk(victim, damage, !faults.final_batch_flips);
        }
        if let Some(victim) = plan.wiped_node.filter(|&id| {
            cluster.stats().wipes == 0
                && cluster.is_down(id)
                && cluster.incarnation_known_everywhere(id)
        }) {
            cluster.wipe(victim);
        }
        workload.step(cluster, rng);
        if rng.gen_bool(plan.propose_probability) {
            for _ in 0..rng.gen_range(1..4) {
                cluster.propose(*next_value);
                *next_value += 1;
            }
        }
        if !rng.gen_bool(plan.fault_probability) {
            continue;
        }
        let node = ids[rng.gen_range(0..ids.len())];
        match rng.gen_range(0..12) {
            0 if faults.crashes => cluster.crash(node),
            // Crash a node in the middle of a disk write (what it sent early is out, the batch
            // is lost) and bring it back soon, while its peers still remember the moment.
            1 if faults.crashes => {
                let writing: Vec<NodeId> = ids
                    .iter()
                    .copied()
                    .filter(|&id| cluster.is_writing(id))
                    .collect();
                if let Some(&victim) = writing.get(rng.gen_range(0..writing.len().max(1))) {
                    let down_ms = rng.gen_range(0..100);
                    cluster.bounce(victim, down_ms);
                }
            }
            2 | 3 if faults.crashes => {
                // A node whose log refused to open is not among them: it stays down.
                let down: Vec<NodeId> = ids
                    .iter()
                    .copied()
                    .filter(|&id| cluster.is_down(id))
                    .collect();
                if let Some(&revived) = down.get(rng.gen_range(0..down.len().max(1))) {
                    cluster.restart(revived);
                }
            }
            4 | 5 if faults.partitions => {
                let shape = random_partition(&ids, rng);
                cluster.partition(shape);
            }
            6 | 7 if faults.partitions => cluster.heal(),
            8 if faults.pauses => cluster.pause(node, rng.gen_range(50..2000)),
            9 => {
                let leader = cluster.leader();
                // Half the time, writes forwarded to the old leader meanwhile arrive only
                // after its successor may lead: it must refuse them as not proposed.
                if cluster.transfer_leadership(node) && rng.gen_bool(0.5) {
                    if let Some(leader) = leader {
                        cluster.delay_forwards_to(leader, rng.gen_range(20..300));
                    }
                }
            }
            10 | 11 if plan.pool_size > plan.nodes => random_conf_change(cluster, rng),
            _ => {}
        }
    }
}

/// Asks the leader for a random membership change over the pool: add a learner (starting a
/// node that never ran), promote a learner, remove a voter or a learner, or replace a voter.
fn random_conf_change(cluster: &mut Cluster, rng: &mut ChaCha8Rng) {
    let Some(leader) = cluster.leader() else {
        return;
    };
    let conf = cluster.conf(leader);
    let members = conf.members();
    let outsiders: Vec<NodeId> = cluster
        .ids()
        .iter()
        .copied()
        .chain(cluster.dormant_ids())
        .filter(|id| !members.contains(id))
        .collect();
    let pick = |list: &[NodeId], rng: &mut ChaCha8Rng| {
        list.get(rng.gen_range(0..list.len().max(1))).copied()
    };
    let steps = match rng.gen_range(0..5) {
        0 | 1 => match pick(&outsiders, rng) {
            Some(id) => {
                cluster.start_node(id);
                vec![ConfChangeStep::AddLearner(id)]
            }
            None => return,
        },
        2 => match pick(&conf.learners, rng) {
            Some(id) => vec![ConfChangeStep::AddVoter(id)],
            None => return,
        },
        3 if conf.voters.len() > 3 => match pick(&conf.voters, rng) {
            Some(id) => vec![ConfChangeStep::Remove(id)],
            None => return,
        },
        _ => match (pick(&conf.learners, rng), pick(&conf.voters, rng)) {
            (Some(learner), Some(voter)) => vec![
                ConfChangeStep::AddVoter(learner),
                ConfChangeStep::Remove(voter),
            ],
            (None, _) => match pick(&outsiders, rng) {
                Some(id) => {
                    cluster.start_node(id);
                    vec![ConfChangeStep::AddLearner(id)]
                }
                None => return,
            },
            _ => return,
        },
    };
    let _ = cluster.propose_conf_change(leader, ConfChange { steps });
}

fn random_partition(ids: &[NodeId], rng: &mut ChaCha8Rng) -> Partition {
    let pick = |rng: &mut ChaCha8Rng| ids[rng.gen_range(0..ids.len())];
    match rng.gen_range(0..5) {
        0 => Partition::Isolate(pick(rng)),
        1 => {
            let side_len = rng.gen_range(1..=ids.len() / 2);
            let mut side = ids.to_vec();
            while side.len() > side_len {
                side.remove(rng.gen_range(0..side.len()));
            }
            Partition::Split(side)
        }
        2 => Partition::MajoritiesRing,
        3 => Partition::Bridge(pick(rng)),
        _ => {
            let from = pick(rng);
            let to = pick(rng);
            if from == to {
                Partition::Isolate(from)
            } else {
                Partition::OneWay(from, to)
            }
        }
    }
}

/// Heals everything and requires the cluster to converge: a leader, and every node has
/// committed and applied the leader's whole log. Proposals accepted by a leader that kept
/// power to the end must be committed.
fn healing_phase(
    cluster: &mut Cluster,
    budget_ms: u64,
    check_quorum: bool,
    next_value: &mut u64,
    workload: &mut Workload,
) {
    let ids: Vec<NodeId> = cluster.ids().to_vec();
    cluster.note("healing phase: no more faults");
    cluster.heal();
    let mut quiet = NetworkOptions::reliable();
    quiet.delay_ms = (1, 10);
    cluster.set_network(quiet);
    for &id in &ids {
        cluster.resume(id);
        cluster.restart(id);
    }
    let elected = cluster.run_until(budget_ms / 2, |c| c.leader().is_some());
    if elected {
        // One write through the healed cluster, so every node must learn the final commit.
        cluster.propose(*next_value);
        *next_value += 1;
    }
    let converged = elected && {
        let deadline_ms = cluster.now_ms() + budget_ms / 2;
        loop {
            if !check_quorum {
                stop_campaigning_removed_nodes(cluster);
            }
            let slice_ms = deadline_ms.saturating_sub(cluster.now_ms()).min(250);
            if cluster.run_until(slice_ms, members_converged) {
                break true;
            }
            if cluster.now_ms() >= deadline_ms || cluster.violation().is_some() {
                break false;
            }
        }
    };
    if cluster.violation().is_some() {
        return;
    }
    // Let the clients hear back about what is still in flight, then close the history.
    workload.stop_issuing();
    for _ in 0..100 {
        cluster.run_for(20);
        workload.step(cluster, &mut ChaCha8Rng::seed_from_u64(0));
    }
    workload.finish(cluster);
    if !converged {
        let states: Vec<String> = ids.iter().map(|&id| node_state(cluster, id)).collect();
        fail(
            cluster,
            "Liveness",
            format!(
                "no convergence within {budget_ms} ms of healing: {}",
                states.join("; ")
            ),
        );
        return;
    }
    check_kept_power_proposals(cluster);
    cluster.close_ledger();
}

/// Whether every member of the configuration in force has committed and applied the leader's
/// last entry. Removed nodes may lag behind, and a node whose damaged log refused to open
/// stays down (an operator would replace it): the others, a majority, must converge without it.
fn members_converged(c: &Cluster) -> bool {
    let Some(leader) = c.leader() else {
        return false;
    };
    let last = c.last_index(leader);
    c.conf(leader)
        .members()
        .iter()
        .filter(|&&id| !c.is_refused(id) && !c.is_amnesiac(id))
        .all(|&id| c.is_up(id) && c.commit(id) == last && c.applied(id) == last)
}

/// Thesis §4.2.3: a removed server that never learnt of its removal times out and campaigns
/// forever. Without CheckQuorum nodes that hear from a leader do not ignore it: its higher
/// terms depose each leader in turn (PreVote helps only while its log is behind a majority of
/// its old configuration), so such a cluster needs what docs/OPERATIONS.md asks of an
/// operator: the removed node's process is stopped.
fn stop_campaigning_removed_nodes(cluster: &mut Cluster) {
    let Some(leader) = cluster.leader() else {
        return;
    };
    // Only the configuration of a leader no node has left behind, with nothing after it: a
    // change still in the leader's log may bring the node back (as a learner), and a stale
    // leader may not know of a later member.
    let newest_term = cluster
        .ids()
        .iter()
        .filter(|&&id| cluster.is_up(id))
        .map(|&id| cluster.term(id))
        .max();
    if cluster.applied(leader) < cluster.last_index(leader)
        || newest_term != Some(cluster.term(leader))
    {
        return;
    }
    let in_force = cluster.conf(leader);
    let campaigning: Vec<NodeId> = cluster
        .ids()
        .iter()
        .copied()
        .filter(|&id| cluster.is_up(id) && !in_force.members().contains(&id))
        .filter(|&id| is_voter(&cluster.conf(id), id))
        .collect();
    for id in campaigning {
        cluster.note(format!(
            "stop {id}: removed, and without CheckQuorum it would disrupt"
        ));
        cluster.crash(id);
    }
}

fn is_voter(conf: &ConfState, id: NodeId) -> bool {
    conf.voters.contains(&id) || conf.voters_outgoing.contains(&id)
}

/// One node's state, for a liveness failure's report.
fn node_state(cluster: &Cluster, id: NodeId) -> String {
    let conf = cluster.conf(id);
    format!(
        "{id}{}: {} {} commit={} applied={} last={} voters={:?} learners={:?}",
        if cluster.is_refused(id) {
            " (refused to start)"
        } else {
            ""
        },
        cluster.role(id),
        cluster.term(id),
        cluster.commit(id).0,
        cluster.applied(id).0,
        cluster.last_index(id).0,
        conf.voters.iter().map(|v| v.0).collect::<Vec<_>>(),
        conf.learners.iter().map(|v| v.0).collect::<Vec<_>>(),
    )
}

fn check_kept_power_proposals(cluster: &mut Cluster) {
    let Some(leader) = cluster.leader() else {
        return;
    };
    let term = cluster.term(leader);
    let mut seen = std::collections::BTreeSet::new();
    for index in 1..=cluster.last_index(leader).0 {
        let Some(entry) = cluster.entry(leader, LogIndex(index)) else {
            continue;
        };
        if let Some(value) = decode_value(&entry) {
            if !seen.insert(value) {
                fail(
                    cluster,
                    "No Duplicate Entries",
                    format!("value {value} appears twice in {leader}'s log"),
                );
                return;
            }
        }
    }
    let kept: Vec<_> = cluster
        .proposals()
        .iter()
        .filter(|p| p.node == leader && p.term == term)
        .cloned()
        .collect();
    for proposal in kept {
        // A compacted entry is judged by what was applied there: the value the leader
        // proposed, in its term (the entry itself also holds the leader's stamp).
        let committed_there = match cluster.entry(leader, proposal.index) {
            Some(entry) => decode_value(&entry) == Some(proposal.value),
            None => {
                cluster.committed_value_at(proposal.index) == Some(proposal.value)
                    && cluster.committed_term_at(proposal.index) == Some(proposal.term)
            }
        };
        if !committed_there || cluster.commit(leader) < proposal.index {
            fail(
                cluster,
                "Liveness",
                format!(
                    "proposal v{} accepted by {leader} at {}/{term} did not commit",
                    proposal.value, proposal.index
                ),
            );
            return;
        }
    }
}

/// Once the cluster converged: the pipelining client's key, as the leader holds it, shows
/// each write once, in the order sent, where its reply said (see `workload/pipeline.rs`).
fn check_pipeline(cluster: &mut Cluster, workload: &Workload) {
    if cluster.violation().is_some() {
        return;
    }
    let Some(leader) = cluster.leader() else {
        return;
    };
    let value = cluster.value(leader, crate::workload::pipeline::KEY);
    if let Err(violation) = workload.check_pipeline(value.as_deref()) {
        cluster.report_violation(violation);
    }
}

fn fail(cluster: &mut Cluster, property: &'static str, detail: String) {
    cluster.report_violation(Violation { property, detail });
}
