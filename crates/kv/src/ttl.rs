//! The commands that set, change, read or drop a key's time to live, with Redis's
//! semantics, judged at log time (see [`expiry`](crate::expiry)).

use crate::expiry::{Deadline, ExpireCondition, Expiry, SetOptions, TimeUnit};
use crate::keyspace::Stored;
use crate::reply::{errors, Reply};
use crate::state_machine::StateMachine;
use crate::value::Value;

/// What a deadline means at the log time of the entry being applied.
enum Resolved {
    /// Already passed: the key is deleted rather than given it.
    Passed,
    /// In the future, in Unix milliseconds.
    Future(u64),
}

impl StateMachine {
    /// `deadline` at the current log time; `None` when it overflows.
    fn resolve(&self, deadline: Deadline) -> Option<Resolved> {
        let at = deadline.resolve(self.log_time_ms)?;
        Some(match u64::try_from(at) {
            Ok(at) if at > self.log_time_ms => Resolved::Future(at),
            _ => Resolved::Passed,
        })
    }

    /// `SET` with options (Redis 7): the condition decides, `GET` answers the old value, and
    /// the key takes the new deadline, keeps its own (`KEEPTTL`) or loses it.
    pub(crate) fn set_with(&mut self, key: Vec<u8>, value: Vec<u8>, options: SetOptions) -> Reply {
        let deadline = match options.expiry {
            Expiry::Until(deadline) => match self.resolve(deadline) {
                Some(resolved) => Some(resolved),
                None => return Reply::error(errors::invalid_expire_time("set")),
            },
            Expiry::Clear | Expiry::Keep => None,
        };
        if let Some(refusal) = self.check_size(&key, &value) {
            return refusal;
        }
        let old = self.data.get(&key);
        let answer = if options.get {
            // SET … GET on a key of another type is refused and changes nothing.
            match self.get_reply(&key) {
                Reply::Error(wrong_type) => return Reply::Error(wrong_type),
                old_value => old_value,
            }
        } else {
            Reply::Ok
        };
        if !options.condition.holds(old.is_some()) {
            return if options.get { answer } else { Reply::Nil };
        }
        let deadline_ms = match (options.expiry, deadline) {
            (Expiry::Keep, _) => old.and_then(|old| old.deadline_ms),
            (_, Some(Resolved::Future(at))) => Some(at),
            (_, Some(Resolved::Passed)) => {
                // Set and at once expired: the key is gone, and its subscribers hear what
                // Redis 7.0 publishes for it: `new` (if it was missing), `set`, `expire`,
                // then `expired`.
                if self.data.remove(&key).is_none() {
                    self.notify("new", &key);
                }
                for event in ["set", "expire", "expired"] {
                    self.notify(event, &key);
                }
                return answer;
            }
            (_, None) => None,
        };
        let stored = Stored {
            value: Value::String(value),
            deadline_ms,
            revision: self.applied_index,
        };
        let new_deadline = matches!(options.expiry, Expiry::Until(_));
        self.data.insert(key.clone(), stored);
        self.notify("set", &key);
        if new_deadline {
            self.notify("expire", &key);
        }
        answer
    }

    /// `GETEX`: the value, and the deadline set, removed (`PERSIST`) or left alone. As in
    /// Redis, a missing key answers nil before the time is judged; a time that is not
    /// positive or does not fit in 64 bits is an invalid expire time.
    pub(crate) fn get_ex(&mut self, key: &[u8], expiry: Expiry) -> Reply {
        match self.get_reply(key) {
            Reply::Bulk(_) => {}
            nil_or_wrong_type => return nil_or_wrong_type,
        }
        let deadline = match expiry {
            Expiry::Until(Deadline::NOT_AN_INTEGER) => return Reply::error(errors::NOT_AN_INTEGER),
            Expiry::Until(Deadline::In(ms) | Deadline::At(ms)) if ms <= 0 => {
                return Reply::error(errors::invalid_expire_time("getex"))
            }
            Expiry::Until(deadline) => match self.resolve(deadline) {
                Some(resolved) => Some(resolved),
                None => return Reply::error(errors::invalid_expire_time("getex")),
            },
            Expiry::Clear | Expiry::Keep => None,
        };
        let reply = self.get_reply(key);
        let had_deadline = self.deadline_ms(key).is_some();
        match (expiry, deadline) {
            (Expiry::Keep, _) => {}
            (Expiry::Clear, _) => {
                if had_deadline {
                    self.data.set_deadline(key, None, self.applied_index);
                    self.notify("persist", key);
                }
            }
            (_, Some(Resolved::Passed)) => {
                self.data.remove(key);
                self.notify("del", key);
            }
            (_, Some(Resolved::Future(at))) => {
                self.data.set_deadline(key, Some(at), self.applied_index);
                self.notify("expire", key);
            }
            (Expiry::Until(_), None) => unreachable!("a deadline was resolved above"),
        }
        reply
    }

