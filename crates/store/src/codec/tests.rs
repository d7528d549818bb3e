//! Golden bytes: the on-disk format must never change by accident. If one of these fails,
//! the stored format changed — existing stores would no longer decode or verify. Add an
//! envelope version instead of editing a record.

use super::*;
use domain::{FinancialYear, Month, Period, SystemEvent};

/// A small fixed payload, independent of the domain crate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct TestPayload {
    account: String,
    amount_pence: i64,
}

fn period(year: u32, month: u32) -> Period {
    let year = FinancialYear::new(year).expect("valid year");
    let month = Month::new(month).expect("valid month");
    Period::new(year, month)
}

fn record<E>(payload: E, prev_hash: [u8; HASH_LEN]) -> EventRecordV1<E> {
    EventRecordV1 {
        sequence: 1,
        stream: "acct-1".to_string(),
        version: 1,
        event_id: [0x11; 16],
        request_id: [0x22; 16],
        correlation_id: [0x33; 16],
        recorded_at_us: 1_546_300_800_000_000, // 2019-01-01T00:00:00Z
        effective_period: Some(period(2018, 10)),
        actor: "KHFT:alice".to_string(),
        schema_version: SCHEMA_VERSION_V1,
        event_type: "test.posted".to_string(),
        payload,
        prev_hash,
    }
}

fn test_record() -> EventRecordV1<TestPayload> {
    record(
        TestPayload {
            account: "acct-1".to_string(),
            amount_pence: -12_345,
        },
        [0; HASH_LEN],
    )
}

