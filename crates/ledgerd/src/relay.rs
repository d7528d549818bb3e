//! The outbox relay: publishes the committed log to JetStream, in log order, exactly once.
//!
//! The sled log is the record; NATS is the distribution path. The relay reads events after its
//! cursor, publishes a window of them (pipelined), and awaits the acknowledgements in order,
//! advancing the cursor only on an acknowledgement. Every message carries `Nats-Msg-Id` = the
//! event id, so a publish repeated after a lost acknowledgement is dropped by JetStream as a
//! duplicate. Duplicates are only remembered for the stream's duplicate window, so on every
//! (re)start the relay also asks JetStream for the highest ledger sequence it already holds and
//! resumes after the larger of that and its own cursor: nothing is published twice, even when
//! the relay was down for longer than the window.
//!
//! With NATS down the ledger keeps accepting commands; the relay retries with a capped backoff
//! and catches up when the server is back.
//!
//! Asked to stop, the relay makes one last pass, bounded by [`DRAIN_MAX`]: what was committed
//! before the stop — and the checkpoint ledgerd signs on its way down — reaches JetStream now
//! rather than at the next start. (Skipped when the relay was already waiting out an error:
//! NATS is then most likely down, and whatever is left goes at the next start as before.)

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use api::pb;
use bus::{OutboundEvent, Publisher, StreamSettings};
use domain::{Event, SystemId};
use prost::Message;
use store::RecordedEvent;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ledger::Store;

/// The relay's cursor in the store's meta: the last sequence JetStream acknowledged.
pub const CURSOR: &str = "relay";

/// The relay's cursor of checkpoints: the sequence of the last checkpoint JetStream
/// acknowledged.
pub const CHECKPOINT_CURSOR: &str = "relay-checkpoints";

const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest the last pass on stopping may take.
pub const DRAIN_MAX: Duration = Duration::from_secs(3);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub struct RelaySettings {
    pub system: SystemId,
    pub stream: StreamSettings,
    /// Events published before awaiting their acknowledgements.
    pub window_events: usize,
    /// Notified when a checkpoint is stored, so one signed while no events arrive is
    /// published without waiting for the next event.
    pub checkpoints_signed: Arc<Notify>,
}

/// Runs until `shutdown` is cancelled, then makes the last pass.
pub async fn run(
    store: Store,
    client: async_nats::Client,
    settings: RelaySettings,
    shutdown: CancellationToken,
) {
    let js = bus::jetstream(client);
    let mut backoff = BACKOFF_MIN;
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => break,
            result = relay(&store, &js, &settings, Until::Stopped(&shutdown)) => result,
        };
        match result {
            Ok(()) => break,
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "relay interrupted; will resume from the cursor");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    match tokio::time::timeout(DRAIN_MAX, relay(&store, &js, &settings, Until::CaughtUp)).await {
        Ok(Ok(())) => {
            tracing::info!("relay stopped: JetStream holds the whole log and its checkpoints")
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "relay stopped short; the rest goes at the next start")
        }
        Err(_) => tracing::warn!(
            limit_s = DRAIN_MAX.as_secs(),
            "relay stopped before catching up; the rest goes at the next start"
        ),
    }
}

