//! Redis-protocol clients: one task pair per connection. The reader parses requests and hands
//! commands to the driver without waiting for their replies (pipelining); the writer sends
//! the replies back in request order (or lets the driver write the one it waits for itself,
//! [`direct`]).
//!
//! Commands take effect in the order the client sent them (Redis's contract, which pipelining
//! client libraries rely on). Reads may be in flight together, and so may writes (the leader
//! appends a connection's writes in order, and a follower forwards them in order on one
//! connection); but a read waits for every earlier write of its connection to be answered
//! before it is asked for, and a write for every earlier read, so a read sees the writes sent
//! before it and no write sent after it.
//!
//! Memory: one request is at most `max_request_bytes`; a client's unsent replies at most
//! `max_output_bytes` (as Redis's `client-output-buffer-limit`: a client that does not read
//! is disconnected); and the input and output buffers of all clients together at most
//! `max_memory_bytes` (as Redis's `maxmemory-clients`): the client whose buffers would pass
//! it is disconnected.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use skiff_kv::Reply;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::auth::{self, AuthOutcome, Secret};
use crate::commands::{self, ClientRequest};
use crate::driver::{Input, ToDriver};
use crate::resp::{self, Limits, RequestParser};
use crate::shared::{NodeStatus, Shared};

pub use direct::{DirectReply, ReplyTo};

mod connection;
mod direct;
mod registry;
mod session;
mod subscriber;
mod transaction;
mod writer;

/// Replies a connection may owe at once; a client pipelining more waits for the first ones.
const MAX_PIPELINE: usize = 1024;
/// What one buffer may hold whatever the other clients hold: a client within it is never
/// disconnected by the shared memory limit.
const CHARGE_ALLOWANCE: usize = 64 * 1024;
/// How long a client may take none of the replies waiting for it before it is disconnected.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Redis's answer to a command before `AUTH` when a password is required.
const NOAUTH: &str = "NOAUTH Authentication required.";
/// Redis's answer to a wrong password (or a user other than `default`).
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Who may use the client port: TLS and the password, each when configured.
#[derive(Clone, Default)]
pub struct ClientAccess {
    /// Connections are TLS, with these certificates.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// Clients must `AUTH` with this password first.
    pub password: Option<Secret>,
}

/// How the client port treats its connections.
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    /// What one request may be.
    pub limits: Limits,
    /// Connections served at once; one more is told so and closed.
    pub max_clients: usize,
    /// Replies one client may leave unread before it is disconnected.
    pub max_output_bytes: usize,
    /// The largest reply a read may build (the state machine's `max_reply_bytes`).
    pub max_reply_bytes: usize,
    /// The largest value the store holds (the state machine's `max_value_bytes`).
    pub max_value_bytes: usize,
    /// Input and output buffers of all clients together.
    pub max_memory_bytes: usize,
    /// A client that sends nothing for this long is disconnected (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// The largest write, its arguments added up, that fits in one log entry (the core's
    /// `max_message_bytes`); a larger one is refused here rather than forwarded to a leader
    /// that would refuse it.
    pub max_write_bytes: usize,
}

impl Default for ClientOptions {
    /// 10,000 clients, 64 MiB of unread replies each, 512 MiB of buffers in all, no idle
    /// timeout.
    fn default() -> Self {
        ClientOptions {
            limits: Limits::default(),
            max_clients: 10_000,
            max_output_bytes: 64 * 1024 * 1024,
            max_reply_bytes: 16 * 1024 * 1024,
            max_value_bytes: 1024 * 1024,
            max_memory_bytes: 512 * 1024 * 1024,
            idle_timeout: None,
            max_write_bytes: 1024 * 1024,
        }
    }
}

/// The bytes all clients' buffers hold, against their shared limit.
#[derive(Debug)]
struct MemoryBudget {
    used: AtomicUsize,
    limit: usize,
}

/// One buffer's share of the [`MemoryBudget`], given back when it is dropped.
struct Charge<'a> {
    budget: &'a MemoryBudget,
    held: usize,
}

