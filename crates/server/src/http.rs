//! HTTP on every node: the live cluster view (`GET /`, its script, words and style, fed by
//! `GET /events`: [`view`]), the demonstration routes (`POST /admin/isolate`, `campaign`,
//! `pre-vote`, `tick`: [`demo`]), `GET /status` (JSON), `GET /metrics` (Prometheus text), `GET /healthz`, the
//! `GET /cluster` a joining node asks ([`crate::join`]), the operator's `POST /admin/...` requests, and `POST /kv/set` for the view's write form.
//!
//! Every request that changes state is a POST, and a POST whose `Origin` is not this node's own
//! is refused ([`same_origin`]): a web page the operator visits cannot write or reconfigure the
//! cluster. Only `/events` allows any origin: the view served by one node follows the events of
//! every other node, and the stream is read-only. The view's buttons that act on another node
//! post to their own node, which relays ([`relay`]).
//!
//! With `--admin-token-file`, every request that changes state (every method but GET and HEAD;
//! with `--http-auth all`, every request), and `GET /admin/backup`, needs `Authorization: Bearer <token>` and is answered
//! 401 without it ([`require_token`]). With `--requirepass-file` and no admin token, the requests
//! that read or write keys (`/kv/set`, `/admin/backup`) are refused (403), as they would go
//! around the client password. With TLS the port is HTTPS ([`TlsListener`]).

use std::sync::Arc;

use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use skiff_kv::{Command, Reply};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::admin::UNSETTLED_PREFIX;
use crate::auth::Secret;
use crate::driver::{AdminRequest, Input, ToDriver};
use crate::httpc;
use crate::settings::HttpAuth;
use crate::shared::Shared;
use crate::tls::{Tls, TlsError};

mod demo;
mod view;

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    driver: ToDriver,
    /// How this node reaches the other nodes' HTTP ports when it relays.
    relay: httpc::Access,
    tls: Option<Arc<Tls>>,
}

/// Who may use the HTTP port.
#[derive(Clone, Default)]
pub struct HttpAccess {
    /// HTTPS with these certificates.
    pub tls: Option<Arc<Tls>>,
    /// The admin token requests must carry.
    pub token: Option<Secret>,
    /// Which requests need it.
    pub auth: HttpAuth,
    /// Whether clients need a password (`--requirepass-file`): then the requests that read or
    /// write keys are refused unless an admin token guards them ([`KEY_PATHS`]).
    pub client_password: bool,
    /// How to reach the other nodes' HTTP ports (relays).
    pub relay: httpc::Access,
}

/// Serves HTTP until the process ends.
pub async fn serve_http(
    listener: TcpListener,
    shared: Arc<Shared>,
    driver: ToDriver,
    allowed_hosts: Vec<String>,
    access: HttpAccess,
) {
    let allowed_hosts: Arc<[String]> = allowed_hosts
        .into_iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let app = Router::new()
        .route("/", get(view::page))
        .route("/view.js", get(view::script))
        .route("/i18n.js", get(view::strings))
        .route("/view.css", get(view::style))
        .route(
            "/events",
            get(view::events).layer(axum::middleware::map_response(allow_any_origin)),
        )
        .route("/kv/set", post(kv_set))
        .route("/admin/isolate", post(demo::isolate))
        .route("/admin/campaign", post(demo::campaign))
        .route("/admin/tick", post(demo::tick))
        .route("/admin/pre-vote", post(demo::pre_vote))
        .route("/status", get(status))
        .route("/cluster", get(cluster))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/admin/transfer-leader", post(transfer_leader))
        .route("/admin/snapshot", post(snapshot))
        .route("/admin/add-learner", post(add_learner))
        .route("/admin/promote", post(promote))
        .route("/admin/remove", post(remove))
        .route("/admin/reload-tls", post(reload_tls))
        .route(crate::backup::PATH, get(backup))
        .with_state(AppState {
            shared: shared.clone(),
            driver,
            relay: access.relay.clone(),
            tls: access.tls.clone(),
        })
        .layer(axum::middleware::from_fn_with_state(
            allowed_hosts,
            refuse_cross_origin_writes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(TokenGuard {
                token: access.token.clone(),
                auth: access.auth,
                client_password: access.client_password,
                shared: shared.clone(),
            }),
            require_token,
        ))
        .layer(axum::middleware::map_response(no_sniffing));
    let served = match access.tls {
        None => axum::serve(listener, app).await,
        Some(tls) => axum::serve(TlsListener::start(listener, tls, shared), app).await,
    };
    if let Err(error) = served {
        tracing::error!(%error, "the HTTP server stopped");
    }
}

