//! Everything that can go wrong between the ledger and NATS.

use async_nats::jetstream::context::{CreateStreamError, GetStreamError, PublishError};
use async_nats::jetstream::stream::{InfoError, LastRawMessageError};

/// An error talking to NATS or reading what it holds.
///
/// Connection, publish and acknowledgement errors are transient (the broker is down or slow):
/// the relay retries from its cursor. [`BusError::StreamMismatch`] and the header errors are
/// configuration or data errors that a retry will not fix.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("connecting to NATS at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },

    #[error("creating or looking up JetStream stream {stream}: {source}")]
    CreateStream {
        stream: String,
        #[source]
        source: CreateStreamError,
    },

    /// An nkey seed or inbox prefix that cannot be used (a configuration error).
    #[error("NATS credentials from {source_name}: {reason}")]
    Credentials { source_name: String, reason: String },

    #[error("looking up JetStream stream {stream}: {source}")]
    GetStream {
        stream: String,
        #[source]
        source: GetStreamError,
    },

    /// The stream exists with other subjects than this deployment needs; it is not changed
    /// behind the operator's back.
    #[error(
        "JetStream stream {stream} exists with subjects {existing:?}, but this deployment needs \
         {wanted:?}; fix or delete the stream (`nats stream edit {stream}`) or configure another \
         stream name"
    )]
    StreamMismatch {
        stream: String,
        existing: Vec<String>,
        wanted: Vec<String>,
    },

    #[error("publishing {subject} (Nats-Msg-Id {msg_id}): {source}")]
    Publish {
        subject: String,
        msg_id: String,
        #[source]
        source: PublishError,
    },

    #[error("no JetStream acknowledgement for {subject} (Nats-Msg-Id {msg_id}): {source}")]
    Ack {
        subject: String,
        msg_id: String,
        #[source]
        source: PublishError,
    },

    /// One of a batch's messages could not be handed to the connection.
    #[error("publishing {subject} (Nats-Msg-Id {msg_id}) in a batch: {source}")]
    BatchPublish {
        subject: String,
        msg_id: String,
        #[source]
        source: async_nats::PublishError,
    },

    #[error(
        "no JetStream acknowledgement for the batch {batch_id} of events {first}..={last}: {source}"
    )]
    BatchAck {
        batch_id: String,
        first: u64,
        last: u64,
        #[source]
        source: PublishError,
    },

    /// JetStream refused a whole batch because it already holds one of its events (by
    /// `Nats-Msg-Id`): the batch was sent again after its acknowledgement was lost, or the
    /// publisher resumed from a stale cursor. Nothing of the batch was stored this time; resume
    /// after what the stream holds.
    #[error(
        "JetStream already holds events of the batch {batch_id} ({first}..={last}); nothing of \
         it was stored again"
    )]
    BatchHeld {
        batch_id: String,
        first: u64,
        last: u64,
    },

    /// JetStream acknowledged a batch as another id or size than was sent.
    #[error(
        "JetStream acknowledged the batch {batch_id} of {count} messages as {acknowledged_id:?} \
         of {acknowledged_count:?}"
    )]
    BatchMismatch {
        batch_id: String,
        count: u64,
        acknowledged_id: Option<String>,
        acknowledged_count: Option<u64>,
    },

    #[error("an atomic batch takes 1 to {max} messages, not {count}", max = crate::BATCH_MESSAGES_MAX)]
    BatchSize { count: usize },

    /// Reading the stream's per-subject message counts failed.
    #[error("reading the subjects of JetStream stream {stream}: {source}")]
    Info {
        stream: String,
        #[source]
        source: InfoError,
    },

    #[error("reading the last message on {filter} in stream {stream}: {source}")]
    LastMessage {
        stream: String,
        filter: String,
        #[source]
        source: LastRawMessageError,
    },

    /// Reading the headers of a system's messages one by one failed.
    #[error("scanning JetStream stream {stream}: {reason}")]
    Scan { stream: String, reason: String },

    #[error("message header {name} is missing")]
    MissingHeader { name: &'static str },

    #[error("message header {name} = {value:?} is invalid: {reason}")]
    InvalidHeader {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
}
