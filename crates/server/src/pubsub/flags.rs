//! [`NotifyFlags`]: which keyspace notifications a node publishes, in Redis's letters
//! (`notify-keyspace-events`).

use std::fmt;

const GENERIC: u32 = 1 << 0;
const STRING: u32 = 1 << 1;
const LIST: u32 = 1 << 2;
const SET: u32 = 1 << 3;
const HASH: u32 = 1 << 4;
const ZSET: u32 = 1 << 5;
const EXPIRED: u32 = 1 << 6;
const EVICTED: u32 = 1 << 7;
const STREAM: u32 = 1 << 8;
const MODULE: u32 = 1 << 9;
const NEW: u32 = 1 << 10;
const KEYSPACE: u32 = 1 << 11;
const KEYEVENT: u32 = 1 << 12;
const KEY_MISS: u32 = 1 << 13;
/// Redis's `A`: every class but key misses and new keys.
const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The error Redis gives for a letter it does not know.
pub const INVALID_FLAGS: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// The `notify-keyspace-events` setting: the classes of events published, and on which
/// channels (`K`: `__keyspace@0__:<key>`, `E`: `__keyevent@0__:<event>`). Empty: off, as in
/// Redis by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotifyFlags(u32);

impl NotifyFlags {
    /// Parses Redis's letters; `None` for any other byte. The order does not matter and a
    /// letter may repeat.
    pub fn parse(text: &[u8]) -> Option<NotifyFlags> {
        let mut flags = 0;
        for &letter in text {
            flags |= match letter {
                b'A' => ALL,
                b'g' => GENERIC,
                b'$' => STRING,
                b'l' => LIST,
                b's' => SET,
                b'h' => HASH,
                b'z' => ZSET,
                b'x' => EXPIRED,
                b'e' => EVICTED,
                b't' => STREAM,
                b'd' => MODULE,
                b'n' => NEW,
                b'K' => KEYSPACE,
                b'E' => KEYEVENT,
                b'm' => KEY_MISS,
                _ => return None,
            };
        }
        Some(NotifyFlags(flags))
    }

    /// The flags from their raw bits (as [`bits`](Self::bits) gave them).
    pub fn from_bits(bits: u32) -> NotifyFlags {
        NotifyFlags(bits)
    }

    /// The raw bits, for an atomic.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Whether anything would be published: a channel kind and a class of events.
    pub fn publishes(self) -> bool {
        self.0 & (KEYSPACE | KEYEVENT) != 0 && self.0 & (ALL | NEW | KEY_MISS) != 0
    }

    /// Whether events go to `__keyspace@0__:<key>`.
    pub fn keyspace(self) -> bool {
        self.0 & KEYSPACE != 0
    }

    /// Whether events go to `__keyevent@0__:<event>`.
    pub fn keyevent(self) -> bool {
        self.0 & KEYEVENT != 0
    }

    /// Whether the class of `event` (Redis's event name) is published.
    pub fn covers(self, event: &str) -> bool {
        self.0 & class_of(event) != 0
    }
}

/// The class Redis files each event under.
fn class_of(event: &str) -> u32 {
    match event {
        "expired" => EXPIRED,
        "evicted" => EVICTED,
        "new" => NEW,
        "set" | "setrange" | "incrby" | "incrbyfloat" | "append" => STRING,
        event if event.starts_with('h') => HASH,
        // del, expire, persist, rename_from, rename_to, copy_to, move_*…
        _ => GENERIC,
    }
}

/// Prints the flags as Redis's `CONFIG GET notify-keyspace-events` does: `A` for every
/// class it covers (else each class's letter), then `K`, `E`, `m`.
impl fmt::Display for NotifyFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        if self.0 & ALL == ALL {
            text.push('A');
        } else {
            let letters = [
                (GENERIC, 'g'),
                (STRING, '$'),
                (LIST, 'l'),
                (SET, 's'),
                (HASH, 'h'),
                (ZSET, 'z'),
                (EXPIRED, 'x'),
                (EVICTED, 'e'),
                (STREAM, 't'),
                (MODULE, 'd'),
                (NEW, 'n'),
            ];
            text.extend(
                letters
                    .iter()
                    .filter(|(bit, _)| self.0 & bit != 0)
                    .map(|(_, letter)| letter),
            );
        }
        for (bit, letter) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
            if self.0 & bit != 0 {
                text.push(letter);
            }
        }
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(text: &str) -> String {
        NotifyFlags::parse(text.as_bytes()).unwrap().to_string()
    }

    #[test]
    fn flags_print_back_as_redis_7_prints_them() {
        // Each pair was read back from redis-server 7.0 after CONFIG SET.
        for (given, shown) in [
            ("KEA", "AKE"),
            ("Ag", "A"),
            ("g$", "g$"),
            ("Kgn", "gnK"),
            ("nA", "A"),
            ("Km", "Km"),
            ("AKEmn", "AKEm"),
            ("x", "x"),
            ("", ""),
            ("EKhx$g", "g$hxKE"),
        ] {
            assert_eq!(printed(given), shown, "flags {given:?}");
        }
    }

    #[test]
    fn a_letter_redis_does_not_know_refuses_the_whole_setting() {
        for bad in ["Q", "KEA ", "k", "K,E", "\0", "KE\u{e9}"] {
            assert_eq!(NotifyFlags::parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn events_are_published_only_with_a_channel_kind_and_their_class() {
        let flags = |t: &str| NotifyFlags::parse(t.as_bytes()).unwrap();
        assert!(!flags("A").publishes(), "no K nor E: nothing goes out");
        assert!(!flags("KE").publishes(), "no class: nothing goes out");
        assert!(flags("Kx").publishes());
        let strings = flags("K$");
        assert!(strings.covers("set") && strings.covers("incrby"));
        assert!(!strings.covers("del") && !strings.covers("expired"));
        let generic = flags("Eg");
        assert!(generic.covers("del") && generic.covers("expire") && generic.covers("persist"));
        assert!(!generic.covers("expired"), "expired is its own class, x");
        assert!(flags("Eh").covers("hset") && !flags("Eh").covers("set"));
        assert!(!flags("KEA").covers("new"), "A leaves out n, as in Redis");
    }
}
