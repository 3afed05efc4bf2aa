//! `skiff serve`: one durable node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use skiff_node::{Node, NodeConfig, Replay};
use skiff_raft::{Config, NodeId};
use tokio::net::TcpListener;

use crate::auth::Secret;
use crate::client::{ClientAccess, ClientOptions};
use crate::config::{cluster_id_of, parse_initial_cluster, Identity};
use crate::disk::TimedDisk;
use crate::driver::{ConnectPeer, Driver, DriverOptions};
use crate::http::HttpAccess;
use crate::join::JoinTarget;
use crate::metrics::Metrics;
use crate::read_ahead::{self, ThreadReadAhead};
use crate::settings::{ServeArgs, Settings};
use crate::shared::{Advertised, Shared};
use crate::tls::{Tls, TlsFiles};
use crate::transport::{self, Hello, TransportOptions, PEER_QUEUE};

/// Inputs the driver may have queued before new ones are refused.
const DRIVER_QUEUE: usize = 65_536;

/// How a node starts: its identity, whether it has run before, and whether this is a joining
/// node's first start.
struct Start {
    identity: Identity,
    has_run: bool,
    joining: Joining,
}

/// Whether a node starts to join a running cluster.
enum Joining {
    /// It founds the cluster, or restarts.
    No,
    /// First start with `--join` and the original `--initial-cluster`.
    WithInitialCluster,
    /// First start through the member at this HTTP address (`--join ADDR`).
    Through(String),
}

/// The node's identity and whether it has run before: from its data directory, or made from
/// the flags on first start (the caller stores it once the new log is on disk).
fn identity(args: &Settings, data_dir: &std::path::Path) -> anyhow::Result<Start> {
    let joining_through = match &args.join {
        Some(JoinTarget::Members(addrs)) => Some(addrs),
        _ => None,
    };
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
        if let Some(addrs) = joining_through {
            crate::join::check_stored(&join_access(args)?, addrs, &identity, data_dir)?;
        }
        return Ok(Start {
            identity,
            has_run: true,
            joining: Joining::No,
        });
    }
    let id = args
        .id
        .context("--id is required on a node's first start (its data directory is empty)")?;
    if let Some(addrs) = joining_through {
        if args.initial_cluster.is_some() {
            bail!("--join HOST:PORT takes the membership from the cluster: drop --initial-cluster (or give --join alone with the original --initial-cluster)");
        }
        let (identity, through) = crate::join::first_start(&join_access(args)?, addrs, id)?;
        return Ok(Start {
            identity,
            has_run: false,
            joining: Joining::Through(through),
        });
    }
    let joining = args.join.is_some();
    let text = args
        .initial_cluster
        .as_deref()
        .context("--initial-cluster is required on a node's first start")?;
    let members = parse_initial_cluster(text)?;
    if !members.contains_key(&id) && !joining {
        bail!(
            "node {id} is not in --initial-cluster {text}; to add it to a running cluster, start it with --join and run `skiff admin add-learner`"
        );
    }
    if members.contains_key(&id) && joining {
        bail!("node {id} is an initial member; --join is for nodes added later");
    }
    let identity = Identity {
        id,
        cluster_id: cluster_id_of(&members),
        initial_cluster: members
            .iter()
            .map(|(id, addr)| (id.to_string(), *addr))
            .collect(),
        members_at_join: BTreeMap::new(),
    };
    Ok(Start {
        identity,
        has_run: false,
        joining: if joining {
            Joining::WithInitialCluster
        } else {
            Joining::No
        },
    })
}

