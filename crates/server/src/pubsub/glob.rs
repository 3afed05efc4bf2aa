//! Redis's glob patterns (`PSUBSCRIBE`, `CONFIG GET`): `*` any run of bytes, `?` one byte,
//! `[abc]`, `[^abc]` and `[a-z]` one byte of a class, `\` the next byte as itself. Bytes,
//! not characters, and case matters, as in Redis.
//!
//! The match takes time proportional to the pattern times the text at worst (one
//! backtracking point, the last `*`), never exponential, so a hostile pattern costs at most
//! its length times the channel's.

/// Whether `text` matches `pattern` as Redis's `stringmatchlen` decides.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let mut unbounded = usize::MAX;
    matches_within(pattern, text, &mut unbounded) == Some(true)
}

/// Whether `text` matches `pattern`, taking at most `steps` steps (one per pattern element
/// tried) from the budget; `None` when the budget ran out first.
pub fn matches_within(pattern: &[u8], text: &[u8], steps: &mut usize) -> Option<bool> {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: the pattern after it, and the text it has taken.
    let mut resume: Option<(usize, usize)> = None;
    loop {
        *steps = steps.checked_sub(1)?;
        if p < pattern.len() && pattern[p] == b'*' {
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            if p == pattern.len() {
                return Some(true);
            }
            resume = Some((p, t));
            continue;
        }
        if t == text.len() {
            // Only stars may be left, and they were taken above.
            return Some(p == pattern.len());
        }
        let step = (p < pattern.len()).then(|| one(pattern, p, text[t]));
        match step {
            Some((true, next)) => {
                p = next;
                t += 1;
            }
            _ => match resume {
                // Let the last star take one more byte and try again from there.
                Some((star_p, star_t)) => {
                    resume = Some((star_p, star_t + 1));
                    p = star_p;
                    t = star_t + 1;
                }
                None => return Some(false),
            },
        }
    }
}

/// How costly `pattern` can be against a long text: the longest run of elements after a
/// `*` (the matcher may go over that run again for each byte of the text), plus one. A
/// pattern without `*` costs at most its length, whatever the text: 1.
pub fn cost_rank(pattern: &[u8]) -> usize {
    let (mut longest, mut run, mut after_star) = (0usize, 0usize, false);
    let mut p = 0;
    while p < pattern.len() {
        if pattern[p] == b'*' {
            after_star = true;
            run = 0;
            p += 1;
            continue;
        }
        p = match pattern[p] {
            b'[' => class(pattern, p + 1, 0).1,
            b'\\' if p + 1 < pattern.len() => p + 2,
            _ => p + 1,
        };
        if after_star {
            run += 1;
            longest = longest.max(run);
        }
    }
    longest + 1
}

/// Whether the pattern element at `p` (not a `*`) matches `byte`, and where the next one
/// starts.
fn one(pattern: &[u8], p: usize, byte: u8) -> (bool, usize) {
    match pattern[p] {
        b'?' => (true, p + 1),
        b'[' => class(pattern, p + 1, byte),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == byte, p + 2),
        literal => (literal == byte, p + 1),
    }
}

