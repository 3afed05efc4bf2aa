//! The codec's contract: what `put` writes, a `Reader` reads back exactly; anything else —
//! cut short, forged lengths, garbage — is a typed error, never a panic or an allocation the
//! input cannot justify.

use proptest::prelude::*;
use skiff_codec::{put, CodecError, Reader};

/// One field of every form the codec has.
#[derive(Clone, Debug, PartialEq)]
enum Field {
    U8(u8),
    Bool(bool),
    U16(u16),
    U32(u32),
    U64(u64),
    Varint(u64),
    VarintI64(i64),
    BytesU32(Vec<u8>),
    BytesVarint(Vec<u8>),
    ShortStr(String),
}

const MAX_STR: u16 = 64;

fn put_field(out: &mut Vec<u8>, field: &Field) {
    match field {
        Field::U8(v) => put::u8(out, *v),
        Field::Bool(v) => put::bool(out, *v),
        Field::U16(v) => put::u16(out, *v),
        Field::U32(v) => put::u32(out, *v),
        Field::U64(v) => put::u64(out, *v),
        Field::Varint(v) => put::varint(out, *v),
        Field::VarintI64(v) => put::varint_i64(out, *v),
        Field::BytesU32(v) => put::bytes_u32(out, v),
        Field::BytesVarint(v) => put::bytes_varint(out, v),
        Field::ShortStr(v) => put::short_str(out, v),
    }
}

/// Reads a field of the same form as `like`.
fn read_field(r: &mut Reader<'_>, like: &Field) -> Result<Field, CodecError> {
    Ok(match like {
        Field::U8(_) => Field::U8(r.u8()?),
        Field::Bool(_) => Field::Bool(r.bool("flag")?),
        Field::U16(_) => Field::U16(r.u16()?),
        Field::U32(_) => Field::U32(r.u32()?),
        Field::U64(_) => Field::U64(r.u64()?),
        Field::Varint(_) => Field::Varint(r.varint()?),
        Field::VarintI64(_) => Field::VarintI64(r.varint_i64()?),
        Field::BytesU32(_) => Field::BytesU32(r.bytes_u32()?.to_vec()),
        Field::BytesVarint(_) => Field::BytesVarint(r.bytes_varint()?.to_vec()),
        Field::ShortStr(_) => Field::ShortStr(r.short_str("name", MAX_STR)?.to_string()),
    })
}

fn arb_field() -> impl Strategy<Value = Field> {
    prop_oneof![
        any::<u8>().prop_map(Field::U8),
        any::<bool>().prop_map(Field::Bool),
        any::<u16>().prop_map(Field::U16),
        any::<u32>().prop_map(Field::U32),
        any::<u64>().prop_map(Field::U64),
        prop_oneof![any::<u64>(), 0..300u64].prop_map(Field::Varint),
        prop_oneof![any::<i64>(), -300..300i64].prop_map(Field::VarintI64),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Field::BytesU32),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Field::BytesVarint),
        "[a-z0-9.:é]{0,16}".prop_map(Field::ShortStr),
    ]
}

