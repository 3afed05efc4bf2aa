//! HTTP on every node: the live cluster view (`GET /`, fed by `GET /events`), `GET /status`
//! (JSON), `GET /metrics` (Prometheus text), `GET /healthz`, the operator's `POST /admin/...`
//! requests, and `POST /kv/set` for the view's write form.
//!
//! Every response allows any origin: the view served by one node subscribes to the events of
//! every other node.

use crossbeam_channel::Sender;
use std::sync::Arc;

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use skiff_kv::{Command, Reply};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;

use crate::driver::{AdminRequest, Input};
use crate::shared::Shared;

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    driver: Sender<Input>,
}

/// Serves HTTP until the process ends.
pub async fn serve_http(listener: TcpListener, shared: Arc<Shared>, driver: Sender<Input>) {
    let app = Router::new()
        .route("/", get(view))
        .route("/events", get(events))
        .route("/kv/set", post(kv_set))
        .route("/admin/isolate", post(isolate))
        .route("/admin/campaign", post(campaign))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/admin/transfer-leader", post(transfer_leader))
        .route("/admin/snapshot", post(snapshot))
        .route("/admin/add-learner", post(add_learner))
        .route("/admin/promote", post(promote))
        .route("/admin/remove", post(remove))
        .with_state(AppState { shared, driver })
        .layer(axum::middleware::map_response(allow_any_origin));
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the HTTP server stopped");
    }
}

/// Lets the live view of one node (or `skiff local`'s page) call another's API.
pub(crate) async fn allow_any_origin(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// The live cluster view: one page, shipped inside the binary.
async fn view() -> impl IntoResponse {
    Html(include_str!("../web/index.html"))
}

/// Server-Sent Events: the node's status every 200 ms (`status`) and each Raft event as it
/// happens (`raft`). A subscriber too slow for the bounded event channel gets `lagged`.
async fn events(State(state): State<AppState>) -> impl IntoResponse {
    let receiver = state.shared.events.subscribe();
    let ticker = tokio::time::interval(Duration::from_millis(200));
    let first = true;
    let stream = futures_util::stream::unfold(
        (receiver, ticker, state.shared, first),
        |(mut receiver, mut ticker, shared, first)| async move {
            let event = tokio::select! {
                _ = ticker.tick() => Event::default()
                    .event("status")
                    .json_data(shared.status())
                    .ok()?,
                received = receiver.recv() => match received {
                    Ok(json) => Event::default().event("raft").data(json),
                    Err(RecvError::Lagged(missed)) => {
                        Event::default().event("lagged").data(missed.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            // Reconnect quickly to a node that was restarted.
            let event = if first {
                event.retry(Duration::from_millis(500))
            } else {
                event
            };
            Some((
                Ok::<_, Infallible>(event),
                (receiver, ticker, shared, false),
            ))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
struct SetQuery {
    key: String,
    value: String,
}

/// `SET key value` through this node, as a Redis client's would go.
async fn kv_set(
    State(state): State<AppState>,
    Query(query): Query<SetQuery>,
) -> (StatusCode, String) {
    let (reply, receiver) = oneshot::channel();
    let command = Command::Set {
        key: query.key.clone().into_bytes(),
        value: query.value.into_bytes(),
        condition: Default::default(),
    };
    if state
        .driver
        .try_send(Input::Client { command, reply })
        .is_err()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is too busy\n".into(),
        );
    }
    match receiver.await {
        Ok(Reply::Error(error)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")),
        Ok(_) => (StatusCode::OK, format!("SET {} committed\n", query.key)),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is shutting down\n".into(),
        ),
    }
}

#[derive(Deserialize)]
struct IsolateQuery {
    on: bool,
}

/// Cuts the node off from its peers (or heals it): for demonstrations, only when the node
/// runs with `--allow-fault-injection`.
async fn isolate(
    State(state): State<AppState>,
    Query(query): Query<IsolateQuery>,
) -> (StatusCode, String) {
    if !state.shared.fault_injection {
        return (
            StatusCode::FORBIDDEN,
            "fault injection is off (start the node with --allow-fault-injection)\n".into(),
        );
    }
    state
        .shared
        .isolated
        .store(query.on, std::sync::atomic::Ordering::Relaxed);
    let status = state.shared.status();
    let text = if query.on {
        "cut off from its peers".to_string()
    } else {
        "reconnected to its peers".to_string()
    };
    tracing::warn!(
        node = status.id,
        isolated = query.on,
        "{text} (fault injection)"
    );
    state.shared.publish(status.term, "fault", text.clone());
    (StatusCode::OK, format!("node {} {text}\n", status.id))
}

/// Starts an election on this node now, as if its election timer had fired: for
/// demonstrations, only with `--allow-fault-injection`.
async fn campaign(State(state): State<AppState>) -> (StatusCode, String) {
    if !state.shared.fault_injection {
        return (
            StatusCode::FORBIDDEN,
            "fault injection is off (start the node with --allow-fault-injection)\n".into(),
        );
    }
    admin(&state, AdminRequest::Campaign).await
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
        state.shared.metrics.render(),
    )
}
