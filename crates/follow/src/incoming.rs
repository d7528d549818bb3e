//! An event as it reaches a read-side service — from a JetStream message (the public
//! `RecordedEvent` protobuf) or from ledgerd's `ReadStored` (the bytes ledgerd stored) —
//! decoded and checked: its `hash` must be the chain hash its own content gives (the store's
//! canonical encoding of every field, see `store::codec`), so a message whose hash was
//! changed, or whose content was changed under its hash, is refused before it reaches a
//! projection.

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
    #[error("not an event as ledgerd stores it: {0}")]
    Stored(store::codec::CodecError),
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
        Ok(checked(stored))
    }

    /// Decodes an event as ledgerd stores it (a `ReadStored` value: body ‖ hash), its hash
    /// checked against its content.
    pub fn from_stored(value: &[u8]) -> Result<Incoming, IncomingError> {
        let stored = store::codec::decode_value::<Event>(value).map_err(IncomingError::Stored)?;
        Ok(checked(stored))
    }

    /// The chain hash `recorded`'s content gives (whatever its `hash` field claims).
    pub fn content_hash(recorded: &pb::RecordedEvent) -> Result<[u8; 32], IncomingError> {
        Ok(store::codec::recomputed_hash(&stored(recorded.clone())?)?)
    }
}

/// `stored` as an `Incoming` — only once its hash has been checked against its content (not a
/// public `From`: a record built from the wire may claim any hash).
fn checked(stored: store::RecordedEvent<Event>) -> Incoming {
    Incoming {
        sequence: stored.sequence,
        stream: stored.stream,
        version: stored.version,
        recorded_at_us: stored.recorded_at_us,
        prev_hash: stored.prev_hash,
        hash: stored.hash,
        event: stored.payload,
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
            let _ = Incoming::from_stored(&bytes);
        }
    }

    /// An event as stored (body ‖ hash) for `event` at sequence 1.
    fn stored_value(event: Event) -> Vec<u8> {
        let record = store::RecordedEvent {
            sequence: 1,
            stream: "system".to_string(),
            version: 1,
            event_id: [1; 16],
            request_id: [2; 16],
            correlation_id: [2; 16],
            recorded_at_us: 1_543_622_400_000_000,
            effective_period: None,
            actor: "system-finance".to_string(),
            schema_version: store::codec::SCHEMA_VERSION_LATEST,
            event_type: "system.system_established".to_string(),
            payload: event,
            prev_hash: [0; 32],
            hash: [0; 32],
        };
        let body = store::codec::canonical_body(&record).expect("encodes");
        let mut value = body.clone();
        value.extend_from_slice(&store::codec::chain_hash(&record.prev_hash, &body));
        value
    }

    #[test]
    fn a_stored_value_decodes_and_a_changed_one_is_refused() {
        let event = domain::Event::System(domain::SystemEvent::Established {
            system: domain::SystemId::new("kav").expect("valid"),
            name: domain::Text::new("Kingsmere").expect("valid"),
            first_year: domain::FinancialYear::new(2018).expect("valid"),
        });
        let value = stored_value(event.clone());
        let incoming = Incoming::from_stored(&value).expect("decodes");
        assert_eq!((incoming.sequence, &incoming.event), (1, &event));

        let mut changed = value.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 0x01;
        assert!(
            Incoming::from_stored(&changed).is_err(),
            "a changed byte is refused"
        );
        let mut rehashed = value;
        let last = rehashed.len() - 1;
        rehashed[last] ^= 0x01;
        assert!(matches!(
            Incoming::from_stored(&rehashed),
            Err(IncomingError::Stored(_))
        ));
    }
}
