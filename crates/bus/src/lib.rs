//! The NATS side of the ledger: subject names, the JetStream stream definition, the message
//! headers, the connection, and the publish half of the outbox relay.
//!
//! The sled event store is the record; NATS is the distribution path. Every committed event is
//! published once, in log order, on `ics.<system>.<family>.<event>` ([`subject`]) into one
//! stream capturing `ics.>` ([`STREAM_NAME`], [`StreamSettings`], [`ensure_stream`]). The
//! payload is the protobuf `RecordedEvent`; the headers ([`HEADER_SEQUENCE`] …) carry the
//! global sequence, stream, version, hash and event type so consumers can order, de-duplicate
//! and verify without decoding the payload ([`decode_headers`]).
//!
//! - [`Publisher::publish`] sends with `Nats-Msg-Id` = the event id and returns a
//!   [`PendingAck`] to await later, so the relay can pipeline a window of publishes and still
//!   advance its cursor strictly in order as the acknowledgements arrive.
//! - [`Publisher::publish_batch`] sends a run of events as one JetStream atomic batch: stored
//!   all or none, acknowledged once, synced to disk once — how the relay catches up a backlog.
//! - JetStream forgets message ids after the duplicate window, so on (re)start the relay asks
//!   [`last_published_sequence`] for the highest ledger sequence the stream already holds and
//!   resumes after it (after its own cursor only when the stream holds none of its events).
//! - [`holding`] says what the stream holds of a system's log in a few requests, and
//!   [`scan_system`] reads every event header of it when that is not enough: how the relay
//!   finds what a wiped or recreated stream lacks, to publish it again from the record.
//! - [`Alarm`]: a lasting trouble (NATS down, a consumer lost) logged when it starts or
//!   changes and then at most once a minute, never once per retry.
//! - [`connect_with`] makes a client that keeps reconnecting (with a capped delay) and starts
//!   even when NATS is down, as the user its [`Credentials`] name (an nkey seed file and the
//!   inbox prefix the user's permissions allow; `deploy/nats/permissions.conf`).
//! - [`ensure_stream`] creates the stream if it is missing and never changes one that exists:
//!   ledgerd's user may not update, purge or delete it.
//!
//! **API boundary:** this crate knows subjects, headers and JetStream; it knows nothing about
//! sled, protobuf or the relay's cursor. Payloads are opaque bytes.

mod alarm;
mod connect;
mod error;
mod headers;
mod publish;
mod stream;
mod subjects;

pub use alarm::{Alarm, Logged, REMIND_EVERY};
pub use async_nats;
pub use connect::{
    CONNECTION_TIMEOUT, Credentials, DEFAULT_INBOX_PREFIX, JETSTREAM_ACK_TIMEOUT,
    JETSTREAM_MAX_ACK_INFLIGHT, JETSTREAM_TIMEOUT, RECONNECT_DELAY_MAX, RECONNECT_DELAY_MIN,
    REQUEST_TIMEOUT, connect, connect_with, credentials, jetstream, reconnect_delay, redacted,
};
pub use error::BusError;
pub use headers::{
    CHECKPOINT_EVENT_TYPE, EventHeaders, HEADER_BATCH_COMMIT, HEADER_BATCH_ID,
    HEADER_BATCH_SEQUENCE, HEADER_EVENT_TYPE, HEADER_HASH, HEADER_MSG_ID, HEADER_SEQUENCE,
    HEADER_SIGNATURE, HEADER_STREAM, HEADER_VERSION, decode_headers, signature_of,
};
pub use publish::{
    Ack, BATCH_MESSAGES_MAX, BatchAck, OutboundCheckpoint, OutboundEvent, PendingAck, PendingBatch,
    Publisher,
};
pub use stream::{
    Holding, Read, StoredMessage, StreamSettings, allows_batches, differences, ensure_stream,
    holding, keeps_everything, last_checkpoint_sequence, last_published, last_published_sequence,
    read_subject, scan_system, stream_exists, system_message_count,
};
pub use subjects::{
    STREAM_NAME, STREAM_SUBJECTS, checkpoint_msg_id, checkpoint_subject, family_filter, subject,
    system_filter,
};
