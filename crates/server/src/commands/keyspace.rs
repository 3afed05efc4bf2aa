//! The words of the string, keyspace and hash commands (`TYPE`, `RENAME`, `APPEND`,
//! `GETRANGE`, `HSET`, `SCAN`…), parsed as Redis 7 parses them: the same arity and
//! syntax errors, in the same order. What depends on the data (`WRONGTYPE`, a value that
//! is not a number) is judged by the state machine.

use skiff_kv::reply::errors;
use skiff_kv::Command;

use super::{arity, integer, syntax, CommandError};

/// Whether `name` (upper case) is a command this module parses.
pub(super) fn handles(name: &str) -> bool {
    matches!(
        name,
        "TYPE"
            | "RENAME"
            | "RENAMENX"
            | "STRLEN"
            | "APPEND"
            | "GETRANGE"
            | "SUBSTR"
            | "SETRANGE"
            | "INCRBYFLOAT"
            | "DECRBY"
            | "MSETNX"
            | "FLUSHDB"
            | "FLUSHALL"
            | "RANDOMKEY"
            | "KEYS"
            | "SCAN"
            | "HSET"
            | "HMSET"
            | "HSETNX"
            | "HGET"
            | "HMGET"
            | "HDEL"
            | "HGETALL"
            | "HKEYS"
            | "HVALS"
            | "HLEN"
            | "HEXISTS"
            | "HSTRLEN"
            | "HINCRBY"
            | "HINCRBYFLOAT"
            | "HSCAN"
    )
}

/// Parses the command `name` (upper case, one that [`handles`]) given `argc` words in all,
/// the name included; `words` are those after the name.
pub(super) fn parse(
    name: &str,
    argc: usize,
    mut words: impl Iterator<Item = Vec<u8>>,
) -> Result<Command, CommandError> {
    let exact = |n: usize| if argc == n { Ok(()) } else { Err(arity(name)) };
    let at_least = |n: usize| if argc >= n { Ok(()) } else { Err(arity(name)) };
    // Pairs after `skip` words: at least one, none left half.
    let pairs_from = |skip: usize| {
        if argc < skip + 3 || (argc - skip - 1) % 2 != 0 {
            Err(arity(name))
        } else {
            Ok(())
        }
    };
    let mut next = || words.next().expect("arity checked");
    Ok(match name {
        "TYPE" | "STRLEN" | "HGETALL" | "HKEYS" | "HVALS" | "HLEN" | "KEYS" => {
            exact(2)?;
            let key = next();
            match name {
                "TYPE" => Command::Type { key },
                "STRLEN" => Command::StrLen { key },
                "HGETALL" => Command::HGetAll { key },
                "HKEYS" => Command::HKeys { key },
                "HVALS" => Command::HVals { key },
                "HLEN" => Command::HLen { key },
                _ => Command::Keys { pattern: key },
            }
        }
        "RENAME" | "RENAMENX" => {
            exact(3)?;
            let (key, new_key) = (next(), next());
            if name == "RENAME" {
                Command::Rename { key, new_key }
            } else {
                Command::RenameNx { key, new_key }
            }
        }
        "APPEND" => {
            exact(3)?;
            Command::Append {
                key: next(),
                value: next(),
            }
        }
        "GETRANGE" | "SUBSTR" => {
            exact(4)?;
            let key = next();
            let start = integer(&next())?;
            let end = integer(&next())?;
            Command::GetRange { key, start, end }
        }
        "SETRANGE" => {
            exact(4)?;
            let key = next();
            let offset = u64::try_from(integer(&next())?)
                .map_err(|_| CommandError(errors::OFFSET_OUT_OF_RANGE.to_string()))?;
            Command::SetRange {
                key,
                offset,
                value: next(),
            }
        }
        "INCRBYFLOAT" => {
            exact(3)?;
            Command::IncrByFloat {
                key: next(),
                increment: next(),
            }
        }
        "DECRBY" => {
            exact(3)?;
            let key = next();
            let decrement = integer(&next())?;
            // Redis refuses the one decrement that cannot be negated.
            let increment = decrement
                .checked_neg()
                .ok_or_else(|| CommandError("ERR decrement would overflow".to_string()))?;
            Command::IncrBy { key, increment }
        }
        "MSETNX" => {
            pairs_from(0)?;
            Command::MSetNx {
                pairs: pairs(words),
            }
        }
        "FLUSHDB" | "FLUSHALL" => {
            // FLUSHALL [ASYNC|SYNC]: both empty the store at once here.
            let option = words.next();
            let known = option.as_deref().is_none_or(|option| {
                option.eq_ignore_ascii_case(b"ASYNC") || option.eq_ignore_ascii_case(b"SYNC")
            });
            if !known || words.next().is_some() {
                return Err(syntax());
            }
            Command::FlushAll
        }
        "RANDOMKEY" => {
            exact(1)?;
            Command::RandomKey {
                seed: rand::random(),
            }
        }
        "SCAN" => {
            at_least(2)?;
            let cursor = cursor(&next())?;
            let options = ScanOptions::parse(words, true)?;
            Command::Scan {
                cursor,
                pattern: options.pattern,
                count: options.count,
                value_type: options.value_type,
            }
        }
        "HSCAN" => {
            at_least(3)?;
            let key = next();
            let cursor = cursor(&next())?;
            // Redis judges the key before the options: refused options go to the store as
            // COUNT 0, which answers for a missing or wrong-typed key first.
            let (pattern, count) = match ScanOptions::parse(words, false) {
                Ok(options) => (options.pattern, options.count),
                Err(CommandError(text)) if text == errors::NOT_AN_INTEGER => {
                    (Some(skiff_kv::HSCAN_COUNT_NOT_AN_INTEGER.to_vec()), 0)
                }
                Err(_) => (None, 0),
            };
            Command::HScan {
                key,
                cursor,
                pattern,
                count,
            }
        }
        "HSET" | "HMSET" => {
            pairs_from(1)?;
            let key = next();
            let pairs = pairs(words);
            if name == "HSET" {
                Command::HSet { key, pairs }
            } else {
                Command::HMSet { key, pairs }
            }
        }
        "HSETNX" => {
            exact(4)?;
            Command::HSetNx {
                key: next(),
                field: next(),
                value: next(),
            }
        }
        "HGET" | "HEXISTS" | "HSTRLEN" => {
            exact(3)?;
            let (key, field) = (next(), next());
            match name {
                "HGET" => Command::HGet { key, field },
                "HEXISTS" => Command::HExists { key, field },
                _ => Command::HStrLen { key, field },
            }
        }
        "HMGET" | "HDEL" => {
            at_least(3)?;
            let key = next();
            let fields = words.collect();
            if name == "HMGET" {
                Command::HMGet { key, fields }
            } else {
                Command::HDel { key, fields }
            }
        }
        "HINCRBY" => {
            exact(4)?;
            let key = next();
            let field = next();
            let increment = integer(&next())?;
            Command::HIncrBy {
                key,
                field,
                increment,
            }
        }
        "HINCRBYFLOAT" => {
            exact(4)?;
            Command::HIncrByFloat {
                key: next(),
                field: next(),
                increment: next(),
            }
        }
        _ => unreachable!("{name} is not handled here"),
    })
}

