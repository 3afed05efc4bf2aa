//! The on-disk record format: a checksummed frame around one of four record types.
//!
//! ```text
//! frame   = len: u32 LE | crc: u32 LE | type: u8 | payload
//!           len counts type + payload; crc is CRC-32C (Castagnoli) of type + payload;
//!           in a recycled segment, after its header, len is stored XOR the mask's high
//!           32 bits and crc XOR its low 32 bits
//! type    = kind (low 7 bits) | 0x80 if the record ends a write batch
//! payload (all integers little-endian):
//!   1 segment header = magic "SKIFFWAL" | version: u16 | cluster id: u64 | first index: u64
//!                      | log start index: u64 | log start term: u64 | hard state
//!                      | (versions 2 and 3) life: u32, nonzero | mask: u64, low half nonzero
//!                      | max segment bytes: u64
//!   2 entry          = term: u64 | index: u64 | kind: u8 (0 normal, 1 no-op)
//!                      | data length: u32 | data
//!   3 hard state     = term: u64 | has vote: u8 (0 or 1) | vote: u64 (0 without one)
//!                      | commit: u64
//!   4 log start      = index: u64 | term: u64 | keeps later entries: u8 (0 or 1)
//! ```
//!
//! Every payload has a length fixed by its fields (the entry carries its data length), so a
//! changed `len` is caught even in the rare case that the checksum still matches; a change
//! anywhere in `type` or the payload is caught by CRC-32C, which detects every error burst of
//! up to 32 bits. Decoding never panics: garbage yields a [`RecordError`].
//!
//! A recycled segment (a compacted file written over again, see [`crate::wal`]) still holds
//! the records of its earlier lives after its own. Its header (version 2 or 3) counts the file's
//! lives and carries the life's 64-bit mask, and every later record's length and checksum are
//! stored XOR the mask. The masks of one file are [`life_mask`] of its lives under one random
//! secret, and their low halves differ from life to life: a record of an earlier life never
//! verifies as one of this life. Its length, read under another mask, is noise, so it is not
//! even checksummed when recovery looks for records after damage ([`any_record_after`]). A
//! value a client wrote that carries frames built to look like records cannot pass for one
//! either: it would have to guess 64 bits of a mask drawn from the caller's randomness.
//!
//! In a recycled segment of version 3, every write batch (the header's too) is followed, in
//! the same write, by its life's 8-byte seal ([`batch_seal`]); the next batch goes after it.
//! A torn write never carries its seal, and an earlier life's seals differ, so recovery can
//! tell a torn final write (no seal of this life after where the records stop verifying)
//! from a flipped bit in the records of one that completed (its seal after it). Damage that
//! runs on through the final batch's seal leaves no seal to show that, and is cut like a torn
//! write (a new file's zeros show it).

use skiff_codec::{put, CodecError, Reader};
use skiff_raft::{Entry, EntryKind, HardState, LogIndex, NodeId, Term};

/// Bytes before the record type: `len` and `crc`.
pub const FRAME_HEADER_BYTES: usize = 8;

/// The largest `len` (type + payload) a record may have; a larger one is impossible and read
/// as corruption.
pub const MAX_RECORD_BYTES: u32 = 64 * 1024 * 1024;

/// The first bytes of every segment header payload.
pub const MAGIC: [u8; 8] = *b"SKIFFWAL";

/// The format version of a segment header written into a new file, without a mask.
pub const VERSION: u16 = 1;

/// The format version of a recycled segment's header, which carries the segment's mask.
pub const VERSION_MASKED: u16 = 2;

/// The format version of a recycled segment's header whose batches are each followed by
/// their seal ([`batch_seal`]); the fields are those of version 2.
pub const VERSION_SEALED: u16 = 3;

/// The length of a batch's seal.
pub const SEAL_BYTES: usize = 8;

/// The bytes an entry record takes besides its data: frame header, type, and the fixed fields.
pub const ENTRY_RECORD_OVERHEAD_BYTES: u64 = FRAME_HEADER_BYTES as u64 + 1 + ENTRY_FIXED_BYTES;

