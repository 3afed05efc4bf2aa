//! `skiff local`: a whole cluster on this machine in one command, for trying Skiff out.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use tokio::process::{Child, Command};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;

use crate::httpc;
use crate::shared::{ClusterEvent, NodeStatus};

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
    /// HTTP port of node 1 (the live view is at http://127.0.0.1:PORT/).
    #[arg(long, default_value_t = 7201)]
    pub http_port: u16,
    /// Port of the control API the live view uses to kill and restart nodes
    /// [default: HTTP port of node 1 minus one].
    #[arg(long)]
    pub control_port: Option<u16>,
    /// Secure the nodes: generate a CA and node certificates into DATA/certs, a client
    /// password into DATA/requirepass and an admin token into DATA/admin-token (random, mode
    /// 0600), start the nodes with TLS on every port, the password and the token, and print
    /// the commands that connect.
    #[arg(long)]
    pub tls: bool,
    /// Milliseconds per Raft tick on every node (`skiff serve --tick-ms`): a slower tick
    /// slows every timeout down with it, to follow single messages in the live view (which
    /// can also change it while the cluster runs).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub tick_ms: Option<u64>,
    /// Extra flags passed to every `skiff serve` (e.g. `--snapshot-every-entries 100`).
    #[arg(long, allow_hyphen_values = true, num_args = 1..)]
    pub serve_args: Vec<String>,
}

struct LocalNode {
    id: u16,
    client: String,
    http: String,
    /// The command that starts it (again).
    command: std::sync::Arc<dyn Fn() -> std::io::Result<Child> + Send + Sync>,
    child: Option<Child>,
}

type Nodes = std::sync::Arc<tokio::sync::Mutex<Vec<LocalNode>>>;

fn node_dir(data_dir: &Path, id: u16) -> PathBuf {
    data_dir.join(format!("node{id}"))
}

/// Starts the nodes, reports the cluster as it changes, and stops them on Ctrl-C.
pub fn local(args: LocalArgs) -> anyhow::Result<()> {
    crate::cli::runtime()?.block_on(run(args))
}

async fn run(args: LocalArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let control_port = args.control_port.unwrap_or(args.http_port - 1);
    let secrets = if args.tls {
        Some(LocalSecrets::create(&args)?)
    } else {
        None
    };
    let nodes = start_nodes(
        &args,
        &format!("http://127.0.0.1:{control_port}"),
        secrets.as_ref(),
    )?;
    print_banner(&args, &nodes, secrets.as_ref());
    let nodes: Nodes = std::sync::Arc::new(tokio::sync::Mutex::new(nodes));
    start_control(control_port, &nodes, secrets.is_some()).await?;
    let access = match &secrets {
        None => httpc::Access::default(),
        Some(secrets) => httpc::Access {
            tls: Some(crate::tls::client_config(&secrets.ca)?),
            token: None,
        },
    };
    for node in nodes.lock().await.iter() {
        tokio::spawn(follow_events(
            node.id,
            node.http.clone(),
            access.tls.clone(),
        ));
    }
    announce_leaders(&nodes, &access).await?;
    println!("Stopping…");
    stop_all(&nodes).await;
    Ok(())
}

/// What `skiff local --tls` keeps in its data directory: certificates, password, token.
struct LocalSecrets {
    certs: PathBuf,
    ca: PathBuf,
    requirepass: PathBuf,
    admin_token: PathBuf,
}

impl LocalSecrets {
    /// Creates what is missing (a second run reuses the files).
    fn create(args: &LocalArgs) -> anyhow::Result<LocalSecrets> {
        let certs = args.data_dir.join("certs");
        if !certs.join("ca.crt").exists() {
            crate::certs::generate(&certs, u64::from(args.nodes), &[], None)?;
        }
        let secrets = LocalSecrets {
            ca: certs.join("ca.crt"),
            certs,
            requirepass: args.data_dir.join("requirepass"),
            admin_token: args.data_dir.join("admin-token"),
        };
        for path in [&secrets.requirepass, &secrets.admin_token] {
            if !path.exists() {
                let secret: String = (0..32)
                    .map(|_| format!("{:x}", rand::random::<u8>() & 0xf))
                    .collect();
                let (dir, name) = (&args.data_dir, path.file_name().unwrap_or_default());
                crate::certs::write(dir, &name.to_string_lossy(), &format!("{secret}\n"), true)?;
            }
        }
        Ok(secrets)
    }

