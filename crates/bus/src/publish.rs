//! The publish half of the outbox relay: one message per committed event — sent alone and
//! acknowledged asynchronously, so a window of publishes can be in flight, or sent as one
//! JetStream atomic batch, stored all or none and acknowledged once.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, ErrorCode, context::PublishAckFuture, message::PublishMessage};
use bytes::Bytes;
use domain::SystemId;

use crate::error::BusError;
use crate::headers::{
    CHECKPOINT_EVENT_TYPE, HEADER_BATCH_COMMIT, HEADER_BATCH_ID, HEADER_BATCH_SEQUENCE,
    HEADER_EVENT_TYPE, HEADER_HASH, HEADER_MSG_ID, HEADER_SEQUENCE, HEADER_SIGNATURE,
    HEADER_STREAM, HEADER_VERSION, insert,
};
use crate::subjects::{checkpoint_msg_id, checkpoint_subject};

/// One committed event, ready to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundEvent {
    /// `ics.<system>.<family>.<event>` (see [`crate::subject`]).
    pub subject: String,
    /// Sent as `Nats-Msg-Id`, so an event sent again is a duplicate: the event id as UUID text
    /// (the relay appends a repair's token when the stream lost an event it had stored).
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
    /// The ledger's signature on the event (`audit::relay`), sent as `Ics-Signature` on the
    /// events the relay signs.
    pub signature: Option<[u8; 64]>,
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
        if let Some(signature) = &self.signature {
            insert(&mut headers, HEADER_SIGNATURE, &hex::encode(signature))?;
        }
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
            &checkpoint_msg_id(&self.system, self.sequence, &self.payload),
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

/// The most messages nats-server takes in one atomic batch (its `max_batch_size` default,
/// ADR-50); [`Publisher::publish_batch`] refuses more.
pub const BATCH_MESSAGES_MAX: usize = 1000;

/// JetStream's acknowledgement of an atomic batch: every message of it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchAck {
    /// The ledger sequence of the batch's first event.
    pub first: u64,
    /// The ledger sequence of its last event.
    pub last: u64,
    /// Where JetStream stored the last message.
    pub stream_sequence: u64,
}

/// A sent atomic batch whose acknowledgement has not been awaited yet; `.await` it.
#[must_use = "await the acknowledgement before advancing the relay's cursor"]
pub struct PendingBatch {
    inner: PublishAckFuture,
    batch_id: String,
    first: u64,
    last: u64,
    count: u64,
}

impl std::fmt::Debug for PendingBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingBatch")
            .field("batch_id", &self.batch_id)
            .field("first", &self.first)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl IntoFuture for PendingBatch {
    type Output = Result<BatchAck, BusError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        let PendingBatch {
            inner,
            batch_id,
            first,
            last,
            count,
        } = self;
        Box::pin(async move {
            let ack = match inner.await {
                Ok(ack) => ack,
                Err(source) if server_error(&source) == Some(DUPLICATE_IN_BATCH) => {
                    return Err(BusError::BatchHeld {
                        batch_id,
                        first,
                        last,
                    });
                }
                Err(source) => {
                    return Err(BusError::BatchAck {
                        batch_id,
                        first,
                        last,
                        source,
                    });
                }
            };
            if ack.batch_id.as_deref() != Some(batch_id.as_str()) || ack.batch_size != Some(count) {
                return Err(BusError::BatchMismatch {
                    batch_id,
                    count,
                    acknowledged_id: ack.batch_id,
                    acknowledged_count: ack.batch_size,
                });
            }
            Ok(BatchAck {
                first,
                last,
                stream_sequence: ack.sequence,
            })
        })
    }
}

/// nats-server's answer to an atomic batch holding a `Nats-Msg-Id` it has stored already: the
/// whole batch refused, nothing of it stored.
const DUPLICATE_IN_BATCH: ErrorCode = ErrorCode::ATOMIC_PUBLISH_CONTAINS_DUPLICATE_MESSAGE;

/// The JetStream error code behind a failed publish, if the server answered with one.
fn server_error(error: &jetstream::context::PublishError) -> Option<ErrorCode> {
    std::error::Error::source(error)?
        .downcast_ref::<jetstream::Error>()
        .map(jetstream::Error::error_code)
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

    /// Sends consecutive events (in log order, at most [`BATCH_MESSAGES_MAX`]) as one JetStream
    /// atomic batch and returns without waiting for its acknowledgement; await the returned
    /// [`PendingBatch`] for it.
    ///
    /// JetStream stores the whole batch or none of it, and acknowledges it once — and, with
    /// `sync_interval: always`, nats-server ≥ 2.15.1 syncs it to disk once rather than once a
    /// message, which is what makes a backlog cheap to catch up. Every message keeps its
    /// `Nats-Msg-Id`: a batch holding an event the stream already holds (a batch sent again
    /// after its acknowledgement was lost) is refused whole, [`BusError::BatchHeld`], and the
    /// relay resumes after what the stream holds. The stream must allow atomic publishing
    /// ([`StreamSettings`](crate::StreamSettings) asks for it, [`crate::ensure_stream`] turns
    /// it on).
    pub async fn publish_batch(&self, events: &[OutboundEvent]) -> Result<PendingBatch, BusError> {
        let (Some(first), Some((last, before_last))) = (events.first(), events.split_last()) else {
            return Err(BusError::BatchSize { count: 0 });
        };
        if events.len() > BATCH_MESSAGES_MAX {
            return Err(BusError::BatchSize {
                count: events.len(),
            });
        }
        // Unique per attempt: a batch sent again after a failure must not join one the server
        // still holds open from the first attempt.
        let batch_id = uuid::Uuid::new_v4().simple().to_string();
        let headers = |event: &OutboundEvent, place: usize| -> Result<HeaderMap, BusError> {
            let mut headers = event.headers()?;
            insert(&mut headers, HEADER_BATCH_ID, &batch_id)?;
            insert(&mut headers, HEADER_BATCH_SEQUENCE, &place.to_string())?;
            Ok(headers)
        };
        let client = self.js.client();
        for (index, event) in before_last.iter().enumerate() {
            client
                .publish_with_headers(
                    event.subject.clone(),
                    headers(event, index + 1)?,
                    event.payload.clone(),
                )
                .await
                .map_err(|source| BusError::BatchPublish {
                    subject: event.subject.clone(),
                    msg_id: event.event_id.clone(),
                    source,
                })?;
        }
        // The last message commits the batch, and its acknowledgement is the batch's.
        let mut commit = headers(last, events.len())?;
        insert(&mut commit, HEADER_BATCH_COMMIT, "1")?;
        let message = PublishMessage::build()
            .headers(commit)
            .payload(last.payload.clone());
        let inner = self
            .js
            .send_publish(last.subject.clone(), message)
            .await
            .map_err(|source| BusError::Publish {
                subject: last.subject.clone(),
                msg_id: last.event_id.clone(),
                source,
            })?;
        Ok(PendingBatch {
            inner,
            batch_id,
            first: first.sequence,
            last: last.sequence,
            count: events.len() as u64,
        })
    }

    /// Sends a checkpoint on `ics.<system>.audit.checkpoint`; like [`Publisher::publish`].
    pub async fn publish_checkpoint(
        &self,
        checkpoint: &OutboundCheckpoint,
    ) -> Result<PendingAck, BusError> {
        let headers = checkpoint.headers()?;
        self.send(
            checkpoint_subject(&checkpoint.system),
            checkpoint_msg_id(&checkpoint.system, checkpoint.sequence, &checkpoint.payload),
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
