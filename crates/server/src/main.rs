//! `skiff`: a replicated, linearizable key-value store on Raft that speaks the Redis protocol.
//!
//! The shell ring: tokio, sockets, files and the command line around the deterministic node.
//!
//! # Layout
//! - commands of the binary: [`serve`] (one durable node, its startup in steps; [`join`]
//!   for a node joining through a member), [`local`] (a
//!   cluster on this machine), [`cli`] (`skiff status` and `skiff admin`), [`httpc`] (their
//!   small HTTP client), [`backup`] (`skiff admin backup`: the endpoint and the download),
//!   [`restore`] (`skiff restore`: a new cluster's data directory from a backup);
//! - security: [`tls`] (rustls on the three ports, mutual on the peer port, reloadable),
//!   [`certs`] (`skiff certs`), [`auth`] (the client password and admin token, compared in
//!   constant time);
//! - settings: [`settings`] (every `skiff serve` setting defined once: flag, TOML key,
//!   default, bounds, help), [`config`] (the node's identity, kept in its data directory),
//!   [`open_files`] (the limit on open descriptors, raised at start);
//! - the node's thread: [`driver`] (the one owner of the node: persist → send → apply →
//!   advance), [`syncer`] (fsync on a writer thread), [`snapshotter`] (snapshot files off the
//!   driver thread), [`peers`] (the driver's peer queues and their addresses), [`disk`] (the
//!   real disk, timed), [`dir_lock`] (one process per data directory), [`read_ahead`] (the log read ahead of the replay at start-up, on a thread), [`admin`]
//!   (membership changes checked before they are proposed);
//! - the ports: [`client`] (Redis-protocol connections), [`resp`] (RESP2 parsing and replies),
//!   [`commands`] (what a client request means), [`transport`] (TCP between nodes), [`http`]
//!   (live view, status, metrics, admin);
//! - shared by the tasks and the driver: [`shared`] (status, advertised addresses, events),
//!   [`history`] (the last events, for a live view opened later), [`metrics`] (Prometheus).

/// jemalloc rather than glibc's allocator: values are allocated on one thread and freed on
/// another (connection tasks, the driver, the snapshot thread), which jemalloc's per-thread
/// caches and arenas take with less work (docs/benchmarks/rounds-1-to-6.md, "jemalloc").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod admin;
mod auth;
mod backup;
mod certs;
mod cli;
mod client;
mod commands;
mod config;
mod dir_lock;
mod disk;
mod driver;
mod history;
mod http;
mod httpc;
mod join;
mod local;
mod metrics;
mod open_files;
mod peers;
mod pubsub;
mod read_ahead;
mod resp;
mod restore;
mod runtime_config;
mod serve;
mod settings;
mod shared;
mod snapshotter;
mod syncer;
mod tls;
mod transport;

use clap::{CommandFactory, FromArgMatches, Subcommand};

/// Skiff: the Raft consensus algorithm as a key-value store you can run, watch and trust.
#[derive(clap::Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Run one node.
    Serve(Box<settings::ServeArgs>),
    /// Run a whole cluster on this machine (nodes on 127.0.0.1:7001…, peers 7101…, HTTP 7201…).
    Local(local::LocalArgs),
    /// Show the cluster as a table.
    Status(cli::StatusArgs),
    /// Operator actions: add-learner, promote, remove, transfer-leader, snapshot, backup,
    /// reload-tls.
    Admin(cli::AdminArgs),
    /// Write a data directory for one node of a new cluster from a backup file (run it once
    /// per node, every node from the same file), then start each with `skiff serve`.
    Restore(restore::RestoreArgs),
    /// Write a CA, a certificate per node and a client certificate for TLS.
    Certs(certs::CertsArgs),
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The chain of causes, one line, without a backtrace: these are the user's errors
            // (a missing flag, an unreachable node, damaged data), not the program's.
            eprintln!("Error: {error:#}");
            if error.downcast_ref::<cli::Refused>().is_some() {
                return std::process::ExitCode::from(cli::REFUSED_EXIT_CODE);
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: a log file or a journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // `serve`'s help shows each setting's default and bounds from their one definition.
    let matches = Cli::command()
        .mut_subcommand("serve", settings::annotate_help)
        .get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    match cli.command {
        Commands::Serve(args) => serve::serve(*args),
        Commands::Local(args) => local::local(args),
        Commands::Status(args) => cli::status(args),
        Commands::Admin(args) => cli::admin(args),
        Commands::Restore(args) => restore::restore(args),
        Commands::Certs(args) => certs::certs(args),
    }
}