/// Handshakes being completed at once on the HTTPS port; more connections wait in the
/// kernel's backlog.
const MAX_HANDSHAKES: usize = 256;

/// The HTTPS port for axum: a task accepts TCP connections and completes each handshake in a
/// task of its own (within [`crate::tls::HANDSHAKE_TIMEOUT`]), so a slow client holds up no
/// other; finished connections queue for the server.
struct TlsListener {
    finished: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    local: std::io::Result<std::net::SocketAddr>,
}

impl TlsListener {
    fn start(listener: TcpListener, tls: Arc<Tls>, shared: Arc<Shared>) -> TlsListener {
        let local = listener.local_addr();
        let (done, finished) = tokio::sync::mpsc::channel(64);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, addr) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accepting an HTTP connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (tls, shared, done) = (tls.clone(), shared.clone(), done.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tls.accept(stream, addr, "http").await {
                        Some(stream) => {
                            let _ = done.send((stream, addr)).await;
                        }
                        None => shared.metrics.error("tls_handshake"),
                    }
                });
            }
        });
        TlsListener { finished, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.finished.recv().await {
            Some(accepted) => accepted,
            // The accepting task is gone only if the runtime is stopping.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.local {
            Ok(addr) => Ok(*addr),
            Err(error) => Err(std::io::Error::new(error.kind(), error.to_string())),
        }
    }
}

/// What [`require_token`] checks against.
struct TokenGuard {
    token: Option<Secret>,
    auth: HttpAuth,
    client_password: bool,
    shared: Arc<Shared>,
}

/// The requests that read or write keys: with a client password they would go around it, so
/// they need the admin token, and are refused (403) when none is configured.
const KEY_PATHS: [&str; 2] = ["/kv/set", crate::backup::PATH];

/// With an admin token set: a request that needs it (see [`HttpAccess::auth`]) and does not
/// carry it as `Authorization: Bearer <token>` is answered 401 and counted.
async fn require_token(
    State(guard): State<Arc<TokenGuard>>,
    request: Request,
    next: Next,
) -> Response {
    let TokenGuard {
        token,
        auth,
        client_password,
        shared,
    } = &*guard;
    let touches_keys = KEY_PATHS.contains(&request.uri().path());
    let Some(token) = token else {
        if *client_password && touches_keys {
            shared.metrics.error("http_auth_failed");
            return (
                StatusCode::FORBIDDEN,
                "refused: clients need a password on this node, so this request needs the admin token; configure --admin-token-file\n",
            )
                .into_response();
        }
        return next.run(request).await;
    };
    let changes_state = !matches!(*request.method(), Method::GET | Method::HEAD);
    // A backup changes nothing but holds every key and value.
    let sensitive = touches_keys;
    if (changes_state || sensitive || *auth == HttpAuth::All)
        && !token.authorizes(
            request
                .headers()
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        )
    {
        shared.metrics.error("http_auth_failed");
        tracing::debug!(path = %request.uri().path(), "refused an HTTP request without the admin token");
        let mut response = (
            StatusCode::UNAUTHORIZED,
            "refused: this request needs the admin token (Authorization: Bearer <token>)\n",
        )
            .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"skiff\""),
        );
        return response;
    }
    next.run(request).await
}

