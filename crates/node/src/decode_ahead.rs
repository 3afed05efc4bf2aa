//! Commands decoded ahead of their turn while a restarting node applies its log again: the
//! reader that reads the next batch of committed entries (a thread, in the server) also
//! decodes the client commands in it ([`decode_ahead()`]), and once the log has taken the
//! batch they are handed over through a [`DecodedAhead`]; the replay takes a command from
//! there instead of decoding the entry itself. Decoding (copying each value out of its entry)
//! is then off the thread that applies.
//!
//! A command is taken only for the entry with its index and term (the Log Matching Property,
//! §5.3: same index and term, same entry), and anything not handed over is decoded as before.
//! That it is the command the entry holds rests on the reader: one that decodes the batch the
//! log took, as the server's does, gives exactly that.

use std::collections::VecDeque;
use std::sync::Mutex;

use skiff_raft::{Entry, EntryKind, LogIndex, Term};

use crate::payload::NormalData;
use crate::state_machine::{ClientSession, StateMachine};

/// A client command decoded from the committed entry at `index` in `term`.
#[derive(Debug)]
pub struct DecodedCommand<C> {
    index: LogIndex,
    term: Term,
    pub(crate) command: C,
    pub(crate) session: Option<ClientSession>,
    pub(crate) log_time_ms: Option<u64>,
}

/// The client command `entry` holds, decoded; `None` for any other entry, and for bytes that
/// do not decode (the apply decodes those again and reports them).
pub fn decode_ahead<M: StateMachine>(entry: &Entry) -> Option<DecodedCommand<M::Command>> {
    if entry.kind != EntryKind::Normal {
        return None;
    }
    let NormalData::Request {
        request,
        log_time_ms,
    } = NormalData::of(&entry.data)
    else {
        return None;
    };
    let (command, session) = M::decode_command(request).ok()?;
    Some(DecodedCommand {
        index: entry.index,
        term: entry.term,
        command,
        session,
        log_time_ms,
    })
}

/// The commands of the last batch decoded ahead, shared by the reader that hands them over
/// and the replay that takes them.
#[derive(Debug)]
pub struct DecodedAhead<C> {
    batch: Mutex<VecDeque<DecodedCommand<C>>>,
}

impl<C> Default for DecodedAhead<C> {
    fn default() -> Self {
        DecodedAhead {
            batch: Mutex::new(VecDeque::new()),
        }
    }
}

impl<C> DecodedAhead<C> {
    /// Hands over the commands of the batch about to be applied, in log order. Whatever of
    /// the batch before was not taken is dropped: one batch is held at a time.
    pub fn hand_over(&self, commands: Vec<DecodedCommand<C>>) {
        *self.lock() = commands.into();
    }

    /// The command decoded ahead for the entry at `index` in `term`, if there is one; those
    /// before `index` are dropped on the way (their entries were applied without them).
    pub(crate) fn take(&self, index: LogIndex, term: Term) -> Option<DecodedCommand<C>> {
        let mut batch = self.lock();
        while batch.front().is_some_and(|next| next.index < index) {
            batch.pop_front();
        }
        // §5.3: the same index and term is the same entry, so the same command.
        match batch.front() {
            Some(next) if next.index == index && next.term == term => batch.pop_front(),
            _ => None,
        }
    }

    /// How many commands are held: those handed over and not yet taken or passed.
    pub fn held(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<DecodedCommand<C>>> {
        self.batch.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(index: u64, term: u64) -> DecodedCommand<u64> {
        DecodedCommand {
            index: LogIndex(index),
            term: Term(term),
            command: index,
            session: None,
            log_time_ms: None,
        }
    }

    #[test]
    fn a_command_is_taken_only_for_its_own_index_and_term() {
        let ahead = DecodedAhead::default();
        ahead.hand_over(vec![decoded(5, 2), decoded(6, 2), decoded(7, 3)]);
        // Entry 5 of another term is another entry: not taken, and 5 stays until passed.
        assert!(ahead.take(LogIndex(5), Term(1)).is_none());
        assert_eq!(ahead.take(LogIndex(5), Term(2)).map(|d| d.command), Some(5));
        // 6 was applied without its decoded command: it is dropped on the way to 7.
        assert_eq!(ahead.take(LogIndex(7), Term(3)).map(|d| d.command), Some(7));
        assert!(ahead.take(LogIndex(8), Term(3)).is_none());
    }

    #[test]
    fn a_new_batch_replaces_what_was_left_of_the_one_before() {
        let ahead = DecodedAhead::default();
        ahead.hand_over(vec![decoded(1, 1), decoded(2, 1)]);
        ahead.hand_over(vec![decoded(3, 1)]);
        assert!(ahead.take(LogIndex(2), Term(1)).is_none());
        assert_eq!(ahead.take(LogIndex(3), Term(1)).map(|d| d.command), Some(3));
    }
}