const ENDS_BATCH: u8 = 0x80;
const TYPE_SEGMENT_HEADER: u8 = 1;
const TYPE_ENTRY: u8 = 2;
const TYPE_HARD_STATE: u8 = 3;
const TYPE_LOG_START: u8 = 4;
const ENTRY_FIXED_BYTES: u64 = 8 + 8 + 1 + 4;
const HARD_STATE_PAYLOAD_BYTES: u64 = 8 + 1 + 8 + 8;
/// The bytes a hard state record takes.
pub const HARD_STATE_RECORD_BYTES: u64 = FRAME_HEADER_BYTES as u64 + 1 + HARD_STATE_PAYLOAD_BYTES;
const LOG_START_PAYLOAD_BYTES: u64 = 8 + 8 + 1;
const SEGMENT_HEADER_PAYLOAD_BYTES: u64 = 8 + 2 + 8 + 8 + 8 + 8 + HARD_STATE_PAYLOAD_BYTES;

/// The first record of every segment file.
///
/// Besides identifying the file, it repeats the log's start and hard state as they were when
/// the segment was created, so that recovery can begin at any segment after older ones were
/// deleted by compaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The cluster this log belongs to; a log of another cluster is refused.
    pub cluster_id: u64,
    /// The index the next entry had when the segment was created (also in the file name).
    pub first_index: LogIndex,
    /// The log's start when the segment was created: entries up to here were compacted.
    pub log_start: LogStart,
    /// The durable hard state when the segment was created.
    pub hard_state: HardState,
    /// How many times the file was recycled: 0 in a file written new (version 1).
    pub life: u32,
    /// What the length (high half) and checksum (low half) of every later record in the file
    /// are XORed with: 0 in a file written new; in a recycled one, a low half that is not 0.
    pub mask: u64,
    /// The size at which the log moved on from this segment when it was written: a recycled
    /// segment that is not the last must end there or later (0 in a file written new).
    pub max_segment_bytes: u64,
    /// Whether every batch of this life is followed by its seal (a recycled segment of
    /// version 3; false in a file written new).
    pub sealed: bool,
}

/// The odd multiplier that spreads a file's lives over its masks.
const LIFE_STEP: u64 = 0x9e37_79b9_7f4a_7c15;

/// The mask of a file's life `life` when its masks derive from `secret`. Multiplying by an
/// odd number permutes the integers modulo 2^32 as well as 2^64, so the low halves of the
/// masks of distinct lives of one file differ.
pub fn life_mask(secret: u64, life: u32) -> u64 {
    u64::from(life).wrapping_mul(LIFE_STEP) ^ secret
}

/// The secret a recycled file's masks derive from, read back from one life and its mask.
pub fn mask_secret(life: u32, mask: u64) -> u64 {
    u64::from(life).wrapping_mul(LIFE_STEP) ^ mask
}

/// The 8 bytes that follow each write batch of a sealed segment whose mask is `mask`. A
/// bijection of the mask: the lives of one file never share a seal, and nobody who does not
/// know the mask can write it.
pub fn batch_seal(mask: u64) -> [u8; SEAL_BYTES] {
    ((mask ^ SEAL_SALT).wrapping_mul(LIFE_STEP)).to_le_bytes()
}

/// What a mask is XORed with before it becomes a seal ("SEALSEAL"), so that a seal is not a
/// record's masked frame header of length and checksum 0.
const SEAL_SALT: u64 = u64::from_le_bytes(*b"SEALSEAL");

/// What a record's stored length is XORed with under `mask`.
fn len_mask(mask: u64) -> u32 {
    (mask >> 32) as u32
}

/// What a record's stored checksum is XORed with under `mask`: 0 only for a file written new.
pub fn crc_mask(mask: u64) -> u32 {
    mask as u32
}

/// Where the log begins: entries up to and including `index` are covered by a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStart {
    /// The last index covered by the snapshot.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
}

/// One decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// The first record of a segment.
    SegmentHeader(SegmentHeader),
    /// A log entry. A later entry record at index `i` supersedes every earlier one at `i` or
    /// after (a replaced suffix).
    Entry(Entry),
    /// The hard state; the latest one wins.
    HardState(HardState),
    /// The log was compacted up to `start`.
    LogStart {
        /// The new start of the log.
        start: LogStart,
        /// Whether the entries after `start.index` are kept (the log held `start.index` with
        /// `start.term`) or dropped (the snapshot replaced the whole log, Raft §7).
        keeps_later_entries: bool,
    },
}

impl Record {
    fn name(type_byte: u8) -> &'static str {
        match type_byte {
            TYPE_SEGMENT_HEADER => "segment header",
            TYPE_ENTRY => "entry",
            TYPE_HARD_STATE => "hard state",
            TYPE_LOG_START => "log start",
            _ => "unknown",
        }
    }
}

