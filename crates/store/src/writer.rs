//! The writer: group commit, on two threads.
//!
//! Why dedicated `std::thread`s rather than tasks: sled's `apply_batch` and `flush` block (the
//! flush is an fsync), and the store must work whether or not the caller runs tokio. One
//! admitting thread also makes sequencing trivial — it is the only code that assigns
//! sequences, stream versions, timestamps and hashes, so none of them need locks.
//!
//! - The **admitting** thread (`event-store-writer`) takes each request off the queue as it
//!   comes, checks that it keeps its caller's contract — a request id not appended before nor
//!   in flight, and the stream version that follows the requests admitted before it — then
//!   encodes and chains the events and adds them, with the request's idempotency record, to
//!   the batch being filled. It decides nothing: idempotency and expected versions are the
//!   caller's (ledgerd's), decided once. A request that breaks the contract means the caller's
//!   view of the log is not this one, so the store stops (`StoreError::ContractBroken`,
//!   poisoned) instead of answering it. The checks are a lookup each: the stream versions the
//!   thread keeps for itself (the durable index for a stream it has not seen since the store
//!   opened), the ids of requests not yet indexed, and the index. It never reads sled, so it
//!   never waits for a batch being applied: sled's `apply_batch` holds a process-wide lock
//!   that every read takes.
//! - The **committing** thread (`event-store-commit`) writes what one flush will make durable:
//!   the requests in the batch being filled once it has written the flush before, and the
//!   requests queued by then — what a single thread that drained its queue after each flush
//!   would write (or fewer, if they reach `batch_events_max` events first). It applies them
//!   to sled in **parts**: while the queued requests are still being admitted, whatever has
//!   been admitted is taken as soon as it holds `PART_EVENTS` (256) events and applied as ONE
//!   `sled::Batch` (atomic) — the events into the log's open page and the pages after it
//!   (`pages`), the part's request page, the meta head — so that sled's work on one part
//!   overlaps the encoding and hashing of the next; the last part once they are all in. Then
//!   it flushes ONCE, adds the flush's requests to the index, publishes the new head, and
//!   only then answers every request of the flush.
//!
//! Single-event requests (a dozen a flush) never make a part before the last, so they are written
//! exactly as by one thread; requests of 100 events are written faster in parts, with as many
//! events a flush (`crates/bench/README.md`, "A flush written in parts"). Taking a batch
//! without waiting for the queued requests instead made flushes smaller and single-event appends
//! slower (the README again). A flush closes early only at `batch_events_max` events, its parts
//! counted (a request that would overflow waits for the next flush, so requests are never split or
//! reordered). Parts applied and not yet flushed hold nothing anyone was told is durable: a crash
//! loses them or keeps them whole (each part is atomic, and the meta head it writes matches it).
//!
//! If a read, write or flush fails, every request of the flush fails and the store is
//! poisoned: what sled holds in memory (and the writer's open page) may then differ from disk,
//! so nothing more is written until a restart re-verifies the tip. When every handle is gone
//! the queue disconnects; the admitting thread admits what is still queued (std `mpsc`
//! delivers buffered messages before reporting the disconnect), the committing thread writes
//! and answers it, and both return.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{oneshot, watch};

use crate::anchor::AnchorWriter;
use crate::codec::{self, Envelope, EventRecordV1, HASH_LEN, SCHEMA_VERSION_LATEST};
use crate::durable::DiskSync;
use crate::error::{AppendError, StoreError};
use crate::keys;
use crate::model::{AppendOutcome, AppendRequest, Head, IdempotencyRecord, StoreStats};
use crate::pages::OpenPage;
use crate::requests::{self, Index};

/// The answer channel of one request.
pub(crate) type Reply = oneshot::Sender<Result<AppendOutcome, AppendError>>;

/// A request waiting in the queue, with the channel its answer goes to.
pub(crate) struct Queued<E> {
    pub request: AppendRequest<E>,
    pub reply: Reply,
}

/// State shared by the handles and the writer.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Set once, by the first write failure, broken contract or writer panic; never cleared.
    poison: OnceLock<String>,
    batches_committed: AtomicU64,
    requests_committed: AtomicU64,
    events_committed: AtomicU64,
    /// Requests put on the queue so far (`EventStore::enqueue`): the committing thread waits
    /// for those queued when it is ready to take a batch to be admitted into it.
    enqueued: AtomicU64,
    tree: sled::Tree,
    /// The durable head's sequence when the store opened: where the requests must end.
    opened_at: u64,
    /// Where each durable request's record and each stream's events are (`requests`): read
    /// from the request pages the first time anyone needs it — the first append, resend
    /// lookup or stream read — so that a store opened only to read the log (an audit, a
    /// replay) never pays for it; extended by the committing thread after each flush.
    index: OnceLock<RwLock<Index>>,
    /// Held while the index is being read, so it is read once.
    loading: Mutex<()>,
}

impl Shared {
    pub(crate) fn new(tree: sled::Tree, opened_at: u64) -> Self {
        Shared {
            poison: OnceLock::new(),
            batches_committed: AtomicU64::new(0),
            requests_committed: AtomicU64::new(0),
            events_committed: AtomicU64::new(0),
            enqueued: AtomicU64::new(0),
            tree,
            opened_at,
            index: OnceLock::new(),
            loading: Mutex::new(()),
        }
    }

