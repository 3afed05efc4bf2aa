//! The settings of `skiff serve`: from flags, from a TOML file given with `--config`, and
//! from the node's own data directory once it has started once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// `skiff serve` settings. Every flag may also be given in the `--config` TOML file, under the
/// same name with underscores (`data_dir = "…"`); flags win over the file.
#[derive(clap::Args, Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// A TOML file holding any of these settings.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// This node's id (a positive integer, unique in the cluster). Needed on first start only.
    #[arg(long)]
    pub id: Option<u64>,
    /// Where the node keeps its log, snapshots and identity.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address for Redis-protocol clients.
    #[arg(long)]
    pub listen_client: Option<SocketAddr>,
    /// Address for the other nodes.
    #[arg(long)]
    pub listen_peer: Option<SocketAddr>,
    /// Address for HTTP: /status, /metrics, /healthz.
    #[arg(long)]
    pub listen_http: Option<SocketAddr>,
    /// The cluster's initial members, `1=host:port,2=host:port,…` (their peer addresses).
    /// Needed on first start only; afterwards membership comes from the node's durable state.
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// Join a running cluster instead of founding one: the node starts with no vote and waits
    /// for the leader (`skiff admin add-learner`). `--initial-cluster` must be the cluster's
    /// original one, which the node does not belong to.
    #[arg(long)]
    #[serde(default)]
    pub join: bool,
    /// Milliseconds per Raft tick [default: 10].
    #[arg(long)]
    pub tick_ms: Option<u64>,
    /// Election timeout in ticks, randomized in [T, 2T) [default: 15, so 150–300 ms, the
    /// range the Raft paper suggests (§5.6)].
    #[arg(long)]
    pub election_ticks: Option<u64>,
    /// Heartbeat interval in ticks [default: 3].
    #[arg(long)]
    pub heartbeat_ticks: Option<u64>,
    /// PreVote (thesis §9.6): a node asks whether it could win before it raises its term, so
    /// a node that was cut off cannot depose a healthy leader when it returns [default: true].
    #[arg(long)]
    pub pre_vote: Option<bool>,
    /// CheckQuorum (thesis §6.2): a leader that has not heard from a majority for an election
    /// timeout steps down, and followers that hear from a leader ignore vote requests
    /// [default: true].
    #[arg(long)]
    pub check_quorum: Option<bool>,
    /// How long a client request may wait before it is answered with an error [default: 5000].
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// Snapshot after this many applied entries past the last snapshot (0: never)
    /// [default: 100000].
    #[arg(long)]
    pub snapshot_every: Option<u64>,
    /// The longest bulk string the protocol reader takes, in bytes; a longer one is a protocol
    /// error that closes the connection [default: 8388608]. The store itself takes keys of at
    /// most 16 KiB and values of at most 1 MiB, and answers larger ones with an error.
    #[arg(long)]
    pub max_bulk_bytes: Option<usize>,
    /// Accept `POST /admin/isolate`, which cuts the node off from its peers: for
    /// demonstrations (`skiff local` turns it on) and tests, never for production.
    #[arg(long)]
    #[serde(default)]
    pub allow_fault_injection: bool,
    /// The URL of `skiff local`'s control API, shown to the live view (set by `skiff local`).
    #[arg(long, hide = true)]
    pub local_control: Option<String>,
    /// Client connections served at once; more are refused with an error [default: 10000].
    #[arg(long)]
    pub max_clients: Option<usize>,
    /// The most bytes one client request may take in all, its arguments and their headers;
    /// a larger one is a protocol error that closes the connection [default: 33554432].
    #[arg(long)]
    pub max_request_bytes: Option<usize>,
    /// The largest reply a read may build (the values of an `MGET` added up); a larger one is
    /// answered with an error [default: 16777216].
    #[arg(long)]
    pub max_reply_bytes: Option<usize>,
    /// Replies one client may leave unread (Redis's `client-output-buffer-limit`); a client
    /// that lets more pile up is disconnected [default: 67108864].
    #[arg(long)]
    pub client_output_limit_bytes: Option<usize>,
    /// Input and output buffers of all clients together (Redis's `maxmemory-clients`); the
    /// client whose buffers would pass it is disconnected [default: 536870912].
    #[arg(long)]
    pub max_client_memory_bytes: Option<usize>,
    /// Close a client connection that sends nothing for this many seconds (Redis's
    /// `timeout`; 0: never) [default: 0].
    #[arg(long)]
    pub client_idle_timeout_secs: Option<u64>,
    /// The largest frame accepted from a peer, in bytes; every message a node sends fits in
    /// 1 MiB and its framing [default: 4194304].
    #[arg(long)]
    pub max_frame_bytes: Option<usize>,
    /// Incoming peer connections open at once; more are closed at once [default: 64].
    #[arg(long)]
    pub max_peer_connections: Option<usize>,
    /// Host names (comma-separated) by which operators open this node's live view, besides
    /// its IP addresses and `localhost`: a page under any other name may not change state
    /// (a defence against DNS rebinding).
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub http_allowed_hosts: Vec<String>,
    /// Sync each batch on a dedicated writer thread, so that the driver thread steps
    /// messages, ticks and applies while the disk works (thesis §10.2.1). Costs two thread
    /// hand-offs per batch: on 2 cores it measured slower (docs/BENCHMARKS.md), so it is off
    /// by default.
    #[arg(long)]
    #[serde(default)]
    pub sync_thread: bool,
}