    /// The `skiff serve` flags of node `id`.
    fn serve_flags(&self, id: u16) -> Vec<String> {
        let file = |path: PathBuf| path.display().to_string();
        vec![
            "--tls-cert-file".into(),
            file(self.certs.join(format!("node-{id}.crt"))),
            "--tls-key-file".into(),
            file(self.certs.join(format!("node-{id}.key"))),
            "--tls-ca-cert-file".into(),
            file(self.ca.clone()),
            "--requirepass-file".into(),
            file(self.requirepass.clone()),
            "--admin-token-file".into(),
            file(self.admin_token.clone()),
        ]
    }
}

/// The flags that start node `id` (again: a node that ran before needs only its data
/// directory).
fn serve_flags(
    args: &LocalArgs,
    id: u16,
    control_url: &str,
    initial_cluster: &str,
    secrets: Option<&LocalSecrets>,
) -> Vec<String> {
    let dir = node_dir(&args.data_dir, id);
    let mut flags: Vec<String> = vec![
        "serve".into(),
        "--data-dir".into(),
        dir.display().to_string(),
        "--listen-client".into(),
        format!("127.0.0.1:{}", args.client_port + id - 1),
        "--listen-peer".into(),
        format!("127.0.0.1:{}", args.peer_port + id - 1),
        "--listen-http".into(),
        format!("127.0.0.1:{}", args.http_port + id - 1),
        "--local-control".into(),
        control_url.to_string(),
        "--allow-fault-injection".into(),
    ];
    if !dir.join("identity.toml").exists() {
        flags.extend([
            "--id".into(),
            id.to_string(),
            "--initial-cluster".into(),
            initial_cluster.to_string(),
        ]);
    }
    flags.extend(secrets.iter().flat_map(|s| s.serve_flags(id)));
    if let Some(ms) = args.tick_ms {
        flags.extend(["--tick-ms".into(), ms.to_string()]);
    }
    flags.extend(args.serve_args.iter().cloned());
    flags
}

/// Starts every node, each logging to `node.log` in its directory.
fn start_nodes(
    args: &LocalArgs,
    control_url: &str,
    secrets: Option<&LocalSecrets>,
) -> anyhow::Result<Vec<LocalNode>> {
    let exe = std::env::current_exe().context("finding the skiff executable")?;
    let initial_cluster: Vec<String> = (1..=args.nodes)
        .map(|id| format!("{id}=127.0.0.1:{}", args.peer_port + id - 1))
        .collect();
    let initial_cluster = initial_cluster.join(",");
    let mut nodes = Vec::new();
    for id in 1..=args.nodes {
        let dir = node_dir(&args.data_dir, id);
        std::fs::create_dir_all(&dir)?;
        let flags = serve_flags(args, id, control_url, &initial_cluster, secrets);
        let exe = exe.clone();
        let log_path = dir.join("node.log");
        let command = std::sync::Arc::new(move || -> std::io::Result<Child> {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)?;
            Command::new(&exe)
                .args(&flags)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
        });
        let child = command().with_context(|| format!("starting node {id}"))?;
        nodes.push(LocalNode {
            id,
            client: format!("127.0.0.1:{}", args.client_port + id - 1),
            http: format!("127.0.0.1:{}", args.http_port + id - 1),
            command,
            child: Some(child),
        });
    }
    Ok(nodes)
}

/// Tells the user how to reach each node and the live view: with TLS, the exact `redis-cli`
/// and `curl` commands, reading the secrets from their files rather than printing them.
fn print_banner(args: &LocalArgs, nodes: &[LocalNode], secrets: Option<&LocalSecrets>) {
    println!(
        "Skiff: {} nodes, data in {}",
        args.nodes,
        args.data_dir.display()
    );
    let scheme = if secrets.is_some() { "https" } else { "http" };
    for node in nodes {
        let port = node.client.rsplit(':').next().unwrap_or_default();
        let redis_cli = match secrets {
            None => format!("redis-cli -p {port}"),
            Some(s) => format!(
                "redis-cli --tls --cacert {} -p {port} -a \"$(cat {})\" --no-auth-warning",
                s.ca.display(),
                s.requirepass.display()
            ),
        };
        println!(
            "  node {}: {redis_cli}   {scheme}://{}/status   log {}",
            node.id,
            node.http,
            node_dir(&args.data_dir, node.id).join("node.log").display()
        );
    }
    if let (Some(s), Some(first)) = (secrets, nodes.first()) {
        println!(
            "  status: curl --cacert {} https://{}/status",
            s.ca.display(),
            first.http
        );
        println!(
            "  admin:  curl --cacert {} -H \"Authorization: Bearer $(cat {})\" -X POST https://{}/admin/snapshot",
            s.ca.display(),
            s.admin_token.display(),
            first.http
        );
        println!(
            "  the live view asks once for the admin token (in {}) before it changes anything",
            s.admin_token.display()
        );
    }
    if let Some(first) = nodes.first() {
        println!(
            "  live view: {scheme}://{}/   (kill, restart, cut off and heal nodes from the page)",
            first.http
        );
    }
    println!("Waiting for a leader… (Ctrl-C stops every node)");
}