/// A record read back from bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The record.
    pub record: Record,
    /// Whether the writer marked it as the last record of a write batch.
    pub ends_batch: bool,
    /// The bytes the whole frame took.
    pub frame_bytes: usize,
}

/// Why bytes are not a valid record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes end before the frame does (a torn write, if at the end of a log).
    #[error("frame cut short: {needed_bytes} bytes needed, {available_bytes} available")]
    Truncated {
        /// How many bytes the frame needs.
        needed_bytes: u64,
        /// How many there are.
        available_bytes: u64,
    },
    /// The length field is 0 or above [`MAX_RECORD_BYTES`].
    #[error("impossible record length {len}")]
    BadLength {
        /// The length read.
        len: u32,
    },
    /// The checksum does not match the bytes.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadChecksum {
        /// The checksum in the frame.
        stored: u32,
        /// The checksum of the bytes.
        computed: u32,
    },
    /// The type byte names no known record.
    #[error("unknown record type {type_byte:#04x}")]
    UnknownType {
        /// The type byte, without the batch flag.
        type_byte: u8,
    },
    /// The payload's fields do not read (cut short, an unknown tag, an unsupported
    /// version, bytes after the last field).
    #[error("malformed {record} record: {source}")]
    Payload {
        /// The record type.
        record: &'static str,
        /// What the codec refused.
        source: CodecError,
    },
    /// The payload reads but does not fit its type.
    #[error("malformed {record} record: {reason}")]
    Malformed {
        /// The record type.
        record: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A record to write is larger than [`MAX_RECORD_BYTES`].
    #[error("record of {len_bytes} bytes exceeds the limit of {MAX_RECORD_BYTES} bytes")]
    TooLarge {
        /// The record's type + payload length.
        len_bytes: u64,
    },
}

/// Appends the frame of `record` to `out` and returns its length in bytes.
/// On error `out` is left as it was.
pub fn encode(record: &Record, ends_batch: bool, out: &mut Vec<u8>) -> Result<usize, RecordError> {
    match record {
        Record::SegmentHeader(header) => frame(TYPE_SEGMENT_HEADER, ends_batch, out, |out| {
            out.extend_from_slice(&MAGIC);
            let masked = header.life != 0;
            put::u16(
                out,
                match (masked, header.sealed) {
                    (false, _) => VERSION,
                    (true, false) => VERSION_MASKED,
                    (true, true) => VERSION_SEALED,
                },
            );
            put::u64(out, header.cluster_id);
            put::u64(out, header.first_index.0);
            put::u64(out, header.log_start.index.0);
            put::u64(out, header.log_start.term.0);
            put_hard_state(out, &header.hard_state);
            if masked {
                put::u32(out, header.life);
                put::u64(out, header.mask);
                put::u64(out, header.max_segment_bytes);
            }
        }),
        Record::Entry(entry) => encode_entry(entry, ends_batch, out),
        Record::HardState(hard_state) => frame(TYPE_HARD_STATE, ends_batch, out, |out| {
            put_hard_state(out, hard_state);
        }),
        Record::LogStart {
            start,
            keeps_later_entries,
        } => frame(TYPE_LOG_START, ends_batch, out, |out| {
            put::u64(out, start.index.0);
            put::u64(out, start.term.0);
            put::bool(out, *keeps_later_entries);
        }),
    }
}

/// Like [`encode`] for an entry record, without copying the entry into a [`Record`].
pub fn encode_entry(
    entry: &Entry,
    ends_batch: bool,
    out: &mut Vec<u8>,
) -> Result<usize, RecordError> {
    if entry.data.len() as u64 > u64::from(MAX_RECORD_BYTES) {
        return Err(RecordError::TooLarge {
            len_bytes: entry.data.len() as u64,
        });
    }
    out.reserve(ENTRY_RECORD_OVERHEAD_BYTES as usize + entry.data.len());
    frame(TYPE_ENTRY, ends_batch, out, |out| {
        put::u64(out, entry.term.0);
        put::u64(out, entry.index.0);
        put::u8(
            out,
            match entry.kind {
                EntryKind::Normal => 0,
                EntryKind::Noop => 1,
                EntryKind::ConfChange => 2,
            },
        );
        put::bytes_u32(out, &entry.data);
    })
}

