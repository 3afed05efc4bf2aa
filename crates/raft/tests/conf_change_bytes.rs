//! A configuration change travels as a log entry's data (§6), so its bytes are read by every
//! member and kept in every WAL: they must not change with the code that writes them. Each
//! change here, encoded as the format stood before it moved onto skiff-codec and kept as hex,
//! must decode to the same change and be written again byte for byte; and bytes that are not
//! a change — cut short, padded, forged — are refused, never a panic.

use proptest::collection::vec;
use proptest::prelude::*;
use skiff_raft::{ConfChange, ConfChangeError, ConfChangeStep, NodeId};

/// Each change with its golden hex: a step count, then per step a kind byte (1 add voter,
/// 2 add learner, 3 remove) and the node id as a little-endian `u64`.
fn golden() -> Vec<(ConfChange, &'static str)> {
    vec![
        (
            // A joint change: voters in and out, a learner, an id using all eight bytes.
            ConfChange {
                steps: vec![
                    ConfChangeStep::AddVoter(NodeId(4)),
                    ConfChangeStep::AddLearner(NodeId(5)),
                    ConfChangeStep::Remove(NodeId(1)),
                    ConfChangeStep::AddVoter(NodeId(0x0102_0304_0506_0708)),
                ],
            },
            "04 01 0400000000000000 02 0500000000000000 03 0100000000000000 01 0807060504030201",
        ),
        (
            ConfChange {
                steps: vec![ConfChangeStep::Remove(NodeId(3))],
            },
            "01 03 0300000000000000",
        ),
        (
            ConfChange {
                steps: vec![ConfChangeStep::AddLearner(NodeId(u64::MAX))],
            },
            "01 02 ffffffffffffffff",
        ),
        // Leaving the joint configuration: no steps.
        (ConfChange::leave_joint(), "00"),
    ]
}

/// The bytes of `hex`, whose spaces only separate the fields for the reader.
fn bytes_of(hex: &str) -> Vec<u8> {
    let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16))
        .collect::<Result<_, _>>()
        .expect("hex")
}

#[test]
fn conf_changes_keep_their_bytes() {
    for (change, hex) in golden() {
        let bytes = bytes_of(hex);
        assert_eq!(change.encode(), bytes, "{change:?}");
        assert_eq!(ConfChange::decode(&bytes), Ok(change));
    }
    // Reference: §6 (configurations travel as log entries)
}

