//! The keyspace's unit tests: its slices, splits, pictures and deadline index.

use super::*;

/// A key's state is 48 bytes (a hash is boxed so that strings do not pay for its room),
/// and its slot, with its key inline and an `Arc`'s two counts, one 96-byte allocation.
#[test]
#[cfg(target_pointer_width = "64")]
fn a_state_is_48_bytes_and_a_slot_with_its_counts_96() {
    assert_eq!(std::mem::size_of::<Stored>(), 48);
    assert_eq!(
        std::mem::size_of::<Slot>() + 2 * std::mem::size_of::<usize>(),
        96
    );
}

/// `count` keys chosen as an attacker would (the scan hash is public) so that they all fall
/// into slice 0 of any store split by up to `bits` bits.
fn piled_keys(bits: u32, count: usize) -> impl Iterator<Item = Vec<u8>> {
    (0u64..)
        .map(|i| format!("pile:{i}").into_bytes())
        .filter(move |key| slice_of(scan_hash(key), bits) == 0)
        .take(count)
}

fn string(value: &str, deadline_ms: Option<u64>, revision: u64) -> Stored {
    Stored {
        value: Value::String(value.as_bytes().to_vec()),
        deadline_ms,
        revision,
    }
}

fn keys_in_key_order(keyspace: &Keyspace) -> Vec<&[u8]> {
    keyspace.iter().map(|(key, _)| key).collect()
}

/// A clone taken for a snapshot keeps the store as it was while the original goes on
/// taking writes, removals, deadlines and in-place changes, and the original sees them.
#[test]
fn a_clone_is_a_picture_that_later_writes_do_not_touch() {
    let mut keyspace = Keyspace::default();
    for i in 0..1_000u64 {
        keyspace.insert(format!("key:{i:06}").into_bytes(), string("old", None, i));
    }
    keyspace.set_deadline(b"key:000007", Some(50), 1_000);
    let picture = keyspace.clone();

    keyspace.insert(b"key:000001".to_vec(), string("new", Some(90), 1_001));
    keyspace.remove(b"key:000002");
    keyspace.insert(b"key:999999".to_vec(), string("added", None, 1_002));
    keyspace.set_deadline(b"key:000007", None, 1_003);
    if let Some(stored) = keyspace.get_mut(b"key:000003") {
        stored.value = Value::String(b"changed".to_vec());
    }
    keyspace.expire_due(100, |_| {});

    assert_eq!(picture.len(), 1_000);
    assert_eq!(picture.get(b"key:000001"), Some(&string("old", None, 1)));
    assert_eq!(picture.get(b"key:000003"), Some(&string("old", None, 3)));
    assert!(picture.contains(b"key:000002"));
    assert!(!picture.contains(b"key:999999"));
    assert_eq!(picture.next_deadline_ms(), Some(50));
    picture.check_invariants(0, 1_000);

    assert_eq!(keyspace.len(), 999, "one removed, one added, one expired");
    assert!(!keyspace.contains(b"key:000001"), "expired at log time 100");
    assert_eq!(
        keyspace.get(b"key:000003").map(|s| &s.value),
        Some(&Value::String(b"changed".to_vec()))
    );
    assert_eq!(keyspace.get(b"key:000007").unwrap().deadline_ms, None);
    assert_eq!(keyspace.next_deadline_ms(), None);
    keyspace.check_invariants(100, 1_003);
}

