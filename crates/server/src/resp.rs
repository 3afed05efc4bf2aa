//! RESP2, the Redis wire protocol: parsing client requests and writing replies.
//!
//! A request is an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or, as `redis-cli`
//! and `telnet` users type them, an inline line of space-separated words. [`RequestParser`]
//! is incremental: it consumes each argument from the buffer as soon as it is whole and keeps
//! its place, so a request that arrives a byte at a time is scanned once, not once per read.
//! No declared length reserves memory: the buffer grows only with bytes actually received,
//! and one request may not exceed [`Limits::max_request_bytes`] in all.

use bytes::{Buf, BytesMut};
use skiff_kv::Reply;

/// Limits on what a client may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest bulk string (a key or a value).
    pub max_bulk_bytes: usize,
    /// The most arguments in one request.
    pub max_args: usize,
    /// The longest inline request line.
    pub max_inline_bytes: usize,
    /// The most bytes one request may take, headers included.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    /// 8 MiB bulks, 1 Mi arguments, 64 KiB inline lines, 32 MiB requests.
    fn default() -> Self {
        Limits {
            max_bulk_bytes: 8 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline_bytes: 64 * 1024,
            max_request_bytes: 32 * 1024 * 1024,
        }
    }
}

/// The most arguments a connection that must still authenticate may send in one request:
/// enough for `AUTH user password` and `HELLO 3 AUTH user password SETNAME name`.
const MAX_ARGS_BEFORE_AUTH: usize = 10;

/// The longest bulk string or inline line before authentication: a password of 16 KiB.
const MAX_BULK_BYTES_BEFORE_AUTH: usize = 16 * 1024;

impl Limits {
    /// What a connection that must still authenticate may send, never more than `self`:
    /// 10 arguments of 16 KiB, as Redis allows since CVE-2021-32675, so that a stranger
    /// cannot make the node hold megabytes by declaring them.
    pub fn before_auth(self) -> Limits {
        let bulk = self.max_bulk_bytes.min(MAX_BULK_BYTES_BEFORE_AUTH);
        let args = self.max_args.min(MAX_ARGS_BEFORE_AUTH);
        // Each argument with its header and CRLF, and the request's own header.
        let request = args * (bulk + MAX_HEADER_BYTES) + MAX_HEADER_BYTES;
        Limits {
            max_bulk_bytes: bulk,
            max_args: args,
            max_inline_bytes: self.max_inline_bytes.min(MAX_BULK_BYTES_BEFORE_AUTH),
            max_request_bytes: self.max_request_bytes.min(request),
        }
    }
}

/// A request the client sent that cannot be parsed. After one of these the connection is
/// closed (as Redis does): the stream's framing can no longer be trusted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A length or count is not a decimal number.
    #[error("Protocol error: invalid {what} length")]
    InvalidLength {
        /// Which length.
        what: &'static str,
    },
    /// An array element is not a bulk string.
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// A bulk string is longer than allowed.
    #[error("Protocol error: bulk string of {len} bytes exceeds the limit of {max}")]
    BulkTooLarge {
        /// The declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Too many arguments.
    #[error("Protocol error: {count} arguments exceed the limit of {max}")]
    TooManyArgs {
        /// The declared count.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The request's arguments add up to more than allowed.
    #[error("Protocol error: request larger than the limit of {max} bytes")]
    RequestTooLarge {
        /// The limit.
        max: usize,
    },
    /// An inline request line is too long.
    #[error("Protocol error: too big inline request")]
    InlineTooLong,
    /// A bulk string is not followed by CRLF.
    #[error("Protocol error: bulk string not terminated by CRLF")]
    MissingCrlf,
    /// An inline request has an unbalanced quote.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
}

impl ProtocolError {
    /// Whether the request passed one of the [`Limits`] (rather than breaking the protocol).
    pub fn is_over_limit(&self) -> bool {
        matches!(
            self,
            ProtocolError::BulkTooLarge { .. }
                | ProtocolError::TooManyArgs { .. }
                | ProtocolError::RequestTooLarge { .. }
                | ProtocolError::InlineTooLong
        )
    }
}

/// The longest header line (`*N` or `$N`) a valid request can have: a sign, 19 digits, CRLF,
/// with room to spare.
const MAX_HEADER_BYTES: usize = 32;

/// A multibulk request part-way through.
#[derive(Debug, Default)]
struct Partial {
    /// Arguments still to come, counting the one being read.
    remaining: usize,
    /// The arguments read so far.
    args: Vec<Vec<u8>>,
    /// The declared length of the bulk string being read, once its header was consumed.
    bulk_len: Option<usize>,
    /// Bytes of the request counted against its limit so far: headers, and each bulk string
    /// at its declared length once its header is read.
    consumed: usize,
    /// Bytes of the arguments received so far.
    received: usize,
}

/// Parses a client's requests as their bytes arrive, keeping its place between reads.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    partial: Option<Partial>,
    /// How far the unfinished inline line at the front of the buffer was searched for its end.
    inline_scanned: usize,
}

