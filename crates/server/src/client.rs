//! Redis-protocol clients: one task pair per connection. The reader parses requests and hands
//! commands to the driver without waiting for their replies (pipelining); the writer sends
//! the replies back in request order.

use crossbeam_channel::{Sender, TrySendError};
use std::sync::Arc;

use bytes::BytesMut;
use skiff_kv::Reply;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::commands::{self, Request};
use crate::driver::Input;
use crate::resp::{self, Limits};
use crate::shared::{NodeStatus, Shared};

/// Replies a connection may owe at once; a client pipelining more waits for the first ones.
const MAX_PIPELINE: usize = 1024;

/// A reply owed to the client, in request order.
enum Owed {
    /// Known at once.
    Now(Reply),
    /// A simple-string reply (`+PONG`).
    Simple(&'static str),
    /// Coming from the driver.
    Later(oneshot::Receiver<Reply>),
    /// Reply, then close the connection.
    Close(Reply),
}

/// Accepts clients, at most `max_clients` at once; one more is told so and closed.
pub async fn serve_clients(
    listener: TcpListener,
    driver: Sender<Input>,
    shared: Arc<Shared>,
    limits: Limits,
    max_clients: usize,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_clients));
    loop {
        let (mut stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a client failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            shared.metrics.error("max_clients");
            tokio::spawn(async move {
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
            });
            continue;
        };
        let driver = driver.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let _slot = slot;
            shared.metrics.client_connections.inc();
            serve_client(stream, driver, &shared, limits).await;
            shared.metrics.client_connections.dec();
            tracing::debug!(client = %addr, "client disconnected");
        });
    }
}

async fn serve_client(stream: TcpStream, driver: Sender<Input>, shared: &Shared, limits: Limits) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (owed_tx, mut owed_rx) = mpsc::channel::<Owed>(MAX_PIPELINE);
    let write_replies = async move {
        let mut out = BytesMut::with_capacity(16 * 1024);
        while let Some(owed) = owed_rx.recv().await {
            let close = match owed {
                Owed::Now(reply) => {
                    resp::write_reply(&mut out, &reply);
                    false
                }
                Owed::Simple(text) => {
                    resp::write_simple(&mut out, text);
                    false
                }
                Owed::Later(receiver) => {
                    let reply = receiver
                        .await
                        .unwrap_or_else(|_| Reply::error("ERR the node is shutting down"));
                    resp::write_reply(&mut out, &reply);
                    false
                }
                Owed::Close(reply) => {
                    resp::write_reply(&mut out, &reply);
                    true
                }
            };
            // Write when nothing else is ready, so pipelined replies share a write.
            if close || owed_rx.is_empty() || out.len() > 64 * 1024 {
                if writer.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
            if close {
                let _ = writer.shutdown().await;
                return;
            }
        }
    };
    let read_requests = async move {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        loop {
            match reader.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            loop {
                let owed = match resp::parse_request(&mut buf, &limits) {
                    Ok(None) => break,
                    Ok(Some(args)) if args.is_empty() => continue,
                    Ok(Some(args)) => handle(args, &driver, shared),
                    Err(error) => {
                        shared.metrics.error("protocol");
                        tracing::info!(%error, "closing a client connection after a protocol error");
                        let _ = owed_tx
                            .send(Owed::Close(Reply::error(format!("ERR {error}"))))
                            .await;
                        return;
                    }
                };
                let quit = matches!(owed, Owed::Close(_));
                if owed_tx.send(owed).await.is_err() || quit {
                    return;
                }
            }
        }
    };
    // When the reader stops, its sender drops, and the writer ends after the owed replies.
    tokio::join!(write_replies, read_requests);
}

/// Runs one request: at once for connection commands, through the driver for the store.
fn handle(args: Vec<Vec<u8>>, driver: &Sender<Input>, shared: &Shared) -> Owed {
    let request = match commands::parse(args) {
        Ok(request) => request,
        Err(error) => {
            shared.metrics.error("command");
            return Owed::Now(Reply::Error(error.0));
        }
    };
    match request {
        Request::Kv(command) => {
            let (reply, receiver) = oneshot::channel();
            match driver.try_send(Input::Client { command, reply }) {
                Ok(()) => Owed::Later(receiver),
                Err(TrySendError::Full(_)) => {
                    shared.metrics.error("busy");
                    Owed::Now(Reply::error(skiff_node::errors::BUSY))
                }
                Err(TrySendError::Disconnected(_)) => {
                    Owed::Now(Reply::error("ERR the node is shutting down"))
                }
            }
        }
        Request::Ping(None) => Owed::Simple("PONG"),
        Request::Ping(Some(message)) | Request::Echo(message) => Owed::Now(Reply::Bulk(message)),
        Request::Select | Request::Ok => Owed::Now(Reply::Ok),
        Request::Info => Owed::Now(Reply::Bulk(info(&shared.status()).into_bytes())),
        Request::ConfigGet(parameter) => Owed::Now(Reply::Array(config_value(parameter))),
        Request::EmptyArray => Owed::Now(Reply::Array(Vec::new())),
        Request::Quit => Owed::Close(Reply::Ok),
    }
}

/// `CONFIG GET`: every write is fsynced before it is acknowledged, which is what Redis calls
/// `appendonly yes` with `appendfsync always`; there are no RDB save points.
fn config_value(parameter: Vec<u8>) -> Vec<Reply> {
    let value: &[u8] = match parameter.as_slice() {
        b"save" => b"",
        b"appendonly" => b"yes",
        b"appendfsync" => b"always",
        _ => return Vec::new(),
    };
    vec![Reply::Bulk(parameter), Reply::Bulk(value.to_vec())]
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
