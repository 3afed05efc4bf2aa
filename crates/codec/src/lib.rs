//! Skiff's one binary codec: every byte Skiff writes to disk or sends to a peer is put by
//! [`put`]'s functions and read back by a [`Reader`].
//!
//! Take `skiff-codec` to read or write Skiff's binary forms;
//! `skiff-raft`'s first page says which Skiff crate to take for which job.
//!
//! - **One byte order**: fixed-width integers are little-endian (the WAL's order, so its
//!   files did not change when it moved onto this crate).
//! - **Varints** for compact forms (the key-value store's commands and snapshots): LEB128,
//!   seven bits a byte, low bits first, at most ten bytes, and only the shortest form is
//!   read, so every value has exactly one encoding; signed integers are zigzag-mapped first.
//! - **Length-prefixed bytes** with a `u32` or a varint length, and **short strings** with a
//!   `u16` length, each read against a maximum the caller gives.
//! - **Format versions are explicit**: [`Reader::version`] reads a version byte and refuses
//!   one the caller does not list, naming what was read and which versions are supported.
//!
//! Every byte read is hostile: each read is bounds-checked, each length and count is checked
//! against the bytes that remain before anything is sliced or allocated, so malformed input
//! gives a [`CodecError`] — never a panic, and never an allocation the input cannot justify.
//! The codec knows no framing or checksums: those belong to the formats built on it.
//!
//! # Layout
//! - [`put`]: the writing half, free functions appending to a `Vec<u8>`.
//! - [`reader`]: [`Reader`], the reading half.
//! - [`error`]: [`CodecError`], why bytes were refused.
#![deny(missing_docs)]

pub mod error;
pub mod put;
pub mod reader;

pub use error::CodecError;
pub use reader::Reader;

/// The most bytes a varint takes (a `u64` in groups of seven bits).
pub const MAX_VARINT_BYTES: usize = 10;