impl<'a> Charge<'a> {
    fn new(budget: &'a MemoryBudget) -> Charge<'a> {
        Charge { budget, held: 0 }
    }

    /// Records that the buffer now holds `bytes`; false if it grew past a small allowance
    /// while all buffers together are over the limit. A buffer that did not grow, or holds no
    /// more than [`CHARGE_ALLOWANCE`], is never the one refused: the clients that take the
    /// memory are the ones cut off, not a small client that happens to come next.
    fn hold(&mut self, bytes: usize) -> bool {
        if bytes == self.held {
            return true;
        }
        let grew = bytes > self.held;
        let used = if grew {
            self.budget
                .used
                .fetch_add(bytes - self.held, Ordering::Relaxed)
                + (bytes - self.held)
        } else {
            self.budget
                .used
                .fetch_sub(self.held - bytes, Ordering::Relaxed)
                - (self.held - bytes)
        };
        self.held = bytes;
        !grew || bytes <= CHARGE_ALLOWANCE || used <= self.budget.limit
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::Relaxed);
    }
}

/// A reply owed to the client, with the bytes of the connection's output it was reserved.
struct Queued {
    owed: Owed,
    reserved: usize,
}

/// A reply owed to the client, in request order.
enum Owed {
    /// Known at once.
    Now(Reply),
    /// A simple-string reply (`+PONG`).
    Simple(&'static str),
    /// Coming from the driver.
    Later(oneshot::Receiver<Reply>),
    /// Coming from the driver, which may write it to the socket itself ([`direct`]).
    Direct(direct::Pending),
    /// The part of a reply the driver wrote that the socket did not take.
    Written(Vec<u8>),
    /// Reply, then close the connection.
    Close(Reply),
    /// From here on, write what this mailbox holds too: the connection subscribed.
    Subscribed(Arc<crate::pubsub::Mailbox>),
    /// Write what the mailbox still holds, then no more from it: the connection left
    /// subscribed mode.
    Unsubscribed,
}

/// What a command does to the store, for ordering a connection's commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Read,
    Write,
}

/// How many of a connection's driver requests the writer has received replies for, and how
/// many bytes of output the replies still owed may take at most.
#[derive(Default)]
struct Answered {
    count: AtomicU64,
    /// The worst case of every reply queued and not yet taken by the writer. Replies are
    /// built by the driver before the writer can count them, so this reservation, made
    /// before a request is sent, is what bounds them.
    reserved: AtomicUsize,
    changed: Notify,
    /// The cluster forgot the connection's session: its next write starts a new one.
    session_lost: std::sync::atomic::AtomicBool,
}

impl Answered {
    fn one_more(&self) {
        self.count.fetch_add(1, Ordering::Release);
        self.changed.notify_one();
    }

    /// Waits until `submitted` requests have been answered.
    async fn wait_for(&self, submitted: u64) {
        while self.count.load(Ordering::Acquire) < submitted {
            self.changed.notified().await;
        }
    }

    /// Reserves `bytes` of output for a reply, waiting while the replies already owed could
    /// fill `limit` (a reply larger than the limit alone still goes, once nothing else is
    /// owed).
    async fn reserve(&self, bytes: usize, limit: usize) {
        loop {
            let reserved = self.reserved.load(Ordering::Acquire);
            if reserved == 0 || reserved.saturating_add(bytes) <= limit {
                self.reserved.fetch_add(bytes, Ordering::AcqRel);
                return;
            }
            self.changed.notified().await;
        }
    }

    /// The writer took a reply: its reservation is free again.
    fn release(&self, bytes: usize) {
        self.reserved.fetch_sub(bytes, Ordering::AcqRel);
        self.changed.notify_one();
    }
}

