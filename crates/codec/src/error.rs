//! [`CodecError`]: why bytes do not read as the value they should hold.

/// Why a [`Reader`](crate::Reader) refused its bytes. Every variant that points into the
/// input names the byte offset, counted from the start of the reader's bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The bytes end before the value does, or a length or count claims more than remains.
    #[error("truncated at byte {offset}")]
    Truncated {
        /// Where the missing bytes should have started.
        offset: usize,
    },
    /// A varint is longer than ten bytes, overflows 64 bits, or is not in its shortest form.
    #[error("malformed varint at byte {offset}")]
    BadVarint {
        /// Where the varint starts.
        offset: usize,
    },
    /// A one-byte tag (a message kind, a flag) has no meaning here.
    #[error("unknown {field} tag {tag} at byte {offset}")]
    UnknownTag {
        /// Which tag.
        field: &'static str,
        /// The value found.
        tag: u8,
        /// Where it was found.
        offset: usize,
    },
    /// A format version this build does not read.
    #[error("{what}: unsupported format version {found} (this build reads {supported:?})")]
    UnsupportedVersion {
        /// What was being read.
        what: &'static str,
        /// The version found.
        found: u16,
        /// The versions this build reads.
        supported: &'static [u16],
    },
    /// A length is over the maximum the caller allows.
    #[error("{field} of {len} bytes at byte {offset} exceeds the limit of {max}")]
    TooLong {
        /// What the length is of.
        field: &'static str,
        /// The length read.
        len: u64,
        /// The caller's maximum.
        max: u64,
        /// Where the length starts.
        offset: usize,
    },
    /// A string is not UTF-8.
    #[error("string at byte {offset} is not UTF-8")]
    NotUtf8 {
        /// Where the string's bytes start.
        offset: usize,
    },
    /// Bytes remain after the value.
    #[error("{count} bytes after the end")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}