fn pairs(words: impl Iterator<Item = Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut words = words;
    let mut pairs = Vec::new();
    while let (Some(a), Some(b)) = (words.next(), words.next()) {
        pairs.push((a, b));
    }
    pairs
}

/// A `SCAN` cursor as Redis 7.0 reads one (`strtoul`): decimal digits after an optional
/// sign (`-1` wraps to the largest cursor), no leading space, within 64 bits.
fn cursor(word: &[u8]) -> Result<u64, CommandError> {
    let invalid = || CommandError(errors::INVALID_CURSOR.to_string());
    let (negative, digits) = match word {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, word),
    };
    if digits.is_empty() {
        // strtoul reads no number, and Redis takes the 0 it returns.
        return if word.is_empty() {
            Ok(0)
        } else {
            Err(invalid())
        };
    }
    let magnitude: u64 = std::str::from_utf8(digits)
        .ok()
        .filter(|text| text.bytes().all(|d| d.is_ascii_digit()))
        .and_then(|text| text.parse().ok())
        .ok_or_else(invalid)?;
    Ok(if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    })
}

/// The options after a `SCAN` or `HSCAN` cursor.
struct ScanOptions {
    pattern: Option<Vec<u8>>,
    count: u64,
    value_type: Option<Vec<u8>>,
}