    /// The index, read first if nobody has needed it yet. (Nobody panics while holding it;
    /// if one did, it is still whole: it is only ever extended, a request at a time, each
    /// checked before it changes anything.)
    pub(crate) fn index(&self) -> Result<std::sync::RwLockReadGuard<'_, Index>, StoreError> {
        Ok(self
            .loaded()?
            .read()
            .unwrap_or_else(PoisonError::into_inner))
    }

    fn index_mut(&self) -> Result<std::sync::RwLockWriteGuard<'_, Index>, StoreError> {
        Ok(self
            .loaded()?
            .write()
            .unwrap_or_else(PoisonError::into_inner))
    }

    fn loaded(&self) -> Result<&RwLock<Index>, StoreError> {
        if let Some(index) = self.index.get() {
            return Ok(index);
        }
        let _loading = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(index) = self.index.get() {
            return Ok(index);
        }
        // Nothing was committed since the store opened: committing needs the index.
        let started = std::time::Instant::now();
        let index = Index::load(&self.tree)?;
        if index.end() != self.opened_at {
            return Err(StoreError::Corrupt(format!(
                "the requests recorded end at event {}, the log at {}",
                index.end(),
                self.opened_at
            )));
        }
        tracing::info!(
            requests = index.requests(),
            streams = index.streams(),
            heap_bytes = index.heap_bytes(),
            elapsed_ms = started.elapsed().as_millis(),
            "event store: request index read"
        );
        Ok(self.index.get_or_init(|| RwLock::new(index)))
    }

    /// One more request is on the queue.
    pub(crate) fn count_enqueued(&self) {
        self.enqueued.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            batches_committed: self.batches_committed.load(Ordering::Relaxed),
            requests_committed: self.requests_committed.load(Ordering::Relaxed),
            events_committed: self.events_committed.load(Ordering::Relaxed),
        }
    }

    fn count_batch(&self, requests: usize, events: u64) {
        self.batches_committed.fetch_add(1, Ordering::Relaxed);
        self.requests_committed
            .fetch_add(requests as u64, Ordering::Relaxed);
        self.events_committed.fetch_add(events, Ordering::Relaxed);
    }

    pub(crate) fn poison(&self, reason: String) {
        if self.poison.set(reason).is_ok() {
            tracing::error!(
                reason = self.poisoned().unwrap_or_default(),
                "event store poisoned: refusing appends until restart"
            );
        }
    }

    pub(crate) fn poisoned(&self) -> Option<&str> {
        self.poison.get().map(String::as_str)
    }
}

/// The durable end of the chain, as the writer continues it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tip {
    pub sequence: u64,
    pub hash: [u8; HASH_LEN],
    pub recorded_at_us: i64,
}

impl Tip {
    pub(crate) const EMPTY: Tip = Tip {
        sequence: 0,
        hash: [0; HASH_LEN],
        recorded_at_us: 0,
    };

    /// The end of the chain after the request that had `outcome`.
    fn after(outcome: &AppendOutcome) -> Tip {
        Tip {
            sequence: outcome.last_sequence,
            hash: outcome.hash,
            recorded_at_us: outcome.recorded_at_us,
        }
    }

    pub(crate) fn head(self) -> Head {
        Head {
            sequence: self.sequence,
            hash: self.hash,
        }
    }
}

/// What the writer starts from.
pub(crate) struct Start<E> {
    pub tree: sled::Tree,
    pub queue: Receiver<Queued<E>>,
    pub head: watch::Sender<Head>,
    pub shared: Arc<Shared>,
    pub batch_events_max: usize,
    /// The durable end of the chain.
    pub tip: Tip,
    /// The log's last page, which the next events go into until it is full.
    pub page: OpenPage,
    /// What makes a flush durable.
    pub sync: Arc<DiskSync>,
    /// Told each new durable head.
    pub anchor: Arc<AnchorWriter>,
}

/// Starts the admitting and the committing thread. The handle is the admitting thread's: it
/// returns once the queue is disconnected and the committing thread has answered everything.
pub(crate) fn start<E>(start: Start<E>) -> Result<JoinHandle<()>, StoreError>
where
    E: Serialize + Send + 'static,
{
    let handover = Arc::new(Handover::default());
    let committer = Committer {
        tree: start.tree,
        head: start.head,
        shared: Arc::clone(&start.shared),
        handover: Arc::clone(&handover),
        tip: start.tip,
        applied: start.tip,
        page: start.page,
        sync: start.sync,
        anchor: start.anchor,
    };
    let committing = spawn("event-store-commit", move || committer.run())?;
    let admitter = Admitter {
        queue: start.queue,
        shared: start.shared,
        handover: Arc::clone(&handover),
        batch_events_max: start.batch_events_max,
        cursor: start.tip,
        versions: HashMap::new(),
    };
    spawn("event-store-writer", move || admitter.run(committing)).inspect_err(|_| {
        // The committing thread would otherwise wait for batches forever.
        handover.close();
    })
}

fn spawn(name: &str, run: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(run)
        .map_err(|e| StoreError::Spawn(e.to_string()))
}

/// What the admitting thread hands the committing one.
#[derive(Default)]
struct Handover {
    state: Mutex<Filling>,
    /// Signalled when a batch has something in it (or the queue is gone); the committing
    /// thread waits on it.
    ready: Condvar,
    /// Signalled when the committing thread takes a batch (or dies); the admitting thread
    /// waits on it when a request does not fit in the batch being filled.
    taken: Condvar,
}

