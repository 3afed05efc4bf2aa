//! [`Hub`]: this node's subscribers, by channel and pattern, and the publishing of the
//! keyspace events the driver applied to them.
//!
//! The driver thread hands each apply batch's events to the hub without waiting (a queue
//! bounded in bytes; past it a batch is dropped, counted); a publisher thread of its own
//! matches them against the subscriptions and puts the messages in the subscribers'
//! mailboxes, in log order. A subscriber's registration and its `subscribe` reply happen
//! under the registry's lock, and so does the delivery of a message, so no message on a
//! channel reaches a connection before its reply to subscribing to it, and none after its
//! reply to leaving it.
//!
//! The lock is only ever held for bookkeeping, never for matching: the publisher matches a
//! channel against a copy of the distinct patterns taken outside it (shared, refreshed when
//! a pattern comes or goes), cheapest first and within a step budget per event, then takes
//! the lock to hand the message to whoever subscribes to the matching patterns then. Tokio
//! tasks that subscribe or close wait for that short hand-over at most.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::mem::size_of;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use bytes::{Bytes, BytesMut};
use skiff_kv::{KeyspaceEvent, KeyspaceEvents, Reply};

use super::flags::NotifyFlags;
use super::glob::Glob;
use super::mailbox::Mailbox;
use crate::metrics::Metrics;
use crate::resp;

/// The most channels and patterns one connection may subscribe to.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 10_000;
/// The most patterns one connection may subscribe to: each is matched against every event.
pub const MAX_PATTERNS_PER_CONNECTION: usize = 256;
/// The longest pattern.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// The bytes of channel and pattern names one connection may subscribe to.
pub const MAX_NAME_BYTES_PER_CONNECTION: usize = 1024 * 1024;
/// The bytes of channel and pattern names all this node's connections may subscribe to.
pub const MAX_NAME_BYTES_PER_NODE: usize = 64 * 1024 * 1024;
/// The most distinct patterns this node matches each event against.
pub const MAX_PATTERNS_PER_NODE: usize = 16_384;
/// The matcher steps one event may take across all patterns; the patterns left when it
/// runs out (the costliest, tried last) miss that event, counted as dropped.
pub const MAX_MATCH_STEPS_PER_EVENT: u64 = 1 << 22;
/// Apply batches waiting for the publisher thread; one more is dropped.
const MAX_QUEUED_BATCHES: usize = 1024;
/// The bytes of events waiting for the publisher thread; a batch that would pass it is
/// dropped.
pub const MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;

/// The longest channel name that can carry a message: a key of the store's longest on its
/// keyspace channel (keyevent channels are shorter). Longer ones are refused.
pub fn max_channel_bytes() -> usize {
    KEYSPACE.len() + skiff_kv::KvConfig::default().max_key_bytes
}

const KEYSPACE: &[u8] = b"__keyspace@0__:";
const KEYEVENT: &[u8] = b"__keyevent@0__:";

/// Channels or patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `SUBSCRIBE`: exact channel names.
    Channel,
    /// `PSUBSCRIBE`: glob patterns.
    Pattern,
}

impl Kind {
    fn subscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
        }
    }

    fn unsubscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"unsubscribe",
            Kind::Pattern => b"punsubscribe",
        }
    }
}

/// This node's subscribers and its `notify-keyspace-events` setting.
#[derive(Debug, Default)]
pub struct Hub {
    flags: AtomicU32,
    registry: Mutex<Registry>,
    /// Connections with at least one subscription.
    listeners: AtomicUsize,
    /// The publisher thread's queue, once started.
    publisher: OnceLock<crossbeam_channel::Sender<KeyspaceEvents>>,
    metrics: OnceLock<Arc<Metrics>>,
    /// What all subscribers' mailboxes hold.
    mailboxes: Arc<super::mailbox::MailboxBudget>,
    /// How many times events were dropped, for logging the first and then every 1,000th.
    drops: AtomicUsize,
    /// The bytes of the batches in the publisher's queue.
    /// Invariant: at most `MAX_QUEUED_BYTES`.
    queued_bytes: AtomicUsize,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    channels: HashMap<Vec<u8>, BTreeMap<u64, Arc<Mailbox>>>,
    patterns: BTreeMap<Arc<[u8]>, BTreeMap<u64, Arc<Mailbox>>>,
    /// What each connection subscribed to.
    members: HashMap<u64, Member>,
    /// The bytes of every member's names.
    /// Invariant: the sum of `members[..].bytes`, at most `MAX_NAME_BYTES_PER_NODE`.
    name_bytes: usize,
    /// The distinct patterns, cheapest first, as last copied for the publisher; `None` once
    /// one came or went since.
    pattern_list: Option<PatternList>,
    /// How many times a distinct pattern came or went.
    pattern_changes: u64,
}

