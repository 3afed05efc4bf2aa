//! The words of the connection commands client libraries send at start-up — `CLIENT`,
//! `COMMAND`, `HELLO` — parsed as Redis 7 parses them (the same errors for the same
//! mistakes).

use super::{syntax, CommandError};

/// `CLIENT` and its subcommands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCommand {
    /// `CLIENT ID`: this connection's id.
    Id,
    /// `CLIENT SETNAME name` (empty: no name).
    SetName(Vec<u8>),
    /// `CLIENT GETNAME`.
    GetName,
    /// `CLIENT INFO`: this connection, as one line of `CLIENT LIST`.
    Info,
    /// `CLIENT LIST [TYPE normal] [ID id…]`: this node's connections, or those of `ids`.
    List {
        /// Only these connections, when given.
        ids: Option<Vec<u64>>,
    },
    /// `CLIENT SETINFO LIB-NAME|LIB-VER value` (Redis 7.2; redis-py sends it).
    SetInfo {
        /// `true` for `LIB-NAME`, `false` for `LIB-VER`.
        lib_name: bool,
        /// The value.
        value: Vec<u8>,
    },
}

/// `COMMAND` and its subcommands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandQuery {
    /// `COMMAND`: every command's description.
    All,
    /// `COMMAND COUNT`.
    Count,
    /// `COMMAND DOCS [name…]`: answered with an empty map.
    Docs,
    /// `COMMAND INFO [name…]`: the named commands' descriptions (nil for unknown ones), or
    /// every command's without names.
    Info(Vec<Vec<u8>>),
}

/// Redis's error for a subcommand given the wrong number of words (`client|id`).
fn sub_arity(container: &str, sub: &[u8]) -> CommandError {
    let sub = String::from_utf8_lossy(sub).to_ascii_lowercase();
    CommandError(format!(
        "ERR wrong number of arguments for '{container}|{sub}' command"
    ))
}

/// Redis's error for a subcommand it does not know.
fn unknown_subcommand(container: &str, sub: &[u8]) -> CommandError {
    let typed: String = String::from_utf8_lossy(sub).chars().take(64).collect();
    CommandError(format!(
        "ERR unknown subcommand '{typed}'. Try {container} HELP."
    ))
}

/// The words after `CLIENT` (at least one).
pub(super) fn parse_client(
    mut words: impl Iterator<Item = Vec<u8>>,
) -> Result<ClientCommand, CommandError> {
    let sub = words.next().ok_or_else(syntax)?;
    let rest: Vec<Vec<u8>> = words.collect();
    let exact = |n: usize| {
        if rest.len() == n {
            Ok(())
        } else {
            Err(sub_arity("client", &sub))
        }
    };
    Ok(match sub.to_ascii_uppercase().as_slice() {
        b"ID" => {
            exact(0)?;
            ClientCommand::Id
        }
        b"GETNAME" => {
            exact(0)?;
            ClientCommand::GetName
        }
        b"INFO" => {
            exact(0)?;
            ClientCommand::Info
        }
        b"SETNAME" => {
            exact(1)?;
            let name = rest.into_iter().next().expect("one word");
            check_name(&name)?;
            ClientCommand::SetName(name)
        }
        b"SETINFO" => {
            exact(2)?;
            let mut rest = rest.into_iter();
            let attribute = rest.next().expect("two words");
            let value = rest.next().expect("two words");
            let lib_name = match attribute.to_ascii_uppercase().as_slice() {
                b"LIB-NAME" => true,
                b"LIB-VER" => false,
                _ => {
                    let typed = String::from_utf8_lossy(&attribute);
                    return Err(CommandError(format!("ERR Unrecognized option '{typed}'")));
                }
            };
            if value.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                let which = if lib_name { "lib-name" } else { "lib-ver" };
                return Err(CommandError(format!(
                    "ERR {which} cannot contain spaces, newlines or special characters."
                )));
            }
            check_length(&value)?;
            ClientCommand::SetInfo { lib_name, value }
        }
        b"LIST" => parse_list(rest)?,
        _ => return Err(unknown_subcommand("CLIENT", &sub)),
    })
}

/// The longest client name, library name or version kept: `CLIENT LIST` stays bounded.
pub const MAX_CLIENT_NAME_BYTES: usize = 256;

