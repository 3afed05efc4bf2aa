//! The linearizability checker against a brute-force twin on small random histories.

use proptest::prelude::*;
use skiff_sim::history::{OpKind, Operation};
use skiff_sim::linearizability::{check, Verdict};

/// Applies `op` to `state` the naive way; `None` if its recorded result contradicts `state`.
fn naive_apply(state: &Option<String>, op: &Operation) -> Option<Option<String>> {
    match op.op {
        OpKind::Get => (op.value == *state).then(|| state.clone()),
        OpKind::Put => Some(op.value.clone()),
        OpKind::Delete => match (op.ok, op.existed) {
            (Some(true), Some(existed)) if existed != state.is_some() => None,
            _ => Some(None),
        },
        OpKind::Cas => {
            let matches = *state == op.expected;
            match op.ok {
                Some(swapped) if swapped != matches => None,
                _ => Some(if matches {
                    op.value.clone()
                } else {
                    state.clone()
                }),
            }
        }
    }
}

/// Tries every subset of the unknown-outcome operations and every order that respects real time.
fn brute_force(history: &[Operation]) -> bool {
    let relevant: Vec<&Operation> = history
        .iter()
        .filter(|op| match op.op {
            OpKind::Get => op.ok == Some(true),
            OpKind::Put | OpKind::Delete => op.ok != Some(false),
            OpKind::Cas => true,
        })
        .collect();
    let unknown: Vec<usize> = (0..relevant.len())
        .filter(|&i| relevant[i].ok.is_none())
        .collect();
    for mask in 0..(1u32 << unknown.len()) {
        let chosen: Vec<&Operation> = relevant
            .iter()
            .enumerate()
            .filter(|(i, _)| match unknown.iter().position(|u| u == i) {
                Some(bit) => mask & (1 << bit) != 0,
                None => true,
            })
            .map(|(_, op)| *op)
            .collect();
        if some_order_works(&chosen, &mut vec![false; chosen.len()], &None) {
            return true;
        }
    }
    false
}

fn some_order_works(ops: &[&Operation], used: &mut Vec<bool>, state: &Option<String>) -> bool {
    if used.iter().all(|&u| u) {
        return true;
    }
    for i in 0..ops.len() {
        if used[i] {
            continue;
        }
        // `i` may go next only if no unplaced operation finished before `i` was called.
        let blocked = (0..ops.len()).any(|j| {
            !used[j] && j != i && ops[j].ok.is_some() && ops[j].return_ns < ops[i].call_ns
        });
        if blocked {
            continue;
        }
        if let Some(next) = naive_apply(state, ops[i]) {
            used[i] = true;
            if some_order_works(ops, used, &next) {
                used[i] = false;
                return true;
            }
            used[i] = false;
        }
    }
    false
}

fn value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("a".to_string())),
        Just(Some("b".to_string()))
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    (
        prop_oneof![
            Just(OpKind::Get),
            Just(OpKind::Put),
            Just(OpKind::Delete),
            Just(OpKind::Cas)
        ],
        value(),
        value(),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        0u64..20,
        1u64..10,
    )
        .prop_map(
            |(op, value, expected, existed, ok, call, length)| Operation {
                client: 0,
                op,
                key: "k".to_string(),
                value: if op == OpKind::Delete { None } else { value },
                expected: if op == OpKind::Cas { expected } else { None },
                existed: if op == OpKind::Delete { existed } else { None },
                ok,
                call_ns: call,
                return_ns: call + length,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn checker_agrees_with_brute_force(history in proptest::collection::vec(operation(), 0..7)) {
        let fast = check(&history) == Verdict::Linearizable;
        prop_assert_eq!(fast, brute_force(&history), "history: {:?}", history);
    }
}

#[test]
fn random_histories_cover_both_verdicts() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec(operation(), 2..7);
    let (mut yes, mut no) = (0, 0);
    for _ in 0..500 {
        let history = strategy.new_tree(&mut runner).expect("a history").current();
        if check(&history) == Verdict::Linearizable {
            yes += 1;
        } else {
            no += 1;
        }
    }
    assert!(
        yes > 50 && no > 50,
        "the generator exercises both outcomes: {yes} linearizable, {no} not"
    );
}