impl RequestParser {
    /// A parser that enforces `limits`.
    pub fn new(limits: Limits) -> RequestParser {
        RequestParser {
            limits,
            partial: None,
            inline_scanned: 0,
        }
    }

    /// Enforces `limits` from the next request on (a connection that authenticated, or
    /// reset, between two requests).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Bytes of the request in progress held as its arguments so far, for memory accounting
    /// (what arrived, not what a header declared).
    pub fn held_bytes(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.received)
    }

    /// Parses one request from the front of `buf`, consuming what it uses. `Ok(None)`: not
    /// complete yet (call again with more bytes). An empty request (a blank inline line, `*0`)
    /// is consumed and returned as no arguments.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
        if self.partial.is_none() {
            if buf.is_empty() {
                return Ok(None);
            }
            if buf[0] != b'*' {
                return self.parse_inline(buf);
            }
            let Some(count) = take_header(buf, b'*', "multibulk")? else {
                return Ok(None);
            };
            if count <= 0 {
                return Ok(Some(Vec::new()));
            }
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            if count > self.limits.max_args {
                return Err(ProtocolError::TooManyArgs {
                    count,
                    max: self.limits.max_args,
                });
            }
            self.partial = Some(Partial {
                remaining: count,
                args: Vec::with_capacity(count.min(64)),
                bulk_len: None,
                consumed: 0,
                received: 0,
            });
        }
        let limits = self.limits;
        let partial = self.partial.as_mut().expect("a request in progress");
        while partial.remaining > 0 {
            let len = match partial.bulk_len {
                Some(len) => len,
                None => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    if buf[0] != b'$' {
                        return Err(ProtocolError::ExpectedBulk(buf[0] as char));
                    }
                    let before = buf.len();
                    let Some(len) = take_header(buf, b'$', "bulk")? else {
                        return Ok(None);
                    };
                    let len = usize::try_from(len)
                        .map_err(|_| ProtocolError::InvalidLength { what: "bulk" })?;
                    if len > limits.max_bulk_bytes {
                        return Err(ProtocolError::BulkTooLarge {
                            len,
                            max: limits.max_bulk_bytes,
                        });
                    }
                    let header = before - buf.len();
                    partial.consumed = partial
                        .consumed
                        .checked_add(header + len + 2)
                        .filter(|&total| total <= limits.max_request_bytes)
                        .ok_or(ProtocolError::RequestTooLarge {
                            max: limits.max_request_bytes,
                        })?;
                    partial.bulk_len = Some(len);
                    len
                }
            };
            if buf.len() < len + 2 {
                return Ok(None);
            }
            if &buf[len..len + 2] != b"\r\n" {
                return Err(ProtocolError::MissingCrlf);
            }
            partial.args.push(buf.split_to(len).to_vec());
            partial.received += len;
            buf.advance(2);
            partial.bulk_len = None;
            partial.remaining -= 1;
        }
        Ok(self.partial.take().map(|p| p.args))
    }

    fn parse_inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
        let from = self.inline_scanned.min(buf.len());
        let Some(newline) = buf[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|at| from + at)
        else {
            if buf.len() > self.limits.max_inline_bytes {
                return Err(ProtocolError::InlineTooLong);
            }
            self.inline_scanned = buf.len();
            return Ok(None);
        };
        self.inline_scanned = 0;
        if newline > self.limits.max_inline_bytes {
            return Err(ProtocolError::InlineTooLong);
        }
        let line = buf.split_to(newline + 1);
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        split_inline(line).map(Some)
    }
}

