//! The routes for demonstrations and tests, allowed only when the node runs with
//! `--allow-fault-injection` (as under `skiff local`): cut a node off from its peers, make it
//! campaign now, turn its PreVote off or on, change the time per tick. A request naming
//! another member (`node=`) is relayed to it: the view's buttons post to the node that served
//! the page.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{admin, relay, AppState};
use crate::driver::AdminRequest;

/// The time per tick the view may choose, in milliseconds: from fast enough for tests to slow
/// enough to follow single messages during an election.
pub const TICK_MS_RANGE: std::ops::RangeInclusive<u64> = 5..=1000;

/// The answer to a demonstration request that is not for this node to carry out: refused on a
/// node without `--allow-fault-injection` (before anything is relayed, so such a node never
/// carries its relay token to a peer for one), relayed to member `node` when it names another
/// (as `path`). `None`: carry it out here.
async fn elsewhere_or_refused(
    state: &AppState,
    node: Option<u64>,
    path: &str,
) -> Option<(StatusCode, String)> {
    if !state.shared.fault_injection {
        return Some((
            StatusCode::FORBIDDEN,
            "fault injection is off (start the node with --allow-fault-injection)\n".into(),
        ));
    }
    let me = state.shared.status().id;
    let node = node.filter(|&node| node != me)?;
    Some(relay(state, node, path).await)
}

/// A demonstration switched on or off (`?on=true|false`), here or at another member.
#[derive(Deserialize)]
pub(super) struct SwitchQuery {
    on: bool,
    /// Another member to relay the request to (the view's buttons post to their own node).
    node: Option<u64>,
}

/// Cuts the node off from its peers (or heals it): for demonstrations, only when the node
/// runs with `--allow-fault-injection`.
pub(super) async fn isolate(
    State(state): State<AppState>,
    Query(query): Query<SwitchQuery>,
) -> (StatusCode, String) {
    if let Some(answer) = elsewhere_or_refused(
        &state,
        query.node,
        &format!("/admin/isolate?on={}", query.on),
    )
    .await
    {
        return answer;
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

#[derive(Deserialize)]
pub(super) struct CampaignQuery {
    /// Another member to relay the request to.
    node: Option<u64>,
}

/// Starts an election on this node now, as if its election timer had fired: for
/// demonstrations, only with `--allow-fault-injection`.
pub(super) async fn campaign(
    State(state): State<AppState>,
    Query(query): Query<CampaignQuery>,
) -> (StatusCode, String) {
    if let Some(answer) = elsewhere_or_refused(&state, query.node, "/admin/campaign").await {
        return answer;
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
    if let Some(answer) =
        elsewhere_or_refused(&state, query.node, &format!("/admin/tick?ms={}", query.ms)).await
    {
        return answer;
    }
    state.shared.set_tick(Duration::from_millis(query.ms));
    let status = state.shared.status();
    let text = format!("a tick is now {} ms", query.ms);
    tracing::warn!(
        node = status.id,
        tick_ms = query.ms,
        "{text} (fault injection)"
    );
    state.shared.publish(status.term, "tick", text.clone());
    (StatusCode::OK, format!("node {}: {text}\n", status.id))
}

/// `POST /admin/pre-vote?on=false`: this node (or `node`) campaigns without asking for
/// pre-votes first (or with, again), to show the disruption PreVote prevents: a node cut off
/// raises its term at every timeout, and on rejoining deposes a healthy leader (thesis §4.2.3,
/// §9.6).
pub(super) async fn pre_vote(
    State(state): State<AppState>,
    Query(query): Query<SwitchQuery>,
) -> (StatusCode, String) {
    if let Some(answer) = elsewhere_or_refused(
        &state,
        query.node,
        &format!("/admin/pre-vote?on={}", query.on),
    )
    .await
    {
        return answer;
    }
    admin(&state, AdminRequest::PreVote(query.on)).await
}
