//! The on-disk encoding: the only place that turns records into bytes and back.
//!
//! An event is stored as `body ‖ hash`, where
//! - `body` is the canonical bincode 2 encoding ([`bincode::config::standard`]: little-endian,
//!   varint integers; the envelope by bincode's derive, the payload by its serde impl) of a
//!   versioned `Envelope` holding every field of the event except its own hash — `prev_hash`
//!   included, so the chain is inside the hashed bytes;
//! - `hash = SHA-256(prev_hash ‖ body)` ([`chain_hash`]), 32 bytes.
//!
//! Why shaped this way:
//! - bincode has no field names or defaults: adding a field to a record makes old bytes fail
//!   to decode. So records are frozen once written (`EventRecordV1` never changes, guarded by
//!   the golden-bytes tests below) and evolution appends a variant `V2(EventRecordV2<E>)` to
//!   the envelope; `upcast` turns any stored version into the latest on read.
//! - The hash covers the exact stored bytes, so an auditor verifies the chain without our
//!   types: SHA-256 over `prev_hash ‖ body`, standard tools suffice.
//! - Decoding demands that the whole body is consumed, so trailing garbage is corruption, not
//!   silently ignored; and it runs under a size limit so a corrupt length prefix cannot make
//!   it allocate without bound. The limit is on what decoding claims to allocate, which is
//!   more than the bytes ([`EVENT_DECODE_CLAIM_MAX`]); [`check_payload`] is how a writer makes
//!   sure, before committing, that what it stores every reader can read.
//! - Payload types must not use serde `flatten`, `skip*`, `tag` or `untagged` (bincode loses
//!   data with them) and must use ordered collections (`BTreeMap`) so encoding is canonical.
//!
//! Idempotency records use the same scheme (a versioned envelope, golden-tested) without a
//! hash: they are an index, rebuilt from the log if ever needed.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{
    ENVELOPE_BYTES_MAX, EVENT_BODY_BYTES_MAX, EVENT_DECODE_CLAIM_MAX, PAYLOAD_BYTES_MAX,
};
use crate::model::{AppendOutcome, IdempotencyRecord, RawEvent, RecordedEvent};

/// Length of a chain hash (SHA-256).
pub const HASH_LEN: usize = 32;

/// `schema_version` of records written as `Envelope::V1`.
pub const SCHEMA_VERSION_V1: u16 = 1;

/// The schema version new events are written with.
pub const SCHEMA_VERSION_LATEST: u16 = SCHEMA_VERSION_V1;

/// Why bytes could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode: {0}")]
    Encode(String),
    #[error("cannot decode: {0}")]
    Decode(String),
    #[error("decoding consumed {used} of {len} bytes")]
    TrailingBytes { used: usize, len: usize },
    #[error("body is {len} bytes, more than {EVENT_BODY_BYTES_MAX}")]
    TooLarge { len: usize },
    #[error(
        "the event's payload is {len} bytes encoded, more than the {PAYLOAD_BYTES_MAX} an event may hold"
    )]
    PayloadTooLarge { len: usize },
    #[error("stored value is {len} bytes, shorter than a hash")]
    ShortValue { len: usize },
    #[error("a V{variant} record says schema version {found}")]
    SchemaVersion { variant: u16, found: u16 },
    #[error("hash mismatch: stored {}, recomputed {}", hex::encode(.stored), hex::encode(.computed))]
    Hash {
        stored: [u8; HASH_LEN],
        computed: [u8; HASH_LEN],
    },
}

/// Every version of the stored event record. Variants are only ever appended.
///
/// Encoded and decoded by bincode's own derive (fixed-size arrays as one read, not 16 or 32
/// single bytes through serde), the period and the payload through their serde impls; the
/// bytes are those serde gave the whole record before (the golden tests pin them).
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::BorrowDecode)]
#[bincode(
    encode_bounds = "E: Serialize",
    borrow_decode_bounds = "E: Deserialize<'__de>"
)]
pub(crate) enum Envelope<E> {
    V1(EventRecordV1<E>),
}

