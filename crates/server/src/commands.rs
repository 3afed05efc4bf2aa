//! What a client's request means: a key-value command for the cluster, or a command this node
//! answers by itself (PING, INFO…).

use skiff_kv::reply::errors;
use skiff_kv::Command;

mod config;
mod connection;
mod expiry;
mod keyspace;
mod pubsub;
pub mod table;

pub use config::ConfigRequest;
pub use connection::{ClientCommand, CommandQuery, HelloRequest};
pub use pubsub::PubSubRequest;

/// A parsed client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientRequest {
    /// A command for the replicated store.
    Kv(Command),
    /// `PING [message]`.
    Ping(Option<Vec<u8>>),
    /// `ECHO message`.
    Echo(Vec<u8>),
    /// `TIME`: this node's clock, as seconds and microseconds since the Unix epoch.
    Time,
    /// `SELECT 0` (the only database).
    Select,
    /// `INFO [section]`.
    Info,
    /// `CONFIG GET|SET|RESETSTAT|REWRITE` (see `runtime_config`).
    Config(ConfigRequest),
    /// `SUBSCRIBE` and its kin.
    PubSub(PubSubRequest),
    /// `READONLY`, `READWRITE`: connection-level commands answered locally.
    Ok,
    /// `QUIT`: reply OK and close.
    Quit,
    /// `AUTH [username] password`.
    Auth {
        /// The user; Skiff has only `default`.
        username: Option<Vec<u8>>,
        /// The password tried.
        password: Vec<u8>,
    },
    /// `HELLO [2 [AUTH username password] [SETNAME name]]`.
    Hello(HelloRequest),
    /// `MULTI`: start queueing a transaction.
    Multi,
    /// `EXEC`: run the queued transaction.
    Exec,
    /// `DISCARD`: drop the queued transaction.
    Discard,
    /// `WATCH key…`: abort the next `EXEC` if one of the keys changes first.
    Watch(Vec<Vec<u8>>),
    /// `UNWATCH`.
    Unwatch,
    /// `RESET`: the connection as it was when it opened.
    Reset,
    /// `CLIENT …`.
    Client(ClientCommand),
    /// `COMMAND …`.
    Command(CommandQuery),
}

/// Why a request is not a command this server runs; the text is the Redis-style error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(pub String);

fn arity(name: &str) -> CommandError {
    CommandError(errors::wrong_arity(&name.to_ascii_lowercase()))
}

fn syntax() -> CommandError {
    CommandError("ERR syntax error".to_string())
}

fn integer(bytes: &[u8]) -> Result<i64, CommandError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| CommandError(errors::NOT_AN_INTEGER.to_string()))
}

