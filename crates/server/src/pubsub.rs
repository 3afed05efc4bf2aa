//! Publish/subscribe on one node: keyspace notifications of what it applies, and the
//! subscribers they go to.
//!
//! # Layout
//! - `flags`: [`NotifyFlags`], the `notify-keyspace-events` setting in Redis's letters.
//! - `glob`: Redis's glob patterns (`PSUBSCRIBE`, `CONFIG GET`), the store's matcher.
//! - `mailbox`: [`Mailbox`], one subscriber's bounded queue of frames.
//! - `hub`: [`Hub`], the subscribers by channel and pattern, the publisher thread, and
//!   [`Subscriber`], one connection's subscriptions.

mod flags;
pub mod glob;
mod hub;
mod mailbox;

pub use flags::{NotifyFlags, INVALID_FLAGS};
pub use hub::{Hub, Kind, Subscriber};
pub use mailbox::{Mailbox, Overflowed};
