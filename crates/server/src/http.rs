//! HTTP on every node: `GET /status` (JSON), `GET /metrics` (Prometheus text), `GET /healthz`,
//! and the operator's `POST /admin/...` requests.

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

/// The Prometheus text exposition of the node's metrics.
pub fn render_metrics(shared: &Shared) -> String {
    shared.metrics.render()
}
