//! Fuzzing the wire codec on the stable toolchain. Whatever bytes arrive — random, or a real
//! frame with bytes flipped, cut, inserted or a length forged — `wire::decode` returns a
//! message or a `WireError` and never panics; `validate` never panics on what it returns;
//! a frame that decodes is the exact encoding of the message it decodes to (the codec is
//! canonical), and every generated message round-trips. The same holds for a frame header
//! and a Hello: garbage is refused with a typed error, a whole header that passes names a
//! length within the limit, and a Hello that decodes is the exact encoding of itself.
//!
//! `SKIFF_FUZZ_CASES` (or `SKIFF_FUZZ_CASES_WIRE`) sets the number of cases of each target.

#[path = "../../raft/tests/fuzz_support/mod.rs"]
mod fuzz_support;

use bytes::Bytes;
use fuzz_support::{addressed, fuzz_cases, fuzz_config, message, node_id};
use proptest::prelude::*;
use skiff_node::{wire, PeerMessage};

fn peer_message() -> impl Strategy<Value = PeerMessage> {
    let data = prop::collection::vec(any::<u8>(), 0..16).boxed();
    prop_oneof![
        6 => (message(data), node_id())
            .prop_map(|(draw, to)| PeerMessage::Raft(addressed(draw, to))),
        1 => (node_id(), node_id(), any::<u64>(), prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(from, to, id, request)| PeerMessage::Forward { from, to, id, request }),
        1 => (node_id(), node_id(), any::<u64>(), prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(from, to, id, reply)| PeerMessage::ForwardReply { from, to, id, reply }),
    ]
}

/// One change to a frame.
#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Cut {
        at: usize,
    },
    Insert {
        at: usize,
        byte: u8,
    },
    /// Overwrite four bytes with a forged length.
    Length {
        at: usize,
        len: u32,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        (at, 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (at, any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        at.prop_map(|at| Mutation::Cut { at }),
        (at, any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        (
            at,
            prop_oneof![Just(u32::MAX), Just(0), 0u32..64, Just(1 << 31)]
        )
            .prop_map(|(at, len)| Mutation::Length { at, len }),
    ]
}

fn mutate(frame: &mut Vec<u8>, mutation: &Mutation) {
    let len = frame.len();
    match *mutation {
        Mutation::Flip { at, bit } if len > 0 => frame[at % len] ^= 1 << bit,
        Mutation::Set { at, byte } if len > 0 => frame[at % len] = byte,
        Mutation::Cut { at } => frame.truncate(at % (len + 1)),
        Mutation::Insert { at, byte } => frame.insert(at % (len + 1), byte),
        Mutation::Length { at, len: forged } if len >= 4 => {
            let at = at % (len - 3);
            skiff_codec::put::u32_at(frame, at, forged);
        }
        _ => {}
    }
}

/// Decodes `bytes`; what decodes must validate without panicking and be re-encoded exactly.
fn decode_checked(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(message) = wire::decode(&Bytes::copy_from_slice(bytes)) {
        if let PeerMessage::Raft(raft) = &message {
            let _ = skiff_raft::validate(raft);
        }
        let mut again = Vec::new();
        wire::encode(&message, &mut again);
        prop_assert_eq!(&again[..], bytes, "the codec is canonical");
    }
    Ok(())
}

proptest! {
    #![proptest_config(fuzz_config(fuzz_cases("wire", 4096)))]

    #[test]
    fn random_bytes_decode_or_fail_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        decode_checked(&bytes)?;
    }

    #[test]
    fn every_message_round_trips(message in peer_message()) {
        let mut frame = Vec::new();
        wire::encode(&message, &mut frame);
        prop_assert_eq!(wire::decode(&Bytes::copy_from_slice(&frame)), Ok(message));
    }

    #[test]
    fn mutated_frames_decode_or_fail_without_panicking(
        message in peer_message(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut frame = Vec::new();
        wire::encode(&message, &mut frame);
        for mutation in &mutations {
            mutate(&mut frame, mutation);
        }
        decode_checked(&frame)?;
    }

    #[test]
    fn frame_headers_and_hellos_are_judged_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        max_frame_bytes in 0usize..4096,
    ) {
        if let Ok(Some(header)) = wire::parse_frame_header(&bytes, 9, max_frame_bytes) {
            prop_assert!(bytes.len() >= wire::FRAME_HEADER_BYTES);
            prop_assert!(header.len <= max_frame_bytes);
            prop_assert!(header.len >= wire::FRAME_HEADER_BYTES - 4);
        }
        if let Ok(hello) = wire::Hello::decode(&bytes) {
            let mut again = Vec::new();
            hello.encode(&mut again);
            prop_assert_eq!(&again[..], &bytes[..], "the Hello's form is canonical");
        }
    }

    #[test]
    fn a_forged_frame_length_is_refused_unless_it_is_within_the_limit(
        forged_len in prop_oneof![Just(u32::MAX), 0u32..64, 0u32..8192],
        kind in any::<u8>(),
        max_frame_bytes in 16usize..4096,
    ) {
        let mut header = Vec::new();
        wire::encode_frame_header(&mut header, 9, kind, 0);
        skiff_codec::put::u32_at(&mut header, 0, forged_len);
        let len = forged_len as usize;
        match wire::parse_frame_header(&header, 9, max_frame_bytes) {
            Ok(Some(parsed)) => {
                prop_assert_eq!(parsed, wire::FrameHeader { len, kind });
                prop_assert!((wire::FRAME_HEADER_BYTES - 4..=max_frame_bytes).contains(&len));
            }
            Err(wire::FrameError::TooLarge { .. }) => prop_assert!(len > max_frame_bytes),
            Err(wire::FrameError::TooShort(_)) => prop_assert!(len < wire::FRAME_HEADER_BYTES - 4),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}
