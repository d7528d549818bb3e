//! The outbox relay: publishes the committed log to JetStream, in log order, exactly once.
//!
//! The sled log is the record; NATS is the distribution path. The relay reads events after its
//! cursor — up to a window — and publishes them: a few one by one (pipelined, the
//! acknowledgements awaited in order), a backlog of [`RelaySettings::batch_from`] or more as
//! JetStream atomic batches, each stored all or none, acknowledged once and, with
//! `sync_interval: always`, synced to disk once where single messages are synced one by one.
//! The cursor advances only on an acknowledgement. Every message carries `Nats-Msg-Id` = the
//! event id, so a publish repeated after a lost acknowledgement is dropped by JetStream as a
//! duplicate (a repeated batch is refused whole, and the relay resumes after what the stream
//! holds). Duplicates are only remembered for the stream's duplicate window, so on every
//! (re)start the relay asks JetStream for the highest ledger sequence it already holds and
//! resumes after that: nothing is published twice, even when the relay was down for longer
//! than the window. And nothing the stream lost stays lost: nats-server can lose messages it
//! acknowledged (with its default lazy fsync, in a crash), so when the stream holds less than
//! the relay's cursor says was acknowledged, the relay publishes the lost tail again — on its
//! start, and whenever its connection to NATS is re-established (a restarted server), which
//! makes it start over. (Its own cursor is used only when the stream holds none of this
//! system's events, which cannot tell a lost stream from one whose limits let them all go.)
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
use std::sync::atomic::Ordering;
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
    /// Events read and published before awaiting their acknowledgements.
    pub window_events: usize,
    /// Publish a read of this many events or more as atomic batches (of at most
    /// [`bus::BATCH_MESSAGES_MAX`]); fewer go one by one. A batch costs nats-server a fixed
    /// ~2 ms but one fsync, a single message an fsync each (~0.2–0.3 ms on this project's
    /// machine, more on a busy disk), so 16 is about where batches start to win with
    /// `sync_interval: always` (`crates/bench/README.md`).
    pub batch_from: usize,
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
    let mut backoff = Backoff::default();
    loop {
        let mut reached = false;
        let result = tokio::select! {
            () = shutdown.cancelled() => break,
            result = relay(&store, &js, &settings, Until::Stopped(&shutdown), &mut reached) => result,
        };
        match result {
            Ok(()) => break,
            Err(RelayError::Reconnected) => {
                tracing::info!("NATS reconnected: the relay resumes from what the stream holds");
                backoff = Backoff::default();
            }
            Err(RelayError::Bus(error @ bus::BusError::BatchHeld { .. })) => {
                tracing::info!(%error, "the relay resumes after what the stream holds");
                backoff = Backoff::default();
            }
            Err(error) => {
                let wait = backoff.after_failure(reached);
                tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "relay interrupted; will resume from the cursor");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    let mut reached = false;
    let last_pass = relay(&store, &js, &settings, Until::CaughtUp, &mut reached);
    match tokio::time::timeout(DRAIN_MAX, last_pass).await {
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

/// How long the relay waits before its next attempt after one failed.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: BACKOFF_MIN }
    }
}

impl Backoff {
    /// The wait after a failed attempt: doubling from [`BACKOFF_MIN`] up to [`BACKOFF_MAX`]
    /// while attempts fail before JetStream answers (NATS down: no point asking faster), and
    /// back to the shortest after an attempt that `reached` JetStream — a relay that ran for
    /// hours since NATS was last down does not wait out the longest backoff on its next error.
    fn after_failure(&mut self, reached: bool) -> Duration {
        if reached {
            self.next = BACKOFF_MIN;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
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
    #[error("reconnected to NATS: starting over from what the stream holds")]
    Reconnected,
}

/// How often an idle relay looks for a reconnection to NATS.
const RECONNECT_CHECK: Duration = Duration::from_secs(1);

/// Where the relay resumes: after the last event the stream holds — whether the relay's cursor
/// is behind it (published, but stopped before recording the acknowledgement) or ahead of it
/// (the stream lost what it acknowledged) — or after its own cursor when the stream holds none.
fn resume_after(acknowledged: u64, in_stream: Option<u64>) -> u64 {
    in_stream.unwrap_or(acknowledged)
}

/// The NATS connection the relay started on: a reconnection since means the server may have
/// restarted and lost what it had not written to disk.
struct Connection {
    statistics: Arc<async_nats::Statistics>,
    connects: u64,
}

impl Connection {
    fn new(js: &async_nats::jetstream::Context) -> Self {
        let statistics = js.client().statistics();
        let connects = statistics.connects.load(Ordering::Relaxed);
        Connection {
            statistics,
            connects,
        }
    }

    fn check(&self) -> Result<(), RelayError> {
        if self.statistics.connects.load(Ordering::Relaxed) == self.connects {
            Ok(())
        } else {
            Err(RelayError::Reconnected)
        }
    }
}

/// Publishes until `until` (`Ok`) or the first error; `reached` is set once JetStream has
/// answered (the stream is there and said what it holds).
async fn relay(
    store: &Store,
    js: &async_nats::jetstream::Context,
    settings: &RelaySettings,
    until: Until<'_>,
    reached: &mut bool,
) -> Result<(), RelayError> {
    bus::ensure_stream(js, &settings.stream).await?;
    // Counted (connected now) before asking the stream what it holds: a reconnection after
    // this makes the relay start over.
    let connection = Connection::new(js);
    let in_stream =
        bus::last_published_sequence(js, &settings.stream.name, &settings.system).await?;
    *reached = true;
    let acknowledged = store.cursor(CURSOR)?;
    let mut cursor = resume_after(acknowledged, in_stream);
    if cursor < acknowledged {
        tracing::warn!(
            in_stream = cursor,
            acknowledged,
            "JetStream lost events it had acknowledged; publishing them again"
        );
    }
    tracing::info!(cursor, ?in_stream, "relay resuming");
    let publisher = Publisher::new(js.clone());
    let mut head = store.subscribe();
    loop {
        connection.check()?;
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
                () = tokio::time::sleep(RECONNECT_CHECK) => {}
            }
            continue;
        }
        if page.len() >= settings.batch_from.max(2) {
            for run in page.chunks(bus::BATCH_MESSAGES_MAX) {
                let events: Vec<OutboundEvent> = run
                    .iter()
                    .map(|recorded| outbound(&settings.system, recorded))
                    .collect();
                let ack = publisher.publish_batch(&events).await?.await?;
                // The log is gapless and published in order: a batch takes the cursor from
                // just before its first event to its last.
                assert_eq!(ack.first, cursor + 1, "relay batches out of order");
                cursor = ack.last;
            }
        } else {
            let mut acks = VecDeque::with_capacity(page.len());
            for recorded in &page {
                let outbound = outbound(&settings.system, recorded);
                acks.push_back(publisher.publish(&outbound).await?);
            }
            while let Some(pending) = acks.pop_front() {
                let sequence = pending.sequence();
                pending.await?;
                // Each acknowledgement moves the cursor by one.
                assert_eq!(sequence, cursor + 1, "relay acknowledgements out of order");
                cursor = sequence;
            }
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

#[cfg(test)]
mod tests {
    use super::{BACKOFF_MAX, BACKOFF_MIN, Backoff, resume_after};
    use std::time::Duration;

    #[test]
    fn the_backoff_grows_while_nats_is_down_and_starts_over_once_it_answered() {
        let mut backoff = Backoff::default();
        let down: Vec<Duration> = (0..8).map(|_| backoff.after_failure(false)).collect();
        let ms = |ms| Duration::from_millis(ms);
        assert_eq!(
            down,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                ms(5000),
                ms(5000)
            ]
        );
        assert_eq!(down[0], BACKOFF_MIN);
        assert_eq!(down[7], BACKOFF_MAX);
        // An attempt that reached JetStream (and then failed) waits the shortest again…
        assert_eq!(backoff.after_failure(true), BACKOFF_MIN);
        // …and grows from there if NATS is down again.
        assert_eq!(backoff.after_failure(false), ms(200));
    }

    #[test]
    fn the_relay_resumes_after_what_the_stream_holds() {
        // Published, but stopped before recording the acknowledgement: not published twice.
        assert_eq!(resume_after(100, Some(120)), 120);
        // The stream lost 101..=120 it had acknowledged: published again.
        assert_eq!(resume_after(120, Some(100)), 100);
        assert_eq!(resume_after(120, Some(120)), 120);
        // The stream holds none of this system's events: the relay's own cursor.
        assert_eq!(resume_after(120, None), 120);
        assert_eq!(resume_after(0, None), 0);
    }
}