impl ServeArgs {
    /// The flags, completed from the `--config` file if one was given.
    pub fn merged(self) -> anyhow::Result<ServeArgs> {
        let Some(path) = &self.config else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let file: ServeArgs = toml::from_str(&text)
            .with_context(|| format!("parsing config file {}", path.display()))?;
        Ok(ServeArgs {
            config: self.config,
            id: self.id.or(file.id),
            data_dir: self.data_dir.or(file.data_dir),
            listen_client: self.listen_client.or(file.listen_client),
            listen_peer: self.listen_peer.or(file.listen_peer),
            listen_http: self.listen_http.or(file.listen_http),
            initial_cluster: self.initial_cluster.or(file.initial_cluster),
            join: self.join || file.join,
            tick_ms: self.tick_ms.or(file.tick_ms),
            election_ticks: self.election_ticks.or(file.election_ticks),
            heartbeat_ticks: self.heartbeat_ticks.or(file.heartbeat_ticks),
            pre_vote: self.pre_vote.or(file.pre_vote),
            check_quorum: self.check_quorum.or(file.check_quorum),
            request_timeout_ms: self.request_timeout_ms.or(file.request_timeout_ms),
            snapshot_every: self.snapshot_every.or(file.snapshot_every),
            max_bulk_bytes: self.max_bulk_bytes.or(file.max_bulk_bytes),
            max_request_bytes: self.max_request_bytes.or(file.max_request_bytes),
            max_reply_bytes: self.max_reply_bytes.or(file.max_reply_bytes),
            client_output_limit_bytes: self
                .client_output_limit_bytes
                .or(file.client_output_limit_bytes),
            max_client_memory_bytes: self
                .max_client_memory_bytes
                .or(file.max_client_memory_bytes),
            client_idle_timeout_secs: self
                .client_idle_timeout_secs
                .or(file.client_idle_timeout_secs),
            max_frame_bytes: self.max_frame_bytes.or(file.max_frame_bytes),
            max_peer_connections: self.max_peer_connections.or(file.max_peer_connections),
            http_allowed_hosts: if self.http_allowed_hosts.is_empty() {
                file.http_allowed_hosts
            } else {
                self.http_allowed_hosts
            },
            max_clients: self.max_clients.or(file.max_clients),
            allow_fault_injection: self.allow_fault_injection || file.allow_fault_injection,
            sync_thread: self.sync_thread || file.sync_thread,
            local_control: self.local_control.or(file.local_control),
        })
    }
}

