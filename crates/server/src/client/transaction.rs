//! A connection's transaction: `MULTI`, `EXEC`, `DISCARD`, `WATCH`, `UNWATCH`; and the step
//! that answers them, `RESET` and the connection commands (`CLIENT`, `COMMAND`, `HELLO`, in
//! `connection.rs`) before the connection's usual path.
//!
//! Between `MULTI` and `EXEC` each command is checked as it comes (name and arity: an error
//! answers at once and makes `EXEC` answer `EXECABORT`, as in Redis) and queued (`+QUEUED`).
//! `EXEC` sends the queued store commands, with the keys watched and the revision each had,
//! as one [`Command::Exec`]: one log entry, applied atomically on every replica, aborted
//! there if a watched key's revision moved. Commands this node answers itself (`PING`,
//! `INFO`, `CLIENT`, `AUTH`, `HELLO`, `CONFIG`…) are queued as requests and answered at
//! `EXEC`, as Redis does, their replies put back in place; those replies together are held
//! to `max_reply_bytes` (past it a slot answers the reply-too-large error). `SUBSCRIBE` and
//! its kin may not be queued: their replies do not fit an `EXEC`'s array.
//!
//! `WATCH` reads each key's revision through a linearizable read (`REVISION`, ReadIndex,
//! thesis §6.4) and answers `+OK` once they are known, so a change committed through any node
//! after the `WATCH` has a larger revision and aborts the `EXEC`.
//!
//! Bounded: at most [`MAX_QUEUED_COMMANDS`] queued, and their words with the watched keys at
//! most `max_write_bytes` (the transaction must fit one log entry anyway); past either, the
//! transaction is discarded with an error and `EXEC` answers `EXECABORT`. At most
//! [`MAX_WATCHED_KEYS`] keys are watched.

use skiff_kv::reply::errors::reply_too_large;
use skiff_kv::{Command, Reply, Transaction, Watched};
use tokio::sync::oneshot;

use super::connection::command_reply;
use super::{Connection, Effect, Owed, ReplyQueue, RequestOrder};
use crate::commands::{ClientCommand, ClientRequest, CommandError};

/// The most commands a transaction may queue.
pub const MAX_QUEUED_COMMANDS: usize = 10_000;
/// The most keys a connection may watch at once.
pub const MAX_WATCHED_KEYS: usize = 1024;

/// Redis's answer to `EXEC` after a command failed to queue.
const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
/// Redis's answer to a command that may not be queued.
const NOT_IN_MULTI: &str = "ERR Command not allowed inside a transaction";

/// A connection's `WATCH`ed keys and, after `MULTI`, its queue.
#[derive(Default)]
pub(super) struct TransactionState {
    /// The keys watched, with their revisions then, in the order first watched.
    watched: Vec<Watched>,
    /// Bytes of the watched keys.
    watched_bytes: usize,
    /// `Some` between `MULTI` and `EXEC`/`DISCARD`.
    queue: Option<Queue>,
}

/// The commands queued since `MULTI`.
#[derive(Default)]
struct Queue {
    /// Each queued command, in order.
    items: Vec<Queued>,
    /// The words of the queued commands, added up.
    bytes: usize,
    /// A command failed to queue: `EXEC` answers `EXECABORT`.
    failed: bool,
    /// The queue passed its bounds and was emptied.
    overflowed: bool,
}

/// A queued request: a store command for the entry, or one this node answers at `EXEC`.
enum Queued {
    Store(Command),
    Local(ClientRequest),
}

impl TransactionState {
    fn unwatch(&mut self) {
        self.watched.clear();
        self.watched_bytes = 0;
    }

    /// `DISCARD`, `EXEC` and `RESET`: the queue goes and nothing is watched any more.
    fn end(&mut self) -> Option<Queue> {
        self.unwatch();
        self.queue.take()
    }
}

/// What the transaction step did with a request.
pub(super) enum Step {
    /// Answered; false once the connection is to close.
    Answered(bool),
    /// Not the step's: the connection answers it as usual.
    Pass(Result<ClientRequest, CommandError>),
}

