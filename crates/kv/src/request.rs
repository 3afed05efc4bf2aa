//! [`Request`]: what a client write puts in a log entry — the command and, when the client
//! has one, its session (thesis §6.3).
//!
//! Binary form (version 3): a format version byte, a session flag (0 none, 1 present, 2
//! present and re-submitted)
//! followed by the client id, the sequence, how far below the sequence the lowest
//! unanswered one is (`sequence - lowest_unanswered`) and the commit index the request was
//! proposed after ([`SessionRequest::proposed_after`]) as varints, then the command in its
//! own binary form ([`Command::encode`]). Older versions are still read, as proposed after
//! index 0 (a re-sent copy of an unknown client then never starts a session, as before, so
//! every replica decides it alike whatever snapshot it started from): version 2 had no
//! fourth varint, version 1 no third either (a client with nothing else in flight,
//! `lowest_unanswered = sequence`).

use crate::codec::{put_u64, Reader};
use crate::command::Command;
use crate::error::{Encoded, KvError};
use crate::session::SessionRequest;

/// The version of the binary form [`Request::encode`] writes.
pub const REQUEST_FORMAT_VERSION: u8 = 3;

/// The format versions this build reads: 1 (no lowest unanswered sequence), 2 (no index
/// proposed after) and 3.
const REQUEST_FORMAT_VERSIONS: &[u16] = &[1, 2, REQUEST_FORMAT_VERSION as u16];

/// A command as a log entry carries it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// The client session, for exactly-once writes; `None` applies the command as it comes.
    pub session: Option<SessionRequest>,
    /// The command.
    pub command: Command,
}

impl Request {
    /// The binary form for a log entry.
    pub fn encode(&self) -> Vec<u8> {
        // Version, session kind, four varints of at most 10 bytes; then the command, written
        // straight after them.
        let mut out = Vec::with_capacity(42 + self.command.encoded_len_hint());
        out.push(REQUEST_FORMAT_VERSION);
        match self.session {
            None => out.push(0),
            Some(session) => {
                out.push(if session.resubmitted { 2 } else { 1 });
                put_u64(&mut out, session.client_id);
                put_u64(&mut out, session.sequence);
                put_u64(
                    &mut out,
                    session.sequence.saturating_sub(session.lowest_unanswered),
                );
                put_u64(&mut out, session.proposed_after);
            }
        }
        self.command.encode_into(&mut out);
        out
    }

    /// Decodes bytes written by [`Request::encode`]; malformed bytes give a typed error and
    /// never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Request, KvError> {
        let what = Encoded::Request;
        if bytes.is_empty() {
            return Err(KvError::Empty { what });
        }
        let mut r = Reader::new(bytes, what);
        let session = read_session(&mut r)?;
        let command = Command::decode(r.take(r.remaining())?)?;
        Ok(Request { session, command })
    }

    /// The key the command in an encoded request writes, read in place: see
    /// [`Command`]'s `written_key`. A hint for [`StateMachine::prefetch`]; `None` when the
    /// bytes do not say.
    ///
    /// [`StateMachine::prefetch`]: crate::StateMachine::prefetch
    pub fn written_key(bytes: &[u8]) -> Option<&[u8]> {
        let mut r = Reader::new(bytes, Encoded::Request);
        read_session(&mut r).ok()?;
        Command::written_key(r.take(r.remaining()).ok()?)
    }
}

