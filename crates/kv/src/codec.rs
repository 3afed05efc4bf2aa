//! The store's forms on [`skiff_codec`]: the primitives every encoding in this crate is
//! built from, with errors that say what was being decoded.
//!
//! - unsigned integers are LEB128 varints: seven bits per byte, low bits first, the high bit
//!   set on every byte but the last; at most ten bytes, and only the shortest form is accepted,
//!   so each value has exactly one encoding (decode then encode gives the same bytes);
//! - signed integers are zigzag-mapped to unsigned ones first (0, -1, 1, -2, … → 0, 1, 2, 3, …),
//!   so small negative numbers stay short;
//! - byte strings are a varint length followed by the bytes;
//! - tags are single bytes; the snapshot's checksum is a little-endian `u32`.
//!
//! The reading is [`skiff_codec::Reader`]'s, which never trusts a length: it checks it
//! against the bytes that remain before slicing or allocating, so a forged length cannot
//! make it panic or reserve memory that the input could not fill. [`Reader`] here only
//! names what is being decoded ([`Encoded`]) in the [`KvError`] it gives.

use skiff_codec::{put, CodecError};

use crate::error::{Encoded, KvError};

/// Appends a varint.
pub(crate) use skiff_codec::put::varint as put_u64;

/// Appends a zigzag varint.
pub(crate) use skiff_codec::put::varint_i64 as put_i64;

/// Appends a little-endian `u32` (fixed width, for checksums).
pub(crate) use skiff_codec::put::u32 as put_u32_le;

/// Appends a length-prefixed byte string.
#[inline]
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put::bytes_varint(out, bytes);
}

/// A [`skiff_codec::Reader`] that names what it decodes in its errors.
pub(crate) struct Reader<'a> {
    inner: skiff_codec::Reader<'a>,
    what: Encoded,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`, which hold a `what`.
    #[inline]
    pub(crate) fn new(bytes: &'a [u8], what: Encoded) -> Self {
        Reader {
            inner: skiff_codec::Reader::new(bytes),
            what,
        }
    }

    /// The store's error for the codec's `error`.
    #[cold]
    fn error(&self, error: CodecError) -> KvError {
        let what = self.what;
        match error {
            CodecError::Truncated { offset } => KvError::Truncated { what, offset },
            CodecError::BadVarint { offset } => KvError::BadVarint { what, offset },
            CodecError::TrailingBytes { count } => KvError::TrailingBytes { what, count },
            CodecError::UnknownTag { field, tag, offset } => KvError::UnknownTag {
                what,
                field,
                tag,
                offset,
            },
            // The store's versions are one byte, read by `version`.
            CodecError::UnsupportedVersion { found, .. } => KvError::UnsupportedVersion {
                what,
                version: u8::try_from(found).unwrap_or(u8::MAX),
            },
            // The store's forms have no bounded or UTF-8 strings: these reads are not made
            // here, and would be bytes that end before what they claim.
            CodecError::TooLong { offset, .. } | CodecError::NotUtf8 { offset } => {
                KvError::Truncated { what, offset }
            }
        }
    }

    #[inline]
    fn check<T>(&self, read: Result<T, CodecError>) -> Result<T, KvError> {
        read.map_err(|error| self.error(error))
    }

    /// How many bytes have not been read.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.inner.remaining()
    }

    /// Fails unless every byte has been read.
    #[inline]
    pub(crate) fn finish(&self) -> Result<(), KvError> {
        self.check(self.inner.finish())
    }

    /// An [`KvError::UnknownTag`] for `tag`, read just before the current offset.
    pub(crate) fn unknown_tag(&self, field: &'static str, tag: u8) -> KvError {
        self.error(self.inner.unknown_tag(field, tag))
    }

    /// The next `len` bytes.
    #[inline]
    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], KvError> {
        let read = self.inner.take(len);
        self.check(read)
    }

    /// A format version byte, refused as [`KvError::UnsupportedVersion`] unless it is one of
    /// `supported`: the check every format on skiff-codec makes.
    #[inline]
    pub(crate) fn version(&mut self, supported: &'static [u16]) -> Result<u8, KvError> {
        let read = self.inner.version(format_name(self.what), supported);
        self.check(read)
    }

    /// One byte.
    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, KvError> {
        let read = self.inner.u8();
        self.check(read)
    }

    /// A little-endian `u32` (fixed width, for checksums).
    #[inline]
    pub(crate) fn u32_le(&mut self) -> Result<u32, KvError> {
        let read = self.inner.u32();
        self.check(read)
    }

    /// A varint, refusing overlong and over-wide forms.
    #[inline]
    pub(crate) fn u64(&mut self) -> Result<u64, KvError> {
        let read = self.inner.varint();
        self.check(read)
    }

    /// A zigzag varint.
    #[inline]
    pub(crate) fn i64(&mut self) -> Result<i64, KvError> {
        let read = self.inner.varint_i64();
        self.check(read)
    }

    /// A count of items that each take at least `min_item_bytes` bytes: refused as truncated
    /// when the remaining bytes could not hold that many, so callers may reserve capacity for
    /// it without trusting the input.
    #[inline]
    pub(crate) fn count(&mut self, min_item_bytes: usize) -> Result<usize, KvError> {
        let read = self.inner.count_varint(min_item_bytes);
        self.check(read)
    }

    /// A length-prefixed byte string.
    #[inline]
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, KvError> {
        self.bytes_in_place().map(<[u8]>::to_vec)
    }

    /// A length-prefixed byte string, borrowed from the input.
    #[inline]
    pub(crate) fn bytes_in_place(&mut self) -> Result<&'a [u8], KvError> {
        let read = self.inner.bytes_varint();
        self.check(read)
    }
}

/// What the codec's own error calls `what`.
fn format_name(what: Encoded) -> &'static str {
    match what {
        Encoded::Command => "kv command",
        Encoded::Snapshot => "kv snapshot",
        Encoded::Request => "kv request",
        Encoded::Reply => "kv reply",
    }
}
