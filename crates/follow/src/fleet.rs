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
//!    projection, which accepts only its own next sequence, linked to its own chain; for a
//!    system with a ledgerd, events that link are held until that ledgerd vouches for the
//!    last of them (`crate::pending`) and settled from it otherwise, so whoever can publish
//!    into NATS cannot make oversightd fold what the ledger did not record. Redeliveries are
//!    ignored. A message further on than the next sequence is a gap, filled
//!    from **that system's** ledgerd (the configured map system → URL) through the message's
//!    own sequence. A gap that cannot be filled — no ledgerd configured for the system, or
//!    its ledgerd unreachable — is logged and the message is *not* acknowledged (it is
//!    negatively acknowledged with a delay, so JetStream offers it again): the system's
//!    projection stays where it is and nothing of that system past the gap is acknowledged.
//!    Other systems carry on. A system with no ledgerd is vouched for by the ledger's own
//!    signatures instead: the relay signs (`audit::relay`) the last event of every run it
//!    publishes and every 64th, and oversightd folds a run held only once an event of it
//!    verifies under the system's checkpoint key (`checkpoint_keys`; a system with neither a
//!    ledgerd nor a key cannot be vouched for, and its events are parked). A message that
//!    does not link is offered again a few times (what it follows may still arrive), then
//!    parked.
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
use async_nats::jetstream::{AckKind, Message};
use domain::{Event, SystemEvent, SystemId};
use tokio_util::sync::CancellationToken;

use crate::incoming::Incoming;
use crate::ledgerd::{Access, LedgerdClient};
use crate::parked::{Parked, ParkedMessages};
use crate::pending::Pending;
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
    /// Who the consumer is on NATS (its nkey and inbox prefix).
    pub nats_credentials: bus::Credentials,
    /// Each system's ledgerd gRPC URL, for catching up and filling gaps. A system missing
    /// here is followed from JetStream only; its gaps cannot be filled.
    pub ledgerds: BTreeMap<SystemId, String>,
    /// TLS and token for reaching each ledgerd (a system missing here: plaintext, no token).
    pub ledgerd_access: BTreeMap<SystemId, Access>,
    /// Each system's checkpoint public key: a checkpoint received is kept only if it
    /// verifies under its system's key.
    pub checkpoint_keys: BTreeMap<SystemId, audit::checkpoint::LedgerKey>,
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
/// subject, does not verify under the system's checkpoint key (or the system has none), or
/// differs from the one already kept at its sequence is refused — the reason is returned, for
/// parking — and not kept: the regulator keeps only what the ledger signed, so a forged one
/// can neither be kept nor take the place of the genuine one.
fn keep_checkpoint(
    received: &ReceivedCheckpoints,
    keys: &BTreeMap<SystemId, audit::checkpoint::LedgerKey>,
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
    let Some(key) = keys.get(system) else {
        return Ok(Some(format!(
            "a checkpoint of {system} at {sequence}, but no checkpoint key is configured for \
             {system} (checkpoint_keys): it cannot be checked, so it is not kept"
        )));
    };
    if let Err(error) = checkpoint.verify(key) {
        return Ok(Some(format!("{system}: {error}")));
    }
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
        &settings.nats_credentials,
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
    let mut pending: BTreeMap<SystemId, Pending> = BTreeMap::new();
    let context = Reading {
        ledgerds: &ledgerds,
        received: &received,
        checkpoint_keys: &settings.checkpoint_keys,
        shared: &shared,
        status: &status,
    };
    while let Some(mut batch) = follower.next_batch(settings.fetch_max, &stop).await {
        if follower.take_recreated() {
            // What was held comes again from the new consumer, or from ledgerd now.
            pending.clear();
            for system in settings.ledgerds.keys() {
                catch_up(&ledgerds, &shared, &status, system, &mut dirty).await;
            }
        }
        loop {
            // Held events are vouched for as soon as no message follows at once (or the
            // batch ends): a burst is one run per system, one look at its ledgerd.
            let holding = pending
                .iter()
                .any(|(system, held)| !held.is_empty() && ledgerds.get(system).is_some());
            let next = if holding {
                match tokio::time::timeout(VOUCH_AFTER, follower.next_message(&mut batch)).await {
                    Ok(next) => next,
                    Err(_) => {
                        let outcomes = vouch_all(&context, &mut pending, &mut dirty).await;
                        settle_outcomes(&parked, &mut unsaved, &settings, outcomes).await?;
                        continue;
                    }
                }
            } else {
                follower.next_message(&mut batch).await
            };
            let Some(message) = next else { break };
            let outcomes = take_message(&context, &mut pending, message, &mut dirty).await?;
            settle_outcomes(&parked, &mut unsaved, &settings, outcomes).await?;
            // A steady flow leaves no pause to vouch in: a run this long is vouched now.
            let long = pending.iter().any(|(system, held)| {
                held.len() >= crate::consumer::VOUCH_RUN_MAX && ledgerds.get(system).is_some()
            });
            if long {
                let outcomes = vouch_all(&context, &mut pending, &mut dirty).await;
                settle_outcomes(&parked, &mut unsaved, &settings, outcomes).await?;
            }
        }
        let outcomes = vouch_all(&context, &mut pending, &mut dirty).await;
        settle_outcomes(&parked, &mut unsaved, &settings, outcomes).await?;
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

/// How long held events wait for the next message before they are vouched for.
const VOUCH_AFTER: Duration = Duration::from_millis(5);

/// What the fleet's message handling reads.
struct Reading<'a, P> {
    ledgerds: &'a Ledgerds,
    received: &'a ReceivedCheckpoints,
    checkpoint_keys: &'a BTreeMap<SystemId, audit::checkpoint::LedgerKey>,
    shared: &'a SharedFleet<P>,
    status: &'a StatusSender,
}

/// Messages whose fate is decided.
type Outcomes = Vec<(Message, Outcome)>;

/// Parks, holds for acknowledgement after the next checkpoint, or offers again later, each
/// message as decided.
async fn settle_outcomes(
    parked: &ParkedMessages,
    unsaved: &mut Unsaved,
    settings: &FleetSettings,
    outcomes: Outcomes,
) -> anyhow::Result<()> {
    for (message, outcome) in outcomes {
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
                    // Not acknowledged either way: JetStream offers it again after its ack
                    // wait.
                    tracing::warn!(%error, "nak failed");
                }
            }
        }
    }
    Ok(())
}