#[derive(Default)]
struct Filling {
    /// The batch being filled.
    batch: Batch,
    /// The ids of the requests admitted and not yet in the index (in the batch being filled,
    /// or in a part taken for the flush being written): a request id must be none of them.
    unindexed: HashSet<[u8; 16]>,
    /// Events of the flush being written that the committing thread has taken already: a
    /// batch written in parts counts them against `batch_events_max` too.
    cycle_events: usize,
    /// Requests the admitting thread has taken off the queue and is done with (added to a
    /// batch, or answered).
    handled: u64,
    /// No more requests will come.
    closed: bool,
    /// Nobody will take batches any more (the committing thread died): why.
    abandoned: Option<StoreError>,
    committer_waiting: bool,
    admitter_waiting: bool,
}

/// A part of a flush needs at least this many events to be taken before the requests queued
/// when the flush began are all admitted: it is then applied while the rest are decided. Each
/// part costs sled an `apply_batch` of its own, with a request page, the meta head and the
/// open page rewritten, so single-event requests (a dozen a flush) never make one.
const PART_EVENTS: usize = 256;

/// A batch taken by the committing thread; the last of its flush, or not.
struct Part {
    batch: Batch,
    last: bool,
}

/// One batch: what it writes and whom it answers.
#[derive(Default)]
struct Batch {
    /// The admitted events, `(sequence, body, hash)`, in order: paged on commit.
    values: Vec<(u64, Vec<u8>, [u8; HASH_LEN])>,
    /// The admitted requests, in order, for the index.
    admitted: Vec<([u8; 16], AppendOutcome)>,
    /// Their idempotency records, in order, as the batch's request page (`requests`).
    request_page: Vec<u8>,
    /// Every request of the batch, with its answer once the batch is durable.
    replies: Vec<(Reply, Result<AppendOutcome, AppendError>)>,
}

impl Batch {
    fn add(&mut self, admitted: Admitted) {
        let Admitted {
            request_id,
            record,
            encoded_record,
            values,
        } = admitted;
        requests::push_entry(&mut self.request_page, &request_id, &encoded_record);
        self.admitted.push((request_id, record.outcome));
        self.values.extend(values);
    }
}

impl Handover {
    fn lock(&self) -> MutexGuard<'_, Filling> {
        // Neither thread panics while holding the lock; if one did, the other carries on
        // (the store is poisoned by then).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `request_id` was admitted and is not yet in the index.
    fn is_unindexed(&self, request_id: &[u8; 16]) -> bool {
        self.lock().unindexed.contains(request_id)
    }

    /// Adds an admitted request to the batch being filled — waiting, if its events do not
    /// fit, until the committing thread has taken that batch — or a refused one's answer.
    fn push(&self, decision: Decision, reply: Reply, batch_events_max: usize) {
        let mut filling = self.lock();
        if let Decision::Admit(admitted) = &decision {
            let count = admitted.values.len();
            while filling.cycle_events + filling.batch.values.len() > 0
                && filling.cycle_events + filling.batch.values.len() + count > batch_events_max
                && filling.abandoned.is_none()
            {
                filling.admitter_waiting = true;
                // The committing thread may be waiting for this very request to be admitted.
                if filling.committer_waiting {
                    self.ready.notify_one();
                }
                filling = self
                    .taken
                    .wait(filling)
                    .unwrap_or_else(PoisonError::into_inner);
                filling.admitter_waiting = false;
            }
        }
        filling.handled += 1;
        if let Some(error) = &filling.abandoned {
            let _ = reply.send(Err(AppendError::Store(error.clone())));
            return;
        }
        let answer = match decision {
            Decision::Refuse(error) => Err(error),
            Decision::Admit(admitted) => {
                let outcome = admitted.record.outcome.clone();
                filling.unindexed.insert(admitted.request_id);
                filling.batch.add(admitted);
                Ok(outcome)
            }
        };
        filling.batch.replies.push((reply, answer));
        if filling.committer_waiting {
            self.ready.notify_one();
        }
    }

    /// A request answered without joining a batch (the store is poisoned).
    fn handled_alone(&self) {
        let mut filling = self.lock();
        filling.handled += 1;
        if filling.committer_waiting {
            self.ready.notify_one();
        }
    }

    /// The next part of a flush. A flush starts with the first batch that has anything in it
    /// and holds the requests queued by then (of `enqueued` so far, counted into
    /// `queued_by_then` at its first part) — as a single thread would drain its queue before
    /// writing — unless it fills up first. While those are still being admitted, whatever
    /// has been admitted is taken as a part of [`PART_EVENTS`] or more, to be applied while
    /// the rest is decided; the last part (`Part::last`) is taken once they are all in (it
    /// may be empty). `None` once the queue is gone and everything has been taken.
    fn take(&self, enqueued: &AtomicU64, queued_by_then: &mut Option<u64>) -> Option<Part> {
        let mut filling = self.lock();
        loop {
            let started = queued_by_then.is_some();
            let has_requests = !filling.batch.replies.is_empty();
            if started || has_requests {
                let queued =
                    *queued_by_then.get_or_insert_with(|| enqueued.load(Ordering::Acquire));
                let full = filling.admitter_waiting;
                let caught_up = filling.handled >= queued || full || filling.closed;
                if caught_up || filling.batch.values.len() >= PART_EVENTS {
                    let batch = std::mem::take(&mut filling.batch);
                    if caught_up {
                        filling.cycle_events = 0;
                    } else {
                        filling.cycle_events += batch.values.len();
                    }
                    if full {
                        self.taken.notify_one();
                    }
                    return Some(Part {
                        batch,
                        last: caught_up,
                    });
                }
            }
            if filling.closed {
                return None;
            }
            filling.committer_waiting = true;
            filling = self
                .ready
                .wait(filling)
                .unwrap_or_else(PoisonError::into_inner);
            filling.committer_waiting = false;
        }
    }

