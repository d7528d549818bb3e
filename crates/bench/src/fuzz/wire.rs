//! Protobuf on the wire, without the types: a message as the fields it carries, in order, so
//! the fuzzer can change any field of any message and encode it again — including into what
//! no generated code would write (a field twice, a wrong wire type, an unknown number).

/// One field's value as the wire carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: strings, bytes, messages, packed repeated scalars.
    Len(Vec<u8>),
    /// Wire type 5.
    Fixed32(u32),
}

/// A field number and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub number: u32,
    pub value: Value,
}

/// The largest field number protobuf allows.
pub const FIELD_NUMBER_MAX: u32 = (1 << 29) - 1;

/// The fields of `bytes`, or `None` if they are not well-formed protobuf (groups count as
/// not well-formed: no message here has one).
pub fn parse(mut bytes: &[u8]) -> Option<Vec<Field>> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let number = u32::try_from(key >> 3).ok()?;
        if number == 0 || number > FIELD_NUMBER_MAX {
            return None;
        }
        let value = match key & 7 {
            0 => Value::Varint(varint(&mut bytes)?),
            1 => Value::Fixed64(u64::from_le_bytes(take(&mut bytes, 8)?.try_into().ok()?)),
            2 => {
                let length = usize::try_from(varint(&mut bytes)?).ok()?;
                Value::Len(take(&mut bytes, length)?.to_vec())
            }
            5 => Value::Fixed32(u32::from_le_bytes(take(&mut bytes, 4)?.try_into().ok()?)),
            _ => return None,
        };
        fields.push(Field { number, value });
    }
    Some(fields)
}

/// `fields` encoded, in the order given.
pub fn encode(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields {
        let wire_type = match field.value {
            Value::Varint(_) => 0,
            Value::Fixed64(_) => 1,
            Value::Len(_) => 2,
            Value::Fixed32(_) => 5,
        };
        put_varint(&mut out, (u64::from(field.number) << 3) | wire_type);
        match &field.value {
            Value::Varint(v) => put_varint(&mut out, *v),
            Value::Fixed64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Len(bytes) => {
                put_varint(&mut out, bytes.len() as u64);
                out.extend_from_slice(bytes);
            }
            Value::Fixed32(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
    out
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn take<'a>(bytes: &mut &'a [u8], length: usize) -> Option<&'a [u8]> {
    if bytes.len() < length {
        return None;
    }
    let (taken, rest) = bytes.split_at(length);
    *bytes = rest;
    Some(taken)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn a_generated_message_parses_and_encodes_back_to_its_bytes() {
        let request = api::pb::RaiseInvoiceRequest {
            meta: Some(api::pb::CommandMeta {
                request_id: "00000000-0000-4000-8000-000000000001".to_string(),
                expected_version: Some(u64::MAX),
                correlation_id: String::new(),
            }),
            contract: "C1".to_string(),
            invoice: "I-1".to_string(),
            period: Some(api::pb::Period {
                year: 2019,
                month: 3,
            }),
            amount_pence: -5,
            corrects: None,
        };
        let bytes = request.encode_to_vec();
        let fields = parse(&bytes).expect("parses");
        assert_eq!(fields[0].number, 1);
        assert!(
            fields
                .iter()
                .any(|f| f.value == Value::Varint(-5i64 as u64))
        );
        assert_eq!(encode(&fields), bytes);
        let meta = match &fields[0].value {
            Value::Len(meta) => parse(meta).expect("meta parses"),
            other => panic!("meta is {other:?}"),
        };
        assert!(meta.contains(&Field {
            number: 2,
            value: Value::Varint(u64::MAX)
        }));
    }

    #[test]
    fn what_is_not_protobuf_does_not_parse() {
        for bytes in [
            &[0x08][..],         // a key without its value
            &[0x0a, 0x05, b'a'], // a length past the end
            &[0x00, 0x01],       // field number 0
            &[0x0b],             // a group
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ], // an 11-byte varint
        ] {
            assert_eq!(parse(bytes), None, "{bytes:?}");
        }
        assert_eq!(parse(&[]), Some(Vec::new()));
    }
}