/// How a joining node reaches a member's HTTP port: HTTPS trusting the cluster's CA when the
/// node has one, and the admin token when every request needs it (`--http-auth all`).
fn join_access(settings: &Settings) -> anyhow::Result<crate::httpc::Access> {
    let token = match (&settings.admin_token_file, settings.http_auth) {
        (Some(path), Some(crate::settings::HttpAuth::All)) => {
            Some(crate::auth::read_secret_text(path, "admin token")?)
        }
        _ => None,
    };
    Ok(crate::httpc::Access {
        tls: settings
            .tls_ca_cert_file
            .as_deref()
            .map(crate::tls::client_config)
            .transpose()?,
        token,
    })
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
fn client_options(settings: &Settings, config: &NodeConfig) -> anyhow::Result<ClientOptions> {
    let defaults = ClientOptions::default();
    let mut options = ClientOptions {
        max_write_bytes: usize::try_from(config.raft.max_message_bytes).unwrap_or(usize::MAX),
        max_reply_bytes: config.state_machine.max_reply_bytes,
        max_value_bytes: config.state_machine.max_value_bytes,
        max_clients: settings.max_clients,
        max_output_bytes: settings.client_output_limit_bytes,
        max_memory_bytes: settings.max_client_memory_bytes,
        idle_timeout: Some(settings.client_idle_timeout_secs)
            .filter(|&secs| secs > 0)
            .map(Duration::from_secs),
        ..defaults
    };
    let limits = &mut options.limits;
    limits.max_bulk_bytes = settings.max_bulk_bytes;
    limits.max_request_bytes = settings.max_request_bytes;
    if limits.max_bulk_bytes > limits.max_request_bytes {
        bail!(
            "--max-bulk-bytes {} exceeds --max-request-bytes {}",
            limits.max_bulk_bytes,
            limits.max_request_bytes
        );
    }
    Ok(options)
}

/// Unacknowledged appends per follower: enough to keep a loopback or LAN link busy.
const MAX_INFLIGHT_APPENDS: usize = 32;

/// Entry bytes in the unacknowledged appends to one follower, unless `max_inflight_bytes` says
/// otherwise: what bounds the leader's memory for a follower catching up (appends of up to
/// `max_message_bytes` each, held as entries and as encoded frames until the socket takes
/// them). 8 MiB keeps a link of 1 GB/s and 8 ms round trips full.
pub(crate) const DEFAULT_MAX_INFLIGHT_BYTES: u64 = 8 * 1024 * 1024;

/// The most I/O threads a node starts by itself; more can be asked for (`--io-threads`). The
/// driver thread steps, writes and applies every request, so more threads than this only add
/// hand-offs.
const MAX_DEFAULT_IO_THREADS: usize = 4;

/// The runtime's worker threads: `configured`, or for 0 one less than the cores this process
/// may run on (the driver thread has one to itself), at least 1 and at most
/// [`MAX_DEFAULT_IO_THREADS`].
fn io_threads(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let cores = std::thread::available_parallelism().map_or(2, |cores| cores.get());
    cores.saturating_sub(1).clamp(1, MAX_DEFAULT_IO_THREADS)
}

/// Committed entries handed to the state machine in one batch. Small enough that a batch read
/// back from the log is still in the CPU's cache when it is applied: with the core's default
/// of 16 MiB, a restart decoded 16 MiB of entries before applying the first, and applying then
/// fetched each one from memory again (docs/benchmarks/rounds-1-to-6.md, "One key store, and
/// applying in cache-sized batches").
const MAX_APPLY_BYTES: u64 = 2 * 1024 * 1024;

/// The node's configuration from the settings: the core's timing and features, the state
/// machine's reply limit, and whether a log must already exist.
fn node_config(
    settings: &Settings,
    identity: &Identity,
    has_run: bool,
) -> anyhow::Result<NodeConfig> {
    let members = identity.members()?;
    let mut raft = Config::new(NodeId(identity.id), members.keys().map(|&m| NodeId(m)));
    raft.election_timeout_ticks = settings.election_timeout_ticks;
    raft.heartbeat_interval_ticks = settings.heartbeat_interval_ticks;
    raft.pre_vote = settings.pre_vote;
    raft.check_quorum = settings.check_quorum;
    raft.max_inflight_appends = MAX_INFLIGHT_APPENDS;
    raft.max_inflight_bytes = settings.max_inflight_bytes;
    raft.max_apply_bytes = MAX_APPLY_BYTES;
    raft.snapshot_trailing_entries = settings.snapshot_keep_entries;
    raft.seed = rand::random();
    let mut config: NodeConfig = NodeConfig::new(raft, identity.cluster_id);
    // A node that has run has a log: finding none (a wiped or lost WAL directory) must refuse
    // to start, not begin again at term 0 with no vote (thesis §3.8: a vote is never forgotten).
    config.wal.expect_existing_log = has_run;
    // The data directory's incarnation if its log is new: the cluster records it, and refuses
    // this id's messages under any other (a wiped directory forgot its votes, thesis §3.8).
    config.wal.new_incarnation = rand::random::<u64>().max(1);
    config.wal.spare_segments = settings.wal_spare_segments;
    // Recycled segments' masks must be beyond a client's guess (see skiff_wal::record).
    config.wal.mask_seed = rand::random();
    config.state_machine.max_reply_bytes = settings.max_reply_bytes;
    config.state_machine.max_sessions = settings.max_sessions;
    config.state_machine.session_expiry_ms = settings.session_expiry_ms;
    config.state_machine.session_evict_idle_ms = settings.session_evict_idle_ms;
    config.snapshot_every_entries = settings.snapshot_every_entries;
    config.snapshot_expansion_factor = settings.snapshot_expansion_factor;
    Ok(config)
}

/// How the driver runs the node: its clock, its patience with clients and its peers.
fn driver_options(settings: &Settings, identity: &Identity) -> anyhow::Result<DriverOptions> {
    Ok(DriverOptions {
        tick: Duration::from_millis(settings.tick_ms),
        request_timeout: Duration::from_millis(settings.request_timeout_ms),
        cluster_id: identity.cluster_id,
        peer_addrs: identity.peer_addrs()?,
        sync_thread: settings.sync_thread,
        snapshot_write_bytes_per_second: settings
            .snapshot_write_mib_per_second
            .saturating_mul(1 << 20),
    })
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

/// The three addresses a node listens on, and the peer address it gives other nodes.
#[derive(Clone, Copy, Debug)]
struct Listen {
    client: std::net::SocketAddr,
    peer: std::net::SocketAddr,
    http: std::net::SocketAddr,
    /// `--advertise-peer`, else `peer` unless it is unspecified (0.0.0.0).
    advertise_peer: Option<std::net::SocketAddr>,
}

impl Listen {
    /// The addresses from the settings; the peer address defaults to the node's own entry in
    /// the initial cluster.
    fn of(settings: &Settings, identity: &Identity) -> anyhow::Result<Listen> {
        let members = identity.members()?;
        let peer = settings
            .listen_peer
            .or_else(|| members.get(&identity.id).copied())
            .context("--listen-peer is required")?;
        if let Some(addr) = settings.advertise_peer {
            if addr.ip().is_unspecified() || addr.ip().is_multicast() || addr.port() == 0 {
                bail!("--advertise-peer {addr} is not an address other nodes can reach");
            }
        }
        Ok(Listen {
            client: settings
                .listen_client
                .context("--listen-client is required")?,
            peer,
            http: settings.listen_http.context("--listen-http is required")?,
            advertise_peer: settings
                .advertise_peer
                .or(Some(peer).filter(|p| !p.ip().is_unspecified() && p.port() != 0)),
        })
    }
}

/// What guards the node's ports: TLS on all three, the client password, the admin token.
#[derive(Clone, Default)]
struct Security {
    tls: Option<Arc<Tls>>,
    password: Option<Secret>,
    token: Option<Secret>,
    http: HttpAccess,
}

impl Security {
    /// Reads the files the settings name: the three TLS files go together.
    fn of(settings: &Settings) -> anyhow::Result<Security> {
        let tls = match (
            &settings.tls_cert_file,
            &settings.tls_key_file,
            &settings.tls_ca_cert_file,
        ) {
            (None, None, None) => None,
            (Some(cert), Some(key), Some(ca)) => Some(Arc::new(Tls::load(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            })?)),
            _ => bail!(
                "TLS needs all three of --tls-cert-file, --tls-key-file and --tls-ca-cert-file"
            ),
        };
        let password = settings
            .requirepass_file
            .as_deref()
            .map(|path| Secret::read(path, "client password"))
            .transpose()?;
        let token_text = settings
            .admin_token_file
            .as_deref()
            .map(|path| crate::auth::read_secret_text(path, "admin token"))
            .transpose()?;
        let token = token_text.as_deref().map(|t| Secret::new(t.as_bytes()));
        let relay = crate::httpc::Access {
            tls: settings
                .tls_ca_cert_file
                .as_deref()
                .filter(|_| tls.is_some())
                .map(crate::tls::client_config)
                .transpose()?,
            token: token_text,
        };
        let http = HttpAccess {
            tls: tls.clone(),
            token: token.clone(),
            auth: settings.http_auth.unwrap_or_default(),
            client_password: password.is_some(),
            relay,
        };
        Ok(Security {
            tls,
            password,
            token,
            http,
        })
    }

    /// Protected mode: a node that listens beyond loopback needs TLS, the client password and
    /// the admin token, unless the operator says `--insecure` on purpose.
    fn check_exposure(&self, listen: Listen, insecure: bool) -> anyhow::Result<()> {
        let exposed: Vec<String> = [listen.client, listen.peer, listen.http]
            .iter()
            .filter(|addr| !addr.ip().is_loopback())
            .map(ToString::to_string)
            .collect();
        let mut missing = Vec::new();
        if self.tls.is_none() {
            missing.push("--tls-cert-file/--tls-key-file/--tls-ca-cert-file");
        }
        if self.password.is_none() {
            missing.push("--requirepass-file");
        }
        if self.token.is_none() {
            missing.push("--admin-token-file");
        }
        if exposed.is_empty() || missing.is_empty() || insecure {
            return Ok(());
        }
        bail!(
            "protected mode: refusing to listen on {} without {}; pass them (`skiff certs` makes the certificates), listen on 127.0.0.1 only, or pass --insecure to run open on purpose",
            exposed.join(", "),
            missing.join(", ")
        )
    }
}

/// Runs a node until it is stopped (Ctrl-C or SIGTERM) or its disk fails.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args)?;
    let data_dir = settings
        .data_dir
        .clone()
        .context("--data-dir is required")?;
    let Start {
        identity,
        has_run,
        joining,
    } = identity(&settings, &data_dir)?;
    let listen = Listen::of(&settings, &identity)?;
    let security = Security::of(&settings)?;
    security.check_exposure(listen, settings.insecure)?;
    let config = node_config(&settings, &identity, has_run)?;
    let client_options = client_options(&settings, &config)?;
    crate::open_files::raise_for(settings.max_clients);
    let driver_options = driver_options(&settings, &identity)?;
    let notify_flags = match &settings.notify_keyspace_events {
        None => crate::pubsub::NotifyFlags::default(),
        Some(text) => crate::pubsub::NotifyFlags::parse(text.as_bytes()).with_context(|| {
            format!(
                "--notify-keyspace-events {text:?}: {}",
                crate::pubsub::INVALID_FLAGS
            )
        })?,
    };
    let metrics = Arc::new(Metrics::new());
    // Held until the node stops: a second process on this directory refuses to start.
    let _lock = crate::dir_lock::lock(&data_dir)?;
    let node = open_node(identity.id, &data_dir, config, metrics.clone())?;
    if !has_run {
        // Only now that the new log is durable: a crash before this leaves a directory that
        // starts afresh, never an identity whose log is missing.
        identity.store(&data_dir)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(io_threads(settings.io_threads))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shared = Arc::new(Shared {
            metrics,
            initial_cluster: identity.members()?,
            fault_injection: settings.allow_fault_injection,
            local_control: settings.local_control.clone(),
            ..Shared::default()
        });
        shared.pubsub.set_flags(notify_flags);
        shared.pubsub.start(identity.id, shared.metrics.clone())?;
        let (driver_tx, driver_rx) = crate::driver::inbox(DRIVER_QUEUE)?;
        let transport = transport_options(&settings, &identity, listen);
        let listeners = start_listeners(
            listen,
            &settings,
            &security,
            transport.clone(),
            client_options,
            &shared,
            driver_tx,
        )
        .await?;
        // With the peer port open, so that the leader's connection is there when it is done.
        let node = replay(identity.id, node)?;
        let connect_peer = peer_connector(transport, &shared, security.tls.clone());
        let driver = Driver::new(node, driver_options, driver_rx, connect_peer, shared)?;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("skiff-driver-{}", identity.id))
            .spawn(move || {
                let _ = done_tx.send(driver.run());
            })?;
        tracing::info!(
            node = identity.id,
            client = %listen.client,
            peer = %listen.peer,
            http = %listen.http,
            config = ?settings.config,
            "serving"
        );
        match joining {
            Joining::No => {}
            Joining::WithInitialCluster => log_next_step(identity.id, None, listen),
            Joining::Through(through) => log_next_step(identity.id, Some(&through), listen),
        }
        run_until_stopped(identity.id, done_rx, listeners, security.tls).await
    })?;
    // Every acknowledged write is already durable: no shutdown work is needed.
    std::process::exit(0)
}

