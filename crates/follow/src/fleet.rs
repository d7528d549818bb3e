//! Many systems on one consumer: how oversightd follows every ICS at once.
//!
//! Every ICS has its own ledger — its own gapless sequence from 1 and its own hash chain —
//! and its own ledgerd, but they all publish into the one JetStream stream, on
//! `ics.<system>.<family>.<event>`. A [`Fleet`] keeps one [`Checkpointed`] projection per
//! system, and [`run`] follows them all with one durable pull consumer on `ics.*.>`:
//!
//! 1. Catch up each system that has a ledgerd configured from that ledgerd's `ReadStored`
//!    (a ledgerd that cannot be reached is skipped: its system is then followed from
//!    JetStream alone until it can be reached).
//! 2. Route each message by the system in its subject (the second token) to that system's
//!    projection, which accepts only its own next sequence, linked to its own chain.
//!    Redeliveries are ignored. A message further on than the next sequence is a gap, filled
//!    from **that system's** ledgerd (the configured map system → URL) through the message's
//!    own sequence. A gap that cannot be filled — no ledgerd configured for the system, or
//!    its ledgerd unreachable — is logged and the message is *not* acknowledged (it is
//!    negatively acknowledged with a delay, so JetStream offers it again): the system's
//!    projection stays where it is and nothing of that system past the gap is acknowledged.
//!    Other systems carry on. A system with no ledgerd whose missing event never reaches
//!    JetStream again stays stuck there (the log says so) and its unacknowledged messages
//!    count against the consumer's `max_ack_pending`.
//! 3. NATS is untrusted: a message that names no system, does not decode, does not link to
//!    its system's chain or fold, claims a sequence its ledgerd does not have or differs from
//!    ledgerd's event there — or, on `ics.<system>.audit.checkpoint`, is not a checkpoint of
//!    that system or differs from the one already kept at its sequence — is **parked** with
//!    the reason (`crate::parked`) and acknowledged; the consumer goes on. An event
//!    `Established` for another system than the subject names is refused the same way, so a
//!    ledgerd misconfigured under another system's id cannot fold into it. A message that
//!    does not fold is checked against its system's ledgerd, if it has one: when the
//!    record's own event there does not fold either (from `ReadStored`, the same for any
//!    event), the system is **stuck** (`crate::status`): reported as of the event before,
//!    folded no further, its later messages passed over; the other systems go on.
//! 4. Checkpoint every system folded since the last checkpoint as **one sled batch**
//!    (atomic), flushed — every so many events or so often, never more than a tenth of the
//!    time (`pull::Schedule`; the views are small, so in practice on the interval) — and only
//!    then acknowledge (unlike positiond: a system without
//!    a ledgerd has no other copy of its events to fold again) — so after a crash every system's
//!    projection on disk is the fold of exactly its events `1..=sequence`, and every
//!    acknowledged message is in one of them.
//!
//! A lost consumer (a wiped or recreated stream) is created again with a backoff
//! (`pull::Follower`) and every system with a ledgerd caught up from it, as at start.
//!
//! Messages on `ics.<system>.audit.>` (signed checkpoints) are not events: each is kept in
//! [`ReceivedCheckpoints`] (the regulator's copy) and acknowledged without folding.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use api::pb;
use async_nats::jetstream::AckKind;
use domain::{Event, SystemEvent, SystemId};
use tokio_util::sync::CancellationToken;

use crate::incoming::Incoming;
use crate::ledgerd::{Access, LedgerdClient};
use crate::parked::{Parked, ParkedMessages};
use crate::projection::{Checkpointed, FoldError, Offer, Projection};
use crate::pull::{self, Schedule, Unsaved};
use crate::status::{StatusSender, Stuck, set_stuck};

/// oversightd checkpoints at most a tenth of the time (after a checkpoint that took `d`, the
/// next waits `9 d`), not positiond's hundredth: the fleet acknowledges only what a checkpoint
/// holds, so checkpointing rarely would hold JetStream's deliveries at `max_ack_pending`.
const CHECKPOINT_REST_FACTOR: u32 = 9;

