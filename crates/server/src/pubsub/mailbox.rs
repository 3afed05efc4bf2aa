//! [`Mailbox`]: what waits to be written to one subscribed connection — its replies to
//! `SUBSCRIBE` and kin, and the messages published to it — bounded in count and bytes.
//!
//! The publisher never waits: a message that would pass the bound marks the mailbox
//! overflowed, drops what it held, and the connection is closed with a logged reason
//! (Redis's `client-output-buffer-limit pubsub`). Delivery is at most once. The mailboxes
//! of a node's subscribers together hold at most [`MAX_ALL_MAILBOXES_BYTES`]: the subscriber
//! whose message would pass it overflows.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

/// The most messages waiting for one subscriber.
pub const MAX_MAILBOX_MESSAGES: usize = 65_536;
/// The most bytes of messages waiting for one subscriber.
pub const MAX_MAILBOX_BYTES: usize = 8 * 1024 * 1024;

/// The most bytes the mailboxes of all subscribers hold together.
pub const MAX_ALL_MAILBOXES_BYTES: usize = 512 * 1024 * 1024;

/// The bytes all mailboxes hold, against their shared limit.
#[derive(Debug)]
pub struct MailboxBudget {
    used: AtomicUsize,
    limit: usize,
}

impl Default for MailboxBudget {
    fn default() -> Self {
        MailboxBudget {
            used: AtomicUsize::new(0),
            limit: MAX_ALL_MAILBOXES_BYTES,
        }
    }
}

impl MailboxBudget {
    /// Takes `bytes` of the budget; false, nothing taken, if they pass the limit.
    fn hold(&self, bytes: usize) -> bool {
        let used = self.used.fetch_add(bytes, Ordering::AcqRel);
        if used.saturating_add(bytes) > self.limit {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Frames waiting for one subscribed connection's writer.
#[derive(Debug, Default)]
pub struct Mailbox {
    queue: Mutex<Queue>,
    ready: Notify,
    budget: Arc<MailboxBudget>,
}

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Bytes>,
    /// Invariant: the sum of the lengths of `frames`, at most `MAX_MAILBOX_BYTES`.
    bytes: usize,
    /// Set once a frame did not fit: the connection is to close.
    overflowed: bool,
}

/// The subscriber fell behind: its mailbox passed its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflowed;

impl Mailbox {
    /// An empty mailbox whose bytes count against `budget`.
    pub fn new(budget: Arc<MailboxBudget>) -> Mailbox {
        Mailbox {
            queue: Mutex::default(),
            ready: Notify::new(),
            budget,
        }
    }

    /// Queues a frame for the writer; false (and the mailbox overflowed, emptied) if it
    /// does not fit.
    pub fn push(&self, frame: Bytes) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.overflowed {
            return false;
        }
        let bytes = queue.bytes.saturating_add(frame.len());
        let fits = queue.frames.len() < MAX_MAILBOX_MESSAGES
            && bytes <= MAX_MAILBOX_BYTES
            && self.budget.hold(frame.len());
        if fits {
            queue.bytes = bytes;
            queue.frames.push_back(frame);
        } else {
            queue.overflowed = true;
            queue.frames = VecDeque::new();
            self.budget.release(std::mem::take(&mut queue.bytes));
        }
        drop(queue);
        self.ready.notify_one();
        fits
    }

    /// Moves waiting frames into `out` until it holds `up_to` bytes (at least one frame if
    /// any waits); whether any moved, or `Overflowed`.
    pub fn take_into(&self, out: &mut BytesMut, up_to: usize) -> Result<bool, Overflowed> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.overflowed {
            return Err(Overflowed);
        }
        let mut moved = false;
        while let Some(frame) = queue.frames.front() {
            if moved && out.len().saturating_add(frame.len()) > up_to {
                break;
            }
            let frame = queue.frames.pop_front().expect("front exists");
            queue.bytes -= frame.len();
            self.budget.release(frame.len());
            out.extend_from_slice(&frame);
            moved = true;
        }
        Ok(moved)
    }

    /// Whether a frame did not fit: the connection is to close.
    pub fn overflowed(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .overflowed
    }

    /// Whether nothing waits (and the mailbox did not overflow).
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.frames.is_empty() && !queue.overflowed
    }

    /// Waits until a frame may have been pushed since the last wait.
    pub async fn wait(&self) {
        self.ready.notified().await;
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let queue = self.queue.get_mut().unwrap_or_else(|e| e.into_inner());
        self.budget.release(queue.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_in_order_and_within_the_size_asked() {
        let mailbox = Mailbox::default();
        for frame in ["one", "two", "three"] {
            assert!(mailbox.push(Bytes::from(frame)));
        }
        let mut out = BytesMut::new();
        assert_eq!(mailbox.take_into(&mut out, 5), Ok(true));
        assert_eq!(&out[..], b"one", "a second frame would pass 5 bytes");
        assert_eq!(mailbox.take_into(&mut out, 1_000), Ok(true));
        assert_eq!(&out[..], b"onetwothree");
        assert_eq!(mailbox.take_into(&mut out, 1_000), Ok(false));
        assert!(mailbox.is_empty());
    }

    #[test]
    fn a_subscriber_that_falls_behind_overflows_and_is_held_no_more() {
        let mailbox = Mailbox::default();
        let frame = Bytes::from(vec![b'm'; 1024]);
        let fit = MAX_MAILBOX_BYTES / frame.len();
        for _ in 0..fit {
            assert!(mailbox.push(frame.clone()));
        }
        assert!(
            !mailbox.push(frame.clone()),
            "one more passes the byte bound"
        );
        assert!(
            !mailbox.push(Bytes::from_static(b"x")),
            "and nothing more is taken"
        );
        assert_eq!(
            mailbox.take_into(&mut BytesMut::new(), usize::MAX),
            Err(Overflowed)
        );

        let mailbox = Mailbox::default();
        for _ in 0..MAX_MAILBOX_MESSAGES {
            assert!(mailbox.push(Bytes::from_static(b"x")));
        }
        assert!(
            !mailbox.push(Bytes::from_static(b"x")),
            "one more passes the count"
        );
    }

    #[test]
    fn the_mailboxes_together_stay_within_their_shared_budget() {
        let budget = Arc::new(MailboxBudget {
            used: AtomicUsize::new(0),
            limit: 3_000,
        });
        let used = |budget: &MailboxBudget| budget.used.load(Ordering::Acquire);
        let first = Mailbox::new(budget.clone());
        let second = Mailbox::new(budget.clone());
        let frame = Bytes::from(vec![b'm'; 1_000]);
        assert!(first.push(frame.clone()) && first.push(frame.clone()));
        assert!(second.push(frame.clone()));
        assert!(
            !second.push(frame.clone()),
            "the fourth passes the shared budget"
        );
        assert_eq!(
            second.take_into(&mut BytesMut::new(), usize::MAX),
            Err(Overflowed)
        );
        assert_eq!(
            used(&budget),
            2_000,
            "the overflowed one gave its bytes back"
        );
        first.take_into(&mut BytesMut::new(), 1_000).unwrap();
        assert_eq!(used(&budget), 1_000, "taken bytes are given back");
        drop(first);
        assert_eq!(used(&budget), 0, "a dropped mailbox gives back the rest");
    }
}
