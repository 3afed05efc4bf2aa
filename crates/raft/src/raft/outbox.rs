//! Messages waiting for the next Ready, in the two classes the durability rule needs.

use crate::message::Message;

/// Messages queued by the protocol, in the order it queued them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outbox {
    /// Messages that may be sent at once.
    messages: Vec<Message>,
    /// Messages that promise durability (vote grants, append acceptances, snapshot chunk
    /// acknowledgements) and may only be sent once the hard state and entries of the same
    /// Ready are durable (thesis §3.8).
    persisted_messages: Vec<Message>,
}

impl Outbox {
    /// Queues a message that may leave at once.
    pub(crate) fn send(&mut self, message: Message) {
        self.messages.push(message);
    }

    /// Queues a message that may leave only once this Ready is durable (thesis §3.8).
    pub(crate) fn send_after_persist(&mut self, message: Message) {
        self.persisted_messages.push(message);
    }

    /// Whether anything waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.persisted_messages.is_empty()
    }

    /// Both queues, for the Ready being built.
    pub(crate) fn take(&mut self) -> (Vec<Message>, Vec<Message>) {
        (
            std::mem::take(&mut self.messages),
            std::mem::take(&mut self.persisted_messages),
        )
    }
}
