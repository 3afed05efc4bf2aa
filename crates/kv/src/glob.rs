//! [`Glob`]: Redis's glob patterns, the one matcher of the project: `KEYS`, `SCAN … MATCH`
//! and `HSCAN … MATCH` here, `PSUBSCRIBE` and `CONFIG GET` in the server.
//!
//! `*` matches any run of bytes, `?` one byte, `[abc]` one of a set, `[^abc]` one byte
//! outside it, `[a-z]` a range (either way round), `\x` the byte `x` itself (in a set
//! too). As in Redis, a set with no closing `]` runs to the end of the pattern, `[]`
//! matches nothing, and the empty key is matched only by the empty pattern and by `*`
//! alone (which Redis takes as "every key" without matching). A range compares bytes as
//! Redis does on x86, as signed `char`s: bytes from 128 on come before 0, so `[a-\xff]`
//! is `[\xff-a]`, the bytes 0xff and 0 to `a`. Hand-written because glob crates follow
//! file-path rules (`/`, `**`, `{a,b}`) that Redis does not have.
//!
//! A pattern is read once into tokens; matching walks the key once per `*` retried, with
//! only the last `*` remembered, so the work is bounded by the pattern's tokens times the
//! key's length and never recurses.

/// One piece of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// `*` (consecutive ones are one).
    Star,
    /// `?`.
    Any,
    /// A byte, escaped or not.
    Byte(u8),
    /// `[…]`: inclusive ranges of bytes read as signed (a single byte is a range of one),
    /// maybe negated.
    Set {
        negated: bool,
        ranges: Vec<(i8, i8)>,
    },
}

impl Token {
    fn matches(&self, byte: u8) -> bool {
        match self {
            Token::Star | Token::Any => true,
            Token::Byte(b) => *b == byte,
            Token::Set { negated, ranges } => {
                let byte = signed(byte);
                ranges.iter().any(|&(lo, hi)| lo <= byte && byte <= hi) != *negated
            }
        }
    }
}

/// A byte as Redis's matcher compares it in a range: a signed `char` on x86.
fn signed(byte: u8) -> i8 {
    i8::from_ne_bytes([byte])
}

/// A compiled Redis glob.
#[derive(Clone, Debug)]
pub struct Glob {
    tokens: Vec<Token>,
    /// The pattern is `*` alone.
    only_star: bool,
}

impl Glob {
    /// Reads `pattern` (every byte string is a pattern; none is refused).
    pub fn new(pattern: &[u8]) -> Glob {
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < pattern.len() {
            match pattern[i] {
                b'*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    i += 1;
                }
                b'?' => {
                    tokens.push(Token::Any);
                    i += 1;
                }
                b'[' => {
                    let (token, next) = read_set(pattern, i + 1);
                    tokens.push(token);
                    i = next;
                }
                b'\\' if i + 1 < pattern.len() => {
                    tokens.push(Token::Byte(pattern[i + 1]));
                    i += 2;
                }
                byte => {
                    tokens.push(Token::Byte(byte));
                    i += 1;
                }
            }
        }
        Glob {
            tokens,
            only_star: pattern == b"*",
        }
    }

    /// Whether the pattern is `*` alone, which matches every key.
    pub fn matches_everything(&self) -> bool {
        self.only_star
    }

    /// How costly the pattern can be against a long text: the longest run of tokens after a
    /// `*` (the matcher may go over that run again for each byte of the text), plus one. A
    /// pattern without `*` costs at most its length, whatever the text: 1.
    pub fn cost_rank(&self) -> usize {
        let (mut longest, mut run, mut after_star) = (0usize, 0usize, false);
        for token in &self.tokens {
            if *token == Token::Star {
                after_star = true;
                run = 0;
            } else if after_star {
                run += 1;
                longest = longest.max(run);
            }
        }
        longest + 1
    }

    /// Whether `text` matches the whole pattern, however many steps it takes.
    #[cfg(test)]
    fn matches(&self, text: &[u8]) -> bool {
        let mut unbounded = u64::MAX;
        self.matches_within(text, &mut unbounded).unwrap_or(false)
    }

    /// [`matches`](Self::matches), taking at most `steps_left` steps of the matcher (one per
    /// token tried against a byte), the count the same on every replica; `None` once they
    /// run out, so that a costly pattern over a large keyspace answers an error instead of
    /// stalling the node.
    pub fn matches_within(&self, text: &[u8], steps_left: &mut u64) -> Option<bool> {
        if text.is_empty() {
            // Redis's matcher compares nothing against an empty string.
            return Some(self.tokens.is_empty() || self.only_star);
        }
        let tokens = &self.tokens;
        let (mut t, mut s) = (0, 0);
        // The last `*` seen and the text position it is currently stretched to.
        let mut star: Option<(usize, usize)> = None;
        while s < text.len() {
            *steps_left = steps_left.checked_sub(1)?;
            match tokens.get(t) {
                Some(Token::Star) => {
                    star = Some((t, s));
                    t += 1;
                }
                Some(token) if token.matches(text[s]) => {
                    t += 1;
                    s += 1;
                }
                _ => match star {
                    Some((star_t, star_s)) => {
                        star = Some((star_t, star_s + 1));
                        t = star_t + 1;
                        s = star_s + 1;
                    }
                    None => return Some(false),
                },
            }
        }
        Some(tokens[t..].iter().all(|token| *token == Token::Star))
    }
}

