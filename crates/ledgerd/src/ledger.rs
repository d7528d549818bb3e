//! The command path: decide with the pure domain, append to the event store, acknowledge after
//! the flush.
//!
//! ledgerd is the single writer of its ICS, so the whole domain state lives here in memory and
//! commands are *decided* one at a time under a short lock: check idempotency, check the
//! client's expected version, `decide`, `apply`, and hand the events to the store's queue — all
//! synchronous, no `.await` under the lock. The flush is awaited *outside* the lock, so every
//! command that arrives while a flush is running joins the next group commit (one sled batch,
//! one fsync for many commands).
//!
//! This is the only place anything is decided: the store takes each request as settled — a new
//! request id, the stream version that follows on — and only checks that contract, stopping
//! (poisoned) if it is broken. So a resend is answered here, from the request still in flight
//! or, once it is durable, from the store's record of it (`lookup_request`).
//!
//! Deciding against state that is not yet durable is safe because the store commits batches in
//! queue order and all-or-nothing: if a batch fails, every later one is refused too (the store
//! poisons itself), and so does this ledger — it stops accepting commands and the process must
//! restart, rebuilding its state from what is on disk. A broken invariant stops the writer
//! rather than writing bad data.
//!
//! A log may hold an event this version's rules cannot apply (written by an older version with
//! other rules). The log is still the record — it verifies, and every reader may read it — so
//! the ledger does not refuse to start on it: it stops folding there ([`Stuck`]), serves reads
//! and relays as usual, and refuses every command, since it would be decided against a state
//! that is not the log's. A restart stops at the same event; a version whose rules apply it
//! (or a store restored from before it) is the way out.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use api::CommandMeta;
use domain::{
    Command, DomainError, Event, Family, Ledger as DomainLedger, StreamId, SystemCommand, SystemId,
};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use sha2::{Digest, Sha256};
use store::{AppendOutcome, AppendRequest, EventStore, NewEvent, StoreError};
use tokio::sync::Mutex;

/// The store, with the domain's event type.
pub type Store = EventStore<Event>;

/// Replaying the log at start-up reads it in pages of this many events.
const REPLAY_PAGE_EVENTS: usize = 4_096;

/// In-flight requests kept for idempotency before the first pruning of finished ones.
const IN_FLIGHT_PRUNE_AT: usize = 4_096;

/// Why a command was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("{stream} is at version {actual}, not the expected {expected}")]
    WrongExpectedVersion {
        stream: String,
        expected: u64,
        actual: u64,
    },
    #[error("request id {0} was already used for a different command")]
    RequestIdReused(String),
    #[error("the ledger stopped accepting commands after a storage failure; restart it")]
    Poisoned,
    /// The log holds an event the rules cannot apply: every command is refused.
    #[error("{0}")]
    Stuck(Stuck),
    #[error("event store: {0}")]
    Store(String),
    #[error(transparent)]
    Denied(#[from] auth::Denied),
}

type PendingResult = Result<AppendOutcome, Arc<SubmitError>>;
type SharedPending = Shared<BoxFuture<'static, PendingResult>>;

/// Everything the decider needs, behind one lock.
struct Core {
    state: DomainLedger,
    /// Current version of every stream, including events queued but not yet durable.
    versions: HashMap<StreamId, u64>,
    /// Global sequence of the last event queued (durable or not): the log's head as the next
    /// command sees it.
    sequence: u64,
    /// Requests queued but maybe not yet durable, so a concurrent resend waits for the same
    /// outcome instead of deciding twice.
    in_flight: HashMap<[u8; 16], ([u8; 32], SharedPending)>,
    /// Prune `in_flight` when it reaches this size: twice what the last pruning kept (at least
    /// [`IN_FLIGHT_PRUNE_AT`]), so a bulk load with thousands still in flight prunes in
    /// amortised constant time per command, not a full scan per command.
    prune_at: usize,
}

/// Event counts by family, for `Head`. Counted when an append becomes durable.
#[derive(Default)]
pub struct FamilyCounts([AtomicU64; 4]);