    /// The requests of `parts` are in the index.
    fn indexed(&self, parts: &[Applied]) {
        let mut filling = self.lock();
        for part in parts {
            for (request_id, _) in &part.requests {
                filling.unindexed.remove(request_id);
            }
        }
    }

    /// No more requests will come.
    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
        self.taken.notify_all();
    }

    /// Nobody will take batches any more: what is being filled, and whatever is pushed from
    /// now on, is answered with `error`.
    fn abandon(&self, error: StoreError) {
        let batch = {
            let mut filling = self.lock();
            filling.abandoned = Some(error.clone());
            std::mem::take(&mut filling.batch)
        };
        self.taken.notify_all();
        for (reply, _) in batch.replies {
            let _ = reply.send(Err(AppendError::Store(error.clone())));
        }
    }
}

/// What the admitting thread made of one request.
enum Decision {
    /// Nothing to write: the request is malformed, or the store failed or was stopped by it.
    Refuse(AppendError),
    /// Admitted: its events and records, to be written.
    Admit(Admitted),
}

/// A request's events, encoded and chained, with its idempotency record.
struct Admitted {
    request_id: [u8; 16],
    record: IdempotencyRecord,
    encoded_record: Vec<u8>,
    /// `(sequence, body, hash)` per event.
    values: Vec<(u64, Vec<u8>, [u8; HASH_LEN])>,
}

/// Poisons the store if a writer thread unwinds, so handles refuse appends at once instead of
/// queueing requests nobody will answer, and tells the other thread: if the admitting thread
/// died, the committing one answers what it was given and stops; if the committing thread
/// died, whatever it would have taken is answered with the error.
struct Unwinding {
    shared: Arc<Shared>,
    handover: Arc<Handover>,
    committing: bool,
}

impl Drop for Unwinding {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let thread = std::thread::current();
            let reason = format!("{} panicked", thread.name().unwrap_or("a writer thread"));
            self.shared.poison(reason.clone());
            if self.committing {
                self.handover.abandon(StoreError::Poisoned(reason));
            } else {
                self.handover.close();
            }
        }
    }
}

/// The admitting thread.
struct Admitter<E> {
    queue: Receiver<Queued<E>>,
    shared: Arc<Shared>,
    handover: Arc<Handover>,
    batch_events_max: usize,
    /// Where the chain goes on: the end of the last admitted request.
    cursor: Tip,
    /// The version of every stream a request was admitted to since the store opened, after
    /// the last such request; any other stream is at its durable version (the index).
    versions: HashMap<String, u64>,
}

impl<E: Serialize> Admitter<E> {
    fn run(mut self, committing: JoinHandle<()>) {
        let unwinding = Unwinding {
            shared: Arc::clone(&self.shared),
            handover: Arc::clone(&self.handover),
            committing: false,
        };
        while let Ok(Queued { request, reply }) = self.queue.recv() {
            if let Some(reason) = self.shared.poisoned() {
                let error = StoreError::Poisoned(reason.to_string());
                let _ = reply.send(Err(AppendError::Store(error)));
                self.handover.handled_alone();
                continue;
            }
            let decision = self.decide(request);
            self.handover.push(decision, reply, self.batch_events_max);
        }
        self.handover.close();
        drop(unwinding);
        if committing.join().is_err() {
            tracing::error!("the event store's committing thread panicked");
        }
        tracing::debug!(cursor = %self.cursor.head(), "event store writer stopped");
    }

    /// Admits one request, or refuses it. A storage error or a broken contract poisons the
    /// store (failing the batch the request joins, and everything after it).
    fn decide(&mut self, request: AppendRequest<E>) -> Decision {
        match self.admit(request) {
            Ok(admitted) => Decision::Admit(admitted),
            Err(error) => {
                if let AppendError::Store(error) = &error {
                    self.shared.poison(error.to_string());
                }
                Decision::Refuse(error)
            }
        }
    }

    /// Checks the caller's contract, then encodes and chains the request's events.
    /// `Err(AppendError::Store(..))`: storage failed or the contract is broken; any other
    /// error refuses this request alone and changed nothing.
    fn admit(&mut self, request: AppendRequest<E>) -> Result<Admitted, AppendError> {
        let broken = |what: String| AppendError::Store(StoreError::ContractBroken(what));
        // Not yet indexed first: a request leaves that set only once it is in the index.
        let unindexed = self.handover.is_unindexed(&request.request_id);
        let index = self.shared.index()?;
        if unindexed || index.page_of(&request.request_id).is_some() {
            return Err(broken(format!(
                "request {} was appended before; a resend must be answered from its record, \
                 not appended again",
                hex::encode(request.request_id)
            )));
        }
        let actual = match self.versions.get(&request.stream) {
            Some(version) => *version,
            None => index.stream_version(&request.stream),
        };
        drop(index);
        if request.stream_version != actual {
            return Err(broken(format!(
                "request {} appends to {:?} after version {}, but the stream is at version \
                 {actual}",
                hex::encode(request.request_id),
                request.stream,
                request.stream_version
            )));
        }
        let admitted = stage(self.cursor, request)?;
        let outcome = &admitted.record.outcome;
        self.cursor = Tip::after(outcome);
        match self.versions.get_mut(&outcome.stream) {
            Some(version) => *version = outcome.last_version,
            None => {
                self.versions
                    .insert(outcome.stream.clone(), outcome.last_version);
            }
        }
        Ok(admitted)
    }
}

