//! [`Mailbox`]: what waits to be written to one subscribed connection — its replies to
//! `SUBSCRIBE` and kin, and the messages published to it — bounded in count and bytes.
//!
//! The publisher never waits: a message that would pass the bound marks the mailbox
//! overflowed, drops what it held, and the connection is closed with a logged reason
//! (Redis's `client-output-buffer-limit pubsub`). Delivery is at most once.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

/// The most messages waiting for one subscriber.
pub const MAX_MAILBOX_MESSAGES: usize = 65_536;
/// The most bytes of messages waiting for one subscriber.
pub const MAX_MAILBOX_BYTES: usize = 8 * 1024 * 1024;

/// Frames waiting for one subscribed connection's writer.
#[derive(Debug, Default)]
pub struct Mailbox {
    queue: Mutex<Queue>,
    ready: Notify,
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
    /// Queues a frame for the writer; false (and the mailbox overflowed, emptied) if it
    /// does not fit.
    pub fn push(&self, frame: Bytes) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.overflowed {
            return false;
        }
        let bytes = queue.bytes.saturating_add(frame.len());
        let fits = queue.frames.len() < MAX_MAILBOX_MESSAGES && bytes <= MAX_MAILBOX_BYTES;
        if fits {
            queue.bytes = bytes;
            queue.frames.push_back(frame);
        } else {
            queue.overflowed = true;
            queue.frames = VecDeque::new();
            queue.bytes = 0;
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
}