/// Writes a frame whose payload `put_payload` appends, then fills in its length and checksum.
fn frame(
    type_byte: u8,
    ends_batch: bool,
    out: &mut Vec<u8>,
    put_payload: impl FnOnce(&mut Vec<u8>),
) -> Result<usize, RecordError> {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    put::u8(out, type_byte | if ends_batch { ENDS_BATCH } else { 0 });
    put_payload(out);
    let body = &out[start + FRAME_HEADER_BYTES..];
    let len = match u32::try_from(body.len()) {
        Ok(len) if len <= MAX_RECORD_BYTES => len,
        _ => {
            let len_bytes = body.len() as u64;
            out.truncate(start);
            return Err(RecordError::TooLarge { len_bytes });
        }
    };
    let crc = crc32c::crc32c(body);
    put::u32_at(out, start, len);
    put::u32_at(out, start + 4, crc);
    Ok(out.len() - start)
}

/// Masks the length and checksum of every frame in `frames` (whole frames, as [`encode`] wrote
/// them) with `mask`: they are then records of the segment whose header carries `mask`.
pub fn mask_frames(frames: &mut [u8], mask: u64) {
    if mask == 0 {
        return;
    }
    let mut at = 0;
    while let (Some(len), Some(crc)) = (u32_at(frames, at), u32_at(frames, at + 4)) {
        frames[at..at + 4].copy_from_slice(&(len ^ len_mask(mask)).to_le_bytes());
        frames[at + 4..at + FRAME_HEADER_BYTES]
            .copy_from_slice(&(crc ^ crc_mask(mask)).to_le_bytes());
        at += FRAME_HEADER_BYTES + len as usize;
    }
}

/// Decodes the record at the start of `bytes` (which may hold more after it), a record of a
/// segment whose header carries `mask` (0 for the header itself).
pub fn decode(bytes: &[u8], mask: u64) -> Result<Decoded, RecordError> {
    decode_record(bytes, mask, true)
}

/// [`decode`], checking everything but leaving an entry's `data` empty: recovery needs only
/// where each entry is, and copying a whole log's data out would double its reading time.
pub fn decode_without_data(bytes: &[u8], mask: u64) -> Result<Decoded, RecordError> {
    decode_record(bytes, mask, false)
}

/// The records at the start of a segment file's `bytes`, each with its offset, up to the
/// first that does not decode: the header, then records under the header's mask. (Recovery
/// checks more; this is for tools and tests that look into a segment.)
pub fn segment_records(bytes: &[u8]) -> impl Iterator<Item = (usize, Decoded)> + '_ {
    let (mut at, mut mask) = (0, 0);
    // The seal that follows each batch, in a sealed segment.
    let mut seal = None;
    std::iter::from_fn(move || {
        let decoded = decode(bytes.get(at..)?, mask).ok()?;
        if let (0, Record::SegmentHeader(header)) = (at, &decoded.record) {
            mask = header.mask;
            seal = header.sealed.then(|| batch_seal(mask));
        }
        let offset = at;
        at += decoded.frame_bytes;
        if let Some(seal) = seal.filter(|seal| decoded.ends_batch && bytes[at..].starts_with(seal))
        {
            at += seal.len();
        }
        Some((offset, decoded))
    })
}

/// Whether a record of the segment whose mask is `mask` starts anywhere in `bytes` after
/// `after`: a frame whose length, read under `mask`, fits its type and whose checksum
/// verifies under `mask` (what its payload says is not read). In a recycled segment the bytes
/// past its last record are an earlier life's, whose checksums never verify under this mask;
/// a record that does verify there was written in this life, after damage that hides it.
///
/// Every offset is tried, and only a frame whose length fits its type is checksummed. Under a
/// recycled segment's mask, the length of anything but this life's records reads as noise
/// and fits with a chance of about one in 2^32, so the cost is one pass over the bytes
/// (unmasked, a frame's length can fit at many offsets of crafted bytes: recovery looks
/// there only within one frame of a torn write).
pub fn any_record_after(bytes: &[u8], after: usize, mask: u64) -> bool {
    let data_len_at = FRAME_HEADER_BYTES + 1 + (ENTRY_FIXED_BYTES - 4) as usize;
    // The type byte first: it rules out all but a few offsets in a hundred at one load.
    let type_bytes = bytes
        .get(after + 1 + FRAME_HEADER_BYTES..)
        .unwrap_or_default();
    type_bytes.iter().enumerate().any(|(k, &type_byte)| {
        let fixed_len = match type_byte & !ENDS_BATCH {
            TYPE_ENTRY => None,
            TYPE_HARD_STATE => Some(1 + HARD_STATE_PAYLOAD_BYTES),
            TYPE_LOG_START => Some(1 + LOG_START_PAYLOAD_BYTES),
            _ => return false,
        };
        let frame = &bytes[after + 1 + k..];
        let Some(len) = u32_at(frame, 0).map(|len| len ^ len_mask(mask)) else {
            return false;
        };
        let fits = match fixed_len {
            Some(fixed) => u64::from(len) == fixed,
            None => u32_at(frame, data_len_at).is_some_and(|data_len| {
                u64::from(len) == 1 + ENTRY_FIXED_BYTES + u64::from(data_len)
            }),
        };
        fits && frame
            .get(FRAME_HEADER_BYTES..)
            .and_then(|rest| rest.get(..usize::try_from(len).ok()?))
            .is_some_and(|body| u32_at(frame, 4) == Some(crc32c::crc32c(body) ^ crc_mask(mask)))
    })
}

