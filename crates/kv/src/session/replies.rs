//! [`Replies`]: the window of one session's remembered replies, in sequence order.
//!
//! A session's sequences are applied in increasing order, so a reply is remembered at the
//! window's new end and forgotten at its old one: a ring buffer, where an ordered map would
//! search and rebalance on every write. A lookup (a retry) searches it by sequence.

use std::collections::VecDeque;

use crate::reply::Reply;

/// One session's remembered replies, by sequence.
/// Invariant: sequences strictly increase from the oldest to the newest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replies {
    window: VecDeque<(u64, Reply)>,
}

impl Replies {
    /// A window of one reply.
    pub(crate) fn one(sequence: u64, reply: Reply) -> Replies {
        Replies {
            window: VecDeque::from([(sequence, reply)]),
        }
    }

    /// A window of `replies`, or `None` if their sequences do not strictly increase.
    pub(crate) fn in_order(replies: Vec<(u64, Reply)>) -> Option<Replies> {
        replies
            .windows(2)
            .all(|pair| pair[0].0 < pair[1].0)
            .then(|| Replies {
                window: replies.into(),
            })
    }

    /// How many replies are remembered.
    pub fn len(&self) -> usize {
        self.window.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }

    /// The reply remembered for `sequence`.
    pub fn get(&self, sequence: u64) -> Option<&Reply> {
        let at = self.window.partition_point(|(kept, _)| *kept < sequence);
        self.window
            .get(at)
            .filter(|(kept, _)| *kept == sequence)
            .map(|(_, reply)| reply)
    }

    /// The oldest sequence remembered.
    pub fn first_sequence(&self) -> Option<u64> {
        self.window.front().map(|(sequence, _)| *sequence)
    }

    /// The newest sequence remembered.
    pub fn last_sequence(&self) -> Option<u64> {
        self.window.back().map(|(sequence, _)| *sequence)
    }

    /// Every `(sequence, reply)`, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &Reply)> + '_ {
        self.window
            .iter()
            .map(|(sequence, reply)| (*sequence, reply))
    }

    /// Every sequence, oldest first.
    pub fn sequences(&self) -> impl DoubleEndedIterator<Item = u64> + '_ {
        self.window.iter().map(|(sequence, _)| *sequence)
    }

    /// Every reply, oldest first.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Reply> + '_ {
        self.window.iter().map(|(_, reply)| reply)
    }

    /// Remembers `reply` under `sequence`; the reply it replaces, if one was there. A
    /// sequence past the newest (every applied one) goes at the end without a search.
    pub(crate) fn insert(&mut self, sequence: u64, reply: Reply) -> Option<Reply> {
        if self.last_sequence().is_none_or(|last| last < sequence) {
            self.window.push_back((sequence, reply));
            return None;
        }
        let at = self.window.partition_point(|(kept, _)| *kept < sequence);
        match self.window.get_mut(at) {
            Some((kept, old)) if *kept == sequence => Some(std::mem::replace(old, reply)),
            _ => {
                self.window.insert(at, (sequence, reply));
                None
            }
        }
    }

    /// Forgets the oldest reply and returns it.
    pub(crate) fn pop_first(&mut self) -> Option<(u64, Reply)> {
        self.window.pop_front()
    }

    /// Forgets the oldest reply and returns it if its sequence is below `floor`.
    pub(crate) fn pop_first_below(&mut self, floor: u64) -> Option<(u64, Reply)> {
        if self.first_sequence()? < floor {
            self.window.pop_front()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integers(replies: &Replies) -> Vec<(u64, i64)> {
        replies
            .iter()
            .map(|(sequence, reply)| match reply {
                Reply::Integer(n) => (sequence, *n),
                other => panic!("not an integer: {other:?}"),
            })
            .collect()
    }

    /// Replies stay in sequence order whichever end they arrive at, a sequence already
    /// there is replaced, and each is found by its sequence only.
    #[test]
    fn the_window_stays_in_sequence_order() {
        let mut replies = Replies::one(5, Reply::Integer(5));
        assert_eq!(replies.insert(7, Reply::Integer(7)), None);
        assert_eq!(replies.insert(2, Reply::Integer(2)), None);
        assert_eq!(replies.insert(6, Reply::Integer(6)), None);
        assert_eq!(
            replies.insert(6, Reply::Integer(60)),
            Some(Reply::Integer(6))
        );
        assert_eq!(integers(&replies), [(2, 2), (5, 5), (6, 60), (7, 7)]);
        assert_eq!(replies.get(5), Some(&Reply::Integer(5)));
        assert_eq!(replies.get(3), None);
        assert_eq!(replies.get(8), None);
        assert_eq!(replies.get(1), None);
        assert_eq!(replies.first_sequence(), Some(2));
        assert_eq!(replies.last_sequence(), Some(7));
        assert_eq!(replies.pop_first(), Some((2, Reply::Integer(2))));
        assert_eq!(replies.pop_first_below(5), None);
        assert_eq!(replies.pop_first_below(6), Some((5, Reply::Integer(5))));
        assert_eq!(replies.sequences().collect::<Vec<_>>(), [6, 7]);
    }

    /// A window read back from elsewhere is taken only in strictly increasing order.
    #[test]
    fn a_window_out_of_order_is_refused() {
        let ok = Replies::in_order(vec![(1, Reply::Ok), (3, Reply::Nil)]).unwrap();
        assert_eq!(ok.sequences().collect::<Vec<_>>(), [1, 3]);
        assert!(Replies::in_order(vec![(3, Reply::Ok), (1, Reply::Nil)]).is_none());
        assert!(Replies::in_order(vec![(2, Reply::Ok), (2, Reply::Nil)]).is_none());
        assert!(Replies::in_order(Vec::new()).is_some_and(|r| r.is_empty()));
    }
}
