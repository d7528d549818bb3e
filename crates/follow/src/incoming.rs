//! An event as it reaches a read-side service — from a JetStream message or from ledgerd's
//! `ReadAll`, both of which carry the public `RecordedEvent` protobuf — decoded and checked:
//! its `hash` must be the chain hash its own content gives (the store's canonical encoding of
//! every field, see `store::codec::recomputed_hash`), so a message whose hash was changed,
//! or whose content was changed under its hash, is refused before it reaches a projection.

use api::pb;
use domain::Event;

/// A recorded event: where it sits in the log, its chain link, and the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    pub sequence: u64,
    pub stream: String,
    pub version: u64,
    /// Transaction time, microseconds since the Unix epoch.
    pub recorded_at_us: i64,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    pub event: Event,
}

/// Why a message could not be read as an event.
#[derive(Debug, thiserror::Error)]
pub enum IncomingError {
    #[error("not a RecordedEvent protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("{field} is not 32 bytes")]
    Hash { field: &'static str },
    #[error("sequence 0")]
    NoSequence,
    #[error("no event")]
    NoEvent,
    #[error("the event does not convert: {0}")]
    Event(#[from] domain::DomainError),
    #[error("{field} is malformed")]
    Field { field: &'static str },
    #[error("its hash does not match its content (the content hashes to {computed})")]
    HashMismatch { computed: String },
    #[error("its content cannot be hashed: {0}")]
    Unhashable(#[from] store::codec::CodecError),
}

impl Incoming {
    /// Decodes a JetStream message's payload.
    pub fn decode(payload: &[u8]) -> Result<Incoming, IncomingError> {
        Incoming::from_proto(prost::Message::decode(payload)?)
    }

    pub fn from_proto(recorded: pb::RecordedEvent) -> Result<Incoming, IncomingError> {
        let stored = stored(recorded)?;
        let computed = store::codec::recomputed_hash(&stored)?;
        if computed != stored.hash {
            return Err(IncomingError::HashMismatch {
                computed: hex::encode(computed),
            });
        }
        Ok(Incoming {
            sequence: stored.sequence,
            stream: stored.stream,
            version: stored.version,
            recorded_at_us: stored.recorded_at_us,
            prev_hash: stored.prev_hash,
            hash: stored.hash,
            event: stored.payload,
        })
    }

    /// The chain hash `recorded`'s content gives (whatever its `hash` field claims).
    pub fn content_hash(recorded: &pb::RecordedEvent) -> Result<[u8; 32], IncomingError> {
        Ok(store::codec::recomputed_hash(&stored(recorded.clone())?)?)
    }
}

/// The store's record of `recorded`, as ledgerd stored it (if it is what it says) — whose
/// canonical body (`store::codec::canonical_body`) is what its chain hash covers. Its
/// `hash` is taken as given: checking it is the caller's job.
pub fn stored(recorded: pb::RecordedEvent) -> Result<store::RecordedEvent<Event>, IncomingError> {
    let hash = |bytes: &[u8], field| {
        <[u8; 32]>::try_from(bytes).map_err(|_| IncomingError::Hash { field })
    };
    if recorded.sequence == 0 {
        return Err(IncomingError::NoSequence);
    }
    let uuid = |text: &str, field| {
        api::parse_uuid(text, field).map_err(|_| IncomingError::Field { field })
    };
    let effective_period = recorded
        .effective_period
        .map(|p| api::period_from_proto(Some(p), "effective_period"))
        .transpose()?;
    let schema_version =
        u16::try_from(recorded.schema_version).map_err(|_| IncomingError::Field {
            field: "schema_version",
        })?;
    let stored = store::RecordedEvent {
        sequence: recorded.sequence,
        event_id: uuid(&recorded.event_id, "event_id")?,
        request_id: uuid(&recorded.request_id, "request_id")?,
        correlation_id: uuid(&recorded.correlation_id, "correlation_id")?,
        effective_period,
        schema_version,
        prev_hash: hash(&recorded.prev_hash, "prev_hash")?,
        hash: hash(&recorded.hash, "hash")?,
        stream: recorded.stream,
        version: recorded.version,
        recorded_at_us: recorded.recorded_at_us,
        actor: recorded.actor,
        event_type: recorded.event_type,
        payload: api::event_from_proto(recorded.event.ok_or(IncomingError::NoEvent)?)?,
    };
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// A NATS payload is untrusted: any bytes decode to an event or an error.
        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Incoming::decode(&bytes);
        }
    }
}
