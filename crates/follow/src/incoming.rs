//! An event as it reaches positiond — from a JetStream message or from ledgerd's `ReadAll`,
//! both of which carry the public `RecordedEvent` protobuf — decoded and checked for shape.

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
}

impl Incoming {
    /// Decodes a JetStream message's payload.
    pub fn decode(payload: &[u8]) -> Result<Incoming, IncomingError> {
        Incoming::from_proto(prost::Message::decode(payload)?)
    }

    pub fn from_proto(recorded: pb::RecordedEvent) -> Result<Incoming, IncomingError> {
        let hash = |bytes: &[u8], field| {
            <[u8; 32]>::try_from(bytes).map_err(|_| IncomingError::Hash { field })
        };
        if recorded.sequence == 0 {
            return Err(IncomingError::NoSequence);
        }
        Ok(Incoming {
            sequence: recorded.sequence,
            prev_hash: hash(&recorded.prev_hash, "prev_hash")?,
            hash: hash(&recorded.hash, "hash")?,
            stream: recorded.stream,
            version: recorded.version,
            recorded_at_us: recorded.recorded_at_us,
            event: api::event_from_proto(recorded.event.ok_or(IncomingError::NoEvent)?)?,
        })
    }
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