proptest! {
    #[test]
    fn what_is_put_reads_back(fields in proptest::collection::vec(arb_field(), 0..20)) {
        let mut out = Vec::new();
        for field in &fields {
            put_field(&mut out, field);
        }
        let mut r = Reader::new(&out);
        for field in &fields {
            prop_assert_eq!(&read_field(&mut r, field).unwrap(), field);
        }
        prop_assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn every_cut_is_an_error(fields in proptest::collection::vec(arb_field(), 1..8), cut in any::<prop::sample::Index>()) {
        let mut out = Vec::new();
        for field in &fields {
            put_field(&mut out, field);
        }
        let cut = cut.index(out.len());
        let mut r = Reader::new(&out[..cut]);
        let whole = fields.iter().try_for_each(|field| read_field(&mut r, field).map(drop));
        // Every form is self-delimiting, so a prefix cannot hold all the fields.
        prop_assert!(whole.is_err());
    }

    #[test]
    fn garbage_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        forms in proptest::collection::vec(arb_field(), 0..12),
    ) {
        let mut r = Reader::new(&bytes);
        for form in &forms {
            if read_field(&mut r, form).is_err() {
                break;
            }
            prop_assert!(r.offset() <= bytes.len());
        }
        let _ = r.count_varint(8);
        let _ = r.count_u32(1);
        let _ = r.version("thing", &[1, 2]);
        let _ = r.version_u16("thing", &[1]);
        let _ = r.rest();
        prop_assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn varints_match_their_dumb_twin(value in any::<u64>()) {
        // Seven bits at a time, low first, the high bit on every byte but the last.
        let mut twin = Vec::new();
        let mut rest = value;
        loop {
            let low = (rest & 0x7f) as u8;
            rest >>= 7;
            if rest == 0 {
                twin.push(low);
                break;
            }
            twin.push(low | 0x80);
        }
        let mut out = Vec::new();
        put::varint(&mut out, value);
        prop_assert_eq!(&out, &twin);
        prop_assert!(out.len() <= skiff_codec::MAX_VARINT_BYTES);
    }
}

#[test]
fn integers_are_little_endian() {
    let mut out = Vec::new();
    put::u16(&mut out, 0x0102);
    put::u32(&mut out, 0x0304_0506);
    put::u64(&mut out, 0x0708_090a_0b0c_0d0e);
    assert_eq!(
        out,
        [2, 1, 6, 5, 4, 3, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 9, 8, 7]
    );
    put::u32_at(&mut out, 2, 0x1122_3344);
    assert_eq!(&out[..6], [2, 1, 0x44, 0x33, 0x22, 0x11]);
}

#[test]
fn a_varint_has_one_encoding() {
    // 1 written in two bytes: a shorter form exists.
    assert_eq!(
        Reader::new(&[0x81, 0x00]).varint(),
        Err(CodecError::BadVarint { offset: 0 })
    );
    // Eleven bytes, and a tenth byte above the 64th bit.
    assert_eq!(
        Reader::new(&[0xff; 11]).varint(),
        Err(CodecError::BadVarint { offset: 0 })
    );
    let mut too_wide = vec![0xff; 9];
    too_wide.push(0x02);
    assert!(Reader::new(&too_wide).varint().is_err());
    let mut max = vec![0xff; 9];
    max.push(0x01);
    assert_eq!(Reader::new(&max).varint(), Ok(u64::MAX));
    // A varint that runs off the end is truncated where the next byte should be.
    assert_eq!(
        Reader::new(&[0x80, 0x80]).varint(),
        Err(CodecError::Truncated { offset: 2 })
    );
}

#[test]
fn a_forged_count_or_length_is_refused_before_anything_is_reserved() {
    let mut out = Vec::new();
    put::u32(&mut out, u32::MAX);
    out.extend_from_slice(&[0; 16]);
    assert_eq!(
        Reader::new(&out).count_u32(1),
        Err(CodecError::Truncated { offset: 4 })
    );
    assert_eq!(
        Reader::new(&out).bytes_u32(),
        Err(CodecError::Truncated { offset: 4 })
    );
    // Two items of 8 bytes fit in 16; three do not.
    let mut two = Vec::new();
    put::varint(&mut two, 2);
    two.extend_from_slice(&[0; 16]);
    assert_eq!(Reader::new(&two).count_varint(8), Ok(2));
    let mut three = Vec::new();
    put::varint(&mut three, 3);
    three.extend_from_slice(&[0; 16]);
    assert!(Reader::new(&three).count_varint(8).is_err());
    let mut huge = Vec::new();
    put::varint(&mut huge, u64::MAX);
    assert!(Reader::new(&huge).count_varint(0).is_err());
}

#[test]
fn a_short_string_over_its_maximum_is_refused() {
    let mut out = Vec::new();
    put::short_str(&mut out, "127.0.0.1:7001");
    assert_eq!(
        Reader::new(&out).short_str("address", 8),
        Err(CodecError::TooLong {
            field: "address",
            len: 14,
            max: 8,
            offset: 0
        })
    );
    assert_eq!(
        Reader::new(&out).short_str("address", 14),
        Ok("127.0.0.1:7001")
    );
    let not_utf8 = [2, 0, 0xff, 0xfe];
    assert_eq!(
        Reader::new(&not_utf8).short_str("address", 8),
        Err(CodecError::NotUtf8 { offset: 2 })
    );
}

#[test]
fn an_unsupported_version_names_what_and_which_versions_are_read() {
    let error = Reader::new(&[3])
        .version("node snapshot", &[1, 2])
        .unwrap_err();
    assert_eq!(
        error,
        CodecError::UnsupportedVersion {
            what: "node snapshot",
            found: 3,
            supported: &[1, 2]
        }
    );
    assert_eq!(
        error.to_string(),
        "node snapshot: unsupported format version 3 (this build reads [1, 2])"
    );
    assert_eq!(Reader::new(&[2]).version("node snapshot", &[1, 2]), Ok(2));
    assert_eq!(Reader::new(&[1, 0]).version_u16("segment", &[1]), Ok(1));
}

#[test]
fn tags_trailing_bytes_and_the_rest() {
    let mut r = Reader::new(&[1, 7, 9, 9]);
    assert_eq!(r.bool("flag"), Ok(true));
    assert_eq!(
        r.bool("flag"),
        Err(CodecError::UnknownTag {
            field: "flag",
            tag: 7,
            offset: 1
        })
    );
    assert_eq!(r.finish(), Err(CodecError::TrailingBytes { count: 2 }));
    assert_eq!(r.rest(), &[9, 9]);
    assert_eq!(r.finish(), Ok(()));
}