/// Parses `1=host:port,2=host:port`.
pub fn parse_initial_cluster(text: &str) -> anyhow::Result<BTreeMap<u64, SocketAddr>> {
    let mut members = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((id, addr)) = part.split_once('=') else {
            bail!("initial cluster member {part:?} is not of the form ID=HOST:PORT");
        };
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("member id {id:?} is not a number"))?;
        if id == 0 {
            bail!("member ids start at 1");
        }
        let addr: SocketAddr = addr
            .trim()
            .parse()
            .with_context(|| format!("member {id} address {addr:?} is not HOST:PORT"))?;
        if members.insert(id, addr).is_some() {
            bail!("member {id} is listed twice");
        }
    }
    if members.is_empty() {
        bail!("the initial cluster is empty");
    }
    Ok(members)
}

/// What a node writes into its data directory on first start, so that a restart needs
/// nothing but the directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// This node's id.
    pub id: u64,
    /// The cluster's id, derived from the initial membership: a node refuses peers and log
    /// files of another cluster.
    pub cluster_id: u64,
    /// The initial members' peer addresses, by id.
    pub initial_cluster: BTreeMap<String, SocketAddr>,
}

const IDENTITY_FILE: &str = "identity.toml";

impl Identity {
    /// The identity stored in `data_dir`, if the node has started before.
    pub fn load(data_dir: &Path) -> anyhow::Result<Option<Identity>> {
        let path = data_dir.join(IDENTITY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the identity durably (temp file, fsync, rename, fsync of the directory).
    pub fn store(&self, data_dir: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let temp = data_dir.join(format!("{IDENTITY_FILE}.tmp"));
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(toml::to_string(self)?.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, data_dir.join(IDENTITY_FILE))?;
        std::fs::File::open(data_dir)?.sync_all()?;
        Ok(())
    }

    /// The initial members by numeric id.
    pub fn members(&self) -> anyhow::Result<BTreeMap<u64, SocketAddr>> {
        self.initial_cluster
            .iter()
            .map(|(id, addr)| {
                Ok((
                    id.parse()
                        .with_context(|| format!("member id {id:?} in identity file"))?,
                    *addr,
                ))
            })
            .collect()
    }
}

/// A cluster id from the initial membership (FNV-1a over `id=addr` pairs in id order), so
/// nodes started with the same `--initial-cluster` agree on it without coordination.
pub fn cluster_id_of(members: &BTreeMap<u64, SocketAddr>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (id, addr) in members {
        for byte in format!("{id}={addr};").bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // 63 bits, so the id fits a TOML integer; zero is reserved for "no cluster".
    (hash >> 1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_parses_and_rejects_mistakes() {
        let members = parse_initial_cluster("1=127.0.0.1:7101, 2=127.0.0.1:7102").unwrap();
        assert_eq!(members.len(), 2);
        for bad in [
            "",
            "1",
            "x=127.0.0.1:1",
            "0=127.0.0.1:1",
            "1=nowhere",
            "1=127.0.0.1:1,1=127.0.0.1:2",
        ] {
            assert!(parse_initial_cluster(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_cluster_id_depends_on_the_whole_membership() {
        let a = parse_initial_cluster("1=127.0.0.1:7101,2=127.0.0.1:7102").unwrap();
        let b = parse_initial_cluster("1=127.0.0.1:7101,2=127.0.0.1:7103").unwrap();
        assert_eq!(cluster_id_of(&a), cluster_id_of(&a.clone()));
        assert_ne!(cluster_id_of(&a), cluster_id_of(&b));
    }

    #[test]
    fn flags_win_over_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skiff.toml");
        std::fs::write(&path, "id = 3\ntick_ms = 20\ndata_dir = \"/var/skiff\"\n").unwrap();
        let flags = ServeArgs {
            config: Some(path),
            id: Some(1),
            ..ServeArgs::default()
        };
        let merged = flags.merged().unwrap();
        assert_eq!(merged.id, Some(1));
        assert_eq!(merged.tick_ms, Some(20));
        assert_eq!(merged.data_dir, Some(PathBuf::from("/var/skiff")));
    }

    #[test]
    fn an_unknown_setting_in_the_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skiff.toml");
        std::fs::write(&path, "idd = 3\n").unwrap();
        let flags = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        assert!(flags.merged().is_err());
    }
}
