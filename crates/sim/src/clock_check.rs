//! Log time against the nodes' real clocks (docs/COORDINATION.md, "Log time" and "What clock
//! skew can do"). The simulator knows every node's skewed clock, so the stamps need not be
//! taken on trust:
//!
//! - each stamp is the appending leader's clock, or the last stamp before it when that is
//!   later: `clock ≤ stamp ≤ max(clock, previous stamp)`, so a leader that stamps ahead of its
//!   clock, or lets log time stand still while its clock moves, is caught at the entry;
//! - once the cluster has healed, a key whose deadline every node's clock passed long ago is
//!   gone from the committed log: the leader proposed a time entry for it even with no write.

use std::fmt::Write as _;

use crate::keyspace_model::KeyState;
use crate::ledger::Ledger;
use crate::timed_check::TimedFailure;

/// How long after every clock passed a key's deadline a healed cluster may still hold it:
/// a tick or two for the leader to notice, and one commit (docs/COORDINATION.md).
pub const IDLE_EXPIRY_SLACK_MS: u64 = 1_000;

/// The property this module checks.
pub const PROPERTY: &str = "Log time follows the leaders' clocks";

/// Checks every committed stamp against the clock of the leader that appended it. Returns
/// how many stamps were checked (the others were appended out of the simulator's sight).
pub fn check_stamps(ledger: &Ledger) -> Result<u64, TimedFailure> {
    let mut checked = 0;
    let mut previous: Option<(u64, u64)> = None;
    for (&index, entry) in ledger.entries() {
        let Some(stamp_ms) = entry.log_time_ms else {
            continue;
        };
        // The stamp before this one, when the ledger holds every entry in between.
        let before_ms = previous
            .filter(|&(at, _)| (at + 1..index).all(|i| ledger.entries().contains_key(&i)))
            .map(|(_, ms)| ms);
        previous = Some((index, stamp_ms));
        let Some(clock_ms) = ledger.appended_clock_ms(index, entry.term) else {
            continue;
        };
        checked += 1;
        let fail = |why: String| {
            let mut detail = why;
            let _ = write!(
                detail,
                "\n(docs/COORDINATION.md: stamp = max(the leader's wall clock, the last stamp in its log))"
            );
            Err(TimedFailure {
                property: PROPERTY,
                detail,
            })
        };
        if stamp_ms < clock_ms {
            return fail(format!(
                "entry {index} (term {}) is stamped {stamp_ms} ms, {} ms behind the clock of the leader that appended it ({clock_ms} ms)",
                entry.term.0,
                clock_ms - stamp_ms
            ));
        }
        if let Some(before_ms) = before_ms {
            if stamp_ms > clock_ms.max(before_ms) {
                return fail(format!(
                    "entry {index} (term {}) is stamped {stamp_ms} ms, ahead of both its leader's clock ({clock_ms} ms) and the stamp before it ({before_ms} ms)",
                    entry.term.0
                ));
            }
        }
    }
    Ok(checked)
}

/// Once the converged history is closed: no key of `final_states` (the model after the
/// last committed entry) is still there with a deadline every clock passed more than
/// [`IDLE_EXPIRY_SLACK_MS`] ago.
pub fn check_idle_expiry<'a>(
    ledger: &Ledger,
    final_states: impl Iterator<Item = (&'a [u8], &'a KeyState)>,
    log_time_ms: u64,
) -> Result<(), TimedFailure> {
    let Some(closed_ms) = ledger.closed_at_ms() else {
        return Ok(());
    };
    let Some(slowest_ms) = ledger.slowest_clock_ms(closed_ms) else {
        return Ok(());
    };
    for (key, state) in final_states {
        let Some(deadline_ms) = state.deadline_ms else {
            continue;
        };
        if deadline_ms.saturating_add(IDLE_EXPIRY_SLACK_MS) < slowest_ms {
            return Err(TimedFailure {
                property: "Idle keys expire",
                detail: format!(
                    "{} with deadline {deadline_ms} ms is still in the committed log (log time {log_time_ms} ms) when the history closed, though every node's clock read at least {slowest_ms} ms: no time entry expired it",
                    String::from_utf8_lossy(key)
                ),
            });
        }
    }
    Ok(())
}
