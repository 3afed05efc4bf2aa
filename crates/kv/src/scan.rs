//! `KEYS`, `SCAN` and `HSCAN`: walking the keyspace, or a hash's fields, a page at a time.
//!
//! # The cursor
//! Keys (and a hash's fields) are visited in the order of [`scan_hash`], a fixed 64-bit
//! hash (SipHash-2-4 under a fixed key, the same on every machine and in every version,
//! never 0), ties broken by the bytes. A cursor is a hash: the next page starts at the first key whose hash is at
//! or after it, and a page never ends inside a run of equal hashes, so every key whose hash
//! is below the cursor has been visited. Hence Redis's promise: a full iteration returns
//! every key present from its start to its end at least once (a key written meanwhile may
//! or may not appear, and never twice unless it is deleted and written again), whatever
//! writes happen between pages and whichever node serves each page — every replica orders
//! the same keys the same way. Cursor 0 starts an iteration, and a returned 0 ends it.
//!
//! `COUNT` is how many keys a page visits (more when a run of equal hashes must finish);
//! `MATCH` and `TYPE` filter the visited keys, so a page may be empty before the end, as in
//! Redis. A hash's fields are paged the same way (sorted for each page: a hash holds at
//! most `max_hash_fields`).

use siphasher::sip::SipHasher24;

use crate::glob::Glob;
use crate::reply::{errors, Reply};
use crate::state_machine::StateMachine;
use crate::value::{FieldValue, Value};

/// How many steps of the matcher (see [`Glob::matches_within`]) one `KEYS`, `SCAN` or `HSCAN`
/// may take: about a tenth of a second of matching, far more than any pattern a person writes
/// needs on a large keyspace, and a bound on what a hostile one costs the node (inside a
/// `MULTI`, every replica).
const MATCH_STEPS_PER_COMMAND: u64 = 1 << 26;

/// Keeps the items whose name matches `glob` (all of them without one), or refuses the
/// command once matching has taken [`MATCH_STEPS_PER_COMMAND`] steps.
fn matching<T>(
    items: impl Iterator<Item = T>,
    glob: Option<&Glob>,
    name: impl Fn(&T) -> &[u8],
) -> Result<Vec<T>, Reply> {
    let mut steps_left = MATCH_STEPS_PER_COMMAND;
    let mut kept = Vec::new();
    for item in items {
        let keep = match glob {
            None => true,
            Some(glob) => glob
                .matches_within(name(&item), &mut steps_left)
                .ok_or_else(|| Reply::error(errors::PATTERN_TOO_COSTLY))?,
        };
        if keep {
            kept.push(item);
        }
    }
    Ok(kept)
}

/// The `pattern` of an `HSCAN` with `count` 0 whose `COUNT` was not an integer (see
/// [`StateMachine::hscan`]).
pub const HSCAN_COUNT_NOT_AN_INTEGER: &[u8] = b"COUNT";

/// The key of [`scan_hash`]: fixed, so every replica and every version orders keys alike.
/// Snapshots from format 5 list keys in this order: changing the key needs a new snapshot
/// format version (older snapshots would be refused as out of order).
const SCAN_HASH_KEY: &[u8; 16] = b"skiff scan order";

/// The position of a key (or field) in a scan: SipHash-2-4 of its bytes under a fixed key,
/// 0 mapped to 1 so that cursor 0 can only mean "start" or "done".
///
/// A run of keys with one position cannot be split by a 64-bit cursor, so a run whose
/// keys fill more than `max_reply_bytes` (at least a thousand keys of 16 KiB with the
/// defaults) would answer every page from its cursor with an error. SipHash keeps a
/// 256-bit state, so finding many texts with one 64-bit output costs close to the generic
/// bound — about 2^64 work for a thousand — where FNV-1a's 64-bit state let one found
/// collision be chained into as many as wanted.
pub(crate) fn scan_hash(bytes: &[u8]) -> u64 {
    SipHasher24::new_with_key(SCAN_HASH_KEY).hash(bytes).max(1)
}

/// One page: the items visited from `cursor` on (given in `(hash, item)` order), at least
/// `count` unless the end comes first, finishing the last run of equal hashes; and the
/// cursor of the next page (0 at the end).
fn page<'a, T>(items: impl Iterator<Item = (u64, T)> + 'a, count: u64) -> (Vec<T>, u64) {
    let mut visited = Vec::new();
    let mut last_hash = None;
    for (hash, item) in items {
        if visited.len() as u64 >= count && last_hash != Some(hash) {
            return (visited, hash);
        }
        last_hash = Some(hash);
        visited.push(item);
    }
    (visited, 0)
}

/// `[cursor, items]`, the shape of a `SCAN` reply.
fn scan_reply(cursor: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(cursor.to_string().into_bytes()),
        Reply::Array(items),
    ])
}

impl StateMachine {
    /// `KEYS`: every key matching `pattern`, in key order, within `max_reply_bytes`.
    pub(crate) fn keys(&self, pattern: &[u8]) -> Reply {
        let glob = Some(Glob::new(pattern)).filter(|glob| !glob.matches_everything());
        // Matched in the store's own order, and only the matches sorted into key order.
        let mut keys = match matching(
            self.data.iter_by_hash().map(|(key, _)| key),
            glob.as_ref(),
            |key| key,
        ) {
            Ok(keys) => keys,
            Err(refusal) => return refusal,
        };
        keys.sort_unstable();
        if let Some(refusal) = self.check_reply_bytes(keys.iter().map(|key| key.len())) {
            return refusal;
        }
        Reply::Array(
            keys.into_iter()
                .map(|key| Reply::Bulk(key.to_vec()))
                .collect(),
        )
    }