/// Version 1 of the stored event: every field of [`RecordedEvent`] but `hash`, in that order.
/// Frozen: changing it changes the on-disk format (the golden tests fail).
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::BorrowDecode)]
#[bincode(
    encode_bounds = "E: Serialize",
    borrow_decode_bounds = "E: Deserialize<'__de>"
)]
pub(crate) struct EventRecordV1<E> {
    pub sequence: u64,
    pub stream: String,
    pub version: u64,
    pub event_id: [u8; 16],
    pub request_id: [u8; 16],
    pub correlation_id: [u8; 16],
    pub recorded_at_us: i64,
    #[bincode(with_serde)]
    pub effective_period: Option<domain::Period>,
    pub actor: String,
    pub schema_version: u16,
    pub event_type: String,
    #[bincode(with_serde)]
    pub payload: E,
    pub prev_hash: [u8; HASH_LEN],
}

/// The latest record version, which reads are upcast to.
pub(crate) type LatestRecord<E> = EventRecordV1<E>;

/// Every version of the stored idempotency record. Variants are only ever appended.
///
/// Encoded and decoded by bincode's own derive, borrowing the stream id: opening a store
/// decodes every record, and serde read each hash a byte at a time (the bytes are those serde
/// gave, the golden test pins them).
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::BorrowDecode)]
enum IdempotencyEnvelope<'a> {
    V1(IdempotencyRecordV1<'a>),
}

/// Version 1 of the stored idempotency record. Frozen.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::BorrowDecode)]
pub(crate) struct IdempotencyRecordV1<'a> {
    pub command_hash: [u8; HASH_LEN],
    pub stream: &'a str,
    pub first_version: u64,
    pub last_version: u64,
    pub first_sequence: u64,
    pub last_sequence: u64,
    pub hash: [u8; HASH_LEN],
    pub recorded_at_us: i64,
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// The decode configuration: the encoding of [`config`] plus a limit on what decoding may
/// claim to allocate, so a corrupt length prefix fails instead of allocating. (The limit does
/// not change the bytes.)
fn decode_config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<EVENT_DECODE_CLAIM_MAX>,
> {
    bincode::config::standard().with_limit::<EVENT_DECODE_CLAIM_MAX>()
}

/// What a payload alone may claim when decoded: the body's limit less the most its envelope
/// can claim (sixteen times its bytes, see [`EVENT_DECODE_CLAIM_MAX`]).
const PAYLOAD_DECODE_CLAIM_MAX: usize = EVENT_DECODE_CLAIM_MAX - 16 * ENVELOPE_BYTES_MAX;

/// Checks that an event with `payload` can be stored and read back by every reader: its
/// encoding fits an event body beside the largest envelope, and those bytes decode — under
/// the readers' configuration and limit — to a value that consumes all of them. A writer
/// calls this before committing to the event, so that no accepted command leaves a record
/// its readers cannot read.
pub fn check_payload<E: Serialize + DeserializeOwned>(payload: &E) -> Result<(), CodecError> {
    let bytes = bincode::serde::encode_to_vec(payload, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    if bytes.len() > PAYLOAD_BYTES_MAX {
        return Err(CodecError::PayloadTooLarge { len: bytes.len() });
    }
    let limit = bincode::config::standard().with_limit::<PAYLOAD_DECODE_CLAIM_MAX>();
    let (_, used): (E, usize) = bincode::serde::borrow_decode_from_slice(&bytes, limit)
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes {
            used,
            len: bytes.len(),
        });
    }
    Ok(())
}

/// `SHA-256(prev_hash ‖ body)`: the chain hash of an event whose stored body is `body`.
pub fn chain_hash(prev_hash: &[u8; HASH_LEN], body: &[u8]) -> [u8; HASH_LEN] {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(body);
    hasher.finalize().into()
}

