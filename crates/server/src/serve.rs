//! `skiff serve`: one durable node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use crossbeam_channel::bounded;
use skiff_node::{Node, NodeConfig};
use skiff_raft::{Config, NodeId};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::client::ClientOptions;
use crate::config::{cluster_id_of, parse_initial_cluster, Identity, ServeArgs};
use crate::disk::TimedDisk;
use crate::driver::{ConnectPeer, Driver, DriverOptions};
use crate::metrics::Metrics;
use crate::shared::{Advertised, Shared};
use crate::transport::{
    self, Hello, TransportOptions, DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_PEER_CONNECTIONS,
    PEER_QUEUE,
};

/// Inputs the driver may have queued before new ones are refused.
const DRIVER_QUEUE: usize = 65_536;

/// The node's identity and whether it has run before: from its data directory, or made from
/// the flags on first start (the caller stores it once the new log is on disk).
fn identity(args: &ServeArgs, data_dir: &std::path::Path) -> anyhow::Result<(Identity, bool)> {
    if let Some(identity) = Identity::load(data_dir)? {
        if let Some(id) = args.id.filter(|&id| id != identity.id) {
            bail!(
                "--id {id} does not match node {} whose data is in {}",
                identity.id,
                data_dir.display()
            );
        }
        if let Some(text) = args.initial_cluster.as_deref() {
            check_initial_cluster(text, &identity, data_dir)?;
        }
        return Ok((identity, true));
    }
    let id = args
        .id
        .context("--id is required on a node's first start (its data directory is empty)")?;
    let text = args
        .initial_cluster
        .as_deref()
        .context("--initial-cluster is required on a node's first start")?;
    let members = parse_initial_cluster(text)?;
    if !members.contains_key(&id) && !args.join {
        bail!(
            "node {id} is not in --initial-cluster {text}; to add it to a running cluster, start it with --join and run `skiff admin add-learner`"
        );
    }
    if members.contains_key(&id) && args.join {
        bail!("node {id} is an initial member; --join is for nodes added later");
    }
    let identity = Identity {
        id,
        cluster_id: cluster_id_of(&members),
        initial_cluster: members
            .iter()
            .map(|(id, addr)| (id.to_string(), *addr))
            .collect(),
    };
    Ok((identity, false))
}

