//! `openraft-bench core --clients C --ops N`: the workload of `skiff-bench core` on openraft.
//!
//! Three openraft nodes in one process over an in-memory log and an empty state machine, calling
//! each other directly (`network.rs`); node 1 is initialized as the leader; C closed-loop client
//! tasks each call `client_write` on the leader with an empty request, one write outstanding at a
//! time; `client_write` returns once the write is applied on the leader. As in openraft's own
//! `benchmarks/minimal`, the nodes run on a multi-threaded tokio runtime (16 workers) and the
//! clients on another (2 workers), and the configuration is the same (election timeout
//! 200–2000 ms, up to 1024 entries per append, purge batches of 1024).
//!
//! It prints the same result line as `skiff-bench core` (plain, or JSON with `--json`).

mod network;
mod store;

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use network::{BenchRaft, Router};
use openraft::async_runtime::WatchReceiver;
use store::{LogStore, Request, StateMachine};
use tokio::runtime::{Builder, Runtime};

#[derive(Parser, Debug)]
#[command(
    name = "openraft-bench",
    about = "skiff-bench's core workload on openraft"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// 3 openraft nodes in one process, node 1 the leader, closed-loop clients writing empty
    /// requests; a write is done when applied on the leader.
    Core(CoreArgs),
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
    /// Worker threads of the runtime the nodes run on (openraft's benchmark: 16).
    #[arg(long, default_value_t = 16)]
    server_workers: usize,
    /// Worker threads of the runtime the clients run on (openraft's benchmark: 2).
    #[arg(long, default_value_t = 2)]
    client_workers: usize,
    /// Pipeline appends to each follower (`Raft::stream_append`) instead of sending one at a
    /// time and waiting for its answer, as openraft's default network and its benchmark do.
    #[arg(long)]
    pipeline: bool,
    /// Print one JSON object per line instead of the plain line.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Core(args) = cli.command;
    if args.clients.contains(&0) || args.server_workers == 0 || args.client_workers == 0 {
        eprintln!("error: --clients and the worker counts must be at least 1");
        return ExitCode::from(2);
    }
    for &clients in &args.clients {
        let ops = args.ops.unwrap_or((200 * clients as u64).max(20_000));
        for _ in 0..args.repeat {
            match run(&args, clients, ops) {
                Ok(line) => println!("{}", if args.json { line.json() } else { line.plain() }),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const NODES: [u64; 3] = [1, 2, 3];

/// Builds the cluster, waits until node 1 leads and every node applied the initial entries.
fn start_cluster(
    server: &Runtime,
    pipeline: bool,
) -> Result<(Vec<BenchRaft>, Vec<StateMachine>), BoxError> {
    server.block_on(async {
        let config = openraft::Config {
            election_timeout_min: 200,
            election_timeout_max: 2000,
            purge_batch_size: 1024,
            max_payload_entries: 1024,
            ..Default::default()
        };
        let config = Arc::new(config.validate()?);
        let router = Router {
            pipeline,
            ..Router::default()
        };
        let mut rafts = Vec::new();
        let mut machines = Vec::new();
        for id in NODES {
            let machine = StateMachine::default();
            let raft = BenchRaft::new(
                id,
                config.clone(),
                router.clone(),
                LogStore::default(),
                machine.clone(),
            )
            .await?;
            router.nodes.lock().unwrap().insert(id, raft.clone());
            rafts.push(raft);
            machines.push(machine);
        }
        rafts[0]
            .initialize(NODES.into_iter().collect::<BTreeSet<u64>>())
            .await?;
        let leader_index = rafts[0]
            .wait(Some(Duration::from_secs(10)))
            .state(openraft::ServerState::Leader, "node 1 leads")
            .await?
            .last_log_index;
        for raft in &rafts {
            raft.wait(Some(Duration::from_secs(10)))
                .applied_index_at_least(leader_index, "initial entries applied")
                .await?;
        }
        Ok((rafts, machines))
    })
}

fn run(args: &CoreArgs, clients: usize, ops: u64) -> Result<ResultLine, BoxError> {
    let server = Builder::new_multi_thread()
        .worker_threads(args.server_workers)
        .thread_name("bench-server")
        .enable_all()
        .build()?;
    let client_rt = Builder::new_multi_thread()
        .worker_threads(args.client_workers)
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    let (rafts, machines) = start_cluster(&server, args.pipeline)?;
    let leader = rafts[0].clone();
    let per_client = (ops / clients as u64).max(1);
    let total = per_client * clients as u64;
    let writes_before = machines[0].applied_writes();

    let (elapsed, latencies) = client_rt.block_on(async move {
        let start = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let leader = leader.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(per_client as usize);
                    for _ in 0..per_client {
                        let issued = Instant::now();
                        leader
                            .client_write(Request)
                            .await
                            .expect("the leader accepts the write");
                        latencies.push(issued.elapsed().as_nanos() as u64);
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::with_capacity(clients);
        for task in tasks {
            latencies.push(task.await.expect("client task"));
        }
        (start.elapsed(), latencies)
    });

    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    for client in &latencies {
        for &nanos in client {
            histogram.saturating_record(nanos.max(1));
        }
    }

    // The same work as Skiff's run: every write applied on the leader, and on both followers.
    let applied_on_leader = machines[0].applied_writes() - writes_before;
    if applied_on_leader != total || histogram.len() != total {
        return Err(
            format!("{applied_on_leader} writes applied on the leader, {total} expected").into(),
        );
    }
    server.block_on(async {
        let last = rafts[0].metrics().borrow_watched().last_log_index;
        for raft in &rafts[1..] {
            raft.wait(Some(Duration::from_secs(30)))
                .applied_index_at_least(last, "followers apply everything")
                .await?;
        }
        for raft in &rafts {
            raft.shutdown().await?;
        }
        Ok::<_, BoxError>(())
    })?;
    for (node, machine) in machines.iter().enumerate() {
        let applied = machine.applied_writes() - writes_before;
        if applied != total {
            return Err(format!(
                "node {} applied {applied} writes, {total} expected",
                node + 1
            )
            .into());
        }
    }
    drop(client_rt);
    drop(server);

    Ok(ResultLine {
        clients,
        ops: total,
        elapsed,
        p50_us: histogram.value_at_quantile(0.50) as f64 / 1000.0,
        p99_us: histogram.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

/// One run's numbers, printed exactly as `skiff-bench` prints them (`crates/bench/src/report.rs`).
struct ResultLine {
    clients: usize,
    ops: u64,
    elapsed: Duration,
    p50_us: f64,
    p99_us: f64,
}

impl ResultLine {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn plain(&self) -> String {
        format!(
            "openraft clients={} ops={} elapsed_s={:.6} ops_per_s={:.0} p50_us={:.1} p99_us={:.1}",
            self.clients,
            self.ops,
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            self.p50_us,
            self.p99_us
        )
    }

    fn json(&self) -> String {
        format!(
            "{{\"impl\":\"openraft\",\"clients\":{},\"ops\":{},\"elapsed_s\":{:.6},\"ops_per_s\":{:.0},\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
            self.clients,
            self.ops,
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            self.p50_us,
            self.p99_us
        )
    }
}