/// The most bytes of RESP the reply to `command` can take: a value for `GET` (and the
/// commands that answer a value: `GETEX`, `GETDEL`, `SET … GET`, `GETSET`), each key's value
/// for `MGET` (at most the reply limit), its commands' for `EXEC`, a short answer for
/// everything else.
fn worst_reply_bytes(command: &skiff_kv::Command, options: &ClientOptions) -> usize {
    const SHORT: usize = 256;
    let value = options.max_value_bytes.saturating_add(32);
    match command {
        skiff_kv::Command::Get { .. }
        | skiff_kv::Command::GetEx { .. }
        | skiff_kv::Command::GetDel { .. }
        | skiff_kv::Command::SetWith { .. }
        | skiff_kv::Command::GetRange { .. }
        | skiff_kv::Command::IncrByFloat { .. }
        | skiff_kv::Command::HGet { .. }
        | skiff_kv::Command::HIncrByFloat { .. } => value,
        // Listings the state machine bounds by max_reply_bytes, headers included.
        skiff_kv::Command::HMGet { .. }
        | skiff_kv::Command::HGetAll { .. }
        | skiff_kv::Command::HKeys { .. }
        | skiff_kv::Command::HVals { .. }
        | skiff_kv::Command::Keys { .. }
        | skiff_kv::Command::Scan { .. }
        | skiff_kv::Command::HScan { .. } => options.max_reply_bytes.saturating_add(SHORT),
        skiff_kv::Command::Exec(transaction) => {
            transaction::worst_reply_bytes(transaction, options, SHORT)
        }
        skiff_kv::Command::MGet { keys } => keys
            .len()
            .saturating_mul(value)
            .min(
                options
                    .max_reply_bytes
                    .saturating_add(keys.len().saturating_mul(32)),
            )
            .saturating_add(SHORT),
        _ => SHORT,
    }
}

/// Accepts clients, at most `max_clients` at once; one more is told so and closed.
pub async fn serve_clients(
    listener: TcpListener,
    driver: ToDriver,
    shared: Arc<Shared>,
    options: ClientOptions,
    access: ClientAccess,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_clients));
    let budget = Arc::new(MemoryBudget {
        used: AtomicUsize::new(0),
        limit: options.max_memory_bytes,
    });
    let registry = Arc::new(registry::Registry::default());
    loop {
        let (mut stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a client failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            shared.metrics.error("max_clients");
            if access.tls.is_some() {
                // Plain text means nothing to a TLS client: it is closed.
                continue;
            }
            tokio::spawn(async move {
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
            });
            continue;
        };
        let driver = driver.clone();
        let shared = shared.clone();
        let budget = budget.clone();
        let access = access.clone();
        let client = registry.register(addr, stream.local_addr().ok());
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            let lane = Arc::new(direct::ReplyLane::default());
            let connection = Connection {
                lane: &lane,
                client: &client,
                driver: &driver,
                shared: &shared,
                options: &options,
                budget: &budget,
                addr,
                password: access.password.as_ref(),
            };
            shared.metrics.client_connections.inc();
            match &access.tls {
                None => match shared_with_driver(stream, &lane) {
                    Ok(stream) => {
                        let (reader, writer) = stream.into_split();
                        connection.serve(reader, writer).await;
                    }
                    Err(error) => {
                        tracing::warn!(client = %addr, %error, "could not move a client's socket")
                    }
                },
                Some(tls) => match tls.accept(stream, addr, "client").await {
                    Some(stream) => {
                        let (reader, writer) = tokio::io::split(stream);
                        connection.serve(reader, writer).await;
                    }
                    None => shared.metrics.error("tls_handshake"),
                },
            }
            shared.metrics.client_connections.dec();
            tracing::debug!(client = %addr, "client disconnected");
        });
    }
}

/// Gives the driver a handle on a plain connection's socket (the same socket, another
/// descriptor), so that it can write replies itself ([`direct`]); without a descriptor to
/// spare, the connection is served without one.
fn shared_with_driver(
    stream: tokio::net::TcpStream,
    lane: &direct::ReplyLane,
) -> std::io::Result<tokio::net::TcpStream> {
    let std = stream.into_std()?;
    // Kept non-blocking whatever the runtime leaves: the driver must never wait on it.
    std.set_nonblocking(true)?;
    if let Ok(handle) = std.try_clone() {
        lane.attach(handle);
    }
    tokio::net::TcpStream::from_std(std)
}

/// One client connection's context.
struct Connection<'a> {
    driver: &'a ToDriver,
    shared: &'a Shared,
    options: &'a ClientOptions,
    budget: &'a MemoryBudget,
    addr: std::net::SocketAddr,
    /// The password clients must give first, if one is required.
    password: Option<&'a Secret>,
    /// This connection's entry among the node's clients.
    client: &'a registry::Registered,
    /// The driver's way to the socket.
    lane: &'a Arc<direct::ReplyLane>,
}