/// Every system's projection, by system id.
pub type Fleet<P> = BTreeMap<SystemId, Checkpointed<P>>;

/// The fleet as queries see it: folded event by event under the lock.
pub type SharedFleet<P> = Arc<RwLock<Fleet<P>>>;

/// The subject filter that takes every system's events.
pub const ALL_SYSTEMS: &str = "ics.*.>";

/// How the fleet consumer runs.
#[derive(Clone, Debug)]
pub struct FleetSettings {
    pub nats_url: String,
    /// Each system's ledgerd gRPC URL, for catching up and filling gaps. A system missing
    /// here is followed from JetStream only; its gaps cannot be filled.
    pub ledgerds: BTreeMap<SystemId, String>,
    /// TLS and token for reaching each ledgerd (a system missing here: plaintext, no token).
    pub ledgerd_access: BTreeMap<SystemId, Access>,
    /// Durable consumer name; each replica has its own.
    pub consumer: String,
    pub stream_name: String,
    /// The subjects followed: [`ALL_SYSTEMS`] unless narrowed.
    pub filter_subject: String,
    /// Messages per pull.
    pub fetch_max: usize,
    /// Checkpoint after this many newly folded events (all systems together)…
    pub checkpoint_events: u64,
    /// …or this long after the first event folded since the last checkpoint.
    pub checkpoint_interval: Duration,
    /// How long JetStream waits before offering again a message whose gap could not be
    /// filled.
    pub retry_delay: Duration,
}

/// What became of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// Folded (this many events, a filled gap included) or ignored: acknowledge after the
    /// next checkpoint.
    Done { folded: u64 },
    /// Refused, for this reason (after folding this many events of a gap before it from
    /// ledgerd): park it, then acknowledge after the next checkpoint.
    Refused { folded: u64, reason: String },
    /// Its gap could not be filled: do not acknowledge; offer it again later.
    Retry,
}

/// Where a message belongs, read from its subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// An event of this system.
    Event(SystemId),
    /// Not an event (`ics.<system>.audit.…`: a signed checkpoint of this system's ledger):
    /// kept, not folded.
    Audit(SystemId),
}

/// The system a subject `ics.<system>.<family>.<event>` belongs to; `None` for a subject of
/// another shape.
pub fn route(subject: &str) -> Option<Route> {
    let mut tokens = subject.split('.');
    if tokens.next() != Some("ics") {
        return None;
    }
    let system = SystemId::new(tokens.next()?).ok()?;
    let family = tokens.next()?;
    tokens.next()?;
    if family == "audit" {
        return Some(Route::Audit(system));
    }
    Some(Route::Event(system))
}

/// Keeps a signed checkpoint received on `ics.<system>.audit.checkpoint` (flushed before the
/// message is acknowledged). One that is not a checkpoint, is of another system than its
/// subject, or differs from the one already kept at its sequence is refused — the reason is
/// returned, for parking — and not kept: the regulator keeps what the ledger signed, and
/// whether it verifies is the auditor's check.
fn keep_checkpoint(
    received: &ReceivedCheckpoints,
    system: &SystemId,
    payload: &[u8],
) -> anyhow::Result<Option<String>> {
    let checkpoint = match audit::SignedCheckpoint::decode(payload) {
        Ok(checkpoint) => checkpoint,
        Err(error) => {
            return Ok(Some(format!(
                "not a signed checkpoint, on {system}'s checkpoint subject: {error}"
            )));
        }
    };
    let claimed = &checkpoint.checkpoint.system;
    if claimed != system {
        return Ok(Some(format!(
            "a checkpoint of system '{claimed}' published under '{system}'"
        )));
    }
    let sequence = checkpoint.checkpoint.sequence;
    if !received
        .keep(&checkpoint)
        .context("keeping a received checkpoint")?
    {
        return Ok(Some(format!(
            "a checkpoint of {system} at sequence {sequence} that differs from the one already \
             received there (the first received stands)"
        )));
    }
    tracing::info!(%system, sequence, "kept a signed checkpoint");
    Ok(None)
}

