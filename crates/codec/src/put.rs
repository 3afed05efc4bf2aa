//! The writing half: free functions that append one field to a `Vec<u8>`, in the forms a
//! [`Reader`](crate::Reader) reads.
//!
//! Lengths are the caller's to bound: a length that does not fit its prefix (over
//! `u32::MAX` bytes behind a `u32`, over `u16::MAX` behind a `u16`) is a bug in the caller,
//! which must refuse such a value where it enters, and panics here rather than write bytes
//! that would read back as something else.

/// Appends one byte.
#[inline]
pub fn u8(out: &mut Vec<u8>, value: u8) {
    out.push(value);
}

/// Appends a boolean as one byte, 0 or 1.
#[inline]
pub fn bool(out: &mut Vec<u8>, value: bool) {
    out.push(u8::from(value));
}

/// Appends a little-endian `u16`.
#[inline]
pub fn u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends a little-endian `u32`.
#[inline]
pub fn u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends a little-endian `u64`.
#[inline]
pub fn u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends an unsigned LEB128 varint, in its shortest form.
#[inline]
pub fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a signed integer as a zigzag varint (0, -1, 1, -2, … → 0, 1, 2, 3, …), so that
/// small negative numbers stay short.
#[inline]
pub fn varint_i64(out: &mut Vec<u8>, value: i64) {
    varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Appends a `u32` count of list items; the items follow, put by the caller.
///
/// # Panics
/// If `count` is over `u32::MAX` (see the [module documentation](self)).
#[inline]
pub fn count_u32(out: &mut Vec<u8>, count: usize) {
    let count = u32::try_from(count).expect("a list of at most u32::MAX items");
    u32(out, count);
}

/// Appends bytes behind a little-endian `u32` length.
///
/// # Panics
/// If there are more than `u32::MAX` bytes (see the [module documentation](self)).
#[inline]
pub fn bytes_u32(out: &mut Vec<u8>, bytes: &[u8]) {
    count_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends bytes behind a varint length.
#[inline]
pub fn bytes_varint(out: &mut Vec<u8>, bytes: &[u8]) {
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a short string (an address, a name) behind a little-endian `u16` length.
///
/// # Panics
/// If the string is longer than `u16::MAX` bytes (see the [module documentation](self)).
#[inline]
pub fn short_str(out: &mut Vec<u8>, text: &str) {
    let len = u16::try_from(text.len()).expect("a short string of at most u16::MAX bytes");
    u16(out, len);
    out.extend_from_slice(text.as_bytes());
}

/// Overwrites the four bytes at `at` with a little-endian `u32`: for a length or checksum
/// known only once what follows it is written.
///
/// # Panics
/// If `out` has fewer than `at + 4` bytes: the caller reserved the field itself.
#[inline]
pub fn u32_at(out: &mut [u8], at: usize, value: u32) {
    out[at..at + 4].copy_from_slice(&value.to_le_bytes());
}