/// The map is in scan-hash order, which is not key order; `iter` answers key order all
/// the same (the snapshot's bytes depend on it), and `by_hash_from` the map's order from
/// a cursor on.
#[test]
fn key_order_and_scan_order_both_hold() {
    let mut keyspace = Keyspace::default();
    let names: Vec<Vec<u8>> = (0..200u32).map(|i| format!("k{i}").into_bytes()).collect();
    for name in names.iter().rev() {
        keyspace.insert(name.clone(), string("v", None, 1));
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(keys_in_key_order(&keyspace), sorted);

    let by_hash: Vec<(u64, &[u8])> = keyspace.by_hash_from(0).collect();
    assert_eq!(by_hash.len(), 200);
    assert!(by_hash.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(by_hash.iter().all(|(hash, key)| *hash == scan_hash(key)));
    let middle = by_hash[100].0;
    assert_eq!(keyspace.by_hash_from(middle).next(), Some(by_hash[100]));
    // From any cursor — a key's own hash, one past it, the first and last of the u64s —
    // the keys at or after it and nothing else, across the slices.
    let cursors = by_hash
        .iter()
        .flat_map(|(hash, _)| [*hash, hash.saturating_add(1)])
        .chain([0, u64::MAX]);
    for cursor in cursors {
        let expected: Vec<_> = by_hash.iter().filter(|(h, _)| *h >= cursor).collect();
        let from: Vec<_> = keyspace.by_hash_from(cursor).collect();
        assert_eq!(from.len(), expected.len(), "from cursor {cursor}");
        assert!(from.iter().zip(&expected).all(|(a, b)| a == *b));
    }
    assert_ne!(
        by_hash.iter().map(|(_, key)| key).collect::<Vec<_>>(),
        sorted.iter().collect::<Vec<_>>(),
        "the hash order is a different order"
    );
    for (position, ranked) in by_hash.iter().enumerate() {
        assert_eq!(keyspace.nth_by_hash(position), Some(ranked.1));
    }
    assert_eq!(keyspace.nth_by_hash(200), None);
}

/// Inserting tells whether the key was there; a store's state, shared with a clone or
/// not, is replaced whole, and the count of keys follows inserts and removals.
#[test]
fn insert_replaces_and_counts() {
    let mut keyspace = Keyspace::default();
    assert!(!keyspace.insert(b"a".to_vec(), string("1", Some(10), 1)));
    assert!(keyspace.insert(b"a".to_vec(), string("2", None, 2)));
    let picture = keyspace.clone();
    assert!(keyspace.insert(b"a".to_vec(), string("3", Some(20), 3)));
    assert_eq!(picture.get(b"a"), Some(&string("2", None, 2)));
    assert_eq!(keyspace.get(b"a"), Some(&string("3", Some(20), 3)));
    assert_eq!(keyspace.next_deadline_ms(), Some(20));
    assert!(!keyspace.insert(b"b".to_vec(), string("4", None, 4)));
    assert_eq!((keyspace.len(), picture.len()), (2, 1));
    assert!(keyspace.remove(b"a").is_some());
    assert_eq!(keyspace.len(), 1);
    assert_eq!(keyspace.next_deadline_ms(), None);
    keyspace.check_invariants(0, 4);
    picture.check_invariants(0, 4);
}

/// Keys chosen so that their scan hashes share their top bits (the hash is public) pile
/// into one slice: past a flat slice's length it becomes a tree (a clone taken while it
/// was an array keeps the array), and the store still finds, orders, counts, expires and
/// removes every key as a plain ordered map does.
#[test]
fn keys_piled_into_one_slice_make_it_a_tree_and_stay_correct() {
    let piled = slice::MAX_FLAT_KEYS + 88;
    let total = 2_048;
    let bits = slice_bits_for(total);
    // Other keys first, so that the store is split when the pile comes.
    let mut keys: Vec<Vec<u8>> = (0..total - piled)
        .map(|i| format!("other:{i}").into_bytes())
        .collect();
    keys.extend(piled_keys(bits, piled));
    // Every third key of the pile has a deadline, in pile order.
    let deadline = |i: usize| {
        let in_pile = i.checked_sub(total - piled)?;
        (in_pile % 3 == 0).then_some(1_000 + in_pile as u64)
    };
    let mut keyspace = Keyspace::default();
    let mut model = std::collections::BTreeMap::new();
    let mut picture = None;
    for (i, key) in keys.iter().enumerate() {
        if i == total - piled + slice::MAX_FLAT_KEYS / 2 {
            assert!(matches!(keyspace.slices[0], Slice::Flat(Some(_))));
            picture = Some((keyspace.clone(), model.clone()));
        }
        let stored = string("v", deadline(i), i as u64 + 1);
        assert!(!keyspace.insert(key.clone(), stored.clone()));
        model.insert((scan_hash(key), key.clone()), stored);
    }
    assert_eq!(keyspace.slice_bits(), bits);
    assert!(keyspace.slices[0].len() >= piled);
    assert!(
        matches!(keyspace.slices[0], Slice::Tree(_)),
        "the pile is a tree"
    );
    keyspace.check_invariants(0, total as u64);
    let (picture, picture_model) = picture.expect("taken halfway through the pile");
    assert!(matches!(picture.slices[0], Slice::Flat(Some(_))));
    picture.check_invariants(0, total as u64);
    let pictured: Vec<(&[u8], &Stored)> = picture_model
        .iter()
        .map(|((_, key), stored)| (key.as_slice(), stored))
        .collect();
    assert!(picture.iter_by_hash().eq(pictured));

    // The pile's first deadlines expire out of the tree.
    assert_eq!(keyspace.expire_due(1_060, |_| {}), 21);
    model.retain(|_, stored| stored.deadline_ms.is_none_or(|d| d > 1_060));
    keyspace.check_invariants(1_060, total as u64);
    for (i, key) in keys.iter().enumerate().step_by(3) {
        let ranked = (scan_hash(key), key.clone());
        assert_eq!(
            keyspace.remove(key).is_some(),
            model.remove(&ranked).is_some()
        );
        if let Some(other) = keys.get(i + 1) {
            let rewritten = string("w", None, (total + i) as u64);
            let was_there = model
                .insert((scan_hash(other), other.clone()), rewritten.clone())
                .is_some();
            assert_eq!(keyspace.insert(other.clone(), rewritten), was_there);
        }
    }
    keyspace.check_invariants(1_060, 2 * total as u64);
    let held: Vec<(&[u8], &Stored)> = keyspace.iter_by_hash().collect();
    let expected: Vec<(&[u8], &Stored)> = model
        .iter()
        .map(|((_, key), stored)| (key.as_slice(), stored))
        .collect();
    assert_eq!(held, expected);
    assert_eq!(keyspace.len(), model.len());
    let from_start: Vec<u64> = keyspace.by_hash_from(1).map(|(hash, _)| hash).collect();
    let model_hashes: Vec<u64> = model.keys().map(|(hash, _)| *hash).collect();
    assert_eq!(from_start, model_hashes);
    for position in [0, 5, keyspace.slices[0].len() - 1, model.len() / 2] {
        assert_eq!(
            keyspace.nth_by_hash(position),
            model.keys().nth(position).map(|(_, key)| key.as_slice()),
            "position {position}"
        );
    }
}

/// A store that grows past a split point moves into more slices with every key, its
/// order and its picture intact; one that shrinks again equals a store that never grew.
#[test]
fn a_store_split_into_slices_keeps_its_keys_order_and_equality() {
    assert_eq!(
        [0, 7, 8, 15, 16, 16_383, 16_384, 65_535, 65_536, usize::MAX].map(slice_bits_for),
        [0, 0, 1, 1, 2, 11, 12, 13, 14, 14]
    );
    let name = |i: usize| format!("key:{i:06}").into_bytes();
    let mut keyspace = Keyspace::default();
    let split_at = KEYS_PER_SLICE << 12;
    for i in 0..split_at / 2 {
        keyspace.insert(name(i), string("v", None, i as u64));
    }
    // A picture taken before the next split (at `split_at`) shares the slices' arrays:
    // the split copies them for the live store and leaves the picture's alone.
    let half = keyspace.clone();
    let count = split_at + 100;
    for i in split_at / 2..split_at - 1 {
        keyspace.insert(name(i), string("v", None, i as u64));
    }
    assert_eq!(keyspace.slices.len(), 1 << 11);
    assert_eq!(
        half.slices.len(),
        1 << 11,
        "split into 2^11 at {}",
        split_at / 2
    );
    assert_eq!(half.len(), split_at / 2);
    half.check_invariants(0, count_of(split_at));
    let before_split = keyspace.clone();
    for i in split_at - 1..count {
        keyspace.insert(name(i), string("v", None, i as u64));
    }
    assert_eq!(keyspace.slices.len(), 1 << 12, "split");
    assert_eq!(before_split.slices.len(), 1 << 11, "a picture is untouched");
    before_split.check_invariants(0, count_of(split_at));
    assert_eq!(before_split.len(), split_at - 1);
    keyspace.check_invariants(0, count as u64);
    assert_eq!(keyspace.len(), count);
    assert!((0..count).all(|i| keyspace.get(&name(i)) == Some(&string("v", None, i as u64))));
    let ranks: Vec<(u64, &[u8])> = keyspace.by_hash_from(0).collect();
    assert_eq!(ranks.len(), count);
    assert!(ranks.windows(2).all(|pair| pair[0] < pair[1]));
    // Positions in every group of slices (4,096 slices: 32 groups).
    for position in (0..count).step_by(97).chain([count - 1]) {
        assert_eq!(keyspace.nth_by_hash(position), Some(ranks[position].1));
    }
    assert_eq!(keyspace.nth_by_hash(count), None);

    for i in 10..count {
        assert!(keyspace.remove(&name(i)).is_some());
    }
    let mut small = Keyspace::default();
    for i in 0..10 {
        small.insert(name(i), string("v", None, i as u64));
    }
    assert!((0..10).all(|i| half.get(&name(i)) == keyspace.get(&name(i))));
    assert_eq!(
        keyspace.slices.len(),
        1 << 12,
        "a store that shrinks stays split"
    );
    assert_eq!(small.slices.len(), 2);
    assert_eq!(keyspace, small);
    small.insert(name(3), string("other", None, 3));
    assert_ne!(keyspace, small);
    keyspace.check_invariants(0, count as u64);
}

/// An applied index past a store's `keys` writes, for its invariant checks' messages.
fn count_of(keys: usize) -> u64 {
    keys as u64 + 1
}

/// Two keys under one hash are told apart by their bytes.
/// The hint loads the strings writes replace only where they are freed: not while a sink
/// takes them to another thread (a restart's replay), and again once it is taken away.
#[test]
fn replaced_strings_are_loaded_only_where_they_are_freed() {
    use slice::Prefetch;
    let all = [Prefetch::Array, Prefetch::Slot, Prefetch::Value];
    let mut keyspace = Keyspace::default();
    assert_eq!(keyspace.prefetch_stages(), all);
    keyspace.set_replaced_sink(Some(Box::new(|_| {})));
    assert_eq!(
        keyspace.prefetch_stages(),
        [Prefetch::Array, Prefetch::Slot]
    );
    keyspace.set_replaced_sink(None);
    assert_eq!(keyspace.prefetch_stages(), all);
}

/// A pipelined client's writes to one key land in one window: the hint names the key again
/// and again, over strings empty, huge (1 MiB, far past what it loads) and shared with a
/// picture taken between the writes, and a key that is not there. Every write after the
/// hint lands as if there had been none, and the picture keeps what it held.
#[test]
fn a_window_of_writes_to_one_key_is_hinted_and_applied_as_without_a_hint() {
    let mut keyspace = Keyspace::default();
    let mut unhinted = Keyspace::default();
    let sizes = [0usize, 1, 1 << 20, 63, 2_000, 0];
    let mut pictures = Vec::new();
    for (round, &size) in sizes.iter().enumerate() {
        let stored = Stored {
            value: Value::String(vec![round as u8; size]),
            deadline_ms: None,
            revision: round as u64 + 1,
        };
        let names = std::iter::repeat_n(&b"pipelined"[..], 40).chain([&b"absent"[..]]);
        keyspace.prefetch(names);
        assert_eq!(
            keyspace.insert(b"pipelined".to_vec(), stored.clone()),
            unhinted.insert(b"pipelined".to_vec(), stored.clone()),
        );
        assert_eq!(keyspace.get(b"pipelined"), Some(&stored));
        pictures.push((keyspace.clone(), stored));
    }
    assert_eq!(keyspace, unhinted);
    assert_eq!(keyspace.get(b"absent"), None);
    for (picture, stored) in &pictures {
        assert_eq!(
            picture.get(b"pipelined"),
            Some(stored),
            "a picture keeps its string"
        );
    }
}

/// A string's lines are counted from the line its first byte is in, so that one starting
/// mid-line has its last line loaded too, and at most the cap.
#[test]
fn a_string_spans_the_lines_its_bytes_touch() {
    let buffer = vec![0u8; 4096];
    let aligned = 64 - buffer.as_ptr() as usize % 64;
    let at = |offset: usize, len: usize| &buffer[aligned + offset..aligned + offset + len];
    let line_of = |bytes: &[u8]| bytes.as_ptr().wrapping_sub(bytes.as_ptr() as usize % 64);
    for (offset, len, lines) in [
        (0, 0, 0),
        (0, 1, 1),
        (0, 64, 1),
        (0, 65, 2),
        (48, 16, 1),
        (48, 17, 2),
        (48, 48, 2),
        (63, 130, 4),
        (0, 256, 4),
        (32, 2000, slice::VALUE_LINES),
    ] {
        let bytes = at(offset, len);
        let (first, spanned) = slice::lines_spanned(bytes, slice::VALUE_LINES);
        assert_eq!(spanned, lines, "{len} bytes from {offset} into a line");
        assert_eq!(
            first,
            line_of(bytes),
            "{len} bytes from {offset} into a line"
        );
    }
}

#[test]
fn a_hash_tie_is_broken_by_the_key_bytes() {
    let stored: Ranked = (7, KeyBytes::from_slice(b"m"));
    assert_eq!(Probe(7, b"a").compare(&stored), Ordering::Less);
    assert_eq!(Probe(7, b"z").compare(&stored), Ordering::Greater);
    assert_eq!(Probe(6, b"z").compare(&stored), Ordering::Less);
    assert!(Probe(7, b"m").equivalent(&stored));
    assert!(!Probe(8, b"m").equivalent(&stored));
}

/// A store built from keys in its own order (as a snapshot lists them) equals the store the
/// same keys inserted one by one make, a pile of them in one slice included, and its slices
/// hold their invariants; a key that does not come after the last one given is refused.
#[test]
fn a_store_built_in_its_own_order_equals_one_built_by_inserts() {
    let bits = slice_bits_for(3_000);
    let keys: Vec<Vec<u8>> = piled_keys(bits, slice::MAX_FLAT_KEYS + 1)
        .chain((0..3_000).map(|i| format!("other:{i}").into_bytes()))
        .collect();
    let mut inserted = Keyspace::default();
    for (i, key) in keys.iter().enumerate() {
        let deadline = (i % 7 == 0).then_some(5_000 + i as u64);
        inserted.insert(key.clone(), string("v", deadline, i as u64 + 1));
    }
    let mut build = OrderedBuild::new(inserted.len());
    for (key, stored) in inserted.iter_by_hash() {
        let hash = build.follows(key).expect("the store's own order");
        build.push(hash, key.to_vec(), stored.clone());
        assert_eq!(build.follows(key), None, "the same key twice");
    }
    let first = inserted.iter_by_hash().next().map(|(key, _)| key);
    assert_eq!(
        build.follows(first.expect("keys")),
        None,
        "a key before the last"
    );
    let built = build.build();
    built.check_invariants(0, keys.len() as u64);
    assert_eq!(built, inserted);
    assert_eq!(built.slice_bits(), inserted.slice_bits());
    assert!(
        matches!(built.slices[0], Slice::Tree(_)),
        "the pile is a tree"
    );
    assert_eq!(built.next_deadline_ms(), Some(5_000));
}

/// What a hostile or damaged snapshot can do to the in-order restore. Keys chosen to pile
/// into one slice restore to an equal store whose pile is a tree. The same bytes with their
/// key count raised by one, lowered by one, or raised to billions (checksum fixed up each
/// time, as an attacker would) are refused with a typed error: no panic, and no table sized
/// from the claim beyond the most slices a store has.
#[test]
fn a_snapshot_of_piled_keys_restores_and_a_false_key_count_is_refused() {
    use crate::{Command, KvConfig, KvError, StateMachine};

    let total = 2_000;
    let bits = slice_bits_for(total);
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = piled_keys(bits, slice::MAX_FLAT_KEYS + 40)
        .chain((0..).map(|i| format!("other:{i}").into_bytes()))
        .take(total)
        .map(|key| (key.clone(), key))
        .collect();
    let mut machine = StateMachine::new(KvConfig::default()).expect("config");
    machine.apply(1, Command::MSet { pairs }, None);
    let bytes = machine.snapshot();
    let restored = StateMachine::restore(KvConfig::default(), &bytes).expect("restores");
    assert_eq!(restored, machine);
    assert!(
        matches!(restored.data.slices[0], Slice::Tree(_)),
        "the pile"
    );
    restored.data.check_invariants(0, 1);

    // The key count: the varint after the magic, the version and two varints.
    let varint_end = |at: usize| at + bytes[at..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    let count_at = varint_end(varint_end(5));
    let count_end = varint_end(count_at);
    let mut written = Vec::new();
    crate::codec::put_u64(&mut written, total as u64);
    assert_eq!(
        &bytes[count_at..count_end],
        written.as_slice(),
        "the key count found"
    );
    for claimed in [total as u64 + 1, total as u64 - 1, 1 << 40] {
        let mut forged = bytes[..count_at].to_vec();
        crate::codec::put_u64(&mut forged, claimed);
        forged.extend_from_slice(&bytes[count_end..bytes.len() - 4]);
        let checksum = crc32c::crc32c(&forged);
        forged.extend_from_slice(&checksum.to_le_bytes());
        let refused = StateMachine::restore(KvConfig::default(), &forged);
        assert!(
            matches!(
                refused,
                Err(KvError::Truncated { .. } | KvError::InvalidSnapshot(_))
            ),
            "a count of {claimed} for {total} keys: {refused:?}"
        );
    }
}

/// Random writes, removals, deadline changes, expiry and pictures over a pool of keys that
/// includes a pile chosen to share one slice (so that it grows past an array into a tree and
/// the store splits around it), checked after every step against an ordered map, and every
/// picture against the map as it was when it was taken.
mod against_an_ordered_map {
    use std::collections::BTreeMap;
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;

    /// Keys whose scan hashes share their top 9 bits: one slice in any store of up to
    /// 2,047 keys.
    const PILE: usize = slice::MAX_FLAT_KEYS + 44;
    const OTHERS: usize = 200;

    fn pool() -> &'static [Vec<u8>] {
        static POOL: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        POOL.get_or_init(|| {
            let mut keys: Vec<Vec<u8>> = piled_keys(9, PILE).collect();
            keys.extend((0..OTHERS).map(|i| format!("other:{i}").into_bytes()));
            keys
        })
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Writes pool key `.0` with a deadline `.1` ms after now, if any, and a value of
        /// shape `.2`.
        Write(usize, Option<u64>, Shape),
        Remove(usize),
        SetDeadline(usize, Option<u64>),
        /// Changes a key's revision in place.
        Touch(usize),
        /// Moves the time on by this many ms and expires what is due.
        Expire(u64),
        /// Writes every key of the pile.
        FillPile,
        Picture,
        /// Hints writes to 40 pool keys from `.0` on, more than one batch of hashes (their
        /// slices may be empty, arrays or trees, the keys there or not, holding strings
        /// short or long or hashes): the store must be the same after.
        Prefetch(usize),
    }

    /// What a write stores: a string of one byte, one of more cache lines than a prefetch
    /// loads, or a hash.
    #[derive(Clone, Copy, Debug)]
    enum Shape {
        Short,
        Long,
        Hash,
    }

    fn stored(shape: Shape, deadline_ms: Option<u64>, revision: u64) -> Stored {
        let value = match shape {
            Shape::Short => Value::String(b"v".to_vec()),
            Shape::Long => Value::String(vec![b'l'; slice::VALUE_LINES * 64 + 100]),
            Shape::Hash => {
                let mut hash = crate::value::Hash::new();
                hash.insert(b"field".to_vec(), b"h".to_vec());
                Value::Hash(Box::new(hash))
            }
        };
        Stored {
            value,
            deadline_ms,
            revision,
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        let key = prop_oneof![4 => 0..PILE, 1 => PILE..PILE + OTHERS];
        let shape = prop_oneof![
            3 => Just(Shape::Short),
            1 => Just(Shape::Long),
            1 => Just(Shape::Hash),
        ];
        let after = proptest::option::weighted(0.2, 1u64..50);
        prop_oneof![
            10 => (
                key.clone(),
                after.clone(),
                shape,
            )
                .prop_map(|(k, d, shape)| Op::Write(k, d, shape)),
            3 => key.clone().prop_map(Op::Remove),
            2 => (key.clone(), after).prop_map(|(k, d)| Op::SetDeadline(k, d)),
            2 => key.clone().prop_map(Op::Touch),
            2 => key.prop_map(Op::Prefetch),
            2 => (0u64..30).prop_map(Op::Expire),
            1 => Just(Op::FillPile),
            1 => Just(Op::Picture),
        ]
    }

    type Model = BTreeMap<(u64, Vec<u8>), Stored>;

    fn ranked(key: &[u8]) -> (u64, Vec<u8>) {
        (scan_hash(key), key.to_vec())
    }

    fn check(keyspace: &Keyspace, model: &Model, now: u64, step: u64) {
        keyspace.check_invariants(now, step);
        assert_eq!(keyspace.len(), model.len());
        let expected = model
            .iter()
            .map(|((_, key), stored)| (key.as_slice(), stored));
        assert!(
            keyspace.iter_by_hash().eq(expected),
            "the keys at step {step}"
        );
        for position in [
            0,
            model.len() / 3,
            model.len().saturating_sub(1),
            model.len(),
        ] {
            assert_eq!(
                keyspace.nth_by_hash(position),
                model.keys().nth(position).map(|(_, key)| key.as_slice()),
                "position {position} at step {step}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn the_store_is_an_ordered_map_however_its_slices_are_held(
            ops in proptest::collection::vec(op(), 1..700)
        ) {
            let keys = pool();
            let mut keyspace = Keyspace::default();
            let mut model = Model::new();
            let mut pictures: Vec<(Keyspace, Model)> = Vec::new();
            let mut now = 1_000;
            for (step, op) in ops.into_iter().enumerate() {
                let revision = step as u64 + 1;
                match op {
                    Op::Write(k, after, shape) => {
                        let stored = stored(shape, after.map(|a| now + a), revision);
                        let was_there = model.insert(ranked(&keys[k]), stored.clone()).is_some();
                        prop_assert_eq!(keyspace.insert(keys[k].clone(), stored), was_there);
                    }
                    Op::Remove(k) => {
                        let removed = model.remove(&ranked(&keys[k]));
                        prop_assert_eq!(keyspace.remove(&keys[k]), removed);
                    }
                    Op::SetDeadline(k, after) => {
                        let deadline = after.map(|a| now + a);
                        let held = model.get_mut(&ranked(&keys[k])).map(|stored| {
                            stored.deadline_ms = deadline;
                            stored.revision = revision;
                        });
                        prop_assert_eq!(
                            keyspace.set_deadline(&keys[k], deadline, revision),
                            held.is_some()
                        );
                    }
                    Op::Touch(k) => {
                        if let Some(stored) = model.get_mut(&ranked(&keys[k])) {
                            stored.revision = revision;
                        }
                        if let Some(stored) = keyspace.get_mut(&keys[k]) {
                            stored.revision = revision;
                        }
                    }
                    Op::Expire(by) => {
                        now += by;
                        let due = model
                            .values()
                            .filter(|stored| stored.deadline_ms.is_some_and(|d| d <= now))
                            .count();
                        model.retain(|_, stored| stored.deadline_ms.is_none_or(|d| d > now));
                        prop_assert_eq!(keyspace.expire_due(now, |_| {}), due);
                    }
                    Op::FillPile => {
                        for key in &keys[..PILE] {
                            let stored = string("p", None, revision);
                            let was_there = model.insert(ranked(key), stored.clone()).is_some();
                            prop_assert_eq!(keyspace.insert(key.clone(), stored), was_there);
                        }
                    }
                    Op::Picture => pictures.push((keyspace.clone(), model.clone())),
                    Op::Prefetch(k) => {
                        let run = keys.iter().cycle().skip(k).take(40);
                        keyspace.prefetch(run.map(Vec::as_slice));
                    }
                }
                check(&keyspace, &model, now, revision);
            }
            for (picture, pictured) in &pictures {
                // A picture's keys are all before its time, so no deadline check applies.
                check(picture, pictured, 0, 0);
            }
        }
    }
}