/// Why offering an event to a fleet failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetFoldError {
    #[error(transparent)]
    Fold(#[from] FoldError),
    #[error("event {sequence} establishes system '{established}', but it arrived as '{routed}'")]
    WrongSystem {
        sequence: u64,
        routed: SystemId,
        established: SystemId,
    },
}

/// Offers `incoming` to `system`'s projection; a system seen for the first time gets a
/// projection only once an event is folded into it.
pub fn offer<P: Projection>(
    fleet: &mut Fleet<P>,
    system: &SystemId,
    incoming: &Incoming,
) -> Result<Offer, FleetFoldError> {
    if let Event::System(SystemEvent::Established {
        system: established,
        ..
    }) = &incoming.event
        && established != system
    {
        return Err(FleetFoldError::WrongSystem {
            sequence: incoming.sequence,
            routed: system.clone(),
            established: established.clone(),
        });
    }
    if let Some(checkpointed) = fleet.get_mut(system) {
        return Ok(checkpointed.offer(incoming)?);
    }
    let mut fresh = Checkpointed::<P>::default();
    let offered = fresh.offer(incoming)?;
    if offered == Offer::Applied {
        fleet.insert(system.clone(), fresh);
    }
    Ok(offered)
}

/// Where the fleet's checkpoints are kept: one value per system in one sled tree, written
/// together in one batch.
pub struct FleetCheckpointStore {
    db: sled::Db,
    tree: sled::Tree,
    parked: ParkedMessages,
}

const TREE: &[u8] = b"fleet";
/// Bumped when the stored layout changes; a system's checkpoint of another format is
/// rebuilt from the log rather than misread.
const FORMAT: u8 = 1;

impl FleetCheckpointStore {
    pub fn open(dir: &Path) -> Result<Self, crate::checkpoint::CheckpointError> {
        let db = store::open_db(&sled::Config::new().path(dir).flush_every_ms(None))?;
        let tree = db.open_tree(TREE)?;
        let parked = ParkedMessages::open(&db)?;
        Ok(FleetCheckpointStore { db, tree, parked })
    }

    /// Every stored system's checkpoint. One that does not decode, or is of another format,
    /// or is stored under a key that is not a system id, is left out (and so rebuilt from the
    /// log: the log is the record, this is a cache).
    pub fn load<P: Projection>(&self) -> Result<Fleet<P>, crate::checkpoint::CheckpointError> {
        let mut fleet = Fleet::new();
        for entry in &self.tree {
            let (key, bytes) = entry?;
            let Some(system) = std::str::from_utf8(&key)
                .ok()
                .and_then(|k| SystemId::new(k).ok())
            else {
                tracing::warn!(key = ?key, "stored checkpoint under a key that is not a system id: ignored");
                continue;
            };
            let decoded: Result<Checkpointed<P>, String> = match bytes.split_first() {
                Some((&FORMAT, body)) => {
                    bincode::serde::decode_from_slice(body, bincode::config::standard())
                        .map(|(value, _)| value)
                        .map_err(|e| e.to_string())
                }
                Some((format, _)) => Err(format!("format {format}")),
                None => Err("empty".to_string()),
            };
            match decoded {
                Ok(checkpointed) => {
                    fleet.insert(system, checkpointed);
                }
                Err(reason) => {
                    tracing::warn!(%system, %reason, "stored checkpoint unusable: rebuilding the system from the log");
                }
            }
        }
        Ok(fleet)
    }

    /// Stores the checkpoints of `systems` (those in `fleet`) in one atomic batch and flushes
    /// it to disk before returning.
    pub fn save<P: Projection>(
        &self,
        fleet: &Fleet<P>,
        systems: &BTreeSet<SystemId>,
    ) -> Result<(), crate::checkpoint::CheckpointError> {
        let mut batch = sled::Batch::default();
        for system in systems {
            if let Some(checkpointed) = fleet.get(system) {
                let mut bytes = vec![FORMAT];
                bytes.extend(bincode::serde::encode_to_vec(
                    checkpointed,
                    bincode::config::standard(),
                )?);
                batch.insert(system.as_str().as_bytes(), bytes);
            }
        }
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }
}

