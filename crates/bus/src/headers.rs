//! The headers every event message carries, so a consumer can order, de-duplicate and verify
//! it without decoding the payload.

use async_nats::HeaderMap;

use crate::error::BusError;

/// The ledger's global sequence (gapless from 1), decimal.
pub const HEADER_SEQUENCE: &str = "Ics-Sequence";
/// The aggregate stream id (`system`, `contract/C1`, …).
pub const HEADER_STREAM: &str = "Ics-Stream";
/// The event's version within its stream, decimal.
pub const HEADER_VERSION: &str = "Ics-Version";
/// The event's chain hash, SHA-256, 64 lowercase hex digits.
pub const HEADER_HASH: &str = "Ics-Hash";
/// The event type name (`ContractSigned`, …).
pub const HEADER_EVENT_TYPE: &str = "Ics-Event-Type";
/// JetStream's de-duplication key; for events, the event id (UUID text).
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// On the events the relay signs: the ledger's Ed25519 signature on the event (`audit::relay`),
/// 128 lowercase hex digits.
pub const HEADER_SIGNATURE: &str = "Ics-Signature";

/// The signature a message's headers carry, if they carry a well-formed one (a malformed one is
/// no signature).
pub fn signature_of(headers: &HeaderMap) -> Option<[u8; 64]> {
    let value = headers.get(HEADER_SIGNATURE)?.as_str();
    let mut signature = [0u8; 64];
    hex::decode_to_slice(value, &mut signature).ok()?;
    Some(signature)
}

/// JetStream atomic batch publish (ADR-50): the batch's id, unique per attempt.
pub const HEADER_BATCH_ID: &str = "Nats-Batch-Id";
/// The message's place in its batch, from 1.
pub const HEADER_BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
/// On the batch's last message, `1`: commit the batch, this message included.
pub const HEADER_BATCH_COMMIT: &str = "Nats-Batch-Commit";

/// The [`HEADER_EVENT_TYPE`] of checkpoint messages.
pub const CHECKPOINT_EVENT_TYPE: &str = "Checkpoint";

/// The decoded headers of one event message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventHeaders {
    /// `Nats-Msg-Id`: the event id.
    pub event_id: String,
    /// The global sequence in the ledger.
    pub sequence: u64,
    pub stream: String,
    pub version: u64,
    pub hash: [u8; 32],
    pub event_type: String,
    /// `Ics-Signature`, on the events the relay signs (a malformed one is none).
    pub signature: Option<[u8; 64]>,
}

/// Decodes the headers of an event message; every header must be present and well formed.
pub fn decode_headers(headers: &HeaderMap) -> Result<EventHeaders, BusError> {
    Ok(EventHeaders {
        event_id: text(headers, HEADER_MSG_ID)?.to_string(),
        sequence: number(headers, HEADER_SEQUENCE)?,
        stream: text(headers, HEADER_STREAM)?.to_string(),
        version: number(headers, HEADER_VERSION)?,
        hash: hash(headers, HEADER_HASH)?,
        event_type: text(headers, HEADER_EVENT_TYPE)?.to_string(),
        signature: signature_of(headers),
    })
}

/// Adds a header after checking the value cannot break the NATS header framing.
pub(crate) fn insert(
    headers: &mut HeaderMap,
    name: &'static str,
    value: &str,
) -> Result<(), BusError> {
    if value.is_empty() || value.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(BusError::InvalidHeader {
            name,
            value: value.to_string(),
            reason: "must be non-empty and on one line",
        });
    }
    headers.insert(name, value);
    Ok(())
}

fn text<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, BusError> {
    let value = headers
        .get(name)
        .ok_or(BusError::MissingHeader { name })?
        .as_str();
    if value.is_empty() {
        return Err(BusError::InvalidHeader {
            name,
            value: String::new(),
            reason: "is empty",
        });
    }
    Ok(value)
}

fn number(headers: &HeaderMap, name: &'static str) -> Result<u64, BusError> {
    let value = text(headers, name)?;
    value.parse().map_err(|_| BusError::InvalidHeader {
        name,
        value: value.to_string(),
        reason: "not a decimal u64",
    })
}

fn hash(headers: &HeaderMap, name: &'static str) -> Result<[u8; 32], BusError> {
    let value = text(headers, name)?;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(value, &mut hash).map_err(|_| BusError::InvalidHeader {
        name,
        value: value.to_string(),
        reason: "not 64 hex digits",
    })?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::publish::OutboundEvent;

    fn event() -> OutboundEvent {
        OutboundEvent {
            subject: "ics.kav.contract.ContractSigned".into(),
            event_id: "2f1d0c3e-6b1a-4c44-9a53-0d6c2a7e9b10".into(),
            sequence: 42,
            stream: "contract/C1".into(),
            version: 3,
            hash: [0xab; 32],
            event_type: "ContractSigned".into(),
            payload: bytes::Bytes::from_static(b"payload"),
            signature: Some([0x5a; 64]),
        }
    }

    #[test]
    fn headers_round_trip() {
        let event = event();
        let headers = event.headers().unwrap();
        assert_eq!(headers.get(HEADER_HASH).unwrap().as_str(), "ab".repeat(32));
        assert_eq!(headers.get(HEADER_SEQUENCE).unwrap().as_str(), "42");
        assert_eq!(signature_of(&headers), Some([0x5a; 64]));
        let decoded = decode_headers(&headers).unwrap();
        assert_eq!(
            decoded,
            EventHeaders {
                event_id: event.event_id.clone(),
                sequence: 42,
                stream: "contract/C1".into(),
                version: 3,
                hash: [0xab; 32],
                event_type: "ContractSigned".into(),
                signature: Some([0x5a; 64]),
            }
        );
    }

    #[test]
    fn bad_headers_are_named() {
        let mut headers = event().headers().unwrap();
        headers.insert(HEADER_SEQUENCE, "x1");
        assert!(matches!(
            decode_headers(&headers),
            Err(BusError::InvalidHeader {
                name: HEADER_SEQUENCE,
                ..
            })
        ));
        headers.insert(HEADER_SEQUENCE, "1");
        headers.insert(HEADER_HASH, "abcd");
        assert!(matches!(
            decode_headers(&headers),
            Err(BusError::InvalidHeader {
                name: HEADER_HASH,
                ..
            })
        ));
        assert!(matches!(
            decode_headers(&HeaderMap::new()),
            Err(BusError::MissingHeader { .. })
        ));
    }

    #[test]
    fn a_value_that_would_break_framing_is_refused() {
        let mut broken = event();
        broken.stream = "contract/C1\r\nX-Evil: 1".into();
        assert!(matches!(
            broken.headers(),
            Err(BusError::InvalidHeader {
                name: HEADER_STREAM,
                ..
            })
        ));
    }
}