impl Connection<'_> {
    async fn serve(&self, reader: impl AsyncRead + Unpin, writer: impl AsyncWrite + Unpin) {
        let (owed_tx, owed_rx) = mpsc::channel::<Queued>(MAX_PIPELINE);
        let answered = Answered::default();
        let writer = self.write_replies(writer, owed_rx, &answered);
        let reader = self.read_requests(reader, owed_tx, &answered);
        tokio::pin!(writer);
        // When the reader stops, its sender drops, and the writer ends after the owed replies.
        // When the writer stops first (the client went away, or passed a limit), the reader
        // is dropped with it: the whole connection closes.
        tokio::select! {
            () = &mut writer => {}
            () = reader => writer.await,
        }
        self.lane.close();
    }

    /// Disconnects a client that passed a memory limit, saying which.
    fn over_limit(&self, limit: &'static str, bytes: usize) {
        self.shared.metrics.error(limit);
        tracing::warn!(client = %self.addr, limit, bytes, "disconnecting a client over a memory limit");
    }

    /// `AUTH` (or `HELLO … AUTH`), decided as Redis does ([`auth::check`]); a refusal is
    /// counted and leaves the connection as it was.
    fn authenticate(
        &self,
        username: Option<Vec<u8>>,
        password: &[u8],
        authenticated: &mut bool,
        accepted: Reply,
    ) -> Owed {
        match auth::check(self.password, username.as_deref(), password) {
            AuthOutcome::Accepted => {
                *authenticated = true;
                Owed::Now(accepted)
            }
            AuthOutcome::NoPasswordConfigured => Owed::Now(Reply::error(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            )),
            AuthOutcome::Refused => {
                self.shared.metrics.error("auth_failed");
                tracing::debug!(client = %self.addr, "a client gave a wrong user or password");
                Owed::Now(Reply::error(WRONGPASS))
            }
        }
    }

    /// Reads the client's requests and queues their replies, in order, until the client
    /// goes away, idles out, breaks the protocol, passes a limit or quits.
    async fn read_requests(
        &self,
        mut reader: impl AsyncRead + Unpin,
        owed_tx: mpsc::Sender<Queued>,
        answered: &Answered,
    ) {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut authenticated = self.password.is_none();
        // Until the client authenticates it may send only what AUTH and HELLO need.
        let limits = |authenticated: bool| {
            if authenticated {
                self.options.limits
            } else {
                self.options.limits.before_auth()
            }
        };
        let mut parser = RequestParser::new(limits(authenticated));
        let mut charge = Charge::new(self.budget);
        let mut order = RequestOrder::default();
        let mut transaction = transaction::TransactionState::default();
        let mut subscription = subscriber::Subscription::default();
        loop {
            // As in Redis, the idle timeout does not apply to a subscriber.
            let idle_timeout = self
                .options
                .idle_timeout
                .filter(|_| !subscription.is_active());
            if !self.read_more(&mut reader, &mut buf, idle_timeout).await {
                return;
            }
            loop {
                let parsed = parser.parse(&mut buf);
                if buf.is_empty() && buf.capacity() > 256 * 1024 {
                    // A large request is over: give the memory back.
                    buf = BytesMut::with_capacity(16 * 1024);
                }
                // What is really held: the buffer and the arguments received, never a length
                // a header only declared.
                let held = buf.capacity() + parser.held_bytes();
                if !self.charge_input(&mut charge, held, &owed_tx).await {
                    return;
                }
                let args = match parsed {
                    Ok(None) => break,
                    Ok(Some(args)) if args.is_empty() => continue,
                    Ok(Some(args)) => args,
                    Err(error) => {
                        self.close_after_protocol_error(error, authenticated, &owed_tx)
                            .await;
                        return;
                    }
                };
                let queue = ReplyQueue {
                    owed_tx: &owed_tx,
                    answered,
                };
                let state = (
                    &mut order,
                    &mut authenticated,
                    &mut transaction,
                    &mut subscription,
                );
                if !self.answer(args, state, queue).await {
                    return;
                }
                parser.set_limits(limits(authenticated));
            }
        }
    }

    /// Reads more of the client's bytes into `buf`; false when the connection is over: the
    /// client closed it, it failed, or it sent nothing for the idle timeout.
    async fn read_more(
        &self,
        reader: &mut (impl AsyncRead + Unpin),
        buf: &mut BytesMut,
        idle_timeout: Option<Duration>,
    ) -> bool {
        let read = match idle_timeout {
            Some(idle) => match tokio::time::timeout(idle, reader.read_buf(buf)).await {
                Ok(read) => read,
                Err(_) => {
                    self.shared.metrics.error("idle_timeout");
                    tracing::debug!(client = %self.addr, "closing an idle client connection");
                    return false;
                }
            },
            None => reader.read_buf(buf).await,
        };
        !matches!(read, Ok(0) | Err(_))
    }

    /// Charges `held` bytes of input to the shared memory budget; false, once the client is
    /// told why and its connection is to close, if they pass the limit.
    async fn charge_input(
        &self,
        charge: &mut Charge<'_>,
        held: usize,
        owed_tx: &mpsc::Sender<Queued>,
    ) -> bool {
        if charge.hold(held) {
            return true;
        }
        self.over_limit("max_client_memory", held);
        let _ = owed_tx
            .send(closing(Reply::error(
                "ERR client buffers exceed the server's memory limit; closing",
            )))
            .await;
        false
    }

    /// Tells the client what was wrong with its bytes, before its connection closes.
    async fn close_after_protocol_error(
        &self,
        error: resp::ProtocolError,
        authenticated: bool,
        owed_tx: &mpsc::Sender<Queued>,
    ) {
        self.shared.metrics.error("protocol");
        tracing::info!(client = %self.addr, %error, authenticated, "closing a client connection after a protocol error");
        // A stranger past a limit passed the one before AUTH: say which.
        let before_auth = if !authenticated && error.is_over_limit() {
            " (before AUTH)"
        } else {
            ""
        };
        let _ = owed_tx
            .send(closing(Reply::error(format!("ERR {error}{before_auth}"))))
            .await;
    }

    /// Answers one request: `AUTH`, a refusal, a store command handed to the driver in the
    /// connection's order, or a reply this node knows at once. False once the connection is
    /// to close (the writer is gone, or the client quit).
    async fn answer(
        &self,
        args: Vec<Vec<u8>>,
        (order, authenticated, transaction, subscription): ConnectionState<'_>,
        queue: ReplyQueue<'_>,
    ) -> bool {
        let request_bytes: usize = args.iter().map(Vec::len).sum();
        let name = subscription
            .is_active()
            .then(|| subscriber::context_name(&args));
        let parsed = commands::parse(args);
        if let Some(name) = name {
            if !matches!(parsed, Ok(ClientRequest::Reset)) {
                return self
                    .answer_subscribed(parsed, name, subscription, queue)
                    .await;
            }
            if !self.leave_subscribed(subscription, queue).await {
                return false;
            }
        }
        let step = self.transaction_step(
            parsed,
            request_bytes,
            transaction,
            authenticated,
            order,
            queue,
        );
        let parsed = match step.await {
            transaction::Step::Answered(open) => return open,
            transaction::Step::Pass(parsed) => parsed,
        };
        let owed = match parsed {
            Ok(ClientRequest::Auth { username, password }) => {
                self.authenticate(username, &password, authenticated, Reply::Ok)
            }
            // Before AUTH only QUIT is served (PING too is refused, as Redis does); a request
            // that does not parse gets its own error, as Redis checks name and arity first.
            Ok(ref request) if !*authenticated && *request != ClientRequest::Quit => {
                Owed::Now(Reply::error(NOAUTH))
            }
            Ok(ClientRequest::Kv(command))
                if !command.is_read_only() && request_bytes > self.options.max_write_bytes =>
            {
                self.shared.metrics.error("command");
                Owed::Now(Reply::error(skiff_node::refusals::TOO_LARGE))
            }
            Ok(ClientRequest::Kv(command)) => {
                return self.submit_in_order(command, order, queue, None).await;
            }
            Ok(ClientRequest::PubSub(request)) => {
                return self.enter_pubsub(request, subscription, queue).await;
            }
            Ok(request) => local_reply(request, self.shared),
            Err(error) => {
                self.shared.metrics.error("command");
                Owed::Now(Reply::Error(error.0))
            }
        };
        self.queue_known(owed, queue).await
    }

    /// Hands a store command to the driver once the connection's order allows it and its
    /// worst-case reply is reserved; false if the writer is gone.
    async fn submit_in_order(
        &self,
        command: skiff_kv::Command,
        order: &mut RequestOrder,
        queue: ReplyQueue<'_>,
        splice: Option<transaction::Splice>,
    ) -> bool {
        let effect = if command.is_read_only() {
            Effect::Read
        } else {
            Effect::Write
        };
        order.wait_turn(effect, queue.answered).await;
        if effect == Effect::Write {
            // No more writes in flight than the state machine keeps replies for, so a copy
            // sent again after a leader change is answered from its session's window.
            while let Some(needed) = order
                .session
                .must_wait_for(queue.answered.count.load(Ordering::Acquire))
            {
                queue.answered.wait_for(needed).await;
            }
        }
        // No more in flight than their replies, at their largest, may take of the output
        // limit.
        let worst = worst_reply_bytes(&command, self.options)
            .saturating_add(splice.as_ref().map_or(0, transaction::Splice::bytes));
        queue
            .answered
            .reserve(worst, self.options.max_output_bytes)
            .await;
        let answered = queue.answered.count.load(Ordering::Acquire);
        let session = (effect == Effect::Write).then(|| {
            let lost = queue.answered.session_lost.swap(false, Ordering::AcqRel);
            order.session.next(order.submitted, answered, lost)
        });
        order.sent(effect);
        let owed = match splice {
            Some(splice) => splice.around(self.submit(command, session)),
            None => self.submit_direct(command, session),
        };
        queue
            .owed_tx
            .send(Queued {
                owed,
                reserved: worst,
            })
            .await
            .is_ok()
    }

    /// Queues a reply known at once, its bytes reserved (an `ECHO` of a large argument, say);
    /// false if the writer is gone or the reply closes the connection.
    async fn queue_known(&self, owed: Owed, queue: ReplyQueue<'_>) -> bool {
        let reserved = match &owed {
            Owed::Now(reply) | Owed::Close(reply) => resp::reply_len(reply),
            Owed::Simple(text) => text.len() + 3,
            Owed::Later(_)
            | Owed::Direct(_)
            | Owed::Written(_)
            | Owed::Subscribed(_)
            | Owed::Unsubscribed => 0,
        };
        queue
            .answered
            .reserve(reserved, self.options.max_output_bytes)
            .await;
        let quit = matches!(owed, Owed::Close(_));
        queue.owed_tx.send(Queued { owed, reserved }).await.is_ok() && !quit
    }

    /// Hands a store command to the driver; its reply comes later.
    fn submit(
        &self,
        command: skiff_kv::Command,
        session: Option<skiff_node::ClientSession>,
    ) -> Owed {
        let (reply, receiver) = oneshot::channel();
        let input = Input::Client {
            command,
            reply,
            session,
        };
        self.hand_over(input);
        Owed::Later(receiver)
    }

    /// Hands a store command to the driver, which may write its reply to the socket itself.
    fn submit_direct(
        &self,
        command: skiff_kv::Command,
        session: Option<skiff_node::ClientSession>,
    ) -> Owed {
        let (reply, pending) = self.lane.request();
        let input = Input::Connection {
            command,
            reply,
            session,
        };
        self.hand_over(input);
        Owed::Direct(pending)
    }

    /// Hands a client's request to the driver; one its queue refuses (full, counted, or
    /// closed) is answered at once.
    fn hand_over(&self, input: Input) {
        let Err(refused) = self.driver.try_send(input) else {
            return;
        };
        let text = if refused.is_full() {
            self.shared.metrics.error("busy");
            skiff_node::refusals::BUSY
        } else {
            "ERR the node is shutting down"
        };
        match refused.into_inner() {
            Input::Client { reply, .. } => ReplyTo::Channel(reply).send(Reply::error(text)),
            Input::Connection { reply, .. } => {
                ReplyTo::Connection(reply).send_to_writer(Reply::error(text))
            }
            Input::Peer(_) | Input::PeerSocket(_) | Input::Admin { .. } | Input::Backup(_) => {}
        }
    }
}

