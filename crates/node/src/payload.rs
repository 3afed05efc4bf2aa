//! What a node puts in its log entries and snapshots, around the key-value store's own forms.
//!
//! - A normal entry holds either a client [`Request`] (whose encoding starts with its format
//!   version, [`skiff_kv::REQUEST_FORMAT_VERSION`]) or a [`MemberAddress`] record (starting
//!   with [`MEMBER_ADDRESS_TAG`]): the peer address of a node about to join, replicated like
//!   any write so that every member, and every later snapshot, knows where to reach it.
//! - A snapshot is `SKNS`, a version byte, the address book, then the key-value snapshot.

use std::collections::BTreeMap;

use skiff_kv::Request;
use skiff_raft::NodeId;

use crate::wire::{put_short_string, put_u32, put_u64, Reader, WireError};

/// The first byte of a [`MemberAddress`] entry. Requests start with their format version,
/// which is small, so the two never collide.
pub const MEMBER_ADDRESS_TAG: u8 = 0x80;

/// The magic bytes that open a node snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 4] = b"SKNS";

/// The node snapshot format version.
pub const SNAPSHOT_VERSION: u8 = 1;

/// A peer address recorded in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberAddress {
    /// The node.
    pub id: NodeId,
    /// Its peer address (`host:port`).
    pub addr: String,
}

/// A normal entry's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// A client command.
    Request(Request),
    /// A member's peer address.
    MemberAddress(MemberAddress),
}

/// Why an entry or snapshot payload is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// A client request that does not decode.
    #[error(transparent)]
    Request(#[from] skiff_kv::KvError),
    /// A field that does not decode.
    #[error(transparent)]
    Field(#[from] WireError),
    /// Something else that does not decode.
    #[error("{0}")]
    Malformed(&'static str),
}

impl MemberAddress {
    /// The entry payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(11 + self.addr.len());
        out.push(MEMBER_ADDRESS_TAG);
        put_u64(&mut out, self.id.0);
        put_short_string(&mut out, &self.addr);
        out
    }
}

impl Payload {
    /// Decodes a normal entry's data.
    pub fn decode(data: &[u8]) -> Result<Payload, PayloadError> {
        match data.first() {
            Some(&MEMBER_ADDRESS_TAG) => {
                let mut r = Reader::new(&data[1..]);
                let id = NodeId(r.u64()?);
                let addr = r.short_string()?;
                r.finish()?;
                Ok(Payload::MemberAddress(MemberAddress { id, addr }))
            }
            _ => Ok(Payload::Request(Request::decode(data)?)),
        }
    }
}

/// Appends what precedes the key-value snapshot in a node snapshot (magic, version, address
/// book), so that the store can write its snapshot right after it, without a copy.
pub fn put_snapshot_header(addresses: &BTreeMap<NodeId, String>, out: &mut Vec<u8>) {
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.push(SNAPSHOT_VERSION);
    put_u32(out, addresses.len() as u32);
    for (id, addr) in addresses {
        put_u64(out, id.0);
        put_short_string(out, addr);
    }
}

/// Decodes a node snapshot into the address book and the key-value snapshot.
pub fn decode_snapshot(data: &[u8]) -> Result<(BTreeMap<NodeId, String>, &[u8]), PayloadError> {
    let Some(rest) = data.strip_prefix(SNAPSHOT_MAGIC) else {
        return Err(PayloadError::Malformed("not a node snapshot (bad magic)"));
    };
    let mut r = Reader::new(rest);
    if r.u8()? != SNAPSHOT_VERSION {
        return Err(PayloadError::Malformed("unsupported node snapshot version"));
    }
    let count = r.u32()?;
    let mut addresses = BTreeMap::new();
    for _ in 0..count {
        let id = NodeId(r.u64()?);
        addresses.insert(id, r.short_string()?);
    }
    Ok((addresses, r.rest()))
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
        let addresses = BTreeMap::from([(NodeId(4), "h:1".to_string()), (NodeId(9), "".into())]);
        let mut bytes = Vec::new();
        put_snapshot_header(&addresses, &mut bytes);
        bytes.extend_from_slice(b"kv-bytes");
        assert_eq!(decode_snapshot(&bytes), Ok((addresses, &b"kv-bytes"[..])));
        assert!(decode_snapshot(b"SKNX").is_err());
        assert!(decode_snapshot(&bytes[..7]).is_err());
    }
}
