//! A linearizability checker for key-value histories: the Wing–Gong search with Lowe's memo of
//! (linearized set, state), as in Knossos and Porcupine, run per key (a history is
//! linearizable exactly when each key's sub-history is).
//!
//! Each key is a register holding a value or nothing. An operation whose outcome is unknown may
//! take effect at any moment after it was called, or never: its return time is taken as
//! infinite and its result is not checked.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::{OpKind, Operation};

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's operations can be ordered consistently with real time and the register.
    Linearizable,
    /// This key's operations cannot.
    NotLinearizable {
        /// The key.
        key: String,
        /// How many of its operations took part in the search.
        operations: usize,
    },
    /// The search for this key exceeded its step budget.
    Inconclusive {
        /// The key.
        key: String,
    },
}

/// How many search steps one key may take before the verdict is inconclusive.
pub const DEFAULT_STEP_BUDGET: u64 = 20_000_000;

/// Checks `history` with the default step budget.
pub fn check(history: &[Operation]) -> Verdict {
    check_with_budget(history, DEFAULT_STEP_BUDGET)
}

/// Checks `history`, giving each key's search at most `step_budget` steps.
pub fn check_with_budget(history: &[Operation], step_budget: u64) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for operation in history {
        by_key
            .entry(operation.key.as_str())
            .or_default()
            .push(operation);
    }
    for (key, operations) in by_key {
        let register = Register::from_operations(&operations);
        match register.search(step_budget) {
            Some(true) => {}
            Some(false) => {
                return Verdict::NotLinearizable {
                    key: key.to_string(),
                    operations: register.ops.len(),
                };
            }
            None => {
                return Verdict::Inconclusive {
                    key: key.to_string(),
                }
            }
        }
    }
    Verdict::Linearizable
}

/// A value id: 0 is "absent", others index interned strings.
type Value = u32;

/// One operation on the register, with values interned.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// A read that returned `observed`.
    Read { observed: Value },
    /// A write of `value` (put, or delete when `value` is absent) whose prior existence is
    /// `existed` when known.
    Write { value: Value, existed: Option<bool> },
    /// Compare-and-set with a known or unknown outcome (`swapped`).
    Cas {
        expected: Value,
        value: Value,
        swapped: Option<bool>,
    },
}

impl Step {
    /// The register's next state, or `None` when the operation's result contradicts `state`.
    fn apply(self, state: Value) -> Option<Value> {
        match self {
            Step::Read { observed } => (observed == state).then_some(state),
            Step::Write { value, existed } => match existed {
                Some(existed) if existed != (state != 0) => None,
                _ => Some(value),
            },
            Step::Cas {
                expected,
                value,
                swapped,
            } => {
                let matches = state == expected;
                match swapped {
                    Some(swapped) if swapped != matches => None,
                    _ => Some(if matches { value } else { state }),
                }
            }
        }
    }
}

struct RegisterOp {
    call: u64,
    ret: u64,
    step: Step,
}

struct Register {
    ops: Vec<RegisterOp>,
}

