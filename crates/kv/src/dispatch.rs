//! Which module runs each command of the string, keyspace and hash group: the reads
//! (answered by [`StateMachine::read`] and at apply alike) and the writes.

use crate::command::Command;
use crate::reply::Reply;
use crate::state_machine::StateMachine;

impl StateMachine {
    /// The reply to a read-only command of this group; `None` for any other command.
    pub(crate) fn query_keyspace(&self, command: &Command) -> Option<Reply> {
        Some(match command {
            Command::Type { key } => self.type_reply(key),
            Command::StrLen { key } => self.strlen(key),
            Command::GetRange { key, start, end } => self.get_range(key, *start, *end),
            Command::RandomKey { seed } => self.random_key(*seed),
            Command::Keys { pattern } => self.keys(pattern),
            Command::Scan {
                cursor,
                pattern,
                count,
                value_type,
            } => self.scan(*cursor, pattern.as_deref(), *count, value_type.as_deref()),
            Command::HGet { key, field } => self.hget(key, field),
            Command::HMGet { key, fields } => self.hmget(key, fields),
            Command::HGetAll { key } => self.hash_listing(key, true, true),
            Command::HKeys { key } => self.hash_listing(key, true, false),
            Command::HVals { key } => self.hash_listing(key, false, true),
            Command::HLen { key } => self.hlen(key),
            Command::HExists { key, field } => self.hexists(key, field),
            Command::HStrLen { key, field } => self.hstrlen(key, field),
            Command::HScan {
                key,
                cursor,
                pattern,
                count,
            } => self.hscan(key, *cursor, pattern.as_deref(), *count),
            _ => return None,
        })
    }

    /// Runs a write command of this group.
    ///
    /// # Panics
    /// On a command of another group: the caller routes only this group's writes here.
    pub(crate) fn execute_keyspace(&mut self, command: Command) -> Reply {
        match command {
            Command::Rename { key, new_key } => self.rename(&key, new_key, false),
            Command::RenameNx { key, new_key } => self.rename(&key, new_key, true),
            Command::Append { key, value } => self.append(&key, &value),
            Command::SetRange { key, offset, value } => self.set_range(&key, offset, &value),
            Command::IncrByFloat { key, increment } => self.incr_by_float(&key, &increment),
            Command::MSetNx { pairs } => self.mset(pairs, true),
            Command::FlushAll => {
                self.data.clear();
                Reply::Ok
            }
            Command::HSet { key, pairs } => self.hset(key, pairs, false),
            Command::HMSet { key, pairs } => self.hset(key, pairs, true),
            Command::HSetNx { key, field, value } => self.hset_nx(key, field, value),
            Command::HDel { key, fields } => self.hdel(&key, &fields),
            Command::HIncrBy {
                key,
                field,
                increment,
            } => self.hincr_by(key, field, increment),
            Command::HIncrByFloat {
                key,
                field,
                increment,
            } => self.hincr_by_float(key, field, &increment),
            other => unreachable!("{} is not a write of the keyspace group", other.name()),
        }
    }
}
