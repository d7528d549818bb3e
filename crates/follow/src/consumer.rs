//! Keeping the projection up to date.
//!
//! 1. Catch up from ledgerd's `ReadStored` (the record, as stored) from the checkpoint's next
//!    sequence to the head, and checkpoint.
//! 2. Follow the system's subjects with a durable JetStream pull consumer. Each message is
//!    offered to the projection: redeliveries are ignored, a gap is filled from `ReadStored`
//!    first, a message that does not link to the chain is refused and logged.
//! 3. Acknowledge each message once it is folded (or ignored, or parked — a parked message is
//!    flushed to disk first). JetStream is how events arrive quickly, not the record: after a
//!    crash, step 1 folds again from ledgerd everything past the checkpoint, acknowledged or
//!    not, and what JetStream offers again is ignored. So acknowledging never waits for a
//!    checkpoint, and a checkpoint — which rewrites the whole projection — never holds up
//!    JetStream (whose `max_ack_pending` would otherwise stall delivery while it runs).
//! 4. Checkpoint (projection + sequence, one value, flushed) every so many events or so
//!    often, but never more than a hundredth of the time (`pull::Schedule`: after a checkpoint
//!    that took `d`, the next waits `99 d`), and on stopping. The checkpoint only bounds how
//!    much a restart folds again. It is written behind the fold: the projection is cloned
//!    under the read lock — the one pause to folding — and the clone encoded, stored and
//!    flushed on a blocking thread while folding goes on ([`Behind`]).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use api::pb;
use domain::SystemId;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::CheckpointStore;
use crate::incoming::Incoming;
use crate::ledgerd::{Access, LedgerdClient};
use crate::parked::Parked;
use crate::projection::{Checkpointed, Offer, Projection};
use crate::pull::{self, Schedule};

/// positiond checkpoints at most a hundredth of the time: after a checkpoint that took `d`
/// (0.2–0.3 s at a million events) the next waits `99 d` (~25 s, ~25,000 events at 1,000/s).
/// The fold pauses only for the snapshot, but encoding and writing one takes a core meanwhile;
/// and a checkpoint only bounds what a restart folds again from ledgerd's `ReadStored`
/// (25,000 events: well under a tenth of a second), since JetStream messages are acknowledged
/// as they are folded, not when checkpointed.
const CHECKPOINT_REST_FACTOR: u32 = 99;

/// The projection as queries see it: folded event by event under the lock.
pub type Shared<P> = Arc<RwLock<Checkpointed<P>>>;

/// How the consumer runs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub system: SystemId,
    pub nats_url: String,
    pub ledgerd_url: String,
    /// TLS and token for reaching ledgerd.
    pub ledgerd_access: Access,
    /// Durable consumer name; each replica has its own.
    pub consumer: String,
    pub stream_name: String,
    /// Messages per pull.
    pub fetch_max: usize,
    /// Checkpoint after this many newly folded events…
    pub checkpoint_events: u64,
    /// …or this long after the first event folded since the last checkpoint.
    pub checkpoint_interval: Duration,
}

