//! What a node puts in its log entries and snapshots, around the key-value store's own forms.
//!
//! - A normal entry's first byte says what it holds:
//!   - `0x01..=0x7f`: a client [`Request`]. The byte is the store's request format version
//!     ([`skiff_kv::REQUEST_FORMAT_VERSION`]): the store owns this range for its versions,
//!     and checks the byte itself. A compile-time assertion below keeps its version in it.
//!   - [`MEMBER_ADDRESS_TAG`] (`0x81`): a [`MemberAddress`] record — the id (`u64`) and the
//!     peer address (a short string), little-endian — the address of a node about to join,
//!     replicated like any write so that every member, and every later snapshot, knows where
//!     to reach it.
//!   - [`MEMBER_ADDRESS_V1_TAG`] (`0x80`): the same record as version 1 wrote it,
//!     big-endian; still read from old logs, never written.
//!   - [`MEMBER_INCARNATION_TAG`] (`0x82`): a [`MemberIncarnation`] record — the id and the
//!     incarnation of its data directory (two `u64`s) — the leader's record of the member it
//!     heard from, so that a member whose disk was wiped is told apart (thesis §3.8).
//!   - [`STAMP_TAG`] (`0x83`): a [`Stamped`] entry — the leader's log time (a `u64`, Unix
//!     milliseconds, never less than an earlier stamp in the log), then a client request as
//!     above, or nothing: an entry that carries only the time, proposed when a key's
//!     deadline has passed and no write came. Requests written before stamps existed have no
//!     tag and are still read.
//! - A snapshot is `SKNS`, a version byte ([`SNAPSHOT_VERSION`]; version 1 was big-endian,
//!   version 2 had no incarnations, both still read), the [`MemberBook`] (addresses, then
//!   from version 3 incarnations), then the key-value snapshot.
//!
//! Both are written and read with [`skiff_codec`].

use std::collections::BTreeMap;

use skiff_codec::{put, CodecError, Reader};
use skiff_kv::{Request, REQUEST_FORMAT_VERSION};
use skiff_raft::NodeId;

/// The first byte of a [`MemberAddress`] entry. Requests start with their format version,
/// which stays in `0x01..=0x7f` (asserted at compile time), so the two never collide.
pub const MEMBER_ADDRESS_TAG: u8 = 0x81;

/// The first byte of a [`MemberAddress`] entry written big-endian, before the shared codec.
pub const MEMBER_ADDRESS_V1_TAG: u8 = 0x80;

/// The first byte of a [`MemberIncarnation`] entry.
pub const MEMBER_INCARNATION_TAG: u8 = 0x82;

/// The first byte of a [`Stamped`] entry.
pub const STAMP_TAG: u8 = 0x83;

// The store's request versions and the node's own tags share an entry's first byte.
const _: () = assert!(
    REQUEST_FORMAT_VERSION >= 0x01 && REQUEST_FORMAT_VERSION <= 0x7f,
    "request format versions must stay in 0x01..=0x7f, below the node's payload tags"
);

/// The magic bytes that open a node snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 4] = b"SKNS";

/// The node snapshot format version written.
pub const SNAPSHOT_VERSION: u8 = 3;

/// The node snapshot versions read: 1 (big-endian), 2 (no incarnations) and 3.
const SNAPSHOT_VERSIONS: &[u16] = &[1, 2, 3];

/// What the replicated state knows of the members besides the Raft configuration: their
/// peer addresses and the incarnations of their data directories.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberBook {
    /// Peer addresses recorded in the log, by member.
    pub addresses: BTreeMap<NodeId, String>,
    /// The incarnation recorded for each member the leader heard from (thesis §3.8: a member
    /// that lost its disk forgot its votes, and must not be counted as the one recorded).
    pub incarnations: BTreeMap<NodeId, u64>,
}

