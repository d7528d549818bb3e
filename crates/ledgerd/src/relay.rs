//! The outbox relay: publishes the committed log to JetStream, in log order, exactly once.
//!
//! The sled log is the record; NATS is the distribution path — a replica, repaired from the
//! record. The relay reads events after its cursor — up to a window — and publishes them: a
//! few one by one (pipelined, the acknowledgements awaited in order), a backlog of
//! [`RelaySettings::batch_from`] or more as JetStream atomic batches, each stored all or none,
//! acknowledged once and, with `sync_interval: always`, synced to disk once where single
//! messages are synced one by one (to a stream created without atomic batches, which ledgerd
//! may not change, everything goes one by one). The cursor advances only on an
//! acknowledgement. Every message carries `Nats-Msg-Id` = the event id, so a publish repeated
//! after a lost acknowledgement is dropped by JetStream as a duplicate (a repeated batch is
//! refused whole, and the relay resumes after what the stream holds).
//!
//! Where it resumes is decided from what the stream holds, not from its own cursor
//! ([`Plan`]): on every (re)start, every reconnection to NATS (a restarted server may have
//! lost what it had not synced, or its whole store) and whenever the stream was deleted or
//! recreated, the relay looks at the system's messages in the stream — how many, the first,
//! the last, their hashes against the ledger's — and publishes again whatever the stream
//! lacks, in order, from where the stream's copy stops being the ledger's log: from 1 for a
//! wiped or recreated stream. When those few looks cannot tell (a gap in the middle, events
//! out of order after an earlier repair), it reads every header of the system's messages and
//! publishes only the events missing. Duplicates are only remembered for the stream's
//! duplicate window, so nothing the stream holds is sent again. A stream that holds events of
//! this system beyond the store's head is an alarm, not something to repair: ledgerd refuses
//! to start on it ([`check_stream_at_start`]) and the relay publishes nothing while it lasts.
//!
//! With NATS down the ledger keeps accepting commands; the relay retries with a capped backoff
//! and catches up when the server is back, logging the trouble when it starts or changes and
//! then once a minute ([`bus::Alarm`]), not on every retry.
//!
//! Asked to stop, the relay makes one last pass, bounded by [`DRAIN_MAX`]: what was committed
//! before the stop — and the checkpoint ledgerd signs on its way down — reaches JetStream now
//! rather than at the next start. (Skipped when the relay was already waiting out an error:
//! NATS is then most likely down, and whatever is left goes at the next start as before.)

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use api::pb;
use bus::{Alarm, EventHeaders, Holding, OutboundEvent, Publisher, StreamSettings};
use domain::{Event, SystemId};
use prost::Message;
use store::RecordedEvent;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ledger::Store;

/// The relay's cursor in the store's meta: the last sequence JetStream acknowledged.
pub const CURSOR: &str = store::RELAY_CURSOR;