/// Encodes and chains a request's events after `cursor`, its stream at the version it states.
fn stage<E: Serialize>(cursor: Tip, request: AppendRequest<E>) -> Result<Admitted, AppendError> {
    let actual = request.stream_version;
    let recorded_at_us = next_timestamp(cursor.recorded_at_us);
    let count = request.events.len() as u64;
    let first_sequence = cursor.sequence + 1;
    let mut values = Vec::with_capacity(request.events.len());
    let mut prev_hash = cursor.hash;
    for (index, event) in request.events.into_iter().enumerate() {
        let offset = index as u64;
        let (sequence, version) = (first_sequence + offset, actual + 1 + offset);
        let envelope = Envelope::V1(EventRecordV1 {
            sequence,
            stream: request.stream.clone(),
            version,
            event_id: event.event_id,
            request_id: request.request_id,
            correlation_id: request.correlation_id,
            recorded_at_us,
            effective_period: event.effective_period,
            actor: request.actor.clone(),
            schema_version: SCHEMA_VERSION_LATEST,
            event_type: event.event_type,
            payload: event.payload,
            prev_hash,
        });
        let body = codec::encode_body(&envelope)
            .map_err(|e| AppendError::Invalid(format!("event {index}: {e}")))?;
        let hash = codec::chain_hash(&prev_hash, &body);
        values.push((sequence, body, hash));
        prev_hash = hash;
    }
    let record = IdempotencyRecord {
        command_hash: request.command_hash,
        outcome: AppendOutcome {
            stream: request.stream,
            first_version: actual + 1,
            last_version: actual + count,
            first_sequence,
            last_sequence: first_sequence + count - 1,
            hash: prev_hash,
            recorded_at_us,
            duplicate: false,
        },
    };
    let encoded_record = codec::encode_idempotency(&record)
        .map_err(|e| AppendError::Invalid(format!("idempotency record: {e}")))?;
    Ok(Admitted {
        request_id: request.request_id,
        record,
        encoded_record,
        values,
    })
}

/// The committing thread.
struct Committer {
    tree: sled::Tree,
    head: watch::Sender<Head>,
    shared: Arc<Shared>,
    handover: Arc<Handover>,
    /// The durable end of the chain.
    tip: Tip,
    /// The end of the chain applied to sled, flushed or not.
    applied: Tip,
    /// The log's last page, which the next events go into until it is full.
    page: OpenPage,
    sync: Arc<DiskSync>,
    anchor: Arc<AnchorWriter>,
}

/// One part applied to sled: its first sequence (the key of its request page) and its
/// requests, in order, for the index.
struct Applied {
    first: u64,
    requests: Vec<([u8; 16], AppendOutcome)>,
}

/// What one flush makes durable, gathered part by part.
#[derive(Default)]
struct Flush {
    parts: Vec<Applied>,
    /// Every request of the flush, with its answer once the flush has returned.
    replies: Vec<(Reply, Result<AppendOutcome, AppendError>)>,
    /// The first write failure: every request of the flush is answered with it.
    failed: Option<StoreError>,
}

impl Committer {
    fn run(mut self) {
        let _unwinding = Unwinding {
            shared: Arc::clone(&self.shared),
            handover: Arc::clone(&self.handover),
            committing: true,
        };
        loop {
            let mut queued_by_then = None;
            let mut flush = Flush::default();
            loop {
                let Some(part) = self
                    .handover
                    .take(&self.shared.enqueued, &mut queued_by_then)
                else {
                    // Only before a flush's first part: the queue is gone and all answered.
                    return;
                };
                self.apply(part.batch, &mut flush);
                if part.last {
                    break;
                }
            }
            self.finish(flush);
        }
    }

    /// Applies one part of a flush — its events into the log's open page and the pages after
    /// it, its request page and the meta head, as ONE atomic `sled::Batch` — without flushing.
    fn apply(&mut self, batch: Batch, flush: &mut Flush) {
        let Batch {
            values,
            admitted,
            request_page,
            replies,
            ..
        } = batch;
        flush.replies.extend(replies);
        if flush.failed.is_some() {
            return;
        }
        if let Some(reason) = self.shared.poisoned() {
            flush.failed = Some(StoreError::Poisoned(reason.to_string()));
            return;
        }
        let Some((_, last)) = admitted.last() else {
            // Only refusals: nothing to write.
            return;
        };
        let tip = Tip::after(last);
        let first = self.applied.sequence + 1;
        assert!(tip.sequence == self.applied.sequence + values.len() as u64);
        let mut batch = sled::Batch::default();
        batch.insert(&keys::requests(first), request_page);
        self.page.append(
            values
                .iter()
                .map(|(sequence, body, hash)| (*sequence, [body.as_slice(), hash.as_slice()])),
            &mut batch,
        );
        batch.insert(
            keys::meta_head(),
            keys::encode_meta_head(tip.sequence, &tip.hash).to_vec(),
        );
        if let Err(error) = self.tree.apply_batch(batch) {
            let error = StoreError::from(error);
            self.shared.poison(error.to_string());
            flush.failed = Some(error);
            return;
        }
        self.applied = tip;
        flush.parts.push(Applied {
            first,
            requests: admitted,
        });
    }