/// A member's incarnation recorded in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberIncarnation {
    /// The member.
    pub id: NodeId,
    /// The incarnation of its data directory (nonzero).
    pub incarnation: u64,
}

impl MemberIncarnation {
    /// The entry payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        put::u8(&mut out, MEMBER_INCARNATION_TAG);
        put::u64(&mut out, self.id.0);
        put::u64(&mut out, self.incarnation);
        out
    }
}

/// A peer address recorded in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberAddress {
    /// The node.
    pub id: NodeId,
    /// Its peer address (`host:port`).
    pub addr: String,
}

/// A client request, or nothing, with the leader's log time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamped<'a> {
    /// The leader's wall-clock time when it proposed the entry (Unix milliseconds), raised
    /// to the last stamp in its log if its clock was behind.
    pub log_time_ms: u64,
    /// The request's bytes; empty for an entry that carries only the time.
    pub request: &'a [u8],
}

impl<'a> Stamped<'a> {
    /// The entry payload: the tag, the stamp, then the request's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + self.request.len());
        put::u8(&mut out, STAMP_TAG);
        put::u64(&mut out, self.log_time_ms);
        out.extend_from_slice(self.request);
        out
    }

    /// The stamp and the request of an entry that begins with [`STAMP_TAG`]; `None` for any
    /// other entry.
    pub fn split(data: &'a [u8]) -> Option<Result<Stamped<'a>, PayloadError>> {
        let rest = data.strip_prefix(&[STAMP_TAG])?;
        let mut r = Reader::new(rest);
        Some(
            r.u64()
                .map(|log_time_ms| Stamped {
                    log_time_ms,
                    request: r.rest(),
                })
                .map_err(|source| PayloadError::Field {
                    what: "stamped entry",
                    source,
                }),
        )
    }
}

/// What a normal entry's bytes hold, before the state machine decodes anything.
pub(crate) enum NormalData<'a> {
    /// A client's request (the state machine's bytes), with the leader's log time if stamped.
    Request {
        request: &'a [u8],
        log_time_ms: Option<u64>,
    },
    /// Only the leader's log time.
    Time(u64),
    /// One of the node's own records (a member's address or incarnation).
    Member,
    /// A stamp that does not decode.
    BadStamp(PayloadError),
}

impl<'a> NormalData<'a> {
    /// Tells what `data`, a normal entry's bytes, holds.
    pub(crate) fn of(data: &'a [u8]) -> NormalData<'a> {
        match Stamped::split(data) {
            Some(Ok(Stamped {
                log_time_ms,
                request: [],
            })) => NormalData::Time(log_time_ms),
            Some(Ok(Stamped {
                log_time_ms,
                request,
            })) => NormalData::Request {
                request,
                log_time_ms: Some(log_time_ms),
            },
            Some(Err(error)) => NormalData::BadStamp(error),
            None if matches!(
                data.first(),
                Some(&MEMBER_ADDRESS_TAG | &MEMBER_INCARNATION_TAG)
            ) =>
            {
                NormalData::Member
            }
            None => NormalData::Request {
                request: data,
                log_time_ms: None,
            },
        }
    }
}

/// A normal entry's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// A client command.
    Request(Request),
    /// A client command, or none, with the leader's log time.
    Stamped {
        /// The stamp.
        log_time_ms: u64,
        /// The command; `None` for an entry that carries only the time.
        request: Option<Request>,
    },
    /// A member's peer address.
    MemberAddress(MemberAddress),
    /// A member's incarnation.
    MemberIncarnation(MemberIncarnation),
}