/// The distinct patterns in the order the publisher tries them: cheapest first.
type PatternList = Arc<[(Arc<[u8]>, Glob)]>;

#[derive(Debug, Default)]
struct Member {
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeSet<Vec<u8>>,
    /// The bytes of `channels` and `patterns`.
    /// Invariant: at most `MAX_NAME_BYTES_PER_CONNECTION`.
    bytes: usize,
}

impl Member {
    fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    fn names(&mut self, kind: Kind) -> &mut BTreeSet<Vec<u8>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
        }
    }
}

impl Registry {
    fn index(&mut self, kind: Kind, name: &[u8]) -> Option<&mut BTreeMap<u64, Arc<Mailbox>>> {
        match kind {
            Kind::Channel => self.channels.get_mut(name),
            Kind::Pattern => self.patterns.get_mut(name),
        }
    }

    fn add(&mut self, kind: Kind, name: Vec<u8>, id: u64, mailbox: &Arc<Mailbox>) {
        let subscribers = match kind {
            Kind::Channel => self.channels.entry(name).or_default(),
            Kind::Pattern => {
                if !self.patterns.contains_key(name.as_slice()) {
                    self.pattern_list = None;
                    self.pattern_changes += 1;
                }
                self.patterns.entry(Arc::from(name)).or_default()
            }
        };
        subscribers.insert(id, mailbox.clone());
    }

    fn remove(&mut self, kind: Kind, name: &[u8], id: u64) {
        let Some(subscribers) = self.index(kind, name) else {
            return;
        };
        subscribers.remove(&id);
        if subscribers.is_empty() {
            match kind {
                Kind::Channel => {
                    self.channels.remove(name);
                }
                Kind::Pattern => {
                    self.patterns.remove(name);
                    self.pattern_list = None;
                    self.pattern_changes += 1;
                }
            };
        }
    }

    /// Leaves one of `id`'s names, keeping the byte counts.
    fn forget(&mut self, kind: Kind, name: &[u8], id: u64) {
        self.name_bytes = self.name_bytes.saturating_sub(name.len());
        self.remove(kind, name, id);
    }

    /// Queues `message` on `channel` for its subscribers, then for those of the patterns
    /// found to match it (Redis's order), as they subscribe now.
    fn deliver(&self, channel: &[u8], message: &[u8], matched: &[Arc<[u8]>]) {
        if let Some(subscribers) = self.channels.get(channel) {
            let frame = frame(&[b"message", channel, message]);
            for mailbox in subscribers.values() {
                mailbox.push(frame.clone());
            }
        }
        for pattern in matched {
            if let Some(subscribers) = self.patterns.get(&**pattern) {
                let frame = frame(&[b"pmessage", pattern, channel, message]);
                for mailbox in subscribers.values() {
                    mailbox.push(frame.clone());
                }
            }
        }
    }
}

/// The patterns of `list` that `channel` matches, trying them in order until `steps` runs
/// out; the second value is whether some were left untried.
fn matching(list: &[(Arc<[u8]>, Glob)], channel: &[u8], steps: &mut u64) -> (Vec<Arc<[u8]>>, bool) {
    let mut matched = Vec::new();
    for (pattern, glob) in list {
        match glob.matches_within(channel, steps) {
            Some(true) => matched.push(pattern.clone()),
            Some(false) => {}
            None => return (matched, true),
        }
    }
    (matched, false)
}

/// What a batch holds in memory, for the queue's bound.
fn batch_bytes(batch: &KeyspaceEvents) -> usize {
    let keys: usize = batch.events.iter().map(|e| e.key.capacity()).sum();
    keys.saturating_add(batch.events.capacity() * size_of::<KeyspaceEvent>())
        .saturating_add(size_of::<KeyspaceEvents>())
}