impl Connection<'_> {
    /// Answers what belongs to transactions and connection commands, or hands the request
    /// back.
    pub(super) async fn transaction_step(
        &self,
        parsed: Result<ClientRequest, CommandError>,
        request_bytes: usize,
        state: &mut TransactionState,
        authenticated: &mut bool,
        order: &mut RequestOrder,
        queue: ReplyQueue<'_>,
    ) -> Step {
        let owed = match parsed {
            Ok(ClientRequest::Reset) => {
                state.end();
                self.client.forget_details();
                *authenticated = self.password.is_none();
                Owed::Simple("RESET")
            }
            // Before AUTH, only HELLO with AUTH is answered here.
            Ok(ClientRequest::Hello(hello)) if !*authenticated && hello.auth.is_some() => {
                self.hello(hello, authenticated)
            }
            parsed if !*authenticated => return Step::Pass(parsed),
            parsed if state.queue.is_some() => {
                match self
                    .in_multi(parsed, request_bytes, state, authenticated, order, queue)
                    .await
                {
                    Some(done) => return Step::Answered(done),
                    None => return Step::Pass(Ok(ClientRequest::Quit)),
                }
            }
            Ok(ClientRequest::Multi) => {
                state.queue = Some(Queue::default());
                Owed::Now(Reply::Ok)
            }
            Ok(ClientRequest::Exec) => Owed::Now(Reply::error("ERR EXEC without MULTI")),
            Ok(ClientRequest::Discard) => Owed::Now(Reply::error("ERR DISCARD without MULTI")),
            Ok(ClientRequest::Watch(keys)) => {
                return Step::Answered(self.watch(keys, state, order, queue).await)
            }
            Ok(ClientRequest::Unwatch) => {
                state.unwatch();
                Owed::Now(Reply::Ok)
            }
            Ok(ClientRequest::Client(command)) => {
                let walks_every_client = matches!(command, ClientCommand::List { .. });
                let reply = self.client_reply(command);
                if walks_every_client {
                    // A pipeline of them must not hold the runtime's thread (on two cores the
                    // only one) from the node's other connections for more than one walk.
                    tokio::task::yield_now().await;
                }
                Owed::Now(reply)
            }
            Ok(ClientRequest::Command(query)) => Owed::Now(command_reply(query)),
            Ok(ClientRequest::Hello(hello)) => self.hello(hello, authenticated),
            parsed => return Step::Pass(parsed),
        };
        Step::Answered(self.queue_known(owed, queue).await)
    }

    /// A request between `MULTI` and `EXEC`; `None` for `QUIT`, which the connection answers.
    async fn in_multi(
        &self,
        parsed: Result<ClientRequest, CommandError>,
        request_bytes: usize,
        state: &mut TransactionState,
        authenticated: &mut bool,
        order: &mut RequestOrder,
        queue: ReplyQueue<'_>,
    ) -> Option<bool> {
        let owed = match parsed {
            Ok(ClientRequest::Exec) => {
                let pending = state.queue.take().expect("in MULTI");
                let watched = std::mem::take(&mut state.watched);
                state.unwatch();
                return Some(
                    self.exec(pending, watched, authenticated, order, queue)
                        .await,
                );
            }
            Ok(ClientRequest::Discard) => {
                state.end();
                Owed::Now(Reply::Ok)
            }
            Ok(ClientRequest::Quit) => return None,
            parsed => {
                let watched_bytes = state.watched_bytes;
                let pending = state.queue.as_mut().expect("in MULTI");
                self.enqueue(parsed, request_bytes, watched_bytes, pending)
            }
        };
        Some(self.queue_known(owed, queue).await)
    }

    /// Queues a request (`+QUEUED`), or answers why not.
    fn enqueue(
        &self,
        parsed: Result<ClientRequest, CommandError>,
        request_bytes: usize,
        watched_bytes: usize,
        pending: &mut Queue,
    ) -> Owed {
        match parsed {
            // Neither error spoils the transaction, as in Redis.
            Ok(ClientRequest::Multi) => {
                Owed::Now(Reply::error("ERR MULTI calls can not be nested"))
            }
            Ok(ClientRequest::Watch(_)) => {
                Owed::Now(Reply::error("ERR WATCH inside MULTI is not allowed"))
            }
            Err(error) => {
                self.shared.metrics.error("command");
                pending.failed = true;
                Owed::Now(Reply::Error(error.0))
            }
            Ok(_) if pending.overflowed => Owed::Now(Reply::error(overflow_error(self))),
            Ok(request) => {
                let Some(item) = queueable(request) else {
                    pending.failed = true;
                    return Owed::Now(Reply::error(NOT_IN_MULTI));
                };
                let bytes = pending
                    .bytes
                    .saturating_add(request_bytes)
                    .saturating_add(watched_bytes);
                if pending.items.len() >= MAX_QUEUED_COMMANDS
                    || bytes > self.options.max_write_bytes
                {
                    // The queue's memory goes at once; EXEC will answer EXECABORT.
                    self.shared.metrics.error("transaction_too_large");
                    *pending = Queue {
                        failed: true,
                        overflowed: true,
                        ..Queue::default()
                    };
                    return Owed::Now(Reply::error(overflow_error(self)));
                }
                pending.bytes = pending.bytes.saturating_add(request_bytes);
                pending.items.push(item);
                Owed::Simple("QUEUED")
            }
        }
    }

    /// `EXEC`: the queued store commands and the watched keys as one entry, the replies of
    /// commands answered here, now, put back in place.
    async fn exec(
        &self,
        pending: Queue,
        watched: Vec<Watched>,
        authenticated: &mut bool,
        order: &mut RequestOrder,
        queue: ReplyQueue<'_>,
    ) -> bool {
        if pending.failed {
            return self
                .queue_known(Owed::Now(Reply::error(EXECABORT)), queue)
                .await;
        }
        let mut commands = Vec::new();
        let mut splice = Splice::default();
        for item in pending.items {
            match item {
                Queued::Store(command) => {
                    commands.push(command);
                    splice.slots.push(None);
                }
                Queued::Local(request) => {
                    let reply = self.answer_queued(request, authenticated);
                    // Up to 10,000 of them (each `CLIENT LIST` a walk of every client): the
                    // node's other connections run between them.
                    tokio::task::yield_now().await;
                    let bytes = splice.bytes.saturating_add(crate::resp::reply_len(&reply));
                    // Each reply too many is dropped as soon as it is measured.
                    let reply = if bytes > self.options.max_reply_bytes {
                        Reply::error(reply_too_large(self.options.max_reply_bytes))
                    } else {
                        reply
                    };
                    splice.bytes = splice.bytes.saturating_add(crate::resp::reply_len(&reply));
                    splice.slots.push(Some(reply));
                }
            }
        }
        if commands.is_empty() && watched.is_empty() {
            // Nothing to apply and nothing to check: no entry needed.
            let replies = splice.slots.into_iter().flatten().collect();
            return self
                .queue_known(Owed::Now(Reply::Array(replies)), queue)
                .await;
        }
        let command = Command::Exec(Transaction { watched, commands });
        let splice = (splice.bytes > 0).then_some(splice);
        self.submit_in_order(command, order, queue, splice).await
    }

    /// `WATCH key…`: each new key's revision, read linearizably in the connection's order;
    /// `+OK` once all are known.
    async fn watch(
        &self,
        keys: Vec<Vec<u8>>,
        state: &mut TransactionState,
        order: &mut RequestOrder,
        queue: ReplyQueue<'_>,
    ) -> bool {
        let mut new: Vec<Vec<u8>> = Vec::new();
        for key in keys {
            // A key watched twice keeps its first revision, as in Redis.
            if !state.watched.iter().any(|w| w.key == key) && !new.contains(&key) {
                new.push(key);
            }
        }
        let bytes = new.iter().fold(state.watched_bytes, |sum, key| {
            sum.saturating_add(key.len())
        });
        if state.watched.len() + new.len() > MAX_WATCHED_KEYS
            || bytes > self.options.max_write_bytes
        {
            self.shared.metrics.error("watch_too_large");
            let text = format!(
                "ERR at most {MAX_WATCHED_KEYS} keys and {} bytes of keys may be watched",
                self.options.max_write_bytes
            );
            return self.queue_known(Owed::Now(Reply::error(text)), queue).await;
        }
        // A read after this connection's writes: the revisions include them.
        order.wait_turn(Effect::Read, queue.answered).await;
        let asked: Vec<(Vec<u8>, Option<oneshot::Receiver<Reply>>)> = new
            .into_iter()
            .map(|key| {
                let receiver = match self.submit(Command::Revision { key: key.clone() }, None) {
                    Owed::Later(receiver) => Some(receiver),
                    _ => None,
                };
                (key, receiver)
            })
            .collect();
        let mut watched = Vec::with_capacity(asked.len());
        let mut failure = None;
        for (key, receiver) in asked {
            let reply = match receiver {
                Some(receiver) => receiver
                    .await
                    .unwrap_or_else(|_| Reply::error("ERR the node is shutting down")),
                None => Reply::error("ERR the node is shutting down"),
            };
            let revision = match reply {
                Reply::Integer(revision) => u64::try_from(revision).ok(),
                Reply::Nil => None,
                Reply::Error(text) => {
                    failure.get_or_insert(text);
                    continue;
                }
                other => {
                    failure.get_or_insert(format!("ERR unexpected revision reply {other:?}"));
                    continue;
                }
            };
            watched.push(Watched { key, revision });
        }
        let owed = match failure {
            // Nothing of a WATCH that could not read every revision is kept.
            Some(text) => Owed::Now(Reply::Error(text)),
            None => {
                state.watched_bytes = bytes;
                state.watched.extend(watched);
                Owed::Now(Reply::Ok)
            }
        };
        self.queue_known(owed, queue).await
    }
}

