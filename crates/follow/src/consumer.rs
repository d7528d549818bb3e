//! Keeping the projection up to date.
//!
//! 1. Catch up from ledgerd's `ReadStored` (the record, as stored) from the checkpoint's next
//!    sequence to the head, and checkpoint.
//! 2. Follow the system's subjects with a durable JetStream pull consumer. NATS is untrusted
//!    (anyone with ledgerd's NATS credentials can publish an event that links to the chain):
//!    events that link are held as a run until ledgerd vouches for its last one
//!    (`crate::pending`), then folded; redeliveries are ignored; anything else — a gap,
//!    another event at a sequence, an event that does not link — is settled from
//!    `ReadStored`, and the messages that are not the ledger's are refused and parked. A consumer lost
//!    meanwhile (a wiped or recreated stream) is created again, with a backoff, and the
//!    projection caught up from `ReadStored` as in step 1 (`pull::Follower`).
//! 5. An event of the record that does not fold (a log written by an older version) stops the
//!    fold there, not the service: the projection as of the event before is checkpointed and
//!    served, and the stuck sequence and the reason published in its status (`crate::status`).
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
use crate::incoming::{Incoming, IncomingError};
use crate::ledgerd::{Access, LedgerdClient};
use crate::parked::Parked;
use crate::pending::Pending;
use crate::projection::{Checkpointed, FoldError, Offer, Projection};
use crate::pull::{self, Schedule};
use crate::status::{StatusSender, Stuck, set_stuck};

/// positiond checkpoints at most a hundredth of the time: after a checkpoint that took `d` the
/// next waits `99 d`. The fold pauses only for the snapshot, but encoding and writing one takes
/// a core meanwhile; and a checkpoint only bounds what a restart folds again from ledgerd's
/// `ReadStored` (fast: `crates/bench/README.md`), since JetStream messages are acknowledged as
/// they are folded, not when checkpointed.
const CHECKPOINT_REST_FACTOR: u32 = 99;

/// The projection as queries see it: folded event by event under the lock.
pub type Shared<P> = Arc<RwLock<Checkpointed<P>>>;

