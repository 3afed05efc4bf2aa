//! `skiff`: a replicated, linearizable key-value store on Raft that speaks the Redis protocol.

mod admin;
mod cli;
mod client;
mod commands;
mod config;
mod disk;
mod driver;
mod http;
mod httpc;
mod local;
mod metrics;
mod resp;
mod serve;
mod shared;
mod snapshotter;
mod syncer;
mod transport;

use clap::{Parser, Subcommand};

/// Skiff: the Raft consensus algorithm as a key-value store you can run, watch and trust.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Run one node.
    Serve(Box<config::ServeArgs>),
    /// Run a whole cluster on this machine (nodes on 127.0.0.1:7001…, peers 7101…, HTTP 7201…).
    Local(local::LocalArgs),
    /// Show the cluster as a table.
    Status(cli::StatusArgs),
    /// Operator actions: add-learner, promote, remove, transfer-leader, snapshot.
    Admin(cli::AdminArgs),
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The chain of causes, one line, without a backtrace: these are the user's errors
            // (a missing flag, an unreachable node, damaged data), not the program's.
            eprintln!("Error: {error:#}");
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
        .init();
    match Cli::parse().command {
        Commands::Serve(args) => serve::serve(*args),
        Commands::Local(args) => local::local(args),
        Commands::Status(args) => cli::status(args),
        Commands::Admin(args) => cli::admin(args),
    }
}