/// Tells the operator of a node that joined what to run next to add it.
fn log_next_step(id: u64, through: Option<&str>, listen: Listen) {
    let addr = through.unwrap_or("<a member's HTTP address>");
    let peer = listen
        .advertise_peer
        .map_or("<this node's peer address>".to_string(), |a| a.to_string());
    tracing::info!(
        node = id,
        "this node waits to be added to the cluster: run `skiff admin --addr {addr} add-learner --id {id} --peer-addr {peer}`, then `skiff admin --addr {addr} promote --id {id}` once it has caught up"
    );
}

/// Opens the node's log in `data_dir`, showing the recovery as it goes and logging what it
/// found and repaired; the committed entries are applied again next ([`replay`]).
fn open_node(
    id: u64,
    data_dir: &std::path::Path,
    config: NodeConfig,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Replay<TimedDisk, skiff_kv::StateMachine>> {
    let wal_dir = data_dir.join("wal");
    let mut recovery = RecoveryDisplay::new(id);
    let opened = Node::open_to_replay(TimedDisk::new(metrics), &wal_dir, config, &mut |progress| {
        recovery.show(progress)
    });
    recovery.finish();
    // The error's own text names every cause once; as a context, its causes would repeat.
    let (replay, report) = opened.map_err(|error| {
        anyhow::anyhow!(
            "node {id} refuses to start: its durable state in {} is unusable: {error}",
            wal_dir.display()
        )
    })?;
    let node = replay.node();
    let term = node.wal().hard_state().term.0;
    if let Some(torn) = &report.torn_tail {
        tracing::warn!(node = id, term, file = %torn.file.display(), offset = torn.offset, bytes = torn.bytes_dropped, "recovery cut a torn final write");
    }
    if let Some(file) = &report.resealed {
        tracing::info!(node = id, term, file = %file.display(), "recovery sealed the final batch again (a crash tore its seal; the batch is whole)");
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
        recycled = report.segments_recycled,
        snapshot = ?report.snapshot_file,
        created = report.created,
        incarnation = format!("{:#x}", node.incarnation()),
        last_index = skiff_raft::LogStorage::last_index(node.wal()).0,
        to_apply = replay.entries_to_apply(),
        "recovered durable state"
    );
    Ok(replay)
}

/// Applies the committed entries of the log again ([`Replay`]), read ahead on a thread of
/// their own, before the driver takes the node: an error (or a panic) refuses to start.
fn replay(
    id: u64,
    mut replay: Replay<TimedDisk, skiff_kv::StateMachine>,
) -> anyhow::Result<Node<TimedDisk>> {
    let started = std::time::Instant::now();
    let entries = replay.entries_to_apply();
    let decoded = Arc::new(skiff_node::DecodedAhead::default());
    let (read_ahead, replaced) = ThreadReadAhead::spawn(id, read_ahead::DEPTH, decoded.clone())
        .context("starting the thread that reads the log ahead")?;
    // The values the replay's writes replace are freed on the thread that decoded them.
    replay.state_machine_mut().set_replaced_sink(Some(replaced));
    let replayed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        replay.run(Box::new(read_ahead), read_ahead::DEPTH, Some(decoded))
    }));
    let node = match replayed {
        Ok(Ok(mut node)) => {
            node.state_machine_mut().set_replaced_sink(None);
            node
        }
        // A committed entry of a newer build: restarting this build does not help.
        Ok(Err(error @ skiff_node::NodeError::UndecodableEntry { .. })) => {
            return Err(anyhow::Error::new(error).context("this build cannot apply the log"))
        }
        Ok(Err(error)) => {
            return Err(anyhow::Error::new(error)
                .context(format!("node {id} could not apply its log again")))
        }
        Err(_) => anyhow::bail!("node {id} could not apply its log again: the replay panicked"),
    };
    tracing::info!(
        node = id,
        entries,
        seconds = started.elapsed().as_secs_f64(),
        "applied the committed log again"
    );
    Ok(node)
}