/// Encodes an event's canonical body.
pub(crate) fn encode_body<E: Serialize>(envelope: &Envelope<E>) -> Result<Vec<u8>, CodecError> {
    let body = bincode::encode_to_vec(envelope, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    if body.len() > EVENT_BODY_BYTES_MAX {
        return Err(CodecError::TooLarge { len: body.len() });
    }
    Ok(body)
}

/// Decodes an event's body and upcasts it to the latest record version.
pub(crate) fn decode_body<E: DeserializeOwned>(body: &[u8]) -> Result<LatestRecord<E>, CodecError> {
    if body.len() > EVENT_BODY_BYTES_MAX {
        return Err(CodecError::TooLarge { len: body.len() });
    }
    let (envelope, used): (Envelope<E>, usize) =
        bincode::borrow_decode_from_slice(body, decode_config())
            .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != body.len() {
        return Err(CodecError::TrailingBytes {
            used,
            len: body.len(),
        });
    }
    upcast(envelope)
}

/// Turns any stored version into the latest one. With only `V1` this checks and unwraps;
/// when `V2` is added, `V1` records are converted here and nowhere else.
pub(crate) fn upcast<E>(envelope: Envelope<E>) -> Result<LatestRecord<E>, CodecError> {
    match envelope {
        Envelope::V1(record) => {
            if record.schema_version != SCHEMA_VERSION_V1 {
                return Err(CodecError::SchemaVersion {
                    variant: 1,
                    found: record.schema_version,
                });
            }
            Ok(record)
        }
    }
}

/// Splits a stored value into `(body, hash)`. Public for auditors reading raw sled values.
pub fn split_value(value: &[u8]) -> Result<(&[u8], [u8; HASH_LEN]), CodecError> {
    let Some(split) = value.len().checked_sub(HASH_LEN) else {
        return Err(CodecError::ShortValue { len: value.len() });
    };
    let (body, hash) = value.split_at(split);
    let hash: [u8; HASH_LEN] = hash
        .try_into()
        .map_err(|_| CodecError::ShortValue { len: value.len() })?;
    Ok((body, hash))
}

/// The public event for a decoded record and its (verified) hash.
pub(crate) fn recorded<E>(record: LatestRecord<E>, hash: [u8; HASH_LEN]) -> RecordedEvent<E> {
    RecordedEvent {
        sequence: record.sequence,
        stream: record.stream,
        version: record.version,
        event_id: record.event_id,
        request_id: record.request_id,
        correlation_id: record.correlation_id,
        recorded_at_us: record.recorded_at_us,
        effective_period: record.effective_period,
        actor: record.actor,
        schema_version: record.schema_version,
        event_type: record.event_type,
        payload: record.payload,
        prev_hash: record.prev_hash,
        hash,
    }
}

/// Decodes a raw event and checks that its hash is `SHA-256(prev_hash ‖ body)` for the
/// `prev_hash` it records. (Whether that `prev_hash` is the previous event's hash is the
/// caller's check: it needs the previous event.) For auditors holding [`RawEvent`]s.
pub fn decode_raw<E: DeserializeOwned>(raw: &RawEvent) -> Result<RecordedEvent<E>, CodecError> {
    let record: LatestRecord<E> = decode_body(&raw.body)?;
    let computed = chain_hash(&record.prev_hash, &raw.body);
    if computed != raw.hash {
        return Err(CodecError::Hash {
            stored: raw.hash,
            computed,
        });
    }
    Ok(recorded(record, raw.hash))
}

/// Decodes a stored `body ‖ hash` value (from sled, or from ledgerd's `ReadStored`),
/// verifying the hash against the recorded `prev_hash`.
pub fn decode_value<E: DeserializeOwned>(value: &[u8]) -> Result<RecordedEvent<E>, CodecError> {
    let (body, hash) = split_value(value)?;
    let record: LatestRecord<E> = decode_body(body)?;
    let computed = chain_hash(&record.prev_hash, body);
    if computed != hash {
        return Err(CodecError::Hash {
            stored: hash,
            computed,
        });
    }
    Ok(recorded(record, hash))
}

pub(crate) fn encode_idempotency(record: &IdempotencyRecord) -> Result<Vec<u8>, CodecError> {
    let outcome = &record.outcome;
    let stored = IdempotencyEnvelope::V1(IdempotencyRecordV1 {
        command_hash: record.command_hash,
        stream: &outcome.stream,
        first_version: outcome.first_version,
        last_version: outcome.last_version,
        first_sequence: outcome.first_sequence,
        last_sequence: outcome.last_sequence,
        hash: outcome.hash,
        recorded_at_us: outcome.recorded_at_us,
    });
    bincode::encode_to_vec(&stored, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes an idempotency record as stored, borrowing its stream id from `bytes`.
pub(crate) fn decode_idempotency_view(bytes: &[u8]) -> Result<IdempotencyRecordV1<'_>, CodecError> {
    let (envelope, used): (IdempotencyEnvelope<'_>, usize) =
        bincode::borrow_decode_from_slice(bytes, decode_config())
            .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes {
            used,
            len: bytes.len(),
        });
    }
    let IdempotencyEnvelope::V1(stored) = envelope;
    Ok(stored)
}

/// Decodes an idempotency record; its outcome has `duplicate: false` (the original answer).
pub(crate) fn decode_idempotency(bytes: &[u8]) -> Result<IdempotencyRecord, CodecError> {
    let stored = decode_idempotency_view(bytes)?;
    Ok(IdempotencyRecord {
        command_hash: stored.command_hash,
        outcome: AppendOutcome {
            stream: stored.stream.to_string(),
            first_version: stored.first_version,
            last_version: stored.last_version,
            first_sequence: stored.first_sequence,
            last_sequence: stored.last_sequence,
            hash: stored.hash,
            recorded_at_us: stored.recorded_at_us,
            duplicate: false,
        },
    })
}

/// The canonical body `event`'s fields encode to (the stored encoding, as of its schema
/// version): what its chain hash covers. For an auditor or a consumer that receives events
/// over the wire and must not take their `hash` on trust.
pub fn canonical_body<E: Serialize + Clone>(
    event: &RecordedEvent<E>,
) -> Result<Vec<u8>, CodecError> {
    if event.schema_version != SCHEMA_VERSION_V1 {
        return Err(CodecError::SchemaVersion {
            variant: 1,
            found: event.schema_version,
        });
    }
    let envelope = Envelope::V1(EventRecordV1 {
        sequence: event.sequence,
        stream: event.stream.clone(),
        version: event.version,
        event_id: event.event_id,
        request_id: event.request_id,
        correlation_id: event.correlation_id,
        recorded_at_us: event.recorded_at_us,
        effective_period: event.effective_period,
        actor: event.actor.clone(),
        schema_version: event.schema_version,
        event_type: event.event_type.clone(),
        payload: event.payload.clone(),
        prev_hash: event.prev_hash,
    });
    encode_body(&envelope)
}

/// The chain hash `event` must have: `SHA-256(prev_hash ‖ body)` with the body its fields
/// encode to ([`canonical_body`]).
pub fn recomputed_hash<E: Serialize + Clone>(
    event: &RecordedEvent<E>,
) -> Result<[u8; HASH_LEN], CodecError> {
    Ok(chain_hash(&event.prev_hash, &canonical_body(event)?))
}

/// Verifies one link of the chain from its stored parts: that `stored` is
/// `SHA-256(prev_hash ‖ body)` for the previous event's hash `prev_hash`, that the body
/// decodes and records that same `prev_hash`, and that it records `sequence`. Returns the
/// event's hash. The one check of a link, shared by the store's own verification and the
/// auditor's (offline over sled values, online over bodies rebuilt from the wire).
pub fn verify_link<E: DeserializeOwned>(
    sequence: u64,
    prev_hash: &[u8; HASH_LEN],
    body: &[u8],
    stored: [u8; HASH_LEN],
) -> Result<[u8; HASH_LEN], crate::ChainError> {
    use crate::ChainError;
    let malformed = |reason: String| ChainError::Malformed { sequence, reason };
    let computed = chain_hash(prev_hash, body);
    if computed != stored {
        return Err(ChainError::HashMismatch {
            sequence,
            expected: computed,
            found: stored,
        });
    }
    let record = decode_body::<E>(body).map_err(|e| malformed(e.to_string()))?;
    if record.prev_hash != *prev_hash {
        return Err(ChainError::PrevHashMismatch {
            sequence,
            expected: *prev_hash,
            found: record.prev_hash,
        });
    }
    if record.sequence != sequence {
        return Err(malformed(format!("records sequence {}", record.sequence)));
    }
    Ok(stored)
}

/// [`verify_link`] of a stored `body ‖ hash` value.
pub fn verify_stored_link<E: DeserializeOwned>(
    sequence: u64,
    prev_hash: &[u8; HASH_LEN],
    value: &[u8],
) -> Result<[u8; HASH_LEN], crate::ChainError> {
    let (body, stored) = split_value(value).map_err(|e| crate::ChainError::Malformed {
        sequence,
        reason: e.to_string(),
    })?;
    verify_link::<E>(sequence, prev_hash, body, stored)
}

#[cfg(test)]
mod tests;
