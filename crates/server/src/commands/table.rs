//! Every command this server runs, described as Redis 7's `COMMAND` describes it: name,
//! arity, flags, first key, last key, key step and ACL categories. The parser checks arity
//! against this one table, so `COMMAND` and the parser cannot disagree.

use skiff_kv::reply::errors;
use skiff_kv::Reply;

use super::CommandError;

/// One command's description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// The name, lower case.
    pub name: &'static str,
    /// Redis's arity: `n` words exactly when positive, at least `-n` when negative (the
    /// name counts).
    pub arity: i64,
    /// Redis's command flags (`write`, `readonly`, `fast`…).
    pub flags: &'static [&'static str],
    /// The position of the first key (0: none).
    pub first_key: i64,
    /// The position of the last key (-1: the last word).
    pub last_key: i64,
    /// The distance between keys.
    pub step: i64,
    /// Redis's ACL categories (`@read`, `@string`…).
    pub categories: &'static [&'static str],
}

impl CommandSpec {
    /// Whether `argc` words (the name included) suit the command's arity; Redis's error if
    /// not.
    pub fn check_arity(&self, argc: usize) -> Result<(), CommandError> {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let fits = if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        };
        if fits {
            Ok(())
        } else {
            Err(CommandError(errors::wrong_arity(self.name)))
        }
    }

    /// The description `COMMAND` and `COMMAND INFO` give: Redis 7's ten fields, with no
    /// tips, key specifications or subcommands.
    pub fn reply(&self) -> Reply {
        let simple = |words: &[&str]| {
            Reply::Array(words.iter().map(|w| Reply::Simple(w.to_string())).collect())
        };
        Reply::Array(vec![
            Reply::Bulk(self.name.as_bytes().to_vec()),
            Reply::Integer(self.arity),
            simple(self.flags),
            Reply::Integer(self.first_key),
            Reply::Integer(self.last_key),
            Reply::Integer(self.step),
            simple(self.categories),
            Reply::Array(Vec::new()),
            Reply::Array(Vec::new()),
            Reply::Array(Vec::new()),
        ])
    }
}

/// The command named `name` (any case): a binary search of [`COMMANDS`], which is sorted by
/// name, since the parser looks up every request's command here.
pub fn lookup(name: &str) -> Option<&'static CommandSpec> {
    let wanted = name.bytes().map(|b| b.to_ascii_lowercase());
    COMMANDS
        .binary_search_by(|spec| spec.name.bytes().cmp(wanted.clone()))
        .ok()
        .map(|at| &COMMANDS[at])
}

/// Redis's flags and categories of the subscription commands.
const PUBSUB: &[&str] = &["pubsub", "noscript", "loading", "stale"];
const PUBSUB_SLOW: &[&str] = &["@pubsub", "@slow"];

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    categories: &'static [&'static str],
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        categories,
    }
}

const NO_KEYS: (i64, i64, i64) = (0, 0, 0);
const ONE_KEY: (i64, i64, i64) = (1, 1, 1);
const ALL_KEYS: (i64, i64, i64) = (1, -1, 1);

const READ_FAST: &[&str] = &["readonly", "fast"];
const WRITE_FAST: &[&str] = &["write", "denyoom", "fast"];
const WRITE: &[&str] = &["write", "denyoom"];
const WRITE_NO_DENY: &[&str] = &["write", "fast"];
const LOCAL: &[&str] = &["loading", "stale"];
const EXEC: &[&str] = &["noscript", "loading", "stale", "skip_slowlog"];
const SCAN_DANGEROUS: &[&str] = &["@keyspace", "@read", "@slow", "@dangerous"];
const TRANSACTION: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];
const LOCAL_FAST: &[&str] = &["loading", "stale", "fast"];
const BEFORE_AUTH: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];

