//! Redis's glob patterns for `PSUBSCRIBE` and `CONFIG GET`: the store's matcher
//! ([`skiff_kv::glob`]), so that a pattern means the same in `KEYS` and in `PSUBSCRIBE`.

pub use skiff_kv::glob::Glob;

/// The matcher steps one `CONFIG GET` pattern may take against one parameter name: far more
/// than a name of a few dozen bytes needs.
const MAX_STEPS_PER_NAME: u64 = 1 << 16;

/// Whether the short `text` (a parameter name) matches `pattern`; a pattern that would
/// take more than [`MAX_STEPS_PER_NAME`] steps matches nothing.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let mut steps = MAX_STEPS_PER_NAME;
    Glob::new(pattern).matches_within(text, &mut steps) == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of Redis's documentation, and the keyspace channels.
    #[test]
    fn redis_examples_match_as_redis_documents_them() {
        let yes = |p: &str, t: &str| assert!(matches(p.as_bytes(), t.as_bytes()), "{p} ~ {t}");
        let no = |p: &str, t: &str| assert!(!matches(p.as_bytes(), t.as_bytes()), "{p} !~ {t}");
        yes("h?llo", "hello");
        no("h?llo", "hllo");
        yes("h*llo", "hllo");
        yes("h[ae]llo", "hallo");
        no("h[ae]llo", "hillo");
        yes("h[^e]llo", "hallo");
        yes("h[b-a]llo", "hallo");
        yes("h\\*llo", "h*llo");
        yes("__keyspace@0__:*", "__keyspace@0__:user:1");
        no("__keyspace@0__:*", "__keyevent@0__:set");
        yes("notify-*", "notify-keyspace-events");
    }

    #[test]
    fn a_costly_pattern_matches_nothing() {
        let hostile = format!("*{}b", "a".repeat(1_000));
        let name = "a".repeat(1_000);
        assert!(!matches(hostile.as_bytes(), name.as_bytes()));
        assert!(matches(b"*", name.as_bytes()));
    }
}
