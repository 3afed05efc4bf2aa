//! A harness for process-level tests: real `skiff serve` processes on loopback, each peer
//! address behind a fault-injecting proxy, and helpers to kill, pause, restart and partition
//! nodes and to talk to them with the `redis` crate.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_rustls::rustls;

/// Process tests share two cores: run them one at a time, so that timing assumptions hold.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the lock that runs process tests one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every port [`free_port`] and [`free_base_port`] handed out in this process.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port below Linux's ephemeral range (32768 and up), so that no outgoing connection takes
/// it between the check and a node binding it (a port the kernel picked for `bind(0)` is in
/// that range, and a busy test's client connections took one: "Address already in use").
fn low_port() -> u16 {
    10_000 + (rand::random::<u16>() % 22_000)
}

/// A free loopback port (bound, then released), never one this process handed out before:
/// a port just released may be offered again at once, and two nodes must not get the same.
pub fn free_port() -> u16 {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..10_000 {
        let port = low_port();
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free port");
}

/// Directed links the proxy refuses: `(from, to)`.
#[derive(Default)]
struct Cuts {
    blocked: BTreeSet<(u64, u64)>,
    /// Live proxied connections: (from, to, the two sockets).
    live: Vec<(u64, u64, TcpStream, TcpStream)>,
}

/// A TCP proxy in front of each node's peer port. It learns who connects from the Hello frame
/// (the sender's id is at bytes 14..22) and drops connections across a cut.
pub struct Proxy {
    cuts: Arc<Mutex<Cuts>>,
}

impl Proxy {
    fn start(listen: TcpListener, to_id: u64, target: SocketAddr, cuts: Arc<Mutex<Cuts>>) {
        std::thread::spawn(move || {
            for incoming in listen.incoming() {
                let Ok(inbound) = incoming else { continue };
                let cuts = cuts.clone();
                std::thread::spawn(move || {
                    let _ = proxy_connection(inbound, to_id, target, cuts);
                });
            }
        });
    }
}

fn proxy_connection(
    mut inbound: TcpStream,
    to_id: u64,
    target: SocketAddr,
    cuts: Arc<Mutex<Cuts>>,
) -> std::io::Result<()> {
    let mut hello = [0u8; 22];
    inbound.set_read_timeout(Some(Duration::from_secs(5)))?;
    inbound.read_exact(&mut hello)?;
    inbound.set_read_timeout(None)?;
    let from_id = u64::from_le_bytes(hello[14..22].try_into().expect("8 bytes"));
    let mut outbound = TcpStream::connect(target)?;
    {
        let mut cuts = cuts.lock().expect("cuts");
        if cuts.blocked.contains(&(from_id, to_id)) {
            return Ok(());
        }
        cuts.live
            .push((from_id, to_id, inbound.try_clone()?, outbound.try_clone()?));
    }
    outbound.write_all(&hello)?;
    let mut a = inbound.try_clone()?;
    let mut b = outbound.try_clone()?;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut b, &mut a);
        let _ = a.shutdown(std::net::Shutdown::Both);
    });
    let _ = std::io::copy(&mut inbound, &mut outbound);
    let _ = outbound.shutdown(std::net::Shutdown::Both);
    Ok(())
}

/// One node's addresses and process.
pub struct TestNode {
    pub id: u64,
    pub client: SocketAddr,
    pub peer: SocketAddr,
    pub peer_proxy: SocketAddr,
    pub http: SocketAddr,
    pub dir: PathBuf,
    pub child: Option<Child>,
}

impl TestNode {
    /// Fresh addresses for node `id`, its peer port behind a proxy that obeys `cuts`.
    fn new(id: u64, root: &Path, cuts: &Arc<Mutex<Cuts>>) -> TestNode {
        let proxy_listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
        let peer_proxy = proxy_listener.local_addr().expect("addr");
        let peer: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        Proxy::start(proxy_listener, id, peer, cuts.clone());
        TestNode {
            id,
            client: format!("127.0.0.1:{}", free_port()).parse().expect("addr"),
            peer,
            peer_proxy,
            http: format!("127.0.0.1:{}", free_port()).parse().expect("addr"),
            dir: root.join(format!("node{id}")),
            child: None,
        }
    }
}

/// What a secure cluster's clients need: the files `skiff certs` wrote, the password and the
/// admin token, and a TLS client configuration that trusts the cluster's CA.
pub struct Secure {
    pub certs: PathBuf,
    pub password: String,
    pub password_file: PathBuf,
    pub token: String,
    pub token_file: PathBuf,
    pub client_config: Arc<rustls::ClientConfig>,
}