    /// Flushes what the parts applied, adds their requests to the index, publishes the new
    /// head, and only then answers every request of the flush.
    fn finish(&mut self, flush: Flush) {
        let Flush {
            parts,
            replies,
            failed,
        } = flush;
        let requests = parts.iter().map(|part| part.requests.len()).sum();
        // Every part applied follows the durable tip.
        let events = self.applied.sequence - self.tip.sequence;
        let written = match failed {
            Some(error) => Err(error),
            None if parts.is_empty() => Ok(()),
            None => self.make_durable(&parts).inspect_err(|error| {
                self.shared.poison(error.to_string());
            }),
        };
        match written {
            Ok(()) => {
                if events > 0 {
                    self.shared.count_batch(requests, events);
                }
                for (reply, answer) in replies {
                    // The caller may have stopped waiting; nothing to do then.
                    let _ = reply.send(answer);
                }
            }
            Err(error) => {
                // A request refused on its own (malformed, or the one that broke the contract)
                // keeps its own answer; every admitted one fails with the flush.
                for (reply, answer) in replies {
                    let _ = reply.send(Err(match answer {
                        Err(refused) => refused,
                        Ok(_) => AppendError::Store(error.clone()),
                    }));
                }
            }
        }
    }

    fn make_durable(&mut self, parts: &[Applied]) -> Result<(), StoreError> {
        self.tree.flush()?;
        self.sync.sync().map_err(crate::durable::sync_error)?;
        let mut index = self.shared.index_mut()?;
        for part in parts {
            for (request_id, outcome) in &part.requests {
                index
                    .add(part.first, *request_id, outcome.into())
                    .map_err(StoreError::Corrupt)?;
            }
        }
        drop(index);
        self.handover.indexed(parts);
        self.tip = self.applied;
        self.head.send_replace(self.tip.head());
        self.anchor.offer(self.tip.head());
        Ok(())
    }
}