/// `POST /admin/reload-tls`: re-reads the certificate, key and CA files; new connections use
/// them, existing ones finish on the old.
async fn reload_tls(State(state): State<AppState>) -> (StatusCode, String) {
    let Some(tls) = &state.tls else {
        return (
            StatusCode::CONFLICT,
            "this node does not use TLS\n".to_string(),
        );
    };
    match tls.reload_off_runtime().await {
        Ok(()) => {
            tracing::info!("reloaded the TLS certificates on request");
            (
                StatusCode::OK,
                "reloaded the TLS certificates\n".to_string(),
            )
        }
        Err(busy @ TlsError::ReloadUnderWay) => (StatusCode::CONFLICT, format!("{busy}\n")),
        Err(error) => {
            tracing::warn!(%error, "reloading the TLS certificates failed; the old ones stay");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reloading failed, the old certificates stay: {error}\n"),
            )
        }
    }
}

/// Lets the view served by one node follow another's `/events`: a read-only stream of what
/// `/status` shows, so any origin may read it.
async fn allow_any_origin(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// Browsers take every response for the type it declares, never a guess from its bytes.
async fn no_sniffing(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Refuses (403) every request but GET and HEAD that a browser sent from another origin. No GET
/// changes state here, so a cross-site page can still only read what `/events` shows.
async fn refuse_cross_origin_writes(
    State(allowed_hosts): State<Arc<[String]>>,
    request: Request,
    next: Next,
) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        if let Err(why) = same_origin(request.headers(), &allowed_hosts) {
            tracing::warn!(path = %request.uri().path(), %why, "refused a cross-origin request");
            return (StatusCode::FORBIDDEN, format!("refused: {why}\n")).into_response();
        }
    }
    next.run(request).await
}

/// Whether a request comes from a page of this very node, or from no page at all. Browsers
/// send `Origin` with every POST (and `Sec-Fetch-Site`); curl and `skiff admin` send neither,
/// and are let through. A page's host must also be one the node answers to: an IP address,
/// `localhost`, or a name in `allowed_hosts` — otherwise a page whose name was rebound to the
/// node's address (DNS rebinding) would pass as the node's own.
pub(crate) fn same_origin(headers: &HeaderMap, allowed_hosts: &[String]) -> Result<(), String> {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("(not text)").to_ascii_lowercase())
    };
    if text(header::HeaderName::from_static("sec-fetch-site")).as_deref() == Some("cross-site") {
        return Err("the request comes from another site".into());
    }
    let Some(origin) = text(header::ORIGIN) else {
        return Ok(());
    };
    let host = text(header::HOST).ok_or("the request names no Host")?;
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    if authority != Some(host.as_str()) {
        return Err(format!(
            "the request comes from origin {origin}, not from this node ({host})"
        ));
    }
    let name = host_name(&host);
    let is_address = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok();
    if !is_address && name != "localhost" && !allowed_hosts.iter().any(|h| h == name) {
        return Err(format!(
            "the page's host {name} is not an address of this node; to act from a page opened by that name, start the node with --http-allowed-hosts {name}"
        ));
    }
    Ok(())
}

/// The name part of a `Host` header: `node-1.example` of `node-1.example:7201`, `[::1]` of
/// `[::1]:7201`.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(name, _)| &host[..=name.len()]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
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
        .try_send(Input::Client {
            command,
            reply,
            session: None,
        })
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