/// Takes one JetStream message, treating it as untrusted. A message of a system stuck on an
/// event that does not fold is passed over (acknowledged after the next checkpoint, not
/// folded): that system's ledgerd holds it, and a restart catches up from there.
///
/// For a system with a ledgerd, an event is folded only once its ledgerd vouches for it
/// (`crate::pending`): the next event after the system's projection and what is held is held;
/// a redelivery is passed over; anything else (a gap, another event at a sequence held or
/// folded, an event that does not link) is settled from ledgerd. A system without one is
/// vouched for by the ledger's signatures ([`take_signed`]).
async fn take_message<P: Projection>(
    context: &Reading<'_, P>,
    pending: &mut BTreeMap<SystemId, Pending>,
    message: Message,
    dirty: &mut BTreeSet<SystemId>,
) -> anyhow::Result<Outcomes> {
    let refused =
        |message, reason: String| Ok(vec![(message, Outcome::Refused { folded: 0, reason })]);
    let system = match route(&message.subject) {
        Some(Route::Event(system)) => system,
        Some(Route::Audit(system)) => {
            let outcome = match keep_checkpoint(
                context.received,
                context.checkpoint_keys,
                &system,
                &message.payload,
            )? {
                Some(reason) => Outcome::Refused { folded: 0, reason },
                None => Outcome::Done { folded: 0 },
            };
            return Ok(vec![(message, outcome)]);
        }
        None => return refused(message, "its subject names no system".to_string()),
    };
    if context.status.borrow().stuck.contains_key(&system) {
        return Ok(vec![(message, Outcome::Done { folded: 0 })]);
    }
    let incoming = match Incoming::decode(&message.payload) {
        Ok(incoming) => incoming,
        Err(error) => return refused(message, error.to_string()),
    };
    let Some(mut ledger) = context.ledgerds.get(&system) else {
        let held = pending.entry(system.clone()).or_default();
        return Ok(take_signed(
            context, &system, held, incoming, message, dirty,
        ));
    };
    let tip = tip(context.shared, &system);
    if incoming.sequence <= tip.0 {
        if incoming.sequence == tip.0 && incoming.hash != tip.1 {
            let reason = format!(
                "its hash differs from the ledger's event {}",
                incoming.sequence
            );
            return refused(message, reason);
        }
        return Ok(vec![(message, Outcome::Done { folded: 0 })]);
    }
    let held = pending.entry(system.clone()).or_default();
    if held.extends(tip, &incoming) {
        held.push(incoming, message);
        return Ok(Vec::new());
    }
    if held.hash_at(incoming.sequence) == Some(incoming.hash) {
        return Ok(vec![(message, Outcome::Done { folded: 0 })]);
    }
    let end = held.end(tip).0;
    let why = if incoming.sequence == end + 1 {
        Some(format!("{system}: it does not link to event {end}"))
    } else if incoming.sequence <= end {
        Some(format!(
            "{system}: another event than the one held at {}",
            incoming.sequence
        ))
    } else {
        None
    };
    let through = incoming.sequence.max(end);
    Ok(settle(
        context,
        &mut ledger,
        &system,
        held,
        through,
        Some((incoming, message, why)),
        dirty,
    )
    .await)
}