/// The password and token a secure test cluster uses.
pub const TEST_PASSWORD: &str = "test-password-1";
pub const TEST_TOKEN: &str = "test-admin-token-1";

impl Secure {
    /// Certificates for `n` nodes and the secret files, under `root`.
    pub fn create(root: &Path, n: u64) -> Secure {
        let certs = root.join("certs");
        let output = Command::new(skiff_bin())
            .args(["certs", "--nodes", &n.to_string(), "--hosts", "127.0.0.1"])
            .arg("--out")
            .arg(&certs)
            .output()
            .expect("skiff certs runs");
        assert!(output.status.success(), "skiff certs: {output:?}");
        let password_file = root.join("requirepass");
        std::fs::write(&password_file, format!("{TEST_PASSWORD}\n")).expect("password file");
        let token_file = root.join("admin-token");
        std::fs::write(&token_file, format!("{TEST_TOKEN}\n")).expect("token file");
        Secure {
            client_config: client_config(&certs.join("ca.crt")),
            certs,
            password: TEST_PASSWORD.into(),
            password_file,
            token: TEST_TOKEN.into(),
            token_file,
        }
    }

    /// The `skiff serve` flags of node `id`.
    pub fn serve_args(&self, id: u64) -> Vec<String> {
        let path = |name: String| self.certs.join(name).display().to_string();
        vec![
            "--tls-cert-file".into(),
            path(format!("node-{id}.crt")),
            "--tls-key-file".into(),
            path(format!("node-{id}.key")),
            "--tls-ca-cert-file".into(),
            path("ca.crt".into()),
            "--requirepass-file".into(),
            self.password_file.display().to_string(),
            "--admin-token-file".into(),
            self.token_file.display().to_string(),
        ]
    }
}

/// A rustls client configuration trusting the CA in `ca` (and, optionally, presenting a
/// certificate).
pub fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    client_config_with(ca, None)
}

/// As [`client_config`], presenting the certificate and key in `identity`.
pub fn client_config_with(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("ca file") {
        roots.add(cert.expect("ca cert")).expect("ca");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    Arc::new(match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .expect("cert file")
                    .map(|c| c.expect("cert"))
                    .collect(),
                PrivateKeyDer::from_pem_file(key).expect("key"),
            )
            .expect("client auth"),
    })
}

/// A TLS connection to `addr` (whose certificate must name 127.0.0.1).
pub fn tls_connect(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let connection =
        rustls::ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
    Ok(rustls::StreamOwned::new(connection, stream))
}

/// A blocking HTTPS request; returns the status code and body.
pub fn https_request(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = tls_connect(addr, config)?;
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut response = Vec::new();
    // A server that closes without close_notify ends the stream with an error after the body.
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("malformed response: {response:?}")))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed status line"))?;
    Ok((code, body.to_string()))
}

/// A client connection as the hostile suite drives it: plain TCP or TLS over TCP.
pub trait Wire: Read + Write + Send {
    /// The TCP socket underneath (for timeouts).
    fn socket(&self) -> &TcpStream;

    /// Reads what the server sent without first sending what a failed write left unsent
    /// (TLS's `read` would, and fail on the socket the server stopped reading).
    fn read_received(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;
}

impl Wire for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }

    fn read_received(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read(buf)
    }
}

impl Wire for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn socket(&self) -> &TcpStream {
        &self.sock
    }

    fn read_received(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.conn.read_tls(&mut self.sock)? == 0 {
                return Ok(0);
            }
            self.conn
                .process_new_packets()
                .map_err(std::io::Error::other)?;
        }
    }
}

impl Wire for Box<dyn Wire> {
    fn socket(&self) -> &TcpStream {
        (**self).socket()
    }

    fn read_received(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (**self).read_received(buf)
    }
}

/// A cluster of real processes.
pub struct TestCluster {
    pub nodes: BTreeMap<u64, TestNode>,
    pub root: tempfile::TempDir,
    /// TLS, a client password and an admin token on every node, when set.
    pub secure: Option<Secure>,
    cuts: Arc<Mutex<Cuts>>,
    initial_cluster: String,
    extra_args: Vec<String>,
    /// Nodes added after the start, which run with `--join`.
    joined: BTreeSet<u64>,
    /// Nodes added after the start through a member, which run with `--join <its HTTP
    /// address>` and without `--initial-cluster`.
    joined_through: BTreeMap<u64, SocketAddr>,
}

