//! `skiff-sim`: runs many seeds of the randomized simulation, or replays one with a full trace.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use skiff_sim::{run_seed, FaultSwitches, RunOptions, RunReport};

/// Run Skiff's Raft under randomized faults and check its safety properties.
#[derive(Debug, Parser)]
#[command(name = "skiff-sim", version)]
struct Args {
    /// How many seeds to run (from --start-seed on).
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed of a multi-seed run.
    #[arg(long, default_value_t = 0)]
    start_seed: u64,
    /// Replay this one seed and print its full trace.
    #[arg(long)]
    seed: Option<u64>,
    /// Cluster size (default: drawn from {3, 5, 7} per seed).
    #[arg(long)]
    nodes: Option<usize>,
    /// Length of the fault phase in ticks of 10 ms (default: drawn per seed from 1000..4000).
    #[arg(long)]
    ticks: Option<u64>,
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// No message loss.
    #[arg(long)]
    no_loss: bool,
    /// No long reordering of responses.
    #[arg(long)]
    no_reorder: bool,
    /// No duplicated messages.
    #[arg(long)]
    no_duplication: bool,
    /// No partitions.
    #[arg(long)]
    no_partitions: bool,
    /// No crashes.
    #[arg(long)]
    no_crashes: bool,
    /// No pauses.
    #[arg(long)]
    no_pauses: bool,
    /// No bit flips in durable log files.
    #[arg(long)]
    no_bit_flips: bool,
    /// Let a bit flip hit the final write batch of a log, which recovery can take for a torn
    /// write in a new segment file (a known limitation; see docs/TESTING.md).
    #[arg(long)]
    final_batch_flips: bool,
    /// No segment files overwritten by garbage.
    #[arg(long)]
    no_segment_garbage: bool,
    /// No lost segment files.
    #[arg(long)]
    no_lost_segments: bool,
    /// No disks replaced by empty ones (wiped nodes restarted under the same id).
    #[arg(long)]
    no_wipes: bool,
}

impl Args {
    fn run_options(&self, seed: u64) -> RunOptions {
        let mut options = RunOptions::new(seed);
        options.nodes = self.nodes;
        options.fault_ticks = self.ticks;
        options.faults = FaultSwitches {
            loss: !self.no_loss,
            reorder: !self.no_reorder,
            duplication: !self.no_duplication,
            partitions: !self.no_partitions,
            crashes: !self.no_crashes,
            pauses: !self.no_pauses,
            bit_flips: !self.no_bit_flips,
            final_batch_flips: self.final_batch_flips,
            segment_garbage: !self.no_segment_garbage,
            lost_segments: !self.no_lost_segments,
            wipes: !self.no_wipes,
        };
        options
    }

    /// The command that replays `seed` with the same switches.
    fn replay_command(&self, seed: u64) -> String {
        let mut command = format!("cargo run --release -p skiff-sim -- --seed {seed}");
        if let Some(nodes) = self.nodes {
            command += &format!(" --nodes {nodes}");
        }
        if let Some(ticks) = self.ticks {
            command += &format!(" --ticks {ticks}");
        }
        for (flag, on) in [
            ("--no-loss", self.no_loss),
            ("--no-reorder", self.no_reorder),
            ("--no-duplication", self.no_duplication),
            ("--no-partitions", self.no_partitions),
            ("--no-crashes", self.no_crashes),
            ("--no-pauses", self.no_pauses),
            ("--no-bit-flips", self.no_bit_flips),
            ("--final-batch-flips", self.final_batch_flips),
            ("--no-segment-garbage", self.no_segment_garbage),
            ("--no-lost-segments", self.no_lost_segments),
            ("--no-wipes", self.no_wipes),
        ] {
            if on {
                command += " ";
                command += flag;
            }
        }
        command
    }
}