/// The little-endian `u32` at `at` in `bytes`, if they reach that far.
fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([field[0], field[1], field[2], field[3]]))
}

fn decode_record(bytes: &[u8], mask: u64, with_data: bool) -> Result<Decoded, RecordError> {
    let mut frame = Reader::new(bytes);
    let (Ok(len), Ok(stored)) = (frame.u32(), frame.u32()) else {
        return Err(RecordError::Truncated {
            needed_bytes: FRAME_HEADER_BYTES as u64,
            available_bytes: bytes.len() as u64,
        });
    };
    let len = len ^ len_mask(mask);
    if len == 0 || len > MAX_RECORD_BYTES {
        return Err(RecordError::BadLength { len });
    }
    let frame_bytes = FRAME_HEADER_BYTES + len as usize;
    let body = frame
        .take(len as usize)
        .map_err(|_| RecordError::Truncated {
            needed_bytes: frame_bytes as u64,
            available_bytes: bytes.len() as u64,
        })?;
    let computed = crc32c::crc32c(body) ^ crc_mask(mask);
    if computed != stored {
        return Err(RecordError::BadChecksum { stored, computed });
    }
    let mut reader = Reader::new(body);
    let type_byte = reader.u8().map_err(|_| RecordError::BadLength { len })?;
    let ends_batch = type_byte & ENDS_BATCH != 0;
    let type_byte = type_byte & !ENDS_BATCH;
    let record = read_payload(&mut reader, type_byte, with_data)
        .and_then(|record| {
            reader.finish()?;
            Ok(record)
        })
        .map_err(|error| match error {
            PayloadError::Codec(source) => RecordError::Payload {
                record: Record::name(type_byte),
                source,
            },
            PayloadError::Malformed(reason) => RecordError::Malformed {
                record: Record::name(type_byte),
                reason,
            },
            PayloadError::UnknownType => RecordError::UnknownType { type_byte },
        })?;
    Ok(Decoded {
        record,
        ends_batch,
        frame_bytes,
    })
}

