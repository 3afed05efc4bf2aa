//! The connection commands client libraries send at start-up: `CLIENT`, `COMMAND` and
//! `HELLO 2`, answered by the node the client is connected to; and the answer, at `EXEC`, to
//! each command of a transaction the node answers itself.

use skiff_kv::Reply;

use super::{local_reply, Connection, Owed};
use crate::commands::{table, ClientCommand, ClientRequest, CommandQuery, HelloRequest};

impl Connection<'_> {
    /// The reply to a request this node answers itself, queued in a transaction and run at
    /// `EXEC` (an authenticated connection's: only one gets to `MULTI`).
    pub(super) fn answer_queued(&self, request: ClientRequest, authenticated: &mut bool) -> Reply {
        let owed = match request {
            ClientRequest::Auth { username, password } => {
                self.authenticate(username, &password, authenticated, Reply::Ok)
            }
            ClientRequest::Hello(hello) => self.hello(hello, authenticated),
            ClientRequest::Client(command) => Owed::Now(self.client_reply(command)),
            ClientRequest::Command(query) => Owed::Now(command_reply(query)),
            // The watched keys were checked by this EXEC already; nothing is left to forget.
            ClientRequest::Unwatch => Owed::Now(Reply::Ok),
            request @ (ClientRequest::Ping(_)
            | ClientRequest::Echo(_)
            | ClientRequest::Time
            | ClientRequest::Select
            | ClientRequest::Info
            | ClientRequest::Config(_)
            | ClientRequest::Ok) => local_reply(request, self.shared),
            // The transaction step answers these before they could be queued.
            ClientRequest::Kv(_)
            | ClientRequest::PubSub(_)
            | ClientRequest::Quit
            | ClientRequest::Multi
            | ClientRequest::Exec
            | ClientRequest::Discard
            | ClientRequest::Watch(_)
            | ClientRequest::Reset => {
                Owed::Now(Reply::error("ERR Command not allowed inside a transaction"))
            }
        };
        match owed {
            Owed::Now(reply) | Owed::Close(reply) => reply,
            Owed::Simple(text) => Reply::Simple(text.to_string()),
            Owed::Later(_)
            | Owed::Direct(_)
            | Owed::Written(_)
            | Owed::Subscribed(_)
            | Owed::Unsubscribed => Reply::error("ERR Command not allowed inside a transaction"),
        }
    }

    /// `CLIENT …`.
    pub(super) fn client_reply(&self, command: ClientCommand) -> Reply {
        match command {
            ClientCommand::Id => {
                Reply::Integer(i64::try_from(self.client.id()).unwrap_or(i64::MAX))
            }
            ClientCommand::SetName(name) => {
                self.client.set_name(name);
                Reply::Ok
            }
            ClientCommand::GetName => self.client.name().map_or(Reply::Nil, Reply::Bulk),
            ClientCommand::Info => Reply::Bulk(self.client.info()),
            ClientCommand::List { ids } => Reply::Bulk(self.client.registry().list(ids.as_deref())),
            ClientCommand::SetInfo { lib_name, value } => {
                self.client.set_lib(lib_name, value);
                Reply::Ok
            }
        }
    }

    /// `HELLO [2 [AUTH username password] [SETNAME name]]`: authenticates first when asked
    /// to, and takes the name only from an authenticated client.
    pub(super) fn hello(&self, hello: HelloRequest, authenticated: &mut bool) -> Owed {
        let owed = match hello.auth {
            Some((username, password)) => {
                let accepted = hello_reply(self.client.id());
                self.authenticate(Some(username), &password, authenticated, accepted)
            }
            None => Owed::Now(hello_reply(self.client.id())),
        };
        if let (Some(name), true) = (hello.setname, *authenticated) {
            self.client.set_name(name);
        }
        owed
    }
}

/// `HELLO 2`'s reply: Redis's fields, in Redis's order, as a flat array (RESP2). Every node
/// takes writes (a follower forwards them), so each is a `master` to its clients.
pub(super) fn hello_reply(client_id: u64) -> Reply {
    let text = |t: &str| Reply::Bulk(t.as_bytes().to_vec());
    Reply::Array(vec![
        text("server"),
        text("skiff"),
        text("version"),
        text(env!("CARGO_PKG_VERSION")),
        text("proto"),
        Reply::Integer(2),
        text("id"),
        Reply::Integer(i64::try_from(client_id).unwrap_or(i64::MAX)),
        text("mode"),
        text("standalone"),
        text("role"),
        text("master"),
        text("modules"),
        Reply::Array(Vec::new()),
    ])
}

/// `COMMAND …`, from the one table the parser checks arity against.
pub(super) fn command_reply(query: CommandQuery) -> Reply {
    let all = || Reply::Array(table::COMMANDS.iter().map(|spec| spec.reply()).collect());
    match query {
        CommandQuery::All => all(),
        CommandQuery::Count => Reply::Integer(table::COMMANDS.len() as i64),
        CommandQuery::Docs => Reply::Array(Vec::new()),
        CommandQuery::Info(names) if names.is_empty() => all(),
        CommandQuery::Info(names) => Reply::Array(
            names
                .iter()
                .map(|name| {
                    std::str::from_utf8(name)
                        .ok()
                        .and_then(table::lookup)
                        .map_or(Reply::Nil, |spec| spec.reply())
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_info_answers_nil_for_an_unknown_name() {
        let reply = command_reply(CommandQuery::Info(vec![b"GET".to_vec(), b"nope".to_vec()]));
        let Reply::Array(items) = reply else {
            panic!("an array")
        };
        assert_eq!(items[1], Reply::Nil);
        let Reply::Array(get) = &items[0] else {
            panic!("get's description")
        };
        assert_eq!(get[0], Reply::Bulk(b"get".to_vec()));
        assert_eq!(get[1], Reply::Integer(2));
        assert_eq!(get.len(), 10);
    }
}
