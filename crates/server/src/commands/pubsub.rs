//! The words of `SUBSCRIBE`, `PSUBSCRIBE`, `UNSUBSCRIBE` and `PUNSUBSCRIBE`, and the refusal
//! of `PUBLISH`.

use super::{arity, CommandError};
use crate::pubsub::Kind;

/// A subscriber-mode request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PubSubRequest {
    /// `SUBSCRIBE channel…` or `PSUBSCRIBE pattern…` (at least one).
    Subscribe(Kind, Vec<Vec<u8>>),
    /// `UNSUBSCRIBE [channel…]` or `PUNSUBSCRIBE [pattern…]` (none: all).
    Unsubscribe(Kind, Vec<Vec<u8>>),
}

/// Why `PUBLISH` is refused: a message would reach only the subscribers of the node it was
/// sent to (the others never see it), and replicating each through the log would make it a
/// write; Skiff publishes keyspace notifications only.
pub const PUBLISH_REFUSED: &str = "ERR PUBLISH is not supported: a message would reach only this node's subscribers; Skiff publishes keyspace notifications only (see docs/COMMANDS.md)";

/// Parses a pub/sub command, `name` upper-cased; `None` if it is not one.
pub fn parse(
    name: &str,
    args: impl Iterator<Item = Vec<u8>>,
) -> Option<Result<super::ClientRequest, CommandError>> {
    let kind = match name {
        "SUBSCRIBE" | "UNSUBSCRIBE" => Kind::Channel,
        "PSUBSCRIBE" | "PUNSUBSCRIBE" => Kind::Pattern,
        "PUBLISH" => {
            let argc = args.count() + 1;
            return Some(Err(if argc == 3 {
                CommandError(PUBLISH_REFUSED.to_string())
            } else {
                arity(name)
            }));
        }
        _ => return None,
    };
    let names: Vec<Vec<u8>> = args.collect();
    let request = if name.ends_with("UNSUBSCRIBE") {
        PubSubRequest::Unsubscribe(kind, names)
    } else if names.is_empty() {
        return Some(Err(arity(name)));
    } else {
        PubSubRequest::Subscribe(kind, names)
    };
    Some(Ok(super::ClientRequest::PubSub(request)))
}

#[cfg(test)]
mod tests {
    use crate::commands::{parse, ClientRequest, CommandError, PubSubRequest};
    use crate::pubsub::Kind;

    fn words(text: &str) -> Vec<Vec<u8>> {
        text.split(' ').map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn subscribing_commands_parse_with_redis_arity_and_publish_is_refused() {
        let request = |text| parse(words(text));
        let names = |list: &[&str]| list.iter().map(|n| n.as_bytes().to_vec()).collect();
        assert_eq!(
            request("subscribe a b"),
            Ok(ClientRequest::PubSub(PubSubRequest::Subscribe(
                Kind::Channel,
                names(&["a", "b"])
            )))
        );
        assert_eq!(
            request("PUNSUBSCRIBE"),
            Ok(ClientRequest::PubSub(PubSubRequest::Unsubscribe(
                Kind::Pattern,
                Vec::new()
            )))
        );
        let error = |text: &str| CommandError(text.to_string());
        assert_eq!(
            request("SUBSCRIBE"),
            Err(error(
                "ERR wrong number of arguments for 'subscribe' command"
            ))
        );
        assert_eq!(
            request("PSUBSCRIBE"),
            Err(error(
                "ERR wrong number of arguments for 'psubscribe' command"
            ))
        );
        assert_eq!(request("PUBLISH c m"), Err(error(super::PUBLISH_REFUSED)));
        assert_eq!(
            request("PUBLISH c"),
            Err(error("ERR wrong number of arguments for 'publish' command"))
        );
    }
}
