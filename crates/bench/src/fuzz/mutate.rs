//! What the fuzzer changes in a request: guided by the messages' own descriptors (the
//! `FileDescriptorSet` the api crate serves for reflection), so every field of every request
//! — present, absent or nested — is changed as its type allows, and now and then as it does
//! not (a wrong wire type, an unknown field, bytes cut short).

use std::collections::HashMap;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};

use super::wire::{self, Field, Value};

/// A small, fast, seeded generator (SplitMix64): the same seed gives the same requests.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `below` for indexing.
    pub fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(len as u64)).unwrap_or(0)
    }

    /// True `percent` times in a hundred.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// A UUID-shaped string (version 4 layout) from the generator.
    pub fn uuid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// How a field is written, from its descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// int32, int64, uint32, uint64, sint32, sint64.
    Integer,
    Bool,
    Enum,
    Fixed64,
    Fixed32,
    String,
    Bytes,
    /// A message, by its full name (`.ics.ledger.v1.Period`).
    Message(String),
}

#[derive(Clone, Debug)]
struct FieldInfo {
    number: u32,
    name: String,
    kind: Kind,
    repeated: bool,
}

/// Every message of the api's descriptor set, by full name, with its fields.
#[derive(Debug)]
pub struct Schema {
    messages: HashMap<String, Vec<FieldInfo>>,
}

impl Schema {
    /// From `api::FILE_DESCRIPTOR_SET`.
    pub fn load() -> anyhow::Result<Schema> {
        let set = prost_types::FileDescriptorSet::decode(api::FILE_DESCRIPTOR_SET)?;
        let mut messages = HashMap::new();
        for file in &set.file {
            let package = file.package();
            for message in &file.message_type {
                add(&mut messages, &format!(".{package}"), message);
            }
        }
        Ok(Schema { messages })
    }

    /// The name and message type of field `number` of `message`.
    pub fn field(&self, message: &str, number: u32) -> Option<(&str, Option<&str>)> {
        let field = self.fields(message).iter().find(|f| f.number == number)?;
        let kind = match &field.kind {
            Kind::Message(name) => Some(name.as_str()),
            _ => None,
        };
        Some((field.name.as_str(), kind))
    }

    /// The number of `message`'s field `name`.
    pub fn number(&self, message: &str, name: &str) -> Option<u32> {
        self.fields(message)
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.number)
    }

    fn fields(&self, message: &str) -> &[FieldInfo] {
        self.messages.get(message).map_or(&[], Vec::as_slice)
    }

    /// `bytes` as `message` reads them, field names and values, for a failure report.
    pub fn describe(&self, message: &str, bytes: &[u8]) -> String {
        let Some(fields) = wire::parse(bytes) else {
            return format!("(not protobuf: {} bytes)", bytes.len());
        };
        let parts: Vec<String> = fields
            .iter()
            .map(|field| {
                let info = self
                    .fields(message)
                    .iter()
                    .find(|f| f.number == field.number);
                let name = info.map_or_else(|| format!("#{}", field.number), |f| f.name.clone());
                let value = match (&field.value, info.map(|f| &f.kind)) {
                    (Value::Len(inner), Some(Kind::Message(name))) => self.describe(name, inner),
                    (Value::Len(text), Some(Kind::String)) => {
                        let shown: String =
                            String::from_utf8_lossy(text).chars().take(80).collect();
                        format!("{shown:?} ({} bytes)", text.len())
                    }
                    (Value::Len(bytes), _) => format!("0x{}", hex_prefix(bytes)),
                    (Value::Varint(v), _) => format!("{v} (as i64 {})", *v as i64),
                    (value, _) => format!("{value:?}"),
                };
                format!("{name}: {value}")
            })
            .collect();
        format!("{{{}}}", parts.join(", "))
    }
}

fn add(
    messages: &mut HashMap<String, Vec<FieldInfo>>,
    scope: &str,
    message: &prost_types::DescriptorProto,
) {
    let name = format!("{scope}.{}", message.name());
    for nested in &message.nested_type {
        add(messages, &name, nested);
    }
    let fields = message
        .field
        .iter()
        .map(|field| FieldInfo {
            number: u32::try_from(field.number()).unwrap_or(0),
            name: field.name().to_string(),
            repeated: field.label() == Label::Repeated,
            kind: match field.r#type() {
                Type::Bool => Kind::Bool,
                Type::Enum => Kind::Enum,
                Type::Double | Type::Fixed64 | Type::Sfixed64 => Kind::Fixed64,
                Type::Float | Type::Fixed32 | Type::Sfixed32 => Kind::Fixed32,
                Type::String => Kind::String,
                Type::Bytes => Kind::Bytes,
                Type::Message | Type::Group => Kind::Message(field.type_name().to_string()),
                _ => Kind::Integer,
            },
        })
        .collect();
    messages.insert(name, fields);
}

fn hex_prefix(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(48).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 48 {
        format!("{shown}… ({} bytes)", bytes.len())
    } else {
        shown
    }
}

