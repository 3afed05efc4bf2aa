//! The words of the commands that give a key a time to live, change it or read it, parsed
//! as Redis 7 parses them (the same errors for the same mistakes). A relative time stays
//! relative here: the state machine counts it from the log time of its entry, so every
//! replica computes the same deadline. A relative time that would overflow 64 bits once
//! added to the wall clock is refused here, as Redis refuses it when the command is called,
//! with the name of the command the client sent; the store checks it again at the entry's
//! log time (with its own text) for the rare case that log time is ahead of this clock.

use std::time::{SystemTime, UNIX_EPOCH};

use skiff_kv::reply::errors;
use skiff_kv::{Command, Deadline, ExpireCondition, Expiry, SetCondition, SetOptions, TimeUnit};

use super::{integer, syntax, CommandError};

/// Which of `EX`, `PX`, `EXAT`, `PXAT` gave a time.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TimeOption {
    Ex,
    Px,
    ExAt,
    PxAt,
}

impl TimeOption {
    fn from_word(word: &[u8]) -> Option<TimeOption> {
        Some(match word.to_ascii_uppercase().as_slice() {
            b"EX" => TimeOption::Ex,
            b"PX" => TimeOption::Px,
            b"EXAT" => TimeOption::ExAt,
            b"PXAT" => TimeOption::PxAt,
            _ => return None,
        })
    }

    /// The deadline `number` names, checked as Redis checks it: positive, in seconds small
    /// enough to be counted in milliseconds, and, relative, not overflowing from now.
    fn deadline(self, number: &[u8], command: &str) -> Result<Deadline, CommandError> {
        match self.deadline_unchecked(number)? {
            Some(Deadline::In(ms)) if overflows_from_now(ms) => None,
            deadline => deadline,
        }
        .ok_or_else(|| CommandError(errors::invalid_expire_time(command)))
    }

    /// The deadline `number` names; `None` when it is not positive or, in seconds, too large
    /// to be counted in milliseconds (Redis's "invalid expire time").
    fn deadline_unchecked(self, number: &[u8]) -> Result<Option<Deadline>, CommandError> {
        let n = integer(number)?;
        let seconds = matches!(self, TimeOption::Ex | TimeOption::ExAt);
        if n <= 0 || (seconds && n > i64::MAX / 1000) {
            return Ok(None);
        }
        let ms = if seconds { n * 1000 } else { n };
        Ok(Some(match self {
            TimeOption::Ex | TimeOption::Px => Deadline::In(ms),
            TimeOption::ExAt | TimeOption::PxAt => Deadline::At(ms),
        }))
    }

    /// Whether this option may follow a time already given as `given`: Redis takes the same
    /// option again (the last time wins), never another one.
    fn may_follow(self, given: Option<TimeOption>) -> bool {
        given.is_none_or(|given| given == self)
    }
}