/// Consumes a `*N` or `$N` header line from the front of `buf` and returns `N`; `Ok(None)`
/// when the line has not fully arrived. Only the first [`MAX_HEADER_BYTES`] are searched.
fn take_header(
    buf: &mut BytesMut,
    kind: u8,
    what: &'static str,
) -> Result<Option<i64>, ProtocolError> {
    debug_assert_eq!(buf.first(), Some(&kind));
    let window = &buf[..buf.len().min(MAX_HEADER_BYTES)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= MAX_HEADER_BYTES {
            return Err(ProtocolError::InvalidLength { what });
        }
        return Ok(None);
    };
    let number = std::str::from_utf8(&buf[1..end])
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or(ProtocolError::InvalidLength { what })?;
    if kind == b'$' && number < 0 {
        return Err(ProtocolError::InvalidLength { what });
    }
    buf.advance(end + 2);
    Ok(Some(number))
}

/// Splits an inline line into words; double quotes group words and allow `\"` and `\\`.
fn split_inline(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let mut word = Vec::new();
        if line[i] == b'"' {
            i += 1;
            loop {
                match line.get(i) {
                    None => return Err(ProtocolError::UnbalancedQuotes),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < line.len() => {
                        word.push(line[i + 1]);
                        i += 2;
                    }
                    Some(&b) => {
                        word.push(b);
                        i += 1;
                    }
                }
            }
        } else {
            while i < line.len() && !line[i].is_ascii_whitespace() {
                word.push(line[i]);
                i += 1;
            }
        }
        words.push(word);
    }
    Ok(words)
}

/// Appends `reply` in RESP2.
pub fn write_reply(out: &mut BytesMut, reply: &Reply) {
    match reply {
        Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
        Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
        Reply::Bulk(bytes) => write_bulk(out, bytes),
        Reply::Integer(n) => write_header(out, b':', *n),
        Reply::Array(items) => {
            write_header(out, b'*', items.len() as i64);
            for item in items {
                write_reply(out, item);
            }
        }
        Reply::Error(text) => write_error(out, text),
        Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
        Reply::Simple(text) => write_line(out, b'+', text),
    }
}

/// About how many bytes `reply` takes in RESP2 (headers counted at their longest).
pub fn reply_len(reply: &Reply) -> usize {
    const HEADER: usize = 1 + 20 + 2;
    match reply {
        Reply::Ok | Reply::Nil | Reply::Integer(_) | Reply::NilArray => HEADER,
        Reply::Simple(text) => text.len() + 3,
        Reply::Bulk(bytes) => HEADER + bytes.len() + 2,
        Reply::Array(items) => HEADER + items.iter().map(reply_len).sum::<usize>(),
        Reply::Error(text) => text.len() + 3,
    }
}

