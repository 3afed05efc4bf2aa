//! What a client's request means: a key-value command for the cluster, or a command this node
//! answers by itself (PING, INFO…).

use skiff_kv::reply::errors;
use skiff_kv::Command;

mod expiry;
mod keyspace;

/// A parsed client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientRequest {
    /// A command for the replicated store.
    Kv(Command),
    /// `PING [message]`.
    Ping(Option<Vec<u8>>),
    /// `ECHO message`.
    Echo(Vec<u8>),
    /// `SELECT 0` (the only database).
    Select,
    /// `INFO [section]`.
    Info,
    /// `CONFIG GET parameter`: `save` and `appendonly` (which Redis tools ask for at start-up)
    /// are answered as a durable server would; others with no settings.
    ConfigGet(Vec<u8>),
    /// `CLIENT …`, `READONLY`, `READWRITE`: connection-level commands answered locally.
    Ok,
    /// `COMMAND` (and `COMMAND DOCS`): answered with an empty list.
    EmptyArray,
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
    Hello {
        /// The username and password given with `AUTH`.
        auth: Option<(Vec<u8>, Vec<u8>)>,
    },
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
        "EXISTS" => {
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
        "SELECT" => {
            exact(2)?;
            if integer(&next())? != 0 {
                return Err(CommandError("ERR DB index is out of range".to_string()));
            }
            ClientRequest::Select
        }
        "INFO" => ClientRequest::Info,
        "CONFIG" => {
            at_least(2)?;
            if !next().eq_ignore_ascii_case(b"GET") || argc != 3 {
                return Err(CommandError(
                    "ERR CONFIG supports only GET of one parameter on this server".to_string(),
                ));
            }
            ClientRequest::ConfigGet(next().to_ascii_lowercase())
        }
        "CLIENT" | "READONLY" | "READWRITE" => ClientRequest::Ok,
        "HELLO" => {
            if argc > 1 && next() != b"2" {
                return Err(CommandError(
                    "NOPROTO this server speaks RESP2 only".to_string(),
                ));
            }
            let mut auth = None;
            while let Some(option) = rest.next() {
                if option.eq_ignore_ascii_case(b"AUTH") {
                    let (Some(username), Some(password)) = (rest.next(), rest.next()) else {
                        return Err(syntax());
                    };
                    auth = Some((username, password));
                } else if option.eq_ignore_ascii_case(b"SETNAME") {
                    rest.next().ok_or_else(syntax)?;
                } else {
                    return Err(syntax());
                }
            }
            ClientRequest::Hello { auth }
        }
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
        "COMMAND" => ClientRequest::EmptyArray,
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
            ("HELLO 2", ClientRequest::Hello { auth: None }),
            (
                "HELLO 2 SETNAME x AUTH default pw",
                ClientRequest::Hello {
                    auth: Some((b"default".to_vec(), b"pw".to_vec())),
                },
            ),
            ("select 0", ClientRequest::Select),
            (
                "CONFIG GET save",
                ClientRequest::ConfigGet(b"save".to_vec()),
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
        ];
        for (text, error) in table {
            assert_eq!(
                parse(words(text)),
                Err(CommandError(error.to_string())),
                "{text}"
            );
        }
    }
}