/// A connection's order, whether it authenticated, its transaction and its subscriptions.
type ConnectionState<'a> = (
    &'a mut RequestOrder,
    &'a mut bool,
    &'a mut transaction::TransactionState,
    &'a mut subscriber::Subscription,
);

/// The store commands a connection has in flight, for taking its commands in the order sent.
#[derive(Default)]
struct RequestOrder {
    /// The effect of the driver requests in flight.
    in_flight: Option<Effect>,
    /// How many driver requests were sent.
    submitted: u64,
    /// The connection's exactly-once session, which its writes carry.
    session: session::WriteSession,
}

impl RequestOrder {
    /// Waits until a command of `effect` may be asked for: a read after a write (or a write
    /// after a read) of this connection waits until the earlier ones are answered, so that
    /// commands take effect in the order sent.
    async fn wait_turn(&self, effect: Effect, answered: &Answered) {
        if self.in_flight.is_some_and(|earlier| earlier != effect) {
            answered.wait_for(self.submitted).await;
        }
    }

    /// A command of `effect` was handed to the driver.
    fn sent(&mut self, effect: Effect) {
        self.in_flight = Some(effect);
        self.submitted += 1;
    }
}

/// Where a request's reply goes: the writer's queue, and the count and reservations of the
/// replies owed.
#[derive(Clone, Copy)]
struct ReplyQueue<'a> {
    owed_tx: &'a mpsc::Sender<Queued>,
    answered: &'a Answered,
}