/// The most events of a system followed from NATS alone held without a signature of the
/// ledger's: the relay signs at least every `audit::relay::SIGN_EVERY`, so a run this long is
/// not the ledger's.
const SIGNED_HELD_MAX: usize = 1_024;

/// How many times a message of a system followed from NATS alone that does not link to the
/// events held is offered again (a run held before it may turn out not to be the ledger's)
/// before it is refused.
const UNLINKED_DELIVERIES_MAX: i64 = 5;

/// Takes an event of a system with no ledgerd: it is folded once the ledger's signature
/// (`audit::relay`, the relay's `Ics-Signature` header, checked under the system's checkpoint
/// key) vouches for it or for an event after it. Events that link are held until one of them
/// is signed; a signed event that does not extend the run held but links to a part of it shows
/// that the rest of the run is not the ledger's (parked); an event after a gap is offered again
/// until the gap is filled; anything else that does not link is offered again a few times,
/// then refused. A system with no key cannot be vouched for: its events are refused.
fn take_signed<P: Projection>(
    context: &Reading<'_, P>,
    system: &SystemId,
    held: &mut Pending,
    incoming: Incoming,
    message: Message,
    dirty: &mut BTreeSet<SystemId>,
) -> Outcomes {
    let refused = |message, reason: String| vec![(message, Outcome::Refused { folded: 0, reason })];
    let Some(key) = context.checkpoint_keys.get(system) else {
        return refused(
            message,
            format!(
                "{system}: no ledgerd and no checkpoint key configured for it, so nothing can \
                 vouch for its events"
            ),
        );
    };
    let signed = message
        .headers
        .as_ref()
        .and_then(bus::signature_of)
        .is_some_and(|signature| {
            audit::relay::verify(key, system, incoming.sequence, &incoming.hash, &signature)
        });
    let tip = tip(context.shared, system);
    if incoming.sequence <= tip.0 {
        if incoming.sequence == tip.0 && incoming.hash != tip.1 {
            let reason = format!(
                "its hash differs from the ledger's event {}",
                incoming.sequence
            );
            return refused(message, reason);
        }
        return vec![(message, Outcome::Done { folded: 0 })];
    }
    if held.hash_at(incoming.sequence) == Some(incoming.hash) {
        return vec![(message, Outcome::Done { folded: 0 })];
    }
    let mut outcomes = Vec::new();
    if signed && !held.extends(tip, &incoming) {
        // The ledger signed this event: whatever is held from its sequence on is not the
        // ledger's, if it links to what is held before.
        let before = incoming.sequence - 1;
        let links = if before == tip.0 {
            before == 0 || incoming.prev_hash == tip.1
        } else {
            held.hash_at(before) == Some(incoming.prev_hash)
        };
        if links {
            for (dropped, message) in held.take_from(incoming.sequence) {
                let reason = format!(
                    "{system}: not the ledger's event {}: the ledger signed another there",
                    dropped.sequence
                );
                outcomes.push((message, Outcome::Refused { folded: 0, reason }));
            }
        }
    }
    if held.extends(tip, &incoming) {
        held.push(incoming, message);
        if signed {
            outcomes.extend(fold_held(context, system, held, dirty));
        } else if held.len() > SIGNED_HELD_MAX {
            for (_, message) in held.take() {
                let reason = format!(
                    "{system}: {SIGNED_HELD_MAX} events followed without a signature of the \
                     ledger's: not the ledger's"
                );
                outcomes.push((message, Outcome::Refused { folded: 0, reason }));
            }
        }
        return outcomes;
    }
    // A gap before it: what it follows may still arrive (offered again until it does, as for a
    // system whose ledgerd cannot be reached). Another event at a sequence held, or one that
    // does not link: offered again a few times, in case what is held turns out not to be the
    // ledger's, then refused.
    let gap = incoming.sequence > held.end(tip).0 + 1;
    let delivered = message.info().map_or(i64::MAX, |info| info.delivered);
    let outcome = if gap || delivered < UNLINKED_DELIVERIES_MAX {
        Outcome::Retry
    } else {
        Outcome::Refused {
            folded: 0,
            reason: format!(
                "{system}: event {} does not link to the events before it, offered {delivered} \
                 times",
                incoming.sequence
            ),
        }
    };
    outcomes.push((message, outcome));
    outcomes
}