/// When [`relay`] returns.
#[derive(Clone, Copy)]
enum Until<'a> {
    /// When this is cancelled (waiting for more while caught up).
    Stopped(&'a CancellationToken),
    /// As soon as everything committed, and every checkpoint stored, is published.
    CaughtUp,
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Publishes until `until` (`Ok`) or the first error.
async fn relay(
    store: &Store,
    js: &async_nats::jetstream::Context,
    settings: &RelaySettings,
    until: Until<'_>,
) -> Result<(), RelayError> {
    bus::ensure_stream(js, &settings.stream).await?;
    let in_stream = bus::last_published_sequence(js, &settings.stream.name, &settings.system)
        .await?
        .unwrap_or(0);
    let mut cursor = store.cursor(CURSOR)?.max(in_stream);
    tracing::info!(cursor, in_stream, "relay resuming");
    let publisher = Publisher::new(js.clone());
    let mut head = store.subscribe();
    loop {
        let page = store.read_all(cursor + 1, settings.window_events)?;
        if page.is_empty() {
            store.set_cursor(CURSOR, cursor)?;
            publish_checkpoints(store, &publisher, &settings.system, cursor).await?;
            let Until::Stopped(shutdown) = until else {
                return Ok(());
            };
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = settings.checkpoints_signed.notified() => {}
                changed = head.changed() => if changed.is_err() { return Ok(()) },
            }
            continue;
        }
        let mut acks = VecDeque::with_capacity(page.len());
        for recorded in &page {
            let outbound = outbound(&settings.system, recorded);
            acks.push_back(publisher.publish(&outbound).await?);
        }
        while let Some(pending) = acks.pop_front() {
            let sequence = pending.sequence();
            pending.await?;
            // The log is gapless and published in order, so each ack moves the cursor by one.
            assert_eq!(sequence, cursor + 1, "relay acknowledgements out of order");
            cursor = sequence;
        }
        store.set_cursor(CURSOR, cursor)?;
        publish_checkpoints(store, &publisher, &settings.system, cursor).await?;
    }
}

/// Publishes the stored checkpoints not yet acknowledged that cover no more than the events
/// already published (`published`), in order, advancing [`CHECKPOINT_CURSOR`] on each
/// acknowledgement. A checkpoint therefore always follows, in the stream, the event it
/// covers. `Nats-Msg-Id` makes a republished checkpoint a duplicate.
async fn publish_checkpoints(
    store: &Store,
    publisher: &Publisher,
    system: &SystemId,
    published: u64,
) -> Result<(), RelayError> {
    let mut done = store.cursor(CHECKPOINT_CURSOR)?;
    for (sequence, bytes) in store.checkpoints(done + 1, usize::MAX)? {
        if sequence > published {
            break;
        }
        let signed = audit::SignedCheckpoint::decode(&bytes).map_err(|e| {
            store::StoreError::Corrupt(format!("stored checkpoint {sequence}: {e}"))
        })?;
        let outbound = bus::OutboundCheckpoint {
            system: system.clone(),
            sequence,
            hash: signed.checkpoint.chain_hash,
            payload: bytes.into(),
        };
        publisher.publish_checkpoint(&outbound).await?.await?;
        done = sequence;
        store.set_cursor(CHECKPOINT_CURSOR, done)?;
    }
    Ok(())
}

/// The NATS message for one committed event: the protobuf `RecordedEvent` plus headers.
pub fn outbound(system: &SystemId, recorded: &RecordedEvent<Event>) -> OutboundEvent {
    let event = &recorded.payload;
    OutboundEvent {
        subject: bus::subject(system, event.family(), event.name()),
        event_id: uuid::Uuid::from_bytes(recorded.event_id).to_string(),
        sequence: recorded.sequence,
        stream: recorded.stream.clone(),
        version: recorded.version,
        hash: recorded.hash,
        event_type: recorded.event_type.clone(),
        payload: recorded_to_proto(recorded).encode_to_vec().into(),
    }
}

/// A stored event as the public protobuf message.
pub fn recorded_to_proto(recorded: &RecordedEvent<Event>) -> pb::RecordedEvent {
    pb::RecordedEvent {
        sequence: recorded.sequence,
        stream: recorded.stream.clone(),
        version: recorded.version,
        event_id: uuid::Uuid::from_bytes(recorded.event_id).to_string(),
        request_id: uuid::Uuid::from_bytes(recorded.request_id).to_string(),
        correlation_id: uuid::Uuid::from_bytes(recorded.correlation_id).to_string(),
        recorded_at_us: recorded.recorded_at_us,
        effective_period: recorded.effective_period.map(api::period_to_proto),
        actor: recorded.actor.clone(),
        schema_version: u32::from(recorded.schema_version),
        event_type: recorded.event_type.clone(),
        prev_hash: recorded.prev_hash.to_vec(),
        hash: recorded.hash.to_vec(),
        event: Some(api::event_to_proto(&recorded.payload)),
    }
}