/// A reply that closes the connection once it is written.
fn closing(reply: Reply) -> Queued {
    Queued {
        owed: Owed::Close(reply),
        reserved: 0,
    }
}

/// `TIME`'s reply for the clock reading `now`: the seconds and the microseconds within the
/// second since the Unix epoch, as two bulk strings (Redis's form). A clock set before the
/// epoch reads as the epoch.
fn time_reply(now: std::time::SystemTime) -> Reply {
    let since_epoch = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Reply::Array(vec![
        Reply::Bulk(since_epoch.as_secs().to_string().into_bytes()),
        Reply::Bulk(since_epoch.subsec_micros().to_string().into_bytes()),
    ])
}

/// The reply to a command this node answers by itself.
fn local_reply(request: ClientRequest, shared: &Shared) -> Owed {
    match request {
        ClientRequest::Kv(_) => unreachable!("store commands go to the driver"),
        ClientRequest::Auth { .. }
        | ClientRequest::Hello(_)
        | ClientRequest::Multi
        | ClientRequest::Exec
        | ClientRequest::Discard
        | ClientRequest::Watch(_)
        | ClientRequest::Unwatch
        | ClientRequest::Reset
        | ClientRequest::Client(_)
        | ClientRequest::Command(_) => unreachable!("answered by the connection"),
        ClientRequest::Ping(None) => Owed::Simple("PONG"),
        ClientRequest::Ping(Some(message)) | ClientRequest::Echo(message) => {
            Owed::Now(Reply::Bulk(message))
        }
        ClientRequest::Time => Owed::Now(time_reply(std::time::SystemTime::now())),
        ClientRequest::Select | ClientRequest::Ok => Owed::Now(Reply::Ok),
        ClientRequest::Info => Owed::Now(Reply::Bulk(info(&shared.status()).into_bytes())),
        ClientRequest::Config(request) => {
            Owed::Now(crate::runtime_config::answer(request, &shared.pubsub))
        }
        ClientRequest::PubSub(_) => unreachable!("pub/sub requests are answered by the connection"),
        ClientRequest::Quit => Owed::Close(Reply::Ok),
    }
}

