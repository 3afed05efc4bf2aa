//! The live cluster view: the page, its script, words and style (shipped inside the binary), and
//! `GET /events`, the stream that feeds it.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;

/// The live cluster view: one page, with its script and style in files of their own so that
/// the page's policy allows no inline script at all.
pub(super) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, VIEW_POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        include_str!("../../web/index.html"),
    )
}

/// Scripts and styles only from this node's own files; connections to any HTTP node (the view
/// follows every member's `/events`, and `skiff local`'s control API); no frames, plugins or
/// form targets elsewhere.
const VIEW_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self' http: https:; img-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'; object-src 'none'";

pub(super) async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../web/view.js"),
    )
}

/// The view's words, one table per language.
pub(super) async fn strings() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../web/i18n.js"),
    )
}

pub(super) async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../web/view.css"),
    )
}

/// What the stream sends next.
enum Next {
    /// The history, first (a view opened late shows what happened before).
    History(String),
    /// Then live events and statuses.
    Live,
}

/// Server-Sent Events: first the node's last events (`history`: `{"dropped":N,"events":[…]}`,
/// at most [`crate::history::MAX_HISTORY_EVENTS`]), then the node's status every 200 ms
/// (`status`) and each Raft event as it happens (`raft`), none of them twice. A subscriber
/// too slow for the bounded event channel gets `lagged`.
pub(super) async fn events(State(state): State<AppState>) -> impl IntoResponse {
    let (receiver, history) = state.shared.subscribe_with_history();
    let ticker = tokio::time::interval(Duration::from_millis(200));
    let stream = futures_util::stream::unfold(
        (receiver, ticker, state.shared, Next::History(history)),
        |(mut receiver, mut ticker, shared, next)| async move {
            let event = match next {
                // Reconnect quickly to a node that was restarted.
                Next::History(history) => Event::default()
                    .event("history")
                    .data(history)
                    .retry(Duration::from_millis(500)),
                Next::Live => tokio::select! {
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
                },
            };
            Some((
                Ok::<_, Infallible>(event),
                (receiver, ticker, shared, Next::Live),
            ))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