impl FamilyCounts {
    fn add(&self, family: Family, n: u64) {
        self.0[family_index(family)].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, family: Family) -> u64 {
        self.0[family_index(family)].load(Ordering::Relaxed)
    }
}

fn family_index(family: Family) -> usize {
    match family {
        Family::System => 0,
        Family::Budget => 1,
        Family::Funding => 2,
        Family::Contract => 3,
    }
}

/// The event at `sequence` of the log does not apply to the state the events before it build,
/// for `reason`: the ledger's state stands at `sequence - 1` and it takes no commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stuck {
    pub sequence: u64,
    pub reason: String,
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ledgerd takes no commands: event {} of its log does not apply to the state the \
             events before it build ({}), so it serves reads only. An operator can run a \
             ledgerd whose rules apply that event (the version that recorded it, or a later one \
             that accepts it), or restore the store from a backup taken before it; restarting \
             this version stops at the same event",
            self.sequence, self.reason
        )
    }
}

/// The write side of one ICS. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    /// The one system this ledger serves; its events are published under `ics.<system>.`.
    system: SystemId,
    store: Store,
    core: Arc<Mutex<Core>>,
    poisoned: Arc<AtomicBool>,
    counts: Arc<FamilyCounts>,
    /// Set at recovery when the log holds an event the rules cannot apply; never cleared.
    stuck: Option<Arc<Stuck>>,
}

impl Ledger {
    /// Rebuilds the domain state by replaying the whole log of `system`'s ledger; a log
    /// established for another system is refused. An event the rules cannot apply ends the
    /// fold there: the ledger recovers [`Ledger::stuck`], serving reads and refusing commands.
    pub fn recover(store: Store, system: SystemId) -> Result<Self, RecoverError> {
        let mut state = DomainLedger::default();
        let mut versions = HashMap::new();
        let counts = FamilyCounts::default();
        let mut stuck = None;
        let mut next = 1;
        loop {
            let page = store.read_all(next, REPLAY_PAGE_EVENTS)?;
            let Some(last) = page.last() else { break };
            next = last.sequence + 1;
            for recorded in &page {
                // Past a stuck event the rest is still read (it must decode) and counted.
                if stuck.is_none() {
                    match state.apply(&recorded.payload) {
                        Ok(()) => {
                            versions.insert(recorded.payload.stream(), recorded.version);
                        }
                        Err(error) => {
                            stuck = Some(Stuck {
                                sequence: recorded.sequence,
                                reason: error.to_string(),
                            });
                        }
                    }
                }
                counts.add(recorded.payload.family(), 1);
            }
        }
        let head = store.head();
        if next != head.sequence + 1 {
            return Err(RecoverError::Short {
                next,
                head: head.sequence,
            });
        }
        if let Some(established) = &state.system.established
            && established.system != system
        {
            return Err(RecoverError::WrongSystem {
                configured: system,
                recorded: established.system.clone(),
            });
        }
        Ok(Ledger {
            system,
            store,
            core: Arc::new(Mutex::new(Core {
                state,
                versions,
                sequence: head.sequence,
                in_flight: HashMap::new(),
                prune_at: IN_FLIGHT_PRUNE_AT,
            })),
            poisoned: Arc::new(AtomicBool::new(false)),
            counts: Arc::new(counts),
            stuck: stuck.map(Arc::new),
        })
    }