/// Redis's rule for client names: printable ASCII without spaces; and a bound on length.
fn check_name(name: &[u8]) -> Result<(), CommandError> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(CommandError(
            "ERR Client names cannot contain spaces, newlines or special characters.".to_string(),
        ));
    }
    check_length(name)
}

fn check_length(value: &[u8]) -> Result<(), CommandError> {
    if value.len() > MAX_CLIENT_NAME_BYTES {
        return Err(CommandError(format!(
            "ERR client names and library details are limited to {MAX_CLIENT_NAME_BYTES} bytes"
        )));
    }
    Ok(())
}

/// `CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id…]`.
fn parse_list(words: Vec<Vec<u8>>) -> Result<ClientCommand, CommandError> {
    let mut words = words.into_iter();
    let mut ids: Option<Vec<u64>> = None;
    while let Some(option) = words.next() {
        match option.to_ascii_uppercase().as_slice() {
            b"TYPE" => {
                let kind = words.next().ok_or_else(syntax)?;
                match kind.to_ascii_lowercase().as_slice() {
                    b"normal" => {}
                    // No connection of this node is a replica's or in subscriber mode here.
                    b"master" | b"replica" | b"slave" | b"pubsub" => ids = Some(Vec::new()),
                    _ => {
                        let typed = String::from_utf8_lossy(&kind);
                        return Err(CommandError(format!("ERR Unknown client type '{typed}'")));
                    }
                }
            }
            b"ID" => {
                let listed: Vec<Vec<u8>> = words.by_ref().collect();
                if listed.is_empty() {
                    return Err(syntax());
                }
                let mut parsed = Vec::with_capacity(listed.len());
                for id in listed {
                    let id = std::str::from_utf8(&id)
                        .ok()
                        .and_then(|text| text.parse::<u64>().ok())
                        .filter(|&id| id > 0)
                        .ok_or_else(|| CommandError("ERR Invalid client ID".to_string()))?;
                    parsed.push(id);
                }
                ids = Some(parsed);
            }
            _ => return Err(syntax()),
        }
    }
    Ok(ClientCommand::List { ids })
}

/// The words after `COMMAND`.
pub(super) fn parse_command(
    mut words: impl Iterator<Item = Vec<u8>>,
) -> Result<CommandQuery, CommandError> {
    let Some(sub) = words.next() else {
        return Ok(CommandQuery::All);
    };
    let rest: Vec<Vec<u8>> = words.collect();
    Ok(match sub.to_ascii_uppercase().as_slice() {
        b"COUNT" if rest.is_empty() => CommandQuery::Count,
        b"COUNT" => return Err(sub_arity("command", &sub)),
        b"DOCS" => CommandQuery::Docs,
        b"INFO" => CommandQuery::Info(rest),
        _ => return Err(unknown_subcommand("COMMAND", &sub)),
    })
}

/// What `HELLO [protover [AUTH username password] [SETNAME name]]` asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloRequest {
    /// The username and password given with `AUTH`.
    pub auth: Option<(Vec<u8>, Vec<u8>)>,
    /// The name given with `SETNAME`.
    pub setname: Option<Vec<u8>>,
}

/// The words after `HELLO`: only protocol 2 is spoken.
pub(super) fn parse_hello(
    mut words: impl Iterator<Item = Vec<u8>>,
) -> Result<HelloRequest, CommandError> {
    let mut hello = HelloRequest {
        auth: None,
        setname: None,
    };
    let Some(version) = words.next() else {
        return Ok(hello);
    };
    let version = std::str::from_utf8(&version)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| {
            CommandError("ERR Protocol version is not an integer or out of range".to_string())
        })?;
    if version != 2 {
        return Err(CommandError(
            "NOPROTO unsupported protocol version".to_string(),
        ));
    }
    while let Some(option) = words.next() {
        let bad_option = || {
            let typed = String::from_utf8_lossy(&option);
            CommandError(format!("ERR Syntax error in HELLO option '{typed}'"))
        };
        if option.eq_ignore_ascii_case(b"AUTH") {
            let (Some(username), Some(password)) = (words.next(), words.next()) else {
                return Err(bad_option());
            };
            hello.auth = Some((username, password));
        } else if option.eq_ignore_ascii_case(b"SETNAME") {
            let name = words.next().ok_or_else(bad_option)?;
            check_name(&name)?;
            hello.setname = Some(name);
        } else {
            return Err(bad_option());
        }
    }
    Ok(hello)
}
