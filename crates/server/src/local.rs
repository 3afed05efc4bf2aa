//! `skiff local`: a whole cluster on this machine in one command, for trying Skiff out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::httpc;
use crate::shared::NodeStatus;

/// `skiff local` settings.
#[derive(clap::Args, Clone, Debug)]
pub struct LocalArgs {
    /// How many nodes to run.
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Where the nodes keep their data (one directory per node); running again resumes it.
    #[arg(long, default_value = "./skiff-data")]
    pub data_dir: PathBuf,
    /// Client port of node 1; node N listens on this + N - 1.
    #[arg(long, default_value_t = 7001)]
    pub client_port: u16,
    /// Peer port of node 1.
    #[arg(long, default_value_t = 7101)]
    pub peer_port: u16,
    /// HTTP port of node 1.
    #[arg(long, default_value_t = 7201)]
    pub http_port: u16,
    /// Extra flags passed to every `skiff serve` (e.g. `--tick-ms 20`).
    #[arg(long, allow_hyphen_values = true, num_args = 1..)]
    pub serve_args: Vec<String>,
}

struct LocalNode {
    id: u16,
    client: String,
    http: String,
    child: Option<Child>,
}

fn node_dir(data_dir: &Path, id: u16) -> PathBuf {
    data_dir.join(format!("node{id}"))
}

/// Starts the nodes, reports the cluster as it changes, and stops them on Ctrl-C.
pub fn local(args: LocalArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: LocalArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the skiff executable")?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let initial_cluster: Vec<String> = (1..=args.nodes)
        .map(|id| format!("{id}=127.0.0.1:{}", args.peer_port + id - 1))
        .collect();
    let initial_cluster = initial_cluster.join(",");
    let mut nodes = Vec::new();
    for id in 1..=args.nodes {
        let dir = node_dir(&args.data_dir, id);
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("node.log"))?;
        let client = format!("127.0.0.1:{}", args.client_port + id - 1);
        let http = format!("127.0.0.1:{}", args.http_port + id - 1);
        let mut command = Command::new(&exe);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&dir)
            .args(["--listen-client", &client])
            .args([
                "--listen-peer",
                &format!("127.0.0.1:{}", args.peer_port + id - 1),
            ])
            .args(["--listen-http", &http])
            .args(&args.serve_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        // A node that ran before needs only its data directory.
        if !dir.join("identity.toml").exists() {
            command
                .args(["--id", &id.to_string()])
                .args(["--initial-cluster", &initial_cluster]);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting node {id}"))?;
        nodes.push(LocalNode {
            id,
            client,
            http,
            child: Some(child),
        });
    }
    println!(
        "Skiff: {} nodes, data in {}",
        args.nodes,
        args.data_dir.display()
    );
    for node in &nodes {
        println!(
            "  node {}: redis-cli -p {}   http://{}/status   log {}",
            node.id,
            node.client.rsplit(':').next().unwrap_or_default(),
            node.http,
            node_dir(&args.data_dir, node.id).join("node.log").display()
        );
    }
    println!("Waiting for a leader… (Ctrl-C stops every node)");

    let mut last: BTreeMap<u16, (String, u64, Option<u64>)> = BTreeMap::new();
    let mut announced_leader: Option<u64> = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = ticker.tick() => {}
        }
        for node in &mut nodes {
            if let Some(child) = &mut node.child {
                if let Ok(Some(exit)) = child.try_wait() {
                    println!("node {} exited ({exit}); see its node.log", node.id);
                    node.child = None;
                    last.remove(&node.id);
                }
            }
        }
        let statuses = poll(&nodes).await;
        for (id, status) in &statuses {
            let now = (status.role.clone(), status.term, status.leader);
            if last.get(id) != Some(&now) {
                if let Some((_, term, _)) = last.get(id) {
                    if status.term > *term && status.role != "leader" {
                        println!("node {id}: term {} ({})", status.term, status.role);
                    }
                }
                last.insert(*id, now);
            }
        }
        let leader = statuses
            .iter()
            .find(|(_, s)| s.role == "leader")
            .map(|(_, s)| (s.id, s.term));
        if let Some((leader, term)) = leader {
            if announced_leader != Some(leader) {
                let client = nodes
                    .iter()
                    .find(|n| u64::from(n.id) == leader)
                    .map(|n| n.client.clone())
                    .unwrap_or_default();
                println!("leader: node {leader} in term {term} (clients: {client})");
                announced_leader = Some(leader);
            }
        }
    }
    println!("Stopping…");
    for node in &mut nodes {
        if let Some(child) = &mut node.child {
            if let Some(pid) = child.id() {
                // SIGTERM lets the node log its stop; everything acknowledged is durable anyway.
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
        }
    }
    for node in &mut nodes {
        if let Some(child) = &mut node.child {
            if tokio::time::timeout(Duration::from_secs(3), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
    Ok(())
}

async fn poll(nodes: &[LocalNode]) -> Vec<(u16, NodeStatus)> {
    let mut statuses = Vec::new();
    for node in nodes.iter().filter(|n| n.child.is_some()) {
        if let Ok(status) = httpc::status(&node.http).await {
            statuses.push((node.id, status));
        }
    }
    statuses
}
