//! Keyspace events: what each applied entry did to which key, named as Redis names them
//! in its keyspace notifications (`set`, `del`, `expire`, `expired`, `incrby`, `hset`…).
//!
//! Every write command reports through [`StateMachine::notify`] as it changes a key (a key
//! the write created also reports `new`, first), and expiry at apply reports `expired`; whoever publishes notifications collects the events
//! with [`StateMachine::take_events`].
//!
//! The recorder is a side channel, not state: it is off until the node's owner turns it on
//! ([`StateMachine::record_events`]), and then costs one flag test per event; it takes no
//! part in equality, snapshots or replies, so replicas that record and replicas that do not
//! stay the same state machine. What it holds between two takes is bounded (count and
//! bytes); what passes the bound is counted as dropped, never kept — notifications are
//! delivered at most once.

use crate::state_machine::StateMachine;

/// The most events held between two [`take_events`](StateMachine::take_events): an entry
/// that expires or deletes more keys than this reports the first ones only.
pub const MAX_PENDING_EVENTS: usize = 65_536;
/// The most key bytes held between two takes.
pub const MAX_PENDING_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One keyspace event: `event` happened to `key` (Redis's event name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyspaceEvent {
    /// Redis's name for what happened: `set`, `del`, `expire`, `expired`, `incrby`…
    pub event: &'static str,
    /// The key it happened to.
    pub key: Vec<u8>,
}

/// The events of the entries applied since the last take, in log order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyspaceEvents {
    /// The events kept, in the order they happened.
    pub events: Vec<KeyspaceEvent>,
    /// How many more happened and were dropped at the bound.
    pub dropped: u64,
}

/// Collects keyspace events while someone listens.
#[derive(Clone, Debug, Default)]
pub(crate) struct EventRecorder {
    /// Whether events are recorded at all (set by the node's owner).
    listening: bool,
    pending: KeyspaceEvents,
    /// The key bytes in `pending`.
    /// Invariant: the sum of `pending.events[i].key.len()`, at most `MAX_PENDING_EVENT_BYTES`.
    pending_bytes: usize,
}

/// The recorder is not state: two state machines are equal whatever they recorded.
impl PartialEq for EventRecorder {
    fn eq(&self, _: &EventRecorder) -> bool {
        true
    }
}

impl Eq for EventRecorder {}

impl EventRecorder {
    /// Records `event` on `key` if someone listens and the bound allows.
    pub(crate) fn record(&mut self, event: &'static str, key: &[u8]) {
        if !self.listening {
            return;
        }
        let bytes = self.pending_bytes.saturating_add(key.len());
        if self.pending.events.len() >= MAX_PENDING_EVENTS || bytes > MAX_PENDING_EVENT_BYTES {
            self.pending.dropped = self.pending.dropped.saturating_add(1);
            return;
        }
        self.pending_bytes = bytes;
        self.pending.events.push(KeyspaceEvent {
            event,
            key: key.to_vec(),
        });
    }
}

impl StateMachine {
    /// Reports that the event `event` happened to `key` in the entry being applied,
    /// preceded by `new` when the write just created the key (Redis 7.0 publishes `new`
    /// wherever a key is added, before the command's own event).
    pub(crate) fn notify(&mut self, event: &'static str, key: &[u8]) {
        if !self.events.listening {
            return;
        }
        self.notify_new(key);
        self.events.record(event, key);
    }

    /// Reports `new` if the last write created `key`.
    fn notify_new(&mut self, key: &[u8]) {
        if self.events.listening && self.data.take_created(key) {
            self.events.record("new", key);
        }
    }

    /// Turns the recording of keyspace events on or off. Off (the default, and after
    /// [`restore`](StateMachine::restore)), [`notify`](StateMachine::notify) costs one flag
    /// test; turning it off drops what was held.
    pub fn record_events(&mut self, listening: bool) {
        self.events.listening = listening;
        self.data.track_created(listening);
        if !listening {
            self.take_events();
        }
    }

    /// Whether keyspace events are being recorded.
    pub fn records_events(&self) -> bool {
        self.events.listening
    }