/// Runs until `stop` (a stop while ledgerd or the stream is still awaited is a clean stop);
/// checkpoints before returning.
pub async fn run<P: Projection>(
    settings: Settings,
    checkpoints: CheckpointStore,
    shared: Shared<P>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let Some(mut ledger) =
        connect_ledgerd(&settings.ledgerd_url, &settings.ledgerd_access, &stop).await?
    else {
        tracing::info!("stopped before ledgerd was reachable");
        return Ok(());
    };
    let from = read(&shared).sequence + 1;
    let caught_up = fill(&mut ledger, &shared, from, None).await?;
    save(&checkpoints, &shared)?;
    tracing::info!(
        folded = caught_up,
        sequence = read(&shared).sequence,
        "caught up from ledgerd"
    );

    let Some(consumer) = pull::durable_consumer(
        &settings.nats_url,
        &settings.consumer,
        &settings.stream_name,
        bus::system_filter(&settings.system),
        &stop,
    )
    .await?
    else {
        tracing::info!("stopped before the JetStream stream existed");
        return Ok(());
    };
    let mut schedule = Schedule::new(
        settings.checkpoint_events,
        settings.checkpoint_interval,
        CHECKPOINT_REST_FACTOR,
    );
    let checkpoints = Arc::new(checkpoints);
    let mut behind = Behind::default();
    while let Some(mut batch) = pull::next_batch(&consumer, settings.fetch_max, &stop).await {
        while let Some(message) = pull::next_message(&mut batch).await {
            if let Some(crate::fleet::Route::Audit(_)) = crate::fleet::route(&message.subject) {
                // A signed checkpoint, not an event: the regulator keeps those, not positiond.
                pull::ack(&message).await;
                continue;
            }
            let Folded { folded, refused } =
                fold_message(&mut ledger, &shared, &message.payload).await?;
            if let Some(reason) = refused {
                checkpoints
                    .parked()
                    .park(Parked::message(&message, reason))
                    .context("parking a message")?;
            }
            schedule.folded(folded);
            pull::ack(&message).await;
        }
        if let Some(took) = behind.written().await? {
            schedule.written(took);
        }
        if !behind.busy() && schedule.due() {
            schedule.snapshot();
            behind.start(&checkpoints, &shared);
        }
    }
    behind.finish().await?;
    save(&checkpoints, &shared)?;
    tracing::info!(sequence = read(&shared).sequence, "consumer stopped");
    Ok(())
}

/// What one JetStream message did: events newly folded (from it, or from ledgerd filling the
/// gap before it), and why it was refused, if it was.
struct Folded {
    folded: u64,
    refused: Option<String>,
}

/// Folds one JetStream message, treating it as untrusted: the record is ledgerd.
///
/// - A gap before it is filled from ledgerd through the message's own sequence; the
///   message is then refused if ledgerd has no such event, or if ledgerd's event there has
///   another hash.
/// - A message that does not fold (it does not link to the chain, or the projection refuses
///   it) is checked against ledgerd's copy of that sequence: if ledgerd's folds, the message
///   was not the ledger's and is refused; if ledgerd's does not fold either, that is fatal
///   (an error), as anything from the record that does not fold is.
async fn fold_message<P: Projection>(
    ledger: &mut LedgerdClient,
    shared: &Shared<P>,
    payload: &[u8],
) -> anyhow::Result<Folded> {
    let incoming = match Incoming::decode(payload) {
        Ok(incoming) => incoming,
        Err(error) => {
            return Ok(Folded {
                folded: 0,
                refused: Some(error.to_string()),
            });
        }
    };
    let offered = write(shared).offer(&incoming);
    match offered {
        Ok(Offer::Applied) => Ok(Folded {
            folded: 1,
            refused: None,
        }),
        Ok(Offer::AlreadyApplied) => Ok(Folded {
            folded: 0,
            refused: None,
        }),
        Ok(Offer::Gap { next }) => {
            // Fill from the record, through this event's own sequence: the copy from ledgerd
            // is authoritative, the message is then a redelivery.
            let folded = fill(ledger, shared, next, Some(incoming.sequence)).await?;
            tracing::info!(
                from = next,
                to = incoming.sequence,
                "filled a gap from ledgerd"
            );
            Ok(Folded {
                folded,
                refused: read(shared).disagreement(&incoming),
            })
        }
        Err(error) => {
            let folded = fill(ledger, shared, incoming.sequence, Some(incoming.sequence)).await?;
            let why = read(shared).disagreement(&incoming).unwrap_or_else(|| {
                format!("ledgerd's event {} folded in its place", incoming.sequence)
            });
            Ok(Folded {
                folded,
                refused: Some(format!("{error}; {why}")),
            })
        }
    }
}