/// The most bytes of RESP an `EXEC`'s reply can take: its commands' worst replies added up,
/// but the values it reads are held to the reply limit as `MGET`'s are (at apply).
pub(super) fn worst_reply_bytes(
    transaction: &Transaction,
    options: &super::ClientOptions,
    short: usize,
) -> usize {
    let each = |command| super::worst_reply_bytes(command, options);
    let framing = transaction.commands.len().saturating_mul(short);
    transaction
        .commands
        .iter()
        .fold(short, |sum, command| sum.saturating_add(each(command)))
        .min(options.max_reply_bytes.saturating_add(framing))
}

/// What a request becomes in the queue: a store command, a request this node answers at
/// `EXEC`, or `None` for one that may not be queued. `SUBSCRIBE` and its kin are refused (and
/// spoil the transaction, as Redis's commands not allowed in one do): Redis 7.0 queues them,
/// but then writes one reply per channel inside `EXEC`'s array, which no client can read.
fn queueable(request: ClientRequest) -> Option<Queued> {
    match request {
        ClientRequest::Kv(command) => Some(Queued::Store(command)),
        ClientRequest::PubSub(_) => None,
        request => Some(Queued::Local(request)),
    }
}

/// The error of a transaction past its bounds.
fn overflow_error(connection: &Connection<'_>) -> String {
    format!(
        "ERR transaction discarded: more than {MAX_QUEUED_COMMANDS} commands or {} bytes queued",
        connection.options.max_write_bytes
    )
}

