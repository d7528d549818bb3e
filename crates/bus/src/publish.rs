//! The publish half of the outbox relay: one message per committed event, acknowledged
//! asynchronously so a window of publishes can be in flight.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use bytes::Bytes;
use domain::SystemId;

use crate::error::BusError;
use crate::headers::{
    CHECKPOINT_EVENT_TYPE, HEADER_EVENT_TYPE, HEADER_HASH, HEADER_MSG_ID, HEADER_SEQUENCE,
    HEADER_STREAM, HEADER_VERSION, insert,
};
use crate::subjects::{checkpoint_msg_id, checkpoint_subject};

/// One committed event, ready to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundEvent {
    /// `ics.<system>.<family>.<event>` (see [`crate::subject`]).
    pub subject: String,
    /// The event id as UUID text; sent as `Nats-Msg-Id`, so a republished event is a duplicate.
    pub event_id: String,
    /// The ledger's global sequence.
    pub sequence: u64,
    /// The aggregate stream id.
    pub stream: String,
    /// The version within `stream`.
    pub version: u64,
    /// The event's chain hash.
    pub hash: [u8; 32],
    /// The event type name.
    pub event_type: String,
    /// The encoded protobuf `RecordedEvent`.
    pub payload: Bytes,
}

impl OutboundEvent {
    /// The message headers: `Nats-Msg-Id` and the `Ics-*` headers.
    pub fn headers(&self) -> Result<HeaderMap, BusError> {
        let mut headers = HeaderMap::new();
        insert(&mut headers, HEADER_MSG_ID, &self.event_id)?;
        insert(&mut headers, HEADER_SEQUENCE, &self.sequence.to_string())?;
        insert(&mut headers, HEADER_STREAM, &self.stream)?;
        insert(&mut headers, HEADER_VERSION, &self.version.to_string())?;
        insert(&mut headers, HEADER_HASH, &hex::encode(self.hash))?;
        insert(&mut headers, HEADER_EVENT_TYPE, &self.event_type)?;
        Ok(headers)
    }
}

/// A signed checkpoint of the hash chain, published on `ics.<system>.audit.checkpoint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundCheckpoint {
    pub system: SystemId,
    /// The sequence the checkpoint covers.
    pub sequence: u64,
    /// The chain hash at `sequence`.
    pub hash: [u8; 32],
    /// The encoded protobuf checkpoint (with its signature).
    pub payload: Bytes,
}

impl OutboundCheckpoint {
    /// `Nats-Msg-Id` = [`checkpoint_msg_id`], `Ics-Sequence`, `Ics-Hash` and
    /// `Ics-Event-Type: Checkpoint`.
    pub fn headers(&self) -> Result<HeaderMap, BusError> {
        let mut headers = HeaderMap::new();
        insert(
            &mut headers,
            HEADER_MSG_ID,
            &checkpoint_msg_id(&self.system, self.sequence),
        )?;
        insert(&mut headers, HEADER_SEQUENCE, &self.sequence.to_string())?;
        insert(&mut headers, HEADER_HASH, &hex::encode(self.hash))?;
        insert(&mut headers, HEADER_EVENT_TYPE, CHECKPOINT_EVENT_TYPE)?;
        Ok(headers)
    }
}

/// JetStream's acknowledgement of one published message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The ledger sequence that was published (`Ics-Sequence`).
    pub sequence: u64,
    /// Where JetStream stored it (for a duplicate: where it stored the original).
    pub stream_sequence: u64,
    /// JetStream already held a message with this `Nats-Msg-Id` (within the duplicate window)
    /// and stored nothing new.
    pub duplicate: bool,
}

/// A sent message whose acknowledgement has not been awaited yet. `.await` it (in publish
/// order) to learn whether JetStream stored it.
///
/// Dropping it without awaiting is allowed (the client reaps the acknowledgement), but then
/// nothing is known about whether the message was stored.
#[must_use = "await the acknowledgement before advancing the relay's cursor"]
pub struct PendingAck {
    inner: PublishAckFuture,
    sequence: u64,
    subject: String,
    msg_id: String,
}

impl PendingAck {
    /// The ledger sequence of the message.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
}

impl std::fmt::Debug for PendingAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAck")
            .field("sequence", &self.sequence)
            .field("subject", &self.subject)
            .field("msg_id", &self.msg_id)
            .finish_non_exhaustive()
    }
}

impl IntoFuture for PendingAck {
    type Output = Result<Ack, BusError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        let PendingAck {
            inner,
            sequence,
            subject,
            msg_id,
        } = self;
        Box::pin(async move {
            match inner.await {
                Ok(ack) => Ok(Ack {
                    sequence,
                    stream_sequence: ack.sequence,
                    duplicate: ack.duplicate,
                }),
                Err(source) => Err(BusError::Ack {
                    subject,
                    msg_id,
                    source,
                }),
            }
        })
    }
}

/// Publishes events to JetStream with `Nats-Msg-Id` = event id and the `Ics-*` headers.
///
/// Cloning is cheap (it shares the connection).
#[derive(Clone, Debug)]
pub struct Publisher {
    js: jetstream::Context,
}

impl Publisher {
    pub fn new(js: jetstream::Context) -> Self {
        Publisher { js }
    }

    /// The JetStream context it publishes through.
    pub fn context(&self) -> &jetstream::Context {
        &self.js
    }

    /// Sends one event and returns without waiting for JetStream's acknowledgement; await the
    /// returned [`PendingAck`] for it.
    ///
    /// The outer `await` waits only for the message to be handed to the connection (and for an
    /// in-flight permit: the context bounds unacknowledged publishes, see
    /// [`crate::JETSTREAM_MAX_ACK_INFLIGHT`]). JetStream stores the messages of one connection
    /// in the order they were sent; a caller that awaits the acks in that order and stops at the
    /// first error can advance a cursor one by one. While the connection is down the message is
    /// buffered by the client and the ack either arrives after the reconnect or times out
    /// ([`crate::JETSTREAM_ACK_TIMEOUT`]); a retry after a timeout is dropped as a duplicate
    /// if the first attempt was stored.
    pub async fn publish(&self, event: &OutboundEvent) -> Result<PendingAck, BusError> {
        let headers = event.headers()?;
        self.send(
            event.subject.clone(),
            event.event_id.clone(),
            event.sequence,
            headers,
            event.payload.clone(),
        )
        .await
    }

    /// Sends a checkpoint on `ics.<system>.audit.checkpoint`; like [`Publisher::publish`].
    pub async fn publish_checkpoint(
        &self,
        checkpoint: &OutboundCheckpoint,
    ) -> Result<PendingAck, BusError> {
        let headers = checkpoint.headers()?;
        self.send(
            checkpoint_subject(&checkpoint.system),
            checkpoint_msg_id(&checkpoint.system, checkpoint.sequence),
            checkpoint.sequence,
            headers,
            checkpoint.payload.clone(),
        )
        .await
    }

    async fn send(
        &self,
        subject: String,
        msg_id: String,
        sequence: u64,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<PendingAck, BusError> {
        // The headers already hold Nats-Msg-Id; `PublishMessage::message_id` would set the same.
        let message = PublishMessage::build().headers(headers).payload(payload);
        match self.js.send_publish(subject.clone(), message).await {
            Ok(inner) => Ok(PendingAck {
                inner,
                sequence,
                subject,
                msg_id,
            }),
            Err(source) => Err(BusError::Publish {
                subject,
                msg_id,
                source,
            }),
        }
    }
}