/// Integers at the edges: of their types, of the domain's ranges (months, basis points,
/// quarters, years), and of what fits in what.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    4,
    5,
    12,
    13,
    99,
    100,
    2017,
    2018,
    2019,
    2100,
    9_999,
    10_000,
    10_001,
    65_535,
    65_536,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
    u64::MAX - 1,
    (-100i64) as u64,
    (-10_000i64) as u64,
];

/// Text at the edges of what the ledger accepts: Unicode format and bidi controls, line
/// separators, NUL, invalid UTF-8 (as bytes), whitespace, case, length.
const TEXTS: &[&[u8]] = &[
    b"",
    b" ",
    b"  padded  ",
    "\u{202e}evil".as_bytes(),
    "a\u{200b}b".as_bytes(),
    "a\u{2028}b".as_bytes(),
    "\u{feff}".as_bytes(),
    "a\u{00ad}b".as_bytes(),
    b"nul\0nul",
    b"\xff\xfe",
    b"\xc3",
    b"line\nbreak",
    "£1,000,000".as_bytes(),
    "\u{1f4b7}".as_bytes(),
    b"khft",
    b"KHFT",
    b"kav",
    b"contract/C1",
    b"budget/BCF",
    b"fund/SSF",
    b"system",
    b"2018/19",
    b"2018/19-M13",
    b"-1",
    b"00000000-0000-0000-0000-000000000000",
    b"{00000000-0000-4000-8000-000000000001}",
    b"not-a-uuid",
];

/// What a field or a whole message is changed by.
pub struct Mutator<'a> {
    schema: &'a Schema,
    /// Codes, names and ids seen in valid requests: valid-looking values in the wrong places.
    dictionary: &'a [Vec<u8>],
}