/// Why an entry or snapshot payload is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// A client request that does not decode.
    #[error(transparent)]
    Request(#[from] skiff_kv::KvError),
    /// A field that does not decode.
    #[error("malformed {what}: {source}")]
    Field {
        /// What was being read: `member address` or `node snapshot`.
        what: &'static str,
        /// What the codec refused.
        source: CodecError,
    },
    /// Something else that does not decode.
    #[error("{0}")]
    Malformed(&'static str),
}

impl MemberAddress {
    /// The entry payload.
    ///
    /// # Panics
    /// If the address is over 65,535 bytes; addresses are checked to be socket addresses
    /// before they are proposed.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(11 + self.addr.len());
        put::u8(&mut out, MEMBER_ADDRESS_TAG);
        put::u64(&mut out, self.id.0);
        put::short_str(&mut out, &self.addr);
        out
    }
}

impl Payload {
    /// Decodes a normal entry's data.
    pub fn decode(data: &[u8]) -> Result<Payload, PayloadError> {
        if let Some(stamped) = Stamped::split(data) {
            let stamped = stamped?;
            let request = match stamped.request {
                [] => None,
                request => Some(Request::decode(request)?),
            };
            return Ok(Payload::Stamped {
                log_time_ms: stamped.log_time_ms,
                request,
            });
        }
        let order = match data.first() {
            Some(&MEMBER_INCARNATION_TAG) => return decode_incarnation(&data[1..]),
            Some(&MEMBER_ADDRESS_TAG) => Order::Little,
            Some(&MEMBER_ADDRESS_V1_TAG) => Order::Big,
            // Any other first byte is a request's format version, which the store checks.
            _ => return Ok(Payload::Request(Request::decode(data)?)),
        };
        let field = |source| PayloadError::Field {
            what: "member address",
            source,
        };
        let mut r = Reader::new(&data[1..]);
        let (id, addr) = read_address(&mut r, order).map_err(field)?;
        r.finish().map_err(field)?;
        Ok(Payload::MemberAddress(MemberAddress { id, addr }))
    }
}

/// A [`MemberIncarnation`] entry's fields (after its tag).
fn decode_incarnation(data: &[u8]) -> Result<Payload, PayloadError> {
    let field = |source| PayloadError::Field {
        what: "member incarnation",
        source,
    };
    let mut r = Reader::new(data);
    let id = NodeId(r.u64().map_err(field)?);
    let incarnation = r.u64().map_err(field)?;
    r.finish().map_err(field)?;
    if id.0 == 0 || incarnation == 0 {
        return Err(PayloadError::Malformed(
            "member incarnation with a zero id or incarnation",
        ));
    }
    Ok(Payload::MemberIncarnation(MemberIncarnation {
        id,
        incarnation,
    }))
}

/// Appends what precedes the key-value snapshot in a node snapshot (magic, version, member
/// book), so that the store can write its snapshot right after it, without a copy.
pub fn put_snapshot_header(book: &MemberBook, out: &mut Vec<u8>) {
    out.extend_from_slice(SNAPSHOT_MAGIC);
    put::u8(out, SNAPSHOT_VERSION);
    put::count_u32(out, book.addresses.len());
    for (id, addr) in &book.addresses {
        put::u64(out, id.0);
        put::short_str(out, addr);
    }
    put::count_u32(out, book.incarnations.len());
    for (id, incarnation) in &book.incarnations {
        put::u64(out, id.0);
        put::u64(out, *incarnation);
    }
}

/// Decodes a node snapshot into the member book and the key-value snapshot.
pub fn decode_snapshot(data: &[u8]) -> Result<(MemberBook, &[u8]), PayloadError> {
    let Some(rest) = data.strip_prefix(SNAPSHOT_MAGIC) else {
        return Err(PayloadError::Malformed("not a node snapshot (bad magic)"));
    };
    let mut r = Reader::new(rest);
    read_member_book(&mut r)
        .map(|book| (book, r.rest()))
        .map_err(|source| PayloadError::Field {
            what: "node snapshot",
            source,
        })
}