/// The replies of the commands a transaction's node answered itself, put back among the
/// replies of its store commands.
#[derive(Default)]
pub(super) struct Splice {
    /// In queue order: `None` for a store command's reply, else the reply answered here.
    slots: Vec<Option<Reply>>,
    /// The replies' RESP bytes, added up.
    bytes: usize,
}

impl Splice {
    /// The output the spliced replies take.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The reply owed to the client, from the store's reply to the transaction.
    pub(super) fn around(self, owed: Owed) -> Owed {
        let Owed::Later(receiver) = owed else {
            return owed;
        };
        let (sender, spliced) = oneshot::channel();
        tokio::spawn(async move {
            let reply = receiver
                .await
                .unwrap_or_else(|_| Reply::error("ERR the node is shutting down"));
            let _ = sender.send(self.into_reply(reply));
        });
        Owed::Later(spliced)
    }

    fn into_reply(self, reply: Reply) -> Reply {
        let stored = self.slots.iter().filter(|slot| slot.is_none()).count();
        match reply {
            Reply::Array(replies) if replies.len() == stored => {
                let mut replies = replies.into_iter();
                Reply::Array(
                    self.slots
                        .into_iter()
                        .map(|slot| slot.or_else(|| replies.next()).unwrap_or(Reply::Nil))
                        .collect(),
                )
            }
            // An aborted EXEC, or a refusal of the whole entry (no leader, too large…).
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_answered_here_go_back_in_queue_order() {
        let splice = Splice {
            slots: vec![None, Some(Reply::Simple("PONG".into())), None],
            bytes: 7,
        };
        let stored = Reply::Array(vec![Reply::Ok, Reply::Integer(2)]);
        assert_eq!(
            splice.into_reply(stored),
            Reply::Array(vec![
                Reply::Ok,
                Reply::Simple("PONG".into()),
                Reply::Integer(2)
            ])
        );
        let splice = Splice {
            slots: vec![None, Some(Reply::Simple("PONG".into()))],
            bytes: 7,
        };
        assert_eq!(splice.into_reply(Reply::NilArray), Reply::NilArray);
    }
}