impl Register {
    fn from_operations<'a>(operations: &[&'a Operation]) -> Register {
        let mut interned: HashMap<&'a str, Value> = HashMap::new();
        let mut intern = |value: &'a Option<String>| -> Value {
            match value {
                None => 0,
                Some(text) => {
                    let next = interned.len() as Value + 1;
                    *interned.entry(text.as_str()).or_insert(next)
                }
            }
        };
        let mut ops = Vec::new();
        for operation in operations {
            let known = operation.ok.is_some();
            let step = match (operation.op, operation.ok) {
                // A read that failed or timed out tells nothing; so does a write that certainly
                // did not happen.
                (OpKind::Get, Some(true)) => Step::Read {
                    observed: intern(&operation.value),
                },
                (OpKind::Get, _) | (OpKind::Put | OpKind::Delete, Some(false)) => continue,
                (OpKind::Put, _) => Step::Write {
                    value: intern(&operation.value),
                    existed: None,
                },
                (OpKind::Delete, ok) => Step::Write {
                    value: 0,
                    existed: ok.and(operation.existed),
                },
                (OpKind::Cas, ok) => Step::Cas {
                    expected: intern(&operation.expected),
                    value: intern(&operation.value),
                    swapped: ok,
                },
            };
            let ret = if known { operation.return_ns } else { u64::MAX };
            ops.push(RegisterOp {
                call: operation.call_ns,
                ret,
                step,
            });
        }
        Register { ops }
    }

    /// The Wing–Gong search. `Some(verdict)`, or `None` when the budget ran out.
    fn search(&self, step_budget: u64) -> Option<bool> {
        let n = self.ops.len();
        if n == 0 {
            return Some(true);
        }
        let EventList {
            events,
            mut next,
            mut prev,
            call_at,
            return_at,
        } = self.event_list();
        let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, k: usize| {
            let (p, q) = (prev[k], next[k]);
            next[p] = q;
            if q != usize::MAX {
                prev[q] = p;
            }
        };
        let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, k: usize| {
            let (p, q) = (prev[k], next[k]);
            next[p] = k;
            if q != usize::MAX {
                prev[q] = k;
            }
        };

        let words = n.div_ceil(64);
        let mut linearized = vec![0u64; words];
        let mut state: Value = 0;
        let mut seen: HashSet<(Vec<u64>, Value)> = HashSet::new();
        let mut stack: Vec<(usize, Value)> = Vec::new();
        let mut entry = next[0];
        let mut steps = 0u64;
        while next[0] != usize::MAX {
            steps += 1;
            if steps > step_budget {
                return None;
            }
            if entry == usize::MAX {
                // Cannot happen: the list always ends with a return event.
                return Some(false);
            }
            let (_, is_return, op) = events[entry - 1];
            if !is_return {
                if let Some(new_state) = self.ops[op].step.apply(state) {
                    let mut candidate = linearized.clone();
                    candidate[op / 64] |= 1 << (op % 64);
                    if seen.insert((candidate.clone(), new_state)) {
                        stack.push((op, state));
                        linearized = candidate;
                        state = new_state;
                        unlink(&mut next, &mut prev, call_at[op]);
                        unlink(&mut next, &mut prev, return_at[op]);
                        entry = next[0];
                        continue;
                    }
                }
                entry = next[entry];
            } else {
                // The earliest pending return belongs to an operation not yet placed: undo the
                // last choice and try the next candidate after it.
                let Some((op, previous_state)) = stack.pop() else {
                    return Some(false);
                };
                state = previous_state;
                linearized[op / 64] &= !(1 << (op % 64));
                relink(&mut next, &mut prev, return_at[op]);
                relink(&mut next, &mut prev, call_at[op]);
                entry = next[call_at[op]];
            }
        }
        Some(true)
    }

    /// The calls and returns of every operation in time order, linked both ways.
    fn event_list(&self) -> EventList {
        let n = self.ops.len();
        // Events in time order; at equal times calls come first (such operations overlap).
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
        for (i, op) in self.ops.iter().enumerate() {
            events.push((op.call, false, i));
            events.push((op.ret, true, i));
        }
        events.sort_unstable();
        // A doubly linked list over events: index 0 is the head sentinel.
        let len = events.len() + 1;
        let mut next: Vec<usize> = (1..=len).collect();
        let prev: Vec<usize> = (0..len).map(|k| k.saturating_sub(1)).collect();
        next[len - 1] = usize::MAX;
        let mut call_at = vec![0; n];
        let mut return_at = vec![0; n];
        for (k, &(_, is_return, op)) in events.iter().enumerate() {
            if is_return {
                return_at[op] = k + 1;
            } else {
                call_at[op] = k + 1;
            }
        }
        EventList {
            events,
            next,
            prev,
            call_at,
            return_at,
        }
    }
}