/// Unix microseconds now, forced strictly after `last` so that transaction time is
/// monotonic even if the wall clock steps back.
fn next_timestamp(last: i64) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|elapsed| i64::try_from(elapsed.as_micros()).ok())
        .unwrap_or(0);
    now.max(last.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewEvent;

    fn request(id: u8, stream: &str, version: u64, events: u8) -> AppendRequest<u32> {
        AppendRequest {
            request_id: [id; 16],
            command_hash: [id; 32],
            stream: stream.to_string(),
            stream_version: version,
            actor: "tester".to_string(),
            correlation_id: [0; 16],
            events: (0..events)
                .map(|n| NewEvent {
                    event_id: [id, n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    event_type: "test".to_string(),
                    effective_period: None,
                    payload: u32::from(n),
                })
                .collect(),
        }
    }

    /// A request to `stream` at the version the requests admitted before it leave it.
    fn following(admitter: &Admitter<u32>, id: u8, stream: &str, events: u8) -> AppendRequest<u32> {
        let version = admitter.versions.get(stream).copied().unwrap_or(0);
        request(id, stream, version, events)
    }

    fn admitter(tree: &sled::Tree) -> (Admitter<u32>, std::sync::mpsc::SyncSender<Queued<u32>>) {
        let (queue, receiver) = std::sync::mpsc::sync_channel(1);
        let admitter = Admitter {
            queue: receiver,
            shared: Arc::new(Shared::new(tree.clone(), 0)),
            handover: Arc::new(Handover::default()),
            batch_events_max: 100,
            cursor: Tip::EMPTY,
            versions: HashMap::new(),
        };
        (admitter, queue)
    }

    fn tree() -> (tempfile::TempDir, sled::Tree) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        let tree = db.open_tree("t").expect("tree");
        (dir, tree)
    }

    /// Admits a request (or refuses it) and adds it to the batch being filled; returns its
    /// answer as the batch will give it.
    fn admit(
        admitter: &mut Admitter<u32>,
        request: AppendRequest<u32>,
    ) -> Result<AppendOutcome, AppendError> {
        let decision = admitter.decide(request);
        let (reply, _answer) = oneshot::channel();
        admitter.handover.push(decision, reply, 100);
        let filling = admitter.handover.lock();
        let (_, answer) = filling.batch.replies.last().expect("pushed");
        answer.clone()
    }

    /// Whether `answer` is the store stopping on a broken contract, saying `what`, and the
    /// store is poisoned with it.
    fn stopped(admitter: &Admitter<u32>, answer: &Result<AppendOutcome, AppendError>, what: &str) {
        assert!(
            matches!(answer, Err(AppendError::Store(StoreError::ContractBroken(why))) if why.contains(what)),
            "{answer:?}"
        );
        let poisoned = admitter.shared.poisoned().expect("poisoned");
        assert!(poisoned.contains(what), "{poisoned}");
    }

    /// Requests follow the requests admitted before them — in the batch being filled and in
    /// the batch being written — before any of it is in sled: sequences, versions, the chain,
    /// transaction time. (Deterministic: no thread involved.)
    #[test]
    fn requests_follow_the_requests_admitted_before_them() {
        let (_dir, tree) = tree();
        let (mut admitter, _queue) = admitter(&tree);

        let first = admit(&mut admitter, request(1, "a", 0, 2)).expect("admitted");
        assert_eq!((first.first_sequence, first.last_sequence), (1, 2));
        assert_eq!((first.first_version, first.last_version), (1, 2));
        assert!(!first.duplicate);
        let other = admit(&mut admitter, request(2, "b", 0, 1)).expect("admitted");
        assert_eq!((other.first_sequence, other.first_version), (3, 1));

        // The batch is taken for writing (and not yet in sled): later requests still follow it.
        let taken = admitter
            .handover
            .take(&AtomicU64::new(0), &mut None)
            .expect("a batch")
            .batch;
        assert_eq!(taken.values.len(), 3);
        let last = taken
            .admitted
            .last()
            .map(|(_, outcome)| Tip::after(outcome).head());
        assert_eq!(
            last,
            Some(Head {
                sequence: 3,
                hash: other.hash
            })
        );
        assert!(admitter.handover.is_unindexed(&[1; 16]));

        let next = admit(&mut admitter, request(3, "a", 2, 1)).expect("admitted");
        assert_eq!((next.first_sequence, next.first_version), (4, 3));
        assert!(next.recorded_at_us > first.recorded_at_us);
        assert!(tree.is_empty(), "nothing was written");
        assert!(admitter.shared.poisoned().is_none());

        let filling = admitter.handover.lock();
        assert_eq!(filling.batch.values.len(), 1);
        let (_, last) = filling.batch.admitted.last().expect("admitted");
        assert_eq!((last.last_sequence, last.hash), (4, next.hash));
        assert_eq!(filling.unindexed.len(), 3);
    }

    /// A request id admitted before — in the batch being filled, or in a part taken and not
    /// yet indexed — stops the store: the caller answers resends, it does not send them.
    #[test]
    fn a_request_id_admitted_before_stops_the_store() {
        for taken in [false, true] {
            let (_dir, tree) = tree();
            let (mut admitter, _queue) = admitter(&tree);
            admit(&mut admitter, request(1, "a", 0, 1)).expect("admitted");
            if taken {
                admitter
                    .handover
                    .take(&AtomicU64::new(0), &mut None)
                    .expect("a batch");
            }
            // The very request again, its version following on: still a broken contract.
            let again = following(&admitter, 1, "a", 1);
            let answer = admit(&mut admitter, again);
            stopped(
                &admitter,
                &answer,
                &format!("request {}", hex::encode([1u8; 16])),
            );
            assert_eq!(admitter.cursor.sequence, 1, "taken: {taken}");
        }
    }

    /// A stream version that is not the one the requests before leave — behind, ahead, or a
    /// new stream said to have events — stops the store.
    #[test]
    fn a_stream_version_that_does_not_follow_on_stops_the_store() {
        for (stream, version, actual) in [("a", 1, 2), ("a", 3, 2), ("new", 5, 0)] {
            let (_dir, tree) = tree();
            let (mut admitter, _queue) = admitter(&tree);
            admit(&mut admitter, request(1, "a", 0, 2)).expect("admitted");
            let answer = admit(&mut admitter, request(2, stream, version, 1));
            stopped(
                &admitter,
                &answer,
                &format!("after version {version}, but the stream is at version {actual}"),
            );
            assert_eq!(admitter.cursor.sequence, 2, "nothing more admitted");
            // Stopped: the committing thread fails the batch holding what was admitted.
            let part = admitter
                .handover
                .take(&AtomicU64::new(0), &mut None)
                .expect("a batch");
            assert_eq!(part.batch.replies.len(), 2);
        }
    }

    /// A request that does not fit waits for the batch to be taken and opens the next one.
    #[test]
    fn a_full_batch_is_taken_before_the_next_request_joins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        let tree = db.open_tree("t").expect("tree");
        let (mut admitter, _queue) = admitter(&tree);
        let push = |admitter: &mut Admitter<u32>, id: u8, events: u8| {
            let decision = admitter.decide(following(admitter, id, "a", events));
            let (reply, _answer) = oneshot::channel();
            admitter.handover.push(decision, reply, 5);
        };
        push(&mut admitter, 1, 3);
        push(&mut admitter, 2, 2); // 5 events: full
        let handover = Arc::clone(&admitter.handover);
        // The next request does not fit: its push waits until the full batch is taken.
        let pushing = std::thread::spawn(move || {
            push(&mut admitter, 3, 4);
            admitter
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!pushing.is_finished(), "joined a full batch");
        let full = handover
            .take(&AtomicU64::new(0), &mut None)
            .expect("the full batch");
        assert!(full.last, "a full batch ends its flush");
        assert_eq!(full.batch.values.len(), 5);
        let admitter = pushing.join().expect("pushed once the batch was taken");
        let next = admitter
            .handover
            .take(&AtomicU64::new(0), &mut None)
            .expect("the next batch")
            .batch;
        assert_eq!(next.values.len(), 4);
        assert_eq!(next.values.first().map(|(sequence, ..)| *sequence), Some(6));
    }

    /// A batch is taken once the requests queued by the time it could be are in it, as a
    /// single thread would drain its queue: not the moment the first of them is admitted.
    #[test]
    fn a_batch_waits_for_the_requests_already_queued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        let tree = db.open_tree("t").expect("tree");
        let (mut admitter, _queue) = admitter(&tree);
        let push = |admitter: &mut Admitter<u32>, id: u8| {
            let decision = admitter.decide(following(admitter, id, "a", 1));
            let (reply, _answer) = oneshot::channel();
            admitter.handover.push(decision, reply, 100);
        };
        let enqueued = Arc::new(AtomicU64::new(2)); // two requests on the queue
        push(&mut admitter, 1);
        let handover = Arc::clone(&admitter.handover);
        let taking = std::thread::spawn({
            let enqueued = Arc::clone(&enqueued);
            move || handover.take(&enqueued, &mut None)
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !taking.is_finished(),
            "taken before the second queued request joined"
        );
        push(&mut admitter, 2);
        let part = taking.join().expect("takes").expect("a batch");
        assert!(part.last);
        assert_eq!(part.batch.values.len(), 2);
    }

    /// While the requests queued when a flush began are still being admitted, what has been
    /// admitted is taken in parts of `PART_EVENTS` or more (to be applied meanwhile), and
    /// the last part once they are all in; the flush counts its parts against the batch
    /// limit; and the requests of parts taken stay known until the flush is indexed.
    #[test]
    fn a_flush_is_taken_in_parts_while_its_requests_are_admitted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        let tree = db.open_tree("t").expect("tree");
        let (mut admitter, _queue) = admitter(&tree);
        let max = 4 * PART_EVENTS;
        let push = |admitter: &mut Admitter<u32>, id: u8, events: usize| {
            let events = u8::try_from(events / 2).expect("small");
            let mut request = following(admitter, id, "a", events);
            request.events.extend(request.events.clone());
            let decision = admitter.decide(request);
            let (reply, _answer) = oneshot::channel();
            admitter.handover.push(decision, reply, max);
        };
        let enqueued = AtomicU64::new(3); // three requests queued when the flush begins
        let mut queued_by_then = None;
        push(&mut admitter, 1, PART_EVENTS);
        let first = admitter
            .handover
            .take(&enqueued, &mut queued_by_then)
            .expect("a part");
        assert!(!first.last, "two queued requests are still to come");
        assert_eq!(first.batch.values.len(), PART_EVENTS);
        assert_eq!(queued_by_then, Some(3));
        assert_eq!(
            admitter.handover.lock().cycle_events,
            PART_EVENTS,
            "counted against the flush's limit"
        );
        // Taken, not yet indexed: its request id is still known.
        assert!(admitter.handover.is_unindexed(&[1; 16]));
        // Less than a part: not taken until the queued requests are all in.
        push(&mut admitter, 2, 2);
        let handover = Arc::clone(&admitter.handover);
        let taking = std::thread::spawn(move || {
            let part = handover.take(&enqueued, &mut queued_by_then);
            (part, queued_by_then)
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!taking.is_finished(), "took less than a part early");
        push(&mut admitter, 3, 2);
        let (last, _) = taking.join().expect("takes");
        let last = last.expect("the last part");
        assert!(last.last);
        assert_eq!(last.batch.values.len(), 4);
        assert_eq!(last.batch.replies.len(), 2);
        assert_eq!(last.batch.values.first().map(|(s, ..)| *s), Some(257));
        // The next flush starts afresh: nothing of this one counts against its limit.
        assert_eq!(admitter.handover.lock().cycle_events, 0);
    }

    /// With the committing thread gone, what was being filled and whatever comes after is
    /// answered with the error — nobody waits for an answer that will not come.
    #[test]
    fn an_abandoned_handover_answers_every_request_with_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        let tree = db.open_tree("t").expect("tree");
        let (mut admitter, _queue) = admitter(&tree);
        admitter.batch_events_max = 2;
        let mut answers = Vec::new();
        let mut push = |admitter: &mut Admitter<u32>, id: u8| {
            let decision = admitter.decide(following(admitter, id, "a", 2));
            let (reply, answer) = oneshot::channel();
            admitter.handover.push(decision, reply, 2);
            answers.push(answer);
        };
        push(&mut admitter, 1);
        let error = StoreError::Poisoned("the committing thread panicked".to_string());
        let handover = Arc::clone(&admitter.handover);
        // The second request does not fit beside the first: it waits until the committing
        // thread takes the batch — here, until it is abandoned.
        let abandoning = std::thread::spawn({
            let error = error.clone();
            move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                handover.abandon(error);
            }
        });
        push(&mut admitter, 2);
        abandoning.join().expect("abandons");
        push(&mut admitter, 3);
        for answer in answers {
            let answer = answer.blocking_recv().expect("answered");
            assert!(
                matches!(&answer, Err(AppendError::Store(StoreError::Poisoned(why))) if why.contains("committing")),
                "{answer:?}"
            );
        }
    }

    #[test]
    fn timestamps_are_strictly_monotonic() {
        let far_future = i64::MAX / 2;
        assert_eq!(next_timestamp(far_future), far_future + 1);
        let a = next_timestamp(0);
        let b = next_timestamp(a);
        assert!(b > a);
    }
}