impl FleetCheckpointStore {
    /// The messages refused from JetStream (one count, shared by every clone).
    pub fn parked(&self) -> &ParkedMessages {
        &self.parked
    }

    /// The signed checkpoints of the ledgers this fleet follows, as received.
    pub fn received(&self) -> Result<ReceivedCheckpoints, crate::checkpoint::CheckpointError> {
        Ok(ReceivedCheckpoints {
            db: self.db.clone(),
            tree: self.db.open_tree(RECEIVED_TREE)?,
        })
    }
}

const RECEIVED_TREE: &[u8] = b"received-checkpoints";

/// Every signed checkpoint received, by system and sequence: the regulator's copy, which a
/// ledger rewritten later cannot change. Cheap to clone.
#[derive(Clone)]
pub struct ReceivedCheckpoints {
    db: sled::Db,
    tree: sled::Tree,
}

impl ReceivedCheckpoints {
    fn key(system: &SystemId, sequence: u64) -> Vec<u8> {
        let mut key = system.as_str().as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(&sequence.to_be_bytes());
        key
    }

    /// Keeps `checkpoint` (flushed); `false` if another checkpoint is already kept at its
    /// sequence (the first received stands; receiving the same one again is `true`).
    pub fn keep(
        &self,
        checkpoint: &audit::SignedCheckpoint,
    ) -> Result<bool, crate::checkpoint::CheckpointError> {
        let c = &checkpoint.checkpoint;
        let key = Self::key(&c.system, c.sequence);
        let bytes = checkpoint.encode();
        let kept =
            match self
                .tree
                .compare_and_swap(&key, None as Option<&[u8]>, Some(bytes.as_slice()))?
            {
                Ok(()) => true,
                Err(existing) => existing.current.as_deref() == Some(bytes.as_slice()),
            };
        self.db.flush()?;
        Ok(kept)
    }

    /// Up to `limit` of `system`'s checkpoints from `from_sequence`, in sequence order.
    pub fn list(
        &self,
        system: &SystemId,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<audit::SignedCheckpoint>, crate::checkpoint::CheckpointError> {
        let mut found = Vec::new();
        let range = self
            .tree
            .range(Self::key(system, from_sequence)..=Self::key(system, u64::MAX));
        for entry in range.take(limit) {
            let (key, bytes) = entry?;
            match audit::SignedCheckpoint::decode(&bytes) {
                Ok(checkpoint) => found.push(checkpoint),
                Err(error) => tracing::warn!(?key, %error, "a kept checkpoint does not decode"),
            }
        }
        Ok(found)
    }
}

/// The ledgerds, connected lazily (one that is down does not hold up the others).
struct Ledgerds {
    clients: BTreeMap<SystemId, LedgerdClient>,
}

impl Ledgerds {
    fn new(
        urls: &BTreeMap<SystemId, String>,
        access: &BTreeMap<SystemId, Access>,
    ) -> anyhow::Result<Ledgerds> {
        let mut clients = BTreeMap::new();
        for (system, url) in urls {
            let access = access.get(system).cloned().unwrap_or_default();
            let endpoint = crate::ledgerd::endpoint(url, &access)
                .with_context(|| format!("the ledgerd of system {system}"))?
                // A ledgerd that accepts but does not answer must not hold up every system.
                .timeout(Duration::from_secs(30));
            clients.insert(
                system.clone(),
                crate::ledgerd::client(endpoint.connect_lazy(), &access)?,
            );
        }
        Ok(Ledgerds { clients })
    }