/// Folds the run held (vouched for: its last event is the ledger's); an event of it that does
/// not fold is the record's, so the system is stuck there.
fn fold_held<P: Projection>(
    context: &Reading<'_, P>,
    system: &SystemId,
    held: &mut Pending,
    dirty: &mut BTreeSet<SystemId>,
) -> Outcomes {
    let mut outcomes = Vec::new();
    let mut stuck = false;
    for (incoming, message) in held.take() {
        let mut folded = 0;
        if !stuck {
            match offer(&mut write(context.shared), system, &incoming) {
                Ok(Offer::Applied) => folded = 1,
                Ok(_) => {}
                Err(error) => {
                    stuck = true;
                    set_stuck(
                        context.status,
                        system,
                        Stuck::new(incoming.sequence, error.to_string()),
                    );
                }
            }
            dirty.insert(system.clone());
        }
        outcomes.push((message, Outcome::Done { folded }));
    }
    outcomes
}

/// Vouches for every system's run held ([`vouch`]).
async fn vouch_all<P: Projection>(
    context: &Reading<'_, P>,
    pending: &mut BTreeMap<SystemId, Pending>,
    dirty: &mut BTreeSet<SystemId>,
) -> Outcomes {
    let mut outcomes = Vec::new();
    for (system, held) in pending.iter_mut() {
        if held.is_empty() {
            continue;
        }
        let Some(mut ledger) = context.ledgerds.get(system) else {
            continue;
        };
        outcomes.extend(vouch(context, &mut ledger, system, held, dirty).await);
    }
    pending.retain(|_, held| !held.is_empty());
    outcomes
}

/// Vouches for `system`'s run held: its ledgerd's event at the run's end has the run's hash,
/// so the run is the ledger's and is folded (an event of it that does not fold is the
/// record's: the system is stuck); or it does not, and the run is settled from ledgerd.
/// ledgerd unavailable: the run is offered again later.
async fn vouch<P: Projection>(
    context: &Reading<'_, P>,
    ledger: &mut LedgerdClient,
    system: &SystemId,
    held: &mut Pending,
    dirty: &mut BTreeSet<SystemId>,
) -> Outcomes {
    let (end, hash) = held.end(tip(context.shared, system));
    match crate::ledgerd::hash_at(ledger, end).await {
        Err(error) => {
            tracing::warn!(%system, %error, "ledgerd unavailable to vouch for JetStream's events: offered again later");
            held.take()
                .into_iter()
                .map(|(_, message)| (message, Outcome::Retry))
                .collect()
        }
        Ok(Some(recorded)) if recorded == hash => fold_held(context, system, held, dirty),
        Ok(_) => settle(context, ledger, system, held, end, None, dirty).await,
    }
}

/// Folds `system`'s events through `through` from its ledgerd, then passes over each message
/// held (and `also`) that is the ledger's event at its sequence and refuses the others.
async fn settle<P: Projection>(
    context: &Reading<'_, P>,
    ledger: &mut LedgerdClient,
    system: &SystemId,
    held: &mut Pending,
    through: u64,
    also: Option<(Incoming, Message, Option<String>)>,
    dirty: &mut BTreeSet<SystemId>,
) -> Outcomes {
    let from = next_sequence(context.shared, system);
    let messages = held
        .take()
        .into_iter()
        .map(|(incoming, message)| (incoming, message, None))
        .chain(also);
    let filled = match fill(ledger, context.shared, system, from, Some(through)).await {
        Ok(filled) => filled,
        Err(FillError::Unavailable(error)) => {
            tracing::warn!(%system, %error, from, to = through, "not filled: ledgerd unavailable; not acknowledging past it");
            return messages
                .map(|(_, message, _)| (message, Outcome::Retry))
                .collect();
        }
        Err(FillError::Stuck(stuck)) => {
            dirty.insert(system.clone());
            set_stuck(context.status, system, stuck);
            return messages
                .map(|(_, message, _)| (message, Outcome::Done { folded: 0 }))
                .collect();
        }
    };
    if filled > 0 {
        dirty.insert(system.clone());
        tracing::info!(%system, from, to = through, "folded from ledgerd in place of JetStream's messages");
    }
    let mut folded = filled;
    let mut outcomes = Vec::new();
    for (incoming, message, why) in messages {
        let disagreement = read(context.shared).get(system).map_or_else(
            || {
                Some(format!(
                    "{system}: the ledger has no event {}",
                    incoming.sequence
                ))
            },
            |f| f.disagreement(&incoming),
        );
        let outcome = match (disagreement, why) {
            (None, _) => Outcome::Done { folded },
            (Some(reason), None) => Outcome::Refused { folded, reason },
            (Some(reason), Some(why)) => Outcome::Refused {
                folded,
                reason: format!("{why}; {reason}"),
            },
        };
        folded = 0;
        outcomes.push((message, outcome));
    }
    outcomes
}

/// `system`'s projection's last event: its sequence and hash (none folded: 0).
fn tip<P>(shared: &SharedFleet<P>, system: &SystemId) -> crate::pending::End {
    read(shared)
        .get(system)
        .map_or((0, [0; 32]), |folded| (folded.sequence, folded.hash))
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
