//! The store's public values: what an append asks for, what it answers, what a read returns.
//!
//! These are API types, deliberately separate from the on-disk records in [`crate::codec`]:
//! the disk format is frozen by golden-bytes tests and evolves only by adding envelope
//! versions, while these types may grow fields (as long as the codec maps them).

use std::fmt;

use domain::Period;

/// The durable end of the log: the last flushed event's sequence and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Head {
    /// Global sequence of the last durable event; 0 when the store is empty.
    pub sequence: u64,
    /// Hash of that event; all zeroes when the store is empty (it is the first event's
    /// `prev_hash`).
    pub hash: [u8; 32],
}

impl Head {
    /// The head of an empty store.
    pub const EMPTY: Head = Head {
        sequence: 0,
        hash: [0; 32],
    };
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.sequence, hex::encode(self.hash))
    }
}

/// One command's worth of events for one stream, appended all-or-nothing.
///
/// The caller decides: its request id is new (never appended before, nor in flight) and
/// `stream_version` is the stream's version as the appends queued before it leave it. A
/// request that breaks either stops the store ([`crate::StoreError::ContractBroken`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendRequest<E> {
    /// Idempotency key, kept with the request's outcome for [`crate::EventStore::lookup_request`].
    pub request_id: [u8; 16],
    /// Fingerprint of the command, kept in the same record: what a resend must match.
    pub command_hash: [u8; 32],
    pub stream: String,
    /// The version of `stream` these events follow (0: it has none yet); the first event
    /// gets the next.
    pub stream_version: u64,
    /// Who posted it.
    pub actor: String,
    pub correlation_id: [u8; 16],
    pub events: Vec<NewEvent<E>>,
}

/// An event to append; the store assigns everything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent<E> {
    /// Unique id of the event (a UUID); JetStream de-duplicates on it.
    pub event_id: [u8; 16],
    pub event_type: String,
    /// The period the event is about (valid time), where it has one.
    pub effective_period: Option<Period>,
    pub payload: E,
}

/// Where a committed request landed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AppendOutcome {
    pub stream: String,
    pub first_version: u64,
    pub last_version: u64,
    pub first_sequence: u64,
    pub last_sequence: u64,
    /// Hash of the request's last event.
    pub hash: [u8; 32],
    /// Transaction time of the request, shared by all its events.
    pub recorded_at_us: i64,
    /// True when this is the answer to a resend (the caller's, from the request's record):
    /// nothing was written this time. The store itself always answers `false`.
    pub duplicate: bool,
}

/// The stored answer to a committed request, keyed by its request id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyRecord {
    pub command_hash: [u8; 32],
    /// The original outcome (`duplicate` is false).
    pub outcome: AppendOutcome,
}

impl IdempotencyRecord {
    /// Whether a command with fingerprint `command_hash` is this request sent again: its
    /// fingerprint is the one recorded, or the record was rebuilt from a replica that does not
    /// carry fingerprints ([`crate::restore::FINGERPRINT_UNKNOWN`]).
    pub fn matches(&self, command_hash: &[u8; 32]) -> bool {
        self.command_hash == *command_hash
            || self.command_hash == crate::restore::FINGERPRINT_UNKNOWN
    }
}

/// A committed event, decoded and upcast to the latest record version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent<E> {
    /// Global sequence, gapless from 1.
    pub sequence: u64,
    pub stream: String,
    /// Version within the stream, gapless from 1.
    pub version: u64,
    pub event_id: [u8; 16],
    pub request_id: [u8; 16],
    pub correlation_id: [u8; 16],
    /// Transaction time, unix microseconds; strictly increasing from request to request.
    pub recorded_at_us: i64,
    pub effective_period: Option<Period>,
    pub actor: String,
    /// Version of the envelope the event was written with (1 = `V1`); kept through upcasting.
    pub schema_version: u16,
    pub event_type: String,
    pub payload: E,
    pub prev_hash: [u8; 32],
    /// `SHA-256(prev_hash ‖ body)`, where body is the stored canonical encoding.
    pub hash: [u8; 32],
}

/// An event exactly as stored: what an auditor hashes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawEvent {
    pub sequence: u64,
    /// Canonical bincode encoding of the envelope (everything but the hash).
    pub body: Vec<u8>,
    /// `SHA-256(prev_hash ‖ body)`.
    pub hash: [u8; 32],
}

/// What the writer has committed since the store was opened (for metrics and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct StoreStats {
    /// Flushed batches (one `apply_batch` and one flush each).
    pub batches_committed: u64,
    pub requests_committed: u64,
    pub events_committed: u64,
}