/// The relay's cursor of checkpoints: the sequence of the last checkpoint JetStream
/// acknowledged.
pub const CHECKPOINT_CURSOR: &str = store::RELAY_CHECKPOINT_CURSOR;

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
    /// amount but one fsync, a single message an fsync each, so with `sync_interval: always`
    /// batches win from about this many (measured in `crates/bench/README.md`, "The relay's
    /// read of k events").
    pub batch_from: usize,
    /// Notified when a checkpoint is stored, so one signed while no events arrive is
    /// published without waiting for the next event.
    pub checkpoints_signed: Arc<Notify>,
    /// The ledger's checkpoint key, if it has one: the relay signs events with it
    /// ([`signed`]) for readers that follow the system from NATS alone.
    pub signing_key: Option<ed25519_dalek::SigningKey>,
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
    let mut alarm = Alarm::new("relay");
    // After a refused batch the stream holds what its few looks did not show: read it all.
    let mut scan = false;
    loop {
        let mut reached = false;
        let result = tokio::select! {
            () = shutdown.cancelled() => break,
            result = relay(&store, &js, &settings, Until::Stopped(&shutdown), &mut reached, &mut alarm, scan) => result,
        };
        scan = false;
        match result {
            Ok(()) => break,
            Err(error @ (RelayError::Reconnected | RelayError::StreamReplaced)) => {
                tracing::info!(%error, "the relay resumes from what the stream holds");
                backoff = Backoff::default();
            }
            Err(error @ RelayError::StreamLost { .. }) => {
                tracing::warn!(%error, "the relay publishes again what the stream lost");
                backoff = Backoff::default();
            }
            Err(RelayError::Bus(error @ bus::BusError::BatchHeld { .. })) => {
                tracing::info!(%error, "the relay resumes after what the stream holds");
                backoff = Backoff::default();
                scan = true;
            }
            Err(error) => {
                let wait = backoff.after_failure(reached);
                alarm.raise(
                    error.state(),
                    &format_args!(
                        "{error}; retrying in {} ms, resuming from what the stream holds",
                        wait.as_millis()
                    ),
                );
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    let mut reached = false;
    let last_pass = relay(
        &store,
        &js,
        &settings,
        Until::CaughtUp,
        &mut reached,
        &mut alarm,
        false,
    );
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
    #[error("the JetStream stream was deleted or recreated: starting over from what it holds")]
    StreamReplaced,
    #[error(
        "the JetStream stream holds {held} of the {published} events published to it (purged \
         or lost in place): starting over from what it holds"
    )]
    StreamLost { held: u64, published: u64 },
    #[error(transparent)]
    Diverged(#[from] Diverged),
}

impl RelayError {
    /// The kind of trouble, for [`Alarm`]: a new kind is logged at once.
    fn state(&self) -> &'static str {
        match self {
            RelayError::Bus(_) => "NATS unavailable or refusing",
            RelayError::Store(_) => "the event store cannot be read",
            RelayError::Reconnected
            | RelayError::StreamReplaced
            | RelayError::StreamLost { .. } => "starting over",
            RelayError::Diverged(_) => "the stream holds events the ledger does not",
        }
    }
}

/// The stream holds events of this system that the ledger does not: beyond its head, or other
/// events at the same sequences. Nothing is published while it lasts; ledgerd refuses to
/// start on it.
#[derive(Debug, thiserror::Error)]
#[error(
    "JetStream stream {stream} holds event {sequence} of system {system} ({what}), but this \
     ledger's store ends at {head}: the store is behind, or other than, what it published. \
     Do not accept commands on it. If the store lost events, restore it from the stream \
     (`icsctl store restore --to NEW_DIR`, then start ledgerd on NEW_DIR); if the stream is \
     the one that is wrong (another deployment's {system}, a test), delete this system's \
     messages from it (`nats stream purge {stream} --subject 'ics.{system}.>'`) and start \
     ledgerd again: the relay publishes the whole log again from the store"
)]
pub struct Diverged {
    pub stream: String,
    pub system: String,
    /// The stream's event that the ledger does not hold.
    pub sequence: u64,
    pub what: String,
    /// The store's head.
    pub head: u64,
}

/// How often an idle relay looks for a reconnection to NATS.
const RECONNECT_CHECK: Duration = Duration::from_secs(1);

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

/// How often [`while_connected`] looks at the connection.
const CONNECTION_CHECK: Duration = Duration::from_millis(50);

/// Awaits `acknowledgement` unless the NATS connection drops first: an acknowledgement cannot
/// arrive over a connection that is gone, so the relay starts over ([`RelayError::Reconnected`]:
/// it reads again what the stream holds) rather than wait out JetStream's timeout.
async fn while_connected<F: std::future::IntoFuture>(
    js: &async_nats::jetstream::Context,
    acknowledgement: F,
) -> Result<F::Output, RelayError> {
    let client = js.client();
    let acknowledgement = acknowledgement.into_future();
    tokio::pin!(acknowledgement);
    loop {
        tokio::select! {
            acknowledged = &mut acknowledgement => return Ok(acknowledged),
            () = tokio::time::sleep(CONNECTION_CHECK) => {
                if client.connection_state() != async_nats::connection::State::Connected {
                    return Err(RelayError::Reconnected);
                }
            }
        }
    }
}