#[derive(Default)]
struct Totals {
    seeds: u64,
    violations: u64,
    liveness_failures: u64,
    ticks: u64,
    elections: u64,
    commits: u64,
    messages: u64,
    dropped: u64,
    crashes: u64,
    reads: u64,
    transfers: u64,
    snapshots: u64,
    snapshot_installs: u64,
    conf_changes: u64,
    forwards: u64,
    forwards_redirected: u64,
    time_entries: u64,
    mid_write_crashes: u64,
    torn_tails: u64,
    recycled_segments_read: u64,
    bit_flips: u64,
    segments_garbled: u64,
    segments_lost: u64,
    refused_starts: u64,
    wipes: u64,
    incarnation_refusals: u64,
    linearizability_checks: u64,
    timed_writes: u64,
    timed_reads: u64,
    expired_reads: u64,
    fencing_tokens: u64,
    stamps_checked: u64,
    transactions: u64,
    aborted_transactions: u64,
    unchecked_replies: u64,
    resubmissions: u64,
    outcome_unknown: u64,
    pipelined_acks: u64,
    session_refusals: u64,
    sessions_evicted: u64,
    failures: Vec<RunReport>,
}

impl Totals {
    fn add(&mut self, report: RunReport) {
        self.seeds += 1;
        self.ticks += report.stats.ticks;
        self.elections += report.stats.elections;
        self.commits += report.commits;
        self.messages += report.stats.messages;
        self.dropped += report.stats.dropped;
        self.crashes += report.stats.crashes;
        self.reads += report.stats.reads;
        self.transfers += report.stats.transfers;
        self.snapshots += report.stats.snapshots;
        self.snapshot_installs += report.stats.snapshot_installs;
        self.conf_changes += report.stats.conf_changes;
        self.forwards += report.stats.forwards;
        self.forwards_redirected += report.stats.forwards_redirected;
        self.time_entries += report.stats.time_entries_applied;
        self.mid_write_crashes += report.stats.mid_write_crashes;
        self.torn_tails += report.stats.torn_tails;
        self.recycled_segments_read += report.stats.recycled_segments_read;
        self.bit_flips += report.stats.bit_flips;
        self.segments_garbled += report.stats.segments_garbled;
        self.segments_lost += report.stats.segments_lost;
        self.refused_starts += report.stats.refused_starts;
        self.wipes += report.stats.wipes;
        self.incarnation_refusals += report.stats.incarnation_refusals;
        self.linearizability_checks += report.linearizability_checks;
        self.timed_writes += report.timed.writes;
        self.timed_reads += report.timed.reads;
        self.expired_reads += report.timed.expired_reads;
        self.fencing_tokens += report.timed.fences;
        self.stamps_checked += report.timed.stamps;
        self.transactions += report.timed.transactions;
        self.aborted_transactions += report.timed.aborted_transactions;
        self.unchecked_replies += report.timed.unchecked_replies;
        self.resubmissions += report.stats.resubmissions;
        self.pipelined_acks += report.pipelined_acks;
        self.session_refusals += report.stats.session_refusals;
        self.sessions_evicted += report.stats.sessions_evicted;
        self.outcome_unknown += report.outcome_unknown;
        if let Some(violation) = &report.violation {
            self.violations += 1;
            if violation.property == "Liveness" {
                self.liveness_failures += 1;
            }
            if self.failures.len() < 10 {
                self.failures.push(report);
            }
        }
    }

