//! `skiff-bench`: Skiff's benchmarks. `skiff-bench core --clients C --ops N` runs the Raft core
//! benchmark, `skiff-bench codec` times the byte codecs on the hot path (see
//! `docs/BENCHMARKS.md`), `skiff-bench apply` the key-value store applying writes.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use skiff_bench::apply::{self, ApplyOptions};
use skiff_bench::codec;
use skiff_bench::core::{self, CoreOptions, Shape};
use skiff_bench::report::ResultLine;

#[derive(Parser, Debug)]
#[command(name = "skiff-bench", version, about = "Skiff's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The Raft core alone: 3 nodes in one process, node 1 the fixed leader, closed-loop
    /// clients writing empty payloads; a write is done when applied on the leader.
    Core(CoreArgs),
    /// The byte codecs on the hot path: AppendEntries on the wire, a client write as a log
    /// entry, WAL batches on the in-memory disk; median nanoseconds per operation.
    Codec(CodecArgs),
    /// The key-value store applying SETs decoded from log entries, with client sessions, as
    /// every replica does for every write (and a restart for the whole log); nanoseconds per
    /// write.
    Apply(ApplyArgs),
}

#[derive(clap::Args, Debug)]
struct ApplyArgs {
    /// Distinct keys; the store holds all of them before a round starts.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Writes per round.
    #[arg(long, default_value_t = 1_000_000)]
    ops: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Clients (sessions) the writes come from.
    #[arg(long, default_value_t = 50)]
    clients: u64,
    /// Freeze a snapshot every this many writes and serialize it on another thread (0: never).
    #[arg(long, default_value_t = 0)]
    freeze_every: u64,
    /// Rounds; the median is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Entries whose written keys the store is shown before the first of them is applied,
    /// as a node does (1: no hint).
    #[arg(long, default_value_t = skiff_node::APPLY_WINDOW)]
    window: usize,
}

#[derive(clap::Args, Debug)]
struct CodecArgs {
    /// Rounds per case; the median is reported.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Operations per round (entries, for the cases that carry several per operation).
    #[arg(long, default_value_t = 200_000)]
    ops: usize,
}

#[derive(clap::Args, Debug)]
struct CoreArgs {
    /// Closed-loop clients; a comma-separated list runs each in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,64,256,1024,4096")]
    clients: Vec<usize>,
    /// Writes per run (split evenly over the clients). Default: max(20000, 200 × clients).
    #[arg(long)]
    ops: Option<u64>,
    /// Runs per client count, each on a fresh cluster; one result line each.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Snapshot and compact each node's log every this many applied entries (0: never).
    #[arg(long, default_value_t = 5000)]
    snapshot_every: u64,
    /// Milliseconds of wall-clock time per Raft tick (heartbeat interval).
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,
    /// `loop`: one thread drives the three nodes and the clients; `threads`: a thread per node
    /// and one for the clients, talking over channels.
    #[arg(long, value_enum, default_value_t = Shape::Loop)]
    shape: Shape,
    /// `--shape threads`: polls of an empty channel (yielding the processor in between) before
    /// a thread blocks on it.
    #[arg(long, default_value_t = 20)]
    poll_yields: u32,
    /// Print one JSON object per line instead of the plain line.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Core(args) => run_core(&args),
        Command::Codec(args) => run_codec(&args),
        Command::Apply(args) => run_apply(&args),
    }
}

fn run_apply(args: &ApplyArgs) -> ExitCode {
    if args.rounds == 0 || args.ops == 0 || args.keys == 0 || args.clients == 0 {
        eprintln!("error: --rounds, --ops, --keys and --clients must be at least 1");
        return ExitCode::from(2);
    }
    let result = apply::run(ApplyOptions {
        keys: args.keys,
        ops: args.ops,
        value_bytes: args.value_bytes,
        clients: args.clients,
        freeze_every: args.freeze_every,
        rounds: args.rounds,
        window: args.window,
    });
    let rounds: Vec<String> = result
        .rounds_ns
        .iter()
        .map(|ns| format!("{ns:.0}"))
        .collect();
    println!(
        "apply_set keys={} value_bytes={} clients={} freeze_every={} window={} freezes_due_per_round={} median_ns={:.1} median_cpu_ns={} rounds_ns={}",
        args.keys,
        args.value_bytes,
        args.clients,
        args.freeze_every,
        args.window,
        result.freezes_per_round,
        result.median_ns,
        result
            .median_cpu_ns
            .map_or("unknown".to_string(), |ns| format!("{ns:.1}")),
        rounds.join(",")
    );
    ExitCode::SUCCESS
}

fn run_codec(args: &CodecArgs) -> ExitCode {
    if args.rounds == 0 || args.ops == 0 {
        eprintln!("error: --rounds and --ops must be at least 1");
        return ExitCode::from(2);
    }
    for result in codec::run(args.rounds, args.ops) {
        println!("{} median_ns={:.1}", result.name, result.median_ns);
    }
    ExitCode::SUCCESS
}

fn run_core(args: &CoreArgs) -> ExitCode {
    if args.clients.contains(&0) || args.tick_ms == 0 {
        eprintln!("error: --clients and --tick-ms must be at least 1");
        return ExitCode::from(2);
    }
    for &clients in &args.clients {
        let ops = args.ops.unwrap_or((200 * clients as u64).max(20_000));
        let mut options = CoreOptions::new(clients, ops);
        options.snapshot_every = (args.snapshot_every > 0).then_some(args.snapshot_every);
        options.tick = Duration::from_millis(args.tick_ms);
        options.poll_yields = args.poll_yields;
        options.shape = args.shape;
        for _ in 0..args.repeat {
            let run = core::run(&options);
            let line = ResultLine {
                implementation: match options.shape {
                    Shape::Loop => "skiff",
                    Shape::Threads => "skiff-threads",
                },
                clients: run.clients,
                ops: run.ops,
                elapsed: run.elapsed,
                p50_us: run.latency_us(0.50),
                p99_us: run.latency_us(0.99),
            };
            println!("{}", if args.json { line.json() } else { line.plain() });
        }
    }
    ExitCode::SUCCESS
}
