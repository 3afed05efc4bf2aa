//! The leader's account of proposed bytes not yet committed, which bounds how far proposals
//! may run ahead of replication.

use std::collections::VecDeque;

use crate::raft::ProposeError;
use crate::types::LogIndex;

/// Leader only: this term's proposals that are not committed yet.
#[derive(Clone, Debug, Default)]
pub(crate) struct UncommittedBytes {
    /// (index, bytes) of each proposal, in log order.
    entries: VecDeque<(LogIndex, u64)>,
    /// Invariant: the sum of the bytes in `entries`.
    total_bytes: u64,
}

impl UncommittedBytes {
    /// Whether a proposal of `size_bytes` fits under `max_bytes`. The first proposal always
    /// fits, so that an entry as large as the limit can still be proposed.
    pub(crate) fn admit(&self, size_bytes: u64, max_bytes: u64) -> Result<(), ProposeError> {
        if !self.entries.is_empty() && self.total_bytes + size_bytes > max_bytes {
            return Err(ProposeError::UncommittedLimit {
                uncommitted_bytes: self.total_bytes,
                max_bytes,
            });
        }
        Ok(())
    }

    /// A proposal of `size_bytes` was appended at `index`.
    pub(crate) fn add(&mut self, index: LogIndex, size_bytes: u64) {
        self.entries.push_back((index, size_bytes));
        self.total_bytes += size_bytes;
    }

    /// Everything through `committed` is committed and no longer counts.
    pub(crate) fn commit_to(&mut self, committed: LogIndex) {
        while self
            .entries
            .front()
            .is_some_and(|&(index, _)| index <= committed)
        {
            let (_, bytes) = self.entries.pop_front().expect("front checked");
            self.total_bytes -= bytes;
        }
    }

    /// The node left leadership: nothing is counted.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.total_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_admits_a_first_proposal_and_frees_bytes_as_they_commit() {
        let mut account = UncommittedBytes::default();
        assert!(
            account.admit(150, 100).is_ok(),
            "the first proposal always fits"
        );
        account.add(LogIndex(1), 150);
        assert_eq!(
            account.admit(1, 100),
            Err(ProposeError::UncommittedLimit {
                uncommitted_bytes: 150,
                max_bytes: 100
            })
        );
        account.add(LogIndex(2), 30);
        account.commit_to(LogIndex(1));
        assert!(account.admit(70, 100).is_ok());
        assert!(account.admit(71, 100).is_err());
        account.clear();
        assert!(account.admit(500, 100).is_ok());
    }
}
