//! The wire format's round trips, golden bytes and hostile input.

use super::*;
use proptest::prelude::*;

fn raft(body: MessageBody) -> PeerMessage {
    PeerMessage::Raft(Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(7),
        body,
    })
}

fn every_kind_of_message() -> Vec<PeerMessage> {
    let meta = SnapshotMeta {
        index: LogIndex(40),
        term: Term(3),
        voters: vec![NodeId(1), NodeId(2)],
        voters_outgoing: vec![NodeId(3)],
        learners: vec![NodeId(9)],
    };
    vec![
        raft(MessageBody::PreVote {
            last_log_index: LogIndex(5),
            last_log_term: Term(2),
        }),
        raft(MessageBody::PreVoteResponse { reject: true }),
        raft(MessageBody::RequestVote {
            last_log_index: LogIndex(5),
            last_log_term: Term(2),
            leadership_transfer: true,
        }),
        raft(MessageBody::RequestVoteResponse { reject: false }),
        raft(MessageBody::AppendEntries {
            prev_log_index: LogIndex(4),
            prev_log_term: Term(2),
            entries: vec![
                Entry {
                    term: Term(7),
                    index: LogIndex(5),
                    kind: EntryKind::Noop,
                    data: Bytes::new(),
                },
                Entry {
                    term: Term(7),
                    index: LogIndex(6),
                    kind: EntryKind::Normal,
                    data: b"set k v".to_vec().into(),
                },
                Entry {
                    term: Term(7),
                    index: LogIndex(7),
                    kind: EntryKind::ConfChange,
                    data: vec![1, 2, 3].into(),
                },
            ],
            leader_commit: LogIndex(4),
            read_round: 11,
        }),
        raft(MessageBody::AppendEntriesResponse {
            read_round: 11,
            result: AppendResponse::Accepted {
                match_index: LogIndex(7),
            },
        }),
        raft(MessageBody::AppendEntriesResponse {
            read_round: 0,
            result: AppendResponse::Rejected {
                rejected_index: LogIndex(9),
                hint_index: LogIndex(6),
                hint_term: Term(5),
            },
        }),
        raft(MessageBody::TimeoutNow),
        raft(MessageBody::InstallSnapshot {
            meta,
            offset: 1024,
            data: vec![7; 100],
            done: false,
        }),
        raft(MessageBody::InstallSnapshotResponse {
            index: LogIndex(40),
            next_offset: 1124,
            installed: false,
        }),
        raft(MessageBody::ReadIndex { ctx: 99 }),
        raft(MessageBody::ReadIndexResponse {
            ctx: 99,
            index: Some(LogIndex(12)),
        }),
        raft(MessageBody::ReadIndexResponse {
            ctx: 98,
            index: None,
        }),
        PeerMessage::Forward {
            from: NodeId(2),
            to: NodeId(1),
            id: 5,
            request: b"request".to_vec(),
        },
        PeerMessage::ForwardReply {
            from: NodeId(1),
            to: NodeId(2),
            id: 5,
            reply: b"reply".to_vec(),
        },
        PeerMessage::IncarnationRefused {
            from: NodeId(1),
            to: NodeId(3),
            incarnation: 0xaa,
            recorded: 0xbb,
        },
    ]
}

#[test]
fn entries_decoded_share_the_frame_they_came_in() {
    let entries: Vec<Entry> = (1..=3)
        .map(|index| Entry {
            term: Term(7),
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: vec![index as u8; 100].into(),
        })
        .collect();
    let message = raft(MessageBody::AppendEntries {
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: entries.clone(),
        leader_commit: LogIndex(0),
        read_round: 0,
    });
    // The frame sits after other bytes in a larger buffer, as one read from a socket does.
    let mut buffer = vec![0xee; 37];
    encode_envelope(&Envelope::new(1, message.clone()), &mut buffer);
    let buffer = Bytes::from(buffer);
    let frame = buffer.slice(37..);
    let decoded = decode_envelope(&frame).unwrap();
    assert_eq!(decoded, Envelope::new(1, message));
    let PeerMessage::Raft(Message {
        body: MessageBody::AppendEntries { entries: got, .. },
        ..
    }) = decoded.message
    else {
        unreachable!("decoded as sent")
    };
    let held = frame.as_ptr_range();
    for (entry, sent) in got.iter().zip(&entries) {
        assert_eq!(entry.data, sent.data);
        let data = entry.data.as_ptr_range();
        assert!(
            held.start <= data.start && data.end <= held.end,
            "entry {} copied rather than shared",
            entry.index
        );
    }
}