/// A RESP2 array of bulk strings.
fn frame(parts: &[&[u8]]) -> Bytes {
    let items = parts.iter().map(|p| Reply::Bulk(p.to_vec())).collect();
    let mut out = BytesMut::new();
    resp::write_reply(&mut out, &Reply::Array(items));
    out.freeze()
}

/// A `subscribe`-like reply: the word, the name (nil for none) and the count.
fn confirmation(word: &[u8], name: Option<&[u8]>, count: usize) -> Bytes {
    let name = name.map_or(Reply::Nil, |n| Reply::Bulk(n.to_vec()));
    let reply = Reply::Array(vec![
        Reply::Bulk(word.to_vec()),
        name,
        Reply::Integer(i64::try_from(count).unwrap_or(i64::MAX)),
    ]);
    let mut out = BytesMut::new();
    resp::write_reply(&mut out, &reply);
    out.freeze()
}

impl Hub {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `notify-keyspace-events` setting in force.
    pub fn flags(&self) -> NotifyFlags {
        NotifyFlags::from_bits(self.flags.load(Ordering::Relaxed))
    }

    /// Changes the `notify-keyspace-events` setting.
    pub fn set_flags(&self, flags: NotifyFlags) {
        self.flags.store(flags.bits(), Ordering::Relaxed);
    }

    /// Starts the publisher thread; until then nothing is published.
    pub fn start(self: &Arc<Hub>, node: u64, metrics: Arc<Metrics>) -> std::io::Result<()> {
        let (sender, receiver) = crossbeam_channel::bounded(MAX_QUEUED_BATCHES);
        let hub: Weak<Hub> = Arc::downgrade(self);
        std::thread::Builder::new()
            .name(format!("skiff-notify-{node}"))
            .spawn(move || {
                for batch in receiver {
                    let Some(hub) = hub.upgrade() else {
                        return;
                    };
                    hub.publish_now(&batch);
                    hub.queued_bytes
                        .fetch_sub(batch_bytes(&batch), Ordering::Relaxed);
                }
            })?;
        let _ = self.metrics.set(metrics);
        let _ = self.publisher.set(sender);
        Ok(())
    }

    /// Whether the driver should record keyspace events: the publisher runs, the setting
    /// publishes something, and some connection subscribes.
    pub fn wants_events(&self) -> bool {
        self.publisher.get().is_some()
            && self.flags().publishes()
            && self.listeners.load(Ordering::Relaxed) > 0
    }

    /// Hands an apply batch's events to the publisher thread without waiting; a full queue
    /// drops them (delivery is at most once).
    pub fn publish(&self, events: KeyspaceEvents) {
        let count = events.events.len() as u64;
        if events.dropped > 0 {
            self.count_dropped(events.dropped);
        }
        if count == 0 {
            return;
        }
        let Some(publisher) = self.publisher.get() else {
            return;
        };
        let bytes = batch_bytes(&events);
        let queued = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if queued.saturating_add(bytes) > MAX_QUEUED_BYTES || publisher.try_send(events).is_err() {
            self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.count_dropped(count);
        }
    }

    fn count_dropped(&self, events: u64) {
        if self.drops.fetch_add(1, Ordering::Relaxed) % 1_000 == 0 {
            tracing::warn!(events, "keyspace notifications dropped: this node records at most 65,536 per batch, its publisher holds at most 64 MiB of them, and an event's matching against patterns stops at its step budget");
        }
        if let Some(metrics) = self.metrics.get() {
            metrics
                .errors
                .with_label_values(&["notifications_dropped"])
                .inc_by(events);
        }
    }

    /// Publishes each event on the channels the setting asks for, in order.
    pub(crate) fn publish_now(&self, batch: &KeyspaceEvents) {
        let flags = self.flags();
        let mut channel = Vec::new();
        let mut cut_short = 0u64;
        for event in &batch.events {
            if !flags.covers(event.event) {
                continue;
            }
            let patterns = self.pattern_list();
            let mut steps = MAX_MATCH_STEPS_PER_EVENT;
            if flags.keyspace() {
                channel.clear();
                channel.extend_from_slice(KEYSPACE);
                channel.extend_from_slice(&event.key);
                let (matched, short) = matching(&patterns, &channel, &mut steps);
                cut_short += u64::from(short);
                // The lock is taken for the hand-over only, per channel: a connection
                // subscribing meanwhile waits for that at most.
                self.registry()
                    .deliver(&channel, event.event.as_bytes(), &matched);
            }
            if flags.keyevent() {
                channel.clear();
                channel.extend_from_slice(KEYEVENT);
                channel.extend_from_slice(event.event.as_bytes());
                let (matched, short) = matching(&patterns, &channel, &mut steps);
                cut_short += u64::from(short);
                self.registry().deliver(&channel, &event.key, &matched);
            }
        }
        if cut_short > 0 {
            self.count_dropped(cut_short);
        }
    }

