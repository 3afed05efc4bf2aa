//! One seed reproduces the whole run; many seeds run clean.

use skiff_sim::{run_seed, RunOptions};

#[test]
fn same_seed_same_trace() {
    for seed in [1, 7, 1234] {
        let first = run_seed(&RunOptions::new(seed));
        let second = run_seed(&RunOptions::new(seed));
        assert_eq!(
            first.trace_hash, second.trace_hash,
            "seed {seed}: trace hashes differ"
        );
        assert_eq!(first.stats, second.stats, "seed {seed}: counters differ");
        assert!(first.stats.messages > 100, "seed {seed} did some work");
    }
}

#[test]
fn different_seeds_differ() {
    let a = run_seed(&RunOptions::new(1));
    let b = run_seed(&RunOptions::new(2));
    assert_ne!(a.trace_hash, b.trace_hash);
}

#[test]
fn randomized_seeds_find_no_violation() {
    for seed in 0..300 {
        let report = run_seed(&RunOptions::new(seed));
        if let Some(violation) = &report.violation {
            panic!(
                "SEED={seed} {violation}\nplan: {}\n{}\nreplay: cargo run --release -p skiff-sim -- --seed {seed}",
                report.derived, report.trace_tail
            );
        }
        assert!(report.commits > 0, "seed {seed} committed something");
    }
}
