//! `etcd-bench --endpoints A,B,C --op put|get --clients C --ops N`: closed-loop puts or
//! linearizable gets against an etcd cluster through etcd's native gRPC API (the `etcd-client`
//! crate: tonic over HTTP/2), the counterpart of `redis-benchmark -t set,get -d 256 -r 100000`
//! on Skiff in bench/cluster.sh.
//!
//! - C client tasks, each sending its next request when the previous one has been answered,
//!   until N requests have been sent in all.
//! - The tasks share `--conns` gRPC connections (HTTP/2, many requests in flight on each;
//!   default 1), task i using connection i mod conns, as etcd's own `benchmark` tool shares
//!   `--conns` connections (default 1) among its `--clients`.
//! - `--target leader` (the default) asks every endpoint for its status and sends everything to
//!   the leader, as bench/cluster.sh drives Skiff's leader; `--target all` spreads the
//!   connections over the endpoints in turn (writes sent to a follower are forwarded).
//! - Keys are `key:` and twelve digits, uniform in 0..keys (redis-benchmark's `-r` keys);
//!   values are `--value-bytes` bytes. Gets are etcd's default range requests: linearizable
//!   (the member confirms its read index with a quorum), not serializable.
//! - ops/s = N / elapsed; p50 and p99 from an HDR histogram of every request's latency.
//!
//! Prints one line (or a JSON object with `--json`); exits non-zero if a request failed.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use etcd_client::{Client, ConnectOptions};
use hdrhistogram::Histogram;

#[derive(Parser, Debug)]
#[command(
    name = "etcd-bench",
    about = "closed-loop puts or linearizable gets on etcd over gRPC"
)]
struct Cli {
    /// Client URLs of the members, comma-separated (`http://` is added when missing).
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// Which member(s) the requests go to.
    #[arg(long, value_enum, default_value_t = Target::Leader)]
    target: Target,
    #[arg(long, value_enum)]
    op: Op,
    /// Closed-loop clients (tasks), one request in flight each.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// gRPC connections shared by the clients (at most one per client).
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Requests in all.
    #[arg(long, default_value_t = 10_000)]
    ops: u64,
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Keys are drawn uniformly from 0..keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Worker threads of the client's tokio runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds to keep asking the endpoints until one of them is the leader (a starting cluster).
    #[arg(long, default_value_t = 0.0)]
    wait: f64,
    /// Print a JSON object instead of a line.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Target {
    Leader,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Op {
    Put,
    Get,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
        }
    }
}

fn url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

fn options() -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(30))
}

/// The endpoint whose member is the leader, by asking each for its status.
async fn find_leader(endpoints: &[String]) -> Result<String, String> {
    let mut last_err = String::from("no endpoint answered");
    for endpoint in endpoints {
        let status = match Client::connect([endpoint.as_str()], Some(options())).await {
            Ok(mut client) => client.status().await,
            Err(e) => Err(e),
        };
        match status {
            Ok(status) => {
                let me = status.header().map(|h| h.member_id());
                if me == Some(status.leader()) {
                    return Ok(endpoint.clone());
                }
            }
            Err(e) => last_err = format!("{endpoint}: {e}"),
        }
    }
    Err(format!("no leader among the endpoints ({last_err})"))
}

/// `find_leader`, retried every 100 ms for up to `wait` seconds.
async fn wait_for_leader(endpoints: &[String], wait: f64) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs_f64(wait.max(0.0));
    loop {
        match find_leader(endpoints).await {
            Ok(leader) => return Ok(leader),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// splitmix64: a small, fast generator for the keys; one per client, seeded by its index.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

struct Outcome {
    hist: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

async fn client_loop(
    mut client: Client,
    op: Op,
    index: usize,
    next: Arc<AtomicU64>,
    ops: u64,
    keys: u64,
    value: Arc<Vec<u8>>,
) -> Outcome {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut rng = Rng(0x5eed_0000 + index as u64);
    let mut errors = 0;
    let mut first_error = None;
    while next.fetch_add(1, Ordering::Relaxed) < ops {
        let key = format!("key:{:012}", rng.next() % keys);
        let start = Instant::now();
        let result = match op {
            Op::Put => client.put(key, value.as_slice(), None).await.map(|_| ()),
            Op::Get => client.get(key, None).await.map(|_| ()),
        };
        let micros = start.elapsed().as_micros() as u64;
        match result {
            Ok(()) => hist.saturating_record(micros.max(1)),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    Outcome {
        hist,
        errors,
        first_error,
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let endpoints: Vec<String> = cli.endpoints.iter().map(|e| url(e)).collect();
    let leader = wait_for_leader(&endpoints, cli.wait).await?;
    let targets = match cli.target {
        Target::Leader => vec![leader],
        Target::All => endpoints.clone(),
    };
    let clients = cli.clients.max(1);
    let conns = cli.conns.clamp(1, clients);

    let mut connections = Vec::with_capacity(conns);
    for i in 0..conns {
        let endpoint = &targets[i % targets.len()];
        let mut client = Client::connect([endpoint.as_str()], Some(options()))
            .await
            .map_err(|e| format!("connect {endpoint}: {e}"))?;
        // One round trip before the clock starts, so that the connection is up.
        client
            .status()
            .await
            .map_err(|e| format!("status {endpoint}: {e}"))?;
        connections.push(client);
    }

    let value = Arc::new(vec![b'x'; cli.value_bytes]);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            tokio::spawn(client_loop(
                connections[i % conns].clone(),
                cli.op,
                i,
                next.clone(),
                cli.ops,
                cli.keys.max(1),
                value.clone(),
            ))
        })
        .collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let outcome = task.await.map_err(|e| format!("client task: {e}"))?;
        hist.add(&outcome.hist).expect("same histogram bounds");
        errors += outcome.errors;
        if first_error.is_none() {
            first_error = outcome.first_error;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ops_per_s = cli.ops as f64 / elapsed;
    let p50 = hist.value_at_quantile(0.50) as f64 / 1000.0;
    let p99 = hist.value_at_quantile(0.99) as f64 / 1000.0;
    let target = match cli.target {
        Target::Leader => format!("leader {}", targets[0]),
        Target::All => "all".to_string(),
    };
    if cli.json {
        println!(
            "{{\"system\":\"etcd\",\"op\":\"{}\",\"target\":\"{}\",\"clients\":{},\"conns\":{},\"ops\":{},\"errors\":{},\"elapsed_s\":{:.3},\"ops_per_s\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
            cli.op.name(),
            target,
            clients,
            conns,
            cli.ops,
            errors,
            elapsed,
            ops_per_s,
            p50,
            p99
        );
    } else {
        println!(
            "{:<14} {:<22} {:<4} {:>10.0} {:>8.3} {:>8.3}  ({} conns, {}, {} errors)",
            "etcd",
            format!("{clients} clients"),
            cli.op.name().to_uppercase(),
            ops_per_s,
            p50,
            p99,
            conns,
            target,
            errors
        );
    }
    match first_error {
        Some(e) => Err(format!("{errors} requests failed, the first: {e}")),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("etcd-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