    fn get(&self, system: &SystemId) -> Option<LedgerdClient> {
        self.clients.get(system).cloned()
    }
}

pub use crate::consumer::FillError;

/// Folds `system`'s events `from..=to` (to the head when `to` is `None`) from its ledgerd;
/// how many were new. The first that cannot be read or folded stops it
/// ([`FillError::Stuck`]): the system's projection stands at the event before.
pub async fn fill<P: Projection>(
    ledger: &mut LedgerdClient,
    shared: &SharedFleet<P>,
    system: &SystemId,
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
        let mut fleet = write(shared);
        for decoded in events {
            let next = fleet.get(system).map_or(0, |c| c.sequence) + 1;
            let stuck = |reason: String| FillError::Stuck(Stuck::new(next, reason));
            let incoming = decoded.map_err(|e| stuck(format!("an event from ledgerd: {e}")))?;
            // ledgerd is the record: anything it sends that does not fold stops the fold there.
            match offer(&mut fleet, system, &incoming) {
                Ok(Offer::Applied) => folded += 1,
                Ok(Offer::AlreadyApplied) => {}
                Ok(Offer::Gap { next }) => {
                    return Err(stuck(format!(
                        "ledgerd's ReadStored skipped from {next} to {}",
                        incoming.sequence
                    )));
                }
                Err(error) => return Err(stuck(error.to_string())),
            }
        }
    }
    Ok(folded)
}

/// Catches `system` up from its ledgerd; a system whose log holds an event that does not fold
/// is marked stuck on `status` (the others go on).
async fn catch_up<P: Projection>(
    ledgerds: &Ledgerds,
    shared: &SharedFleet<P>,
    status: &StatusSender,
    system: &SystemId,
    dirty: &mut BTreeSet<SystemId>,
) {
    let Some(mut ledger) = ledgerds.get(system) else {
        return;
    };
    if status.borrow().stuck.contains_key(system) {
        return;
    }
    let from = next_sequence(shared, system);
    match fill(&mut ledger, shared, system, from, None).await {
        Ok(folded) => {
            tracing::info!(%system, folded, sequence = from + folded - 1, "caught up from ledgerd");
            if folded > 0 {
                dirty.insert(system.clone());
            }
        }
        Err(FillError::Unavailable(status)) => {
            tracing::warn!(%system, %status, "ledgerd not reachable: following the system from JetStream until it is");
        }
        Err(FillError::Stuck(stuck)) => {
            dirty.insert(system.clone());
            set_stuck(status, system, stuck);
        }
    }
}

/// Runs until `stop`; checkpoints before returning. Fails only on what must not be passed
/// over: a checkpoint that cannot be written, a message that cannot be parked. A system whose
/// log holds an event that does not fold is marked stuck on `status` and folded no further;
/// the others go on. A lost consumer is created again ([`pull::Follower`]) and every system
/// caught up from its ledgerd.
pub async fn run<P: Projection>(
    settings: FleetSettings,
    checkpoints: FleetCheckpointStore,
    shared: SharedFleet<P>,
    status: StatusSender,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let ledgerds = Ledgerds::new(&settings.ledgerds, &settings.ledgerd_access)?;
    let received = checkpoints.received()?;
    let parked = checkpoints.parked().clone();
    let mut dirty = BTreeSet::new();
    for system in settings.ledgerds.keys() {
        catch_up(&ledgerds, &shared, &status, system, &mut dirty).await;
    }
    save(&checkpoints, &shared, &mut dirty)?;
    for system in read(&shared).keys() {
        if !settings.ledgerds.contains_key(system) {
            tracing::warn!(%system, "no ledgerd configured: a gap in this system's messages cannot be filled");
        }
    }

    let mut follower = pull::Follower::connect(
        &settings.nats_url,
        &settings.consumer,
        &settings.stream_name,
        settings.filter_subject.clone(),
        status.clone(),
    )
    .await?;
    let mut unsaved = Unsaved::new(Schedule::new(
        settings.checkpoint_events,
        settings.checkpoint_interval,
        CHECKPOINT_REST_FACTOR,
    ));
    while let Some(mut batch) = follower.next_batch(settings.fetch_max, &stop).await {
        if follower.take_recreated() {
            for system in settings.ledgerds.keys() {
                catch_up(&ledgerds, &shared, &status, system, &mut dirty).await;
            }
        }
        while let Some(message) = follower.next_message(&mut batch).await {
            let outcome = fold_message(
                &ledgerds,
                &received,
                &shared,
                &status,
                message.subject.as_str(),
                &message.payload,
                &mut dirty,
            )
            .await?;
            match outcome {
                Outcome::Done { folded } => unsaved.hold(message, folded),
                Outcome::Refused { folded, reason } => {
                    parked
                        .park(Parked::message(&message, reason))
                        .context("parking a message")?;
                    unsaved.hold(message, folded);
                }
                Outcome::Retry => {
                    if let Err(error) = message
                        .ack_with(AckKind::Nak(Some(settings.retry_delay)))
                        .await
                    {
                        // Not acknowledged either way: JetStream offers it again after its
                        // ack wait.
                        tracing::warn!(%error, "nak failed");
                    }
                }
            }
        }
        if unsaved.due() {
            let started = std::time::Instant::now();
            save(&checkpoints, &shared, &mut dirty)?;
            unsaved.saved(started.elapsed());
        }
        unsaved.ack_if_saved().await;
    }
    save(&checkpoints, &shared, &mut dirty)?;
    unsaved.saved(std::time::Duration::ZERO);
    unsaved.ack_if_saved().await;
    tracing::info!(systems = read(&shared).len(), "fleet consumer stopped");
    Ok(())
}

