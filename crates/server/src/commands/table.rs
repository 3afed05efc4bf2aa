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

/// The command named `name` (any case).
pub fn lookup(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|spec| spec.name.eq_ignore_ascii_case(name))
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
const CONNECTION: &[&str] = &["noscript", "loading", "stale", "fast"];
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
const WRITE_STRING: &[&str] = &["@write", "@string", "@fast"];
const WRITE_STRING_SLOW: &[&str] = &["@write", "@string", "@slow"];
const READ_KEYSPACE: &[&str] = &["@keyspace", "@read", "@fast"];
const WRITE_KEYSPACE: &[&str] = &["@keyspace", "@write", "@fast"];
const CONNECTION_FAST: &[&str] = &["@fast", "@connection"];
const CONNECTION_SLOW: &[&str] = &["@slow", "@connection"];
const TRANSACTIONS: &[&str] = &["@fast", "@transaction"];

/// Every command this server runs, in the order `COMMAND` lists them.
pub const COMMANDS: &[CommandSpec] = &[
    spec("get", 2, READ_FAST, ONE_KEY, READ_STRING),
    spec("set", -3, WRITE, ONE_KEY, WRITE_STRING_SLOW),
    spec("setex", 4, WRITE, ONE_KEY, WRITE_STRING_SLOW),
    spec("psetex", 4, WRITE, ONE_KEY, WRITE_STRING_SLOW),
    spec("setnx", 3, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("getset", 3, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("getex", -2, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("getdel", 2, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("expire", -3, WRITE_NO_DENY, ONE_KEY, WRITE_KEYSPACE),
    spec("pexpire", -3, WRITE_NO_DENY, ONE_KEY, WRITE_KEYSPACE),
    spec("expireat", -3, WRITE_NO_DENY, ONE_KEY, WRITE_KEYSPACE),
    spec("pexpireat", -3, WRITE_NO_DENY, ONE_KEY, WRITE_KEYSPACE),
    spec("persist", 2, WRITE_NO_DENY, ONE_KEY, WRITE_KEYSPACE),
    spec("ttl", 2, READ_FAST, ONE_KEY, READ_KEYSPACE),
    spec("pttl", 2, READ_FAST, ONE_KEY, READ_KEYSPACE),
    spec("expiretime", 2, READ_FAST, ONE_KEY, READ_KEYSPACE),
    spec("pexpiretime", 2, READ_FAST, ONE_KEY, READ_KEYSPACE),
    spec("revision", 2, READ_FAST, ONE_KEY, READ_KEYSPACE),
    spec(
        "del",
        -2,
        &["write"],
        ALL_KEYS,
        &["@keyspace", "@write", "@slow"],
    ),
    spec("unlink", -2, WRITE_NO_DENY, ALL_KEYS, WRITE_KEYSPACE),
    spec("exists", -2, READ_FAST, ALL_KEYS, READ_KEYSPACE),
    spec("incr", 2, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("decr", 2, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("incrby", 3, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("mget", -2, READ_FAST, ALL_KEYS, READ_STRING),
    spec("mset", -3, WRITE, (1, -1, 2), WRITE_STRING_SLOW),
    spec("cas", 4, WRITE_FAST, ONE_KEY, WRITE_STRING),
    spec("dbsize", 1, READ_FAST, NO_KEYS, READ_KEYSPACE),
    spec("multi", 1, TRANSACTION, NO_KEYS, TRANSACTIONS),
    spec(
        "exec",
        1,
        &["noscript", "loading", "stale", "skip_slowlog"],
        NO_KEYS,
        &["@slow", "@transaction"],
    ),
    spec("discard", 1, TRANSACTION, NO_KEYS, TRANSACTIONS),
    spec("watch", -2, TRANSACTION, ALL_KEYS, TRANSACTIONS),
    spec("unwatch", 1, TRANSACTION, NO_KEYS, TRANSACTIONS),
    spec("ping", -1, &["fast"], NO_KEYS, CONNECTION_FAST),
    spec("echo", 2, &["fast"], NO_KEYS, CONNECTION_FAST),
    spec("select", 2, CONNECTION, NO_KEYS, CONNECTION_FAST),
    spec(
        "info",
        -1,
        &["loading", "stale"],
        NO_KEYS,
        &["@slow", "@dangerous"],
    ),
    spec("config", -2, &[], NO_KEYS, &["@slow"]),
    spec("client", -2, &[], NO_KEYS, &["@slow"]),
    spec("subscribe", -2, PUBSUB, NO_KEYS, PUBSUB_SLOW),
    spec("psubscribe", -2, PUBSUB, NO_KEYS, PUBSUB_SLOW),
    spec("unsubscribe", -1, PUBSUB, NO_KEYS, PUBSUB_SLOW),
    spec("punsubscribe", -1, PUBSUB, NO_KEYS, PUBSUB_SLOW),
    spec(
        "command",
        -1,
        &["loading", "stale"],
        NO_KEYS,
        CONNECTION_SLOW,
    ),
    spec("hello", -1, BEFORE_AUTH, NO_KEYS, CONNECTION_FAST),
    spec("auth", -2, BEFORE_AUTH, NO_KEYS, CONNECTION_FAST),
    spec("readonly", 1, LOCAL_FAST, NO_KEYS, CONNECTION_FAST),
    spec("readwrite", 1, LOCAL_FAST, NO_KEYS, CONNECTION_FAST),
    spec("reset", 1, BEFORE_AUTH, NO_KEYS, CONNECTION_FAST),
    spec("quit", -1, BEFORE_AUTH, NO_KEYS, CONNECTION_FAST),
];