/// Sends `POST path` to member `node`'s HTTP address, as a request of this node's own: the
/// view's buttons for other nodes go through the node that served it, which is the only one
/// that accepts the page's origin. The address is what the member advertised, so only a plain
/// `host:port` is used.
async fn relay(state: &AppState, node: u64, path: &str) -> (StatusCode, String) {
    let status = state.shared.status();
    let Some(addr) = status
        .members
        .iter()
        .find(|m| m.id == node)
        .and_then(|m| m.http_addr.clone())
    else {
        return (
            StatusCode::NOT_FOUND,
            format!("node {node} is not a member with a known HTTP address\n"),
        );
    };
    if !is_host_port(&addr) {
        return (
            StatusCode::BAD_GATEWAY,
            format!("node {node} advertised an HTTP address that is not host:port\n"),
        );
    }
    match httpc::request(&state.relay, &addr, "POST", path).await {
        Ok((code, body)) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY),
            body,
        ),
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            format!("node {node} did not answer: {error:#}\n"),
        ),
    }
}

/// `host:port` with nothing that could end the request line or a header.
fn is_host_port(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        && port.parse::<u16>().is_ok_and(|p| p != 0)
}

async fn status(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.shared.status())
}

/// What a node joining through this one needs (`skiff serve --join`): the cluster id, the
/// founding membership and the members' peer addresses. Bounded by the membership.
async fn cluster(State(state): State<AppState>) -> impl IntoResponse {
    let status = state.shared.status();
    Json(crate::join::ClusterAnswer {
        cluster_id: status.cluster_id,
        initial_cluster: state.shared.initial_cluster.clone(),
        members: status
            .members
            .into_iter()
            .map(|m| crate::join::ClusterMember {
                id: m.id,
                kind: m.kind,
                peer_addr: m.peer_addr,
            })
            .collect(),
        leader: status.leader,
    })
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
    /// Set on a request one node relays to the leader, so that it is relayed once at most.
    relayed: Option<bool>,
}

/// Hands leadership to `to`. A node that is not the leader relays the request to the one it
/// knows, once: the view's "Make leader" button posts to the node that served it.
async fn transfer_leader(
    State(state): State<AppState>,
    Query(query): Query<TransferQuery>,
) -> impl IntoResponse {
    let status = state.shared.status();
    if status.role != "leader" && query.relayed != Some(true) {
        if let Some(leader) = status.leader {
            let path = format!("/admin/transfer-leader?to={}&relayed=true", query.to);
            return relay(&state, leader, &path).await;
        }
    }
    admin(&state, AdminRequest::TransferLeader(query.to)).await
}

#[derive(Deserialize)]
struct MemberQuery {
    id: u64,
    peer_addr: Option<String>,
    /// `1`/`true`: change the membership even if a majority of the new voters does not answer,
    /// or (for a removal) fewer than three voters remain.
    force: Option<String>,
}

impl MemberQuery {
    fn force(&self) -> Result<bool, (StatusCode, String)> {
        match self.force.as_deref() {
            None | Some("0" | "false" | "no") => Ok(false),
            Some("" | "1" | "true" | "yes") => Ok(true),
            Some(other) => Err((
                StatusCode::BAD_REQUEST,
                format!("force={other:?}: use force=1 or force=true\n"),
            )),
        }
    }
}

async fn add_learner(
    State(state): State<AppState>,
    Query(query): Query<MemberQuery>,
) -> impl IntoResponse {
    let force = match query.force() {
        Ok(force) => force,
        Err(refusal) => return refusal,
    };
    let Some(peer_addr) = query.peer_addr.filter(|a| !a.trim().is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            "peer_addr is required: the address the new node gave as --listen-peer\n".to_string(),
        );
    };
    admin(
        &state,
        AdminRequest::AddLearner {
            id: query.id,
            peer_addr,
            force,
        },
    )
    .await
}

async fn promote(
    State(state): State<AppState>,
    Query(query): Query<MemberQuery>,
) -> impl IntoResponse {
    let force = match query.force() {
        Ok(force) => force,
        Err(refusal) => return refusal,
    };
    admin(
        &state,
        AdminRequest::Promote {
            id: query.id,
            force,
        },
    )
    .await
}

