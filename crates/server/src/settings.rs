//! The settings of `skiff serve`, each defined once: its name (with its unit), default, bounds
//! and help live in the table at the bottom of this file, from which come the command-line flag
//! (`--election-timeout-ticks`), the key of the `--config` TOML file (`election_timeout_ticks`),
//! the `[default: …] [bounds: …]` of `--help`, and the value handed to the node ([`Settings`]).
//!
//! A flag wins over the file, the file over the default. A value outside its bounds is refused
//! with an error naming the setting, the bound and where the value came from. A flag renamed to
//! carry its unit keeps its old spelling as a hidden alias, in both places.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::client::ClientOptions;
use crate::join::JoinTarget;
use crate::resp::Limits;
use crate::transport::{DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_PEER_CONNECTIONS};

/// Milliseconds per Raft tick unless `--tick-ms` says otherwise.
pub const DEFAULT_TICK_MS: u64 = 10;

/// The server's election timeout, in ticks. The core's own default (10 ticks, heartbeat every
/// tick) suits a simulator whose ticks are abstract; the server's ticks are 10 ms of real time,
/// and 15 ticks make the 150–300 ms randomized range the Raft paper suggests (§5.6), well above
/// a LAN round trip and an fsync, so that a busy disk does not start elections.
pub const SERVER_ELECTION_TIMEOUT_TICKS: u64 = 15;

/// The server's heartbeat interval, in ticks: 30 ms, five heartbeats per shortest election
/// timeout, so that one or two lost heartbeats do not start an election (§5.2), with a third of
/// the messages the core's default of one tick would send.
pub const SERVER_HEARTBEAT_INTERVAL_TICKS: u64 = 3;

/// Which HTTP requests need the admin token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpAuth {
    /// Requests that change state (every method but GET and HEAD).
    #[default]
    Admin,
    /// Every request.
    All,
}

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// The `--config` file at this path.
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => write!(f, "given as a flag"),
            Source::File(path) => write!(f, "given in the config file {}", path.display()),
        }
    }
}

/// A setting refused before the node starts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingError {
    /// A value outside the setting's bounds.
    #[error("--{flag} {value} is out of bounds: it must be between {min} and {max} ({origin})", flag = .key.replace('_', "-"))]
    OutOfBounds {
        /// The setting's TOML key.
        key: &'static str,
        /// The value given.
        value: String,
        /// The lowest value allowed.
        min: String,
        /// The highest value allowed.
        max: String,
        /// Where the value came from.
        origin: Source,
    },
}

/// One setting's default and bounds, as `--help` shows them.
#[derive(Clone, Debug)]
pub struct Descriptor {
    /// The TOML key (the flag is the same with `-` for `_`).
    pub key: &'static str,
    /// The default, as text.
    pub default: String,
    /// The lowest and highest values allowed, as text.
    pub bounds: Option<(String, String)>,
}

/// How a setting without a default combines a flag with the file: the flag wins.
trait Merge {
    fn merge(flag: Self, file: Self) -> Self;
}

impl<T> Merge for Option<T> {
    fn merge(flag: Self, file: Self) -> Self {
        flag.or(file)
    }
}

impl Merge for bool {
    /// A switch is on if either turns it on.
    fn merge(flag: Self, file: Self) -> Self {
        flag || file
    }
}

impl<T> Merge for Vec<T> {
    fn merge(flag: Self, file: Self) -> Self {
        if flag.is_empty() {
            file
        } else {
            flag
        }
    }
}

/// The value of a setting with a default: the flag, else the file, else the default; a given
/// value must lie within `bounds`.
fn bounded<T: PartialOrd + fmt::Display + Copy>(
    key: &'static str,
    flag: Option<T>,
    file: Option<T>,
    file_path: Option<&Path>,
    default: T,
    bounds: Option<(T, T)>,
) -> Result<T, SettingError> {
    let (value, source) = match (flag, file, file_path) {
        (Some(value), _, _) => (value, Source::Flag),
        (None, Some(value), Some(path)) => (value, Source::File(path.to_path_buf())),
        _ => return Ok(default),
    };
    if let Some((min, max)) = bounds {
        if value < min || value > max {
            return Err(SettingError::OutOfBounds {
                key,
                value: value.to_string(),
                min: min.to_string(),
                max: max.to_string(),
                origin: source,
            });
        }
    }
    Ok(value)
}

