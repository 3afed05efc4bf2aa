//! The words of `CONFIG GET`, `CONFIG SET`, `CONFIG RESETSTAT` and `CONFIG REWRITE`, checked
//! as Redis 7 checks them (the same errors for the same mistakes).

use super::{ClientRequest, CommandError};

/// A `CONFIG` subcommand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigRequest {
    /// `CONFIG GET pattern…`: glob patterns over the parameters' names.
    Get(Vec<Vec<u8>>),
    /// `CONFIG SET parameter value…`, names lower-cased.
    Set(Vec<(Vec<u8>, Vec<u8>)>),
    /// `CONFIG RESETSTAT`.
    ResetStat,
    /// `CONFIG REWRITE`.
    Rewrite,
}

fn arity(subcommand: &str) -> CommandError {
    CommandError(format!(
        "ERR wrong number of arguments for '{subcommand}' command"
    ))
}

/// Parses the words after `CONFIG`.
pub fn parse(mut args: impl Iterator<Item = Vec<u8>>) -> Result<ClientRequest, CommandError> {
    let Some(subcommand) = args.next() else {
        return Err(arity("config"));
    };
    let rest: Vec<Vec<u8>> = args.collect();
    let request = match subcommand.to_ascii_uppercase().as_slice() {
        b"GET" if rest.is_empty() => return Err(arity("config|get")),
        b"GET" => ConfigRequest::Get(rest.iter().map(|p| p.to_ascii_lowercase()).collect()),
        b"SET" if rest.is_empty() || rest.len() % 2 != 0 => return Err(arity("config|set")),
        b"SET" => ConfigRequest::Set(
            rest.chunks(2)
                .map(|pair| (pair[0].to_ascii_lowercase(), pair[1].clone()))
                .collect(),
        ),
        b"RESETSTAT" if rest.is_empty() => ConfigRequest::ResetStat,
        b"RESETSTAT" => return Err(arity("config|resetstat")),
        b"REWRITE" if rest.is_empty() => ConfigRequest::Rewrite,
        b"REWRITE" => return Err(arity("config|rewrite")),
        _ => {
            let typed: String = String::from_utf8_lossy(&subcommand)
                .chars()
                .take(64)
                .collect();
            return Err(CommandError(format!(
                "ERR unknown subcommand '{typed}'. Try CONFIG HELP."
            )));
        }
    };
    Ok(ClientRequest::Config(request))
}

#[cfg(test)]
mod tests {
    use crate::commands::{parse, ClientRequest, CommandError, ConfigRequest};

    fn words(text: &str) -> Vec<Vec<u8>> {
        text.split(' ').map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn config_subcommands_parse_and_mistakes_get_redis_7s_errors() {
        assert_eq!(
            parse(words("config get Notify* save")),
            Ok(ClientRequest::Config(ConfigRequest::Get(vec![
                b"notify*".to_vec(),
                b"save".to_vec()
            ])))
        );
        assert_eq!(
            parse(words("CONFIG SET Notify-Keyspace-Events KEA")),
            Ok(ClientRequest::Config(ConfigRequest::Set(vec![(
                b"notify-keyspace-events".to_vec(),
                b"KEA".to_vec()
            )])))
        );
        for (text, error) in [
            (
                "CONFIG",
                "ERR wrong number of arguments for 'config' command",
            ),
            (
                "CONFIG GET",
                "ERR wrong number of arguments for 'config|get' command",
            ),
            (
                "CONFIG SET a",
                "ERR wrong number of arguments for 'config|set' command",
            ),
            (
                "CONFIG SET a b c",
                "ERR wrong number of arguments for 'config|set' command",
            ),
            (
                "CONFIG foo",
                "ERR unknown subcommand 'foo'. Try CONFIG HELP.",
            ),
        ] {
            assert_eq!(
                parse(words(text)),
                Err(CommandError(error.to_string())),
                "{text}"
            );
        }
    }
}