    /// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]` (see the
    /// [module documentation](self)). A type Skiff does not have matches no key, as in
    /// Redis 7.0.
    pub(crate) fn scan(
        &self,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: u64,
        value_type: Option<&[u8]>,
    ) -> Reply {
        if count == 0 {
            return Reply::error(errors::SYNTAX);
        }
        let glob = pattern
            .map(Glob::new)
            .filter(|glob| !glob.matches_everything());
        let visited = self.data.by_hash_from(cursor);
        let (keys, next) = page(visited, count);
        let type_matches = |key: &&[u8]| {
            value_type.is_none_or(|name| {
                self.data.get(key).is_some_and(|stored| {
                    name.eq_ignore_ascii_case(stored.value.value_type().name().as_bytes())
                })
            })
        };
        let keys = match matching(
            keys.into_iter().filter(type_matches),
            glob.as_ref(),
            |key| key,
        ) {
            Ok(keys) => keys,
            Err(refusal) => return refusal,
        };
        if let Some(refusal) = self.check_reply_bytes(keys.iter().map(|key| key.len())) {
            return refusal;
        }
        let items = keys.into_iter().map(|key| Reply::Bulk(key.to_vec()));
        scan_reply(next, items.collect())
    }

    /// `HSCAN key cursor [MATCH pattern] [COUNT count]`: `[cursor, [field, value, …]]`, the
    /// fields paged as keys are (see the [module documentation](self)).
    ///
    /// The key is judged before the options, as in Redis 7.0: a missing key is an empty
    /// scan and another type `WRONGTYPE` whatever the options, so options the parser
    /// refused come here as `count` 0, with `pattern` `None` for a syntax error and
    /// `Some(_)` for a `COUNT` that is not an integer ([`HSCAN_COUNT_NOT_AN_INTEGER`]).
    pub(crate) fn hscan(
        &self,
        key: &[u8],
        cursor: u64,
        pattern: Option<&[u8]>,
        count: u64,
    ) -> Reply {
        let hash = match self.data.get(key).map(|stored| &stored.value) {
            None => return scan_reply(0, Vec::new()),
            Some(Value::Hash(hash)) => hash,
            Some(other) => return other.as_hash().err().unwrap_or(Reply::Nil),
        };
        if count == 0 {
            return Reply::error(match pattern {
                None => errors::SYNTAX,
                Some(_) => errors::NOT_AN_INTEGER,
            });
        }
        let (fields, next) = match hash.by_hash_from(cursor) {
            // A large hash keeps its scan order: the page walks about `count` fields.
            Some(ordered) => page(ordered, count),
            // A small one is sorted for each page.
            None => {
                let mut ordered: Vec<(u64, FieldValue<'_>)> = hash
                    .iter()
                    .map(|(field, value)| (scan_hash(field), (field, value)))
                    .filter(|(hash, _)| *hash >= cursor)
                    .collect();
                ordered.sort_unstable_by(|a, b| (a.0, a.1 .0).cmp(&(b.0, b.1 .0)));
                page(ordered.into_iter(), count)
            }
        };
        let glob = pattern
            .map(Glob::new)
            .filter(|glob| !glob.matches_everything());
        let fields = match matching(fields.into_iter(), glob.as_ref(), |(field, _)| {
            field.as_slice()
        }) {
            Ok(fields) => fields,
            Err(refusal) => return refusal,
        };
        let sizes = fields
            .iter()
            .flat_map(|(field, value)| [field.len(), value.len()]);
        if let Some(refusal) = self.check_reply_bytes(sizes) {
            return refusal;
        }
        let mut items = Vec::with_capacity(fields.len() * 2);
        for (field, value) in fields {
            items.push(Reply::Bulk(field.clone()));
            items.push(Reply::Bulk(value.clone()));
        }
        scan_reply(next, items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan order is part of what replicas agree on (a cursor from one node is read by
    /// another) and of what clients hold between pages: pinned here. The first line is
    /// SipHash-2-4's reference vector (key 00..0f, message 00..0e), so the hasher is the
    /// published function.
    #[test]
    fn the_scan_order_is_siphash_2_4_under_a_fixed_key() {
        let key: Vec<u8> = (0..16).collect();
        let message: Vec<u8> = (0..15).collect();
        let reference = SipHasher24::new_with_key(&key.try_into().expect("16 bytes"));
        assert_eq!(reference.hash(&message), 0xa129_ca61_49be_45e5);
        let pinned: &[(&[u8], u64)] = &[
            (b"", 0xbb4e_2c14_618d_9e0f),
            (b"user:1", 0xe7d6_9eb8_e4e9_8868),
            (b"hash", 0x373b_ffc4_c30d_6e40),
        ];
        for (text, expected) in pinned {
            assert_eq!(scan_hash(text), *expected, "{text:?}");
        }
    }
}