    /// The event of the log the rules could not apply, if recovery stopped at one: while
    /// `Some`, every command is refused with [`SubmitError::Stuck`].
    pub fn stuck(&self) -> Option<&Stuck> {
        self.stuck.as_deref()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn counts(&self) -> &FamilyCounts {
        &self.counts
    }

    /// Decides and queues a command; the returned future resolves once it is durable.
    ///
    /// Split from [`Ledger::submit`] so a bulk load can queue many commands in order and await
    /// their flushes together.
    pub async fn enqueue(
        &self,
        meta: CommandMeta,
        actor: &str,
        command: Command,
    ) -> Result<SharedPending, SubmitError> {
        self.enqueue_as(meta, actor, None, command).await
    }

    /// [`Ledger::enqueue`] for an authenticated caller: the command is refused
    /// ([`SubmitError::Denied`]) unless `principal`'s role may post it, judged against the
    /// state it would be decided on (who is the contract's provider, the budget's host).
    pub async fn enqueue_as(
        &self,
        meta: CommandMeta,
        actor: &str,
        principal: Option<&auth::Principal>,
        command: Command,
    ) -> Result<SharedPending, SubmitError> {
        if let Some(stuck) = &self.stuck {
            return Err(SubmitError::Stuck(Stuck::clone(stuck)));
        }
        if self.poisoned.load(Ordering::Acquire) {
            return Err(SubmitError::Poisoned);
        }
        if let Command::System(SystemCommand::Establish { system, .. }) = &command
            && *system != self.system
        {
            return Err(SubmitError::Domain(DomainError::invalid(
                "system",
                format!(
                    "this ledger serves system '{}', not '{system}'",
                    self.system
                ),
            )));
        }
        let command_hash = command_hash(&command);
        let mut core = self.core.lock().await;
        if let Some(principal) = principal {
            auth::may_post(principal, &command, &core.state)?;
        }

        if let Some((hash, pending)) = core.in_flight.get(&meta.request_id) {
            if *hash != command_hash {
                return Err(SubmitError::RequestIdReused(uuid_text(&meta.request_id)));
            }
            // The same command again while (or after) the first is in flight: the first's
            // outcome, marked as a resend.
            let first = pending.clone();
            let resend = async move {
                first.await.map(|outcome| AppendOutcome {
                    duplicate: true,
                    ..outcome
                })
            };
            return Ok(resend.boxed().shared());
        }
        if let Some(record) = self
            .store
            .lookup_request(&meta.request_id)
            .map_err(store_error)?
        {
            if !record.matches(&command_hash) {
                return Err(SubmitError::RequestIdReused(uuid_text(&meta.request_id)));
            }
            let outcome = AppendOutcome {
                duplicate: true,
                ..record.outcome
            };
            return Ok(futures::future::ready(Ok(outcome)).boxed().shared());
        }

        let stream = command.stream();
        let current = core.versions.get(&stream).copied().unwrap_or(0);
        if let Some(expected) = meta.expected_version
            && expected != current
        {
            return Err(SubmitError::WrongExpectedVersion {
                stream: stream.to_string(),
                expected,
                actual: current,
            });
        }

        let events = core.state.decide(&command)?;
        check_filed_sequence(&command, core.sequence)?;
        let request = AppendRequest {
            request_id: meta.request_id,
            command_hash,
            stream: stream.to_string(),
            stream_version: current,
            actor: actor.to_string(),
            correlation_id: meta.correlation_or_request_id(),
            events: events.iter().map(new_event).collect(),
        };
        // Nothing the store would refuse, or write so that a reader cannot read it back, may
        // reach the state: once applied, a refusal could only stop the ledger.
        self.store
            .check_request(&request)
            .map_err(|reason| DomainError::invalid("command", unrecordable(&reason)))?;
        // Apply before queueing, so the next command sees these events. apply() cannot fail for
        // events decide() produced; if it does, the rules are broken: stop writing altogether.
        for event in &events {
            if let Err(error) = core.state.apply(event) {
                self.poison(&format!("decide produced an event apply refuses: {error}"));
                return Err(SubmitError::Poisoned);
            }
        }
        let event_count = events.len() as u64;
        let family = events.first().map(Event::family);
        let pending = match self.store.enqueue(request) {
            Ok(pending) => pending,
            Err(error) => {
                self.poison(&error.to_string());
                return Err(store_error(error));
            }
        };
        core.versions.insert(stream, current + event_count);
        core.sequence += event_count;

        let ledger = self.clone();
        let shared = async move {
            let result = pending.await;
            match result {
                Ok(outcome) => {
                    if let Some(family) = family {
                        ledger.counts.add(family, event_count);
                    }
                    Ok(outcome)
                }
                Err(error) => {
                    // The in-memory state already includes these events: stop deciding.
                    ledger.poison(&error.to_string());
                    Err(Arc::new(SubmitError::Store(error.to_string())))
                }
            }
        }
        .boxed()
        .shared();
        if core.in_flight.len() >= core.prune_at {
            core.in_flight
                .retain(|_, (_, pending)| pending.peek().is_none());
            core.prune_at = (core.in_flight.len() * 2).max(IN_FLIGHT_PRUNE_AT);
        }
        core.in_flight
            .insert(meta.request_id, (command_hash, shared.clone()));
        Ok(shared)
    }

    /// Decides, appends and waits until the events are on disk.
    pub async fn submit(
        &self,
        meta: CommandMeta,
        actor: &str,
        command: Command,
    ) -> Result<AppendOutcome, SubmitError> {
        self.submit_as(meta, actor, None, command).await
    }

    /// [`Ledger::submit`] for an authenticated caller (see [`Ledger::enqueue_as`]).
    pub async fn submit_as(
        &self,
        meta: CommandMeta,
        actor: &str,
        principal: Option<&auth::Principal>,
        command: Command,
    ) -> Result<AppendOutcome, SubmitError> {
        let pending = self.enqueue_as(meta, actor, principal, command).await?;
        pending.await.map_err(|shared| match shared.as_ref() {
            SubmitError::Store(message) => SubmitError::Store(message.clone()),
            SubmitError::Poisoned => SubmitError::Poisoned,
            other => SubmitError::Store(other.to_string()),
        })
    }

    fn poison(&self, reason: &str) {
        if !self.poisoned.swap(true, Ordering::AcqRel) {
            tracing::error!(
                reason,
                "event store failed; refusing further commands until restart"
            );
        }
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }
}

/// Why the ledger could not start from its store.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log's events ended before its durable head: the store cannot be trusted.
    #[error("replaying the log ended before event {next}, though its head is {head}")]
    Short { next: u64, head: u64 },
    #[error("this log belongs to system '{recorded}', not the configured '{configured}'")]
    WrongSystem {
        configured: SystemId,
        recorded: SystemId,
    },
}