async fn remove(
    State(state): State<AppState>,
    Query(query): Query<MemberQuery>,
) -> impl IntoResponse {
    let force = match query.force() {
        Ok(force) => force,
        Err(refusal) => return refusal,
    };
    admin(
        &state,
        AdminRequest::Remove {
            id: query.id,
            force,
        },
    )
    .await
}

/// `GET /admin/backup`: the store as a backup file, at a point after every write acknowledged
/// before the request.
async fn backup(State(state): State<AppState>) -> Response {
    crate::backup::serve(&state.driver).await
}

async fn snapshot(State(state): State<AppState>) -> impl IntoResponse {
    admin(&state, AdminRequest::Snapshot).await
}

/// How long a membership change may wait for the leader to hear a full heartbeat round.
const UNSETTLED_RETRY: Duration = Duration::from_secs(2);

async fn admin(state: &AppState, request: AdminRequest) -> (StatusCode, String) {
    let deadline = tokio::time::Instant::now() + UNSETTLED_RETRY;
    loop {
        let answer = ask_driver(state, request.clone()).await;
        let unsettled = answer.0 == StatusCode::CONFLICT && answer.1.starts_with(UNSETTLED_PREFIX);
        if !unsettled || tokio::time::Instant::now() >= deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ask_driver(state: &AppState, request: AdminRequest) -> (StatusCode, String) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    #[test]
    fn a_request_without_origin_is_a_tool_and_passes() {
        assert_eq!(
            same_origin(&headers(&[("host", "127.0.0.1:7201")]), &[]),
            Ok(())
        );
    }

    #[test]
    fn a_page_of_this_node_passes() {
        let same = headers(&[
            ("host", "127.0.0.1:7201"),
            ("origin", "http://127.0.0.1:7201"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(same_origin(&same, &[]), Ok(()));
    }

    #[test]
    fn a_page_of_another_site_or_node_is_refused() {
        for pairs in [
            &[
                ("host", "127.0.0.1:7201"),
                ("origin", "http://evil.example"),
            ][..],
            &[
                ("host", "127.0.0.1:7201"),
                ("origin", "http://127.0.0.1:7202"),
            ],
            &[("host", "127.0.0.1:7201"), ("origin", "null")],
            &[("origin", "http://127.0.0.1:7201")],
            &[("host", "127.0.0.1:7201"), ("sec-fetch-site", "cross-site")],
        ] {
            assert!(same_origin(&headers(pairs), &[]).is_err(), "{pairs:?}");
        }
    }

    #[test]
    fn a_page_by_a_name_the_node_was_not_given_is_refused_as_dns_rebinding() {
        let rebound = headers(&[
            ("host", "evil.example:7201"),
            ("origin", "http://evil.example:7201"),
            ("sec-fetch-site", "same-origin"),
        ]);
        let error = same_origin(&rebound, &[]).expect_err("a rebound name");
        assert!(
            error.contains("--http-allowed-hosts evil.example"),
            "{error}"
        );
        // A name the operator gave the node passes, as do addresses and localhost.
        assert_eq!(same_origin(&rebound, &["evil.example".to_string()]), Ok(()));
        for host in ["localhost:7201", "[::1]:7201", "10.0.0.1:7201"] {
            let page = headers(&[("host", host), ("origin", &format!("http://{host}"))]);
            assert_eq!(same_origin(&page, &[]), Ok(()), "{host}");
        }
    }

    #[test]
    fn only_plain_host_port_addresses_are_relayed_to() {
        for good in ["127.0.0.1:7202", "node-2.example:80", "[::1]:7202"] {
            assert!(is_host_port(good), "{good}");
        }
        for bad in [
            "127.0.0.1",
            "127.0.0.1:0",
            "a:1/x",
            "a b:1",
            "a\r\nX-Evil: 1:80",
            "<img src=x onerror=alert(1)>:80",
            ":80",
        ] {
            assert!(!is_host_port(bad), "{bad:?}");
        }
    }
}