/// Whether `ms` milliseconds from the wall clock is past the largest 64-bit time, as Redis
/// checks a relative time when the command is called.
fn overflows_from_now(ms: i64) -> bool {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        });
    ms > i64::MAX - now_ms
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms|KEEPTTL]`, the words after the
/// value. A `SET` with no option other than `NX`/`XX` is the plain [`Command::Set`].
pub(super) fn parse_set(
    key: Vec<u8>,
    value: Vec<u8>,
    words: &mut impl Iterator<Item = Vec<u8>>,
) -> Result<Command, CommandError> {
    let mut options = SetOptions::default();
    let mut time: Option<(TimeOption, Vec<u8>)> = None;
    let mut keep_ttl = false;
    while let Some(word) = words.next() {
        match word.to_ascii_uppercase().as_slice() {
            b"NX" if options.condition != SetCondition::IfPresent => {
                options.condition = SetCondition::IfAbsent;
            }
            b"XX" if options.condition != SetCondition::IfAbsent => {
                options.condition = SetCondition::IfPresent;
            }
            b"GET" => options.get = true,
            b"KEEPTTL" if time.is_none() => keep_ttl = true,
            _ => match TimeOption::from_word(&word) {
                Some(option) if option.may_follow(time.as_ref().map(|t| t.0)) && !keep_ttl => {
                    time = Some((option, words.next().ok_or_else(syntax)?));
                }
                _ => return Err(syntax()),
            },
        }
    }
    options.expiry = match time {
        Some((option, number)) => Expiry::Until(option.deadline(&number, "set")?),
        None if keep_ttl => Expiry::Keep,
        None => Expiry::Clear,
    };
    Ok(if options.expiry == Expiry::Clear && !options.get {
        Command::Set {
            key,
            value,
            condition: options.condition,
        }
    } else {
        Command::SetWith {
            key,
            value,
            options,
        }
    })
}

/// `SETEX key seconds value` and `PSETEX key milliseconds value`.
pub(super) fn parse_set_ex(
    key: Vec<u8>,
    time: &[u8],
    value: Vec<u8>,
    milliseconds: bool,
) -> Result<Command, CommandError> {
    let (option, name) = if milliseconds {
        (TimeOption::Px, "psetex")
    } else {
        (TimeOption::Ex, "setex")
    };
    let options = SetOptions {
        condition: SetCondition::Always,
        expiry: Expiry::Until(option.deadline(time, name)?),
        get: false,
    };
    Ok(Command::SetWith {
        key,
        value,
        options,
    })
}

/// `GETEX key [EX s|PX ms|EXAT ts|PXAT ms|PERSIST]`, the words after the key.
pub(super) fn parse_get_ex(
    key: Vec<u8>,
    words: &mut impl Iterator<Item = Vec<u8>>,
) -> Result<Command, CommandError> {
    let mut expiry = Expiry::Keep;
    let mut time: Option<(TimeOption, Vec<u8>)> = None;
    while let Some(word) = words.next() {
        let persist = word.eq_ignore_ascii_case(b"PERSIST");
        match TimeOption::from_word(&word) {
            _ if persist && time.is_none() => expiry = Expiry::Clear,
            Some(option)
                if option.may_follow(time.as_ref().map(|t| t.0)) && expiry == Expiry::Keep =>
            {
                time = Some((option, words.next().ok_or_else(syntax)?));
            }
            _ => return Err(syntax()),
        }
    }
    // Redis judges the time only once it has found the key (a missing key answers nil
    // whatever the time): the store refuses a time that is not an integer
    // (`Deadline::NOT_AN_INTEGER`), not positive (`In(0)` here) or not fitting in 64 bits.
    if let Some((option, number)) = time {
        let deadline = match option.deadline_unchecked(&number) {
            Ok(deadline) => deadline.unwrap_or(Deadline::In(0)),
            Err(_) => Deadline::NOT_AN_INTEGER,
        };
        expiry = Expiry::Until(deadline);
    }
    Ok(Command::GetEx { key, expiry })
}

/// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT` (`name` in lower case): the time and the
/// `NX|XX|GT|LT` flags after the key.
pub(super) fn parse_expire(
    name: &str,
    key: Vec<u8>,
    time: &[u8],
    flags: impl Iterator<Item = Vec<u8>>,
) -> Result<Command, CommandError> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for flag in flags {
        match flag.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => {
                let shown = String::from_utf8_lossy(&flag)
                    .chars()
                    .take(64)
                    .collect::<String>();
                return Err(CommandError(format!("ERR Unsupported option {shown}")));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CommandError(
            "ERR NX and XX, GT or LT options at the same time are not compatible".into(),
        ));
    }
    if gt && lt {
        return Err(CommandError(
            "ERR GT and LT options at the same time are not compatible".into(),
        ));
    }
    let condition = match (nx, xx, gt, lt) {
        (true, ..) => ExpireCondition::IfNone,
        (_, _, true, _) => ExpireCondition::IfLater,
        (_, true, _, true) => ExpireCondition::IfSomeAndEarlier,
        (_, _, _, true) => ExpireCondition::IfEarlier,
        (_, true, _, _) => ExpireCondition::IfSome,
        _ => ExpireCondition::Always,
    };
    let n = integer(time)?;
    let seconds = matches!(name, "expire" | "expireat");
    if seconds && !(i64::MIN / 1000..=i64::MAX / 1000).contains(&n) {
        return Err(CommandError(errors::invalid_expire_time(name)));
    }
    let ms = if seconds { n * 1000 } else { n };
    let deadline = if name.ends_with("at") {
        Deadline::At(ms)
    } else if overflows_from_now(ms) {
        return Err(CommandError(errors::invalid_expire_time(name)));
    } else {
        Deadline::In(ms)
    };
    Ok(Command::Expire {
        key,
        deadline,
        condition,
    })
}

