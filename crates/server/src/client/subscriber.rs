//! A connection in subscribed mode (`SUBSCRIBE`, `PSUBSCRIBE`): what its reader accepts, and
//! how its writer interleaves the published messages with the replies.
//!
//! Once subscribed, every reply of the connection goes through its [`Mailbox`], after the
//! messages already queued there, so the client reads them in the order they happened. The
//! writer learns of the mailbox from a marker in the connection's reply queue
//! ([`Owed::Subscribed`]), after the replies to the requests before `SUBSCRIBE`; when the
//! last subscription is left, a second marker ([`Owed::Unsubscribed`]) makes it write what
//! the mailbox still holds before the replies that follow.

use std::sync::Arc;

use bytes::BytesMut;
use skiff_kv::Reply;

use super::{Connection, Owed, ReplyQueue};
use crate::commands::{ClientRequest, CommandError, PubSubRequest};
use crate::pubsub::{Mailbox, Overflowed, Subscriber};

/// How much of the mailbox the writer moves to its output at a time: a client that does not
/// read lets its mailbox fill, and is disconnected at the mailbox's bound.
const TAKE_BYTES: usize = 64 * 1024;

/// The reader's side: the connection's subscriptions, if it has any.
#[derive(Default)]
pub(super) struct Subscription(Option<Subscriber>);

impl Subscription {
    /// Whether the connection is in subscribed mode.
    pub(super) fn is_active(&self) -> bool {
        self.0.is_some()
    }
}

/// The name Redis gives a command in its subscribed-mode refusal (`get`, `config|get`).
pub(super) fn context_name(args: &[Vec<u8>]) -> String {
    let word = |w: &[u8]| -> String {
        String::from_utf8_lossy(w)
            .chars()
            .take(64)
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let name = word(&args[0]);
    match (name.as_str(), args.get(1)) {
        ("config" | "client" | "command", Some(sub)) => format!("{name}|{}", word(sub)),
        _ => name,
    }
}

impl Connection<'_> {
    /// A pub/sub request on a connection not yet subscribed: `SUBSCRIBE` enters subscribed
    /// mode; `UNSUBSCRIBE` answers as Redis does with nothing to leave. False if the writer
    /// is gone.
    pub(super) async fn enter_pubsub(
        &self,
        request: PubSubRequest,
        subscription: &mut Subscription,
        queue: ReplyQueue<'_>,
    ) -> bool {
        let subscriber = self.shared.pubsub.subscriber();
        match request {
            PubSubRequest::Subscribe(kind, names) => {
                if let Err(error) = subscriber.subscribe(kind, names) {
                    self.shared.metrics.error("command");
                    return self
                        .queue_known(Owed::Now(Reply::error(error)), queue)
                        .await;
                }
                let mailbox = subscriber.mailbox().clone();
                subscription.0 = Some(subscriber);
                self.queue_known(Owed::Subscribed(mailbox), queue).await
            }
            PubSubRequest::Unsubscribe(kind, names) => {
                // The replies wait in a mailbox of their own, written at once.
                subscriber.unsubscribe(kind, names);
                self.queue_known(Owed::Subscribed(subscriber.mailbox().clone()), queue)
                    .await
                    && self.queue_known(Owed::Unsubscribed, queue).await
            }
        }
    }

    /// A request on a subscribed connection: only the pub/sub commands, `PING` and `QUIT`
    /// are served, as in Redis. False once the connection is to close.
    pub(super) async fn answer_subscribed(
        &self,
        parsed: Result<ClientRequest, CommandError>,
        name: String,
        subscription: &mut Subscription,
        queue: ReplyQueue<'_>,
    ) -> bool {
        let Some(subscriber) = &subscription.0 else {
            unreachable!("answer_subscribed is for subscribed connections");
        };
        let error = |text: String| Reply::Error(text);
        match parsed {
            Err(refused) => subscriber.reply(&error(refused.0)),
            Ok(ClientRequest::PubSub(PubSubRequest::Subscribe(kind, names))) => {
                if let Err(refused) = subscriber.subscribe(kind, names) {
                    subscriber.reply(&error(refused));
                }
            }
            Ok(ClientRequest::PubSub(PubSubRequest::Unsubscribe(kind, names))) => {
                if subscriber.unsubscribe(kind, names) == 0 {
                    subscription.0 = None;
                    return self.queue_known(Owed::Unsubscribed, queue).await;
                }
            }
            Ok(ClientRequest::Ping(message)) => subscriber.reply(&Reply::Array(vec![
                Reply::Bulk(b"pong".to_vec()),
                Reply::Bulk(message.unwrap_or_default()),
            ])),
            Ok(ClientRequest::Quit) => {
                subscription.0 = None;
                return self.queue_known(Owed::Unsubscribed, queue).await
                    && self.queue_known(Owed::Close(Reply::Ok), queue).await;
            }
            Ok(_) => subscriber.reply(&error(format!(
                "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
            ))),
        }
        true
    }

    /// `RESET` on a subscribed connection: it leaves every channel and pattern at once,
    /// without a reply for each (as Redis does), and subscribed mode with them; what the
    /// mailbox still holds is written before the replies that follow. The rest of `RESET`
    /// is the connection's as anywhere. False if the writer is gone.
    pub(super) async fn leave_subscribed(
        &self,
        subscription: &mut Subscription,
        queue: ReplyQueue<'_>,
    ) -> bool {
        if subscription.0.take().is_none() {
            return true;
        }
        self.queue_known(Owed::Unsubscribed, queue).await
    }

    /// Logs and counts a subscriber disconnected for falling behind.
    pub(super) fn subscriber_fell_behind(&self) {
        self.shared.metrics.error("pubsub_slow_subscriber");
        tracing::warn!(client = %self.addr, "disconnecting a subscriber that fell behind: its mailbox passed its bound");
    }
}

/// The writer's side: the mailbox it also writes from, while the connection is subscribed.
#[derive(Default)]
pub(super) struct Inbox(Option<Arc<Mailbox>>);

impl Inbox {
    /// Whether the connection is in subscribed mode, as the writer knows it.
    pub(super) fn is_active(&self) -> bool {
        self.0.is_some()
    }

    /// Takes a marker from the reply queue (`None` comes back), or passes the reply on.
    /// Leaving subscribed mode writes what the mailbox still holds first.
    pub(super) fn receive(
        &mut self,
        owed: Owed,
        out: &mut BytesMut,
    ) -> Result<Option<Owed>, Overflowed> {
        match owed {
            Owed::Subscribed(mailbox) => self.0 = Some(mailbox),
            Owed::Unsubscribed => {
                if let Some(mailbox) = self.0.take() {
                    mailbox.take_into(out, usize::MAX)?;
                }
            }
            other => return Ok(Some(other)),
        }
        Ok(None)
    }

    /// Moves waiting frames to `out` while it is short; `Overflowed` as soon as the mailbox
    /// is, however long `out` is (the socket may take nothing more).
    pub(super) fn fill(&self, out: &mut BytesMut) -> Result<(), Overflowed> {
        match &self.0 {
            Some(mailbox) if out.len() < TAKE_BYTES => mailbox.take_into(out, TAKE_BYTES).map(drop),
            Some(mailbox) if mailbox.overflowed() => Err(Overflowed),
            _ => Ok(()),
        }
    }

    /// Waits until something was pushed to the mailbox (or it overflowed); never, when
    /// there is none.
    pub(super) async fn wait(&self) {
        match &self.0 {
            Some(mailbox) => mailbox.wait().await,
            None => std::future::pending().await,
        }
    }
}