fn domain_record() -> EventRecordV1<domain::Event> {
    let payload = domain::Event::System(SystemEvent::PeriodClosed {
        period: period(2018, 12),
    });
    let mut record = record(payload, [0xAB; HASH_LEN]);
    record.sequence = 42;
    record.stream = "system".to_string();
    record.version = 7;
    record.event_type = "system.period_closed".to_string();
    record.effective_period = None;
    record
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The fields both golden records share, from `event_id` to `recorded_at_us`.
fn shared_ids_and_time() -> Vec<u8> {
    cat(&[
        &[0x11; 16], // event_id: 16 raw bytes, no length prefix
        &[0x22; 16], // request_id
        &[0x33; 16], // correlation_id
        // recorded_at_us: zigzag(1_546_300_800_000_000) as u64 varint (253 = 8 bytes LE follow)
        &[253, 0x00, 0xC0, 0xCC, 0x6B, 0xB4, 0xFC, 0x0A, 0x00],
    ])
}

#[test]
fn golden_bytes_with_a_test_payload() {
    let record = test_record();
    let expected_body = cat(&[
        &[0],      // Envelope::V1
        &[1],      // sequence 1
        &[6],      // stream: length 6
        b"acct-1", //
        &[1],      // version 1
        &shared_ids_and_time(),
        &[1, 251, 0xE2, 0x07, 10], // effective_period: Some, year 2018 (u16 varint), month 10
        &[10],                     // actor: length 10
        b"KHFT:alice",             //
        &[1],                      // schema_version 1
        &[11],                     // event_type: length 11
        b"test.posted",            //
        &[6],                      // payload.account: length 6
        b"acct-1",                 //
        &[251, 0x71, 0x60],        // payload.amount_pence: zigzag(-12_345) = 24_689
        &[0; 32],                  // prev_hash
    ]);
    let expected_hash = "2116a268e0b05280b28337fbff6451c257accc9d57b5c55d7affc756f76ff328";

    let body = encode_body(&Envelope::V1(record.clone())).expect("encodes");
    assert_eq!(body, expected_body);
    assert_eq!(body.len(), 138);
    let hash = chain_hash(&record.prev_hash, &body);
    assert_eq!(hex::encode(hash), expected_hash);

    let decoded: LatestRecord<TestPayload> = decode_body(&expected_body).expect("decodes");
    assert_eq!(decoded, record);
}

#[test]
fn golden_bytes_with_a_domain_event() {
    let record = domain_record();
    let expected_body = cat(&[
        &[0],      // Envelope::V1
        &[42],     // sequence 42
        &[6],      // stream: length 6
        b"system", //
        &[7],      // version 7
        &shared_ids_and_time(),
        &[0],  // effective_period: None
        &[10], // actor: length 10
        b"KHFT:alice",
        &[1],  // schema_version 1
        &[20], // event_type: length 20
        b"system.period_closed",
        &[0],                   // payload: domain::Event::System
        &[5],                   //   SystemEvent::PeriodClosed (variant 5)
        &[251, 0xE2, 0x07, 12], // period 2018/19 M12
        &[0xAB; 32],            // prev_hash
    ]);
    let expected_hash = "2f958c0c7403a0a063bad9b0d8dc0a3ce62e5f4341c824903cccafc03f54269c";

    let body = encode_body(&Envelope::V1(record.clone())).expect("encodes");
    assert_eq!(body, expected_body);
    assert_eq!(body.len(), 139);
    let hash = chain_hash(&record.prev_hash, &body);
    assert_eq!(hex::encode(hash), expected_hash);

    let decoded: LatestRecord<domain::Event> = decode_body(&expected_body).expect("decodes");
    assert_eq!(decoded, record);
}

#[test]
fn golden_bytes_of_an_idempotency_record() {
    let record = IdempotencyRecord {
        command_hash: [0x44; 32],
        outcome: AppendOutcome {
            stream: "acct-1".to_string(),
            first_version: 1,
            last_version: 2,
            first_sequence: 300,
            last_sequence: 301,
            hash: [0x55; 32],
            recorded_at_us: 1_546_300_800_000_000,
            duplicate: false,
        },
    };
    let expected = cat(&[
        &[0],        // IdempotencyEnvelope::V1
        &[0x44; 32], // command_hash
        &[6],        // stream: length 6
        b"acct-1",
        &[1, 2],                                                // first_version, last_version
        &[251, 0x2C, 0x01, 251, 0x2D, 0x01], // first_sequence 300, last_sequence 301
        &[0x55; 32],                         // hash
        &[253, 0x00, 0xC0, 0xCC, 0x6B, 0xB4, 0xFC, 0x0A, 0x00], // recorded_at_us
    ]);
    let bytes = encode_idempotency(&record).expect("encodes");
    assert_eq!(bytes, expected);
    assert_eq!(decode_idempotency(&expected).expect("decodes"), record);
}

#[test]
fn stored_values_round_trip_and_verify() {
    let record = test_record();
    let body = encode_body(&Envelope::V1(record.clone())).expect("encodes");
    let hash = chain_hash(&record.prev_hash, &body);
    let value = [body.as_slice(), &hash].concat(); // body ‖ hash, as a page entry holds it
    let event: RecordedEvent<TestPayload> = decode_value(&value).expect("decodes");
    assert_eq!(event.hash, hash);
    assert_eq!(event.payload, record.payload);
    assert_eq!(event.schema_version, SCHEMA_VERSION_V1);

    let raw = RawEvent {
        sequence: 1,
        body: body.clone(),
        hash,
    };
    assert_eq!(decode_raw::<TestPayload>(&raw).expect("decodes"), event);

    let mut flipped = value.clone();
    flipped[20] ^= 0x01;
    assert!(matches!(
        decode_value::<TestPayload>(&flipped),
        Err(CodecError::Hash { .. })
    ));
    assert!(matches!(
        decode_value::<TestPayload>(&value[..10]),
        Err(CodecError::ShortValue { len: 10 })
    ));
}

#[test]
fn trailing_and_missing_bytes_are_refused() {
    let body = encode_body(&Envelope::V1(test_record())).expect("encodes");
    let mut longer = body.clone();
    longer.push(0);
    assert_eq!(
        decode_body::<TestPayload>(&longer),
        Err(CodecError::TrailingBytes {
            used: body.len(),
            len: body.len() + 1
        })
    );
    assert!(matches!(
        decode_body::<TestPayload>(&body[..body.len() - 1]),
        Err(CodecError::Decode(_))
    ));
}

#[test]
fn a_v1_record_must_say_schema_version_1() {
    let mut record = test_record();
    record.schema_version = 2;
    let body = encode_body(&Envelope::V1(record)).expect("encodes");
    assert_eq!(
        decode_body::<TestPayload>(&body),
        Err(CodecError::SchemaVersion {
            variant: 1,
            found: 2
        })
    );
}

#[test]
fn a_hostile_length_prefix_does_not_allocate() {
    // V1, sequence 1, then a stream length of u64::MAX.
    let body = [0u8, 1, 253, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    assert!(matches!(
        decode_body::<TestPayload>(&body),
        Err(CodecError::Decode(_))
    ));
}

#[test]
fn oversized_bodies_are_refused() {
    let record = record(
        TestPayload {
            account: "x".repeat(EVENT_BODY_BYTES_MAX),
            amount_pence: 0,
        },
        [0; HASH_LEN],
    );
    assert!(matches!(
        encode_body(&Envelope::V1(record)),
        Err(CodecError::TooLarge { .. })
    ));
}

/// A record of the largest envelope: every bounded string at its longest, every integer at a
/// width its varint cannot shorten.
fn largest_envelope<E>(payload: E) -> EventRecordV1<E> {
    use crate::config::{ACTOR_BYTES_MAX, EVENT_TYPE_BYTES_MAX, STREAM_BYTES_MAX};
    let mut record = record(payload, [0xFF; HASH_LEN]);
    record.sequence = u64::MAX;
    record.version = u64::MAX;
    record.recorded_at_us = i64::MIN;
    record.stream = "s".repeat(STREAM_BYTES_MAX);
    record.actor = "a".repeat(ACTOR_BYTES_MAX);
    record.event_type = "t".repeat(EVENT_TYPE_BYTES_MAX);
    record.schema_version = SCHEMA_VERSION_V1;
    record
}

#[test]
fn the_largest_envelope_fits_its_allowance() {
    let body = encode_body(&Envelope::V1(largest_envelope(()))).expect("encodes");
    assert!(
        body.len() <= crate::config::ENVELOPE_BYTES_MAX,
        "{} bytes",
        body.len()
    );
}

/// A payload of many small numbers: few bytes each, eight (or sixteen) claimed each when
/// decoded. Such bodies, well under the byte limit, were written and could not be read back.
#[test]
fn a_body_of_small_numbers_up_to_the_byte_limit_reads_back() {
    let overhead = encode_body(&Envelope::V1(largest_envelope(Vec::<u128>::new())))
        .expect("encodes")
        .len();
    // One byte per element, and the length's varint: fill the body to its last byte.
    let elements = EVENT_BODY_BYTES_MAX - overhead - 4;
    let payload: Vec<u128> = vec![1; elements];
    let body = encode_body(&Envelope::V1(largest_envelope(payload.clone()))).expect("fits");
    assert!(
        body.len() > EVENT_BODY_BYTES_MAX - 8,
        "{} bytes",
        body.len()
    );
    let decoded: LatestRecord<Vec<u128>> = decode_body(&body).expect("every reader reads it");
    assert_eq!(decoded.payload, payload);
    // The largest payload the writer's check admits (the length's varint is 5 bytes).
    let largest: Vec<u128> = vec![1; crate::config::PAYLOAD_BYTES_MAX - 5];
    check_payload(&largest).expect("a payload that fits is readable");

    let schemes: Vec<(u64, i64)> = vec![(7, -3); 200_000];
    check_payload(&schemes).expect("readable");
    let body = encode_body(&Envelope::V1(record(schemes.clone(), [0; HASH_LEN]))).expect("fits");
    let decoded: LatestRecord<Vec<(u64, i64)>> = decode_body(&body).expect("reads back");
    assert_eq!(decoded.payload, schemes);
}

#[test]
fn a_payload_too_large_for_an_event_is_refused_before_it_is_written() {
    let payload = "x".repeat(crate::config::PAYLOAD_BYTES_MAX);
    assert!(matches!(
        check_payload(&payload),
        Err(CodecError::PayloadTooLarge { .. })
    ));
    let fits = "x".repeat(crate::config::PAYLOAD_BYTES_MAX - 8);
    check_payload(&fits).expect("fits");
    let body = encode_body(&Envelope::V1(largest_envelope(fits))).expect("within the body limit");
    assert!(body.len() <= EVENT_BODY_BYTES_MAX);
}

/// A value whose serde impls do not round-trip: written fine, refused by every reader.
#[derive(Debug, PartialEq)]
struct OneWay(u32);

impl Serialize for OneWay {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for OneWay {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u32::deserialize(deserializer)?;
        if value > 9 {
            return Err(serde::de::Error::custom("more than 9"));
        }
        Ok(OneWay(value))
    }
}

#[test]
fn a_payload_readers_would_refuse_is_refused_before_it_is_written() {
    check_payload(&OneWay(9)).expect("readable");
    assert!(matches!(
        check_payload(&OneWay(10)),
        Err(CodecError::Decode(reason)) if reason.contains("more than 9")
    ));
}

/// The record as serde saw it before bincode's derive took over: the same fields in the same
/// order. The derive must give the bytes this gives, for any values, or old stores would not
/// decode.
#[derive(Serialize)]
enum SerdeEnvelope<'a> {
    V1(SerdeRecordV1<'a>),
}

#[derive(Serialize)]
struct SerdeRecordV1<'a> {
    sequence: u64,
    stream: &'a str,
    version: u64,
    event_id: [u8; 16],
    request_id: [u8; 16],
    correlation_id: [u8; 16],
    recorded_at_us: i64,
    effective_period: Option<Period>,
    actor: &'a str,
    schema_version: u16,
    event_type: &'a str,
    payload: &'a TestPayload,
    prev_hash: [u8; HASH_LEN],
}

proptest::proptest! {
    #[test]
    fn the_derived_codec_writes_what_serde_wrote_and_reads_it_back(
        sequence: u64,
        version: u64,
        stream in ".{0,200}",
        actor in ".{0,200}",
        event_type in ".{0,40}",
        account in ".{0,300}",
        ids: ([u8; 16], [u8; 16], [u8; 16]),
        recorded_at_us: i64,
        period in proptest::option::of((2000u32..2100, 1u32..=12)),
        schema_version: u16,
        amount_pence: i64,
        prev_hash: [u8; HASH_LEN],
    ) {
        let payload = TestPayload { account, amount_pence };
        let effective_period = period.map(|(year, month)| self::period(year, month));
        let record = EventRecordV1 {
            sequence,
            stream: stream.clone(),
            version,
            event_id: ids.0,
            request_id: ids.1,
            correlation_id: ids.2,
            recorded_at_us,
            effective_period,
            actor: actor.clone(),
            schema_version,
            event_type: event_type.clone(),
            payload: payload.clone(),
            prev_hash,
        };
        let serde_bytes = bincode::serde::encode_to_vec(
            SerdeEnvelope::V1(SerdeRecordV1 {
                sequence,
                stream: &stream,
                version,
                event_id: ids.0,
                request_id: ids.1,
                correlation_id: ids.2,
                recorded_at_us,
                effective_period,
                actor: &actor,
                schema_version,
                event_type: &event_type,
                payload: &payload,
                prev_hash,
            }),
            config(),
        )
        .expect("serde encodes");
        let envelope = Envelope::V1(record.clone());
        let body = encode_body(&envelope).expect("encodes");
        proptest::prop_assert_eq!(&body, &serde_bytes);
        let (decoded, used): (Envelope<TestPayload>, usize) =
            bincode::borrow_decode_from_slice(&body, decode_config()).expect("decodes");
        proptest::prop_assert_eq!(used, body.len());
        proptest::prop_assert_eq!(decoded, envelope);
    }
}