/// A request's version and session, the bytes before its command.
fn read_session(r: &mut Reader<'_>) -> Result<Option<SessionRequest>, KvError> {
    let version = r.version(REQUEST_FORMAT_VERSIONS)?;
    let session = match r.u8()? {
        0 => None,
        flag @ (1 | 2) if version > 1 || flag == 1 => {
            let client_id = r.u64()?;
            let sequence = r.u64()?;
            let below = if version == 1 { 0 } else { r.u64()? };
            let proposed_after = if version < 3 { 0 } else { r.u64()? };
            let Some(lowest_unanswered) = sequence.checked_sub(below) else {
                return Err(KvError::InvalidRequest(
                    "the lowest unanswered sequence is below zero",
                ));
            };
            Some(SessionRequest {
                client_id,
                sequence,
                lowest_unanswered,
                resubmitted: flag == 2,
                proposed_after,
            })
        }
        tag => return Err(r.unknown_tag("session flag", tag)),
    };
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::SetCondition;
    use crate::Reply;
    use proptest::prelude::*;

    fn set(key: &str) -> Command {
        Command::Set {
            key: key.into(),
            value: b"v".to_vec(),
            condition: Default::default(),
        }
    }

    #[test]
    fn request_with_and_without_session_round_trips() {
        for session in [
            None,
            Some(SessionRequest::sequential(u64::MAX, 1)),
            Some(SessionRequest {
                client_id: 3,
                sequence: u64::MAX,
                lowest_unanswered: 2,
                resubmitted: true,
                proposed_after: u64::MAX,
            }),
        ] {
            let request = Request {
                session,
                command: set("k"),
            };
            assert_eq!(Request::decode(&request.encode()), Ok(request));
        }
    }

    /// A command that carries values is encoded into one buffer reserved to its size: with
    /// the largest session fields and values of 1 MiB, the buffer never grew (which would have
    /// copied the values).
    #[test]
    fn commands_with_large_values_are_encoded_without_growing_their_buffer() {
        use crate::expiry::{Deadline, Expiry, SetOptions};
        let (key, value) = (vec![b'k'; 300], vec![7; 1 << 20]);
        let pairs = vec![
            (key.clone(), value.clone()),
            (vec![b'f'; 200], value.clone()),
        ];
        let commands = [
            Command::Set {
                key: key.clone(),
                value: value.clone(),
                condition: SetCondition::IfAbsent,
            },
            Command::SetWith {
                key: key.clone(),
                value: value.clone(),
                options: SetOptions {
                    condition: SetCondition::IfPresent,
                    expiry: Expiry::Until(Deadline::At(i64::MIN)),
                    get: true,
                },
            },
            Command::Append {
                key: key.clone(),
                value: value.clone(),
            },
            Command::SetRange {
                key: key.clone(),
                offset: u64::MAX,
                value: value.clone(),
            },
            Command::HSetNx {
                key: key.clone(),
                field: key.clone(),
                value: value.clone(),
            },
            Command::MSet {
                pairs: pairs.clone(),
            },
            Command::HSet { key, pairs },
        ];
        for command in commands {
            let reserved = 42 + command.encoded_len_hint();
            let request = Request {
                session: Some(SessionRequest {
                    client_id: u64::MAX,
                    sequence: u64::MAX,
                    lowest_unanswered: 0,
                    resubmitted: true,
                    proposed_after: u64::MAX,
                }),
                command,
            };
            let bytes = request.encode();
            assert_eq!(
                bytes.capacity(),
                reserved,
                "grew: {:?}",
                request.command.name()
            );
            assert_eq!(Request::decode(&bytes), Ok(request));
        }
    }

    /// A version 1 request (no lowest unanswered sequence) still decodes, as a client with
    /// nothing else in flight.
    #[test]
    fn version_1_request_reads_as_a_sequential_client() {
        let mut bytes = vec![1, 1, 7, 5];
        bytes.extend_from_slice(&set("k").encode());
        assert_eq!(
            Request::decode(&bytes),
            Ok(Request {
                session: Some(SessionRequest::sequential(7, 5)),
                command: set("k"),
            })
        );
    }

    /// A version 2 request (no index proposed after) still decodes, as proposed after 0.
    #[test]
    fn version_2_request_reads_as_proposed_after_nothing() {
        let mut bytes = vec![2, 2, 7, 5, 1];
        bytes.extend_from_slice(&set("k").encode());
        let expected = SessionRequest {
            client_id: 7,
            sequence: 5,
            lowest_unanswered: 4,
            resubmitted: true,
            proposed_after: 0,
        };
        assert_eq!(
            Request::decode(&bytes),
            Ok(Request {
                session: Some(expected),
                command: set("k"),
            })
        );
    }

    /// A lowest unanswered sequence further below the sequence than zero is refused.
    #[test]
    fn lowest_unanswered_below_zero_is_refused() {
        let mut bytes = vec![REQUEST_FORMAT_VERSION, 1, 7, 5, 6, 0];
        bytes.extend_from_slice(&set("k").encode());
        assert!(matches!(
            Request::decode(&bytes),
            Err(KvError::InvalidRequest(_))
        ));
    }

    #[test]
    fn malformed_requests_are_typed_errors() {
        let good = Request {
            session: None,
            command: set("k"),
        }
        .encode();
        assert!(matches!(Request::decode(&[]), Err(KvError::Empty { .. })));
        assert!(matches!(
            Request::decode(&[9, 0]),
            Err(KvError::UnsupportedVersion { version: 9, .. })
        ));
        assert!(matches!(
            Request::decode(&[REQUEST_FORMAT_VERSION, 7]),
            Err(KvError::UnknownTag { tag: 7, .. })
        ));
        assert!(Request::decode(&good[..good.len() - 1]).is_err());
    }

    #[test]
    fn replies_round_trip_and_reject_trailing_bytes() {
        let reply = Reply::Array(vec![
            Reply::Nil,
            Reply::Bulk(b"x".to_vec()),
            Reply::Integer(-3),
        ]);
        let mut bytes = reply.encode();
        assert_eq!(Reply::decode(&bytes), Ok(reply));
        bytes.push(0);
        assert!(matches!(
            Reply::decode(&bytes),
            Err(KvError::TrailingBytes { .. })
        ));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Request::decode(&bytes);
            let _ = Reply::decode(&bytes);
        }
    }
}