/// A `[…]` class whose body starts at `p`: whether it takes `byte`, and where it ends. An
/// unterminated class runs to the end of the pattern, as in Redis.
fn class(pattern: &[u8], mut p: usize, byte: u8) -> (bool, usize) {
    let negated = pattern.get(p) == Some(&b'^');
    if negated {
        p += 1;
    }
    let mut matched = false;
    while p < pattern.len() {
        match pattern[p] {
            b'\\' if p + 1 < pattern.len() => {
                matched |= pattern[p + 1] == byte;
                p += 2;
            }
            b']' => return (matched != negated, p + 1),
            low if p + 2 < pattern.len() && pattern[p + 1] == b'-' => {
                let high = pattern[p + 2];
                let (low, high) = (low.min(high), low.max(high));
                matched |= (low..=high).contains(&byte);
                p += 3;
            }
            literal => {
                matched |= literal == byte;
                p += 1;
            }
        }
    }
    (matched != negated, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_examples_match_as_redis_documents_them() {
        let yes = |p: &str, t: &str| assert!(matches(p.as_bytes(), t.as_bytes()), "{p} ~ {t}");
        let no = |p: &str, t: &str| assert!(!matches(p.as_bytes(), t.as_bytes()), "{p} !~ {t}");
        yes("h?llo", "hello");
        yes("h?llo", "hallo");
        no("h?llo", "hllo");
        yes("h*llo", "hllo");
        yes("h*llo", "heeeello");
        yes("h[ae]llo", "hallo");
        no("h[ae]llo", "hillo");
        yes("h[^e]llo", "hallo");
        no("h[^e]llo", "hello");
        yes("h[a-b]llo", "hbllo");
        yes("h[b-a]llo", "hallo");
        no("h[a-b]llo", "hcllo");
        yes("h\\*llo", "h*llo");
        no("h\\*llo", "hello");
        yes("__keyspace@0__:*", "__keyspace@0__:user:1");
        no("__keyspace@0__:*", "__keyevent@0__:set");
        yes("*", "");
        no("?", "");
        yes("a*b*c", "aXbYbZc");
        no("a*b*c", "aXbYbZ");
        yes("[abc", "b");
        yes("ab\\", "ab\\");
    }

    #[test]
    fn a_step_budget_stops_a_costly_match_and_the_rank_orders_patterns_by_that_cost() {
        let hostile = format!("*{}b", "a".repeat(1_000));
        let text = "a".repeat(16 * 1024);
        let mut budget = 1_000_000;
        assert_eq!(
            matches_within(hostile.as_bytes(), text.as_bytes(), &mut budget),
            None
        );
        assert_eq!(budget, 0, "it stopped at the budget");
        let mut budget = 1_000_000;
        assert_eq!(
            matches_within(b"__keyspace@0__:a*", b"__keyspace@0__:abc", &mut budget),
            Some(true)
        );
        assert!(budget > 1_000_000 - 64, "a cheap pattern takes few steps");
        assert_eq!(cost_rank(b"plain[abc]name"), 1);
        assert_eq!(cost_rank(b"__keyspace@0__:*"), 1);
        assert_eq!(cost_rank(b"*ab[cd]e*f"), 5);
        assert_eq!(cost_rank(hostile.as_bytes()), 1_002);
    }

    #[test]
    fn a_hostile_pattern_costs_its_length_times_the_text_not_more() {
        // Exponential for a naive recursive matcher.
        let pattern = format!("{}b", "a*".repeat(2_000));
        let text = "a".repeat(10_000);
        let started = std::time::Instant::now();
        assert!(!matches(pattern.as_bytes(), text.as_bytes()));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    /// The plain recursive reading of Redis's rules: the dumb twin.
    fn twin(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.first() {
            None => text.is_empty(),
            Some(b'*') => (0..=text.len()).any(|skip| twin(&pattern[1..], &text[skip..])),
            Some(_) => match text.first() {
                None => false,
                Some(&byte) => {
                    let (ok, next) = one(pattern, 0, byte);
                    ok && twin(&pattern[next..], &text[1..])
                }
            },
        }
    }

    #[test]
    fn the_matcher_agrees_with_its_recursive_twin_on_random_inputs() {
        let alphabet = b"ab*?[]^-\\";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..20_000 {
            let pattern: Vec<u8> = (0..next(8))
                .map(|_| alphabet[next(alphabet.len())])
                .collect();
            let text: Vec<u8> = (0..next(7)).map(|_| alphabet[next(4)]).collect();
            assert_eq!(
                matches(&pattern, &text),
                twin(&pattern, &text),
                "pattern {:?} text {:?}",
                String::from_utf8_lossy(&pattern),
                String::from_utf8_lossy(&text)
            );
        }
    }
}