pub fn skiff_bin() -> &'static str {
    env!("CARGO_BIN_EXE_skiff")
}

impl TestCluster {
    /// Starts `n` nodes and waits for a leader.
    pub fn start(n: u64) -> TestCluster {
        TestCluster::start_with(n, &[])
    }

    /// Starts `n` nodes with extra `skiff serve` flags.
    pub fn start_with(n: u64, extra_args: &[&str]) -> TestCluster {
        TestCluster::launch(n, extra_args, false)
    }

    /// Starts `n` nodes with TLS on every port, a client password and an admin token.
    pub fn start_secure(n: u64, extra_args: &[&str]) -> TestCluster {
        TestCluster::launch(n, extra_args, true)
    }

    /// Starts `n` nodes, secure or not, and waits for a leader.
    pub fn launch(n: u64, extra_args: &[&str], secure: bool) -> TestCluster {
        let root = tempfile::tempdir().expect("temp dir");
        let secure = secure.then(|| Secure::create(root.path(), n));
        let cuts = Arc::new(Mutex::new(Cuts::default()));
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            nodes.insert(id, TestNode::new(id, root.path(), &cuts));
        }
        let initial_cluster = nodes
            .values()
            .map(|n| format!("{}={}", n.id, n.peer_proxy))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = TestCluster {
            nodes,
            root,
            secure,
            cuts,
            initial_cluster,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            joined: BTreeSet::new(),
            joined_through: BTreeMap::new(),
        };
        for id in 1..=n {
            cluster.spawn(id);
        }
        cluster.wait_for_leader(Duration::from_secs(10));
        cluster
    }

    /// Starts a new node `id` that joins the running cluster (`--join`); it takes part once
    /// an operator adds it.
    pub fn start_joining(&mut self, id: u64) {
        let node = TestNode::new(id, self.root.path(), &self.cuts);
        self.nodes.insert(id, node);
        self.joined.insert(id);
        self.spawn(id);
    }

    /// Starts a new node `id` that joins the running cluster through member `via`
    /// (`--join <via's HTTP address>`, no `--initial-cluster`).
    pub fn start_joining_through(&mut self, id: u64, via: u64) {
        let node = TestNode::new(id, self.root.path(), &self.cuts);
        self.nodes.insert(id, node);
        self.joined_through.insert(id, self.nodes[&via].http);
        self.spawn(id);
    }

    /// The incarnation of node `id`'s data directory, as its incarnation file holds it.
    pub fn incarnation(&self, id: u64) -> u64 {
        let file = self.nodes[&id].dir.join("wal").join("incarnation");
        let bytes = std::fs::read(&file).expect("the incarnation file");
        skiff_wal::incarnation::decode(&bytes).expect("a whole incarnation file")
    }

    /// `skiff status --addr <node id's HTTP>`, its standard output.
    pub fn admin_status(&self, via: u64) -> String {
        let output = Command::new(skiff_bin())
            .arg("status")
            .args(["--addr", &self.nodes[&via].http.to_string()])
            .output()
            .expect("skiff status runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `skiff admin --addr <node id's HTTP> args…` and returns its output.
    pub fn admin(&self, via: u64, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(skiff_bin());
        command
            .arg("admin")
            .args(["--addr", &self.nodes[&via].http.to_string()]);
        if let Some(secure) = &self.secure {
            command
                .arg("--tls-ca-cert-file")
                .arg(secure.certs.join("ca.crt"))
                .arg("--token-file")
                .arg(&secure.token_file);
        }
        command.args(args).output().expect("skiff admin runs")
    }

    /// Starts (or restarts) node `id` from its data directory.
    pub fn spawn(&mut self, id: u64) {
        let child = self.spawn_command(id).spawn().expect("skiff starts");
        self.nodes.get_mut(&id).expect("node").child = Some(child);
    }

    /// The command that starts node `id`, with its output appended to `node.log`.
    pub fn spawn_command(&self, id: u64) -> Command {
        let node = &self.nodes[&id];
        std::fs::create_dir_all(&node.dir).expect("node dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("node.log"))
            .expect("log file");
        let mut command = Command::new(skiff_bin());
        command
            .arg("serve")
            .args(["--id", &id.to_string()])
            .arg("--data-dir")
            .arg(&node.dir)
            .args(["--listen-client", &node.client.to_string()])
            .args(["--listen-peer", &node.peer.to_string()])
            // Peers know each node by its proxy, which the tests' network cuts act on.
            .args(["--advertise-peer", &node.peer_proxy.to_string()])
            .args(["--listen-http", &node.http.to_string()])
            .args(&self.extra_args)
            .args(self.secure.iter().flat_map(|s| s.serve_args(id)))
            .args(self.joined.contains(&id).then_some("--join"));
        match self.joined_through.get(&id) {
            Some(via) => command.args(["--join", &via.to_string()]),
            None => command.args(["--initial-cluster", &self.initial_cluster]),
        };
        command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        command
    }

    /// `kill -9`.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.nodes.get_mut(&id).and_then(|n| n.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`libc::SIGSTOP`, `libc::SIGCONT`…) to node `id`.
    pub fn signal(&self, id: u64, signal: i32) {
        let pid = self.nodes[&id].child.as_ref().expect("running").id();
        send_signal(pid, signal);
    }

    /// Cuts every link between `side` and the other nodes, both ways.
    pub fn isolate(&self, side: &[u64]) {
        let mut cuts = self.cuts.lock().expect("cuts");
        for &a in side {
            for &b in self.nodes.keys().filter(|b| !side.contains(b)) {
                cuts.blocked.insert((a, b));
                cuts.blocked.insert((b, a));
            }
        }
        let blocked = cuts.blocked.clone();
        cuts.live.retain(|(from, to, a, b)| {
            if blocked.contains(&(*from, *to)) {
                let _ = a.shutdown(std::net::Shutdown::Both);
                let _ = b.shutdown(std::net::Shutdown::Both);
                false
            } else {
                true
            }
        });
    }

    /// Removes every cut.
    pub fn heal(&self) {
        self.cuts.lock().expect("cuts").blocked.clear();
    }

    /// `GET /status` of node `id`, if it answers.
    pub fn status(&self, id: u64) -> Option<Value> {
        self.http_get(id, "/status")
            .ok()
            .and_then(|body| serde_json::from_str(&body).ok())
    }

    /// The value of `skiff_errors_total{kind}` on node `id`.
    pub fn errors_counted(&self, id: u64, kind: &str) -> u64 {
        let metrics = self.http_get(id, "/metrics").expect("metrics");
        let prefix = format!("skiff_errors_total{{kind=\"{kind}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("skiff_errors_total{{kind={kind:?}}} is not exported"))
    }

    /// Runs `skiff admin ARGS` against node `via`; whether it succeeded (its error is printed).
    pub fn admin_ok(&self, via: u64, args: &[&str]) -> bool {
        let output = self.admin(via, args);
        if !output.status.success() {
            eprintln!(
                "skiff admin {args:?}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        output.status.success()
    }

    /// What node `id` has logged so far.
    pub fn node_log(&self, id: u64) -> String {
        std::fs::read_to_string(self.nodes[&id].dir.join("node.log")).unwrap_or_default()
    }

    /// `GET path` from node `id`'s HTTP port (HTTPS on a secure cluster).
    pub fn http_get(&self, id: u64, path: &str) -> std::io::Result<String> {
        match &self.secure {
            None => http_get(self.nodes[&id].http, path),
            Some(secure) => https_request(
                self.nodes[&id].http,
                &secure.client_config,
                "GET",
                path,
                None,
            )
            .map(|(_, body)| body),
        }
    }

    /// Every node but `leader`, in id order.
    pub fn followers(&self, leader: u64) -> Vec<u64> {
        self.nodes
            .keys()
            .copied()
            .filter(|&id| id != leader)
            .collect()
    }

    /// The leader that a majority of running nodes agree on, waiting up to `timeout`.
    pub fn wait_for_leader(&self, timeout: Duration) -> u64 {
        self.wait_for_leader_among(&self.nodes.keys().copied().collect::<Vec<_>>(), timeout)
    }

    /// A leader among `ids` that all of them that answer know, waiting up to `timeout`.
    pub fn wait_for_leader_among(&self, ids: &[u64], timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let statuses: Vec<Value> = ids.iter().filter_map(|&id| self.status(id)).collect();
            if let Some(leader) = statuses.iter().find(|s| s["role"] == "leader") {
                let id = leader["id"].as_u64().expect("id");
                let term = leader["term"].as_u64();
                let agreeing = statuses
                    .iter()
                    .filter(|s| s["leader"].as_u64() == Some(id) && s["term"].as_u64() == term)
                    .count();
                if agreeing * 2 > self.nodes.len() {
                    return id;
                }
            }
            if Instant::now() > deadline {
                self.dump_logs();
                panic!("no leader among {ids:?} within {timeout:?}: {statuses:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A raw connection to a client port: plain, or on a secure cluster TLS with the
    /// password already given.
    /// A node that was just started or restarted may not listen yet: connecting is retried
    /// for ten seconds, as in [`connect_redis`].
    pub fn connect_client(&self, addr: SocketAddr) -> Box<dyn Wire> {
        let Some(secure) = &self.secure else {
            return Box::new(eventually(Duration::from_secs(10), "a connection", || {
                TcpStream::connect(addr).ok()
            }));
        };
        let mut stream = eventually(Duration::from_secs(10), "a TLS connection", || {
            tls_connect(addr, &secure.client_config).ok()
        });
        let password = secure.password.as_bytes();
        let mut auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n", password.len()).into_bytes();
        auth.extend_from_slice(password);
        auth.extend_from_slice(b"\r\n");
        stream.write_all(&auth).expect("send AUTH");
        let mut ok = [0u8; 5];
        stream.read_exact(&mut ok).expect("AUTH answered");
        assert_eq!(&ok, b"+OK\r\n");
        stream.sock.set_read_timeout(None).expect("timeout");
        Box::new(stream)
    }

    /// A Redis connection to node `id`, with a read timeout.
    pub fn redis(&self, id: u64) -> redis::Connection {
        let client = match &self.secure {
            None => redis::Client::open(format!("redis://{}/", self.nodes[&id].client)),
            Some(secure) => redis::Client::build_with_tls(
                format!("rediss://:{}@{}/", secure.password, self.nodes[&id].client),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(secure.certs.join("ca.crt")).expect("ca file")),
                },
            ),
        }
        .expect("client");
        connect_redis(&client)
    }

    /// Prints the end of each node's `node.log`, so that a failed test shows what the nodes
    /// said.
    fn print_log_tails(&self) {
        for (id, node) in &self.nodes {
            let log = std::fs::read_to_string(node.dir.join("node.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!("--- node {id}: the last {} lines of node.log", tail.len());
            for line in tail {
                eprintln!("{line}");
            }
        }
    }

    /// The kind (`voter`, `learner`) node `via` reports for member `id`, if it answers and
    /// knows it.
    pub fn member_kind(&self, via: u64, id: u64) -> Option<String> {
        let status = self.status(via)?;
        status["members"]
            .as_array()?
            .iter()
            .find(|m| m["id"].as_u64() == Some(id))
            .and_then(|m| m["kind"].as_str().map(str::to_string))
    }

    /// Prints the tail of every node's log (for failures).
    pub fn dump_logs(&self) {
        for node in self.nodes.values() {
            let log = std::fs::read_to_string(node.dir.join("node.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- node {} log (last 30 lines) ---", node.id);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }

    /// The WAL directory of node `id`.
    pub fn wal_dir(&self, id: u64) -> PathBuf {
        self.nodes[&id].dir.join("wal")
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log_tails();
        }
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            if let Some(child) = self.nodes.get_mut(&id).and_then(|n| n.child.as_mut()) {
                // A stopped process must be continued to die promptly.
                let _ = Command::new("kill")
                    .args(["-CONT", &child.id().to_string()])
                    .status();
            }
            self.kill(id);
        }
    }
}

/// A frame as a peer sends it: `length | version | cluster id | kind | payload`.
pub fn peer_frame(cluster_id: u64, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ((1 + 8 + 1 + payload.len()) as u32).to_le_bytes().to_vec();
    out.push(skiff_node::wire::WIRE_VERSION);
    out.extend_from_slice(&cluster_id.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

/// A peer's Hello frame: its id and the client and HTTP addresses it advertises (and no peer
/// address).
pub fn peer_hello(cluster_id: u64, from: u64, client_addr: &str, http_addr: &str) -> Vec<u8> {
    let mut payload = from.to_le_bytes().to_vec();
    for text in [client_addr, http_addr, ""] {
        payload.extend_from_slice(&(text.len() as u16).to_le_bytes());
        payload.extend_from_slice(text.as_bytes());
    }
    peer_frame(cluster_id, 0, &payload)
}

/// Sends a signal to a process.
pub fn send_signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let result = unsafe { libc::kill(pid as i32, signal) };
    assert_eq!(result, 0, "signal {signal} to process {pid}");
}

/// A blocking `GET` over HTTP/1.1.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (_, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("malformed response"))?;
    Ok(body.to_string())
}

/// Runs `f` until it returns `Some`, or panics after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a path exists and is a non-empty file.
pub fn non_empty(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.len() > 0)
        .unwrap_or(false)
}

/// A base port such that `skiff local --client-port base` finds all its ports free.
pub fn free_base_port() -> u16 {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..100 {
        let base = low_port();
        // Clients, peers and HTTP of three nodes, and the control API just below HTTP.
        let ports: Vec<u16> = (0..3)
            .flat_map(|i| [base + i, base + 100 + i, base + 200 + i])
            .chain([base + 199])
            .collect();
        let free = ports.iter().all(|&port| {
            !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
        if free {
            handed_out.extend(ports);
            return base;
        }
    }
    panic!("no free port range");
}

pub struct Local {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Local {
    pub fn start(data_dir: &std::path::Path, base: u16) -> Local {
        Local::start_with(data_dir, base, &[])
    }

    /// `skiff local` with extra flags (`--tls`).
    pub fn start_with(data_dir: &std::path::Path, base: u16, extra: &[&str]) -> Local {
        let mut child = Command::new(skiff_bin())
            .arg("local")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--client-port", &base.to_string()])
            .args(["--peer-port", &(base + 100).to_string()])
            .args(["--http-port", &(base + 200).to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("skiff local starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("local: {line}");
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Local { child, lines }
    }

    /// The lines printed up to and including the first that starts with `prefix`.
    pub fn lines_until(&self, prefix: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(15))
                .unwrap_or_else(|_| panic!("skiff local prints {prefix:?}: {lines:?}"));
            let done = line.starts_with(prefix);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Waits for the "leader: node N" line and returns N.
    pub fn leader(&self) -> u16 {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(15))
                .expect("skiff local reports a leader");
            if let Some(rest) = line.strip_prefix("leader: node ") {
                return rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("a node id");
            }
        }
    }

    pub fn stop(mut self) {
        send_signal(self.child.id(), libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(30);
        let exited = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("skiff local did not exit within 30 s of Ctrl-C");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            exited.success(),
            "skiff local exits cleanly on Ctrl-C: {exited}"
        );
    }
}

/// A Redis connection through `client`, with a read timeout; a node that was just started may
/// not listen yet, so connecting is retried for ten seconds.
pub fn connect_redis(client: &redis::Client) -> redis::Connection {
    let connection = eventually(Duration::from_secs(10), "a client connection", || {
        client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()
    });
    connection
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    connection
}

/// Sends every request of `script` to `addr` in one write, then reads the replies in order and
/// checks that each starts with its expected text (`+OK`, `-ERR …`, `:5`, `$value`, `*2`).
pub fn run_pipelined_script(addr: SocketAddr, script: &[(&[&str], &str)]) {
    let mut batch = Vec::new();
    for (words, _) in script {
        batch.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
        for word in *words {
            batch.extend_from_slice(format!("${}\r\n{word}\r\n", word.len()).as_bytes());
        }
    }
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(&batch).expect("one write");
    let mut reader = BufReader::new(stream);
    for (words, expected) in script {
        let reply = read_reply_text(&mut reader);
        let shown: Vec<&str> = words.iter().map(|w| &w[..w.len().min(20)]).collect();
        assert!(
            reply.starts_with(expected),
            "{shown:?}: expected {expected:?}, got {reply:?}"
        );
    }
}

/// One RESP2 reply read as text: `+…`, `-…`, `:…`, `$value` (`$-1` for nil), or for an array
/// `*n` (its items read and dropped).
pub fn read_reply_text(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("a reply");
    let line = line.trim_end().to_string();
    if let Some(len) = line.strip_prefix('$').filter(|len| *len != "-1") {
        let len: usize = len.parse().expect("bulk length");
        let mut bulk = vec![0u8; len + 2];
        reader.read_exact(&mut bulk).expect("bulk bytes");
        return format!("${}", String::from_utf8_lossy(&bulk[..len]));
    }
    if let Some(count) = line.strip_prefix('*').filter(|count| *count != "-1") {
        for _ in 0..count.parse::<usize>().expect("array length") {
            read_reply_text(reader);
        }
    }
    line
}

/// The command made of `words` (the first is its name).
pub fn command(words: &[&str]) -> redis::Cmd {
    let mut command = redis::cmd(words[0]);
    command.arg(&words[1..]);
    command
}

/// Runs the command made of `words` and converts its reply, panicking with the words on an
/// error reply.
pub fn query<T: redis::FromRedisValue>(connection: &mut redis::Connection, words: &[&str]) -> T {
    command(words)
        .query(connection)
        .unwrap_or_else(|error| panic!("{words:?}: {error}"))
}