/// A large frame, whose entries would be shared with it, with its last entry's length
/// claiming more than the frame holds (by one byte, by 4 GiB): refused, never sliced past
/// the frame, whatever follows it in the buffer.
#[test]
fn a_large_frame_whose_entry_claims_more_than_it_holds_is_refused() {
    let data = vec![0xab; 20_000];
    let message = raft(MessageBody::AppendEntries {
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: vec![Entry {
            term: Term(7),
            index: LogIndex(1),
            kind: EntryKind::Normal,
            data: data.clone().into(),
        }],
        leader_commit: LogIndex(0),
        read_round: 0,
    });
    let mut frame = Vec::new();
    encode_envelope(&Envelope::new(1, message), &mut frame);
    let at = frame.len() - data.len() - 4; // the entry's length, just before its data
    assert_eq!(frame[at..at + 4], (data.len() as u32).to_le_bytes());
    for claimed in [data.len() as u32 + 1, u32::MAX] {
        let mut forged = frame.clone();
        forged[at..at + 4].copy_from_slice(&claimed.to_le_bytes());
        let frame_len = forged.len();
        // The next frame's bytes follow in the same buffer, as they do on a connection.
        forged.extend_from_slice(&[0xcd; 64]);
        let buffer = Bytes::from(forged);
        assert!(
            decode_envelope(&buffer.slice(..frame_len)).is_err(),
            "an entry claiming {claimed} bytes"
        );
    }
}

