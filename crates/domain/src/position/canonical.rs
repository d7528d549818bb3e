//! The canonical bytes of a report, and their SHA-256 fingerprint.
//!
//! An auditor replays the log and must get *byte-identical* reports, so the encoding is
//! defined here, in the domain, rather than borrowed from whatever a serialization library
//! does today. It is a plain serde serializer:
//!
//! - a header: the bytes of [`FORMAT`], then the report's kind as a string;
//! - integers: fixed width, big-endian, two's complement (`i64` is 8 bytes);
//! - `bool`: one byte, 0 or 1; `char`: its scalar value as a `u32`;
//! - strings and byte strings: length as a `u64`, then the bytes (UTF-8 for strings);
//! - `Option`: a byte 0 for `None`, or 1 followed by the value;
//! - sequences and maps: length as a `u64`, then the elements (for maps key, value, …) in the
//!   order the value yields them — reports hold `Vec`s built from `BTreeMap`s, so the order
//!   is deterministic;
//! - structs and tuples: their fields in declaration order, with no names or lengths;
//! - enum variants: the variant's index as a `u32`, then its fields;
//! - floating point is refused: money is pence and rates are basis points.
//!
//! Adding, removing or reordering a report's fields changes its bytes, as it should: the
//! golden test below pins the format, and a report's kind names its version.

use std::fmt::Display;

use serde::Serialize;
use serde::ser::{self, Serializer};
use sha2::{Digest, Sha256};

/// The first bytes of every canonical encoding: the format and its version.
pub const FORMAT: &[u8] = b"ics-report/1\n";

/// Why a value has no canonical bytes. Reports never hit these; they exist so that encoding
/// a value that is not a report fails instead of guessing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("floating-point values have no canonical encoding (use pence or basis points)")]
    Float,
    #[error("a sequence or map of unknown length has no canonical encoding")]
    UnknownLength,
    #[error("{0}")]
    Custom(String),
}

impl ser::Error for CanonicalError {
    fn custom<T: Display>(message: T) -> Self {
        CanonicalError::Custom(message.to_string())
    }
}

/// The canonical bytes of `value` as a report of `kind`.
pub fn to_bytes<T: Serialize + ?Sized>(kind: &str, value: &T) -> Result<Vec<u8>, CanonicalError> {
    let mut encoder = Encoder { out: Vec::new() };
    encoder.out.extend_from_slice(FORMAT);
    encoder.bytes(kind.as_bytes());
    value.serialize(&mut encoder)?;
    Ok(encoder.out)
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lowercase hex of a fingerprint, as auditors compare them.
pub fn hex(digest: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(64);
    for byte in digest {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

struct Encoder {
    out: Vec<u8>,
}

impl Encoder {
    fn length(&mut self, len: usize) {
        // usize is at most 64 bits on every platform Rust supports.
        self.out
            .extend_from_slice(&u64::try_from(len).unwrap_or(u64::MAX).to_be_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.length(bytes.len());
        self.out.extend_from_slice(bytes);
    }

    fn variant(&mut self, index: u32) {
        self.out.extend_from_slice(&index.to_be_bytes());
    }
}

type Result<T = (), E = CanonicalError> = std::result::Result<T, E>;

impl Serializer for &mut Encoder {
    type Ok = ();
    type Error = CanonicalError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result {
        self.out.push(u8::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result {
        self.out.push(v);
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    fn serialize_f32(self, _: f32) -> Result {
        Err(CanonicalError::Float)
    }
    fn serialize_f64(self, _: f64) -> Result {
        Err(CanonicalError::Float)
    }
    fn serialize_char(self, v: char) -> Result {
        self.serialize_u32(u32::from(v))
    }
    fn serialize_str(self, v: &str) -> Result {
        self.bytes(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result {
        self.bytes(v);
        Ok(())
    }
    fn serialize_none(self) -> Result {
        self.out.push(0);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        self.out.push(1);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, index: u32, _: &'static str) -> Result {
        self.variant(index);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> Result {
        self.variant(index);
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self> {
        self.length(len.ok_or(CanonicalError::UnknownLength)?);
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self> {
        self.variant(index);
        Ok(self)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self> {
        self.length(len.ok_or(CanonicalError::UnknownLength)?);
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self> {
        self.variant(index);
        Ok(self)
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

impl ser::SerializeSeq for &mut Encoder {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result {
        Ok(())
    }
}

impl ser::SerializeTuple for &mut Encoder {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for &mut Encoder {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for &mut Encoder {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result {
        Ok(())
    }
}

impl ser::SerializeMap for &mut Encoder {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Encoder {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, value: &T) -> Result {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result {
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Encoder {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, value: &T) -> Result {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;
    use crate::money::Pence;

    #[derive(Serialize)]
    enum Kind {
        Plain,
        Named { flag: bool },
    }

    #[derive(Serialize)]
    struct Sample {
        amount: Pence,
        name: String,
        maybe: Option<u8>,
        kinds: Vec<Kind>,
        map: BTreeMap<u16, i32>,
        pair: (u8, char),
    }

    /// The format, pinned: if this test fails, every stored fingerprint would change.
    #[test]
    fn the_encoding_is_pinned() {
        let sample = Sample {
            amount: Pence::new(-2),
            name: "£1".to_string(),
            maybe: Some(7),
            kinds: vec![Kind::Plain, Kind::Named { flag: true }],
            map: BTreeMap::from([(2, -1), (1, 3)]),
            pair: (9, 'A'),
        };
        let bytes = to_bytes("sample", &sample).expect("encodes");
        let mut expected = FORMAT.to_vec();
        expected.extend([0, 0, 0, 0, 0, 0, 0, 6]);
        expected.extend(b"sample");
        expected.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        expected.extend([0, 0, 0, 0, 0, 0, 0, 3, 0xc2, 0xa3, b'1']);
        expected.extend([1, 7]);
        expected.extend([0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
        expected.extend([
            0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0, 3, 0, 2, 0xff, 0xff, 0xff, 0xff,
        ]);
        expected.extend([9, 0, 0, 0, 0x41]);
        assert_eq!(bytes, expected);
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn floats_and_unknown_lengths_are_refused() {
        assert_eq!(to_bytes("x", &1.5f64), Err(CanonicalError::Float));
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(std::iter::from_fn(|| None::<u8>).filter(|_| true))
            }
        }
        // `collect_seq` passes the iterator's exact length when it knows it; a filtered
        // iterator does not know it.
        assert_eq!(to_bytes("x", &Unsized), Err(CanonicalError::UnknownLength));
    }
}
