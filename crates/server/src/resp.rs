//! RESP2, the Redis wire protocol: parsing client requests and writing replies.
//!
//! A request is an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or, as `redis-cli`
//! and `telnet` users type them, an inline line of space-separated words. The parser works on
//! a growing buffer: [`parse_request`] returns `Ok(None)` until a whole request has arrived,
//! and never lets a declared length reserve more than the configured limits.

use bytes::{Buf, BytesMut};
use skiff_kv::Reply;

/// Limits on what a client may send.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The longest bulk string (a key or a value).
    pub max_bulk_bytes: usize,
    /// The most arguments in one request.
    pub max_args: usize,
    /// The longest inline request line.
    pub max_inline_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_bytes: 8 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline_bytes: 64 * 1024,
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

/// Parses one request from the front of `buf`, consuming it. `Ok(None)`: not complete yet.
/// An empty request (a blank inline line, `*0`) is consumed and returned as no arguments.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] == b'*' {
        parse_multibulk(buf, limits)
    } else {
        parse_inline(buf, limits)
    }
}

/// Finds the CRLF-terminated line starting at `from`; returns the index of its `\r`.
fn find_line(buf: &[u8], from: usize) -> Option<usize> {
    buf[from..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|at| from + at)
}

fn parse_number(bytes: &[u8], what: &'static str) -> Result<i64, ProtocolError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or(ProtocolError::InvalidLength { what })
}

fn parse_multibulk(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
    let Some(end) = find_line(buf, 0) else {
        return check_header_length(buf, limits);
    };
    let count = parse_number(&buf[1..end], "multibulk")?;
    if count <= 0 {
        buf.advance(end + 2);
        return Ok(Some(Vec::new()));
    }
    let count = count as usize;
    if count > limits.max_args {
        return Err(ProtocolError::TooManyArgs {
            count,
            max: limits.max_args,
        });
    }
    // First pass: check that every argument has arrived, without copying.
    let mut at = end + 2;
    let mut spans = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        if at >= buf.len() {
            return Ok(None);
        }
        if buf[at] != b'$' {
            return Err(ProtocolError::ExpectedBulk(buf[at] as char));
        }
        let Some(line_end) = find_line(buf, at) else {
            return check_header_length(&buf[at..], limits);
        };
        let len = parse_number(&buf[at + 1..line_end], "bulk")?;
        if len < 0 {
            return Err(ProtocolError::InvalidLength { what: "bulk" });
        }
        let len = len as usize;
        if len > limits.max_bulk_bytes {
            return Err(ProtocolError::BulkTooLarge {
                len,
                max: limits.max_bulk_bytes,
            });
        }
        let start = line_end + 2;
        if buf.len() < start + len + 2 {
            return Ok(None);
        }
        if &buf[start + len..start + len + 2] != b"\r\n" {
            return Err(ProtocolError::MissingCrlf);
        }
        spans.push((start, len));
        at = start + len + 2;
    }
    let args = spans
        .iter()
        .map(|&(start, len)| buf[start..start + len].to_vec())
        .collect();
    buf.advance(at);
    Ok(Some(args))
}

/// A header line still incomplete: fine unless it is already longer than any valid header.
fn check_header_length(
    pending: &[u8],
    _limits: &Limits,
) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
    if pending.len() > 32 {
        return Err(ProtocolError::InvalidLength { what: "header" });
    }
    Ok(None)
}

fn parse_inline(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_inline_bytes {
            return Err(ProtocolError::InlineTooLong);
        }
        return Ok(None);
    };
    if newline > limits.max_inline_bytes {
        return Err(ProtocolError::InlineTooLong);
    }
    let line = buf.split_to(newline + 1);
    let line = line.strip_suffix(b"\n").unwrap_or(&line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    split_inline(line).map(Some)
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
    out.extend_from_slice(b"-");
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
        let mut requests = Vec::new();
        while let Some(request) = parse_request(&mut buf, &Limits::default())? {
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
            let mut buf = BytesMut::from(&input[..cut]);
            assert_eq!(
                parse_request(&mut buf, &Limits::default()),
                Ok(None),
                "cut at {cut}"
            );
            buf.extend_from_slice(&input[cut..]);
            assert_eq!(
                parse_request(&mut buf, &Limits::default()),
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
        ];
        for (input, expected) in cases {
            let mut buf = BytesMut::from(*input);
            assert_eq!(
                parse_request(&mut buf, &limits),
                Err(expected.clone()),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
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