/// Folds one JetStream message into its system (filling any gap before it from that
/// system's ledgerd). A message of a system stuck on an event that does not fold is passed
/// over (acknowledged after the next checkpoint, not folded): that system's ledgerd holds it,
/// and a restart catches up from there.
async fn fold_message<P: Projection>(
    ledgerds: &Ledgerds,
    received: &ReceivedCheckpoints,
    shared: &SharedFleet<P>,
    status: &StatusSender,
    subject: &str,
    payload: &[u8],
    dirty: &mut BTreeSet<SystemId>,
) -> anyhow::Result<Outcome> {
    let refused = |folded: u64, reason: String| Ok(Outcome::Refused { folded, reason });
    let system = match route(subject) {
        Some(Route::Event(system)) => system,
        Some(Route::Audit(system)) => {
            return match keep_checkpoint(received, &system, payload)? {
                Some(reason) => refused(0, reason),
                None => Ok(Outcome::Done { folded: 0 }),
            };
        }
        None => return refused(0, "its subject names no system".to_string()),
    };
    if status.borrow().stuck.contains_key(&system) {
        return Ok(Outcome::Done { folded: 0 });
    }
    let incoming = match Incoming::decode(payload) {
        Ok(incoming) => incoming,
        Err(error) => return refused(0, error.to_string()),
    };
    let offered = offer(&mut write(shared), &system, &incoming);
    let (from, through) = match &offered {
        Ok(Offer::Applied) => {
            dirty.insert(system);
            return Ok(Outcome::Done { folded: 1 });
        }
        Ok(Offer::AlreadyApplied) => return Ok(Outcome::Done { folded: 0 }),
        Ok(Offer::Gap { next }) => (*next, incoming.sequence),
        Err(error) => {
            if ledgerds.get(&system).is_none() {
                return refused(0, format!("{system}: {error}"));
            }
            // Is it the message, or the record? Ledgerd's copy of that sequence decides.
            (incoming.sequence, incoming.sequence)
        }
    };
    let Some(mut ledger) = ledgerds.get(&system) else {
        tracing::error!(
            %system,
            from,
            to = through,
            "gap cannot be filled: no ledgerd configured for the system; not acknowledging past it"
        );
        return Ok(Outcome::Retry);
    };
    // Fill from the record, through this event's own sequence: the copy from ledgerd is
    // authoritative, the message is then a redelivery — unless ledgerd has no such event, or
    // another one there.
    match fill(&mut ledger, shared, &system, from, Some(through)).await {
        Ok(filled) => {
            tracing::info!(%system, from, to = through, "filled from ledgerd");
            if filled > 0 {
                dirty.insert(system.clone());
            }
            let disagreement = read(shared)
                .get(&system)
                .and_then(|folded| folded.disagreement(&incoming));
            match (disagreement, offered) {
                (Some(reason), _) => refused(filled, reason),
                (None, Err(error)) => refused(
                    filled,
                    format!("{system}: {error}; ledgerd's event {through} folded in its place"),
                ),
                (None, Ok(_)) => Ok(Outcome::Done { folded: filled }),
            }
        }
        Err(FillError::Unavailable(error)) => {
            tracing::warn!(%system, %error, from, to = through, "not filled: ledgerd unavailable; not acknowledging past it");
            Ok(Outcome::Retry)
        }
        Err(FillError::Stuck(stuck)) => {
            dirty.insert(system.clone());
            set_stuck(status, &system, stuck);
            Ok(Outcome::Done { folded: 1 })
        }
    }
}