/// Serves the control API on `port`. It kills processes: a browser may call it only from a
/// page one of these nodes served (as 127.0.0.1 or localhost).
async fn start_control(port: u16, nodes: &Nodes, tls: bool) -> anyhow::Result<()> {
    let scheme = if tls { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("listening for the control API on port {port}"))?;
    let origins: Vec<String> = nodes
        .lock()
        .await
        .iter()
        .filter_map(|n| n.http.rsplit_once(':').map(|(_, port)| port.to_string()))
        .flat_map(|port| {
            [
                format!("{scheme}://127.0.0.1:{port}"),
                format!("{scheme}://localhost:{port}"),
            ]
        })
        .collect();
    tokio::spawn(control::serve(listener, nodes.clone(), origins));
    Ok(())
}

/// Until Ctrl-C or SIGTERM: notes nodes that exited and prints each new leader.
async fn announce_leaders(nodes: &Nodes, access: &httpc::Access) -> anyhow::Result<()> {
    let mut announced_leader: Option<u64> = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    // Ctrl-C or SIGTERM stops every node: none is left running without its supervisor. Both
    // listeners live across the loop, so a signal that comes while the nodes are being polled
    // is kept for the next turn (a `ctrl_c()` made afresh each turn would miss it).
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = interrupt.recv() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let targets = running(nodes).await;
        let statuses = poll(access, &targets).await;
        let leader = statuses
            .iter()
            .find(|(_, s)| s.role == "leader")
            .map(|(_, s)| (s.id, s.term));
        if let Some((leader, term)) = leader {
            if announced_leader != Some(leader) {
                let client = nodes
                    .lock()
                    .await
                    .iter()
                    .find(|n| u64::from(n.id) == leader)
                    .map(|n| n.client.clone())
                    .unwrap_or_default();
                println!("leader: node {leader} in term {term} (clients: {client})");
                announced_leader = Some(leader);
            }
        }
    }
}

/// The nodes still running, by id and HTTP address; notes those that exited.
async fn running(nodes: &Nodes) -> Vec<(u16, String)> {
    let mut nodes = nodes.lock().await;
    for node in nodes.iter_mut() {
        if let Some(child) = &mut node.child {
            if let Ok(Some(exit)) = child.try_wait() {
                println!("node {} exited ({exit}); see its node.log", node.id);
                node.child = None;
            }
        }
    }
    nodes
        .iter()
        .filter(|n| n.child.is_some())
        .map(|n| (n.id, n.http.clone()))
        .collect()
}