const READ_STRING: &[&str] = &["@read", "@string", "@fast"];
const READ_STRING_SLOW: &[&str] = &["@read", "@string", "@slow"];
const WRITE_STRING: &[&str] = &["@write", "@string", "@fast"];
const WRITE_STRING_SLOW: &[&str] = &["@write", "@string", "@slow"];
const READ_HASH: &[&str] = &["@read", "@hash", "@fast"];
const READ_HASH_SLOW: &[&str] = &["@read", "@hash", "@slow"];
const WRITE_HASH: &[&str] = &["@write", "@hash", "@fast"];
const READ_KEYSPACE: &[&str] = &["@keyspace", "@read", "@fast"];
const READ_KEYSPACE_SLOW: &[&str] = &["@keyspace", "@read", "@slow"];
const WRITE_KEYSPACE: &[&str] = &["@keyspace", "@write", "@fast"];
const WRITE_KEYSPACE_SLOW: &[&str] = &["@keyspace", "@write", "@slow"];
const FLUSH: &[&str] = &["@keyspace", "@write", "@slow", "@dangerous"];
const CONNECTION_FAST: &[&str] = &["@fast", "@connection"];
const CONNECTION_SLOW: &[&str] = &["@slow", "@connection"];
const TRANSACTIONS: &[&str] = &["@fast", "@transaction"];