#[test]
fn envelopes_carry_the_incarnation_before_the_message() {
    for message in every_kind_of_message() {
        let envelope = Envelope::new(0x0102_0304_0506_0708, message);
        let mut bytes = Vec::new();
        encode_envelope(&envelope, &mut bytes);
        assert_eq!(bytes[..8], 0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(
            decode_envelope(&Bytes::copy_from_slice(&bytes)),
            Ok(envelope)
        );
        for len in 0..bytes.len() {
            assert!(
                decode_envelope(&Bytes::copy_from_slice(&bytes[..len])).is_err(),
                "cut at {len}"
            );
        }
    }
}

#[test]
fn every_kind_of_message_round_trips() {
    for message in every_kind_of_message() {
        let mut bytes = Vec::new();
        encode(&message, &mut bytes);
        assert_eq!(decode(&Bytes::copy_from_slice(&bytes)), Ok(message));
    }
}

#[test]
fn every_truncation_of_every_message_is_an_error() {
    for message in every_kind_of_message() {
        let mut bytes = Vec::new();
        encode(&message, &mut bytes);
        for len in 0..bytes.len() {
            assert!(
                decode(&Bytes::copy_from_slice(&bytes[..len])).is_err(),
                "{message:?} cut at {len}"
            );
        }
    }
}

#[test]
fn trailing_bytes_and_unknown_tags_are_errors() {
    let mut bytes = Vec::new();
    encode(&raft(MessageBody::TimeoutNow), &mut bytes);
    bytes.push(0);
    assert_eq!(
        decode(&Bytes::copy_from_slice(&bytes)),
        Err(WireError::Malformed {
            what: "peer message",
            source: CodecError::TrailingBytes { count: 1 }
        })
    );
    assert_eq!(
        decode(&Bytes::copy_from_slice(&[200])),
        Err(WireError::Malformed {
            what: "peer message",
            source: CodecError::UnknownTag {
                field: "message",
                tag: 200,
                offset: 0
            }
        })
    );
}

#[test]
fn a_forged_entry_count_does_not_allocate() {
    let mut bytes = Vec::new();
    encode(
        &raft(MessageBody::AppendEntries {
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![],
            leader_commit: LogIndex(0),
            read_round: 0,
        }),
        &mut bytes,
    );
    let count_at = bytes.len() - 4;
    put::u32_at(&mut bytes, count_at, u32::MAX);
    assert!(matches!(
        decode(&Bytes::copy_from_slice(&bytes)),
        Err(WireError::Malformed {
            source: CodecError::Truncated { .. },
            ..
        })
    ));
}

#[test]
fn integers_travel_little_endian() {
    let mut bytes = Vec::new();
    encode(&raft(MessageBody::ReadIndex { ctx: 0x0102 }), &mut bytes);
    // Tag, from 1, to 2, term 7, body tag, ctx.
    let mut expected = vec![tag::RAFT, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
    expected.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0, tag::READ_INDEX]);
    expected.extend_from_slice(&[2, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(bytes, expected);
}

fn frame(cluster_id: u64, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame_header(&mut out, cluster_id, kind, payload.len());
    out.extend_from_slice(payload);
    out
}

#[test]
fn a_frame_header_is_judged_as_its_bytes_arrive() {
    let bytes = frame(9, 1, b"payload");
    assert_eq!(bytes.len(), FRAME_HEADER_BYTES + 7);
    for cut in 0..FRAME_HEADER_BYTES {
        assert_eq!(
            parse_frame_header(&bytes[..cut], 9, 1024),
            Ok(None),
            "{cut}"
        );
    }
    let header = parse_frame_header(&bytes, 9, 1024).unwrap().unwrap();
    assert_eq!(header, FrameHeader { len: 17, kind: 1 });
    assert_eq!(header.frame_bytes(), bytes.len());

    // A frame whose payload was written in place, its length filled in after.
    let mut in_place = Vec::new();
    encode_frame_header(&mut in_place, 9, 1, 0);
    in_place.extend_from_slice(b"payload");
    finish_frame(&mut in_place, 0);
    assert_eq!(in_place, bytes);
}

#[test]
fn foreign_frames_are_refused_within_the_header() {
    let bytes = frame(9, 1, &[0; 100]);
    assert_eq!(
        parse_frame_header(&bytes, 10, 1024),
        Err(FrameError::WrongCluster {
            found: 9,
            expected: 10
        })
    );
    assert_eq!(
        parse_frame_header(&bytes[..5], 9, 64),
        Err(FrameError::TooLarge { len: 110, max: 64 })
    );
    let mut short = bytes.clone();
    put::u32_at(&mut short, 0, 3);
    assert_eq!(
        parse_frame_header(&short[..5], 9, 64),
        Err(FrameError::TooShort(3))
    );
    // A version-1 node's header: a big-endian length, then version 1 — refused by its
    // version as soon as the fifth byte arrives, before its length is misread.
    let mut old = (10u32 + 100).to_be_bytes().to_vec();
    old.push(1);
    old.extend_from_slice(&9u64.to_be_bytes());
    assert_eq!(
        parse_frame_header(&old, 9, 1024),
        Err(FrameError::Version(1))
    );
    assert_eq!(
        parse_frame_header(&old, 9, 1024).unwrap_err().to_string(),
        "frame version 1, expected 4"
    );
    // A version-2 node (messages without an envelope) is refused by its version too.
    let mut v2 = bytes.clone();
    v2[4] = 2;
    assert_eq!(
        parse_frame_header(&v2, 9, 1024),
        Err(FrameError::Version(2))
    );
    // A version-3 node (a Hello without the peer address) is refused by its version too.
    let mut v3 = bytes.clone();
    v3[4] = 3;
    assert_eq!(
        parse_frame_header(&v3, 9, 1024),
        Err(FrameError::Version(3))
    );
    assert_eq!(
        parse_frame_header(b"GET / HTTP/1.1\r\n", 9, 1 << 20),
        Err(FrameError::Version(b'/'))
    );
}

#[test]
fn hellos_round_trip_and_refuse_garbage() {
    let hello = Hello {
        from: 3,
        client_addr: "127.0.0.1:7001",
        http_addr: "[::1]:7201",
        peer_addr: "10.0.0.3:7101",
    };
    let mut bytes = Vec::new();
    hello.encode(&mut bytes);
    assert_eq!(Hello::decode(&bytes), Ok(hello));
    for cut in 0..bytes.len() {
        assert!(Hello::decode(&bytes[..cut]).is_err(), "{cut}");
    }
    bytes.push(0);
    assert!(matches!(
        Hello::decode(&bytes),
        Err(WireError::Malformed {
            what: "hello",
            source: CodecError::TrailingBytes { count: 1 }
        })
    ));
    let not_utf8 = [3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0xff, 0, 0, 0, 0];
    assert!(matches!(
        Hello::decode(&not_utf8),
        Err(WireError::Malformed {
            source: CodecError::NotUtf8 { offset: 10 },
            ..
        })
    ));
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&Bytes::copy_from_slice(&bytes));
    }
}
