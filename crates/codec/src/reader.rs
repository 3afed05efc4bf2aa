//! [`Reader`]: the reading half, over a byte slice.

use crate::error::CodecError;

/// Reads fields from a byte slice in the forms [`put`](crate::put) writes, never trusting
/// the bytes: each read checks what remains, each length is checked before the bytes it
/// claims are sliced, and each count before the caller may reserve room for its items.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, offset: 0 }
    }

    /// How many bytes were read.
    #[inline]
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// How many bytes are left.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    /// The bytes not read yet, leaving the reader at the end.
    #[inline]
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.offset..];
        self.offset = self.bytes.len();
        rest
    }

    /// Fails with [`CodecError::TrailingBytes`] unless every byte was read.
    #[inline]
    pub fn finish(&self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(CodecError::TrailingBytes { count }),
        }
    }

    /// The next `len` bytes.
    #[inline(always)]
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], CodecError> {
        if len > self.remaining() {
            return Err(self.truncated());
        }
        let slice = &self.bytes[self.offset..self.offset + len];
        self.offset += len;
        Ok(slice)
    }

    /// The next `N` bytes, as an array.
    #[inline(always)]
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        match self
            .bytes
            .get(self.offset..)
            .and_then(<[u8]>::first_chunk::<N>)
        {
            Some(chunk) => {
                self.offset += N;
                Ok(*chunk)
            }
            None => Err(self.truncated()),
        }
    }

    /// One byte.
    #[inline(always)]
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        match self.bytes.get(self.offset) {
            Some(&byte) => {
                self.offset += 1;
                Ok(byte)
            }
            None => Err(self.truncated()),
        }
    }

    /// A boolean: one byte, 0 or 1; any other value is an unknown `field` tag.
    #[inline]
    pub fn bool(&mut self, field: &'static str) -> Result<bool, CodecError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(self.unknown_tag(field, tag)),
        }
    }

    /// A little-endian `u16`.
    #[inline(always)]
    pub fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// A little-endian `u32`.
    #[inline(always)]
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian `u64`.
    #[inline(always)]
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// An unsigned varint, refusing forms longer than ten bytes, over 64 bits, or longer
    /// than the shortest, so that every value reads from exactly one encoding.
    #[inline(always)]
    pub fn varint(&mut self) -> Result<u64, CodecError> {
        // The common case: one byte.
        if let Some(&byte) = self.bytes.get(self.offset) {
            if byte < 0x80 {
                self.offset += 1;
                return Ok(u64::from(byte));
            }
        }
        self.varint_long()
    }

    fn varint_long(&mut self) -> Result<u64, CodecError> {
        let bad = CodecError::BadVarint {
            offset: self.offset,
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
    #[inline]
    pub fn varint_i64(&mut self) -> Result<i64, CodecError> {
        let raw = self.varint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A varint count of items that each take at least `min_item_bytes` bytes: refused as
    /// truncated when the bytes that remain could not hold that many, so that the caller
    /// may reserve room for them without trusting the input.
    #[inline(always)]
    pub fn count_varint(&mut self, min_item_bytes: usize) -> Result<usize, CodecError> {
        let count = self.varint()?;
        self.fits(count, min_item_bytes)
    }

    /// A `u32` count, checked like [`Reader::count_varint`].
    #[inline(always)]
    pub fn count_u32(&mut self, min_item_bytes: usize) -> Result<usize, CodecError> {
        let count = self.u32()?;
        self.fits(u64::from(count), min_item_bytes)
    }

    #[inline(always)]
    fn fits(&self, count: u64, min_item_bytes: usize) -> Result<usize, CodecError> {
        usize::try_from(count)
            .ok()
            .filter(|&n| n.saturating_mul(min_item_bytes.max(1)) <= self.remaining())
            .ok_or_else(|| self.truncated())
    }

    /// Bytes behind a `u32` length.
    #[inline(always)]
    pub fn bytes_u32(&mut self) -> Result<&'a [u8], CodecError> {
        let len = self.u32()?;
        self.take(len as usize)
    }

    /// Bytes behind a varint length.
    #[inline(always)]
    pub fn bytes_varint(&mut self) -> Result<&'a [u8], CodecError> {
        let len = self.count_varint(1)?;
        self.take(len)
    }

    /// A UTF-8 string behind a `u16` length, of at most `max_bytes` bytes; a longer one is
    /// refused as [`CodecError::TooLong`] naming `field`.
    pub fn short_str(
        &mut self,
        field: &'static str,
        max_bytes: u16,
    ) -> Result<&'a str, CodecError> {
        let at = self.offset;
        let len = self.u16()?;
        if len > max_bytes {
            return Err(CodecError::TooLong {
                field,
                len: u64::from(len),
                max: u64::from(max_bytes),
                offset: at,
            });
        }
        let start = self.offset;
        let bytes = self.take(usize::from(len))?;
        std::str::from_utf8(bytes).map_err(|_| CodecError::NotUtf8 { offset: start })
    }

    /// A format version byte, refused unless it is one of `supported`, the versions of
    /// `what` this build reads.
    pub fn version(
        &mut self,
        what: &'static str,
        supported: &'static [u16],
    ) -> Result<u8, CodecError> {
        let found = self.u8()?;
        Self::check_version(what, u16::from(found), supported)?;
        Ok(found)
    }

    /// [`Reader::version`] for a little-endian `u16` version.
    pub fn version_u16(
        &mut self,
        what: &'static str,
        supported: &'static [u16],
    ) -> Result<u16, CodecError> {
        let found = self.u16()?;
        Self::check_version(what, found, supported)?;
        Ok(found)
    }

    fn check_version(
        what: &'static str,
        found: u16,
        supported: &'static [u16],
    ) -> Result<(), CodecError> {
        if supported.contains(&found) {
            Ok(())
        } else {
            Err(CodecError::UnsupportedVersion {
                what,
                found,
                supported,
            })
        }
    }

    /// A [`CodecError::UnknownTag`] for `tag`, the byte just read, as `field`.
    #[inline]
    pub fn unknown_tag(&self, field: &'static str, tag: u8) -> CodecError {
        CodecError::UnknownTag {
            field,
            tag,
            offset: self.offset.saturating_sub(1),
        }
    }

    // Out of the way of the reads that succeed.
    #[cold]
    #[inline(never)]
    fn truncated(&self) -> CodecError {
        CodecError::Truncated {
            offset: self.offset,
        }
    }
}