/// How the consumer runs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub system: SystemId,
    pub nats_url: String,
    /// Who the consumer is on NATS (its nkey and inbox prefix).
    pub nats_credentials: bus::Credentials,
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
/// checkpoints before returning. Its troubles — the consumer lost, an event that does not fold —
/// are published on `status` and do not end it.
pub async fn run<P: Projection>(
    settings: Settings,
    checkpoints: CheckpointStore,
    shared: Shared<P>,
    status: StatusSender,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let Some(mut ledger) =
        connect_ledgerd(&settings.ledgerd_url, &settings.ledgerd_access, &stop).await?
    else {
        tracing::info!("stopped before ledgerd was reachable");
        return Ok(());
    };
    let from = read(&shared).sequence + 1;
    let caught_up = fill(&mut ledger, &shared, from, None).await;
    save(&checkpoints, &shared)?;
    match caught_up {
        Ok(folded) => tracing::info!(
            folded,
            sequence = read(&shared).sequence,
            "caught up from ledgerd"
        ),
        Err(FillError::Stuck(stuck)) => {
            return stay_stuck(&settings.system, &shared, &status, stuck, &stop).await;
        }
        Err(error @ FillError::Unavailable(_)) => {
            return Err(anyhow::Error::new(error).context("catching up from ledgerd"));
        }
    }

    let mut follower = pull::Follower::connect(
        &settings.nats_url,
        &settings.nats_credentials,
        &settings.consumer,
        &settings.stream_name,
        bus::system_filter(&settings.system),
        status.clone(),
    )
    .await?;
    let mut schedule = Schedule::new(
        settings.checkpoint_events,
        settings.checkpoint_interval,
        CHECKPOINT_REST_FACTOR,
    );
    let checkpoints = Arc::new(checkpoints);
    let mut behind = Behind::default();
    let mut pending = Pending::default();
    let mut ledgerd_alarm = bus::Alarm::new("vouching for JetStream's events with ledgerd");
    while let Some(mut batch) = follower.next_batch(settings.fetch_max, &stop).await {
        if follower.take_recreated() {
            // The consumer was lost (and with it, perhaps, the stream): what it would have
            // delivered meanwhile comes from the record. What it had delivered and was held is
            // delivered again by the new consumer, or is folded from ledgerd now.
            pending.take();
            let from = read(&shared).sequence + 1;
            match fill(&mut ledger, &shared, from, None).await {
                Ok(folded) => {
                    schedule.folded(folded);
                    tracing::info!(
                        folded,
                        sequence = read(&shared).sequence,
                        "caught up from ledgerd"
                    );
                }
                Err(FillError::Stuck(stuck)) => {
                    behind.finish().await?;
                    save(checkpoints.as_ref(), &shared)?;
                    return stay_stuck(&settings.system, &shared, &status, stuck, &stop).await;
                }
                Err(FillError::Unavailable(error)) => {
                    tracing::warn!(%error, "ledgerd unavailable: a gap is filled when the next event shows it");
                }
            }
        }
        loop {
            // Held events are vouched for as soon as no message follows at once (or the
            // batch ends): a burst is one run, one look at ledgerd.
            let next = if pending.is_empty() {
                follower.next_message(&mut batch).await
            } else {
                match tokio::time::timeout(VOUCH_AFTER, follower.next_message(&mut batch)).await {
                    Ok(next) => next,
                    Err(_) => {
                        let step = vouch(&mut ledger, &shared, &mut pending, &checkpoints).await;
                        match step_or_stuck(step, &mut ledgerd_alarm) {
                            Ok(folded) => schedule.folded(folded),
                            Err(stuck) => {
                                behind.finish().await?;
                                save(checkpoints.as_ref(), &shared)?;
                                return stay_stuck(
                                    &settings.system,
                                    &shared,
                                    &status,
                                    stuck,
                                    &stop,
                                )
                                .await;
                            }
                        }
                        continue;
                    }
                }
            };
            let Some(message) = next else { break };
            if let Some(crate::fleet::Route::Audit(_)) = crate::fleet::route(&message.subject) {
                // A signed checkpoint, not an event: the regulator keeps those, not positiond.
                pull::ack(&message).await;
                continue;
            }
            let mut step = take(&mut ledger, &shared, &mut pending, &checkpoints, message).await;
            if pending.len() >= VOUCH_RUN_MAX
                && let Ok(Ok(Step::Folded(before))) = step
            {
                // A steady flow leaves no pause to vouch in: a run this long is vouched now.
                step = vouch(&mut ledger, &shared, &mut pending, &checkpoints)
                    .await
                    .map(|vouched| {
                        vouched.map(|step| match step {
                            Step::Folded(folded) => Step::Folded(before + folded),
                            unavailable => unavailable,
                        })
                    });
            }
            match step_or_stuck(step, &mut ledgerd_alarm) {
                Ok(folded) => schedule.folded(folded),
                Err(stuck) => {
                    behind.finish().await?;
                    save(checkpoints.as_ref(), &shared)?;
                    return stay_stuck(&settings.system, &shared, &status, stuck, &stop).await;
                }
            }
        }
        if !pending.is_empty() {
            let step = vouch(&mut ledger, &shared, &mut pending, &checkpoints).await;
            match step_or_stuck(step, &mut ledgerd_alarm) {
                Ok(folded) => schedule.folded(folded),
                Err(stuck) => {
                    behind.finish().await?;
                    save(checkpoints.as_ref(), &shared)?;
                    return stay_stuck(&settings.system, &shared, &status, stuck, &stop).await;
                }
            }
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

/// The log holds an event that does not fold: publish it on `status` and wait for `stop`,
/// serving (elsewhere) the projection as it stands — checkpointed by the caller — and reminding
/// the log now and then. Folding the same event again would fail the same way; what changes
/// that is another version of this service (a restart, which tries again).
async fn stay_stuck<P: Projection>(
    system: &domain::SystemId,
    shared: &Shared<P>,
    status: &StatusSender,
    stuck: Stuck,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    debug_assert_eq!(read(shared).sequence + 1, stuck.sequence);
    set_stuck(status, system, stuck.clone());
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(bus::REMIND_EVERY) => tracing::warn!(
                %system,
                sequence = stuck.sequence,
                reason = %stuck.reason,
                "still stuck on an event that does not fold; serving the projection as of the event before"
            ),
        }
    }
    tracing::info!(sequence = read(shared).sequence, "consumer stopped (stuck)");
    Ok(())
}

/// How long a held event waits for the next message before it is vouched for.
const VOUCH_AFTER: Duration = Duration::from_millis(5);

/// A run held this long is vouched for without waiting for a pause.
pub(crate) const VOUCH_RUN_MAX: usize = 64;

/// What handling a message (or vouching for what is held) led to.
#[derive(Debug)]
enum Step {
    /// This many events newly folded.
    Folded(u64),
    /// ledgerd could not be asked: what is held stays held (unacknowledged) until it can.
    Unavailable(tonic::Status),
}

/// [`Step`] as the loop takes it: events folded (none while ledgerd cannot vouch, which is
/// reported once per state change), or the log stuck on an event that does not fold.
fn step_or_stuck(
    step: anyhow::Result<Result<Step, FillError>>,
    alarm: &mut bus::Alarm,
) -> Result<u64, Stuck> {
    match step {
        Ok(Ok(Step::Folded(folded))) => {
            alarm.clear("ledgerd vouches again");
            Ok(folded)
        }
        Ok(Ok(Step::Unavailable(status))) | Ok(Err(FillError::Unavailable(status))) => {
            alarm.raise(
                "ledgerd unavailable",
                &format_args!("{status}; JetStream's events are held until it answers"),
            );
            Ok(0)
        }
        Ok(Err(FillError::Stuck(stuck))) => Err(stuck),
        Err(error) => {
            // Parking failed: the message is not acknowledged, so it comes again.
            tracing::error!(%error, "a refused message could not be parked");
            Ok(0)
        }
    }
}

/// Takes one JetStream message, treating it as untrusted: the record is ledgerd.
///
/// - A redelivery (an event folded or held already, the same) is acknowledged.
/// - The next event after the projection and what is held is held too ([`Pending`]).
/// - Anything else — a gap before it, another event at a sequence already held or folded
///   than the one there, an event that does not link — is settled from ledgerd: its events
///   through the message's sequence are folded from the record, and each message held and
///   this one refused (parked) unless it is the ledger's event at its sequence.
async fn take<P: Projection>(
    ledger: &mut LedgerdClient,
    shared: &Shared<P>,
    pending: &mut Pending,
    checkpoints: &CheckpointStore,
    message: async_nats::jetstream::Message,
) -> anyhow::Result<Result<Step, FillError>> {
    let incoming = match Incoming::decode(&message.payload) {
        Ok(incoming) => incoming,
        Err(error) => {
            refuse(checkpoints, &message, error.to_string()).await?;
            return Ok(Ok(Step::Folded(0)));
        }
    };
    let tip = tip(shared);
    if incoming.sequence <= tip.0 {
        let redelivered = incoming.sequence < tip.0 || incoming.hash == tip.1;
        if !redelivered {
            refuse(
                checkpoints,
                &message,
                format!(
                    "its hash differs from the ledger's event {}",
                    incoming.sequence
                ),
            )
            .await?;
        } else {
            pull::ack(&message).await;
        }
        return Ok(Ok(Step::Folded(0)));
    }
    if pending.extends(tip, &incoming) {
        pending.push(incoming, message);
        return Ok(Ok(Step::Folded(0)));
    }
    if pending.hash_at(incoming.sequence) == Some(incoming.hash) {
        pull::ack(&message).await;
        return Ok(Ok(Step::Folded(0)));
    }
    let end = pending.end(tip).0;
    let why = if incoming.sequence == end + 1 {
        Some(format!("it does not link to event {end}"))
    } else if incoming.sequence <= end {
        Some(format!(
            "another event than the one held at {}",
            incoming.sequence
        ))
    } else {
        None
    };
    let through = incoming.sequence.max(end);
    settle(
        ledger,
        shared,
        pending,
        checkpoints,
        through,
        Some((incoming, message, why)),
    )
    .await
}

/// Vouches for the run held: ledgerd's event at its end has the run's hash, so the run is the
/// ledger's and is folded (an event of it that does not fold is the record's: stuck); or it
/// does not, and the run is settled from ledgerd.
async fn vouch<P: Projection>(
    ledger: &mut LedgerdClient,
    shared: &Shared<P>,
    pending: &mut Pending,
    checkpoints: &CheckpointStore,
) -> anyhow::Result<Result<Step, FillError>> {
    let (end, hash) = pending.end(tip(shared));
    match crate::ledgerd::hash_at(ledger, end).await {
        Err(status) => Ok(Ok(Step::Unavailable(status))),
        Ok(Some(recorded)) if recorded == hash => {
            let mut folded = 0;
            for (incoming, message) in pending.take() {
                let offered = write(shared).offer(&incoming);
                match offered {
                    Ok(Offer::Applied) => folded += 1,
                    Ok(_) => {}
                    Err(error) => {
                        return Ok(Err(FillError::Stuck(Stuck::new(
                            incoming.sequence,
                            error.to_string(),
                        ))));
                    }
                }
                pull::ack(&message).await;
            }
            Ok(Ok(Step::Folded(folded)))
        }
        Ok(_) => settle(ledger, shared, pending, checkpoints, end, None).await,
    }
}

/// Folds ledgerd's events through `through`, then acknowledges each message held (and
/// `also`) that is the ledger's event at its sequence, and refuses (parks) the others.
async fn settle<P: Projection>(
    ledger: &mut LedgerdClient,
    shared: &Shared<P>,
    pending: &mut Pending,
    checkpoints: &CheckpointStore,
    through: u64,
    also: Option<(Incoming, async_nats::jetstream::Message, Option<String>)>,
) -> anyhow::Result<Result<Step, FillError>> {
    let from = read(shared).sequence + 1;
    let folded = match fill(ledger, shared, from, Some(through)).await {
        Ok(folded) => folded,
        Err(FillError::Unavailable(status)) => {
            // Nothing is decided: the message comes again once ledgerd can say.
            if let Some((incoming, message, _)) = also
                && pending.extends(tip(shared), &incoming)
            {
                pending.push(incoming, message);
            }
            return Ok(Ok(Step::Unavailable(status)));
        }
        Err(stuck) => return Ok(Err(stuck)),
    };
    if folded > 0 {
        tracing::info!(
            from,
            to = through,
            "folded from ledgerd in place of JetStream's messages"
        );
    }
    let held = pending.take().into_iter().map(|(i, m)| (i, m, None));
    for (incoming, message, why) in held.chain(also) {
        let disagreement = read(shared).disagreement(&incoming);
        match (disagreement, why) {
            (None, _) => pull::ack(&message).await,
            (Some(reason), None) => refuse(checkpoints, &message, reason).await?,
            (Some(reason), Some(why)) => {
                refuse(checkpoints, &message, format!("{why}; {reason}")).await?;
            }
        }
    }
    Ok(Ok(Step::Folded(folded)))
}

/// Parks `message` with `reason` (flushed) and acknowledges it.
async fn refuse(
    checkpoints: &CheckpointStore,
    message: &async_nats::jetstream::Message,
    reason: String,
) -> anyhow::Result<()> {
    checkpoints
        .parked()
        .park(Parked::message(message, reason))
        .context("parking a message")?;
    pull::ack(message).await;
    Ok(())
}

/// The projection's last event: its sequence and hash.
fn tip<P>(shared: &Shared<P>) -> crate::pending::End {
    let folded = read(shared);
    (folded.sequence, folded.hash)
}

/// Why folding from ledgerd stopped.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    /// ledgerd could not be read (down, unreachable, too slow, or it refused the read): try
    /// again later.
    #[error("reading ledgerd: {0}")]
    Unavailable(#[from] tonic::Status),
    /// The record holds, at this sequence, an event that does not fold (or cannot be read as
    /// one): the projection stands at the event before.
    #[error("the ledger's event {} does not fold: {}", .0.sequence, .0.reason)]
    Stuck(Stuck),
}

/// Folds ledgerd's events `from..=to` (to the head when `to` is `None`); how many were new.
pub async fn fill<P: Projection>(
    ledger: &mut LedgerdClient,
    shared: &Shared<P>,
    from: u64,
    to: Option<u64>,
) -> Result<u64, FillError> {
    let limit = to.map_or(0, |to| to.saturating_sub(from) + 1);
    if to.is_some() && limit == 0 {
        return Ok(0);
    }
    let mut pages = ledger
        .read_stored(pb::ReadStoredRequest {
            from_sequence: from,
            limit,
        })
        .await?
        .into_inner();
    let mut folded = 0;
    while let Some(page) = pages.message().await? {
        // Decoded (and each hash checked) outside the lock; a page folded under one.
        let events: Vec<_> = page
            .events
            .iter()
            .map(|value| Incoming::from_stored(value))
            .collect();
        folded += fold_stored(&mut write(shared), events)?;
    }
    Ok(folded)
}

/// Folds events read from ledgerd's `ReadStored` into `projection`; how many were new. The
/// first that cannot be read or folded stops it: the projection stands at the event before.
pub(crate) fn fold_stored<P: Projection>(
    projection: &mut Checkpointed<P>,
    events: Vec<Result<Incoming, IncomingError>>,
) -> Result<u64, FillError> {
    let mut folded = 0;
    for decoded in events {
        let next = projection.sequence + 1;
        let incoming = decoded.map_err(|e| {
            FillError::Stuck(Stuck::new(next, format!("an event from ledgerd: {e}")))
        })?;
        // ledgerd is the record: anything it sends that does not fold stops the fold there.
        match projection.offer(&incoming) {
            Ok(Offer::Applied) => folded += 1,
            Ok(Offer::AlreadyApplied) => {}
            Ok(Offer::Gap { next }) => {
                return Err(FillError::Stuck(Stuck::new(
                    next,
                    format!(
                        "ledgerd's ReadStored skipped from {next} to {}",
                        incoming.sequence
                    ),
                )));
            }
            Err(error) => {
                let sequence = match &error {
                    FoldError::ChainBroken { sequence } | FoldError::Apply { sequence, .. } => {
                        *sequence
                    }
                };
                return Err(FillError::Stuck(Stuck::new(sequence, error.to_string())));
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