/// Reads a set starting just after its `[`; the token and where the pattern goes on.
fn read_set(pattern: &[u8], mut i: usize) -> (Token, usize) {
    let negated = pattern.get(i) == Some(&b'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let rest = &pattern[i.min(pattern.len())..];
        match rest {
            [] => break,
            [b'\\', escaped, ..] => {
                ranges.push((signed(*escaped), signed(*escaped)));
                i += 2;
            }
            [b']', ..] => {
                i += 1;
                break;
            }
            [lo, b'-', hi, ..] => {
                let (lo, hi) = (signed(*lo), signed(*hi));
                ranges.push((lo.min(hi), lo.max(hi)));
                i += 3;
            }
            [byte, ..] => {
                ranges.push((signed(*byte), signed(*byte)));
                i += 1;
            }
        }
    }
    (Token::Set { negated, ranges }, i)
}

#[cfg(test)]
mod tests {
    use super::Glob;

    /// Answers checked against redis-server 7.0 (`KEYS` on a store holding the key); 13,200
    /// random pairs of such patterns and keys agreed with it.
    #[test]
    fn patterns_match_as_in_redis() {
        let table: &[(&str, &str, bool)] = &[
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hbllo", true),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("[\\]]", "]", true),
            ("[]", "]", false),
            ("[abc", "c", true),
            ("[a-", "a", true),
            ("[a-", "b", false),
            ("a\\", "a\\", true),
            ("*a*b", "xaxxb", true),
            ("*a*b", "xaxxbx", false),
            ("user:*:name", "user:42:name", true),
            ("*", "", true),
            ("**", "", false),
            ("", "", true),
            ("?*", "", false),
        ];
        for (pattern, text, expected) in table {
            assert_eq!(
                Glob::new(pattern.as_bytes()).matches(text.as_bytes()),
                *expected,
                "{pattern} on {text}"
            );
        }
    }

    #[test]
    fn a_costly_pattern_runs_out_of_steps_instead_of_running_long() {
        // `*aaa…ab` against a run of `a`s tries the whole run of `a`s at every position.
        let mut pattern = vec![b'*'];
        pattern.extend_from_slice(&[b'a'; 8_000]);
        pattern.push(b'b');
        let glob = Glob::new(&pattern);
        let text = vec![b'a'; 16 * 1024];
        let mut steps = 1_000_000;
        assert_eq!(glob.matches_within(&text, &mut steps), None);
        assert_eq!(steps, 0);
        let mut plenty = u64::MAX;
        let simple = Glob::new(b"*ab");
        assert_eq!(simple.matches_within(b"aab", &mut plenty), Some(true));
        assert!(plenty < u64::MAX, "steps are counted");
    }

    /// Ranges compare bytes as signed, as redis-server 7.0.15 on x86 does: each line is a
    /// `KEYS pattern` over the keys `0`, `a`, `z`, 0x7f, 0x80, 0xc0, 0xff and Redis's answer.
    #[test]
    fn ranges_compare_bytes_as_signed_as_in_redis() {
        let keys: [&[u8]; 7] = [b"0", b"a", b"z", b"\x7f", b"\x80", b"\xc0", b"\xff"];
        let table: &[(&[u8], &[&[u8]])] = &[
            (b"[a-\xff]", &[b"0", b"a", b"\xff"]),
            (b"[\x80-\xff]", &[b"\x80", b"\xc0", b"\xff"]),
            (b"[\x00-\x80]", &[b"\x80", b"\xc0", b"\xff"]),
            (b"[^a-\xff]", &[b"z", b"\x7f", b"\x80", b"\xc0"]),
            (b"[\xc0-a]", &[b"0", b"a", b"\xc0", b"\xff"]),
        ];
        for (pattern, redis) in table {
            let glob = Glob::new(pattern);
            let matched: Vec<&[u8]> = keys.into_iter().filter(|k| glob.matches(k)).collect();
            let mut expected = redis.to_vec();
            expected.sort_by_key(|k| keys.iter().position(|key| key == k));
            assert_eq!(matched, expected, "{pattern:?}");
        }
    }

    #[test]
    fn the_cost_rank_is_the_longest_run_after_a_star() {
        let rank = |pattern: &[u8]| Glob::new(pattern).cost_rank();
        assert_eq!(rank(b"plain[abc]name"), 1);
        assert_eq!(rank(b"__keyspace@0__:*"), 1);
        assert_eq!(rank(b"*ab[cd]e*f"), 5);
        assert_eq!(rank(format!("*{}b", "a".repeat(1_000)).as_bytes()), 1_002);
    }

    /// Redis's `stringmatchlen` read plainly and recursively: the dumb twin. Whether the
    /// pattern element at the start of `pattern` takes `byte`, and its length.
    fn twin_one(pattern: &[u8], byte: u8) -> (bool, usize) {
        match pattern[0] {
            b'?' => (true, 1),
            b'\\' if pattern.len() >= 2 => (pattern[1] == byte, 2),
            b'[' => {
                let negated = pattern.get(1) == Some(&b'^');
                let mut i = if negated { 2 } else { 1 };
                let mut matched = false;
                while i < pattern.len() {
                    let left = pattern.len() - i;
                    if pattern[i] == b'\\' && left >= 2 {
                        matched |= pattern[i + 1] == byte;
                        i += 2;
                    } else if pattern[i] == b']' {
                        return (matched != negated, i + 1);
                    } else if left >= 3 && pattern[i + 1] == b'-' {
                        let (a, b) = (pattern[i] as i8, pattern[i + 2] as i8);
                        matched |= (a.min(b)..=a.max(b)).contains(&(byte as i8));
                        i += 3;
                    } else {
                        matched |= pattern[i] == byte;
                        i += 1;
                    }
                }
                (matched != negated, i)
            }
            literal => (literal == byte, 1),
        }
    }

    fn twin(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.first() {
            None => text.is_empty(),
            Some(b'*') => (0..=text.len()).any(|skip| twin(&pattern[1..], &text[skip..])),
            Some(_) => match text.split_first() {
                None => false,
                Some((&byte, rest)) => {
                    let (ok, next) = twin_one(pattern, byte);
                    ok && twin(&pattern[next..], rest)
                }
            },
        }
    }

    #[test]
    fn the_matcher_agrees_with_its_recursive_twin_on_random_inputs() {
        let alphabet = b"ab*?[]^-\\\x80\xff";
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
            let text: Vec<u8> = (1..=next(7))
                .map(|_| [b'a', b'b', b'*', b'\x80', b'\xff'][next(5)])
                .collect();
            // The empty key is Redis's special case (see the module documentation).
            if text.is_empty() {
                continue;
            }
            assert_eq!(
                Glob::new(&pattern).matches(&text),
                twin(&pattern, &text),
                "pattern {pattern:?} text {text:?}"
            );
        }
    }

    #[test]
    fn ten_kilobytes_of_stars_match_quickly() {
        let pattern = vec![b'*'; 10 * 1024];
        let glob = Glob::new(&pattern);
        assert!(glob.matches(&[b'x'; 16 * 1024]));
        assert!(
            !glob.matches(b""),
            "as in Redis, only `*` alone takes the empty key"
        );
    }
}