    /// The distinct patterns, cheapest first: the copy made since the last change, or a
    /// new one (compiled and sorted outside the lock).
    fn pattern_list(&self) -> PatternList {
        let (names, changes): (Vec<Arc<[u8]>>, u64) = {
            let registry = self.registry();
            if let Some(list) = &registry.pattern_list {
                return list.clone();
            }
            let names = registry.patterns.keys().cloned().collect();
            (names, registry.pattern_changes)
        };
        let mut compiled: Vec<(Arc<[u8]>, Glob)> = names
            .into_iter()
            .map(|name| {
                let glob = Glob::new(&name);
                (name, glob)
            })
            .collect();
        compiled.sort_by_cached_key(|(name, glob)| (glob.cost_rank(), name.len()));
        let list: PatternList = compiled.into();
        let mut registry = self.registry();
        // Kept unless a pattern came or went while it was sorted.
        if registry.pattern_changes == changes {
            registry.pattern_list = Some(list.clone());
        }
        list
    }

    /// A new connection's place among the subscribers (subscribed to nothing yet).
    pub fn subscriber(self: &Arc<Hub>) -> Subscriber {
        let id = {
            let mut registry = self.registry();
            registry.next_id += 1;
            registry.next_id
        };
        Subscriber {
            hub: self.clone(),
            id,
            mailbox: Arc::new(Mailbox::new(self.mailboxes.clone())),
        }
    }
}

/// One connection's subscriptions; dropping it leaves them all.
#[derive(Debug)]
pub struct Subscriber {
    hub: Arc<Hub>,
    id: u64,
    mailbox: Arc<Mailbox>,
}

impl Subscriber {
    /// Where this connection's replies and messages wait for its writer.
    pub fn mailbox(&self) -> &Arc<Mailbox> {
        &self.mailbox
    }

