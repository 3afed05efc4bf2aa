//! `skiff-kv`'s key-value store as the node's [`StateMachine`]: its own request, reply and
//! snapshot encodings, its frozen copy for snapshots taken off the driver thread, and its
//! exactly-once client sessions.

use skiff_kv::{Command, KvConfig, KvError, Reply, Request, SessionRequest};
use skiff_raft::LogIndex;

use crate::state_machine::{ClientSession, FrozenState, StateMachine};

impl StateMachine for skiff_kv::StateMachine {
    type Command = Command;
    type Reply = Reply;
    type Config = KvConfig;
    type Error = KvError;

    fn new(config: &KvConfig) -> Result<Self, KvError> {
        skiff_kv::StateMachine::new(config.clone())
    }

    fn is_read_only(command: &Command) -> bool {
        command.is_read_only()
    }

    fn encode_command(command: Command, session: Option<ClientSession>) -> Vec<u8> {
        // The request's first byte is its format version, far below the member-address tag.
        Request {
            session: session.map(to_request),
            command,
        }
        .encode()
    }

    fn decode_command(bytes: &[u8]) -> Result<(Command, Option<ClientSession>), KvError> {
        let request = Request::decode(bytes)?;
        let session = request.session.map(|s| ClientSession {
            client_id: s.client_id,
            sequence: s.sequence,
            lowest_unanswered: s.lowest_unanswered,
            resubmitted: s.resubmitted,
            proposed_after: s.proposed_after,
        });
        Ok((request.command, session))
    }

    fn apply(
        &mut self,
        index: LogIndex,
        command: Command,
        session: Option<ClientSession>,
        log_time_ms: Option<u64>,
    ) -> Reply {
        let session = session.map(to_request);
        skiff_kv::StateMachine::apply_at(self, index.0, log_time_ms, command, session)
    }

    fn pass_time(&mut self, index: LogIndex, log_time_ms: u64) {
        skiff_kv::StateMachine::pass_time(self, index.0, log_time_ms)
    }

    fn log_time_ms(&self) -> u64 {
        skiff_kv::StateMachine::log_time_ms(self)
    }

    fn next_deadline_ms(&self) -> Option<u64> {
        skiff_kv::StateMachine::next_deadline_ms(self)
    }

    fn prefetch<'a>(&self, requests: impl Iterator<Item = &'a [u8]> + Clone) {
        skiff_kv::StateMachine::prefetch(self, requests.filter_map(Request::written_key))
    }

    fn read(&self, command: &Command) -> Reply {
        skiff_kv::StateMachine::read(self, command)
    }

    fn read_at(&self, command: &Command, wall_clock_ms: u64) -> Reply {
        skiff_kv::StateMachine::read_at(self, command, wall_clock_ms)
    }

    fn applied_index(&self) -> LogIndex {
        LogIndex(skiff_kv::StateMachine::applied_index(self))
    }

    fn snapshot_into(&self, out: &mut Vec<u8>) {
        skiff_kv::StateMachine::snapshot_into(self, out)
    }

    fn freeze(&self) -> Option<Box<dyn FrozenState>> {
        Some(Box::new(skiff_kv::StateMachine::freeze(self)))
    }

    fn restore(config: &KvConfig, bytes: &[u8]) -> Result<Self, KvError> {
        skiff_kv::StateMachine::restore(config.clone(), bytes)
    }

    fn encode_reply(reply: &Reply) -> Vec<u8> {
        reply.encode()
    }

    fn decode_reply(bytes: &[u8]) -> Result<Reply, KvError> {
        Reply::decode(bytes)
    }

    fn refused(text: String) -> Reply {
        Reply::error(text)
    }

    fn refusal_text(reply: &Reply) -> Option<&str> {
        match reply {
            Reply::Error(text) => Some(text),
            _ => None,
        }
    }

    fn done() -> Reply {
        Reply::Ok
    }
}

impl FrozenState for skiff_kv::FrozenStore {
    fn write_snapshot(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        skiff_kv::FrozenStore::write_snapshot(self, out)
    }
}

/// The kv store's form of a client session.
fn to_request(session: ClientSession) -> SessionRequest {
    SessionRequest {
        client_id: session.client_id,
        sequence: session.sequence,
        lowest_unanswered: session.lowest_unanswered,
        resubmitted: session.resubmitted,
        proposed_after: session.proposed_after,
    }
}

#[cfg(test)]
mod tests {
    /// The node recognises the store's out-of-order and too-many-sessions refusals by
    /// their text.
    #[test]
    fn session_refusals_are_the_nodes() {
        assert_eq!(
            skiff_kv::reply::errors::OUT_OF_ORDER,
            crate::refusals::OUT_OF_ORDER
        );
        assert_eq!(
            skiff_kv::reply::errors::TOO_MANY_SESSIONS,
            crate::refusals::TOO_MANY_SESSIONS
        );
    }
}