/// A filed return names the sequence its report was taken at: one the log has, at most
/// `head` (the last event recorded before this command). The domain checks the rest.
fn check_filed_sequence(command: &Command, head: u64) -> Result<(), DomainError> {
    match command {
        Command::System(SystemCommand::FileReturn(filed)) if filed.as_of_sequence > head => {
            Err(DomainError::invalid(
                "as_of_sequence",
                format!(
                    "{} is beyond the ledger's head {head}: a report can only be taken at a sequence the log has",
                    filed.as_of_sequence
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Why the store could not record a command's events, for its caller.
fn unrecordable(reason: &str) -> String {
    format!("the events this command records cannot be stored: {reason}")
}

/// The event as ledgerd appends it: a fresh event id, its type (`api::event_type`) and period.
/// Public so that benchmarks which fill a store directly record what ledgerd would.
pub fn new_event(event: &Event) -> NewEvent<Event> {
    NewEvent {
        event_id: *uuid::Uuid::new_v4().as_bytes(),
        event_type: api::event_type(event),
        effective_period: event.effective_period(),
        payload: event.clone(),
    }
}

/// SHA-256 of the command's canonical encoding: what a resend must match.
fn command_hash(command: &Command) -> [u8; 32] {
    // Encoding a value of a serde-derived type into a Vec cannot fail.
    let bytes =
        bincode::serde::encode_to_vec(command, bincode::config::standard()).unwrap_or_default();
    Sha256::digest(&bytes).into()
}

fn uuid_text(id: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*id).to_string()
}

fn store_error(error: StoreError) -> SubmitError {
    SubmitError::Store(error.to_string())
}