    /// How many channels and patterns the connection subscribes to.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.hub
            .registry()
            .members
            .get(&self.id)
            .map_or(0, Member::count)
    }

    /// Queues a reply after the frames already waiting (`PING`, an error in subscribed
    /// mode).
    pub fn reply(&self, reply: &Reply) {
        let mut out = BytesMut::new();
        resp::write_reply(&mut out, reply);
        self.mailbox.push(out.freeze());
    }

    /// Subscribes to `names`, queuing a reply for each; all or none, refused with an error
    /// text when a name is too long or the connection or the node would pass its limits.
    pub fn subscribe(&self, kind: Kind, names: Vec<Vec<u8>>) -> Result<(), String> {
        let max_bytes = match kind {
            Kind::Channel => max_channel_bytes(),
            Kind::Pattern => MAX_PATTERN_BYTES,
        };
        if names.iter().any(|name| name.len() > max_bytes) {
            let what = if kind == Kind::Channel {
                "channel"
            } else {
                "pattern"
            };
            return Err(format!("ERR {what} longer than {max_bytes} bytes"));
        }
        let mut registry = self.hub.registry();
        let member = registry.members.entry(self.id).or_default();
        let was_listening = member.count() > 0;
        let new: BTreeSet<&Vec<u8>> = names
            .iter()
            .filter(|name| !member.names(kind).contains(*name))
            .collect();
        if member.count() + new.len() > MAX_SUBSCRIPTIONS_PER_CONNECTION {
            return Err(format!(
                "ERR too many subscriptions: a connection may hold at most {MAX_SUBSCRIPTIONS_PER_CONNECTION} channels and patterns"
            ));
        }
        if kind == Kind::Pattern && member.patterns.len() + new.len() > MAX_PATTERNS_PER_CONNECTION
        {
            return Err(format!(
                "ERR too many patterns: a connection may hold at most {MAX_PATTERNS_PER_CONNECTION}"
            ));
        }
        let new_bytes: usize = new.iter().map(|name| name.len()).sum();
        if member.bytes + new_bytes > MAX_NAME_BYTES_PER_CONNECTION {
            return Err(format!(
                "ERR too many subscriptions: a connection may hold at most {MAX_NAME_BYTES_PER_CONNECTION} bytes of channel and pattern names"
            ));
        }
        if registry.name_bytes + new_bytes > MAX_NAME_BYTES_PER_NODE {
            return Err(format!(
                "ERR too many subscriptions on this node: its connections may hold at most {MAX_NAME_BYTES_PER_NODE} bytes of channel and pattern names"
            ));
        }
        if kind == Kind::Pattern {
            let unknown = new
                .iter()
                .filter(|p| !registry.patterns.contains_key(p.as_slice()));
            if registry.patterns.len() + unknown.count() > MAX_PATTERNS_PER_NODE {
                return Err(format!(
                    "ERR too many patterns on this node: its connections may hold at most {MAX_PATTERNS_PER_NODE} distinct ones"
                ));
            }
        }
        for name in names {
            let member = registry.members.entry(self.id).or_default();
            let added = member.names(kind).insert(name.clone());
            if added {
                member.bytes += name.len();
            }
            let count = member.count();
            let frame = confirmation(kind.subscribe_word(), Some(&name), count);
            if added {
                registry.name_bytes += name.len();
                registry.add(kind, name, self.id, &self.mailbox);
            }
            self.mailbox.push(frame);
        }
        if !was_listening {
            self.hub.listeners.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Leaves `names` (every channel or pattern of the kind when empty), queuing a reply
    /// for each, or one with a nil name when there was none to leave. The count left comes
    /// back.
    pub fn unsubscribe(&self, kind: Kind, names: Vec<Vec<u8>>) -> usize {
        let mut registry = self.hub.registry();
        let member = registry.members.entry(self.id).or_default();
        let was_listening = member.count() > 0;
        let names: Vec<Vec<u8>> = if names.is_empty() {
            member.names(kind).iter().cloned().collect()
        } else {
            names
        };
        let word = kind.unsubscribe_word();
        if names.is_empty() {
            self.mailbox.push(confirmation(word, None, member.count()));
        }
        for name in names {
            let member = registry.members.entry(self.id).or_default();
            let removed = member.names(kind).remove(&name);
            if removed {
                member.bytes -= name.len();
            }
            let count = member.count();
            if removed {
                registry.forget(kind, &name, self.id);
            }
            self.mailbox.push(confirmation(word, Some(&name), count));
        }
        let left = registry.members.get(&self.id).map_or(0, Member::count);
        if left == 0 {
            registry.members.remove(&self.id);
            if was_listening {
                self.hub.listeners.fetch_sub(1, Ordering::Relaxed);
            }
        }
        left
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let mut registry = self.hub.registry();
        let Some(member) = registry.members.remove(&self.id) else {
            return;
        };
        if member.count() > 0 {
            self.hub.listeners.fetch_sub(1, Ordering::Relaxed);
        }
        for name in member.channels {
            registry.forget(Kind::Channel, &name, self.id);
        }
        for name in member.patterns {
            registry.forget(Kind::Pattern, &name, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_kv::KeyspaceEvent;

    fn drain(subscriber: &Subscriber) -> Vec<u8> {
        let mut out = BytesMut::new();
        subscriber
            .mailbox()
            .take_into(&mut out, usize::MAX)
            .unwrap();
        out.to_vec()
    }

    fn names(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|n| n.as_bytes().to_vec()).collect()
    }

    fn events(list: &[(&'static str, &str)]) -> KeyspaceEvents {
        KeyspaceEvents {
            events: list
                .iter()
                .map(|(event, key)| KeyspaceEvent {
                    event,
                    key: key.as_bytes().to_vec(),
                })
                .collect(),
            dropped: 0,
        }
    }

    #[test]
    fn subscribing_answers_each_channel_with_the_running_count_as_redis_does() {
        let hub = Arc::new(Hub::default());
        let subscriber = hub.subscriber();
        subscriber
            .subscribe(Kind::Channel, names(&["a", "b", "a"]))
            .unwrap();
        assert_eq!(
            drain(&subscriber),
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:2\r\n"
        );
        assert_eq!(subscriber.unsubscribe(Kind::Pattern, Vec::new()), 2);
        assert_eq!(
            drain(&subscriber),
            b"*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:2\r\n"
        );
        assert_eq!(subscriber.unsubscribe(Kind::Channel, names(&["x"])), 2);
        assert_eq!(
            drain(&subscriber),
            b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nx\r\n:2\r\n"
        );
        assert_eq!(subscriber.unsubscribe(Kind::Channel, Vec::new()), 0);
        assert_eq!(
            drain(&subscriber),
            b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n"
        );
    }

    #[test]
    fn events_reach_channel_then_pattern_subscribers_keyspace_before_keyevent() {
        let hub = Arc::new(Hub::default());
        hub.set_flags(NotifyFlags::parse(b"KEA").unwrap());
        let subscriber = hub.subscriber();
        subscriber
            .subscribe(Kind::Channel, names(&["__keyevent@0__:set"]))
            .unwrap();
        subscriber
            .subscribe(Kind::Pattern, names(&["__key*__:k*"]))
            .unwrap();
        drain(&subscriber);
        hub.publish_now(&events(&[("set", "k1"), ("del", "other")]));
        assert_eq!(
            String::from_utf8(drain(&subscriber)).unwrap(),
            "*4\r\n$8\r\npmessage\r\n$11\r\n__key*__:k*\r\n$17\r\n__keyspace@0__:k1\r\n$3\r\nset\r\n\
             *3\r\n$7\r\nmessage\r\n$18\r\n__keyevent@0__:set\r\n$2\r\nk1\r\n"
        );
    }

    #[test]
    fn the_setting_filters_classes_and_channel_kinds() {
        let hub = Arc::new(Hub::default());
        let subscriber = hub.subscriber();
        subscriber.subscribe(Kind::Pattern, names(&["*"])).unwrap();
        drain(&subscriber);
        let all = events(&[("set", "k"), ("del", "k"), ("expired", "k")]);
        hub.publish_now(&all);
        assert!(drain(&subscriber).is_empty(), "off by default");
        hub.set_flags(NotifyFlags::parse(b"Ex").unwrap());
        hub.publish_now(&all);
        let text = String::from_utf8(drain(&subscriber)).unwrap();
        assert!(text.contains("__keyevent@0__:expired"), "{text}");
        assert!(
            !text.contains("__keyevent@0__:set") && !text.contains("__keyspace"),
            "{text}"
        );
    }

    #[test]
    fn limits_refuse_the_whole_command_and_dropping_leaves_every_subscription() {
        let hub = Arc::new(Hub::default());
        let subscriber = hub.subscriber();
        let too_many: Vec<Vec<u8>> = (0..=MAX_SUBSCRIPTIONS_PER_CONNECTION)
            .map(|i| format!("c{i}").into_bytes())
            .collect();
        assert!(subscriber.subscribe(Kind::Channel, too_many).is_err());
        assert_eq!(subscriber.count(), 0, "none of them taken");
        let long = vec![b'*'; MAX_PATTERN_BYTES + 1];
        assert!(subscriber.subscribe(Kind::Pattern, vec![long]).is_err());
        subscriber.subscribe(Kind::Channel, names(&["a"])).unwrap();
        subscriber.subscribe(Kind::Pattern, names(&["p*"])).unwrap();
        assert!(hub.listeners.load(Ordering::Relaxed) == 1);
        drop(subscriber);
        assert_eq!(hub.listeners.load(Ordering::Relaxed), 0);
        let registry = hub.registry();
        assert!(registry.channels.is_empty() && registry.patterns.is_empty());
        assert!(registry.members.is_empty());
    }

    #[test]
    fn hostile_patterns_are_tried_last_within_the_budget_and_a_cheap_one_still_hears() {
        let hub = Arc::new(Hub::default());
        hub.set_flags(NotifyFlags::parse(b"KA").unwrap());
        let hostile = hub.subscriber();
        let patterns: Vec<Vec<u8>> = (0..MAX_PATTERNS_PER_CONNECTION)
            .map(|i| format!("*{}b", "a".repeat(700 + i)).into_bytes())
            .collect();
        hostile.subscribe(Kind::Pattern, patterns).unwrap();
        let watcher = hub.subscriber();
        watcher
            .subscribe(Kind::Pattern, names(&["__keyspace@0__:a*"]))
            .unwrap();
        drain(&watcher);
        let key = "a".repeat(16 * 1024);
        // Unbounded, this is 256 patterns x ~16,000 tries x ~1,000 steps: minutes.
        hub.publish_now(&events(&[("set", &key), ("del", &key)]));
        let heard = String::from_utf8(drain(&watcher)).unwrap();
        assert_eq!(heard.matches("pmessage").count(), 2, "both events heard");
        assert!(heard.ends_with("$3\r\ndel\r\n"), "in order");
        assert_eq!(hub.drops.load(Ordering::Relaxed), 1, "the cut counted");
    }

    #[test]
    fn a_pattern_left_after_the_publisher_copied_the_list_gets_nothing_more() {
        let hub = Arc::new(Hub::default());
        hub.set_flags(NotifyFlags::parse(b"KA").unwrap());
        let subscriber = hub.subscriber();
        subscriber.subscribe(Kind::Pattern, names(&["*"])).unwrap();
        subscriber.subscribe(Kind::Channel, names(&["c"])).unwrap();
        let copied = hub.pattern_list();
        assert_eq!(copied.len(), 1);
        assert!(
            Arc::ptr_eq(&copied, &hub.pattern_list()),
            "reused while unchanged"
        );
        subscriber.unsubscribe(Kind::Pattern, Vec::new());
        drain(&subscriber);
        let copied_names: Vec<Arc<[u8]>> = copied.iter().map(|(name, _)| name.clone()).collect();
        hub.registry().deliver(b"k", b"set", &copied_names);
        assert!(
            drain(&subscriber).is_empty(),
            "no message after punsubscribe"
        );
        assert!(hub.pattern_list().is_empty(), "a new copy after a change");
    }

    #[test]
    fn names_are_bounded_in_bytes_per_connection_and_channels_by_the_longest_key() {
        let hub = Arc::new(Hub::default());
        let subscriber = hub.subscriber();
        let too_long = vec![b'c'; max_channel_bytes() + 1];
        assert_eq!(
            subscriber.subscribe(Kind::Channel, vec![too_long]),
            Err(format!(
                "ERR channel longer than {} bytes",
                max_channel_bytes()
            ))
        );
        let longest = |i: usize| {
            let mut name = format!("{i}-").into_bytes();
            name.resize(max_channel_bytes(), b'c');
            name
        };
        let fit = MAX_NAME_BYTES_PER_CONNECTION / max_channel_bytes();
        subscriber
            .subscribe(Kind::Channel, (0..fit).map(longest).collect())
            .unwrap();
        let refused = subscriber.subscribe(Kind::Channel, vec![longest(fit)]);
        assert!(refused
            .unwrap_err()
            .contains("bytes of channel and pattern names"));
        assert_eq!(subscriber.count(), fit);
        assert_eq!(hub.registry().name_bytes, fit * max_channel_bytes());
        subscriber.unsubscribe(Kind::Channel, vec![longest(0)]);
        subscriber
            .subscribe(Kind::Channel, vec![longest(fit)])
            .expect("room again after leaving one");
        drop(subscriber);
        assert_eq!(hub.registry().name_bytes, 0);
    }

    #[test]
    fn the_publishers_queue_is_bounded_in_bytes_and_drops_past_it() {
        let hub = Arc::new(Hub::default());
        let (sender, receiver) = crossbeam_channel::bounded(MAX_QUEUED_BATCHES);
        hub.publisher.set(sender).unwrap();
        let big_key = "k".repeat(skiff_kv::MAX_PENDING_EVENT_BYTES / 16);
        let batch = || events(&[("set", big_key.as_str()); 16]);
        let per_batch = batch_bytes(&batch());
        let fit = MAX_QUEUED_BYTES / per_batch;
        for _ in 0..fit + 3 {
            hub.publish(batch());
        }
        assert_eq!(receiver.len(), fit, "only what fits in the bound waits");
        assert_eq!(hub.queued_bytes.load(Ordering::Relaxed), fit * per_batch);
        assert_eq!(hub.drops.load(Ordering::Relaxed), 3);
    }
}