/// Why a payload does not read as its type, before the record type is named.
enum PayloadError {
    Codec(CodecError),
    Malformed(&'static str),
    UnknownType,
}

impl From<CodecError> for PayloadError {
    fn from(error: CodecError) -> PayloadError {
        PayloadError::Codec(error)
    }
}

/// The record of `type_byte` whose payload `r` holds (after the type byte).
fn read_payload(
    r: &mut Reader<'_>,
    type_byte: u8,
    with_data: bool,
) -> Result<Record, PayloadError> {
    Ok(match type_byte {
        TYPE_SEGMENT_HEADER => {
            if r.take(MAGIC.len())? != MAGIC {
                return Err(PayloadError::Malformed("bad magic"));
            }
            let version = r.version_u16("segment", &[VERSION, VERSION_MASKED, VERSION_SEALED])?;
            let mut header = SegmentHeader {
                cluster_id: r.u64()?,
                first_index: LogIndex(r.u64()?),
                log_start: LogStart {
                    index: LogIndex(r.u64()?),
                    term: Term(r.u64()?),
                },
                hard_state: read_hard_state(r)?,
                life: 0,
                mask: 0,
                max_segment_bytes: 0,
                sealed: version == VERSION_SEALED,
            };
            if version != VERSION {
                header.life = r.u32()?;
                header.mask = r.u64()?;
                header.max_segment_bytes = r.u64()?;
                if header.life == 0 || crc_mask(header.mask) == 0 {
                    return Err(PayloadError::Malformed(
                        "a recycled segment's life or mask of 0",
                    ));
                }
            }
            Record::SegmentHeader(header)
        }
        TYPE_ENTRY => {
            let term = Term(r.u64()?);
            let index = LogIndex(r.u64()?);
            let kind = match r.u8()? {
                0 => EntryKind::Normal,
                1 => EntryKind::Noop,
                2 => EntryKind::ConfChange,
                tag => return Err(r.unknown_tag("entry kind", tag).into()),
            };
            let data = r.bytes_u32()?;
            let data = if with_data { data.to_vec() } else { Vec::new() };
            Record::Entry(Entry {
                term,
                index,
                kind,
                data: data.into(),
            })
        }
        TYPE_HARD_STATE => Record::HardState(read_hard_state(r)?),
        TYPE_LOG_START => Record::LogStart {
            start: LogStart {
                index: LogIndex(r.u64()?),
                term: Term(r.u64()?),
            },
            keeps_later_entries: r.bool("keeps later entries")?,
        },
        _ => return Err(PayloadError::UnknownType),
    })
}

/// Whether `bytes`, which begin where a record failed to decode, can be what a crash leaves of
/// a final write: a prefix of one record's frame followed only by zeros (the zeros written
/// ahead of the batches, or the end of the file). `first_in_segment`: the frame would be the
/// segment's header. On `Err`, why the bytes are damage and not a torn write.
///
/// A crash keeps some prefix of the bytes written since the last sync (thesis §3.8 and
/// `MemDisk`'s model); everything after the cut reads as it was before the write: zeros.
/// So the non-zero bytes must lie within one frame whose length is possible, whose type is
/// one that can stand there, whose length fits that type, and which is not complete (a
/// complete frame would have decoded).
pub fn check_torn_prefix(bytes: &[u8], first_in_segment: bool) -> Result<(), &'static str> {
    let written = bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    if written == 0 {
        return Ok(());
    }
    let mut len_field = [0; 4];
    let known = bytes.len().min(4);
    len_field[..known].copy_from_slice(&bytes[..known]);
    // A prefix shorter than the length field reads its missing high bytes as zeros, which
    // only makes the length smaller: a zero or impossible length is never a prefix.
    let len = Reader::new(&len_field).u32().unwrap_or(0);
    if len == 0 {
        return Err("non-zero bytes follow a zero record length");
    }
    if len > MAX_RECORD_BYTES {
        return Err("the record length is impossible");
    }
    let frame_bytes = FRAME_HEADER_BYTES + len as usize;
    if written > frame_bytes {
        return Err("non-zero bytes follow the end of the record");
    }
    if written == frame_bytes {
        return Err("the whole record is there but does not decode");
    }
    if written <= FRAME_HEADER_BYTES {
        return Ok(());
    }
    // The type byte was written, and so was the whole length field before it.
    let kind = bytes[FRAME_HEADER_BYTES] & !ENDS_BATCH;
    let payload_len = u64::from(len) - 1;
    let payload = &bytes[FRAME_HEADER_BYTES + 1..written];
    match (kind, first_in_segment) {
        (TYPE_SEGMENT_HEADER, true) => {
            if payload_len != SEGMENT_HEADER_PAYLOAD_BYTES
                && payload_len != SEGMENT_HEADER_PAYLOAD_BYTES + 20
            {
                return Err("a segment header of the wrong length");
            }
            let known = payload.len().min(MAGIC.len());
            if payload[..known] != MAGIC[..known] {
                return Err("a segment header without the magic");
            }
        }
        (TYPE_SEGMENT_HEADER, false) => return Err("a segment header after the start"),
        (_, true) => return Err("the segment does not start with a segment header"),
        (TYPE_ENTRY, false) => {
            if payload_len < ENTRY_FIXED_BYTES {
                return Err("an entry record too short for its fields");
            }
            // The data length is the last fixed field: once written, it fixes the length.
            let data_len_at = (ENTRY_FIXED_BYTES - 4) as usize;
            let mut fields = Reader::new(payload.get(data_len_at..).unwrap_or_default());
            if let Ok(data_len) = fields.u32() {
                if payload_len != ENTRY_FIXED_BYTES + u64::from(data_len) {
                    return Err("an entry record whose length disagrees with its data length");
                }
            }
        }
        (TYPE_HARD_STATE, false) if payload_len != HARD_STATE_PAYLOAD_BYTES => {
            return Err("a hard state record of the wrong length")
        }
        (TYPE_LOG_START, false) if payload_len != LOG_START_PAYLOAD_BYTES => {
            return Err("a log start record of the wrong length")
        }
        (TYPE_HARD_STATE | TYPE_LOG_START, false) => {}
        _ => return Err("an unknown record type"),
    }
    Ok(())
}

