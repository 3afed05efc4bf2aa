//! The node's Prometheus metrics, registered once and exported on `GET /metrics`.
//!
//! Names follow Prometheus conventions: `skiff_` prefix, base units (seconds, bytes), `_total`
//! for counters.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric a node exports.
pub struct Metrics {
    registry: Registry,
    /// The current term.
    pub term: IntGauge,
    /// 1 for the node's current role, 0 for the others.
    pub role: IntGaugeVec,
    /// The commit index.
    pub commit_index: IntGauge,
    /// The applied index.
    pub applied_index: IntGauge,
    /// The last log index.
    pub last_log_index: IntGauge,
    /// The snapshot's last included index.
    pub snapshot_index: IntGauge,
    /// Keys in the store.
    pub keys: IntGauge,
    /// Client requests waiting on this node.
    pub pending_requests: IntGauge,
    /// Elections this node started as a candidate.
    pub elections_started: IntCounter,
    /// Elections this node won.
    pub elections_won: IntCounter,
    /// Times this node learned of a new leader.
    pub leader_changes: IntCounter,
    /// Client writes proposed by this node as leader.
    pub proposals: IntCounter,
    /// Client writes this node forwarded to the leader.
    pub forwarded_requests: IntCounter,
    /// Client reads: `skiff_client_requests_total` and `skiff_request_duration_seconds` with
    /// `kind="read"`, looked up once rather than at every request.
    pub reads: RequestMetrics,
    /// Client writes, likewise with `kind="write"`.
    pub writes: RequestMetrics,
    /// Seconds per fsync of the write-ahead log.
    pub fsync_duration: Histogram,
    /// Entries per durable write batch.
    pub append_batch_entries: Histogram,
    /// Messages sent to each peer.
    pub peer_messages_sent: IntCounterVec,
    /// Bytes sent to each peer.
    pub peer_bytes_sent: IntCounterVec,
    /// Messages dropped because a peer queue was full or the peer was unknown.
    pub peer_messages_dropped: IntCounter,
    /// Snapshots taken and installed.
    pub snapshots: IntCounterVec,
    /// Seconds to take a snapshot.
    pub snapshot_duration: Histogram,
    /// The log's segment files, by kind: `segment` (the log) or `spare` (kept to write over).
    pub wal_segment_files: IntGaugeVec,
    /// Segments written over a spare since the node started.
    pub wal_segments_recycled: IntCounter,
    /// Client connections open now.
    pub client_connections: IntGauge,
    /// Errors by kind.
    pub errors: IntCounterVec,
}

/// The kinds of `skiff_errors_total`.
pub const ERROR_KINDS: [&str; 17] = [
    "protocol",
    "command",
    "busy",
    "request_timeout",
    "max_clients",
    "client_output_limit",
    "max_client_memory",
    "idle_timeout",
    "send_timeout",
    "peer_connection_refused",
    "max_peer_connections",
    "peer_message_refused",
    // A peer connection the driver's poll refused to watch (closed; the peer dials again).
    "peer_unwatched",
    "tls_handshake",
    "auth_failed",
    "http_auth_failed",
    // A peer whose data directory is not the one the cluster recorded (a wiped node).
    "wrong_incarnation",
];

fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.000_05, 2.0, 18).expect("valid buckets")
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        macro_rules! register {
            ($metric:expr) => {{
                let metric = $metric.expect("valid metric");
                registry
                    .register(Box::new(metric.clone()))
                    .expect("unique metric name");
                metric
            }};
        }
        let client_requests = register!(IntCounterVec::new(
            Opts::new("skiff_client_requests_total", "Client requests by kind."),
            &["kind"]
        ));
        let request_duration = register!(HistogramVec::new(
            HistogramOpts::new(
                "skiff_request_duration_seconds",
                "Seconds from a client request's arrival to its reply (for writes: commit and apply)."
            )
            .buckets(latency_buckets()),
            &["kind", "outcome"]
        ));
        let metrics = Metrics {
            term: register!(IntGauge::new("skiff_term", "The node's current Raft term.")),
            role: register!(IntGaugeVec::new(
                Opts::new("skiff_role", "1 for the node's current Raft role."),
                &["role"]
            )),
            commit_index: register!(IntGauge::new(
                "skiff_commit_index",
                "The highest log index known to be committed."
            )),
            applied_index: register!(IntGauge::new(
                "skiff_applied_index",
                "The highest log index applied to the store."
            )),
            last_log_index: register!(IntGauge::new(
                "skiff_last_log_index",
                "The last index in the node's log."
            )),
            snapshot_index: register!(IntGauge::new(
                "skiff_snapshot_index",
                "The last index covered by the node's snapshot."
            )),
            keys: register!(IntGauge::new("skiff_keys", "Keys in the store.")),
            pending_requests: register!(IntGauge::new(
                "skiff_pending_requests",
                "Client requests waiting on this node."
            )),
            elections_started: register!(IntCounter::new(
                "skiff_elections_started_total",
                "Elections this node started as a candidate."
            )),
            elections_won: register!(IntCounter::new(
                "skiff_elections_won_total",
                "Elections this node won."
            )),
            leader_changes: register!(IntCounter::new(
                "skiff_leader_changes_total",
                "Times this node learned of a new leader."
            )),
            proposals: register!(IntCounter::new(
                "skiff_proposals_total",
                "Client writes proposed by this node as leader."
            )),
            forwarded_requests: register!(IntCounter::new(
                "skiff_forwarded_requests_total",
                "Client writes this node forwarded to the leader."
            )),
            reads: RequestMetrics::of(&client_requests, &request_duration, "read"),
            writes: RequestMetrics::of(&client_requests, &request_duration, "write"),
            fsync_duration: register!(Histogram::with_opts(
                HistogramOpts::new(
                    "skiff_fsync_duration_seconds",
                    "Seconds per fsync of the write-ahead log."
                )
                .buckets(latency_buckets())
            )),
            append_batch_entries: register!(Histogram::with_opts(
                HistogramOpts::new(
                    "skiff_append_batch_entries",
                    "Log entries per durable write batch (one fsync each)."
                )
                .buckets(prometheus::exponential_buckets(1.0, 2.0, 14).expect("valid buckets"))
            )),
            peer_messages_sent: register!(IntCounterVec::new(
                Opts::new(
                    "skiff_peer_messages_sent_total",
                    "Messages sent to each peer."
                ),
                &["peer"]
            )),
            peer_bytes_sent: register!(IntCounterVec::new(
                Opts::new(
                    "skiff_peer_bytes_sent_total",
                    "Bytes sent to each peer, as they go on the wire (TLS records over TLS).",
                ),
                &["peer"]
            )),
            peer_messages_dropped: register!(IntCounter::new(
                "skiff_peer_messages_dropped_total",
                "Messages dropped because a peer queue was full or the peer unknown."
            )),
            snapshots: register!(IntCounterVec::new(
                Opts::new("skiff_snapshots_total", "Snapshots taken and installed."),
                &["event"]
            )),
            snapshot_duration: register!(Histogram::with_opts(
                HistogramOpts::new(
                    "skiff_snapshot_duration_seconds",
                    "Seconds to take a snapshot and write it durably."
                )
                // From 10 ms to about 11 minutes: a scheduled snapshot is written paced.
                .buckets(prometheus::exponential_buckets(0.01, 2.0, 17).expect("valid buckets"))
            )),
            wal_segment_files: register!(IntGaugeVec::new(
                Opts::new(
                    "skiff_wal_segment_files",
                    "The log's segment files: kind=\"segment\" the log, kind=\"spare\" kept to be written over."
                ),
                &["kind"]
            )),
            wal_segments_recycled: register!(IntCounter::new(
                "skiff_wal_segments_recycled_total",
                "Log segments written over a spare file instead of a new one."
            )),
            client_connections: register!(IntGauge::new(
                "skiff_client_connections",
                "Client connections open now."
            )),
            errors: register!(IntCounterVec::new(
                Opts::new("skiff_errors_total", "Errors by kind."),
                &["kind"]
            )),
            registry,
        };
        // Label values known in advance are exported from the start, at zero.
        for event in ["taken", "installed"] {
            metrics.snapshots.with_label_values(&[event]);
        }
        for kind in ERROR_KINDS {
            metrics.errors.with_label_values(&[kind]);
        }
        metrics
    }

    /// Counts one error of `kind`.
    pub fn error(&self, kind: &str) {
        self.errors.with_label_values(&[kind]).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// One kind of client request's counter and latency histograms.
pub struct RequestMetrics {
    /// Requests of this kind.
    pub requests: IntCounter,
    /// Seconds to a reply that is not an error.
    pub ok: Histogram,
    /// Seconds to an error reply.
    pub error: Histogram,
}

impl RequestMetrics {
    fn of(requests: &IntCounterVec, duration: &HistogramVec, kind: &str) -> RequestMetrics {
        RequestMetrics {
            requests: requests.with_label_values(&[kind]),
            ok: duration.with_label_values(&[kind, "ok"]),
            error: duration.with_label_values(&[kind, "error"]),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}