    /// `EXPIRE` and its kin: 1 when the deadline was set (or, already passed, the key
    /// deleted), 0 when the key is missing or the condition does not hold.
    pub(crate) fn expire(
        &mut self,
        key: &[u8],
        deadline: Deadline,
        condition: ExpireCondition,
    ) -> Reply {
        let Some(at) = deadline.resolve(self.log_time_ms) else {
            return Reply::error(errors::invalid_expire_time("expire"));
        };
        let Some(stored) = self.data.get(key) else {
            return Reply::Integer(0);
        };
        let current = stored
            .deadline_ms
            .map(|d| i64::try_from(d).unwrap_or(i64::MAX));
        if !condition.allows(current, at) {
            return Reply::Integer(0);
        }
        match self.resolve(deadline) {
            Some(Resolved::Future(at)) => {
                self.data.set_deadline(key, Some(at), self.applied_index);
                self.notify("expire", key);
            }
            Some(Resolved::Passed) | None => {
                self.data.remove(key);
                self.notify("del", key);
            }
        }
        Reply::Integer(1)
    }

    /// `PERSIST`: 1 when a deadline was removed, else 0.
    pub(crate) fn persist(&mut self, key: &[u8]) -> Reply {
        if self.deadline_ms(key).is_none() {
            return Reply::Integer(0);
        }
        self.data.set_deadline(key, None, self.applied_index);
        self.notify("persist", key);
        Reply::Integer(1)
    }

    /// `TTL`/`PTTL`: what is left at the later of the log time of the applied index and the
    /// serving node's wall clock (`wall_clock_ms`), so that it counts down on an idle cluster
    /// too; at least 1 ms while the key exists at log time (seconds rounded to the nearest,
    /// as Redis does); -1 without a deadline, -2 for a missing key.
    pub(crate) fn ttl_reply(&self, key: &[u8], unit: TimeUnit, wall_clock_ms: u64) -> Reply {
        let Some(stored) = self.data.get(key) else {
            return Reply::Integer(-2);
        };
        let Some(deadline) = stored.deadline_ms else {
            return Reply::Integer(-1);
        };
        let now_ms = self.log_time_ms.max(wall_clock_ms);
        let left_ms = deadline.saturating_sub(now_ms).max(1);
        let left = match unit {
            TimeUnit::Milliseconds => left_ms,
            TimeUnit::Seconds => left_ms.saturating_add(500) / 1000,
        };
        Reply::Integer(i64::try_from(left).unwrap_or(i64::MAX))
    }

    /// `EXPIRETIME`/`PEXPIRETIME`: the deadline as Unix time (seconds rounded to the
    /// nearest, as Redis does); -1
    /// without a deadline, -2 for a missing key.
    pub(crate) fn expire_time_reply(&self, key: &[u8], unit: TimeUnit) -> Reply {
        let Some(stored) = self.data.get(key) else {
            return Reply::Integer(-2);
        };
        let Some(deadline) = stored.deadline_ms else {
            return Reply::Integer(-1);
        };
        let at = match unit {
            TimeUnit::Milliseconds => deadline,
            TimeUnit::Seconds => deadline.saturating_add(500) / 1000,
        };
        Reply::Integer(i64::try_from(at).unwrap_or(i64::MAX))
    }
}