/// Encodes a fixed-size record, which is always far below the record size limit.
pub(crate) fn encode_small(record: &Record, out: &mut Vec<u8>) {
    if let Err(error) = encode(record, true, out) {
        unreachable!("a fixed-size record cannot be too large: {error}");
    }
}

/// The frame length of an entry record carrying `data_len` bytes of data.
pub fn entry_record_bytes(data_len: usize) -> u64 {
    ENTRY_RECORD_OVERHEAD_BYTES + data_len as u64
}

fn put_hard_state(out: &mut Vec<u8>, hard_state: &HardState) {
    put::u64(out, hard_state.term.0);
    match hard_state.vote {
        Some(NodeId(vote)) => {
            put::bool(out, true);
            put::u64(out, vote);
        }
        None => {
            put::bool(out, false);
            put::u64(out, 0);
        }
    }
    put::u64(out, hard_state.commit.0);
}

fn read_hard_state(r: &mut Reader<'_>) -> Result<HardState, PayloadError> {
    let term = Term(r.u64()?);
    let has_vote = r.bool("has vote")?;
    let vote = match (has_vote, r.u64()?) {
        (true, vote) => Some(NodeId(vote)),
        (false, 0) => None,
        (false, _) => return Err(PayloadError::Malformed("a vote without its flag")),
    };
    let commit = LogIndex(r.u64()?);
    Ok(HardState { term, vote, commit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn arb_hard_state() -> impl Strategy<Value = HardState> {
        (any::<u64>(), any::<Option<u64>>(), any::<u64>()).prop_map(|(term, vote, commit)| {
            HardState {
                term: Term(term),
                vote: vote.map(NodeId),
                commit: LogIndex(commit),
            }
        })
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        prop_oneof![
            (
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                arb_hard_state(),
                prop_oneof![
                    Just((0, 0, 0, false)),
                    (
                        1..=u32::MAX,
                        any::<u64>().prop_filter("a checksum mask", |m| *m as u32 != 0),
                        any::<u64>(),
                        any::<bool>()
                    )
                ],
            )
                .prop_map(
                    |(
                        cluster_id,
                        first,
                        start_index,
                        start_term,
                        hard_state,
                        (life, mask, max_segment_bytes, sealed),
                    )| {
                        Record::SegmentHeader(SegmentHeader {
                            cluster_id,
                            first_index: LogIndex(first),
                            log_start: LogStart {
                                index: LogIndex(start_index),
                                term: Term(start_term),
                            },
                            hard_state,
                            life,
                            mask,
                            max_segment_bytes,
                            sealed,
                        })
                    }
                ),
            (
                any::<u64>(),
                any::<u64>(),
                any::<bool>(),
                proptest::collection::vec(any::<u8>(), 0..64)
            )
                .prop_map(|(term, index, noop, data)| Record::Entry(Entry {
                    term: Term(term),
                    index: LogIndex(index),
                    kind: if noop {
                        EntryKind::Noop
                    } else {
                        EntryKind::Normal
                    },
                    data: data.into(),
                })),
            arb_hard_state().prop_map(Record::HardState),
            (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(index, term, keeps)| {
                Record::LogStart {
                    start: LogStart {
                        index: LogIndex(index),
                        term: Term(term),
                    },
                    keeps_later_entries: keeps,
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_decode_gives_the_record_back(record in arb_record(), ends_batch in any::<bool>()) {
            let mut bytes = Vec::new();
            let written = encode(&record, ends_batch, &mut bytes).unwrap();
            prop_assert_eq!(written, bytes.len());
            // Trailing bytes belong to the next record and are not read.
            bytes.extend_from_slice(b"next");
            let decoded = decode(&bytes, 0).unwrap();
            prop_assert_eq!(&decoded, &Decoded { record: record.clone(), ends_batch, frame_bytes: written });
            // Recovery's decoding checks the same and keeps all but an entry's data.
            let mut without_data = record;
            if let Record::Entry(entry) = &mut without_data {
                entry.data = Bytes::new();
            }
            prop_assert_eq!(
                decode_without_data(&bytes, 0).unwrap(),
                Decoded { record: without_data, ends_batch, frame_bytes: written }
            );
        }

        #[test]
        fn any_single_byte_corruption_is_detected(
            record in arb_record(),
            ends_batch in any::<bool>(),
            position in any::<prop::sample::Index>(),
            xor in 1..=255u8,
        ) {
            let mut bytes = Vec::new();
            encode(&record, ends_batch, &mut bytes).unwrap();
            let at = position.index(bytes.len());
            bytes[at] ^= xor;
            prop_assert!(decode(&bytes, 0).is_err(), "corruption at byte {} with {:#04x} went unnoticed", at, xor);
            prop_assert!(decode_without_data(&bytes, 0).is_err(), "recovery missed corruption at byte {}", at);
        }

        #[test]
        fn any_truncation_is_detected(record in arb_record(), position in any::<prop::sample::Index>()) {
            let mut bytes = Vec::new();
            encode(&record, true, &mut bytes).unwrap();
            let cut = position.index(bytes.len());
            let is_truncated = matches!(decode(&bytes[..cut], 0), Err(RecordError::Truncated { .. }));
            prop_assert!(is_truncated);
        }

        #[test]
        fn every_prefix_of_a_record_followed_by_zeros_could_be_a_torn_write(
            record in arb_record(),
            ends_batch in any::<bool>(),
            cut in any::<prop::sample::Index>(),
            zeros in 0..64usize,
        ) {
            let mut bytes = Vec::new();
            encode(&record, ends_batch, &mut bytes).unwrap();
            let first_in_segment = matches!(record, Record::SegmentHeader(_));
            let cut = cut.index(bytes.len());
            bytes.truncate(cut);
            bytes.resize(cut + zeros, 0);
            prop_assert_eq!(check_torn_prefix(&bytes, first_in_segment), Ok(()));
        }

        #[test]
        fn random_bytes_are_damage_not_a_torn_write(
            bytes in proptest::collection::vec(any::<u8>(), 64..512),
            first_in_segment in any::<bool>(),
        ) {
            // (A run of random bytes that ends in a zero could be shorter than a frame; the
            // last byte is made non-zero so that the bytes fill the region they claim.)
            let mut bytes = bytes;
            *bytes.last_mut().unwrap() |= 1;
            prop_assert!(check_torn_prefix(&bytes, first_in_segment).is_err());
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, 0);
        }

        #[test]
        fn decoding_garbage_behind_a_valid_frame_header_never_panics(
            type_byte in any::<u8>(),
            payload in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            // A correct length and checksum reach the payload parser with arbitrary bytes.
            let mut body = vec![type_byte];
            body.extend_from_slice(&payload);
            let mut bytes = Vec::new();
            put::u32(&mut bytes, body.len() as u32);
            put::u32(&mut bytes, crc32c::crc32c(&body));
            bytes.extend_from_slice(&body);
            let _ = decode(&bytes, 0);
        }
    }

    proptest! {
        #[test]
        fn a_masked_record_verifies_under_its_own_mask_only(
            record in arb_record(),
            ends_batch in any::<bool>(),
            mask in any::<u64>().prop_filter("a checksum mask", |m| *m as u32 != 0),
            other in any::<u64>(),
        ) {
            prop_assume!(other as u32 != mask as u32);
            let mut bytes = Vec::new();
            encode(&record, ends_batch, &mut bytes).unwrap();
            mask_frames(&mut bytes, mask);
            let decoded = decode(&bytes, mask).unwrap();
            prop_assert_eq!(decoded.record, record);
            // Its length reads as another, or its checksum fails.
            prop_assert!(decode(&bytes, other).is_err());
        }

        #[test]
        fn the_lives_of_one_file_never_share_a_checksum_mask(secret in any::<u64>(), life in 1..u32::MAX, later in 1..1000u32) {
            let other = life.saturating_add(later);
            prop_assume!(other != life);
            prop_assert_ne!(crc_mask(life_mask(secret, life)), crc_mask(life_mask(secret, other)));
            prop_assert_eq!(mask_secret(life, life_mask(secret, life)), secret);
            prop_assert_ne!(batch_seal(life_mask(secret, life)), batch_seal(life_mask(secret, other)));
        }
    }

    #[test]
    fn a_zero_length_is_impossible() {
        assert_eq!(decode(&[0; 16], 0), Err(RecordError::BadLength { len: 0 }));
    }

    #[test]
    fn entry_record_bytes_matches_the_encoding() {
        let entry = Entry {
            term: Term(3),
            index: LogIndex(9),
            kind: EntryKind::Normal,
            data: vec![7; 13].into(),
        };
        let mut bytes = Vec::new();
        let written = encode(&Record::Entry(entry), false, &mut bytes).unwrap();
        assert_eq!(written as u64, entry_record_bytes(13));
    }
}