/// How the peer port frames, limits and introduces itself.
fn transport_options(
    settings: &Settings,
    identity: &Identity,
    listen: Listen,
) -> Arc<TransportOptions> {
    Arc::new(TransportOptions {
        id: identity.id,
        cluster_id: identity.cluster_id,
        max_frame_bytes: settings.max_frame_bytes,
        max_connections: settings.max_peer_connections,
        hello: Hello {
            from: identity.id,
            client_addr: listen.client.to_string(),
            http_addr: listen.http.to_string(),
            peer_addr: listen.advertise_peer,
        },
    })
}

/// What the driver calls to open a connection to a peer: a sender task on this runtime.
fn peer_connector(
    transport: Arc<TransportOptions>,
    shared: &Shared,
    tls: Option<Arc<Tls>>,
) -> ConnectPeer {
    let runtime = tokio::runtime::Handle::current();
    let (metrics, redials) = (shared.metrics.clone(), shared.redials.clone());
    Box::new(move |peer, addr| {
        let label = peer.0.to_string();
        let sent = transport::Sent {
            messages: metrics.peer_messages_sent.with_label_values(&[&label]),
            bytes: metrics.peer_bytes_sent.with_label_values(&[&label]),
        };
        let (link, feed) = transport::peer_lane(transport.cluster_id, PEER_QUEUE, sent);
        // Registered here, in the order the driver connects, not when the task first runs:
        // a newer task to the same peer must hold the wake-up.
        let back = redials.register(peer.0);
        runtime.spawn(transport::send_to_peer(
            peer,
            addr,
            transport.clone(),
            feed,
            tls.clone(),
            back,
        ));
        link
    })
}