/// First-start flags given to a directory that has run must agree with it: a different
/// `--initial-cluster` is an error, not silently ignored.
fn check_initial_cluster(
    text: &str,
    identity: &Identity,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let given = parse_initial_cluster(text)?;
    let stored = identity.members()?;
    if given == stored {
        return Ok(());
    }
    let show = |members: &std::collections::BTreeMap<u64, std::net::SocketAddr>| {
        members
            .iter()
            .map(|(id, addr)| format!("{id}={addr}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let differs: Vec<String> = given
        .keys()
        .chain(stored.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|id| given.get(id) != stored.get(id))
        .map(|id| {
            let side = |m: &std::collections::BTreeMap<u64, std::net::SocketAddr>| {
                m.get(id)
                    .map_or("absent".to_string(), |addr| addr.to_string())
            };
            format!(
                "member {id}: {} given, {} stored",
                side(&given),
                side(&stored)
            )
        })
        .collect();
    bail!(
        "--initial-cluster {} differs from the one node {} started with in {} ({}; {}): start it without --initial-cluster, or with the stored one",
        show(&given),
        identity.id,
        data_dir.display(),
        show(&stored),
        differs.join("; ")
    )
}

/// The client port's limits: the flags over the defaults, and the node's own limits on what
/// a log entry and a reply may hold.
fn client_options(args: &ServeArgs, config: &NodeConfig) -> anyhow::Result<ClientOptions> {
    let defaults = ClientOptions::default();
    let mut options = ClientOptions {
        max_write_bytes: usize::try_from(config.raft.max_message_bytes).unwrap_or(usize::MAX),
        max_reply_bytes: config.state_machine.max_reply_bytes,
        max_value_bytes: config.state_machine.max_value_bytes,
        max_clients: args.max_clients.unwrap_or(defaults.max_clients),
        max_output_bytes: args
            .client_output_limit_bytes
            .unwrap_or(defaults.max_output_bytes),
        max_memory_bytes: args
            .max_client_memory_bytes
            .unwrap_or(defaults.max_memory_bytes),
        idle_timeout: args
            .client_idle_timeout_secs
            .filter(|&secs| secs > 0)
            .map(Duration::from_secs),
        ..defaults
    };
    let limits = &mut options.limits;
    limits.max_bulk_bytes = args.max_bulk_bytes.unwrap_or(limits.max_bulk_bytes);
    limits.max_request_bytes = args.max_request_bytes.unwrap_or(limits.max_request_bytes);
    if limits.max_bulk_bytes > limits.max_request_bytes {
        bail!(
            "--max-bulk-bytes {} exceeds --max-request-bytes {}",
            limits.max_bulk_bytes,
            limits.max_request_bytes
        );
    }
    if options.max_clients == 0 || options.max_output_bytes == 0 || options.max_memory_bytes == 0 {
        bail!("--max-clients, --client-output-limit-bytes and --max-client-memory-bytes must be positive");
    }
    Ok(options)
}

/// Shows the log's recovery as it reads segment after segment: a progress bar on a terminal,
/// a log line per segment otherwise.
struct RecoveryDisplay {
    id: u64,
    bar: Option<indicatif::ProgressBar>,
}

impl RecoveryDisplay {
    fn new(id: u64) -> RecoveryDisplay {
        RecoveryDisplay { id, bar: None }
    }

    fn show(&mut self, progress: skiff_wal::RecoveryProgress) {
        use std::io::IsTerminal;
        if progress.segments_total < 2 {
            return;
        }
        if std::io::stderr().is_terminal() {
            let bar = self.bar.get_or_insert_with(|| {
                let bar = indicatif::ProgressBar::new(progress.segments_total as u64);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "recovering the log {bar:40} {pos}/{len} segments, {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                bar
            });
            bar.set_position(progress.segments_read as u64);
            bar.set_message(format!("{} MiB read", progress.bytes_read >> 20));
        } else {
            tracing::info!(
                node = self.id,
                segment = progress.segments_read,
                of = progress.segments_total,
                mib_read = progress.bytes_read >> 20,
                "recovering the log"
            );
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Runs a node until it is stopped (Ctrl-C or SIGTERM) or its disk fails.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let args = args.merged()?;
    let data_dir = args.data_dir.clone().context("--data-dir is required")?;
    let (identity, has_run) = identity(&args, &data_dir)?;
    let members = identity.members()?;
    let id = identity.id;
    let listen_peer = args
        .listen_peer
        .or_else(|| members.get(&id).copied())
        .context("--listen-peer is required")?;
    let listen_client = args.listen_client.context("--listen-client is required")?;
    let listen_http = args.listen_http.context("--listen-http is required")?;

    let mut raft = Config::new(NodeId(id), members.keys().map(|&m| NodeId(m)));
    raft.election_timeout_ticks = args.election_ticks.unwrap_or(15);
    raft.heartbeat_interval_ticks = args.heartbeat_ticks.unwrap_or(3);
    raft.pre_vote = args.pre_vote.unwrap_or(true);
    raft.check_quorum = args.check_quorum.unwrap_or(true);
    // Unacknowledged appends per follower: enough to keep a loopback or LAN link busy, and
    // what bounds the leader's memory for replication (each append is up to
    // `max_message_bytes`).
    raft.max_inflight_appends = 32;
    raft.seed = rand::random();
    let mut config: NodeConfig = NodeConfig::new(raft, identity.cluster_id);
    // A node that has run has a log: finding none (a wiped or lost WAL directory) must refuse
    // to start, not begin again at term 0 with no vote (thesis §3.8: a vote is never forgotten).
    config.wal.expect_existing_log = has_run;
    // The data directory's incarnation if its log is new: the cluster records it, and refuses
    // this id's messages under any other (a wiped directory forgot its votes, thesis §3.8).
    config.wal.new_incarnation = rand::random::<u64>().max(1);
    if let Some(max) = args.max_reply_bytes {
        config.state_machine.max_reply_bytes = max;
    }
    let client_options = client_options(&args, &config)?;
    config.snapshot_every_entries = args.snapshot_every.unwrap_or(100_000);
    let metrics = Arc::new(Metrics::new());
    let wal_dir = data_dir.join("wal");
    let mut recovery = RecoveryDisplay::new(id);
    let opened = Node::open_with_progress(
        TimedDisk::new(metrics.clone()),
        &wal_dir,
        config,
        &mut |progress| recovery.show(progress),
    );
    recovery.finish();
    let (node, report) = opened.with_context(|| {
        format!(
            "node {id} refuses to start: its durable state in {} is unusable",
            wal_dir.display()
        )
    })?;
    if !has_run {
        // Only now that the new log is durable: a crash before this leaves a directory that
        // starts afresh, never an identity whose log is missing.
        identity.store(&data_dir)?;
    }
    let term = node.wal().hard_state().term.0;
    if let Some(torn) = &report.torn_tail {
        tracing::warn!(node = id, term, file = %torn.file.display(), offset = torn.offset, bytes = torn.bytes_dropped, "recovery cut a torn final write");
    }
    if report.finished_snapshot_install {
        tracing::info!(
            node = id,
            term,
            "recovery finished installing a snapshot received before the crash"
        );
    }
    for removed in &report.snapshot_files_removed {
        tracing::info!(node = id, term, file = %removed.display(), "recovery removed a leftover snapshot file");
    }
    tracing::info!(
        node = id,
        term,
        segments = report.segments_read.len(),
        snapshot = ?report.snapshot_file,
        created = report.created,
        incarnation = format!("{:#x}", node.incarnation()),
        last_index = skiff_raft::LogStorage::last_index(node.wal()).0,
        "recovered durable state"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client_listener = TcpListener::bind(listen_client)
            .await
            .with_context(|| format!("listening for clients on {listen_client}"))?;
        let peer_listener = TcpListener::bind(listen_peer)
            .await
            .with_context(|| format!("listening for peers on {listen_peer}"))?;
        let http_listener = TcpListener::bind(listen_http)
            .await
            .with_context(|| format!("listening for HTTP on {listen_http}"))?;

        let shared = Arc::new(Shared {
            metrics,
            fault_injection: args.allow_fault_injection,
            local_control: args.local_control.clone(),
            ..Shared::default()
        });
        if let Ok(mut advertised) = shared.advertised.write() {
            advertised.insert(
                id,
                Advertised {
                    client_addr: listen_client.to_string(),
                    http_addr: listen_http.to_string(),
                },
            );
        }
        let transport = Arc::new(TransportOptions {
            id,
            cluster_id: identity.cluster_id,
            max_frame_bytes: args.max_frame_bytes.unwrap_or(DEFAULT_MAX_FRAME_BYTES),
            max_connections: args
                .max_peer_connections
                .unwrap_or(DEFAULT_MAX_PEER_CONNECTIONS),
            hello: Hello {
                from: id,
                client_addr: listen_client.to_string(),
                http_addr: listen_http.to_string(),
            },
        });
        let (driver_tx, driver_rx) = bounded(DRIVER_QUEUE);
        let runtime = tokio::runtime::Handle::current();
        let sender_options = transport.clone();
        let sender_metrics = shared.metrics.clone();
        let connect_peer: ConnectPeer = Box::new(move |peer, addr| {
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            runtime.spawn(transport::send_to_peer(
                peer,
                addr,
                sender_options.clone(),
                sender_metrics.clone(),
                rx,
            ));
            tx
        });
        let mut listeners = tokio::task::JoinSet::new();
        listeners.spawn(transport::serve_peers(
            peer_listener,
            transport.clone(),
            driver_tx.clone(),
            shared.clone(),
        ));
        listeners.spawn(crate::client::serve_clients(
            client_listener,
            driver_tx.clone(),
            shared.clone(),
            client_options,
        ));
        listeners.spawn(crate::http::serve_http(
            http_listener,
            shared.clone(),
            driver_tx.clone(),
            args.http_allowed_hosts.clone(),
        ));
        drop(driver_tx);
        // The listeners loop for ever; the first one to end (a panic included) ends the node.
        let listeners = async move { listeners.join_next().await };
        tokio::pin!(listeners);

        let driver = Driver::new(
            node,
            DriverOptions {
                tick: Duration::from_millis(args.tick_ms.unwrap_or(10)),
                request_timeout: Duration::from_millis(args.request_timeout_ms.unwrap_or(5000)),
                cluster_id: identity.cluster_id,
                peer_addrs: members.clone().into_iter().collect::<BTreeMap<_, _>>(),
                sync_thread: args.sync_thread,
            },
            driver_rx,
            connect_peer,
            shared,
        )?;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("skiff-driver-{id}"))
            .spawn(move || {
                let _ = done_tx.send(driver.run());
            })?;
        tracing::info!(
            node = id,
            client = %listen_client,
            peer = %listen_peer,
            http = %listen_http,
            "serving"
        );
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // Only a requested shutdown ends the process with status 0: anything else that stops
        // the node (the disk failed, the driver thread panicked, a listener task ended) is a
        // failure, so that a supervisor restarts it.
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!(node = id, "stopping on Ctrl-C"),
            _ = terminate.recv() => tracing::info!(node = id, "stopping on SIGTERM"),
            outcome = done_rx => {
                let error = match outcome {
                    // The disk failed: what it holds is unknown until recovery reads it again.
                    Ok(Err(error)) => anyhow::Error::new(error).context("the durable log failed"),
                    Ok(Ok(())) => anyhow::anyhow!("the driver thread stopped: its inputs closed"),
                    Err(_) => anyhow::anyhow!("the driver thread stopped unexpectedly (it panicked)"),
                };
                tracing::error!(node = id, error = format!("{error:#}"), "stopping");
                return Err(error);
            }
            ended = &mut listeners => {
                let error = anyhow::anyhow!("a listener task ended unexpectedly: {ended:?}");
                tracing::error!(node = id, %error, "stopping");
                return Err(error);
            }
        }
        anyhow::Ok(())
    })?;
    // Every acknowledged write is already durable: no shutdown work is needed.
    std::process::exit(0)
}
