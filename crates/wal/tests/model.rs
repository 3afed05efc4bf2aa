//! The WAL against a dumb twin: random histories of appends (with replaced suffixes),
//! compactions, clean crashes and crashes that tear a batch, compared after every step with a
//! model that just keeps a vector in memory.

use proptest::prelude::*;
use skiff_raft::{Entry, EntryKind, HardState, LogIndex, LogStorage, NodeId, Term};
use skiff_wal::{MemDisk, Wal, WalOptions};

mod common;

#[derive(Clone, Debug)]
enum Op {
    /// Append `len` entries starting `back` entries before the end (a replaced suffix when
    /// `back > 0`), with a new hard state when `hard_state` is set.
    Append {
        back: u8,
        len: u8,
        new_term: bool,
        hard_state: bool,
    },
    /// Compact to `back` entries before the end, or `past_end` entries after it; with the
    /// log's own term unless `other_term`.
    Compact {
        back: u8,
        past_end: u8,
        other_term: bool,
    },
    /// Crash (losing nothing, as every write was synced) and reopen.
    Restart,
    /// Write a batch whose sync fails, crash keeping `keep_permille` of what was written, and
    /// reopen: the batch must be gone entirely.
    TornBatch {
        back: u8,
        len: u8,
        keep_permille: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4u8, 1..6u8, any::<bool>(), any::<bool>()).prop_map(
            |(back, len, new_term, hard_state)| Op::Append { back, len, new_term, hard_state }
        ),
        1 => (0..8u8, prop_oneof![4 => Just(0u8), 1 => 1..5u8], any::<bool>())
            .prop_map(|(back, past_end, other_term)| Op::Compact { back, past_end, other_term }),
        1 => Just(Op::Restart),
        1 => (0..3u8, 1..5u8, prop_oneof![Just(1000u16), 0..1000u16])
            .prop_map(|(back, len, keep_permille)| Op::TornBatch { back, len, keep_permille }),
    ]
}

/// The log as a vector: `entries[k]` has index `start + 1 + k`.
#[derive(Clone, Debug, Default)]
struct Model {
    start: (u64, u64),
    entries: Vec<Entry>,
    hard_state: HardState,
    term: u64,
}

impl Model {
    fn last(&self) -> u64 {
        self.start.0 + self.entries.len() as u64
    }

    fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.start.0 {
            return Some(self.start.1);
        }
        let position = index.checked_sub(self.start.0 + 1)?;
        self.entries.get(position as usize).map(|e| e.term.0)
    }

    /// The batch an append op writes, from the model's point of view.
    fn batch(&mut self, back: u8, len: u8, new_term: bool) -> Vec<Entry> {
        if new_term {
            self.term += 1;
        }
        let first = (self.last() + 1)
            .saturating_sub(back as u64)
            .max(self.start.0 + 1);
        (first..first + len as u64)
            .map(|index| Entry {
                term: Term(self.term),
                index: LogIndex(index),
                kind: if index % 7 == 0 {
                    EntryKind::Noop
                } else {
                    EntryKind::Normal
                },
                data: vec![(index % 251) as u8; (index * 13 % 40) as usize].into(),
            })
            .collect()
    }

    fn append(&mut self, batch: &[Entry]) {
        if let Some(first) = batch.first() {
            let keep = (first.index.0 - self.start.0 - 1) as usize;
            self.entries.truncate(keep);
            self.entries.extend_from_slice(batch);
        }
    }

    fn compact(&mut self, index: u64, term: u64) {
        if index <= self.start.0 {
            return;
        }
        if self.term_at(index) == Some(term) {
            self.entries.drain(..(index - self.start.0) as usize);
        } else {
            self.entries.clear();
        }
        self.start = (index, term);
    }
}