#[test]
fn cut_or_padded_changes_are_refused() {
    for (change, hex) in golden() {
        let bytes = bytes_of(hex);
        for len in 0..bytes.len() {
            assert!(
                ConfChange::decode(&bytes[..len]).is_err(),
                "{change:?} cut to {len} bytes"
            );
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(
            ConfChange::decode(&padded).is_err(),
            "{change:?} with a byte after it"
        );
    }
}

/// The dumb twin of the decoder: whether `bytes` are a change this build writes — a count of
/// at most 16, then exactly that many steps of a known kind naming a node other than 0.
fn well_formed(bytes: &[u8]) -> bool {
    let Some((&count, steps)) = bytes.split_first() else {
        return false;
    };
    count <= 16
        && steps.len() == 9 * usize::from(count)
        && steps
            .chunks(9)
            .all(|step| (1..=3).contains(&step[0]) && step[1..].iter().any(|&byte| byte != 0))
}

/// Bytes shaped like a change — a few steps, or about the 16 allowed — with the count, kinds
/// and ids sometimes wrong, and sometimes cut short or padded.
fn change_like() -> impl Strategy<Value = Vec<u8>> {
    let kind = prop_oneof![6 => 1u8..4, 1 => any::<u8>()];
    let id = prop_oneof![1 => Just(0u64), 6 => 1..u64::MAX];
    let few = vec((kind, id), 0..4);
    let many = vec((1u8..4, 1..u64::MAX), 15..18);
    let steps = prop_oneof![3 => few, 1 => many];
    let count_error = prop_oneof![4 => Just(0u8), 1 => Just(1), 1 => Just(255)];
    let damage = prop_oneof![4 => Just(None), 1 => any::<u8>().prop_map(Some)];
    (steps, count_error, damage, any::<bool>()).prop_map(|(steps, count_error, damage, pad)| {
        let mut bytes = vec![(steps.len() as u8).wrapping_add(count_error)];
        for (kind, id) in steps {
            bytes.push(kind);
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        match damage {
            Some(byte) if pad => bytes.push(byte),
            Some(cut) => bytes.truncate(usize::from(cut) % bytes.len()),
            None => {}
        }
        bytes
    })
}

proptest! {
    /// Hostile bytes never panic the decoder; it accepts exactly what its twin calls well
    /// formed, and what it accepts is written again byte for byte.
    #[test]
    fn forged_changes_are_read_exactly_as_their_twin_says(bytes in change_like()) {
        match ConfChange::decode(&bytes) {
            Ok(change) => {
                prop_assert!(well_formed(&bytes), "accepted {bytes:?}");
                prop_assert_eq!(change.encode(), bytes);
            }
            Err(_) => prop_assert!(!well_formed(&bytes), "refused {bytes:?}"),
        }
    }

    /// Arbitrary bytes never panic the decoder, and what it accepts is its own encoding.
    #[test]
    fn garbage_never_panics(bytes in vec(any::<u8>(), 0..64)) {
        if let Ok(change) = ConfChange::decode(&bytes) {
            prop_assert_eq!(change.encode(), bytes);
        }
    }
}

fn change(steps: Vec<ConfChangeStep>) -> ConfChange {
    ConfChange { steps }
}

#[test]
fn conf_change_codec_is_exact_and_strict() {
    // The entry encoding: a count, then a kind byte and a little-endian id per step. Wrong
    // lengths, unknown kinds, node 0 and more than 16 steps are malformed.
    let sample = change(vec![
        ConfChangeStep::AddVoter(NodeId(4)),
        ConfChangeStep::AddLearner(NodeId(5)),
        ConfChangeStep::Remove(NodeId(0x0102)),
    ]);
    let mut expected = vec![3u8];
    for (kind, id) in [(1u8, 4u64), (2, 5), (3, 0x0102)] {
        expected.push(kind);
        expected.extend_from_slice(&id.to_le_bytes());
    }
    assert_eq!(sample.encode(), expected);
    assert_eq!(ConfChange::decode(&expected), Ok(sample));
    assert_eq!(ConfChange::leave_joint().encode(), vec![0]);
    assert_eq!(ConfChange::decode(&[0]), Ok(ConfChange::leave_joint()));

    let steps = |n: u64| {
        change(
            (1..=n)
                .map(|id| ConfChangeStep::AddVoter(NodeId(id)))
                .collect(),
        )
    };
    assert_eq!(ConfChange::decode(&steps(16).encode()), Ok(steps(16)));
    assert_eq!(
        ConfChange::decode(&steps(17).encode()),
        Err(ConfChangeError::TooManySteps { count: 17 })
    );
    let one = |kind: u8, id: u64| {
        let mut data = vec![1, kind];
        data.extend_from_slice(&id.to_le_bytes());
        data
    };
    for kind in [1, 2, 3] {
        assert!(ConfChange::decode(&one(kind, 7)).is_ok());
        assert_eq!(
            ConfChange::decode(&one(kind, 0)),
            Err(ConfChangeError::NodeZero { offset: 2 })
        );
    }
    let mut too_long = one(1, 7);
    too_long.push(0);
    let garbage: [&[u8]; 6] = [
        &[],
        &[1],
        &one(1, 7)[..9],
        &too_long,
        &one(0, 7),
        &one(4, 7),
    ];
    for data in garbage {
        assert!(
            matches!(ConfChange::decode(data), Err(ConfChangeError::Malformed(_))),
            "{data:?}"
        );
    }
    // Reference: §6 (configurations travel as log entries)
}