/// Every command this server runs, sorted by name (as [`lookup`] needs; `COMMAND` lists
/// them in this order). Each row is Redis 7.0's, but for Skiff's own `CAS` and `REVISION`.
pub const COMMANDS: &[CommandSpec] = &[
    spec("append", 3, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("auth", -2, BEFORE_AUTH, NO_KEYS, CONNECTION_FAST),
    spec("cas", 4, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("client", -2, &[], NO_KEYS, &["@slow"]),
    spec("command", -1, LOCAL, NO_KEYS, CONNECTION_SLOW),
    spec("config", -2, &[], NO_KEYS, &["@slow"]),
    spec("dbsize", 1, READ_FAST, NO_KEYS, READ_KEYSPACE),
    spec("decr", 2, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("decrby", 3, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("del", -2, &["write"], ALL_KEYS, WRITE_KEYSPACE_SLOW),
    spec("discard", 1, TRANSACTION, NO_KEYS, TRANSACTIONS),
    spec("echo", 2, LOCAL_FAST, NO_KEYS, CONNECTION_FAST),
    spec("exec", 1, EXEC, NO_KEYS, &["@slow", "@transaction"]),
    spec("exists", -2, READ_FAST, ALL_KEYS, READ_KEYSPACE),
    spec("expire", -3, WRITE_NO_DENY, ONE_KEY, WRITE_KEYSPACE),
    spec("expireat", -3, WRITE_NO_DENY, ONE_KEY, WRITE_KEYSPACE),
    spec("expiretime", 2, READ_FAST, ONE_KEY, READ_KEYSPACE),
    spec("flushall", -1, &["write"], NO_KEYS, FLUSH),
    spec("flushdb", -1, &["write"], NO_KEYS, FLUSH),
    spec("get", 2, READ_FAST, ONE_KEY, READ_STRING),
    spec("getdel", 2, WRITE_NO_DENY, ONE_KEY, WRITE_STRING),
    spec("getex", -2, WRITE_NO_DENY, ONE_KEY, WRITE_STRING),
    spec("getrange", 4, &["readonly"], ONE_KEY, READ_STRING_SLOW),
    spec("getset", 3, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("hdel", -3, WRITE_NO_DENY, ONE_KEY, WRITE_HASH),
    spec("hello", -1, BEFORE_AUTH, NO_KEYS, CONNECTION_FAST),
    spec("hexists", 3, READ_FAST, ONE_KEY, READ_HASH),
    spec("hget", 3, READ_FAST, ONE_KEY, READ_HASH),
    spec("hgetall", 2, &["readonly"], ONE_KEY, READ_HASH_SLOW),
    spec("hincrby", 4, WRITE_FAST, ONE_KEY, WRITE_HASH),
    spec("hincrbyfloat", 4, WRITE_FAST, ONE_KEY, WRITE_HASH),
    spec("hkeys", 2, &["readonly"], ONE_KEY, READ_HASH_SLOW),
    spec("hlen", 2, READ_FAST, ONE_KEY, READ_HASH),
    spec("hmget", -3, READ_FAST, ONE_KEY, READ_HASH),
    spec("hmset", -4, WRITE_FAST, ONE_KEY, WRITE_HASH),
    spec("hscan", -3, &["readonly"], ONE_KEY, READ_HASH_SLOW),
    spec("hset", -4, WRITE_FAST, ONE_KEY, WRITE_HASH),
    spec("hsetnx", 4, WRITE_FAST, ONE_KEY, WRITE_HASH),
    spec("hstrlen", 3, READ_FAST, ONE_KEY, READ_HASH),
    spec("hvals", 2, &["readonly"], ONE_KEY, READ_HASH_SLOW),
    spec("incr", 2, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("incrby", 3, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("incrbyfloat", 3, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("info", -1, LOCAL, NO_KEYS, &["@slow", "@dangerous"]),
    spec("keys", 2, &["readonly"], NO_KEYS, SCAN_DANGEROUS),
    spec("mget", -2, READ_FAST, ALL_KEYS, READ_STRING),
    spec("mset", -3, WRITE, (1, -1, 2), WRITE_STRING_SLOW),
    spec("msetnx", -3, WRITE, (1, -1, 2), WRITE_STRING_SLOW),
    spec("multi", 1, TRANSACTION, NO_KEYS, TRANSACTIONS),
    spec("persist", 2, WRITE_NO_DENY, ONE_KEY, WRITE_KEYSPACE),
    spec("pexpire", -3, WRITE_NO_DENY, ONE_KEY, WRITE_KEYSPACE),
    spec("pexpireat", -3, WRITE_NO_DENY, ONE_KEY, WRITE_KEYSPACE),
    spec("pexpiretime", 2, READ_FAST, ONE_KEY, READ_KEYSPACE),
    spec("ping", -1, &["fast"], NO_KEYS, CONNECTION_FAST),
    spec("psetex", 4, WRITE, ONE_KEY, WRITE_STRING_SLOW),
    spec("psubscribe", -2, PUBSUB, NO_KEYS, PUBSUB_SLOW),
    spec("pttl", 2, READ_FAST, ONE_KEY, READ_KEYSPACE),
    spec("punsubscribe", -1, PUBSUB, NO_KEYS, PUBSUB_SLOW),
    spec("quit", -1, BEFORE_AUTH, NO_KEYS, CONNECTION_FAST),
    spec("randomkey", 1, &["readonly"], NO_KEYS, READ_KEYSPACE_SLOW),
    spec("readonly", 1, LOCAL_FAST, NO_KEYS, CONNECTION_FAST),
    spec("readwrite", 1, LOCAL_FAST, NO_KEYS, CONNECTION_FAST),
    spec("rename", 3, &["write"], (1, 2, 1), WRITE_KEYSPACE_SLOW),
    spec("renamenx", 3, WRITE_NO_DENY, (1, 2, 1), WRITE_KEYSPACE),
    spec("reset", 1, BEFORE_AUTH, NO_KEYS, CONNECTION_FAST),
    spec("revision", 2, READ_FAST, ONE_KEY, READ_KEYSPACE),
    spec("scan", -2, &["readonly"], NO_KEYS, READ_KEYSPACE_SLOW),
    spec("select", 2, LOCAL_FAST, NO_KEYS, CONNECTION_FAST),
    spec("set", -3, WRITE, ONE_KEY, WRITE_STRING_SLOW),
    spec("setex", 4, WRITE, ONE_KEY, WRITE_STRING_SLOW),
    spec("setnx", 3, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("setrange", 4, WRITE, ONE_KEY, WRITE_STRING_SLOW),
    spec("strlen", 2, READ_FAST, ONE_KEY, READ_STRING),
    spec("subscribe", -2, PUBSUB, NO_KEYS, PUBSUB_SLOW),
    spec("substr", 4, &["readonly"], ONE_KEY, READ_STRING_SLOW),
    spec("time", 1, LOCAL_FAST, NO_KEYS, &["@fast"]),
    spec("touch", -2, READ_FAST, ALL_KEYS, READ_KEYSPACE),
    spec("ttl", 2, READ_FAST, ONE_KEY, READ_KEYSPACE),
    spec("type", 2, READ_FAST, ONE_KEY, READ_KEYSPACE),
    spec("unlink", -2, WRITE_NO_DENY, ALL_KEYS, WRITE_KEYSPACE),
    spec("unsubscribe", -1, PUBSUB, NO_KEYS, PUBSUB_SLOW),
    spec("unwatch", 1, TRANSACTION, NO_KEYS, TRANSACTIONS),
    spec("watch", -2, TRANSACTION, ALL_KEYS, TRANSACTIONS),
];

#[cfg(test)]
mod tests {
    use super::super::{parse, CommandError};
    use super::*;

    /// Redis 7.0.15's own `COMMAND` reply, one command a line: name, arity, flags, first
    /// key, last key, step, categories (`-` for none).
    const REDIS_COMMANDS: &str = include_str!("redis-7.0-commands.txt");

    /// The sources of the parser, to find every upper-case word it matches on.
    const PARSER_SOURCES: &[&str] = &[
        include_str!("../commands.rs"),
        include_str!("config.rs"),
        include_str!("connection.rs"),
        include_str!("expiry.rs"),
        include_str!("keyspace.rs"),
        include_str!("pubsub.rs"),
    ];

    /// Commands of Skiff's own, which Redis does not have.
    const SKIFF_ONLY: &[&str] = &["cas", "revision"];

    fn redis_row(line: &str) -> (String, String) {
        let name = line.split(' ').next().expect("a name").to_string();
        (name, line.to_string())
    }

    fn row_text(spec: &CommandSpec) -> String {
        let list = |words: &[&str]| {
            if words.is_empty() {
                "-".to_string()
            } else {
                words.join(",")
            }
        };
        format!(
            "{} {} {} {} {} {} {}",
            spec.name,
            spec.arity,
            list(spec.flags),
            spec.first_key,
            spec.last_key,
            spec.step,
            list(spec.categories)
        )
    }

    /// Every quoted upper-case word in the parser's sources: each command name it matches
    /// on, among option words.
    fn parser_words() -> Vec<String> {
        let mut words = Vec::new();
        for source in PARSER_SOURCES {
            for piece in source.split('"').skip(1).step_by(2) {
                if !piece.is_empty() && piece.bytes().all(|b| b.is_ascii_uppercase()) {
                    words.push(piece.to_string());
                }
            }
        }
        words
    }

    /// Whether the parser runs `name` (refusing it at most for its arguments), rather than
    /// answering that it does not know it or refusing it on purpose (`PUBLISH`), whatever
    /// the number of arguments.
    fn parser_runs(name: &str) -> bool {
        (0..6).all(|extra| {
            let mut words = vec![name.as_bytes().to_vec()];
            words.extend((0..extra).map(|i| format!("{i}").into_bytes()));
            match parse(words) {
                Ok(_) => true,
                Err(CommandError(text)) => {
                    !text.contains("unknown command") && !text.contains("is not supported")
                }
            }
        })
    }

    #[test]
    fn the_table_is_sorted_so_lookup_finds_every_row_in_any_case() {
        for pair in COMMANDS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for spec in COMMANDS {
            assert_eq!(lookup(spec.name), Some(spec));
            assert_eq!(lookup(&spec.name.to_ascii_uppercase()), Some(spec));
        }
        assert_eq!(lookup("nosuchcommand"), None);
        assert_eq!(lookup(""), None);
    }

    /// `COMMAND`, `COMMAND COUNT` and `COMMAND INFO` describe exactly the commands the parser
    /// runs: every name it accepts (any Redis command, or any word its sources match on) has
    /// a row, and every row's name is accepted.
    #[test]
    fn every_command_the_parser_runs_has_a_row_and_no_other() {
        let mut candidates: Vec<String> = REDIS_COMMANDS
            .lines()
            .map(|line| redis_row(line).0.to_ascii_uppercase())
            .collect();
        candidates.extend(parser_words());
        candidates.extend(SKIFF_ONLY.iter().map(|name| name.to_ascii_uppercase()));
        candidates.sort();
        candidates.dedup();
        for name in &candidates {
            assert_eq!(
                parser_runs(name),
                lookup(name).is_some(),
                "{name}: the parser runs it, or the table has a row, but not both"
            );
        }
        for spec in COMMANDS {
            assert!(
                parser_runs(spec.name),
                "{} has a row but is refused",
                spec.name
            );
        }
    }

    /// Each row says what Redis 7.0's `COMMAND INFO` says of that command.
    #[test]
    fn every_row_matches_redis_7() {
        let redis: std::collections::BTreeMap<String, String> =
            REDIS_COMMANDS.lines().map(redis_row).collect();
        assert_eq!(redis.len(), 240, "Redis 7.0.15 has 240 commands");
        for spec in COMMANDS {
            match redis.get(spec.name) {
                Some(line) => assert_eq!(&row_text(spec), line),
                None => assert!(
                    SKIFF_ONLY.contains(&spec.name),
                    "{} is not Redis's",
                    spec.name
                ),
            }
        }
    }
}