/// How often an idle relay checks that the stream it publishes to is still the one it looked
/// at (deleted and recreated without a server restart, it would lack the log).
const STREAM_CHECK: Duration = Duration::from_secs(10);

/// Publishes until `until` (`Ok`) or the first error; `reached` is set once JetStream has
/// answered (the stream is there and said what it holds). `scan`: read every header of the
/// system's messages in the stream rather than trust the few looks of [`plan`].
async fn relay(
    store: &Store,
    js: &async_nats::jetstream::Context,
    settings: &RelaySettings,
    until: Until<'_>,
    reached: &mut bool,
    alarm: &mut Alarm,
    scan: bool,
) -> Result<(), RelayError> {
    let stream = bus::ensure_stream(js, &settings.stream).await?;
    let created = stream.cached_info().created;
    let keeps_everything = bus::keeps_everything(&stream.cached_info().config);
    // ledgerd may not change the stream; one without atomic batches takes events one by one.
    let batches = bus::allows_batches(&stream.cached_info().config);
    // Counted (connected now) before asking the stream what it holds: a reconnection after
    // this makes the relay start over.
    let connection = Connection::new(js);
    let acknowledged = store.cursor(CURSOR)?;
    let plan = plan(store, js, settings, acknowledged, keeps_everything, scan).await?;
    *reached = true;
    let Plan { after, mut held } = plan;
    let mut cursor = held.skip(after);
    // Events JetStream stored once and lost go again under message ids of this repair: it may
    // still remember their first ids (a purge keeps them for the duplicate window) and would
    // drop them as duplicates of messages it no longer holds.
    let repair = (cursor < acknowledged).then(|| Repair {
        token: uuid::Uuid::new_v4().simple().to_string(),
        through: acknowledged,
    });
    if cursor < acknowledged {
        tracing::warn!(
            resume_after = cursor,
            acknowledged,
            head = store.head().sequence,
            held_beyond = held.count(),
            "JetStream lacks events it had acknowledged (a wiped, recreated or damaged stream): \
             publishing them again from the ledger"
        );
    } else {
        tracing::info!(cursor, acknowledged, "relay resuming");
    }
    republish_lost_checkpoints(store, js, settings).await?;
    let publisher = Publisher::new(js.clone());
    let mut head = store.subscribe();
    let mut stream_checked = tokio::time::Instant::now();
    loop {
        connection.check()?;
        cursor = held.skip(cursor);
        // A page stops before the next event the stream already holds.
        let limit = held
            .next_after(cursor)
            .map_or(settings.window_events, |next| {
                settings
                    .window_events
                    .min(usize::try_from(next - cursor - 1).unwrap_or(usize::MAX))
            });
        let page = store.read_all(cursor + 1, limit)?;
        if page.is_empty() {
            store.set_cursor(CURSOR, cursor)?;
            publish_checkpoints(store, &publisher, &settings.system, cursor).await?;
            alarm.clear("the relay has published the whole log");
            let Until::Stopped(shutdown) = until else {
                return Ok(());
            };
            if stream_checked.elapsed() >= STREAM_CHECK {
                stream_checked = tokio::time::Instant::now();
                let now = js.get_stream(&settings.stream.name).await.ok();
                if now.is_none_or(|s| s.cached_info().created != created) {
                    return Err(RelayError::StreamReplaced);
                }
                // Purged in place (the same stream, fewer messages): what it lacks goes again.
                if keeps_everything {
                    let held =
                        bus::system_message_count(js, &settings.stream.name, &settings.system)
                            .await?;
                    if held < cursor {
                        return Err(RelayError::StreamLost {
                            held,
                            published: cursor,
                        });
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = settings.checkpoints_signed.notified() => {}
                changed = head.changed() => if changed.is_err() { return Ok(()) },
                () = tokio::time::sleep(RECONNECT_CHECK) => {}
            }
            continue;
        }
        if batches && page.len() >= settings.batch_from.max(2) {
            for run in page.chunks(bus::BATCH_MESSAGES_MAX) {
                let last = run.last().map_or(0, |recorded| recorded.sequence);
                let events: Vec<OutboundEvent> = run
                    .iter()
                    .map(|recorded| {
                        let outbound = outbound_again(&settings.system, recorded, repair.as_ref());
                        signed(settings, outbound, last)
                    })
                    .collect();
                let pending = publisher.publish_batch(&events).await?;
                let ack = while_connected(js, pending).await??;
                // The log is gapless and published in order: a batch takes the cursor from
                // just before its first event to its last.
                assert_eq!(ack.first, cursor + 1, "relay batches out of order");
                cursor = ack.last;
            }
        } else {
            let mut acks = VecDeque::with_capacity(page.len());
            let last = page.last().map_or(0, |recorded| recorded.sequence);
            for recorded in &page {
                let outbound = outbound_again(&settings.system, recorded, repair.as_ref());
                let outbound = signed(settings, outbound, last);
                acks.push_back(publisher.publish(&outbound).await?);
            }
            while let Some(pending) = acks.pop_front() {
                let sequence = pending.sequence();
                while_connected(js, pending).await??;
                // Each acknowledgement moves the cursor by one.
                assert_eq!(sequence, cursor + 1, "relay acknowledgements out of order");
                cursor = sequence;
            }
        }
        alarm.clear("the relay publishes again");
        store.set_cursor(CURSOR, cursor)?;
        publish_checkpoints(store, &publisher, &settings.system, cursor).await?;
    }
}

/// Where the relay resumes: after `after`, skipping the events past it that the stream
/// already holds (`held`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    after: u64,
    held: Held,
}

/// What the few looks at the stream ([`bus::holding`]) say.
#[derive(Debug, PartialEq, Eq)]
enum Looks {
    /// The stream holds the ledger's log up to here (from 1, or from where its limits start),
    /// nothing missing before it.
    Whole(u64),
    /// It cannot be told without reading every header.
    Unclear,
    /// The stream holds this event, which the ledger does not.
    Diverged(EventHeaders, &'static str),
}

/// Judges what the stream holds of the log from [`Holding`]: its count, first and last event
/// and their hashes against the ledger's (`hash_at`, `None` beyond the head).
///
/// - Holding none: the whole log is missing if the stream keeps everything (a wiped or
///   recreated stream), and nothing can be told if it has limits (they may have let every
///   event go): the relay's own cursor stands.
/// - The last event beyond the head, or another event than the ledger's there: diverged.
/// - First and last the ledger's, and as many events as from the first to the last (the
///   first being 1 when the stream keeps everything): whole up to the last.
/// - Otherwise unclear.
fn judge(
    holding: &Holding,
    acknowledged: u64,
    keeps_everything: bool,
    hash_at: impl Fn(u64) -> Option<[u8; 32]>,
) -> Looks {
    let (Some(first), Some(last)) = (&holding.first, &holding.last) else {
        return Looks::Whole(if keeps_everything { 0 } else { acknowledged });
    };
    match hash_at(last.sequence) {
        None => return Looks::Diverged(last.clone(), "beyond the ledger's head"),
        Some(hash) if hash != last.hash => {
            return Looks::Diverged(last.clone(), "another event than the ledger's");
        }
        Some(_) => {}
    }
    let first_is_the_ledgers = hash_at(first.sequence) == Some(first.hash);
    let starts = !keeps_everything || first.sequence == 1;
    let span = last.sequence.checked_sub(first.sequence).map(|d| d + 1);
    if first_is_the_ledgers && starts && span == Some(holding.count) {
        Looks::Whole(last.sequence)
    } else {
        Looks::Unclear
    }
}

/// Decides where the relay resumes ([`Plan`]) from what the stream holds of this system.
async fn plan(
    store: &Store,
    js: &async_nats::jetstream::Context,
    settings: &RelaySettings,
    acknowledged: u64,
    keeps_everything: bool,
    scan: bool,
) -> Result<Plan, RelayError> {
    let stream = &settings.stream.name;
    let holding = bus::holding(js, stream, &settings.system).await?;
    let head = store.head().sequence;
    let hash_at = |sequence: u64| -> Option<[u8; 32]> {
        if sequence == 0 || sequence > head {
            return None;
        }
        store.read_hashes(sequence, 1).ok()?.first().copied()
    };
    let diverged = |headers: &EventHeaders, what: &str| Diverged {
        stream: stream.clone(),
        system: settings.system.to_string(),
        sequence: headers.sequence,
        what: format!("{what}, hash {}", hex::encode(headers.hash)),
        head,
    };
    match judge(&holding, acknowledged, keeps_everything, hash_at) {
        Looks::Diverged(headers, what) if vouched(settings, &headers) => {
            return Err(diverged(&headers, what).into());
        }
        // Not the ledger's (the relay signs, and did not sign it): read the stream whole.
        Looks::Diverged(..) => {}
        Looks::Whole(after) if !scan => {
            return Ok(Plan {
                after,
                held: Held::default(),
            });
        }
        Looks::Whole(_) | Looks::Unclear => {}
    }
    if holding.count == 0 {
        return Ok(Plan {
            after: if keeps_everything { 0 } else { acknowledged },
            held: Held::default(),
        });
    }
    // Read every header: the events held (with the ledger's hash), in whatever order.
    let started = std::time::Instant::now();
    let mut held = Held::default();
    let mut foreign = 0u64;
    let mut hashes = HashWindow::default();
    let scanned = bus::scan_system(js, stream, &settings.system, |headers| {
        if headers.sequence == 0 || headers.sequence > head {
            if !vouched(settings, &headers) {
                foreign += 1;
                return Ok(());
            }
            return Err(RelayError::from(diverged(
                &headers,
                "beyond the ledger's head",
            )));
        }
        if hashes.get(store, headers.sequence)? == headers.hash {
            held.insert(headers.sequence);
        } else {
            foreign += 1;
        }
        Ok(())
    })
    .await?;
    if foreign > 0 {
        tracing::error!(
            foreign,
            "the stream holds messages of this system that are not the ledger's events (another \
             history, or messages the ledger did not sign); they are left, and the ledger's \
             events published"
        );
    }
    let after = if keeps_everything {
        0
    } else {
        held.first().map_or(acknowledged, |first| first - 1)
    };
    tracing::info!(
        scanned,
        held = held.count(),
        runs = held.runs.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "read every header of the system's messages in the stream"
    );
    Ok(Plan { after, held })
}

/// The ledger's hashes from a sequence on, read a page at a time for a scan in log order.
#[derive(Default)]
struct HashWindow {
    from: u64,
    hashes: Vec<[u8; 32]>,
}

impl HashWindow {
    const PAGE: usize = 4096;

    fn get(&mut self, store: &Store, sequence: u64) -> Result<[u8; 32], RelayError> {
        let index = sequence.checked_sub(self.from).map(usize::try_from);
        if let Some(Ok(index)) = index
            && let Some(hash) = self.hashes.get(index)
        {
            return Ok(*hash);
        }
        self.from = sequence;
        self.hashes = store.read_hashes(sequence, Self::PAGE)?;
        self.hashes.first().copied().ok_or_else(|| {
            RelayError::Store(store::StoreError::Corrupt(format!(
                "event {sequence} is below the head but cannot be read"
            )))
        })
    }
}

/// Runs of ledger sequences the stream holds beyond where the relay resumes: skipped, so
/// nothing it holds is sent again. Kept as runs (start → end), since a stream holds whole
/// stretches of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Held {
    runs: BTreeMap<u64, u64>,
}

impl Held {
    fn insert(&mut self, sequence: u64) {
        let before = self
            .runs
            .range(..=sequence)
            .next_back()
            .map(|(s, e)| (*s, *e));
        if before.is_some_and(|(_, end)| end >= sequence) {
            return;
        }
        // Joins the run that ends just before and the one that starts just after, if any.
        let start = match before {
            Some((start, end)) if end + 1 == sequence => start,
            _ => sequence,
        };
        let after = sequence
            .checked_add(1)
            .and_then(|next| self.runs.remove(&next));
        self.runs.insert(start, after.unwrap_or(sequence));
    }

    /// Where the relay stands after `cursor` once the runs held right after it are skipped
    /// (runs at or before it are forgotten).
    fn skip(&mut self, mut cursor: u64) -> u64 {
        while let Some((&start, &end)) = self.runs.first_key_value() {
            if start > cursor + 1 {
                break;
            }
            cursor = cursor.max(end);
            self.runs.remove(&start);
        }
        cursor
    }

    /// The first held sequence after `cursor`.
    fn next_after(&self, cursor: u64) -> Option<u64> {
        self.runs
            .iter()
            .find(|(_, end)| **end > cursor)
            .map(|(start, _)| (*start).max(cursor + 1))
    }

    fn first(&self) -> Option<u64> {
        self.runs.keys().next().copied()
    }

    /// How many sequences are held.
    fn count(&self) -> u64 {
        self.runs.iter().map(|(s, e)| e - s + 1).sum()
    }
}

/// Makes the signed checkpoints the stream lost (with the rest of a wiped stream) go again:
/// the checkpoint cursor is moved back to the last checkpoint the stream holds, and
/// [`publish_checkpoints`] sends the later ones as the events they cover are published.
async fn republish_lost_checkpoints(
    store: &Store,
    js: &async_nats::jetstream::Context,
    settings: &RelaySettings,
) -> Result<(), RelayError> {
    let done = store.cursor(CHECKPOINT_CURSOR)?;
    if done == 0 {
        return Ok(());
    }
    let held = bus::last_checkpoint_sequence(js, &settings.stream.name, &settings.system).await?;
    let held = held.unwrap_or(0);
    if held < done {
        tracing::warn!(
            in_stream = held,
            acknowledged = done,
            "JetStream lacks signed checkpoints it had acknowledged: publishing them again"
        );
        store.set_cursor(CHECKPOINT_CURSOR, held)?;
    }
    Ok(())
}

/// How long ledgerd's start-up waits for NATS to check the stream against the store.
pub const START_CHECK_WAIT: Duration = Duration::from_secs(3);

/// Refuses to start ledgerd when NATS is reachable and its stream holds events of this system
/// that the store does not — beyond its head, or another event at the stream's last sequence:
/// the store came back shorter than, or other than, what it published (see [`Diverged`], which
/// says what an operator can do). NATS not reachable within `wait`, or no stream yet: nothing
/// to check, and the relay checks again when it connects.
pub async fn check_stream_at_start(
    store: &Store,
    client: &async_nats::Client,
    settings: &RelaySettings,
    wait: Duration,
) -> Result<(), StartError> {
    let deadline = tokio::time::Instant::now() + wait;
    while client.connection_state() != async_nats::connection::State::Connected {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                waited_ms = wait.as_millis() as u64,
                "NATS not reachable at start-up: the stream was not checked against the store \
                 (the relay checks it when NATS is back)"
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let js = bus::jetstream(client.clone());
    let stream = &settings.stream.name;
    if !bus::stream_exists(&js, stream).await? {
        return Ok(());
    }
    let Some(last) = bus::last_published(&js, stream, &settings.system).await? else {
        return Ok(());
    };
    let head = store.head();
    let what = if last.sequence > head.sequence {
        "beyond the store's head"
    } else {
        let ours = store.read_hashes(last.sequence, 1)?;
        if ours.first() == Some(&last.hash) {
            tracing::info!(
                in_stream = last.sequence,
                head = head.sequence,
                "the stream holds no event beyond the store's head"
            );
            return Ok(());
        }
        "another event than the store's at that sequence"
    };
    let suspect = if vouched(settings, &last) {
        Some(last)
    } else {
        // Not the ledger's (the relay signs, and did not sign it): is any message beyond the
        // store's head one the ledger signed?
        tracing::warn!(
            in_stream = last.sequence,
            head = head.sequence,
            "the stream's last message of this system is {what}, but the ledger did not sign \
             it: reading the stream for one the ledger did sign"
        );
        let mut signed = None;
        bus::scan_system(
            &js,
            stream,
            &settings.system,
            |headers| -> Result<(), StartError> {
                if headers.sequence > head.sequence && vouched(settings, &headers) {
                    signed.get_or_insert(headers);
                }
                Ok(())
            },
        )
        .await?;
        signed
    };
    let Some(suspect) = suspect else {
        tracing::warn!(
            head = head.sequence,
            "no message beyond the store's head is the ledger's: messages published by someone \
             else are left in the stream, and the relay publishes from the store"
        );
        return Ok(());
    };
    Err(StartError::Diverged(Diverged {
        stream: stream.clone(),
        system: settings.system.to_string(),
        sequence: suspect.sequence,
        what: format!(
            "{}, hash {}",
            if suspect.sequence > head.sequence {
                "beyond the store's head"
            } else {
                what
            },
            hex::encode(suspect.hash)
        ),
        head: head.sequence,
    }))
}

/// Whether a message in the stream is to be taken as the ledger's own: signed by it, when the
/// relay signs (it has the checkpoint key); any message, when it does not (nothing tells).
fn vouched(settings: &RelaySettings, headers: &EventHeaders) -> bool {
    let Some(key) = &settings.signing_key else {
        return true;
    };
    headers.signature.is_some_and(|signature| {
        audit::relay::verify(
            &key.verifying_key(),
            &settings.system,
            headers.sequence,
            &headers.hash,
            &signature,
        )
    })
}

/// Why [`check_stream_at_start`] refused.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Diverged(#[from] Diverged),
    #[error("checking the JetStream stream at start-up: {0}")]
    Bus(#[from] bus::BusError),
    #[error("checking the JetStream stream at start-up: {0}")]
    Store(#[from] store::StoreError),
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
        signature: None,
    }
}

/// `outbound` with the ledger's signature (`audit::relay`) when the relay has the checkpoint
/// key and the event is the last of a run it publishes (`last`) or falls on
/// [`audit::relay::SIGN_EVERY`]: a reader following from NATS alone then holds at most that
/// many events unvouched.
fn signed(settings: &RelaySettings, mut outbound: OutboundEvent, last: u64) -> OutboundEvent {
    if let Some(key) = &settings.signing_key
        && (outbound.sequence == last || outbound.sequence.is_multiple_of(audit::relay::SIGN_EVERY))
    {
        outbound.signature = Some(audit::relay::sign(
            key,
            &settings.system,
            outbound.sequence,
            &outbound.hash,
        ));
    }
    outbound
}

/// A repair of events the stream had stored and lost: those up to `through` are published
/// with their event id and `token` as `Nats-Msg-Id`.
struct Repair {
    token: String,
    through: u64,
}

/// [`outbound`], with the message id of `repair` for an event it covers.
fn outbound_again(
    system: &SystemId,
    recorded: &RecordedEvent<Event>,
    repair: Option<&Repair>,
) -> OutboundEvent {
    let mut outbound = outbound(system, recorded);
    if let Some(repair) = repair
        && recorded.sequence <= repair.through
    {
        outbound.event_id = format!("{}.{}", outbound.event_id, repair.token);
    }
    outbound
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
    use super::*;
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

    fn headers(sequence: u64, hash: u8) -> EventHeaders {
        EventHeaders {
            event_id: format!("event-{sequence}"),
            sequence,
            stream: "system".to_string(),
            version: sequence,
            hash: [hash; 32],
            event_type: "system.member_admitted".to_string(),
            signature: None,
        }
    }

    /// What the stream holds: `count` events, the first and last at these sequences with the
    /// ledger's hashes unless told otherwise.
    fn holding(count: u64, first: u64, last: u64) -> Holding {
        Holding {
            count,
            first: Some(headers(first, ledger_hash(first))),
            last: Some(headers(last, ledger_hash(last))),
        }
    }

    /// The ledger's hash of each event (of a log of 200): its sequence's low byte.
    fn ledger_hash(sequence: u64) -> u8 {
        u8::try_from(sequence % 256).expect("a byte")
    }

    fn ledger(sequence: u64) -> Option<[u8; 32]> {
        (1..=200)
            .contains(&sequence)
            .then(|| [ledger_hash(sequence); 32])
    }

    #[test]
    fn the_relay_resumes_after_what_the_stream_holds_of_the_log() {
        // Whole up to 120, the cursor behind it (published, stopped before recording the
        // acknowledgement): not published twice.
        assert_eq!(
            judge(&holding(120, 1, 120), 100, true, ledger),
            Looks::Whole(120)
        );
        // The stream lost 101..=120 it had acknowledged: published again.
        assert_eq!(
            judge(&holding(100, 1, 100), 120, true, ledger),
            Looks::Whole(100)
        );
        // A wiped or recreated stream: everything again, whatever the cursor says.
        assert_eq!(
            judge(&Holding::default(), 177, true, ledger),
            Looks::Whole(0)
        );
        // …unless the stream has limits that may have let every event go.
        assert_eq!(
            judge(&Holding::default(), 177, false, ledger),
            Looks::Whole(177)
        );
        // What a relay that resumed from its cursor on a wiped stream left: 178..=200 only.
        assert_eq!(
            judge(&holding(23, 178, 200), 200, true, ledger),
            Looks::Unclear
        );
        // With limits, a suffix is all a stream holds.
        assert_eq!(
            judge(&holding(23, 178, 200), 200, false, ledger),
            Looks::Whole(200)
        );
        // A gap in the middle.
        assert_eq!(
            judge(&holding(150, 1, 200), 200, true, ledger),
            Looks::Unclear
        );
        // The first message is not the ledger's event 1.
        let mut other_first = holding(200, 1, 200);
        other_first.first = Some(headers(1, 0xee));
        assert_eq!(judge(&other_first, 200, true, ledger), Looks::Unclear);
    }

    #[test]
    fn a_stream_beyond_the_ledger_or_other_than_it_is_not_repaired() {
        let beyond = holding(201, 1, 201);
        assert!(matches!(
            judge(&beyond, 200, true, ledger),
            Looks::Diverged(h, _) if h.sequence == 201
        ));
        let mut other = holding(150, 1, 150);
        other.last = Some(headers(150, 0xee));
        assert!(matches!(
            judge(&other, 200, true, ledger),
            Looks::Diverged(h, "another event than the ledger's") if h.sequence == 150
        ));
    }

    #[test]
    fn held_runs_are_skipped_and_bound_the_pages_between_them() {
        let mut held = Held::default();
        // Scanned out of order, as a stream repaired once holds them: 178..=200, then 1..=5.
        for sequence in (178..=200).chain(1..=5).chain([7, 9, 8]) {
            held.insert(sequence);
        }
        held.insert(3);
        assert_eq!(
            held.runs,
            BTreeMap::from([(1, 5), (7, 9), (178, 200)]),
            "merged into runs"
        );
        assert_eq!(held.count(), 5 + 3 + 23);
        assert_eq!(held.first(), Some(1));
        // From 0: 1..=5 are held, the relay stands at 5; 6 is missing, the page stops at 7.
        let cursor = held.skip(0);
        assert_eq!(cursor, 5);
        assert_eq!(held.next_after(cursor), Some(7));
        // 6 published: 7..=9 skipped, the next page runs 10..=177.
        let cursor = held.skip(6);
        assert_eq!(cursor, 9);
        assert_eq!(held.next_after(cursor), Some(178));
        assert_eq!(held.skip(177), 200);
        assert_eq!(held.next_after(200), None);
        assert_eq!(held.count(), 0);
    }
}