impl ScanOptions {
    /// `MATCH pattern`, `COUNT n` (at least 1; Redis's default is 10) and, for `SCAN`,
    /// `TYPE name`, in any order, the last of each winning.
    fn parse(
        mut words: impl Iterator<Item = Vec<u8>>,
        allow_type: bool,
    ) -> Result<ScanOptions, CommandError> {
        let mut options = ScanOptions {
            pattern: None,
            count: 10,
            value_type: None,
        };
        while let Some(option) = words.next() {
            let value = words.next().ok_or_else(syntax)?;
            match option.to_ascii_uppercase().as_slice() {
                b"MATCH" => options.pattern = Some(value),
                b"COUNT" => {
                    let count = integer(&value)?;
                    options.count = u64::try_from(count)
                        .ok()
                        .filter(|&count| count >= 1)
                        .ok_or_else(syntax)?;
                }
                b"TYPE" if allow_type => options.value_type = Some(value),
                _ => return Err(syntax()),
            }
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, ClientRequest, CommandError};
    use skiff_kv::Command;

    fn words(text: &str) -> Vec<Vec<u8>> {
        text.split(' ').map(|w| w.as_bytes().to_vec()).collect()
    }

    fn command(text: &str) -> Result<Command, String> {
        match parse(words(text)) {
            Ok(ClientRequest::Kv(command)) => Ok(command),
            Ok(other) => panic!("{text} is not a store command: {other:?}"),
            Err(CommandError(error)) => Err(error),
        }
    }

    #[test]
    fn keyspace_commands_parse_to_their_store_operations() {
        let b = |s: &str| s.as_bytes().to_vec();
        let table: Vec<(&str, Command)> = vec![
            ("type k", Command::Type { key: b("k") }),
            (
                "SUBSTR k -3 -1",
                Command::GetRange {
                    key: b("k"),
                    start: -3,
                    end: -1,
                },
            ),
            (
                "decrby n 5",
                Command::IncrBy {
                    key: b("n"),
                    increment: -5,
                },
            ),
            ("flushdb async", Command::FlushAll),
            ("FLUSHALL", Command::FlushAll),
            (
                "scan -1 count 3 match a* type hash",
                Command::Scan {
                    cursor: u64::MAX,
                    pattern: Some(b("a*")),
                    count: 3,
                    value_type: Some(b("hash")),
                },
            ),
            (
                "hset h f 1 g 2",
                Command::HSet {
                    key: b("h"),
                    pairs: vec![(b("f"), b("1")), (b("g"), b("2"))],
                },
            ),
            (
                "hscan h 18446744073709551615",
                Command::HScan {
                    key: b("h"),
                    cursor: u64::MAX,
                    pattern: None,
                    count: 10,
                },
            ),
        ];
        for (text, expected) in table {
            assert_eq!(command(text), Ok(expected), "{text}");
        }
        // HSCAN's refused options reach the store, which judges the key first, as Redis.
        let refused = |pattern: Option<&[u8]>| Command::HScan {
            key: b("h"),
            cursor: 0,
            pattern: pattern.map(<[u8]>::to_vec),
            count: 0,
        };
        for text in [
            "hscan h 0 type string",
            "hscan h 0 foo bar",
            "hscan h 0 match",
            "hscan h 0 count 0",
        ] {
            assert_eq!(command(text), Ok(refused(None)), "{text}");
        }
        let not_an_integer = Some(skiff_kv::HSCAN_COUNT_NOT_AN_INTEGER);
        assert_eq!(command("hscan h 0 count x"), Ok(refused(not_an_integer)));
        assert_eq!(
            command("hscan h x count x"),
            Err(skiff_kv::reply::errors::INVALID_CURSOR.to_string())
        );
    }

    /// Each answer was checked against redis-server 7.0.
    #[test]
    fn bad_keyspace_commands_get_redis_errors() {
        let table: &[(&str, &str)] = &[
            ("TYPE", "ERR wrong number of arguments for 'type' command"),
            (
                "getrange k a 1",
                "ERR value is not an integer or out of range",
            ),
            ("setrange k -1 x", "ERR offset is out of range"),
            (
                "decrby x -9223372036854775808",
                "ERR decrement would overflow",
            ),
            (
                "msetnx a",
                "ERR wrong number of arguments for 'msetnx' command",
            ),
            (
                "msetnx a 1 b",
                "ERR wrong number of arguments for 'msetnx' command",
            ),
            ("flushdb foo", "ERR syntax error"),
            ("flushall sync sync", "ERR syntax error"),
            (
                "randomkey x",
                "ERR wrong number of arguments for 'randomkey' command",
            ),
            ("keys", "ERR wrong number of arguments for 'keys' command"),
            ("scan x", "ERR invalid cursor"),
            ("scan 18446744073709551616", "ERR invalid cursor"),
            ("scan 0 count 0", "ERR syntax error"),
            ("scan 0 count -1", "ERR syntax error"),
            (
                "scan 0 count x",
                "ERR value is not an integer or out of range",
            ),
            ("scan 0 match", "ERR syntax error"),
            ("scan 0 foo bar", "ERR syntax error"),
            (
                "hset h a",
                "ERR wrong number of arguments for 'hset' command",
            ),
            (
                "hset h a 1 b",
                "ERR wrong number of arguments for 'hset' command",
            ),
            (
                "hmset h a",
                "ERR wrong number of arguments for 'hmset' command",
            ),
            ("hget h", "ERR wrong number of arguments for 'hget' command"),
            ("hdel h", "ERR wrong number of arguments for 'hdel' command"),
            (
                "hincrby h f x",
                "ERR value is not an integer or out of range",
            ),
        ];
        for (text, error) in table {
            assert_eq!(command(text), Err(error.to_string()), "{text}");
        }
    }
}
