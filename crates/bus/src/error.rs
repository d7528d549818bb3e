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

    #[error("message header {name} is missing")]
    MissingHeader { name: &'static str },

    #[error("message header {name} = {value:?} is invalid: {reason}")]
    InvalidHeader {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
}