/// The listener tasks of one node.
type Listeners = tokio::task::JoinSet<()>;

/// Binds the three ports, records the node's own advertised addresses, and starts serving
/// peers, clients and HTTP.
async fn start_listeners(
    listen: Listen,
    settings: &Settings,
    security: &Security,
    transport: Arc<TransportOptions>,
    client_options: ClientOptions,
    shared: &Arc<Shared>,
    driver_tx: crate::driver::ToDriver,
) -> anyhow::Result<Listeners> {
    let client_listener = TcpListener::bind(listen.client)
        .await
        .with_context(|| format!("listening for clients on {}", listen.client))?;
    let peer_listener = TcpListener::bind(listen.peer)
        .await
        .with_context(|| format!("listening for peers on {}", listen.peer))?;
    let http_listener = TcpListener::bind(listen.http)
        .await
        .with_context(|| format!("listening for HTTP on {}", listen.http))?;
    if let Ok(mut advertised) = shared.advertised.write() {
        advertised.insert(
            transport.id,
            Advertised {
                client_addr: listen.client.to_string(),
                http_addr: listen.http.to_string(),
                peer_addr: listen.advertise_peer,
                heard: None,
            },
        );
    }
    let mut listeners = Listeners::new();
    listeners.spawn(transport::serve_peers(
        peer_listener,
        transport,
        driver_tx.clone(),
        shared.clone(),
        security.tls.clone(),
    ));
    listeners.spawn(crate::client::serve_clients(
        client_listener,
        driver_tx.clone(),
        shared.clone(),
        client_options,
        ClientAccess {
            tls: security.tls.clone(),
            password: security.password.clone(),
        },
    ));
    listeners.spawn(crate::http::serve_http(
        http_listener,
        shared.clone(),
        driver_tx,
        settings.http_allowed_hosts.clone(),
        security.http.clone(),
    ));
    Ok(listeners)
}