fn read_member_book(r: &mut Reader<'_>) -> Result<MemberBook, CodecError> {
    let version = r.version("node snapshot", SNAPSHOT_VERSIONS)?;
    let order = match version {
        1 => Order::Big,
        _ => Order::Little,
    };
    let count = order.u32(r.u32()?);
    let mut book = MemberBook::default();
    // No room is reserved: each address read must first find its bytes.
    for _ in 0..count {
        let (id, addr) = read_address(r, order)?;
        book.addresses.insert(id, addr);
    }
    if version >= 3 {
        for _ in 0..r.u32()? {
            let id = NodeId(r.u64()?);
            book.incarnations.insert(id, r.u64()?);
        }
    }
    Ok(book)
}

/// How a payload's integers were written: version 1 of the node's forms was big-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Little,
    Big,
}

impl Order {
    /// `value` as the codec read it (little-endian), put right for this order.
    fn u64(self, value: u64) -> u64 {
        match self {
            Order::Little => value,
            Order::Big => value.swap_bytes(),
        }
    }

    fn u32(self, value: u32) -> u32 {
        match self {
            Order::Little => value,
            Order::Big => value.swap_bytes(),
        }
    }
}

/// An id and a peer address, written in `order`.
fn read_address(r: &mut Reader<'_>, order: Order) -> Result<(NodeId, String), CodecError> {
    let id = NodeId(order.u64(r.u64()?));
    let addr = match order {
        Order::Little => r.short_str("address", u16::MAX)?,
        Order::Big => {
            let len = r.u16()?.swap_bytes();
            let at = r.offset();
            std::str::from_utf8(r.take(usize::from(len))?)
                .map_err(|_| CodecError::NotUtf8 { offset: at })?
        }
    };
    Ok((id, addr.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_kv::Command;

    #[test]
    fn member_addresses_and_requests_are_told_apart() {
        let address = MemberAddress {
            id: NodeId(4),
            addr: "10.0.0.4:7101".into(),
        };
        assert_eq!(
            Payload::decode(&address.encode()),
            Ok(Payload::MemberAddress(address.clone()))
        );
        let request = Request {
            session: None,
            command: Command::DbSize,
        };
        assert_eq!(
            Payload::decode(&request.encode()),
            Ok(Payload::Request(request))
        );
        let mut long = address.encode();
        long.push(0);
        assert!(Payload::decode(&long).is_err());
        assert!(Payload::decode(&address.encode()[..5]).is_err());
    }

    #[test]
    fn snapshots_carry_the_address_book_and_the_store() {
        let book = MemberBook {
            addresses: BTreeMap::from([(NodeId(4), "h:1".to_string()), (NodeId(9), "".into())]),
            incarnations: BTreeMap::from([(NodeId(4), 0xabcd)]),
        };
        let mut bytes = Vec::new();
        put_snapshot_header(&book, &mut bytes);
        bytes.extend_from_slice(b"kv-bytes");
        assert_eq!(decode_snapshot(&bytes), Ok((book, &b"kv-bytes"[..])));
        assert!(decode_snapshot(b"SKNX").is_err());
        assert!(decode_snapshot(&bytes[..7]).is_err());
    }

    fn from_hex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn todays_forms_are_little_endian_behind_their_tags() {
        let address = MemberAddress {
            id: NodeId(4),
            addr: "h:1".into(),
        };
        assert_eq!(
            address.encode(),
            [0x81, 4, 0, 0, 0, 0, 0, 0, 0, 3, 0, b'h', b':', b'1']
        );
        let mut bytes = Vec::new();
        let book = MemberBook {
            addresses: BTreeMap::from([(NodeId(4), "h:1".into())]),
            incarnations: BTreeMap::from([(NodeId(4), 5)]),
        };
        put_snapshot_header(&book, &mut bytes);
        assert_eq!(
            bytes,
            [
                b'S', b'K', b'N', b'S', 3, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 3, 0, b'h', b':',
                b'1', 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0
            ]
        );
        let incarnation = MemberIncarnation {
            id: NodeId(4),
            incarnation: 5,
        };
        assert_eq!(
            incarnation.encode(),
            [0x82, 4, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Payload::decode(&incarnation.encode()),
            Ok(Payload::MemberIncarnation(incarnation))
        );
        let zero = MemberIncarnation {
            id: NodeId(4),
            incarnation: 0,
        };
        assert!(Payload::decode(&zero.encode()).is_err());
        assert!(Payload::decode(&incarnation.encode()[..16]).is_err());
    }

    #[test]
    fn stamped_entries_carry_the_log_time_before_the_request() {
        let request = Request {
            session: None,
            command: Command::DbSize,
        };
        let bytes = request.encode();
        let stamped = Stamped {
            log_time_ms: 0x0102,
            request: &bytes,
        };
        assert_eq!(
            stamped.encode(),
            [0x83, 2, 1, 0, 0, 0, 0, 0, 0, 3, 0, 3, 0x0b]
        );
        assert_eq!(Stamped::split(&stamped.encode()), Some(Ok(stamped)));
        assert_eq!(
            Payload::decode(&stamped.encode()),
            Ok(Payload::Stamped {
                log_time_ms: 0x0102,
                request: Some(request.clone()),
            })
        );
        // Only the time.
        let time = Stamped {
            log_time_ms: 7,
            request: &[],
        };
        assert_eq!(
            Payload::decode(&time.encode()),
            Ok(Payload::Stamped {
                log_time_ms: 7,
                request: None,
            })
        );
        // A stamp cut short, or a stamped member record, is refused.
        assert!(Payload::decode(&[0x83, 1, 2]).is_err());
        let mut record = vec![0x83, 0, 0, 0, 0, 0, 0, 0, 0];
        record.extend_from_slice(
            &MemberIncarnation {
                id: NodeId(1),
                incarnation: 1,
            }
            .encode(),
        );
        assert!(Payload::decode(&record).is_err());
        // An unstamped request, as written before stamps, still reads.
        assert_eq!(Payload::decode(&bytes), Ok(Payload::Request(request)));
    }

    #[test]
    fn version_1_addresses_and_snapshots_still_read() {
        // Written big-endian by the node before the shared codec, kept as hex.
        let address = from_hex("800000000000000004000d31302e302e302e343a37313031");
        assert_eq!(
            Payload::decode(&address),
            Ok(Payload::MemberAddress(MemberAddress {
                id: NodeId(4),
                addr: "10.0.0.4:7101".into(),
            }))
        );
        let mut snapshot =
            from_hex("534b4e53010000000200000000000000040003683a3100000000000000090000");
        snapshot.extend_from_slice(b"kv-bytes");
        let addresses =
            BTreeMap::from([(NodeId(4), "h:1".to_string()), (NodeId(9), String::new())]);
        let book = MemberBook {
            addresses: addresses.clone(),
            incarnations: BTreeMap::new(),
        };
        assert_eq!(
            decode_snapshot(&snapshot),
            Ok((book.clone(), &b"kv-bytes"[..]))
        );
        // Version 2: little-endian addresses, no incarnations.
        let mut v2 = from_hex("534b4e53020200000004000000000000000300683a3109000000000000000000");
        v2.extend_from_slice(b"kv-bytes");
        assert_eq!(decode_snapshot(&v2), Ok((book, &b"kv-bytes"[..])));
    }

    #[test]
    fn an_unknown_snapshot_version_names_the_versions_read() {
        assert_eq!(
            decode_snapshot(b"SKNS\x04"),
            Err(PayloadError::Field {
                what: "node snapshot",
                source: CodecError::UnsupportedVersion {
                    what: "node snapshot",
                    found: 4,
                    supported: &[1, 2, 3],
                },
            })
        );
        // A count no bytes back is refused without reserving room for it.
        assert!(decode_snapshot(b"SKNS\x02\xff\xff\xff\xff").is_err());
        assert!(decode_snapshot(b"SKNS\x03\x00\x00\x00\x00\xff\xff\xff\xff").is_err());
    }
}