    fn summary(&self) -> String {
        format!(
            "seeds={} violations={} ticks={} elections={} commits={} messages={} dropped={} crashes={} mid_write_crashes={} torn_tails={} recycled_segments_read={} bit_flips={} segments_garbled={} segments_lost={} refused_starts={} wipes={} incarnation_refusals={} snapshots={} snapshot_installs={} conf_changes={} transfers={} forwards={} forwards_redirected={} time_entries={} reads={} linearizability_checks={} timed_writes={} timed_reads={} expired_reads={} fencing_tokens={} stamps_checked={} transactions={} aborted_transactions={} unchecked_replies={} resubmissions={} outcome_unknown={} pipelined_acks={} session_refusals={} sessions_evicted={}",
            self.seeds,
            self.violations,
            self.ticks,
            self.elections,
            self.commits,
            self.messages,
            self.dropped,
            self.crashes,
            self.mid_write_crashes,
            self.torn_tails,
            self.recycled_segments_read,
            self.bit_flips,
            self.segments_garbled,
            self.segments_lost,
            self.refused_starts,
            self.wipes,
            self.incarnation_refusals,
            self.snapshots,
            self.snapshot_installs,
            self.conf_changes,
            self.transfers,
            self.forwards,
            self.forwards_redirected,
            self.time_entries,
            self.reads,
            self.linearizability_checks,
            self.timed_writes,
            self.timed_reads,
            self.expired_reads,
            self.fencing_tokens,
            self.stamps_checked,
            self.transactions,
            self.aborted_transactions,
            self.unchecked_replies,
            self.resubmissions,
            self.outcome_unknown,
            self.pipelined_acks,
            self.session_refusals,
            self.sessions_evicted
        )
    }
}

fn print_failure(args: &Args, report: &RunReport) {
    let violation = report
        .violation
        .as_ref()
        .expect("only failures are printed");
    eprintln!("\nSEED={} VIOLATION {violation}", report.seed);
    eprintln!("plan: {}", report.derived);
    eprintln!("last events:\n{}", report.trace_tail);
    if let Some(history) = &report.failed_history {
        let path =
            std::path::PathBuf::from(format!("skiff-sim-seed-{}.history.jsonl", report.seed));
        match skiff_sim::history::write_history(&path, history) {
            Ok(()) => eprintln!("history written to {}", path.display()),
            Err(err) => eprintln!("could not write the history: {err}"),
        }
    }
    eprintln!("replay: {}", args.replay_command(report.seed));
}

/// Runs one seed; a panic inside the core or the simulator is reported as a violation.
fn run_guarded(args: &Args, seed: u64) -> RunReport {
    let options = args.run_options(seed);
    match std::panic::catch_unwind(|| run_seed(&options)) {
        Ok(report) => report,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            RunReport {
                seed,
                derived: String::from("(see the replay)"),
                stats: Default::default(),
                commits: 0,
                violation: Some(skiff_sim::Violation {
                    property: "Panic",
                    detail: message,
                }),
                trace_tail: String::from("(the replay prints the full trace up to the panic)\n"),
                trace_hash: 0,
                linearizability_checks: 0,
                failed_history: None,
                timed: Default::default(),
                outcome_unknown: 0,
                pipelined_acks: 0,
            }
        }
    }
}

fn replay_one(args: &Args, seed: u64) -> ExitCode {
    let mut options = args.run_options(seed);
    options.print_trace = true;
    options.trace_keep = 0;
    let report = run_seed(&options);
    println!("SEED={seed} plan: {}", report.derived);
    println!("trace hash: {:016x}", report.trace_hash);
    let mut totals = Totals::default();
    let failed = report.violation.clone();
    totals.add(report);
    println!("{}", totals.summary());
    match failed {
        Some(violation) => {
            eprintln!("SEED={seed} VIOLATION {violation}");
            eprintln!("replay: {}", args.replay_command(seed));
            exit_code_for(&totals)
        }
        None => ExitCode::SUCCESS,
    }
}

/// 0: all good; 1: a safety property broke; 3: only liveness failed.
fn exit_code_for(totals: &Totals) -> ExitCode {
    if totals.violations > totals.liveness_failures {
        ExitCode::from(1)
    } else if totals.liveness_failures > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(seed) = args.seed {
        return replay_one(&args, seed);
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let next = AtomicU64::new(args.start_seed);
    let end = args.start_seed + args.seeds;
    let totals = Mutex::new(Totals::default());
    let bar = ProgressBar::new(args.seeds);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} seeds ({per_sec}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                let report = run_guarded(&args, seed);
                if report.violation.is_some() {
                    bar.suspend(|| print_failure(&args, &report));
                }
                let mut totals = totals
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                totals.add(report);
                bar.set_message(format!("violations={}", totals.violations));
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let totals = totals
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    println!("{}", totals.summary());
    exit_code_for(&totals)
}