/// Appends a bulk string.
pub fn write_bulk(out: &mut BytesMut, bytes: &[u8]) {
    write_header(out, b'$', bytes.len() as i64);
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Appends a simple string (`+PONG`).
pub fn write_simple(out: &mut BytesMut, text: &str) {
    out.extend_from_slice(b"+");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends an error; line breaks in `text` become spaces so the reply stays one line.
pub fn write_error(out: &mut BytesMut, text: &str) {
    write_line(out, b'-', text);
}

/// Appends `kind` and `text` as one line: line breaks in `text` become spaces.
fn write_line(out: &mut BytesMut, kind: u8, text: &str) {
    out.extend_from_slice(&[kind]);
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// Appends `kind`, the number and CRLF (`:42`, `*3`, `$5`), formatted in place.
fn write_header(out: &mut BytesMut, kind: u8, n: i64) {
    use std::fmt::Write as _;
    out.extend_from_slice(&[kind]);
    let _ = write!(out, "{n}\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut parser = RequestParser::new(Limits::default());
        let mut requests = Vec::new();
        while let Some(request) = parser.parse(&mut buf)? {
            requests.push(request);
        }
        Ok(requests)
    }

    fn words(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn pipelined_multibulk_requests_parse_in_order() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        assert_eq!(
            parse_all(input),
            Ok(vec![words(&["SET", "k", "v1"]), words(&["GET", "k"])])
        );
    }

    #[test]
    fn a_request_split_anywhere_waits_for_the_rest() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        for cut in 1..input.len() {
            let mut parser = RequestParser::new(Limits::default());
            let mut buf = BytesMut::from(&input[..cut]);
            assert_eq!(parser.parse(&mut buf), Ok(None), "cut at {cut}");
            buf.extend_from_slice(&input[cut..]);
            assert_eq!(
                parser.parse(&mut buf),
                Ok(Some(words(&["SET", "k", "hello"])))
            );
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn binary_values_keep_their_bytes() {
        let input = b"*2\r\n$3\r\nGET\r\n$4\r\n\r\n\0\xff\r\n";
        assert_eq!(
            parse_all(input),
            Ok(vec![vec![b"GET".to_vec(), b"\r\n\0\xff".to_vec()]])
        );
    }

    #[test]
    fn inline_requests_split_on_spaces_and_honour_quotes() {
        assert_eq!(
            parse_all(b"set k \"hello world\"\r\nPING\n\r\n"),
            Ok(vec![
                words(&["set", "k", "hello world"]),
                words(&["PING"]),
                vec![]
            ])
        );
        assert_eq!(
            parse_all(b"set k \"open\r\n"),
            Err(ProtocolError::UnbalancedQuotes)
        );
    }

    #[test]
    fn malformed_and_oversized_requests_are_refused() {
        let limits = Limits {
            max_bulk_bytes: 4,
            max_args: 2,
            max_inline_bytes: 8,
            max_request_bytes: 12,
        };
        let cases: &[(&[u8], ProtocolError)] = &[
            (
                b"*x\r\n",
                ProtocolError::InvalidLength { what: "multibulk" },
            ),
            (b"*1\r\n:5\r\n", ProtocolError::ExpectedBulk(':')),
            (
                b"*1\r\n$-1\r\n",
                ProtocolError::InvalidLength { what: "bulk" },
            ),
            (
                b"*1\r\n$5\r\n",
                ProtocolError::BulkTooLarge { len: 5, max: 4 },
            ),
            (b"*3\r\n", ProtocolError::TooManyArgs { count: 3, max: 2 }),
            (b"*1\r\n$2\r\nabXY", ProtocolError::MissingCrlf),
            (b"aaaaaaaaaaaaaaaaa", ProtocolError::InlineTooLong),
            (
                b"*2\r\n$4\r\nabcd\r\n$2\r\n",
                ProtocolError::RequestTooLarge { max: 12 },
            ),
            (
                b"*1\r\n$99999999999999999999999999999999",
                ProtocolError::InvalidLength { what: "bulk" },
            ),
        ];
        for (input, expected) in cases {
            let mut buf = BytesMut::from(*input);
            assert_eq!(
                RequestParser::new(limits).parse(&mut buf),
                Err(expected.clone()),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// Before AUTH a stranger may declare 10 arguments of 16 KiB, never what the node allows
    /// an authenticated client; a password of 16 KiB still fits; the parser switched to the
    /// full limits takes the next request at its size.
    #[test]
    fn before_auth_a_request_is_refused_at_its_header_past_ten_arguments_of_16_kib() {
        let full = Limits::default();
        let before = full.before_auth();
        assert_eq!((before.max_args, before.max_bulk_bytes), (10, 16 * 1024));
        assert!(before.max_request_bytes < full.max_request_bytes);
        let tiny = Limits {
            max_bulk_bytes: 100,
            max_args: 3,
            max_inline_bytes: 50,
            max_request_bytes: 200,
        };
        assert_eq!(tiny.before_auth(), tiny, "never more than configured");

        let mut parser = RequestParser::new(before);
        let password = "p".repeat(16 * 1024);
        let auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len());
        let mut buf = BytesMut::from(auth.as_bytes());
        assert_eq!(
            parser.parse(&mut buf),
            Ok(Some(vec![b"AUTH".to_vec(), password.into_bytes()]))
        );
        // Refused at the header, before any of the declared bytes arrive.
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$16385\r\n"[..]);
        assert_eq!(
            RequestParser::new(before).parse(&mut buf),
            Err(ProtocolError::BulkTooLarge {
                len: 16385,
                max: 16 * 1024
            })
        );
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            RequestParser::new(before).parse(&mut buf),
            Err(ProtocolError::TooManyArgs { count: 11, max: 10 })
        );
        // Those are limits passed, which the client is told were the ones before AUTH; a
        // request that breaks the protocol is not.
        assert!(ProtocolError::TooManyArgs { count: 11, max: 10 }.is_over_limit());
        assert!(!ProtocolError::ExpectedBulk('x').is_over_limit());
        let mut buf = BytesMut::from(format!("AUTH {}\r\n", "p".repeat(17 * 1024)).as_bytes());
        assert_eq!(
            RequestParser::new(before).parse(&mut buf),
            Err(ProtocolError::InlineTooLong)
        );
        // Authenticated: the same parser takes a 64 KiB value.
        parser.set_limits(full);
        let value = "v".repeat(64 * 1024);
        let set = format!(
            "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n{value}\r\n",
            value.len()
        );
        let mut buf = BytesMut::from(set.as_bytes());
        assert_eq!(parser.parse(&mut buf).unwrap().unwrap().len(), 3);
    }

    #[test]
    fn a_request_dripped_a_byte_at_a_time_is_consumed_as_it_arrives() {
        let mut parser = RequestParser::new(Limits::default());
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut buf = BytesMut::new();
        let mut parsed = None;
        for (at, &byte) in input.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            parsed = parser.parse(&mut buf).unwrap();
            // Whole arguments leave the buffer at once: at most one header or one bulk string
            // (with its CRLF) is ever waiting in it.
            assert!(buf.len() <= 7, "{} bytes held at byte {at}", buf.len());
        }
        assert_eq!(parsed, Some(words(&["SET", "k", "hello"])));
        assert_eq!(parser.held_bytes(), 0);
    }

    #[test]
    fn a_pipeline_ending_in_garbage_yields_its_requests_then_the_error() {
        let mut parser = RequestParser::new(Limits::default());
        let mut buf =
            BytesMut::from(&b"SET a 1\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$-3\r\n"[..]);
        assert_eq!(parser.parse(&mut buf), Ok(Some(words(&["SET", "a", "1"]))));
        assert_eq!(parser.parse(&mut buf), Ok(Some(words(&["GET", "a"]))));
        assert_eq!(
            parser.parse(&mut buf),
            Err(ProtocolError::InvalidLength { what: "bulk" })
        );
    }

    #[test]
    fn a_declared_length_holds_nothing_until_its_bytes_arrive() {
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$8388608\r\n"[..]);
        assert_eq!(parser.parse(&mut buf), Ok(None));
        assert_eq!(parser.held_bytes(), 3, "only SET arrived");
        buf.extend_from_slice(&[b'v'; 1000]);
        assert_eq!(parser.parse(&mut buf), Ok(None));
        assert_eq!(parser.held_bytes() + buf.len(), 1003);
    }

    #[test]
    fn an_inline_line_dripped_a_byte_at_a_time_is_searched_once() {
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::new();
        for &byte in b"PING hel" {
            buf.extend_from_slice(&[byte]);
            assert_eq!(parser.parse(&mut buf), Ok(None));
            assert_eq!(parser.inline_scanned, buf.len());
        }
        buf.extend_from_slice(b"lo\r\n");
        assert_eq!(parser.parse(&mut buf), Ok(Some(words(&["PING", "hello"]))));
        assert_eq!(parser.inline_scanned, 0);
    }

    #[test]
    fn replies_are_written_in_resp2() {
        let mut out = BytesMut::new();
        write_reply(
            &mut out,
            &Reply::Array(vec![
                Reply::Bulk(b"v".to_vec()),
                Reply::Nil,
                Reply::Integer(-2),
                Reply::Ok,
            ]),
        );
        write_reply(&mut out, &Reply::error("ERR bad\r\nthing"));
        assert_eq!(
            &out[..],
            b"*4\r\n$1\r\nv\r\n$-1\r\n:-2\r\n+OK\r\n-ERR bad  thing\r\n"
        );
    }
}