    /// The events of the entries applied since the last take, in log order; the recorder is
    /// left empty.
    pub fn take_events(&mut self) -> KeyspaceEvents {
        self.events.pending_bytes = 0;
        std::mem::take(&mut self.events.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, Deadline, ExpireCondition, Expiry, KvConfig, SetCondition, SetOptions};

    fn set(key: &str) -> Command {
        Command::Set {
            key: key.as_bytes().to_vec(),
            value: b"v".to_vec(),
            condition: SetCondition::Always,
        }
    }

    fn names(events: &KeyspaceEvents) -> Vec<(&'static str, String)> {
        let text = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        events
            .events
            .iter()
            .map(|e| (e.event, text(&e.key)))
            .collect()
    }

    #[test]
    fn nothing_is_recorded_until_someone_listens() {
        let mut kv = StateMachine::new(KvConfig::default()).unwrap();
        kv.apply(1, set("a"), None);
        assert_eq!(kv.take_events(), KeyspaceEvents::default());
        kv.record_events(true);
        kv.apply(2, set("b"), None);
        kv.apply(3, set("b"), None);
        let b = || "b".to_string();
        assert_eq!(
            names(&kv.take_events()),
            vec![("new", b()), ("set", b()), ("set", b())],
            "`new` when the write created the key, not when it overwrote it"
        );
        assert_eq!(
            kv.take_events(),
            KeyspaceEvents::default(),
            "a take empties it"
        );
    }

    #[test]
    fn writes_report_redis_event_names_in_log_order_and_expiry_reports_expired() {
        let mut kv = StateMachine::new(KvConfig::default()).unwrap();
        kv.record_events(true);
        kv.apply_at(1, Some(1_000), set("a"), None);
        kv.apply_at(2, Some(1_000), Command::Incr { key: b"n".to_vec() }, None);
        let expire = Command::Expire {
            key: b"a".to_vec(),
            deadline: Deadline::In(500),
            condition: ExpireCondition::Always,
        };
        kv.apply_at(3, Some(1_000), expire, None);
        kv.apply_at(
            4,
            Some(1_000),
            Command::Del {
                keys: vec![b"n".to_vec(), b"x".to_vec()],
            },
            None,
        );
        // The next stamp passes a's deadline: the entry removes it before its own command.
        kv.pass_time(5, 1_500);
        let text = |s: &str| s.to_string();
        assert_eq!(
            names(&kv.take_events()),
            vec![
                ("new", text("a")),
                ("set", text("a")),
                ("new", text("n")),
                ("incrby", text("n")),
                ("expire", text("a")),
                ("del", text("n")),
                ("expired", text("a")),
            ]
        );
    }

    #[test]
    fn a_set_with_a_deadline_already_past_reports_new_set_expire_expired_as_redis_7_0() {
        let mut kv = StateMachine::new(KvConfig::default()).unwrap();
        kv.apply_at(1, Some(5_000), set("old"), None);
        kv.record_events(true);
        for (index, key) in [(2, "old"), (3, "fresh")] {
            let past = Command::SetWith {
                key: key.as_bytes().to_vec(),
                value: b"v".to_vec(),
                options: SetOptions {
                    condition: SetCondition::Always,
                    expiry: Expiry::Until(Deadline::At(1_000)),
                    get: false,
                },
            };
            kv.apply_at(index, Some(5_000), past, None);
        }
        let text = |s: &str| s.to_string();
        assert_eq!(
            names(&kv.take_events()),
            vec![
                ("set", text("old")),
                ("expire", text("old")),
                ("expired", text("old")),
                ("new", text("fresh")),
                ("set", text("fresh")),
                ("expire", text("fresh")),
                ("expired", text("fresh")),
            ],
            "never `del`, whether the key was there or not; `new` if it was not"
        );
        let get = Command::Get {
            key: b"old".to_vec(),
        };
        assert_eq!(kv.apply_at(4, Some(5_000), get, None), crate::Reply::Nil);
    }

    #[test]
    fn the_recorder_is_not_state() {
        let mut listening = StateMachine::new(KvConfig::default()).unwrap();
        let mut deaf = listening.clone();
        listening.record_events(true);
        for (index, key) in ["a", "b"].into_iter().enumerate() {
            listening.apply(index as u64 + 1, set(key), None);
            deaf.apply(index as u64 + 1, set(key), None);
        }
        assert_eq!(listening, deaf);
        assert_eq!(listening.snapshot(), deaf.snapshot());
        let restored = StateMachine::restore(KvConfig::default(), &listening.snapshot()).unwrap();
        assert!(!restored.records_events(), "a restored store starts deaf");
    }

    #[test]
    fn what_passes_the_bound_is_counted_not_kept() {
        let mut kv = StateMachine::new(KvConfig::default()).unwrap();
        kv.record_events(true);
        let extra = 10;
        for i in 0..MAX_PENDING_EVENTS + extra {
            kv.notify("set", format!("k{i}").as_bytes());
        }
        let taken = kv.take_events();
        assert_eq!(taken.events.len(), MAX_PENDING_EVENTS);
        assert_eq!(taken.dropped, extra as u64);
        assert_eq!(taken.events[0].key, b"k0");

        let big = vec![b'k'; 1024 * 1024];
        for _ in 0..20 {
            kv.notify("set", &big);
        }
        let taken = kv.take_events();
        assert_eq!(taken.events.len(), MAX_PENDING_EVENT_BYTES / big.len());
        assert_eq!(taken.dropped, 20 - taken.events.len() as u64);
    }

    #[test]
    fn turning_it_off_drops_what_was_held() {
        let mut kv = StateMachine::new(KvConfig::default()).unwrap();
        kv.record_events(true);
        kv.apply(1, set("a"), None);
        kv.record_events(false);
        kv.record_events(true);
        assert_eq!(kv.take_events(), KeyspaceEvents::default());
    }
}