/// Waits until the node is asked to stop (Ok) or something it needs stops (an error, so that
/// a supervisor restarts it): the driver thread (the disk failed, or it panicked) or a
/// listener task. SIGHUP re-reads the TLS files meanwhile.
async fn run_until_stopped(
    id: u64,
    mut driver_done: tokio::sync::oneshot::Receiver<Result<(), skiff_node::NodeError>>,
    mut listeners: Listeners,
    tls: Option<Arc<Tls>>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                let Some(tls) = &tls else {
                    tracing::info!(node = id, "SIGHUP: no TLS files to reload");
                    continue;
                };
                match tls.reload_off_runtime().await {
                    Ok(()) => tracing::info!(node = id, "SIGHUP: reloaded the TLS certificates"),
                    Err(error) => tracing::warn!(node = id, %error, "SIGHUP: reloading the TLS certificates failed; the old ones stay"),
                }
                continue;
            }
            _ = tokio::signal::ctrl_c() => tracing::info!(node = id, "stopping on Ctrl-C"),
            _ = terminate.recv() => tracing::info!(node = id, "stopping on SIGTERM"),
            outcome = &mut driver_done => {
                let error = match outcome {
                    // A committed entry of a newer build: restarting this build does not help.
                    Ok(Err(error @ skiff_node::NodeError::UndecodableEntry { .. })) => {
                        anyhow::Error::new(error).context("this build cannot apply the log")
                    }
                    // The disk failed: what it holds is unknown until recovery reads it again.
                    Ok(Err(error)) => anyhow::Error::new(error).context("the durable log failed"),
                    Ok(Ok(())) => anyhow::anyhow!("the driver thread stopped: its inputs closed"),
                    Err(_) => anyhow::anyhow!("the driver thread stopped unexpectedly (it panicked)"),
                };
                tracing::error!(node = id, error = format!("{error:#}"), "stopping");
                return Err(error);
            }
            // The listeners loop for ever; the first one to end (a panic included) ends the node.
            ended = listeners.join_next() => {
                let error = anyhow::anyhow!("a listener task ended unexpectedly: {ended:?}");
                tracing::error!(node = id, %error, "stopping");
                return Err(error);
            }
        }
        return Ok(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{self, SERVER_ELECTION_TIMEOUT_TICKS, SERVER_HEARTBEAT_INTERVAL_TICKS};

    fn identity() -> Identity {
        let members = parse_initial_cluster("1=127.0.0.1:7101,2=127.0.0.1:7102").unwrap();
        Identity {
            id: 1,
            cluster_id: cluster_id_of(&members),
            initial_cluster: members
                .iter()
                .map(|(id, addr)| (id.to_string(), *addr))
                .collect(),
            members_at_join: BTreeMap::new(),
        }
    }

    #[test]
    fn io_threads_asked_for_are_taken_and_by_default_leave_the_driver_a_core() {
        assert_eq!(io_threads(3), 3);
        assert_eq!(io_threads(64), 64);
        let cores = std::thread::available_parallelism().unwrap().get();
        let default = io_threads(0);
        assert!((1..=MAX_DEFAULT_IO_THREADS).contains(&default), "{default}");
        assert_eq!(
            default,
            cores.saturating_sub(1).clamp(1, MAX_DEFAULT_IO_THREADS)
        );
    }

    #[test]
    fn a_flag_a_file_key_and_a_default_each_reach_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skiff.toml");
        std::fs::write(
            &path,
            "heartbeat_interval_ticks = 4\nsnapshot_every_entries = 77\nmax_clients = 9\n\
             snapshot_expansion_factor = 9\n",
        )
        .unwrap();
        let path = path.display().to_string();
        let flags = settings::tests::flags(&[
            "--config",
            &path,
            "--election-timeout-ticks",
            "40",
            "--tick-ms",
            "20",
            "--max-frame-bytes",
            "3000000",
        ]);
        let settings = Settings::resolve(flags).unwrap();
        let identity = identity();
        let config = node_config(&settings, &identity, false).unwrap();
        assert_eq!(config.snapshot_every_entries, 77);
        assert_eq!(config.snapshot_expansion_factor, 9);
        // From a flag.
        assert_eq!(config.raft.election_timeout_ticks, 40);
        // From the file.
        assert_eq!(config.raft.heartbeat_interval_ticks, 4);
        // Defaults: the server's timing, not the core's.
        assert!(config.raft.pre_vote && config.raft.check_quorum);
        assert_eq!(
            config.raft.snapshot_trailing_entries,
            skiff_raft::DEFAULT_SNAPSHOT_TRAILING_ENTRIES
        );
        let keep_none =
            Settings::resolve(settings::tests::flags(&["--snapshot-keep-entries", "0"])).unwrap();
        let keeping_none = node_config(&keep_none, &identity, false).unwrap();
        assert_eq!(keeping_none.raft.snapshot_trailing_entries, 0);
        let too_many = settings::tests::flags(&["--snapshot-keep-entries", "100000001"]);
        let refused = Settings::resolve(too_many).unwrap_err().to_string();
        assert!(refused.contains("--snapshot-keep-entries"), "{refused}");
        let listen = Listen {
            client: "127.0.0.1:1".parse().unwrap(),
            peer: "127.0.0.1:2".parse().unwrap(),
            http: "127.0.0.1:3".parse().unwrap(),
            advertise_peer: None,
        };
        let driver = driver_options(&settings, &identity).unwrap();
        assert_eq!(driver.tick, Duration::from_millis(20));
        assert_eq!(driver.request_timeout, Duration::from_millis(5_000));
        let transport = transport_options(&settings, &identity, listen);
        assert_eq!(transport.max_frame_bytes, 3_000_000);
        assert_eq!(
            transport.max_connections,
            transport::DEFAULT_MAX_PEER_CONNECTIONS
        );
        let clients = client_options(&settings, &config).unwrap();
        assert_eq!(clients.max_clients, 9);
        assert_eq!(clients.idle_timeout, None);

        let defaults = Settings::resolve(settings::tests::flags(&[])).unwrap();
        let config = node_config(&defaults, &identity, false).unwrap();
        assert_eq!(
            config.raft.election_timeout_ticks,
            SERVER_ELECTION_TIMEOUT_TICKS
        );
        assert_eq!(
            config.raft.heartbeat_interval_ticks,
            SERVER_HEARTBEAT_INTERVAL_TICKS
        );
        // The server's timing is its own choice, not the core's default.
        let core = Config::new(NodeId(1), [NodeId(1)]);
        assert_ne!(core.election_timeout_ticks, SERVER_ELECTION_TIMEOUT_TICKS);
        config.raft.validate().unwrap();
    }

    #[test]
    fn an_out_of_range_value_from_a_flag_or_the_file_never_reaches_the_node() {
        assert!(
            Settings::resolve(settings::tests::flags(&["--heartbeat-interval-ticks", "0"]))
                .is_err()
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skiff.toml");
        std::fs::write(&path, "max_clients = 0\n").unwrap();
        let path = path.display().to_string();
        let error = Settings::resolve(settings::tests::flags(&["--config", &path])).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("--max-clients 0 is out of bounds: it must be between 1 and 1000000"),
            "{error}"
        );
        // A bulk larger than a whole request is refused where the two meet.
        let settings = Settings::resolve(settings::tests::flags(&[
            "--max-bulk-bytes",
            "2048",
            "--max-request-bytes",
            "1024",
        ]))
        .unwrap();
        let config = node_config(&settings, &identity(), false).unwrap();
        assert!(client_options(&settings, &config).is_err());
    }
}