fn next_sequence<P>(shared: &SharedFleet<P>, system: &SystemId) -> u64 {
    read(shared).get(system).map_or(0, |c| c.sequence) + 1
}

fn save<P: Projection>(
    checkpoints: &FleetCheckpointStore,
    shared: &SharedFleet<P>,
    dirty: &mut BTreeSet<SystemId>,
) -> anyhow::Result<()> {
    if dirty.is_empty() {
        return Ok(());
    }
    checkpoints
        .save(&read(shared), dirty)
        .context("saving the checkpoint")?;
    dirty.clear();
    Ok(())
}

fn read<P>(shared: &SharedFleet<P>) -> std::sync::RwLockReadGuard<'_, Fleet<P>> {
    shared
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<P>(shared: &SharedFleet<P>) -> std::sync::RwLockWriteGuard<'_, Fleet<P>> {
    shared
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct Count(u64);

    impl Projection for Count {
        fn apply(&mut self, _: &Incoming) -> Result<(), String> {
            self.0 += 1;
            Ok(())
        }
    }

    fn system(id: &str) -> SystemId {
        SystemId::new(id).expect("id")
    }

    #[test]
    fn subjects_route_to_their_system() {
        assert_eq!(
            route("ics.kav.contract.invoice_raised"),
            Some(Route::Event(system("kav")))
        );
        assert_eq!(
            route("ics.north-east.system.metric_reported"),
            Some(Route::Event(system("north-east")))
        );
        assert_eq!(
            route("ics.kav.audit.checkpoint"),
            Some(Route::Audit(SystemId::new("kav").unwrap()))
        );
        assert_eq!(route("ics.kav"), None, "no family");
        assert_eq!(route("ics.kav.system"), None, "no event");
        assert_eq!(route("ics.KAV.system.x"), None, "not a system id");
        assert_eq!(route("other.kav.system.x"), None);
        assert_eq!(route(""), None);
    }

    fn checkpointed(n: u64) -> Checkpointed<Count> {
        Checkpointed {
            projection: Count(n),
            sequence: n,
            hash: [u8::try_from(n).expect("small"); 32],
            recorded_at_us: 1_700_000_000_000_000,
        }
    }

    #[test]
    fn every_system_is_saved_together_and_a_foreign_value_is_rebuilt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut fleet = Fleet::new();
        fleet.insert(system("kav"), checkpointed(7));
        fleet.insert(system("wes"), checkpointed(3));
        fleet.insert(system("nor"), checkpointed(5));
        {
            let store = FleetCheckpointStore::open(dir.path()).expect("open");
            assert!(store.load::<Count>().expect("load").is_empty());
            let dirty: BTreeSet<SystemId> = [system("kav"), system("wes")].into();
            store.save(&fleet, &dirty).expect("save");
        }
        let store = FleetCheckpointStore::open(dir.path()).expect("reopen");
        let loaded = store.load::<Count>().expect("load");
        fleet.remove(&system("nor"));
        assert_eq!(loaded, fleet, "only the systems saved");

        store
            .tree
            .insert(b"wes", vec![FORMAT + 1, 1, 2])
            .expect("insert");
        store
            .tree
            .insert(b"NOT A SYSTEM", vec![FORMAT])
            .expect("insert");
        let loaded = store.load::<Count>().expect("load");
        assert_eq!(loaded.keys().collect::<Vec<_>>(), [&system("kav")]);
    }
}