fn assert_same(wal: &Wal<MemDisk>, model: &Model, step: usize) {
    assert_eq!(
        wal.first_index(),
        LogIndex(model.start.0 + 1),
        "step {step}"
    );
    assert_eq!(wal.last_index(), LogIndex(model.last()), "step {step}");
    assert_eq!(
        wal.term(LogIndex(model.start.0)),
        Ok(Term(model.start.1)),
        "step {step}"
    );
    assert_eq!(common::all_entries(wal), model.entries, "step {step}");
    assert_eq!(wal.hard_state(), model.hard_state, "step {step}");
}

fn reopen(wal: Wal<MemDisk>, keep_permille: Option<u16>) -> Wal<MemDisk> {
    let options = *wal.options();
    let mut disk = wal.into_disk();
    disk.set_syncs_fail(false);
    match keep_permille {
        None => disk.crash(),
        Some(permille) => disk.crash_tearing(|_, unsynced| unsynced * permille as u64 / 1000),
    }
    Wal::open(disk, common::dir(), options).expect("reopen").0
}

fn run(ops: &[Op], max_segment_bytes: u64) {
    let options = WalOptions {
        max_segment_bytes,
        ..WalOptions::new(common::CLUSTER)
    };
    let (mut wal, _) = common::open(MemDisk::new(), options);
    let mut model = Model::default();
    let mut commit = 0;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Append {
                back,
                len,
                new_term,
                hard_state,
            } => {
                let batch = model.batch(*back, *len, *new_term);
                commit += 1;
                let hard_state = hard_state.then(|| HardState {
                    term: Term(model.term),
                    vote: Some(NodeId(model.term % 3 + 1)),
                    commit: LogIndex(commit),
                });
                wal.append_batch(&batch, hard_state).expect("append");
                model.append(&batch);
                if let Some(hard_state) = hard_state {
                    model.hard_state = hard_state;
                }
            }
            Op::Compact {
                back,
                past_end,
                other_term,
            } => {
                let index = if *past_end > 0 {
                    model.last() + *past_end as u64
                } else {
                    model.last().saturating_sub(*back as u64)
                };
                let own = model.term_at(index).unwrap_or(model.term);
                let term = if *other_term { own + 100 } else { own };
                wal.compact_to(LogIndex(index), Term(term))
                    .expect("compact");
                model.compact(index, term);
            }
            Op::Restart => wal = reopen(wal, None),
            Op::TornBatch {
                back,
                len,
                keep_permille,
            } => {
                let mut whole = model.clone();
                let batch = whole.batch(*back, *len, false);
                let hard_state = HardState {
                    term: Term(whole.term),
                    vote: None,
                    commit: LogIndex(0),
                };
                whole.append(&batch);
                whole.hard_state = hard_state;
                wal.disk_mut().set_syncs_fail(true);
                let failed = wal.append_batch(&batch, Some(hard_state));
                assert!(failed.is_err(), "step {step}: the sync was to fail");
                wal = reopen(wal, Some(*keep_permille));
                // A crash after the whole batch reached the disk may keep it (unless it started
                // a segment whose name was never synced); any less, and it must be gone. (The
                // unsynced tail may end in zeros written ahead, so a crash that keeps less
                // than all of it may still keep the whole batch.)
                let is = |m: &Model| {
                    wal.first_index() == LogIndex(m.start.0 + 1)
                        && wal.hard_state() == m.hard_state
                        && common::all_entries(&wal) == m.entries
                };
                if is(&whole) && !is(&model) {
                    assert!(
                        *keep_permille > 0,
                        "step {step}: a batch survived a crash that kept none of it"
                    );
                    model = whole;
                }
            }
        }
        assert_same(&wal, &model, step);
    }
    // Whatever happened, a last restart reads the same log.
    let wal = reopen(wal, None);
    assert_same(&wal, &model, ops.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_match_a_vector_in_memory(
        ops in proptest::collection::vec(op(), 1..80),
        max_segment_bytes in prop_oneof![Just(1u64), Just(300), Just(2000), Just(1 << 20)],
    ) {
        run(&ops, max_segment_bytes);
    }
}