/// `TTL`, `PTTL`, `EXPIRETIME`, `PEXPIRETIME` (`name` in lower case).
pub(super) fn parse_ttl(name: &str, key: Vec<u8>) -> Command {
    let unit = if name.starts_with('p') {
        TimeUnit::Milliseconds
    } else {
        TimeUnit::Seconds
    };
    if name.ends_with("ttl") {
        Command::Ttl { key, unit }
    } else {
        Command::ExpireTime { key, unit }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use crate::commands::ClientRequest;

    fn command(text: &str) -> Result<Command, String> {
        let words = text.split(' ').map(|w| w.as_bytes().to_vec()).collect();
        match parse(words) {
            Ok(ClientRequest::Kv(command)) => Ok(command),
            Ok(other) => panic!("{text} is not a store command: {other:?}"),
            Err(CommandError(error)) => Err(error),
        }
    }

    fn set_with(condition: SetCondition, expiry: Expiry, get: bool) -> Result<Command, String> {
        Ok(Command::SetWith {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            options: SetOptions {
                condition,
                expiry,
                get,
            },
        })
    }

    /// Every combination Redis 7 takes, and each word once more (Redis allows a repeat).
    #[test]
    fn set_takes_every_combination_redis_allows() {
        let conditions = [
            ("", SetCondition::Always),
            (" NX", SetCondition::IfAbsent),
            (" xx", SetCondition::IfPresent),
        ];
        let expiries = [
            ("", Expiry::Clear),
            (" EX 5", Expiry::Until(Deadline::In(5_000))),
            (" px 5", Expiry::Until(Deadline::In(5))),
            (" EXAT 5", Expiry::Until(Deadline::At(5_000))),
            (" PXAT 5", Expiry::Until(Deadline::At(5))),
            (" KEEPTTL", Expiry::Keep),
        ];
        for (condition_words, condition) in conditions {
            for (expiry_words, expiry) in expiries {
                for (get_words, get) in [("", false), (" GET", true)] {
                    // In both orders: the options may come in any order.
                    for text in [
                        format!("SET k v{condition_words}{get_words}{expiry_words}"),
                        format!("SET k v{expiry_words}{get_words}{condition_words}"),
                    ] {
                        let expected = if expiry == Expiry::Clear && !get {
                            Ok(Command::Set {
                                key: b"k".to_vec(),
                                value: b"v".to_vec(),
                                condition,
                            })
                        } else {
                            set_with(condition, expiry, get)
                        };
                        assert_eq!(command(&text), expected, "{text}");
                    }
                }
            }
        }
        assert_eq!(
            command("SET k v NX NX GET GET KEEPTTL KEEPTTL"),
            set_with(SetCondition::IfAbsent, Expiry::Keep, true)
        );
    }

    /// Redis takes a time option given again (the last one wins, and only it is judged), as
    /// long as it is the same option; `GETEX`'s time is judged by the store once the key is
    /// found, so a bad one reaches it as a time that is not positive, or as
    /// `Deadline::NOT_AN_INTEGER`.
    #[test]
    fn a_time_option_repeated_takes_the_last_time_as_in_redis() {
        let until = |deadline| Expiry::Until(deadline);
        let getex = |expiry| -> Result<Command, String> {
            Ok(Command::GetEx {
                key: b"k".to_vec(),
                expiry,
            })
        };
        let table = [
            (
                "SET k v EX 10 EX 10",
                set_with(SetCondition::Always, until(Deadline::In(10_000)), false),
            ),
            (
                "SET k v EX 10 EX 20",
                set_with(SetCondition::Always, until(Deadline::In(20_000)), false),
            ),
            (
                "SET k v EX 0 EX 10",
                set_with(SetCondition::Always, until(Deadline::In(10_000)), false),
            ),
            (
                "SET k v PXAT 5 NX PXAT 7",
                set_with(SetCondition::IfAbsent, until(Deadline::At(7)), false),
            ),
            ("GETEX k EX 10 EX 20", getex(until(Deadline::In(20_000)))),
            ("GETEX k PERSIST PERSIST", getex(Expiry::Clear)),
            ("GETEX k EX 0", getex(until(Deadline::In(0)))),
            ("GETEX k PXAT -1", getex(until(Deadline::In(0)))),
            ("GETEX k EX 9223372036854776", getex(until(Deadline::In(0)))),
            ("GETEX k EX abc", getex(until(Deadline::NOT_AN_INTEGER))),
            ("GETEX k PXAT 1.5", getex(until(Deadline::NOT_AN_INTEGER))),
            (
                "GETEX k PX 9223372036854775807",
                getex(until(Deadline::In(i64::MAX))),
            ),
        ];
        for (text, expected) in table {
            assert_eq!(command(text), expected, "{text}");
        }
    }

    #[test]
    fn set_refuses_what_redis_refuses_with_its_errors() {
        let syntax = "ERR syntax error";
        let invalid = "ERR invalid expire time in 'set' command";
        let table = [
            ("SET k v NX XX", syntax),
            ("SET k v XX NX", syntax),
            ("SET k v EX", syntax),
            ("SET k v EX 5 PX 5", syntax),
            ("SET k v EX 5 EXAT 5", syntax),
            ("SET k v EX 5 EX", syntax),
            ("SET k v EX 5 EX 0", invalid),
            ("SET k v KEEPTTL EX 5", syntax),
            ("SET k v PXAT 5 KEEPTTL", syntax),
            ("SET k v PERSIST", syntax),
            ("SET k v FOO", syntax),
            ("SET k v EX 0", invalid),
            ("SET k v PX -1", invalid),
            ("SET k v EXAT 0", invalid),
            ("SET k v EX 9223372036854776", invalid),
            (
                "SET k v EX abc",
                "ERR value is not an integer or out of range",
            ),
            (
                "SET k v EX 1.5",
                "ERR value is not an integer or out of range",
            ),
            ("SETEX k 0 v", "ERR invalid expire time in 'setex' command"),
            (
                "PSETEX k -5 v",
                "ERR invalid expire time in 'psetex' command",
            ),
            (
                "SETEX k abc v",
                "ERR value is not an integer or out of range",
            ),
            (
                "SETEX k 5",
                "ERR wrong number of arguments for 'setex' command",
            ),
            ("GETEX k PERSIST EX 5", syntax),
            ("GETEX k EX 5 PX 5", syntax),
            ("GETEX k EX 5 PERSIST", syntax),
            ("GETEX k FOO", syntax),
            ("GETEX k PX 5 PX", syntax),
            ("GETEX k PERSIST PX 5 PERSIST", syntax),
            ("GETEX k EX abc FOO", syntax),
        ];
        for (text, error) in table {
            assert_eq!(command(text), Err(error.to_string()), "{text}");
        }
    }

    #[test]
    fn the_other_ttl_commands_map_to_their_store_operations() {
        let k = || b"k".to_vec();
        let table = [
            (
                "SETEX k 5 v",
                set_with(
                    SetCondition::Always,
                    Expiry::Until(Deadline::In(5_000)),
                    false,
                ),
            ),
            (
                "PSETEX k 5 v",
                set_with(SetCondition::Always, Expiry::Until(Deadline::In(5)), false),
            ),
            (
                "GETSET k v",
                set_with(SetCondition::Always, Expiry::Clear, true),
            ),
            (
                "SETNX k v",
                Ok(Command::SetNx {
                    key: k(),
                    value: b"v".to_vec(),
                }),
            ),
            (
                "GETEX k",
                Ok(Command::GetEx {
                    key: k(),
                    expiry: Expiry::Keep,
                }),
            ),
            (
                "GETEX k persist",
                Ok(Command::GetEx {
                    key: k(),
                    expiry: Expiry::Clear,
                }),
            ),
            (
                "GETEX k EXAT 7",
                Ok(Command::GetEx {
                    key: k(),
                    expiry: Expiry::Until(Deadline::At(7_000)),
                }),
            ),
            ("GETDEL k", Ok(Command::GetDel { key: k() })),
            ("PERSIST k", Ok(Command::Persist { key: k() })),
            (
                "TTL k",
                Ok(Command::Ttl {
                    key: k(),
                    unit: TimeUnit::Seconds,
                }),
            ),
            (
                "pttl k",
                Ok(Command::Ttl {
                    key: k(),
                    unit: TimeUnit::Milliseconds,
                }),
            ),
            (
                "EXPIRETIME k",
                Ok(Command::ExpireTime {
                    key: k(),
                    unit: TimeUnit::Seconds,
                }),
            ),
            (
                "PEXPIRETIME k",
                Ok(Command::ExpireTime {
                    key: k(),
                    unit: TimeUnit::Milliseconds,
                }),
            ),
            ("REVISION k", Ok(Command::Revision { key: k() })),
        ];
        for (text, expected) in table {
            assert_eq!(command(text), expected, "{text}");
        }
    }

    #[test]
    fn expire_flags_and_times_parse_as_in_redis() {
        let expire = |deadline, condition| {
            Ok(Command::Expire {
                key: b"k".to_vec(),
                deadline,
                condition,
            })
        };
        let table = [
            (
                "EXPIRE k 10",
                expire(Deadline::In(10_000), ExpireCondition::Always),
            ),
            (
                "EXPIRE k -1",
                expire(Deadline::In(-1_000), ExpireCondition::Always),
            ),
            (
                "PEXPIRE k 10 nx",
                expire(Deadline::In(10), ExpireCondition::IfNone),
            ),
            (
                "EXPIREAT k 10 XX",
                expire(Deadline::At(10_000), ExpireCondition::IfSome),
            ),
            (
                "PEXPIREAT k 10 GT",
                expire(Deadline::At(10), ExpireCondition::IfLater),
            ),
            (
                "EXPIRE k 10 XX GT",
                expire(Deadline::In(10_000), ExpireCondition::IfLater),
            ),
            (
                "EXPIRE k 10 LT",
                expire(Deadline::In(10_000), ExpireCondition::IfEarlier),
            ),
            (
                "EXPIRE k 10 LT XX",
                expire(Deadline::In(10_000), ExpireCondition::IfSomeAndEarlier),
            ),
            (
                "EXPIRE k 10 NX NX",
                expire(Deadline::In(10_000), ExpireCondition::IfNone),
            ),
            // Absolute times are not added to the clock, and a negative one cannot overflow.
            (
                "PEXPIREAT k 9223372036854775807",
                expire(Deadline::At(i64::MAX), ExpireCondition::Always),
            ),
            (
                "PEXPIRE k -9223372036854775808",
                expire(Deadline::In(i64::MIN), ExpireCondition::Always),
            ),
        ];
        for (text, expected) in table {
            assert_eq!(command(text), expected, "{text}");
        }
        let errors = [
            (
                "EXPIRE k 10 NX XX",
                "ERR NX and XX, GT or LT options at the same time are not compatible",
            ),
            (
                "EXPIRE k 10 NX GT",
                "ERR NX and XX, GT or LT options at the same time are not compatible",
            ),
            (
                "EXPIRE k 10 GT LT",
                "ERR GT and LT options at the same time are not compatible",
            ),
            ("EXPIRE k 10 FOO", "ERR Unsupported option FOO"),
            ("EXPIRE k abc FOO", "ERR Unsupported option FOO"),
            (
                "EXPIRE k abc",
                "ERR value is not an integer or out of range",
            ),
            (
                "EXPIRE k 9223372036854776",
                "ERR invalid expire time in 'expire' command",
            ),
            (
                "EXPIREAT k -9223372036854776",
                "ERR invalid expire time in 'expireat' command",
            ),
            (
                "EXPIREAT k 9223372036854775807",
                "ERR invalid expire time in 'expireat' command",
            ),
        ];
        for (text, error) in errors {
            assert_eq!(command(text), Err(error.to_string()), "{text}");
        }
    }

    /// A relative time that overflows once added to the clock is refused when the command is
    /// parsed, naming the command the client sent, as redis-server 7.0.15 answers.
    #[test]
    fn a_relative_time_overflowing_from_now_names_the_command_sent() {
        let max = i64::MAX;
        // In seconds, small enough to count in milliseconds, too large to add to the clock.
        let secs = i64::MAX / 1000;
        let errors = [
            (format!("EXPIRE k {secs}"), "expire"),
            (format!("PEXPIRE k {max}"), "pexpire"),
            (format!("PEXPIRE k {} NX", max - 1_000), "pexpire"),
            (format!("SET k v EX {secs}"), "set"),
            (format!("SET k v PX {max}"), "set"),
            (format!("SET k v NX GET PX {max}"), "set"),
            (format!("SETEX k {secs} v"), "setex"),
            (format!("PSETEX k {max} v"), "psetex"),
        ];
        for (text, name) in errors {
            assert_eq!(
                command(&text),
                Err(format!("ERR invalid expire time in '{name}' command")),
                "{text}"
            );
        }
        // Absolute times are not added to the clock.
        assert!(command(&format!("SET k v PXAT {max}")).is_ok());
    }

    #[test]
    fn the_ttl_commands_refuse_a_wrong_number_of_words() {
        let errors = [
            (
                "EXPIRE k",
                "ERR wrong number of arguments for 'expire' command",
            ),
            ("TTL", "ERR wrong number of arguments for 'ttl' command"),
            (
                "REVISION k k",
                "ERR wrong number of arguments for 'revision' command",
            ),
        ];
        for (text, error) in errors {
            assert_eq!(command(text), Err(error.to_string()), "{text}");
        }
    }
}