/// Interprets a request's words. `args` is not empty.
pub fn parse(mut args: Vec<Vec<u8>>) -> Result<ClientRequest, CommandError> {
    let typed: String = String::from_utf8_lossy(&args[0]).chars().take(64).collect();
    let name = typed.to_ascii_uppercase();
    let argc = args.len();
    let mut rest = args.drain(1..);
    // The table `COMMAND` describes is the one arity is checked against.
    if let Some(spec) = table::lookup(&name) {
        spec.check_arity(argc)?;
    }
    let mut next = || rest.next().expect("arity checked");
    let exact = |n: usize| if argc == n { Ok(()) } else { Err(arity(&name)) };
    let at_least = |n: usize| if argc >= n { Ok(()) } else { Err(arity(&name)) };
    Ok(match name.as_str() {
        "GET" => {
            exact(2)?;
            ClientRequest::Kv(Command::Get { key: next() })
        }
        "SET" => {
            at_least(3)?;
            let key = next();
            let value = next();
            ClientRequest::Kv(expiry::parse_set(key, value, &mut rest)?)
        }
        "SETEX" | "PSETEX" => {
            exact(4)?;
            let key = next();
            let time = next();
            let value = next();
            ClientRequest::Kv(expiry::parse_set_ex(key, &time, value, name == "PSETEX")?)
        }
        "SETNX" => {
            exact(3)?;
            ClientRequest::Kv(Command::SetNx {
                key: next(),
                value: next(),
            })
        }
        "GETSET" => {
            exact(3)?;
            let key = next();
            let value = next();
            let options = skiff_kv::SetOptions {
                get: true,
                ..Default::default()
            };
            ClientRequest::Kv(Command::SetWith {
                key,
                value,
                options,
            })
        }
        "GETEX" => {
            at_least(2)?;
            let key = next();
            ClientRequest::Kv(expiry::parse_get_ex(key, &mut rest)?)
        }
        "GETDEL" => {
            exact(2)?;
            ClientRequest::Kv(Command::GetDel { key: next() })
        }
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" => {
            at_least(3)?;
            let key = next();
            let time = next();
            let lower = name.to_ascii_lowercase();
            ClientRequest::Kv(expiry::parse_expire(&lower, key, &time, rest)?)
        }
        "PERSIST" => {
            exact(2)?;
            ClientRequest::Kv(Command::Persist { key: next() })
        }
        "TTL" | "PTTL" | "EXPIRETIME" | "PEXPIRETIME" => {
            exact(2)?;
            ClientRequest::Kv(expiry::parse_ttl(&name.to_ascii_lowercase(), next()))
        }
        "REVISION" => {
            exact(2)?;
            ClientRequest::Kv(Command::Revision { key: next() })
        }
        "DEL" | "UNLINK" => {
            at_least(2)?;
            ClientRequest::Kv(Command::Del {
                keys: rest.collect(),
            })
        }
        // Skiff keeps no access times, so touching a key is asking whether it exists.
        "EXISTS" | "TOUCH" => {
            at_least(2)?;
            ClientRequest::Kv(Command::Exists {
                keys: rest.collect(),
            })
        }
        "INCR" => {
            exact(2)?;
            ClientRequest::Kv(Command::Incr { key: next() })
        }
        "DECR" => {
            exact(2)?;
            ClientRequest::Kv(Command::Decr { key: next() })
        }
        "INCRBY" => {
            exact(3)?;
            let key = next();
            let increment = integer(&next())?;
            ClientRequest::Kv(Command::IncrBy { key, increment })
        }
        "MGET" => {
            at_least(2)?;
            ClientRequest::Kv(Command::MGet {
                keys: rest.collect(),
            })
        }
        "MSET" => {
            if argc < 3 || argc % 2 == 0 {
                return Err(arity(&name));
            }
            let mut pairs = Vec::with_capacity(argc / 2);
            while let (Some(key), Some(value)) = (rest.next(), rest.next()) {
                pairs.push((key, value));
            }
            ClientRequest::Kv(Command::MSet { pairs })
        }
        "CAS" => {
            // CAS key expected new: swap only if the current value is `expected`.
            exact(4)?;
            let key = next();
            let expected = next();
            let new = next();
            ClientRequest::Kv(Command::Cas {
                key,
                expected: Some(expected),
                new,
            })
        }
        "DBSIZE" => {
            exact(1)?;
            ClientRequest::Kv(Command::DbSize)
        }
        "PING" => {
            if argc > 2 {
                return Err(arity(&name));
            }
            ClientRequest::Ping(rest.next())
        }
        "ECHO" => {
            exact(2)?;
            ClientRequest::Echo(next())
        }
        "TIME" => {
            exact(1)?;
            ClientRequest::Time
        }
        "SELECT" => {
            exact(2)?;
            if integer(&next())? != 0 {
                return Err(CommandError("ERR DB index is out of range".to_string()));
            }
            ClientRequest::Select
        }
        "INFO" => ClientRequest::Info,
        "CONFIG" => return config::parse(rest),
        "SUBSCRIBE" | "PSUBSCRIBE" | "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "PUBLISH" => {
            return pubsub::parse(&name, rest).expect("a pub/sub command")
        }
        "READONLY" | "READWRITE" => ClientRequest::Ok,
        "CLIENT" => ClientRequest::Client(connection::parse_client(rest)?),
        "HELLO" => ClientRequest::Hello(connection::parse_hello(rest)?),
        "MULTI" => ClientRequest::Multi,
        "EXEC" => ClientRequest::Exec,
        "DISCARD" => ClientRequest::Discard,
        "WATCH" => ClientRequest::Watch(rest.collect()),
        "UNWATCH" => ClientRequest::Unwatch,
        "RESET" => ClientRequest::Reset,
        "AUTH" => match argc {
            2 => ClientRequest::Auth {
                username: None,
                password: next(),
            },
            3 => ClientRequest::Auth {
                username: Some(next()),
                password: next(),
            },
            _ => return Err(syntax()),
        },
        name if keyspace::handles(name) => ClientRequest::Kv(keyspace::parse(name, argc, rest)?),
        "COMMAND" => ClientRequest::Command(connection::parse_command(rest)?),
        "QUIT" => ClientRequest::Quit,
        _ => return Err(CommandError(format!("ERR unknown command '{typed}'"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_kv::SetCondition;

    fn words(text: &str) -> Vec<Vec<u8>> {
        text.split(' ').map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn commands_map_to_their_store_operations() {
        let table: &[(&str, ClientRequest)] = &[
            (
                "get k",
                ClientRequest::Kv(Command::Get { key: b"k".to_vec() }),
            ),
            (
                "SET k v NX",
                ClientRequest::Kv(Command::Set {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                    condition: SetCondition::IfAbsent,
                }),
            ),
            (
                "cas k old new",
                ClientRequest::Kv(Command::Cas {
                    key: b"k".to_vec(),
                    expected: Some(b"old".to_vec()),
                    new: b"new".to_vec(),
                }),
            ),
            (
                "INCRBY n -3",
                ClientRequest::Kv(Command::IncrBy {
                    key: b"n".to_vec(),
                    increment: -3,
                }),
            ),
            (
                "MSET a 1 b 2",
                ClientRequest::Kv(Command::MSet {
                    pairs: vec![
                        (b"a".to_vec(), b"1".to_vec()),
                        (b"b".to_vec(), b"2".to_vec()),
                    ],
                }),
            ),
            ("PING", ClientRequest::Ping(None)),
            (
                "AUTH pw",
                ClientRequest::Auth {
                    username: None,
                    password: b"pw".to_vec(),
                },
            ),
            (
                "auth default pw",
                ClientRequest::Auth {
                    username: Some(b"default".to_vec()),
                    password: b"pw".to_vec(),
                },
            ),
            (
                "HELLO 2",
                ClientRequest::Hello(HelloRequest {
                    auth: None,
                    setname: None,
                }),
            ),
            (
                "HELLO 2 SETNAME x AUTH default pw",
                ClientRequest::Hello(HelloRequest {
                    auth: Some((b"default".to_vec(), b"pw".to_vec())),
                    setname: Some(b"x".to_vec()),
                }),
            ),
            ("multi", ClientRequest::Multi),
            (
                "WATCH a b",
                ClientRequest::Watch(vec![b"a".to_vec(), b"b".to_vec()]),
            ),
            (
                "client setname conn-1",
                ClientRequest::Client(ClientCommand::SetName(b"conn-1".to_vec())),
            ),
            (
                "CLIENT LIST ID 3 4",
                ClientRequest::Client(ClientCommand::List {
                    ids: Some(vec![3, 4]),
                }),
            ),
            (
                "CLIENT SETINFO LIB-NAME redis-py",
                ClientRequest::Client(ClientCommand::SetInfo {
                    lib_name: true,
                    value: b"redis-py".to_vec(),
                }),
            ),
            ("COMMAND", ClientRequest::Command(CommandQuery::All)),
            (
                "command info get",
                ClientRequest::Command(CommandQuery::Info(vec![b"get".to_vec()])),
            ),
            ("select 0", ClientRequest::Select),
            (
                "CONFIG GET save",
                ClientRequest::Config(ConfigRequest::Get(vec![b"save".to_vec()])),
            ),
        ];
        for (text, expected) in table {
            assert_eq!(parse(words(text)).as_ref(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn bad_commands_get_redis_style_errors() {
        let table: &[(&str, &str)] = &[
            ("GET", "ERR wrong number of arguments for 'get' command"),
            ("SET k v EX", "ERR syntax error"),
            ("SET k v NX XX", "ERR syntax error"),
            (
                "MSET a 1 b",
                "ERR wrong number of arguments for 'mset' command",
            ),
            ("INCRBY n x", "ERR value is not an integer or out of range"),
            ("SELECT 3", "ERR DB index is out of range"),
            ("FLUSHALL x", "ERR syntax error"),
            (
                "MULTI x",
                "ERR wrong number of arguments for 'multi' command",
            ),
            ("WATCH", "ERR wrong number of arguments for 'watch' command"),
            (
                "CLIENT",
                "ERR wrong number of arguments for 'client' command",
            ),
            (
                "CLIENT ID x",
                "ERR wrong number of arguments for 'client|id' command",
            ),
            (
                "CLIENT SETNAME",
                "ERR wrong number of arguments for 'client|setname' command",
            ),
            (
                "CLIENT FOO",
                "ERR unknown subcommand 'FOO'. Try CLIENT HELP.",
            ),
            ("CLIENT LIST TYPE foo", "ERR Unknown client type 'foo'"),
            ("CLIENT LIST ID abc", "ERR Invalid client ID"),
            ("CLIENT LIST foo", "ERR syntax error"),
            ("CLIENT SETINFO foo bar", "ERR Unrecognized option 'foo'"),
            (
                "COMMAND COUNT x",
                "ERR wrong number of arguments for 'command|count' command",
            ),
            (
                "COMMAND FOO",
                "ERR unknown subcommand 'FOO'. Try COMMAND HELP.",
            ),
            ("HELLO 3", "NOPROTO unsupported protocol version"),
            (
                "HELLO x",
                "ERR Protocol version is not an integer or out of range",
            ),
            ("HELLO 2 FOO", "ERR Syntax error in HELLO option 'FOO'"),
            ("HELLO 2 AUTH", "ERR Syntax error in HELLO option 'AUTH'"),
        ];
        for (text, error) in table {
            assert_eq!(
                parse(words(text)),
                Err(CommandError(error.to_string())),
                "{text}"
            );
        }
        // Names with spaces or line breaks, as Redis refuses them.
        let name_error = "ERR Client names cannot contain spaces, newlines or special characters.";
        for name in [&b"a b"[..], b"a\nb", b"\x01"] {
            let args = vec![b"CLIENT".to_vec(), b"SETNAME".to_vec(), name.to_vec()];
            assert_eq!(parse(args), Err(CommandError(name_error.to_string())));
        }
    }

    /// Every command `COMMAND` describes is one the parser runs, and the parser refuses it
    /// with one word fewer than its arity asks, as the table says.
    #[test]
    fn the_command_table_and_the_parser_agree() {
        for spec in table::COMMANDS {
            let needed = usize::try_from(spec.arity.unsigned_abs()).expect("small");
            let mut args = vec![spec.name.as_bytes().to_vec()];
            args.extend((1..needed).map(|i| format!("{i}").into_bytes()));
            if let Err(CommandError(text)) = parse(args.clone()) {
                assert!(!text.contains("unknown command"), "{}: {text}", spec.name);
                assert!(!text.contains("wrong number"), "{}: {text}", spec.name);
            }
            if needed > 1 {
                args.pop();
                assert_eq!(
                    parse(args),
                    Err(arity(spec.name)),
                    "{} with too few words",
                    spec.name
                );
            }
            if spec.arity > 0 {
                let mut args = vec![spec.name.as_bytes().to_vec()];
                args.extend((0..needed).map(|i| format!("{i}").into_bytes()));
                assert_eq!(
                    parse(args),
                    Err(arity(spec.name)),
                    "{} with one more",
                    spec.name
                );
            }
        }
    }
}
