//! HTTP on every node: `GET /status` (JSON), `GET /metrics` (Prometheus text), `GET /healthz`,
//! and the operator's `POST /admin/...` requests.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::driver::{AdminRequest, Input};
use crate::shared::Shared;

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    driver: SyncSender<Input>,
}

/// Serves HTTP until the process ends.
pub async fn serve_http(listener: TcpListener, shared: Arc<Shared>, driver: SyncSender<Input>) {
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/admin/transfer-leader", post(transfer_leader))
        .route("/admin/snapshot", post(snapshot))
        .route("/admin/add-learner", post(add_learner))
        .route("/admin/promote", post(promote))
        .route("/admin/remove", post(remove))
        .with_state(AppState { shared, driver });
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the HTTP server stopped");
    }
}

async fn status(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.shared.status())
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let status = state.shared.status();
    let body = format!(
        "ok: node {} is {} in term {}, leader {}\n",
        status.id,
        status.role,
        status.term,
        status
            .leader
            .map(|l| l.to_string())
            .unwrap_or_else(|| "unknown".into())
    );
    (StatusCode::OK, body)
}

#[derive(Deserialize)]
struct TransferQuery {
    to: u64,
}

async fn transfer_leader(
    State(state): State<AppState>,
    Query(query): Query<TransferQuery>,
) -> impl IntoResponse {
    admin(&state, AdminRequest::TransferLeader(query.to)).await
}

#[derive(Deserialize)]
struct MemberQuery {
    id: u64,
    peer_addr: Option<String>,
}

async fn add_learner(
    State(state): State<AppState>,
    Query(query): Query<MemberQuery>,
) -> impl IntoResponse {
    let Some(peer_addr) = query.peer_addr else {
        return (
            StatusCode::BAD_REQUEST,
            "peer_addr is required\n".to_string(),
        );
    };
    admin(
        &state,
        AdminRequest::AddLearner {
            id: query.id,
            peer_addr,
        },
    )
    .await
}

async fn promote(
    State(state): State<AppState>,
    Query(query): Query<MemberQuery>,
) -> impl IntoResponse {
    admin(&state, AdminRequest::Promote(query.id)).await
}

async fn remove(
    State(state): State<AppState>,
    Query(query): Query<MemberQuery>,
) -> impl IntoResponse {
    admin(&state, AdminRequest::Remove(query.id)).await
}

async fn snapshot(State(state): State<AppState>) -> impl IntoResponse {
    admin(&state, AdminRequest::Snapshot).await
}

async fn admin(state: &AppState, request: AdminRequest) -> (StatusCode, String) {
    let (reply, receiver) = oneshot::channel();
    if state
        .driver
        .try_send(Input::Admin { request, reply })
        .is_err()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is too busy; retry\n".into(),
        );
    }
    match receiver.await {
        Ok(Ok(text)) => (StatusCode::OK, format!("{text}\n")),
        Ok(Err(text)) => (StatusCode::CONFLICT, format!("{text}\n")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is shutting down\n".into(),
        ),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_metrics(&state.shared),
    )
}

/// The Prometheus text exposition of the node's state and counters.
pub fn render_metrics(shared: &Shared) -> String {
    let status = shared.status();
    let m = &shared.metrics;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge("skiff_term", "The node's current Raft term.", status.term);
    gauge(
        "skiff_commit_index",
        "The highest log index known to be committed.",
        status.commit,
    );
    gauge(
        "skiff_applied_index",
        "The highest log index applied to the store.",
        status.applied,
    );
    gauge(
        "skiff_last_log_index",
        "The last index in the node's log.",
        status.last_index,
    );
    gauge(
        "skiff_snapshot_index",
        "The last index covered by the node's snapshot.",
        status.snapshot_index,
    );
    gauge("skiff_keys", "Keys in the store.", status.keys);
    gauge(
        "skiff_pending_requests",
        "Client requests waiting on this node.",
        status.pending_requests,
    );
    gauge(
        "skiff_client_connections",
        "Client connections open now.",
        m.client_connections.load(Ordering::Relaxed),
    );
    let _ = writeln!(
        out,
        "# HELP skiff_role The node's Raft role (1 for the current one).\n# TYPE skiff_role gauge"
    );
    for role in ["follower", "pre-candidate", "candidate", "leader"] {
        let _ = writeln!(
            out,
            "skiff_role{{role=\"{role}\"}} {}",
            u64::from(status.role == role)
        );
    }
    let counters = [
        (
            "skiff_elections_started_total",
            "Elections this node started.",
            &m.elections_started,
        ),
        (
            "skiff_elections_won_total",
            "Elections this node won.",
            &m.elections_won,
        ),
        (
            "skiff_leader_changes_total",
            "Times this node saw a new leader.",
            &m.leader_changes,
        ),
        (
            "skiff_client_writes_total",
            "Client writes received.",
            &m.client_writes,
        ),
        (
            "skiff_client_reads_total",
            "Client reads received.",
            &m.client_reads,
        ),
        (
            "skiff_busy_refusals_total",
            "Client requests refused because a queue was full.",
            &m.busy_refusals,
        ),
        (
            "skiff_request_timeouts_total",
            "Client requests answered with a timeout error.",
            &m.request_timeouts,
        ),
        (
            "skiff_protocol_errors_total",
            "Malformed client requests.",
            &m.protocol_errors,
        ),
        (
            "skiff_command_errors_total",
            "Unknown or malformed client commands.",
            &m.command_errors,
        ),
        (
            "skiff_peer_messages_sent_total",
            "Messages queued to peers.",
            &m.peer_messages_sent,
        ),
        (
            "skiff_peer_messages_dropped_total",
            "Messages to or from peers dropped (full queue, no connection).",
            &m.peer_messages_dropped,
        ),
        (
            "skiff_peer_connections_refused_total",
            "Peer connections closed for bad input.",
            &m.peer_connections_refused,
        ),
        (
            "skiff_wal_batches_total",
            "Durable write batches (one fsync each).",
            &m.wal_batches,
        ),
        (
            "skiff_snapshots_taken_total",
            "Snapshots taken.",
            &m.snapshots_taken,
        ),
        (
            "skiff_snapshots_installed_total",
            "Snapshots installed from the leader.",
            &m.snapshots_installed,
        ),
    ];
    for (name, help, counter) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            counter.load(Ordering::Relaxed)
        );
    }
    let micros = m.wal_batch_micros.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP skiff_wal_batch_seconds_total Time spent writing and syncing batches.\n# TYPE skiff_wal_batch_seconds_total counter\nskiff_wal_batch_seconds_total {}",
        micros as f64 / 1e6
    );
    out
}
