//! Keys with a time to live: the options of the commands that set one, and their binary form.
//!
//! Time here is **log time**: the milliseconds since the Unix epoch that the leader stamped
//! on the entry being applied (see `skiff-node`'s payload), never earlier than any stamp
//! before it in the log. Every replica applies the same entries with the same stamps, so a
//! relative TTL (`EX`, `PX`, `EXPIRE`) becomes the same absolute deadline everywhere, and a
//! key expires at the same point of the log on every replica.

use crate::codec::{put_i64, Reader};
use crate::error::KvError;

/// When a key should expire, as a command gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Deadline {
    /// This many milliseconds after the log time of the entry (`EX`, `PX`, `EXPIRE`,
    /// `PEXPIRE`); may be zero or negative for `EXPIRE`, which then deletes the key.
    In(i64),
    /// At this Unix time in milliseconds (`EXAT`, `PXAT`, `EXPIREAT`, `PEXPIREAT`).
    At(i64),
}

impl Deadline {
    /// What `GETEX` carries when its time is not an integer: Redis judges the time only once
    /// it has found the key, so a missing key answers nil and a present one
    /// `ERR value is not an integer or out of range`. No time a client gives maps to it (a
    /// time that is not positive is carried as `In(0)`).
    pub const NOT_AN_INTEGER: Deadline = Deadline::At(i64::MIN);

    /// The absolute deadline at log time `now_ms`; `None` when it does not fit in 64 bits
    /// (Redis's "invalid expire time").
    pub fn resolve(self, now_ms: u64) -> Option<i64> {
        match self {
            Deadline::In(ms) => i64::try_from(now_ms).ok()?.checked_add(ms),
            Deadline::At(ms) => Some(ms),
        }
    }
}

/// What a write does to the key's time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Expiry {
    /// Remove it: the key lives until deleted (a plain `SET`, `GETEX … PERSIST`).
    #[default]
    Clear,
    /// Leave it as it is (`SET … KEEPTTL`, `GETEX` without options).
    Keep,
    /// Set it.
    Until(Deadline),
}

/// The options of `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms|KEEPTTL]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SetOptions {
    /// `NX`, `XX` or neither.
    pub condition: crate::SetCondition,
    /// The time to live the key gets.
    pub expiry: Expiry,
    /// `GET`: answer the old value (or nil) instead of `OK`.
    pub get: bool,
}

/// When `EXPIRE` and its kin change a key's deadline: Redis's `NX`, `XX`, `GT` and `LT`. A
/// key without a deadline counts as one infinitely far away for `GT` and `LT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ExpireCondition {
    /// Always.
    #[default]
    Always,
    /// `NX`: only when the key has no deadline.
    IfNone,
    /// `XX`: only when the key has one.
    IfSome,
    /// `GT` (alone or with `XX`): only when the new deadline is later than the current one.
    IfLater,
    /// `LT`: only when the new deadline is earlier (a key without one qualifies).
    IfEarlier,
    /// `XX LT`: only when the key has a deadline and the new one is earlier.
    IfSomeAndEarlier,
}

impl ExpireCondition {
    /// Whether a key whose deadline is `current` (`None`: none) takes `new`.
    pub fn allows(self, current: Option<i64>, new: i64) -> bool {
        match (self, current) {
            (ExpireCondition::Always, _) => true,
            (ExpireCondition::IfNone, current) => current.is_none(),
            (ExpireCondition::IfSome, current) => current.is_some(),
            (ExpireCondition::IfLater, Some(current)) => new > current,
            (ExpireCondition::IfLater, None) => false,
            (ExpireCondition::IfEarlier, Some(current)) => new < current,
            (ExpireCondition::IfEarlier, None) => true,
            (ExpireCondition::IfSomeAndEarlier, Some(current)) => new < current,
            (ExpireCondition::IfSomeAndEarlier, None) => false,
        }
    }
}

/// The unit of a `TTL`-like answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// Seconds (`TTL`, `EXPIRETIME`).
    Seconds,
    /// Milliseconds (`PTTL`, `PEXPIRETIME`).
    Milliseconds,
}

pub(crate) fn put_deadline(out: &mut Vec<u8>, deadline: Deadline) {
    let (tag, ms) = match deadline {
        Deadline::In(ms) => (0, ms),
        Deadline::At(ms) => (1, ms),
    };
    out.push(tag);
    put_i64(out, ms);
}

pub(crate) fn read_deadline(r: &mut Reader<'_>) -> Result<Deadline, KvError> {
    Ok(match r.u8()? {
        0 => Deadline::In(r.i64()?),
        1 => Deadline::At(r.i64()?),
        tag => return Err(r.unknown_tag("deadline", tag)),
    })
}

/// An expiry: 0 clear, 1 keep, 2 then a deadline.
pub(crate) fn put_expiry(out: &mut Vec<u8>, expiry: Expiry) {
    match expiry {
        Expiry::Clear => out.push(0),
        Expiry::Keep => out.push(1),
        Expiry::Until(deadline) => {
            out.push(2);
            put_deadline(out, deadline);
        }
    }
}

pub(crate) fn read_expiry(r: &mut Reader<'_>) -> Result<Expiry, KvError> {
    Ok(match r.u8()? {
        0 => Expiry::Clear,
        1 => Expiry::Keep,
        2 => Expiry::Until(read_deadline(r)?),
        tag => return Err(r.unknown_tag("expiry", tag)),
    })
}

pub(crate) fn put_expire_condition(out: &mut Vec<u8>, condition: ExpireCondition) {
    out.push(match condition {
        ExpireCondition::Always => 0,
        ExpireCondition::IfNone => 1,
        ExpireCondition::IfSome => 2,
        ExpireCondition::IfLater => 3,
        ExpireCondition::IfEarlier => 4,
        ExpireCondition::IfSomeAndEarlier => 5,
    });
}

pub(crate) fn read_expire_condition(r: &mut Reader<'_>) -> Result<ExpireCondition, KvError> {
    Ok(match r.u8()? {
        0 => ExpireCondition::Always,
        1 => ExpireCondition::IfNone,
        2 => ExpireCondition::IfSome,
        3 => ExpireCondition::IfLater,
        4 => ExpireCondition::IfEarlier,
        5 => ExpireCondition::IfSomeAndEarlier,
        tag => return Err(r.unknown_tag("expire condition", tag)),
    })
}

pub(crate) fn put_unit(out: &mut Vec<u8>, unit: TimeUnit) {
    out.push(match unit {
        TimeUnit::Seconds => 0,
        TimeUnit::Milliseconds => 1,
    });
}

pub(crate) fn read_unit(r: &mut Reader<'_>) -> Result<TimeUnit, KvError> {
    Ok(match r.u8()? {
        0 => TimeUnit::Seconds,
        1 => TimeUnit::Milliseconds,
        tag => return Err(r.unknown_tag("time unit", tag)),
    })
}
