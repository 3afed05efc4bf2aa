//! The primitives every encoding in this crate is built from.
//!
//! - unsigned integers are LEB128 varints: seven bits per byte, low bits first, the high bit
//!   set on every byte but the last; at most ten bytes, and only the shortest form is accepted,
//!   so each value has exactly one encoding (decode then encode gives the same bytes);
//! - signed integers are zigzag-mapped to unsigned ones first (0, -1, 1, -2, … → 0, 1, 2, 3, …),
//!   so small negative numbers stay short;
//! - byte strings are a varint length followed by the bytes;
//! - tags are single bytes.
//!
//! The [`Reader`] never trusts a length: it checks it against the bytes that remain before
//! slicing or allocating, so a forged length cannot make it panic or reserve memory that the
//! input could not fill.

use crate::error::{Encoded, KvError};

/// Appends a varint.
pub(crate) fn put_u64(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a zigzag varint.
pub(crate) fn put_i64(out: &mut Vec<u8>, value: i64) {
    put_u64(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Appends a length-prefixed byte string.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads the primitives back from a byte slice, naming what it decodes in its errors.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
    what: Encoded,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`, which hold a `what`.
    pub(crate) fn new(bytes: &'a [u8], what: Encoded) -> Self {
        Reader {
            bytes,
            offset: 0,
            what,
        }
    }

    /// How many bytes have not been read.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    /// Fails unless every byte has been read.
    pub(crate) fn finish(&self) -> Result<(), KvError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(KvError::TrailingBytes {
                what: self.what,
                count,
            }),
        }
    }

    fn truncated(&self) -> KvError {
        KvError::Truncated {
            what: self.what,
            offset: self.offset,
        }
    }

    /// An [`KvError::UnknownTag`] for `tag`, read just before the current offset.
    pub(crate) fn unknown_tag(&self, field: &'static str, tag: u8) -> KvError {
        KvError::UnknownTag {
            what: self.what,
            field,
            tag,
            offset: self.offset.saturating_sub(1),
        }
    }

    /// The next `len` bytes.
    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], KvError> {
        if len > self.remaining() {
            return Err(self.truncated());
        }
        let slice = &self.bytes[self.offset..self.offset + len];
        self.offset += len;
        Ok(slice)
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Result<u8, KvError> {
        Ok(self.take(1)?[0])
    }

    /// A little-endian `u32` (fixed width, for checksums).
    pub(crate) fn u32_le(&mut self) -> Result<u32, KvError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// A varint, refusing overlong and over-wide forms.
    pub(crate) fn u64(&mut self) -> Result<u64, KvError> {
        let start = self.offset;
        let bad = KvError::BadVarint {
            what: self.what,
            offset: start,
        };
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let low = u64::from(byte & 0x7f);
            // The tenth byte holds only the 64th bit.
            if shift == 63 && low > 1 {
                return Err(bad);
            }
            value |= low << shift;
            if byte & 0x80 == 0 {
                // A final zero byte after others means a shorter form existed.
                if byte == 0 && shift > 0 {
                    return Err(bad);
                }
                return Ok(value);
            }
        }
        Err(bad)
    }

    /// A zigzag varint.
    pub(crate) fn i64(&mut self) -> Result<i64, KvError> {
        let raw = self.u64()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A count of items that each take at least `min_item_bytes` bytes: refused as truncated
    /// when the remaining bytes could not hold that many, so callers may reserve capacity for
    /// it without trusting the input.
    pub(crate) fn count(&mut self, min_item_bytes: usize) -> Result<usize, KvError> {
        let count = self.u64()?;
        let fits = usize::try_from(count)
            .ok()
            .filter(|&n| n.saturating_mul(min_item_bytes.max(1)) <= self.remaining());
        fits.ok_or_else(|| self.truncated())
    }

    /// A length-prefixed byte string.
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, KvError> {
        let len = self.count(1)?;
        Ok(self.take(len)?.to_vec())
    }
}