/// SIGTERM to every node, then `kill -9` to any still running after 3 s.
async fn stop_all(nodes: &Nodes) {
    let mut nodes = nodes.lock().await;
    for node in nodes.iter_mut() {
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
    for node in nodes.iter_mut() {
        if let Some(child) = &mut node.child {
            if tokio::time::timeout(Duration::from_secs(3), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

async fn poll(access: &httpc::Access, nodes: &[(u16, String)]) -> Vec<(u16, NodeStatus)> {
    let mut statuses = Vec::new();
    for (id, http) in nodes {
        if let Ok(status) = httpc::status(access, http).await {
            statuses.push((*id, status));
        }
    }
    statuses
}

/// Prints node `id`'s Raft events as they happen (the live view's timeline), following its
/// `/events` stream (over TLS with `tls`) and reconnecting when the node restarts.
async fn follow_events(id: u16, http: String, tls: Option<Arc<ClientConfig>>) {
    loop {
        if let Ok(stream) = tokio::net::TcpStream::connect(&http).await {
            match &tls {
                None => print_events(stream, id, &http).await,
                Some(config) => {
                    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
                    let connector = tokio_rustls::TlsConnector::from(config.clone());
                    if let Ok(stream) = connector.connect(name, stream).await {
                        print_events(stream, id, &http).await;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Asks for `/events` on `stream` and prints each Raft event until the stream ends.
async fn print_events(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    id: u16,
    http: &str,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let request =
        format!("GET /events HTTP/1.1\r\nHost: {http}\r\nAccept: text/event-stream\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() || stream.flush().await.is_err() {
        return;
    }
    let mut lines = BufReader::new(stream).lines();
    let mut event = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            if event != "raft" {
                continue;
            }
            if let Ok(e) = serde_json::from_str::<ClusterEvent>(data) {
                let ms = e.at_ms % 86_400_000;
                println!(
                    "{:02}:{:02}:{:02}.{:03} node {id} · term {} · {}",
                    ms / 3_600_000,
                    ms / 60_000 % 60,
                    ms / 1000 % 60,
                    ms % 1000,
                    e.term,
                    e.text
                );
            }
        }
    }
}

/// The control API the live view calls to kill and restart nodes.
mod control {
    use std::sync::Arc;

    use axum::extract::{Query, Request, State};
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::middleware::Next;
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::Router;
    use serde::Deserialize;

    use super::Nodes;

    #[derive(Deserialize)]
    struct NodeQuery {
        id: u16,
    }

    /// Serves the API; browsers may call it only from `origins` (the nodes' own pages).
    pub async fn serve(listener: tokio::net::TcpListener, nodes: Nodes, origins: Vec<String>) {
        let app = Router::new()
            .route("/control/kill", post(kill))
            .route("/control/restart", post(restart))
            .with_state(nodes)
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(origins),
                only_from_the_nodes_pages,
            ));
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("the control API stopped: {error}");
        }
    }

    /// Lets through requests without an `Origin` (curl) and those from a page of one of the
    /// nodes, whose origin it echoes so that the page can read the answer; refuses (403) any
    /// other web page.
    async fn only_from_the_nodes_pages(
        State(origins): State<Arc<Vec<String>>>,
        request: Request,
        next: Next,
    ) -> Response {
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .map(|v| v.to_str().unwrap_or_default().to_ascii_lowercase());
        let cross_site = request
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site");
        match origin {
            None if !cross_site => next.run(request).await,
            Some(origin) if origins.contains(&origin) => {
                let mut response = next.run(request).await;
                if let Ok(value) = HeaderValue::from_str(&origin) {
                    let headers = response.headers_mut();
                    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
                    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
                }
                response
            }
            _ => (
                StatusCode::FORBIDDEN,
                "refused: the control API answers only the nodes' own pages\n",
            )
                .into_response(),
        }
    }

    /// `kill -9`: the node loses nothing it acknowledged.
    async fn kill(
        State(nodes): State<Nodes>,
        Query(query): Query<NodeQuery>,
    ) -> (StatusCode, String) {
        let mut nodes = nodes.lock().await;
        let Some(node) = nodes.iter_mut().find(|n| n.id == query.id) else {
            return (StatusCode::NOT_FOUND, format!("no node {}\n", query.id));
        };
        let Some(mut child) = node.child.take() else {
            return (
                StatusCode::CONFLICT,
                format!("node {} is not running\n", query.id),
            );
        };
        let _ = child.kill().await;
        println!("node {} killed (kill -9) from the live view", query.id);
        (StatusCode::OK, format!("node {} killed\n", query.id))
    }

    async fn restart(
        State(nodes): State<Nodes>,
        Query(query): Query<NodeQuery>,
    ) -> (StatusCode, String) {
        let mut nodes = nodes.lock().await;
        let Some(node) = nodes.iter_mut().find(|n| n.id == query.id) else {
            return (StatusCode::NOT_FOUND, format!("no node {}\n", query.id));
        };
        if node.child.is_some() {
            return (
                StatusCode::CONFLICT,
                format!("node {} is running\n", query.id),
            );
        }
        match (node.command)() {
            Ok(child) => {
                node.child = Some(child);
                println!("node {} restarted from the live view", query.id);
                (StatusCode::OK, format!("node {} restarted\n", query.id))
            }
            Err(error) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("node {} did not start: {error}\n", query.id),
            ),
        }
    }
}