/// The INFO text: a `# Server` section and a `# Raft` section.
pub fn info(status: &NodeStatus) -> String {
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let members: Vec<String> = status
        .members
        .iter()
        .map(|m| format!("{}:{}", m.id, m.kind))
        .collect();
    format!(
        "# Server\r\nskiff_version:{}\r\nprocess_id:{}\r\n\r\n# Raft\r\nnode_id:{}\r\ncluster_id:{:#x}\r\nrole:{}\r\nterm:{}\r\nvoted_for:{}\r\nleader_id:{}\r\nleader_addr:{}\r\ncommit_index:{}\r\napplied_index:{}\r\nlast_index:{}\r\nsnapshot_index:{}\r\nmembers:{}\r\n\r\n# Keyspace\r\ndb0:keys={}\r\n",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        status.id,
        status.cluster_id,
        status.role,
        status.term,
        opt(status.vote),
        opt(status.leader),
        status.leader_client_addr.clone().unwrap_or_default(),
        status.commit,
        status.applied,
        status.last_index,
        status.snapshot_index,
        members.join(","),
        status.keys,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_memory_limit_refuses_the_client_that_grows_not_the_one_that_comes_next() {
        let budget = MemoryBudget {
            used: AtomicUsize::new(0),
            limit: 1024 * 1024,
        };
        let mut hog = Charge::new(&budget);
        assert!(hog.hold(900 * 1024));
        // A small client is served even with the budget nearly gone, and while over it.
        let mut small = Charge::new(&budget);
        assert!(small.hold(CHARGE_ALLOWANCE));
        assert!(!hog.hold(1200 * 1024), "the growing client is refused");
        assert!(small.hold(CHARGE_ALLOWANCE), "an unchanged client is not");
        assert!(small.hold(1024), "nor one that shrinks");
        let mut grower = Charge::new(&budget);
        assert!(!grower.hold(CHARGE_ALLOWANCE + 1));
        drop(hog);
        drop(grower);
        assert_eq!(budget.used.load(Ordering::Relaxed), 1024);
    }

    #[test]
    fn the_worst_reply_of_a_read_bounds_what_may_be_in_flight() {
        let options = ClientOptions {
            max_value_bytes: 1000,
            max_reply_bytes: 10_000,
            ..ClientOptions::default()
        };
        let get = skiff_kv::Command::Get { key: b"k".to_vec() };
        assert_eq!(worst_reply_bytes(&get, &options), 1032);
        let mget = |n: usize| skiff_kv::Command::MGet {
            keys: vec![b"k".to_vec(); n],
        };
        assert_eq!(worst_reply_bytes(&mget(2), &options), 2 * 1032 + 256);
        // Many keys: the reply limit caps the values, each key adds its header.
        assert_eq!(worst_reply_bytes(&mget(100), &options), 10_000 + 3200 + 256);
        let set = skiff_kv::Command::Set {
            key: b"k".to_vec(),
            value: vec![0; 5000],
            condition: skiff_kv::SetCondition::Always,
        };
        assert_eq!(worst_reply_bytes(&set, &options), 256);
    }

    #[test]
    fn time_answers_seconds_and_microseconds_since_the_epoch() {
        let at = |secs: u64, micros: u64| {
            std::time::UNIX_EPOCH + Duration::from_micros(secs * 1_000_000 + micros)
        };
        let words = |secs: &str, micros: &str| {
            Reply::Array(vec![Reply::Bulk(secs.into()), Reply::Bulk(micros.into())])
        };
        assert_eq!(
            time_reply(at(1_700_000_000, 123)),
            words("1700000000", "123")
        );
        assert_eq!(time_reply(at(5, 999_999)), words("5", "999999"));
        let before_the_epoch = std::time::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(time_reply(before_the_epoch), words("0", "0"));
    }

    #[tokio::test]
    async fn a_reservation_waits_until_earlier_replies_are_taken() {
        let answered = Answered::default();
        answered.reserve(600, 1000).await;
        // A reply that alone exceeds the limit still goes when nothing else is owed...
        let other = Answered::default();
        other.reserve(5000, 1000).await;
        // ...but one that would pass the limit beside others waits for them.
        let waiting = answered.reserve(600, 1000);
        tokio::pin!(waiting);
        let early = tokio::time::timeout(Duration::from_millis(50), &mut waiting).await;
        assert!(early.is_err(), "reserved past the limit");
        answered.release(600);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("reserved once the first reply was taken");
        assert_eq!(answered.reserved.load(Ordering::Relaxed), 600);
    }
}