/// Folds ledgerd's events `from..=to` (to the head when `to` is `None`); how many were new.
pub async fn fill<P: Projection>(
    ledger: &mut LedgerdClient,
    shared: &Shared<P>,
    from: u64,
    to: Option<u64>,
) -> anyhow::Result<u64> {
    let limit = to.map_or(0, |to| to.saturating_sub(from) + 1);
    if to.is_some() && limit == 0 {
        return Ok(0);
    }
    let mut pages = ledger
        .read_stored(pb::ReadStoredRequest {
            from_sequence: from,
            limit,
        })
        .await
        .context("ReadStored from ledgerd")?
        .into_inner();
    let mut folded = 0;
    while let Some(page) = pages.message().await.context("ReadStored from ledgerd")? {
        // Decoded (and each hash checked) outside the lock; a page folded under one.
        let events = page
            .events
            .iter()
            .map(|value| Incoming::from_stored(value))
            .collect::<Result<Vec<_>, _>>()
            .context("an event from ledgerd")?;
        let mut projection = write(shared);
        for incoming in &events {
            // ledgerd is the record: anything it sends that does not fold is fatal.
            match projection.offer(incoming)? {
                Offer::Applied => folded += 1,
                Offer::AlreadyApplied => {}
                Offer::Gap { next } => anyhow::bail!(
                    "ledgerd's ReadStored skipped from {next} to {}",
                    incoming.sequence
                ),
            }
        }
    }
    Ok(folded)
}

/// The checkpoint being written behind the fold, if one is. One at a time.
#[derive(Default)]
struct Behind {
    writing: Option<tokio::task::JoinHandle<anyhow::Result<Duration>>>,
}

impl Behind {
    /// Whether a checkpoint is being written.
    fn busy(&self) -> bool {
        self.writing
            .as_ref()
            .is_some_and(|task| !task.is_finished())
    }

    /// Snapshots the projection (a clone, under the read lock: folding waits for this only)
    /// and writes the snapshot on a blocking thread. Call when not [`Behind::busy`].
    fn start<P: Projection>(&mut self, checkpoints: &Arc<CheckpointStore>, shared: &Shared<P>) {
        let started = Instant::now();
        let snapshot = read(shared).clone();
        let paused = started.elapsed();
        let checkpoints = Arc::clone(checkpoints);
        self.writing = Some(tokio::task::spawn_blocking(move || {
            checkpoints
                .save(&snapshot)
                .context("saving the checkpoint")?;
            let took = started.elapsed();
            tracing::debug!(
                sequence = snapshot.sequence,
                ?paused,
                ?took,
                "checkpoint saved"
            );
            Ok(took)
        }));
    }

    /// How long the last checkpoint took from its snapshot, once it is written (`None` while
    /// it is being written, or when none was started since last asked). Its failure, if it
    /// failed.
    async fn written(&mut self) -> anyhow::Result<Option<Duration>> {
        if self.busy() {
            return Ok(None);
        }
        self.finish().await
    }

    /// Waits for the checkpoint being written, if one is, and says how long it took.
    async fn finish(&mut self) -> anyhow::Result<Option<Duration>> {
        match self.writing.take() {
            None => Ok(None),
            Some(task) => task.await.context("the checkpoint writer")?.map(Some),
        }
    }
}

/// Saves the checkpoint; how long it took.
fn save<P: Projection>(
    checkpoints: &CheckpointStore,
    shared: &Shared<P>,
) -> anyhow::Result<std::time::Duration> {
    let started = std::time::Instant::now();
    let folded = read(shared);
    checkpoints.save(&folded).context("saving the checkpoint")?;
    let took = started.elapsed();
    tracing::debug!(sequence = folded.sequence, ?took, "checkpoint saved");
    Ok(took)
}

fn read<P>(shared: &Shared<P>) -> std::sync::RwLockReadGuard<'_, Checkpointed<P>> {
    shared
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<P>(shared: &Shared<P>) -> std::sync::RwLockWriteGuard<'_, Checkpointed<P>> {
    shared
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn connect_ledgerd(
    url: &str,
    access: &Access,
    stop: &CancellationToken,
) -> anyhow::Result<Option<LedgerdClient>> {
    let endpoint = crate::ledgerd::endpoint(url, access)?;
    loop {
        match endpoint.connect().await {
            Ok(channel) => return crate::ledgerd::client(channel, access).map(Some),
            Err(error) => tracing::warn!(%error, url, "ledgerd not reachable yet"),
        }
        tokio::select! {
            // Asked to stop while waiting: a clean stop, not a failure.
            () = stop.cancelled() => return Ok(None),
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}