/// Reads the `--config` file: every key must be a setting's.
fn read_file(path: &Path) -> anyhow::Result<ServeArgs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

/// Adds each setting's default and bounds to its help in the `serve` subcommand.
pub fn annotate_help(mut command: clap::Command) -> clap::Command {
    for descriptor in descriptors() {
        let mut note = format!(" [default: {}]", descriptor.default);
        if let Some((min, max)) = &descriptor.bounds {
            note.push_str(&format!(" [bounds: {min}..={max}]"));
        }
        command = command.mut_arg(descriptor.key, |arg| {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let long = arg.get_long_help().map(|h| h.to_string());
            let arg = arg.help(format!("{help}{note}"));
            match long {
                Some(long) => arg.long_help(format!("{long}{note}")),
                None => arg,
            }
        });
    }
    command
}

/// Defines the settings: `given` ones have no default (identities, addresses, files, switches)
/// and keep the type they are given as; `tuned` ones have a default and, for numbers, bounds,
/// and a renamed one its old spelling (`was "flag" "key"`).
macro_rules! settings {
    (@bounds) => { None };
    (@bounds $min:expr, $max:expr) => { Some(($min, $max)) };
    (
        given {
            $( $(#[doc = $gdoc:literal])* $gname:ident : $gty:ty
                $([ $($garg:tt)* ])? $({ $($gserde:tt)* })? ; )*
        }
        tuned {
            $( $(#[doc = $tdoc:literal])* $tname:ident : $tty:ty = $default:expr
                $(, in $min:expr, $max:expr)? $(, was $old_flag:tt $old_key:tt)? ; )*
        }
    ) => {
        /// `skiff serve`'s flags; every one may also be given in the `--config` TOML file under
        /// the same name with underscores (`data_dir = "…"`); flags win over the file.
        #[derive(clap::Args, Clone, Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct ServeArgs {
            $(
                $(#[doc = $gdoc])*
                #[arg(long $(, $($garg)*)?)]
                $(#[serde($($gserde)*)])?
                pub $gname: $gty,
            )*
            $(
                $(#[doc = $tdoc])*
                #[arg(long $(, alias = $old_flag)?)]
                $(#[serde(alias = $old_key)])?
                pub $tname: Option<$tty>,
            )*
        }

        /// The settings the node runs with: flags over the file over the defaults, checked.
        #[derive(Clone, Debug)]
        pub struct Settings {
            $( $(#[doc = $gdoc])* pub $gname: $gty, )*
            $( $(#[doc = $tdoc])* pub $tname: $tty, )*
        }

        impl Settings {
            /// The flags completed from the `--config` file they name, if any, and the
            /// defaults; a value out of bounds is an error naming it and its source.
            pub fn resolve(flags: ServeArgs) -> anyhow::Result<Settings> {
                let file = match &flags.config {
                    Some(path) => read_file(path)?,
                    None => ServeArgs::default(),
                };
                let path = flags.config.clone();
                let path = path.as_deref();
                Ok(Settings {
                    $( $gname: Merge::merge(flags.$gname, file.$gname), )*
                    $( $tname: bounded(
                        stringify!($tname),
                        flags.$tname,
                        file.$tname,
                        path,
                        $default,
                        settings!(@bounds $($min, $max)?),
                    )?, )*
                })
            }
        }

        /// Every setting with a default: its key, default and bounds.
        pub fn descriptors() -> Vec<Descriptor> {
            vec![$(
                Descriptor {
                    key: stringify!($tname),
                    default: { let default: $tty = $default; default.to_string() },
                    bounds: settings!(@bounds $((($min as $tty).to_string()), (($max as $tty).to_string()))?),
                },
            )*]
        }
    };
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const GIB: usize = 1024 * MIB;

settings! {
    given {
        /// A TOML file holding any of these settings.
        config: Option<PathBuf> {skip};
        /// This node's id (a positive integer, unique in the cluster). Needed on first start only.
        id: Option<u64>;
        /// Where the node keeps its log, snapshots and identity.
        data_dir: Option<PathBuf>;
        /// Address for Redis-protocol clients.
        listen_client: Option<SocketAddr>;
        /// Address for the other nodes.
        listen_peer: Option<SocketAddr>;
        /// The address other nodes reach this one's peer port at, if not --listen-peer (which
        /// may be 0.0.0.0, or behind a proxy or NAT). Given to each peer this node connects to,
        /// so that a node with no address for it (it joined later) can answer.
        advertise_peer: Option<SocketAddr>;
        /// Address for HTTP: /status, /metrics, /healthz.
        listen_http: Option<SocketAddr>;
        /// The cluster's initial members, `1=host:port,2=host:port,…` (their peer addresses).
        /// Needed on first start only; afterwards membership comes from the node's durable state.
        initial_cluster: Option<String>;
        /// Join a running cluster instead of founding one: the node starts with no vote and waits
        /// for the leader (`skiff admin add-learner`). `--join HOST:PORT[,HOST:PORT…]` names the
        /// HTTP address of any member (the first that answers tells the cluster id and members;
        /// no --initial-cluster then). `--join` alone needs the cluster's original
        /// `--initial-cluster`, which the node does not belong to. Needed on first start only.
        join: Option<JoinTarget> [num_args = 0..=1, default_missing_value = ""];
        /// Accept `POST /admin/isolate`, which cuts the node off from its peers: for
        /// demonstrations (`skiff local` turns it on) and tests, never for production.
        allow_fault_injection: bool {default};
        /// The URL of `skiff local`'s control API, shown to the live view (set by `skiff local`).
        local_control: Option<String> [hide = true];
        /// Host names (comma-separated) by which operators open this node's live view, besides
        /// its IP addresses and `localhost`: a page under any other name may not change state
        /// (a defence against DNS rebinding).
        http_allowed_hosts: Vec<String> [value_delimiter = ','] {default};
        /// Sync each batch on a dedicated writer thread, so that the driver thread steps
        /// messages, ticks and applies while the disk works (thesis §10.2.1). Costs two thread
        /// hand-offs per batch: on 2 cores it measured slower (docs/BENCHMARKS.md), so it is off
        /// by default.
        sync_thread: bool {default};
        /// The node's certificate (PEM) for TLS on all three ports; with --tls-key-file and
        /// --tls-ca-cert-file (`skiff certs` makes all three).
        tls_cert_file: Option<PathBuf>;
        /// The private key of --tls-cert-file (PEM).
        tls_key_file: Option<PathBuf>;
        /// The cluster's CA certificate (PEM): a peer's certificate must be signed by it and
        /// name the node id the peer claims.
        tls_ca_cert_file: Option<PathBuf>;
        /// A file whose first line is the password clients must give with `AUTH` (Redis's
        /// `requirepass`) before any other command.
        requirepass_file: Option<PathBuf>;
        /// A file whose first line is the token HTTP requests that change state must carry as
        /// `Authorization: Bearer <token>`.
        admin_token_file: Option<PathBuf>;
        /// Which HTTP requests need the admin token: `admin` (those that change state) or
        /// `all` (also the read-only pages, status and metrics) [default: admin].
        http_auth: Option<HttpAuth>;
        /// Which keyspace notifications the node publishes at start, in Redis's letters
        /// (`notify-keyspace-events`, e.g. `KEA`; empty: none, the default); `CONFIG SET`
        /// changes it at run time.
        notify_keyspace_events: Option<String>;
        /// Listen on addresses other than loopback without TLS, a client password or an admin
        /// token: refused unless given, so that a cluster is never open by accident.
        insecure: bool {default};
    }
    tuned {
        /// Milliseconds per Raft tick.
        tick_ms: u64 = DEFAULT_TICK_MS, in 1, 60_000;
        /// Threads of the runtime beside the driver thread: client connections (parsing,
        /// TLS, replies), HTTP, and the peer links' handshakes and queued sends (0: one less
        /// than the cores this process may run on, the driver taking one, at least 1 and at
        /// most 4). On 2 cores one measured ahead of two in most cluster rows, behind in
        /// plaintext GETs (docs/benchmarks/rounds-12-and-later.md, "Round fifteen").
        io_threads: usize = 0, in 0, 64;
        /// Election timeout in ticks, randomized in [T, 2T) (§5.2); with 10 ms ticks the
        /// default makes 150–300 ms, the range the Raft paper suggests (§5.6).
        election_timeout_ticks: u64 = SERVER_ELECTION_TIMEOUT_TICKS, in 2, 1_000_000,
            was "election-ticks" "election_ticks";
        /// Heartbeat interval in ticks; must be below the election timeout.
        heartbeat_interval_ticks: u64 = SERVER_HEARTBEAT_INTERVAL_TICKS, in 1, 1_000_000,
            was "heartbeat-ticks" "heartbeat_ticks";
        /// PreVote (thesis §9.6): a node asks whether it could win before it raises its term, so
        /// a node that was cut off cannot depose a healthy leader when it returns.
        pre_vote: bool = true;
        /// CheckQuorum (thesis §6.2): a leader that has not heard from a majority for an election
        /// timeout steps down, and followers that hear from a leader ignore vote requests.
        check_quorum: bool = true;
        /// How long a client request may wait before it is answered with an error.
        request_timeout_ms: u64 = 5_000, in 1, 3_600_000;
        /// Snapshot about every this many applied entries (0: never), each node at its own
        /// phase of the period: between half and one and a half periods after its last, and
        /// later while the expansion factor holds it back.
        snapshot_every_entries: u64 = 100_000, in 0, u64::MAX,
            was "snapshot-every" "snapshot_every";
        /// A scheduled snapshot also waits until the log written since the last one holds
        /// this many times its bytes (thesis §5.1.2, the expansion factor): a large store is
        /// not written out again for a few small writes. For a store of steady size,
        /// snapshots write about 1 / (factor + 1) of the node's bytes and the disk holds
        /// about factor + 2 times the store; a restart may replay a log this many times the
        /// snapshot (0: the entry count alone decides).
        snapshot_expansion_factor: u64 = 4, in 0, 100;
        /// Log entries kept behind a snapshot, so that a follower this far behind catches up
        /// from the log rather than by receiving the whole snapshot; the segments holding only
        /// older entries are deleted when the snapshot is taken (0: delete all it covers).
        snapshot_keep_entries: u64 = skiff_raft::DEFAULT_SNAPSHOT_TRAILING_ENTRIES,
            in 0, 100_000_000;
        /// Segment files a snapshot frees that are kept to be written over as later segments
        /// (0: each is deleted). A segment written into blocks already on the disk needs no
        /// zeros written ahead of its batches, nor new blocks at its syncs; each kept file
        /// holds its 64 MiB until it is reused.
        wal_spare_segments: usize = skiff_wal::DEFAULT_SPARE_SEGMENTS, in 0, 64;
        /// Pace the writeback of scheduled snapshots: once serialized, the file's last 64 MiB
        /// (at most) are put on the disk at most this many MiB a second, 512 KiB at a time,
        /// each waited for before the next; what came before went back as it was serialized
        /// (0: not paced; the writeback is started every 8 MiB as the file is written, and the
        /// final sync waits for the rest). A sync of the log waits for everything written
        /// before it, so pacing keeps a snapshot off the log's syncs, at the cost of compacting
        /// the log later (at 32, up to 2 s). A snapshot an operator or a backup waits for is
        /// never paced.
        snapshot_write_mib_per_second: u64 = 32, in 0, 1_000_000;
        /// The longest bulk string the protocol reader takes, in bytes; a longer one is a protocol
        /// error that closes the connection. The store itself takes keys of at most 16 KiB and
        /// values of at most 1 MiB, and answers larger ones with an error.
        max_bulk_bytes: usize = Limits::default().max_bulk_bytes, in 1, GIB;
        /// The most bytes one client request may take in all, its arguments and their headers;
        /// a larger one is a protocol error that closes the connection.
        max_request_bytes: usize = Limits::default().max_request_bytes, in 1, 4 * GIB;
        /// The largest reply a read may build (the values of an `MGET` added up); a larger one is
        /// answered with an error. At least the largest value, 1 MiB.
        max_reply_bytes: usize = skiff_kv::KvConfig::default().max_reply_bytes,
            in skiff_kv::KvConfig::default().max_value_bytes, 4 * GIB;
        /// Client sessions (exactly-once writes: one per connection that writes) the state
        /// machine remembers at most; set the same on every node.
        max_sessions: usize = skiff_kv::KvConfig::default().max_sessions, in 1, 100_000_000;
        /// A client session idle this long in log time is forgotten; set the same on every node.
        session_expiry_ms: u64 = skiff_kv::KvConfig::default().session_expiry_ms,
            in 1, 31_622_400_000;
        /// A session idle this long in log time may be evicted for a new one when
        /// `max_sessions` are open (else the new one's first write is refused, not applied); at
        /// most `session_expiry_ms`, well above `request_timeout_ms`; the same on every node.
        session_evict_idle_ms: u64 = skiff_kv::KvConfig::default().session_evict_idle_ms,
            in 0, 31_622_400_000;
        /// Client connections served at once; more are refused with an error.
        max_clients: usize = ClientOptions::default().max_clients, in 1, 1_000_000;
        /// Replies one client may leave unread (Redis's `client-output-buffer-limit`); a client
        /// that lets more pile up is disconnected.
        client_output_limit_bytes: usize = ClientOptions::default().max_output_bytes,
            in 1, 64 * GIB;
        /// Input and output buffers of all clients together (Redis's `maxmemory-clients`); the
        /// client whose buffers would pass it is disconnected.
        max_client_memory_bytes: usize = ClientOptions::default().max_memory_bytes,
            in 1, 1024 * GIB;
        /// Close a client connection that sends nothing for this many seconds (Redis's
        /// `timeout`; 0: never).
        client_idle_timeout_secs: u64 = 0, in 0, 366 * 24 * 3600;
        /// The largest frame accepted from a peer, in bytes; every message a node sends fits in
        /// 1 MiB and its framing, so the bound starts above it.
        max_frame_bytes: usize = DEFAULT_MAX_FRAME_BYTES, in 2 * MIB, GIB;
        /// Incoming peer connections open at once; more are closed at once.
        max_peer_connections: usize = DEFAULT_MAX_PEER_CONNECTIONS, in 1, 65_536;
        /// Bytes of log entries a leader sends one follower ahead of its answers: no new
        /// append goes while the unanswered ones hold this much. It bounds what the leader
        /// holds for a follower catching up, and over long round trips it bounds replication
        /// to one follower to about this much per round trip.
        max_inflight_bytes: u64 = crate::serve::DEFAULT_MAX_INFLIGHT_BYTES,
            in MIB as u64, GIB as u64;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    /// `skiff serve`'s flags alone, parsed as the binary parses them.
    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    /// `argv` parsed as `skiff serve`'s flags.
    pub(crate) fn flags(argv: &[&str]) -> ServeArgs {
        Serve::try_parse_from(std::iter::once("serve").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    fn file(dir: &tempfile::TempDir, text: &str) -> String {
        let path = dir.path().join("skiff.toml");
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            &dir,
            "id = 3\ntick_ms = 20\nelection_timeout_ticks = 40\ndata_dir = \"/var/skiff\"\n",
        );
        let settings =
            Settings::resolve(flags(&["--config", &path, "--id", "1", "--tick-ms", "7"])).unwrap();
        assert_eq!(settings.id, Some(1));
        assert_eq!(settings.tick_ms, 7);
        assert_eq!(settings.election_timeout_ticks, 40);
        assert_eq!(settings.data_dir, Some(PathBuf::from("/var/skiff")));
        assert_eq!(
            settings.heartbeat_interval_ticks,
            SERVER_HEARTBEAT_INTERVAL_TICKS
        );
    }

    #[test]
    fn old_spellings_still_work_as_flags_and_keys() {
        let settings = Settings::resolve(flags(&[
            "--election-ticks",
            "30",
            "--snapshot-every",
            "100",
        ]))
        .unwrap();
        assert_eq!(settings.election_timeout_ticks, 30);
        assert_eq!(settings.snapshot_every_entries, 100);
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "heartbeat_ticks = 4\nsnapshot_every = 0\n");
        let settings = Settings::resolve(flags(&["--config", &path])).unwrap();
        assert_eq!(settings.heartbeat_interval_ticks, 4);
        assert_eq!(settings.snapshot_every_entries, 0);
    }

    #[test]
    fn a_value_out_of_bounds_is_refused_naming_the_setting_its_bound_and_its_source() {
        let error = Settings::resolve(flags(&["--tick-ms", "0"])).unwrap_err();
        let error = error.downcast::<SettingError>().unwrap();
        assert_eq!(
            error,
            SettingError::OutOfBounds {
                key: "tick_ms",
                value: "0".into(),
                min: "1".into(),
                max: "60000".into(),
                origin: Source::Flag,
            }
        );
        assert!(error
            .to_string()
            .starts_with("--tick-ms 0 is out of bounds"));

        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "max_frame_bytes = 1024\n");
        let error = Settings::resolve(flags(&["--config", &path])).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("--max-frame-bytes 1024"), "{text}");
        assert!(text.contains("between 2097152 and"), "{text}");
        assert!(text.contains(&format!("config file {path}")), "{text}");
        // The flag overrides a bad value in the file: only what is used is checked.
        let settings =
            Settings::resolve(flags(&["--config", &path, "--max-frame-bytes", "4194304"])).unwrap();
        assert_eq!(settings.max_frame_bytes, 4_194_304);

        // The snapshot writeback rate and the expansion factor: past their bounds, refused
        // naming the flag and the bound; too large for a u64, negative, with a unit or empty,
        // refused by the parser naming the flag; at their bounds, taken (the rate cannot
        // overflow into bytes a second, and the factor's product with a snapshot's bytes
        // saturates).
        type Field = fn(&Settings) -> u64;
        let settings: [(&str, &str, u64, Field); 2] = [
            (
                "--snapshot-write-mib-per-second",
                "snapshot_write_mib_per_second",
                1_000_000,
                |s| s.snapshot_write_mib_per_second,
            ),
            (
                "--snapshot-expansion-factor",
                "snapshot_expansion_factor",
                100,
                |s| s.snapshot_expansion_factor,
            ),
        ];
        for (name, key, bound, field) in settings {
            let past = (bound + 1).to_string();
            let error = Settings::resolve(flags(&[name, &past])).unwrap_err();
            let text = format!("{error:#}");
            assert!(
                text.contains(&format!("{name} {past} is out of bounds")),
                "{text}"
            );
            for bad in ["18446744073709551616", "-1", "32MiB", ""] {
                let flag = format!("{name}={bad}");
                let argv = ["serve", flag.as_str()];
                let Err(error) = Serve::try_parse_from(argv) else {
                    panic!("{name} {bad:?} was taken");
                };
                let error = error.to_string();
                assert!(error.contains(name), "{bad}: {error}");
            }
            let at_bound = Settings::resolve(flags(&[name, &bound.to_string()])).unwrap();
            assert_eq!(field(&at_bound), bound, "{name}");
            // From the config file: past the bound, negative or not a number, refused
            // naming the setting.
            for bad in [past.as_str(), "-1", "\"four\"", "1.5"] {
                let path = file(&dir, &format!("{key} = {bad}\n"));
                let error = Settings::resolve(flags(&["--config", &path])).unwrap_err();
                let text = format!("{error:#}");
                assert!(
                    text.contains(key) || text.contains(name),
                    "{key} = {bad}: {text}"
                );
            }
        }
    }

    #[test]
    fn io_threads_past_their_bound_or_not_a_count_are_refused_naming_the_setting() {
        assert_eq!(Settings::resolve(flags(&[])).unwrap().io_threads, 0);
        let at_bound = Settings::resolve(flags(&["--io-threads", "64"])).unwrap();
        assert_eq!(at_bound.io_threads, 64);
        let text = format!(
            "{:#}",
            Settings::resolve(flags(&["--io-threads", "65"])).unwrap_err()
        );
        assert!(text.contains("--io-threads 65 is out of bounds"), "{text}");
        for bad in ["-1", "two", ""] {
            let flag = format!("--io-threads={bad}");
            assert!(
                Serve::try_parse_from(["serve", flag.as_str()]).is_err(),
                "{bad:?} was taken"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        for bad in ["65", "-1", "\"two\""] {
            let path = file(&dir, &format!("io_threads = {bad}\n"));
            let text = format!(
                "{:#}",
                Settings::resolve(flags(&["--config", &path])).unwrap_err()
            );
            assert!(
                text.contains("io_threads") || text.contains("--io-threads"),
                "{bad}: {text}"
            );
        }
    }

    #[test]
    fn what_a_leader_sends_ahead_of_a_follower_is_bounded_whatever_the_flag_or_file_says() {
        assert_eq!(
            Settings::resolve(flags(&[])).unwrap().max_inflight_bytes,
            8 * 1024 * 1024
        );
        // Too little to hold one full append, or more than a node should hold per follower.
        for value in ["0", "1048575", "1073741825", "18446744073709551615"] {
            let error = Settings::resolve(flags(&["--max-inflight-bytes", value])).unwrap_err();
            let text = error.to_string();
            assert!(
                text.contains("between 1048576 and 1073741824"),
                "{value}: {text}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "max_inflight_bytes = -1\n",
            "max_inflight_bytes = \"8MiB\"\n",
            "max_inflight_bytes = 99999999999999999999999\n",
        ] {
            let path = file(&dir, text);
            assert!(
                Settings::resolve(flags(&["--config", &path])).is_err(),
                "accepted {text:?}"
            );
        }
        let path = file(&dir, "max_inflight_bytes = 1048576\n");
        let settings = Settings::resolve(flags(&["--config", &path])).unwrap();
        assert_eq!(settings.max_inflight_bytes, 1_048_576);
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "idd = 3\n");
        assert!(Settings::resolve(flags(&["--config", &path])).is_err());
    }

    #[test]
    fn every_default_lies_within_its_bounds_and_help_shows_both() {
        let defaults = Settings::resolve(ServeArgs::default()).unwrap();
        assert_eq!(defaults.tick_ms, DEFAULT_TICK_MS);
        let command = annotate_help(<Serve as clap::CommandFactory>::command());
        for descriptor in descriptors() {
            if let Some((min, max)) = &descriptor.bounds {
                let number = |text: &str| text.parse::<u128>().expect("a number");
                let default = number(&descriptor.default);
                assert!(
                    number(min) <= default && default <= number(max),
                    "{}: {default} outside {min}..={max}",
                    descriptor.key
                );
            }
            let arg = command
                .get_arguments()
                .find(|a| a.get_id() == descriptor.key)
                .unwrap();
            let help = arg.get_help().unwrap().to_string();
            assert!(
                help.contains(&format!("[default: {}]", descriptor.default)),
                "{help}"
            );
        }
    }
}