/// Operations' calls and returns in time order (at equal times, calls first: such
/// operations overlap), as a doubly linked list whose index 0 is the head sentinel.
struct EventList {
    /// (time, is a return, operation).
    events: Vec<(u64, bool, usize)>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Each operation's call and return, as list positions.
    call_at: Vec<usize>,
    return_at: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        client: u64,
        kind: OpKind,
        value: Option<&str>,
        ok: Option<bool>,
        call: u64,
        ret: u64,
    ) -> Operation {
        Operation {
            client,
            op: kind,
            key: "k".to_string(),
            value: value.map(str::to_string),
            expected: None,
            existed: None,
            ok,
            call_ns: call,
            return_ns: ret,
        }
    }

    #[test]
    fn sequential_write_then_read_is_linearizable() {
        let history = [
            op(1, OpKind::Put, Some("a"), Some(true), 0, 10),
            op(1, OpKind::Get, Some("a"), Some(true), 11, 20),
        ];
        assert_eq!(check(&history), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_a_completed_write_is_not() {
        let history = [
            op(1, OpKind::Put, Some("a"), Some(true), 0, 10),
            op(1, OpKind::Put, Some("b"), Some(true), 11, 20),
            op(2, OpKind::Get, Some("a"), Some(true), 21, 30),
        ];
        assert!(matches!(check(&history), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn concurrent_read_may_see_either_value() {
        let history = [
            op(1, OpKind::Put, Some("a"), Some(true), 0, 10),
            op(1, OpKind::Put, Some("b"), Some(true), 11, 30),
            op(2, OpKind::Get, Some("a"), Some(true), 12, 20),
            op(3, OpKind::Get, Some("b"), Some(true), 13, 25),
        ];
        assert_eq!(check(&history), Verdict::Linearizable);
    }

    #[test]
    fn unknown_write_may_take_effect_late_or_never() {
        let late = [
            op(1, OpKind::Put, Some("a"), None, 0, 5),
            op(2, OpKind::Get, None, Some(true), 10, 20),
            op(2, OpKind::Get, Some("a"), Some(true), 30, 40),
        ];
        assert_eq!(
            check(&late),
            Verdict::Linearizable,
            "took effect after the first read"
        );
        let never = [
            op(1, OpKind::Put, Some("a"), None, 0, 5),
            op(2, OpKind::Get, None, Some(true), 10, 20),
        ];
        assert_eq!(check(&never), Verdict::Linearizable);
        let flicker = [
            op(1, OpKind::Put, Some("a"), None, 0, 5),
            op(2, OpKind::Get, Some("a"), Some(true), 10, 20),
            op(2, OpKind::Get, None, Some(true), 30, 40),
        ];
        assert!(
            matches!(check(&flicker), Verdict::NotLinearizable { .. }),
            "a value cannot un-happen"
        );
    }

    #[test]
    fn cas_outcomes_must_match_the_register() {
        let mut swap = op(2, OpKind::Cas, Some("b"), Some(true), 11, 20);
        swap.expected = Some("a".to_string());
        let history = [
            op(1, OpKind::Put, Some("a"), Some(true), 0, 10),
            swap.clone(),
            op(1, OpKind::Get, Some("b"), Some(true), 21, 30),
        ];
        assert_eq!(check(&history), Verdict::Linearizable);
        let mut failed = swap;
        failed.ok = Some(false);
        let history = [op(1, OpKind::Put, Some("a"), Some(true), 0, 10), failed];
        assert!(
            matches!(check(&history), Verdict::NotLinearizable { .. }),
            "the compare could not have failed"
        );
    }

    #[test]
    fn delete_existed_flag_is_checked() {
        let mut delete = op(1, OpKind::Delete, None, Some(true), 0, 10);
        delete.existed = Some(true);
        assert!(
            matches!(check(&[delete.clone()]), Verdict::NotLinearizable { .. }),
            "nothing existed"
        );
        delete.existed = Some(false);
        assert_eq!(check(&[delete]), Verdict::Linearizable);
    }

    #[test]
    fn keys_are_independent() {
        let mut other = op(2, OpKind::Get, Some("x"), Some(true), 0, 10);
        other.key = "other".to_string();
        let history = [op(1, OpKind::Put, Some("a"), Some(true), 0, 10), other];
        assert_eq!(
            check(&history),
            Verdict::NotLinearizable {
                key: "other".to_string(),
                operations: 1
            }
        );
    }
}