impl<'a> Mutator<'a> {
    pub fn new(schema: &'a Schema, dictionary: &'a [Vec<u8>]) -> Mutator<'a> {
        Mutator { schema, dictionary }
    }

    /// `bytes` (a `message`) changed once: a field changed, dropped, doubled, added or
    /// mistyped, or the bytes themselves damaged.
    pub fn mutate(&self, rng: &mut Rng, message: &str, bytes: &[u8], depth: u32) -> Vec<u8> {
        let Some(mut fields) = wire::parse(bytes) else {
            return self.damage(rng, bytes);
        };
        let known = self.schema.fields(message);
        match rng.below(100) {
            0..50 if !fields.is_empty() => {
                let at = rng.index(fields.len());
                let info = known.iter().find(|f| f.number == fields[at].number);
                fields[at].value = match info {
                    Some(info) => self.change(rng, &info.kind, &fields[at].value, depth),
                    None => self.random_value(rng),
                };
            }
            50..62 if !fields.is_empty() => {
                fields.remove(rng.index(fields.len()));
            }
            62..70 if !fields.is_empty() => {
                let at = rng.index(fields.len());
                let copy = fields[at].clone();
                let to = rng.index(fields.len() + 1);
                fields.insert(to, copy);
            }
            70..85 if !known.is_empty() => {
                let info = rng.pick(known).clone();
                let value = self.fresh(rng, &info.kind, depth);
                if info.repeated || rng.percent(30) {
                    fields.push(Field {
                        number: info.number,
                        value,
                    });
                } else {
                    fields.retain(|f| f.number != info.number);
                    fields.push(Field {
                        number: info.number,
                        value,
                    });
                }
            }
            85..90 => {
                let number = if rng.percent(50) {
                    1 + u32::try_from(rng.below(40)).unwrap_or(0)
                } else {
                    1 + u32::try_from(rng.below(u64::from(wire::FIELD_NUMBER_MAX))).unwrap_or(0)
                };
                fields.push(Field {
                    number,
                    value: self.random_value(rng),
                });
            }
            90..95 if !fields.is_empty() => {
                let at = rng.index(fields.len());
                fields[at].value = match &fields[at].value {
                    Value::Len(bytes) => Value::Varint(bytes.len() as u64),
                    _ => {
                        let length = rng.index(9);
                        Value::Len(rng.bytes(length))
                    }
                };
            }
            _ => return self.damage(rng, &wire::encode(&fields)),
        }
        wire::encode(&fields)
    }

    /// A new value for a field of `kind` that had `old`.
    fn change(&self, rng: &mut Rng, kind: &Kind, old: &Value, depth: u32) -> Value {
        match (kind, old) {
            (Kind::Message(name), Value::Len(inner)) if depth < 4 && rng.percent(70) => {
                Value::Len(self.mutate(rng, name, inner, depth + 1))
            }
            (Kind::String | Kind::Bytes, Value::Len(text)) if rng.percent(40) => {
                Value::Len(self.edit_text(rng, text))
            }
            (Kind::Integer | Kind::Enum, Value::Varint(v)) if rng.percent(30) => {
                Value::Varint(match rng.below(4) {
                    0 => v.wrapping_add(1),
                    1 => v.wrapping_sub(1),
                    2 => v ^ (1 << rng.below(64)),
                    _ => (*v as i64).wrapping_neg() as u64,
                })
            }
            _ => self.fresh(rng, kind, depth),
        }
    }

    /// A value of `kind`, chosen to probe the edges.
    fn fresh(&self, rng: &mut Rng, kind: &Kind, depth: u32) -> Value {
        match kind {
            Kind::Integer => Value::Varint(if rng.percent(70) {
                *rng.pick(INTERESTING)
            } else {
                rng.next_u64() >> rng.below(64)
            }),
            Kind::Bool => Value::Varint(*rng.pick(&[0, 1, 2, u64::MAX])),
            Kind::Enum => Value::Varint(if rng.percent(80) {
                rng.below(12)
            } else {
                *rng.pick(INTERESTING)
            }),
            Kind::Fixed64 => Value::Fixed64(rng.next_u64()),
            Kind::Fixed32 => Value::Fixed32(rng.next_u64() as u32),
            Kind::String => Value::Len(self.text(rng)),
            Kind::Bytes => {
                let length = *rng.pick(&[0, 1, 31, 32, 33, 64, 200]);
                Value::Len(rng.bytes(length))
            }
            Kind::Message(name) => {
                if depth >= 4 || rng.percent(30) {
                    Value::Len(Vec::new())
                } else {
                    // A message built field by field: some of its fields, fresh values.
                    let mut fields = Vec::new();
                    for info in self.schema.fields(name).to_vec() {
                        if rng.percent(60) {
                            fields.push(Field {
                                number: info.number,
                                value: self.fresh(rng, &info.kind, depth + 1),
                            });
                        }
                    }
                    Value::Len(wire::encode(&fields))
                }
            }
        }
    }

    fn text(&self, rng: &mut Rng) -> Vec<u8> {
        match rng.below(10) {
            0..3 if !self.dictionary.is_empty() => rng.pick(self.dictionary).clone(),
            3..6 => rng.pick(TEXTS).to_vec(),
            6 => {
                let length = *rng.pick(&[33, 65, 256, 1_025, 10_000, 70_000]);
                vec![b'A'; length]
            }
            7 => rng.uuid().into_bytes(),
            8 => {
                let length = 1 + rng.index(16);
                (0..length).map(|_| b' ' + (rng.below(95) as u8)).collect()
            }
            _ => {
                let length = rng.index(24);
                rng.bytes(length)
            }
        }
    }

    /// `text` edited in place: a character inserted, the case flipped, cut, or doubled.
    fn edit_text(&self, rng: &mut Rng, text: &[u8]) -> Vec<u8> {
        let mut out = text.to_vec();
        let at = rng.index(out.len() + 1);
        match rng.below(5) {
            0 => {
                let insert = rng.pick(TEXTS);
                out.splice(at..at, insert.iter().copied());
            }
            1 => out.make_ascii_lowercase(),
            2 => out.truncate(at),
            3 => out.extend_from_slice(text),
            _ => out.splice(at..at, [b' ']).for_each(drop),
        }
        out
    }

    fn random_value(&self, rng: &mut Rng) -> Value {
        match rng.below(4) {
            0 => Value::Varint(rng.next_u64()),
            1 => Value::Fixed64(rng.next_u64()),
            2 => Value::Fixed32(rng.next_u64() as u32),
            _ => {
                let length = rng.index(40);
                Value::Len(rng.bytes(length))
            }
        }
    }

    /// The bytes damaged: cut short, a bit flipped, bytes inserted or overwritten.
    pub fn damage(&self, rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        let at = rng.index(out.len() + 1);
        match rng.below(4) {
            0 => out.truncate(at),
            1 if !out.is_empty() => {
                let i = rng.index(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            2 => {
                let length = 1 + rng.index(8);
                let inserted = rng.bytes(length);
                out.splice(at..at, inserted);
            }
            _ if !out.is_empty() => {
                let i = rng.index(out.len());
                out[i] = rng.next_u64() as u8;
            }
            _ => out.push(rng.next_u64() as u8),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_knows_every_command_and_its_fields() -> anyhow::Result<()> {
        let schema = Schema::load()?;
        assert_eq!(
            schema.field(".ics.ledger.v1.Command", 63),
            Some(("raise_invoice", Some(".ics.ledger.v1.RaiseInvoiceRequest")))
        );
        assert_eq!(
            schema.number(".ics.ledger.v1.CommandMeta", "request_id"),
            Some(1)
        );
        assert!(schema.fields(".ics.audit.v1.InclusionProofRequest").len() == 2);
        Ok(())
    }

    #[test]
    fn the_same_seed_makes_the_same_mutations() -> anyhow::Result<()> {
        let schema = Schema::load()?;
        let dictionary = vec![b"KHFT".to_vec()];
        let mutator = Mutator::new(&schema, &dictionary);
        let base = api::pb::RaiseInvoiceRequest {
            contract: "C1".to_string(),
            amount_pence: 100,
            ..Default::default()
        }
        .encode_to_vec();
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .map(|_| mutator.mutate(&mut rng, ".ics.ledger.v1.RaiseInvoiceRequest", &base, 0))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        // Most mutations still parse as protobuf: structure, not noise.
        let parsed = run(7).iter().filter(|b| wire::parse(b).is_some()).count();
        assert!(parsed > 150, "{parsed} of 200 parse");
        Ok(())
    }
}
