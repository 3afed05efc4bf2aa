//! The routes for demonstrations and tests, allowed only when the node runs with
//! `--allow-fault-injection` (as under `skiff local`): cut a node off from its peers, make it
//! campaign now, change the time per tick. A request naming another member (`node=`) is
//! relayed to it: the view's buttons post to the node that served the page.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{admin, relay, AppState};
use crate::driver::AdminRequest;

/// The time per tick the view may choose, in milliseconds: from fast enough for tests to slow
/// enough to follow single messages during an election.
pub const TICK_MS_RANGE: std::ops::RangeInclusive<u64> = 5..=1000;

/// Refuses a demonstration request on a node without `--allow-fault-injection`.
fn refuse_without_fault_injection(state: &AppState) -> Option<(StatusCode, String)> {
    (!state.shared.fault_injection).then(|| {
        (
            StatusCode::FORBIDDEN,
            "fault injection is off (start the node with --allow-fault-injection)\n".into(),
        )
    })
}

#[derive(Deserialize)]
pub(super) struct IsolateQuery {
    on: bool,
    /// Another member to relay the request to (the view's buttons post to their own node).
    node: Option<u64>,
}

/// Cuts the node off from its peers (or heals it): for demonstrations, only when the node
/// runs with `--allow-fault-injection`.
pub(super) async fn isolate(
    State(state): State<AppState>,
    Query(query): Query<IsolateQuery>,
) -> (StatusCode, String) {
    let me = state.shared.status().id;
    if let Some(node) = query.node.filter(|&node| node != me) {
        return relay(&state, node, &format!("/admin/isolate?on={}", query.on)).await;
    }
    if let Some(refusal) = refuse_without_fault_injection(&state) {
        return refusal;
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
    state.shared.publish(status.term, "isolation", text.clone());
    (StatusCode::OK, format!("node {} {text}\n", status.id))
}

/// Starts an election on this node now, as if its election timer had fired: for
/// demonstrations, only with `--allow-fault-injection`.
pub(super) async fn campaign(State(state): State<AppState>) -> (StatusCode, String) {
    if let Some(refusal) = refuse_without_fault_injection(&state) {
        return refusal;
    }
    admin(&state, AdminRequest::Campaign).await
}

#[derive(Deserialize)]
pub(super) struct TickQuery {
    /// Milliseconds per tick, in [`TICK_MS_RANGE`].
    ms: u64,
    /// Another member to relay the request to.
    node: Option<u64>,
}

/// `POST /admin/tick?ms=N`: changes the time per Raft tick of this node (or of `node`) while it
/// runs. Every timeout in ticks (heartbeat, election) slows down or speeds up with it.
pub(super) async fn tick(
    State(state): State<AppState>,
    Query(query): Query<TickQuery>,
) -> (StatusCode, String) {
    if !TICK_MS_RANGE.contains(&query.ms) {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "ms={}: the time per tick must be from {} to {} milliseconds\n",
                query.ms,
                TICK_MS_RANGE.start(),
                TICK_MS_RANGE.end()
            ),
        );
    }
    let me = state.shared.status().id;
    if let Some(node) = query.node.filter(|&node| node != me) {
        return relay(&state, node, &format!("/admin/tick?ms={}", query.ms)).await;
    }
    if let Some(refusal) = refuse_without_fault_injection(&state) {
        return refusal;
    }
    state.shared.set_tick(Duration::from_millis(query.ms));
    let text = format!("a tick is now {} ms", query.ms);
    tracing::warn!(node = me, tick_ms = query.ms, "{text} (fault injection)");
    state
        .shared
        .publish(state.shared.status().term, "tick", text.clone());
    (StatusCode::OK, format!("node {me}: {text}\n"))
}
